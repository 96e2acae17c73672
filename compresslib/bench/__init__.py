"""Benchmarks of compresslib's training path against the way the original code bases train.

``python -m compresslib.bench speed`` measures images per second and peak memory of teacher training,
student training (cross-entropy and KD, the teacher online or its outputs cached) and inference, for
(a) a reference loop written as the originals train (``reference``) and (b) compresslib's path
(``resident``), each measurement in a fresh process, and prints the ratio b/a.
``python -m compresslib.bench accuracy`` trains a student briefly along each path over several seeds and
checks that they reach the same test accuracy within seed noise. docs/benchmarks.md describes both.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from compresslib import provenance
from compresslib.devices import Placement

__all__ = ["result_header"]


def result_header(benchmark: str, settings: Any, placement: Placement) -> dict:
    """What every benchmark result starts with: its kind, when, the hardware, the software and the settings."""
    return {"benchmark": benchmark, "created_at": provenance.now_iso(),
            "hardware": provenance.hardware(placement, torch.get_num_threads()), "software": provenance.software(),
            "settings": dataclasses.asdict(settings)}
