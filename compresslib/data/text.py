"""Character-level text classification data (LIT's VDCNN, seeds.md §4.4): the CSVs and their encoding.

Xiang Zhang's CSVs (Amazon Review Full and its siblings) have no header and the columns rating, title,
body; a document is ``title + " " + body`` and its label is the rating minus one (Amazon Review Full: 1..5
-> 0..4). A document is lower-cased and every character mapped to an index: 0 pads, 1 is an unknown
character, and the 67 alphabet symbols of LIT's reader (letters, digits, 30 punctuation marks and the
space) take 2..68, so the vocabulary has 69 entries. Documents are cut or zero-padded to 1014
characters. The alphabet's "ˆ" is U+02C6 (as in the original), so an ASCII "^" is unknown.

Encoded documents are rows of a uint8 array, so a split of millions of reviews is one compact block that
training reads from disk, never a list of Python strings.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

import numpy as np

from compresslib.catalog import DOCUMENT_LENGTH

__all__ = ["ALPHABET", "VOCAB_SIZE", "PAD", "UNKNOWN", "encode_texts", "read_zhang_csv"]

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/|_#$%\u02c6&*~`+=<>()[]{} "
PAD, UNKNOWN = 0, 1
VOCAB_SIZE = len(ALPHABET) + 2  # 69

# code point -> index for every code point up to the alphabet's largest; anything beyond is unknown
_TABLE = np.full(max(map(ord, ALPHABET)) + 1, UNKNOWN, dtype=np.uint8)
_TABLE[[ord(symbol) for symbol in ALPHABET]] = np.arange(2, VOCAB_SIZE, dtype=np.uint8)


def encode_texts(texts: Iterable[str], length: int = DOCUMENT_LENGTH) -> np.ndarray:
    """Documents as a uint8 array ``(N, length)`` of character indices (see the module docstring)."""
    rows = []
    for text in texts:
        code_points = np.frombuffer(text.lower()[:length].encode("utf-32-le"), dtype=np.uint32)
        indices = np.full(length, PAD, dtype=np.uint8)
        known = code_points < len(_TABLE)
        indices[: len(code_points)] = np.where(known, _TABLE[np.where(known, code_points, 0)], UNKNOWN)
        rows.append(indices)
    return np.stack(rows) if rows else np.zeros((0, length), dtype=np.uint8)


def read_zhang_csv(lines: Iterable[str] | io.TextIOBase, num_classes: int,
                   source: str = "") -> Iterator[tuple[int, str]]:
    """``(label, document)`` per row of a Zhang-format CSV (rating, title, body; no header).

    Errors name ``source`` (the file) when given, and the row or line.
    """
    where = f"{source}: " if source else ""
    reader = csv.reader(lines)
    try:
        for number, row in enumerate(reader, start=1):
            if len(row) != 3:
                raise ValueError(f"{where}row {number}: expected 3 columns (rating, title, body), got {len(row)}")
            rating, title, body = row
            if not rating.isdigit() or not 1 <= int(rating) <= num_classes:
                raise ValueError(f"{where}row {number}: rating {rating!r} is not an integer from 1 to {num_classes}")
            yield int(rating) - 1, f"{title} {body}"
    except csv.Error as error:
        raise ValueError(f"{where}line {reader.line_num}: {error}") from error
    except UnicodeDecodeError as error:  # decoded ahead of the rows, so only a lower bound of the line is known
        raise ValueError(f"{where}not UTF-8 text after line {reader.line_num}: {error}") from error
