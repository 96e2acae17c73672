"""Atomic file writes, and the checksums that let a job trust the files another job wrote.

A crashed or killed job must never leave a file that looks finished, so each writer
writes to a temporary name in the destination directory, flushes it to disk and
renames it into place with ``os.replace`` (atomic on POSIX within one filesystem). A write that fails names the
file and the cause (no space left, read-only, permission) in one line, whatever library wrote the bytes.

A file one job makes for another (a prepared dataset or corpus, a model, a views table, sequence-KD targets) is
written with ``checksum=True``: its sha256 lands beside it once it is in place, in ``<name>.sha256`` (the format of
``sha256sum``, so ``sha256sum -c`` checks it too, with a comment giving the command of the job that made it). A job
reading the file checks it with :func:`verified_sha256` before any work; a torch file a job reads back itself (a
checkpoint, an ESNAC candidate's weights) is checked against the CRC32 of every member torch writes into it
(``load_torch(..., check=True)``). The workflow's start-up writes and reads JSON with this module, so torch is
imported only by the functions that read or write torch files.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shlex
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["DamagedFile", "CHECKSUM_SUFFIX", "atomic_path", "atomic_open", "temporaries",
           "write_json", "read_json_object", "save_torch", "load_torch", "load_versioned", "sha256_file",
           "checksum_path", "verified_sha256"]

CHECKSUM_SUFFIX = ".sha256"


class DamagedFile(ValueError):
    """A file is not what its producer wrote: its checksum differs from the recorded one, or it has none."""


def temporaries(path: str | os.PathLike) -> list[Path]:
    """The temporary files :func:`atomic_path` makes for ``path`` (and for its checksum file) that are still there:
    leftovers of a killed writer."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, checksum: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds. With ``checksum`` the
    file's sha256 is recorded in ``<path>.sha256`` once it is in place (the old one is removed first, so a write
    killed half-way leaves a file without a checksum, never one with a wrong one).

    Temporary files a killed writer of ``path`` left are removed first (a file has one writer: its job). On any
    exception the temporary file is removed and ``path`` is left untouched; an OS error (raised in the block
    or by the library that wrote the file, which may wrap it) of storage that names no file is raised again naming
    ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for leftover in temporaries(path):
            leftover.unlink(missing_ok=True)
        if checksum:
            checksum_path(path).unlink(missing_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _naming(error, path) from error
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # mkstemp creates 0600 files; results on a shared filesystem need the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        yield tmp
        with open(tmp, "rb+") as handle:  # flush file data before the rename makes it visible
            os.fsync(handle.fileno())
        digest = sha256_file(tmp) if checksum else None
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        cause = _os_error(error)
        if cause is not None and cause.filename is None and cause.errno in _STORAGE_ERRORS:
            raise _naming(cause, path) from error
        raise
    if digest is not None:
        _record_checksum(path, digest)


# the errors of writing a file that name none (an error naming a file, e.g. an input's, or a network error is kept)
_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM}


def _os_error(error: BaseException) -> OSError | None:
    """The OS error behind ``error``: itself, or the one a library's own exception was raised from (torch's writer
    turns "No space left on device" into a RuntimeError about a stream position)."""
    while error is not None and isinstance(error, Exception):
        if isinstance(error, OSError) and error.errno is not None:
            return error
        error = error.__cause__ or error.__context__
    return None


def _naming(error: OSError, path: Path) -> OSError:
    """``error`` again (its own subclass: FileNotFoundError, PermissionError, ...), naming ``path``."""
    return OSError(error.errno, error.strerror, str(path))


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


def save_torch(path: str | os.PathLike, obj: Any, checksum: bool = False) -> None:
    """``torch.save`` atomically (``checksum`` as for :func:`atomic_path`). ``obj`` must be plain state (tensors,
    dicts, lists, numbers, strings)."""
    import torch

    # through a Python file, so that a failed write's OS error reaches atomic_path under torch's RuntimeError
    with atomic_path(path, checksum) as tmp, open(tmp, "wb") as handle:
        torch.save(obj, handle)


