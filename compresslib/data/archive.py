"""A downloadable file: its official name, URL and published md5 (kept apart from ``compresslib.data.download``,
whose CIFAR entries import torchvision, so that the workflow's start-up can list files without it)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Archive"]


@dataclass(frozen=True)
class Archive:
    filename: str  # official file name, also the name looked up on a mirror, e.g. "cifar-10-python.tar.gz"
    url: str  # official download URL
    md5: str | None  # md5 of the whole file as published (torchvision, torchtext); None where none is published
