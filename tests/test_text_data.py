"""Character-level text data: LIT's alphabet and encoding, Zhang's CSV rows, and the real Amazon sample."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from compresslib.data.text import (ALPHABET, DOCUMENT_LENGTH, PAD, UNKNOWN, VOCAB_SIZE, encode_texts,
                                   read_zhang_csv)
from conftest import shared_data

# the sample's README: the five Amazon Review Full ratings, renamed
SAMPLE_LABELS = {"Very Negative": 0, "Negative": 1, "Neutral": 2, "Positive": 3, "Very Positive": 4}


def test_alphabet_has_67_symbols_and_the_original_circumflex():
    assert len(ALPHABET) == 67 and len(set(ALPHABET)) == 67 and VOCAB_SIZE == 69
    assert "\u02c6" in ALPHABET and "^" not in ALPHABET and ALPHABET.endswith(" ")


def test_encoding_by_hand():
    encoded = encode_texts(["Ab c^\u00e9", ""], length=10)
    a, b, c, space = 2, 3, 4, 2 + ALPHABET.index(" ")
    assert encoded.dtype == np.uint8 and encoded.shape == (2, 10)
    assert encoded[0].tolist() == [a, b, space, c, UNKNOWN, UNKNOWN, PAD, PAD, PAD, PAD]
    assert (encoded[1] == PAD).all()
    assert encode_texts(["\u02c6\U0001f600{"], length=3)[0].tolist() == [2 + ALPHABET.index("\u02c6"), UNKNOWN,
                                                                        2 + ALPHABET.index("{")]
    long = encode_texts(["x" * 5000])
    assert long.shape == (1, DOCUMENT_LENGTH) and (long == 2 + ALPHABET.index("x")).all()  # cut at 1014
    assert encode_texts([]).shape == (0, DOCUMENT_LENGTH)


def test_zhang_rows_join_title_and_body_and_shift_the_rating():
    text = '"5","Great, really","Loved it ""a lot"""\n"1","Bad","Broke\non day one"\n'
    assert list(read_zhang_csv(io.StringIO(text), num_classes=5)) == [
        (4, 'Great, really Loved it "a lot"'), (0, "Bad Broke\non day one")]
    with pytest.raises(ValueError, match="row 1: rating '6' is not an integer from 1 to 5"):
        list(read_zhang_csv(io.StringIO('"6","t","b"\n'), num_classes=5))
    with pytest.raises(ValueError, match="row 2: expected 3 columns"):
        list(read_zhang_csv(io.StringIO('"1","t","b"\n"2","only title"\n'), num_classes=5))


def test_real_amazon_review_sample_encodes_into_one_compact_array():
    path = shared_data("amazon-review-full-sample", "test.csv")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    labels = np.array([SAMPLE_LABELS[row["target"]] for row in rows])
    encoded = encode_texts(row["input"] for row in rows)
    assert len(rows) == 999 and encoded.shape == (999, DOCUMENT_LENGTH) and encoded.nbytes == 999 * 1014
    assert set(labels.tolist()) == {0, 1, 2, 3, 4}
    lengths = (encoded != PAD).sum(axis=1)
    assert lengths.tolist() == [min(len(row["input"].lower()), DOCUMENT_LENGTH) for row in rows]  # padding after
    assert (encoded == UNKNOWN).sum() / lengths.sum() < 0.01  # English reviews: almost every character known
    first = rows[0]["input"].lower()[:DOCUMENT_LENGTH]
    assert encoded[0, : len(first)].tolist() == [2 + ALPHABET.index(ch) if ch in ALPHABET else UNKNOWN for ch in first]