def load_torch(path: str | os.PathLike, map_location: str | torch.device = "cpu", mmap: bool = False,
               check: bool = False, what: str = "torch file") -> Any:
    """Load plain state saved by :func:`save_torch`; never unpickles arbitrary objects. Errors name the file and
    ``what`` it should have been.

    ``mmap``: tensors are mapped from the file (private, copy-on-write) instead of read into memory. ``check``: every
    member is first checked against the CRC32 torch recorded for it (one read of the file), so that a damaged file
    is refused rather than loaded with a changed value.
    """
    import torch

    try:
        if check:
            with zipfile.ZipFile(path) as archive:
                # torch's reader gives a member marked as a folder (MS-DOS attribute 0x10) uninitialised bytes
                damaged = archive.testzip() or next((info.filename for info in archive.infolist()
                                                     if info.external_attr & 0x10), None)
            if damaged is not None:
                raise DamagedFile(f"{path} is damaged: its member {damaged} fails its CRC32 or attribute check")
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except DamagedFile:
        raise
    except Exception as error:  # corrupt, truncated or foreign file: say which one
        raise DamagedFile(f"{path} is not a readable {what} ({error})") from error


def load_versioned(path: str | os.PathLike, version: int, what: str, remedy: str = "", mmap: bool = False,
                   check: bool = False) -> dict:
    """Load a ``{"format": version, ...}`` file written by :func:`save_torch` (``mmap`` and ``check`` as for
    :func:`load_torch`).

    Errors name the file and ``what`` it should have been, plus ``remedy`` when given.
    """
    suffix = f"; {remedy}" if remedy else ""
    try:
        payload = load_torch(path, mmap=mmap, check=check, what=what)
    except DamagedFile as error:
        raise DamagedFile(f"{error}{suffix}") from error
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


def checksum_path(path: str | os.PathLike) -> Path:
    """Where the sha256 of a file written with ``checksum=True`` is recorded."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def _record_checksum(path: Path, digest: str) -> None:
    made_by = f"`{shlex.join([Path(sys.executable).name, *sys.argv])}`"  # the job's command, as it can be rerun
    with atomic_open(checksum_path(path), "w", encoding="utf-8") as handle:
        handle.write(f"# made by {made_by}\n{digest}  {path.name}\n")


def _recorded_checksum(path: Path) -> tuple[str, str]:
    """The sha256 recorded for ``path`` and who recorded it; DamagedFile when there is none."""
    recorded = checksum_path(path)
    remedy = (f"rerun the job that makes it (snakemake -f {path}), or, if you trust the file, record its checksum "
              f"with `sha256sum {path} > {recorded}`")
    try:
        lines = recorded.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DamagedFile(f"{path} has no recorded checksum ({recorded} is missing: the job that made it did not "
                          f"finish, or an older compresslib made it); {remedy}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DamagedFile(f"{recorded} is unreadable ({error}); {remedy}") from error
    made_by = next((line.removeprefix("# made by ") for line in lines if line.startswith("# made by ")), "its job")
    fields = next((line.split() for line in lines if line.strip() and not line.startswith("#")), [])
    digest = fields[0].lstrip("\\").lower() if fields else ""
    if len(digest) != 64 or any(char not in "0123456789abcdef" for char in digest):
        raise DamagedFile(f"{recorded} holds no sha256; {remedy}")
    return digest, made_by


_VERIFIED: dict[tuple, str] = {}  # one hash per file per process, however many readers check it


def verified_sha256(path: str | os.PathLike) -> str:
    """The sha256 of ``path``, a file another job wrote with ``checksum=True``, after checking it against the one
    that job recorded; DamagedFile naming the file, both checksums and the job otherwise. A file is hashed once per
    process (until it changes), however often it is asked for."""
    path = Path(path)
    status = path.stat()
    key = (str(path.resolve()), status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)
    if key not in _VERIFIED:
        recorded, made_by = _recorded_checksum(path)
        found = sha256_file(path)
        if found != recorded:
            raise DamagedFile(f"{path} is not the file its job wrote: sha256 {found}, but {made_by} recorded "
                              f"{recorded}; it was damaged or replaced since: rerun that job (snakemake -f {path})")
        _VERIFIED[key] = found
    return _VERIFIED[key]
