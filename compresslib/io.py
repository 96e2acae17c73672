"""Atomic file writes: every output lands under its final name only once it is complete.

A crashed or killed job must never leave a file that looks finished, so each writer
writes to a temporary name in the destination directory, flushes it to disk and
renames it into place with ``os.replace`` (atomic on POSIX within one filesystem).
The workflow's start-up writes and reads JSON with this module, so torch is imported only by the functions that
read or write torch files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["atomic_path", "atomic_open", "write_json", "read_json_object", "save_torch", "load_torch", "load_versioned",
           "sha256_file"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600 files; results on a shared filesystem need the usual umask-based mode.
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:  # flush file data before the rename makes it visible
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """``open()`` that writes to a temporary file and renames it onto ``path`` on success."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=2, sort_keys=False, allow_nan=True)
        handle.write("\n")


def read_json_object(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; a missing file, bad JSON or another JSON value is an error naming ``what`` and
    the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: {what} is not valid JSON ({error})") from error
    if not isinstance(value, dict):
        raise ValueError(f"{path}: {what} must be a JSON object, got {type(value).__name__}")
    return value


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` atomically. ``obj`` must be plain state (tensors, dicts, lists, numbers, strings)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: str | os.PathLike, map_location: str | torch.device = "cpu", mmap: bool = False) -> Any:
    """Load plain state saved by :func:`save_torch`; never unpickles arbitrary objects.

    ``mmap``: tensors are mapped from the file (private, copy-on-write) instead of read into memory.
    """
    import torch

    return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)


def load_versioned(path: str | os.PathLike, version: int, what: str, remedy: str = "", mmap: bool = False) -> dict:
    """Load a ``{"format": version, ...}`` file written by :func:`save_torch` (``mmap`` as for :func:`load_torch`).

    Errors name the file and ``what`` it should have been, plus ``remedy`` when given.
    """
    suffix = f"; {remedy}" if remedy else ""
    try:
        payload = load_torch(path, mmap=mmap)
    except Exception as error:  # corrupt, truncated or foreign file: say which one
        raise ValueError(f"{path} is not a readable {what} ({error}){suffix}") from error
    if not isinstance(payload, dict) or payload.get("format") != version:
        raise ValueError(f"{path} is not a {what} of format {version}{suffix}")
    return payload


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
