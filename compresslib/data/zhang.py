"""Encode Xiang Zhang's character-level text classification release (Amazon Review Full) in chunks.

The release is one tar.gz holding ``<folder>/train.csv`` and ``<folder>/test.csv`` (and a readme) in
the format ``compresslib.data.text.read_zhang_csv`` reads (seeds.md §4.4). Either source works:

- the archive: its CSV members are streamed straight out of the gzip stream, in one pass and without
  extracting anything, while the archive's md5 is computed on the way and compared with the expected one;
- an extracted folder ``<root>/<folder>/{train,test}.csv`` (what the archive unpacks to). Only the
  archive's md5 is published, so these files cannot be verified; their md5s are recorded instead.

Rows are read and encoded ``chunk_rows`` at a time and appended to one raw uint8 file per split in a
scratch directory; a split is then a tensor mapped from its file. So a 3,000,000-row split (3 GB) is
never held as Python strings, nor twice in memory, and saving it streams from the page cache.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import logging
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np
import torch

from compresslib.data.download import DownloadError, require_md5
from compresslib.catalog import DOCUMENT_LENGTH
from compresslib.data.text import encode_texts, read_zhang_csv

__all__ = ["ZhangRelease", "ZHANG_RELEASES", "SPLITS", "read_zhang_release"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
DEFAULT_CHUNK_ROWS = 65536  # ~65 MB of encoded rows and their strings at a time; a progress line each


@dataclass(frozen=True)
class ZhangRelease:
    folder: str  # top folder of the archive, e.g. "amazon_review_full_csv"
    classes: tuple[str, ...]  # names by label (rating - 1)


ZHANG_RELEASES: dict[str, ZhangRelease] = {
    "amazon_review_full": ZhangRelease("amazon_review_full_csv", ("1 star", "2 stars", "3 stars", "4 stars",
                                                                   "5 stars")),
}


def read_zhang_release(
    name: str,
    scratch: Path,
    *,
    archive: str | Path | None = None,
    extracted: str | Path | None = None,
    expected_md5: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    length: int = DOCUMENT_LENGTH,
    log: logging.Logger | None = None,
) -> dict:
    """Encode both splits of release ``name`` from ``archive`` or ``extracted`` (exactly one).

    Returns ``train_inputs``/``test_inputs`` (uint8 ``(N, length)``, mapped from files in ``scratch``,
    which must outlive their use), ``train_labels``/``test_labels`` (int64), ``classes``, ``files``
    (member path -> md5 of its bytes), ``rows`` (split -> count) and, from an archive, ``md5``. An archive
    whose md5 differs from ``expected_md5`` raises ``ChecksumError``; a bad row raises ``ValueError``
    naming the file and the row.
    """
    if (archive is None) == (extracted is None):
        raise ValueError(f"{name}: give exactly one of an archive or an extracted folder")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    release = ZHANG_RELEASES[name]
    log = log or logger
    members = {f"{release.folder}/{split}.csv": split for split in SPLITS}
    result: dict = {"classes": list(release.classes), "files": {}, "rows": {}}

    def encode(member: str, handle: BinaryIO, where: str) -> None:
        hashing = _HashingReader(handle)
        text = io.TextIOWrapper(io.BufferedReader(hashing), encoding="utf-8", newline="")
        split = members[member]
        inputs, labels = _encode_split(text, where, Path(scratch) / f"{split}.u8", len(release.classes), chunk_rows,
                                       length, log)
        result.update({f"{split}_inputs": inputs, f"{split}_labels": labels})
        result["files"][member] = hashing.md5.hexdigest()
        result["rows"][split] = len(labels)

    if archive is not None:
        result["md5"] = _stream_archive(Path(archive), members, encode, expected_md5)
    else:
        missing = [member for member in members if not (Path(extracted) / member).is_file()]
        if missing:  # before any encoding, which takes minutes
            raise FileNotFoundError(f"{extracted} lacks {', '.join(missing)}; {name} expects {extracted}/"
                                    f"{release.folder}/{{{','.join(SPLITS)}}}.csv (as unpacked from its archive)")
        for member in members:
            with open(Path(extracted) / member, "rb") as handle:
                encode(member, handle, str(Path(extracted) / member))
    return result


def _stream_archive(archive: Path, members: dict[str, str], encode: Callable[[str, BinaryIO, str], None],
                    expected_md5: str | None) -> str:
    """Feed each wanted CSV member of ``archive`` to ``encode`` in one pass; return the archive's md5."""
    if not archive.is_file():
        raise FileNotFoundError(f"archive {archive} does not exist")
    seen = []
    try:
        with open(archive, "rb") as raw:
            hashing = _HashingReader(raw)
            with tarfile.open(fileobj=hashing, mode="r|gz") as tar:  # "|": a stream, read front to back once
                for member in tar:
                    if member.name in members and member.isfile():
                        encode(member.name, tar.extractfile(member), f"{archive}:{member.name}")
                        seen.append(member.name)
            for _ in iter(lambda: hashing.read(1 << 20), b""):  # what follows the tar's end still counts for the md5
                pass
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise DownloadError(f"cannot read {archive}: {error!r} (corrupt or truncated archive)") from error
    missing = sorted(set(members) - set(seen))
    if missing:
        raise ValueError(f"{archive} lacks {', '.join(missing)}")
    md5 = hashing.md5.hexdigest()
    require_md5(archive, md5, expected_md5)
    return md5


def _encode_split(text: TextIO, where: str, out: Path, num_classes: int, chunk_rows: int, length: int,
                  log: logging.Logger) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode the rows of one CSV into the raw file ``out``; return the inputs mapped from it and the labels."""
    rows = read_zhang_csv(text, num_classes, source=where)
    labels = []
    count = 0
    with open(out, "wb") as handle:
        while chunk := list(itertools.islice(rows, chunk_rows)):
            handle.write(encode_texts((document for _, document in chunk), length).data)
            labels.append(np.fromiter((label for label, _ in chunk), dtype=np.int64, count=len(chunk)))
            count += len(chunk)
            log.info("%s: %d rows encoded", where, count)
    if count == 0:
        raise ValueError(f"{where} holds no rows")
    # A private mapping: the tensor reads the file through the page cache and never writes to it.
    inputs = torch.from_file(str(out), shared=False, size=count * length, dtype=torch.uint8).view(count, length)
    return inputs, torch.from_numpy(np.concatenate(labels))


class _HashingReader(io.RawIOBase):
    """Pass-through reader that keeps the md5 of every byte read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self.raw = raw
        self.md5 = hashlib.md5(usedforsecurity=False)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        data = self.raw.read(len(buffer))
        buffer[:len(data)] = data
        self.md5.update(data)
        return len(data)
