"""Size accounting: Huffman code lengths and mean bits, QD's reduction factor, model megabytes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compresslib.quantization.size import (huffman_code_lengths, huffman_mean_bits, model_size_mb,
                                           size_reduction_factor)


def test_huffman_lengths_of_a_textbook_example():
    # frequencies 45, 13, 12, 16, 9, 5 (CLRS): code lengths 1, 3, 3, 3, 4, 4 -> 224 bits for 100 symbols
    counts = {0: 45, 1: 13, 2: 12, 3: 16, 4: 9, 5: 5}
    assert huffman_code_lengths(counts) == {0: 1, 1: 3, 2: 3, 3: 3, 4: 4, 5: 4}
    assert huffman_mean_bits(counts) == pytest.approx(2.24)


def test_uniform_use_of_all_levels_costs_the_bit_width():
    assert huffman_mean_bits({level: 10 for level in range(16)}) == 4
    assert huffman_mean_bits({3: 7}) == 1  # one symbol still takes a bit
    assert huffman_code_lengths({0: 5, 1: 0}) == {0: 1}


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.integers(0, 255), st.integers(1, 10_000), min_size=2, max_size=64))
def test_huffman_is_a_complete_prefix_code_within_one_bit_of_the_entropy(counts):
    lengths = huffman_code_lengths(counts)
    assert sum(2.0 ** -length for length in lengths.values()) == pytest.approx(1.0)  # Kraft equality
    total = sum(counts.values())
    entropy = -sum(c / total * math.log2(c / total) for c in counts.values())
    assert entropy - 1e-9 <= huffman_mean_bits(counts) < entropy + 1


def test_qd_reduction_factors():
    assert size_reduction_factor(4, 256) == pytest.approx(7.53, abs=0.005)  # the paper's 7.53x at 4 bits
    assert size_reduction_factor(2, 256) == pytest.approx(14.2, abs=0.05)
    assert size_reduction_factor(4, None) == 8


def test_model_size_counts_every_part():
    # 1000 full-precision parameters, 25600 at 2.5 bits, 100 buckets
    assert model_size_mb(1000, 25600, 2.5, 100) == pytest.approx((4000 + 8000 + 800) / 1e6)
    with pytest.raises(ValueError):
        model_size_mb(-1, 10, 4, 1)


def test_empty_counts_are_refused():
    with pytest.raises(ValueError, match="positive count"):
        huffman_code_lengths({0: 0})
