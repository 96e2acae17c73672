"""Fetch dataset archives, check them against their published md5, and unpack them safely.

The CIFAR archives are the official torchvision ones (URL, file name and md5 read from
``torchvision.datasets.CIFAR10``/``CIFAR100``, so there is one source of truth); Amazon Review Full is
Xiang Zhang's release with the md5 torchtext publishes (seeds.md §4.4). A mirror can stand
in for the official host: either a URL base (``http://``, ``https://``, ``file://``) or a local
directory holding the archive under its official file name. Whatever the source, the bytes must
match the official md5.

Both steps are atomic: ``fetch_archive`` streams into a temporary file beside the destination and
renames it into place only once the md5 matches, and ``extract_archive`` unpacks into a temporary
directory that replaces the destination only after extraction succeeded. A failed or killed job
therefore never leaves a file or folder that looks finished.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from torchvision.datasets import CIFAR10, CIFAR100

from compresslib.data.archive import Archive
from compresslib.io import atomic_path

__all__ = [
    "DownloadError",
    "ChecksumError",
    "Archive",
    "ARCHIVES",
    "md5_file",
    "archive_source",
    "fetch_archive",
    "extract_archive",
    "require_md5",
]

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 1 << 20
_PROGRESS_EVERY_BYTES = 32 << 20  # a progress line per 32 MiB: ~5 lines for CIFAR, enough to see a stalled transfer
_URL_SCHEMES = ("http://", "https://", "file://")


class DownloadError(OSError):
    """Fetching or unpacking an archive failed (an I/O failure); the message names the URL or path and the reason."""


class ChecksumError(DownloadError):
    """A file's md5 differs from the expected one; the message names the file and both digests."""



ARCHIVES: dict[str, Archive] = {
    name: Archive(filename=dataset.filename, url=dataset.url, md5=dataset.tgz_md5)
    for name, dataset in (("cifar10", CIFAR10), ("cifar100", CIFAR100))
}
# Zhang's Google Drive file 0Bz8a_Dbh9QhbZVhsUnRWRDhETzA (3,000,000 train / 650,000 test rows). Drive answers
# large files with a "cannot scan for viruses" page; this direct form with confirm=t skips it without cookies.
# It cannot be tested offline here, and Drive may change or throttle it: on clusters without internet (or if
# it fails) set data.mirror to a URL base or a local directory holding amazon_review_full_csv.tar.gz.
ARCHIVES["amazon_review_full"] = Archive(
    filename="amazon_review_full_csv.tar.gz",
    url="https://drive.usercontent.google.com/download?id=0Bz8a_Dbh9QhbZVhsUnRWRDhETzA&export=download&confirm=t",
    md5="57d28bd5d930e772930baddf36641c7c",
)


def md5_file(path: str | os.PathLike) -> str:
    """Hex md5 of a file's bytes (used only to compare with published checksums, not for security)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def require_md5(path: str | os.PathLike, md5: str, expected: str | None) -> None:
    """ChecksumError naming the file and both digests when its ``md5`` is not the ``expected`` (published) one."""
    if expected is not None and md5 != expected:
        raise ChecksumError(f"{path} has md5 {md5}, expected {expected}: the archive is corrupt or not the "
                            "official one; delete it and download it again")


def archive_source(archive: Archive, mirror: str | None) -> str:
    """Where to fetch ``archive`` from: its official URL, or its file name under ``mirror``.

    ``mirror`` is a URL base (``http://``, ``https://``, ``file://``) or an existing local directory.
    """
    if mirror is None:
        return archive.url
    if mirror.lower().startswith(_URL_SCHEMES):
        return mirror.rstrip("/") + "/" + archive.filename
    if Path(mirror).is_dir():
        return str(Path(mirror) / archive.filename)
    raise DownloadError(
        f"mirror {mirror!r} is neither a URL base nor an existing local directory; give either a URL base "
        f"starting with {', '.join(_URL_SCHEMES)} (the archive is fetched from <base>/{archive.filename}) "
        f"or a local directory that holds {archive.filename}"
    )


def fetch_archive(
    archive: Archive,
    dest: Path,
    mirror: str | None = None,
    timeout: float = 60.0,
    log: logging.Logger | None = None,
) -> dict:
    """Download ``archive`` to ``dest``, verifying its md5 before the file appears under that name.

    On any failure nothing is left at ``dest`` or beside it, and ``DownloadError`` (``ChecksumError``
    for a wrong md5) says which source failed and why. A file without a published md5 (the translation
    corpora) is checked for completeness only, and its size and digests are what the provenance records.
    Returns the provenance: source, filename, md5, sha256, bytes, whether a published md5 was verified,
    and seconds.
    """
    log = log or logger
    dest = Path(dest)
    source = archive_source(archive, mirror)
    start = time.perf_counter()
    try:
        with atomic_path(dest) as tmp, _open_source(source, timeout) as (reader, expected_bytes):
            size = "size unknown" if expected_bytes is None else f"{expected_bytes} bytes"
            log.info("fetching %s from %s (%s)", archive.filename, source, size)
            with open(tmp, "wb") as out:
                md5, sha256, received = _copy_hashing(reader, out, source, log)
            # urllib returns a short body without complaint when the server closes early; compare with Content-Length.
            if expected_bytes is not None and received != expected_bytes:
                raise DownloadError(f"{source}: transfer truncated, received {received} of {expected_bytes} bytes")
            if archive.md5 is not None and md5 != archive.md5:
                raise ChecksumError(
                    f"{archive.filename} from {source} has md5 {md5}, expected {archive.md5}: this source serves a "
                    f"different or corrupted file; check the mirror/URL (or the expected md5)"
                )
    except DownloadError:
        raise
    except urllib.error.HTTPError as error:
        error.close()  # it holds the open response socket
        raise DownloadError(f"{source}: HTTP {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        raise DownloadError(f"cannot reach {source}: {error.reason}") from error
    except TimeoutError as error:
        raise DownloadError(f"{source}: no data for {timeout} s (timed out)") from error
    except FileNotFoundError as error:
        raise DownloadError(f"{source} does not exist (the mirror directory lacks {archive.filename})") from error
    except (OSError, http.client.HTTPException) as error:
        raise DownloadError(f"fetching {source} into {dest} failed: {error!r}") from error
    seconds = time.perf_counter() - start
    verified = archive.md5 is not None
    log.info("fetched %s: %d bytes in %.1f s, md5 %s %s, sha256 %s", dest, received, seconds, md5,
             "ok" if verified else "(none published: recorded)", sha256)
    return {"source": source, "filename": archive.filename, "md5": md5, "sha256": sha256, "bytes": received,
            "md5_verified": verified, "seconds": seconds}


@contextmanager
def _open_source(source: str, timeout: float) -> Iterator[tuple[BinaryIO, int | None]]:
    """Open a URL or a local path for reading; yield the stream and its announced size (None if unknown)."""
    if source.lower().startswith(_URL_SCHEMES):
        with urllib.request.urlopen(source, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            yield response, int(length) if length is not None else None
    else:
        with open(source, "rb") as handle:
            yield handle, os.fstat(handle.fileno()).st_size


def _copy_hashing(reader: BinaryIO, out: BinaryIO, source: str, log: logging.Logger) -> tuple[str, str, int]:
    """Copy ``reader`` to ``out`` in chunks; return the md5, the sha256 and the byte count, logging progress."""
    digest, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    received = 0
    next_report = _PROGRESS_EVERY_BYTES
    for chunk in iter(lambda: reader.read(_CHUNK_BYTES), b""):
        digest.update(chunk)
        sha256.update(chunk)
        out.write(chunk)
        received += len(chunk)
        if received >= next_report:
            log.info("%s: %d MiB received", source, received >> 20)
            next_report += _PROGRESS_EVERY_BYTES
    return digest.hexdigest(), sha256.hexdigest(), received


def extract_archive(archive_path: Path, dest_dir: Path) -> Path:
    """Unpack a tar archive into ``dest_dir`` atomically and return ``dest_dir``.

    Members with absolute paths or ``..`` are refused, and tarfile's ``"data"`` filter blocks links
    out of the tree and special files. The archive is unpacked into a temporary directory beside
    ``dest_dir``, which replaces any existing ``dest_dir`` only once extraction succeeded. A corrupt,
    truncated or unsafe archive raises ``DownloadError`` naming the file.
    """
    archive_path, dest_dir = Path(archive_path), Path(dest_dir)
    if not archive_path.is_file():
        raise FileNotFoundError(f"archive {archive_path} does not exist")
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    # mkdir (not mkdtemp, which makes it 0700) so the result gets the permissions of any new directory.
    staging = dest_dir.parent / f".{dest_dir.name}.{uuid.uuid4().hex}.tmp"
    staging.mkdir()
    try:
        try:
            with tarfile.open(archive_path, "r:*") as tar:
                members = tar.getmembers()  # reads the whole archive, so truncation fails here, before any write
                for member in members:
                    if _escapes_root(member.name):
                        raise DownloadError(
                            f"refusing to extract {archive_path}: member {member.name!r} has an absolute path or '..'"
                        )
                tar.extractall(staging, members=members, filter="data")
        except DownloadError:
            raise
        except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
            raise DownloadError(f"cannot extract {archive_path} into {dest_dir}: {error!r}") from error
        _replace_dir(staging, dest_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest_dir


def _escapes_root(name: str) -> bool:
    path = PurePosixPath(name)  # tar member names always use "/"
    return path.is_absolute() or ".." in path.parts


def _replace_dir(new: Path, dest: Path) -> None:
    """Move directory ``new`` onto ``dest``; an existing ``dest`` is set aside first and deleted afterwards.

    ``os.replace`` cannot overwrite a non-empty directory, so the old tree is renamed out of the way;
    ``dest`` is briefly absent but never partial.
    """
    if not dest.exists():
        os.replace(new, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
    os.replace(dest, old / dest.name)
    try:
        os.replace(new, dest)
    except BaseException:
        os.replace(old / dest.name, dest)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
