"""What a quantized model costs to store (QD, seeds.md §1.9): Huffman bits per weight, reduction factor, megabytes."""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Mapping

__all__ = ["huffman_code_lengths", "huffman_mean_bits", "size_reduction_factor", "model_size_mb"]


def huffman_code_lengths(counts: Mapping[int, int]) -> dict[int, int]:
    """Code length in bits of each symbol of an optimal prefix code for these symbol counts.

    A lone symbol still takes one bit, so that a code stream has a length.
    """
    used = {symbol: count for symbol, count in counts.items() if count > 0}
    if not used:
        raise ValueError("no symbol has a positive count")
    if len(used) == 1:
        return {next(iter(used)): 1}
    order = itertools.count()  # breaks ties between equal weights without comparing the lists
    heap = [(count, next(order), [symbol]) for symbol, count in sorted(used.items())]
    heapq.heapify(heap)
    lengths = dict.fromkeys(used, 0)
    while len(heap) > 1:
        first_count, _, first = heapq.heappop(heap)
        second_count, _, second = heapq.heappop(heap)
        for symbol in first + second:  # every symbol under the merged node moves one level deeper
            lengths[symbol] += 1
        heapq.heappush(heap, (first_count + second_count, next(order), first + second))
    return lengths


def huffman_mean_bits(counts: Mapping[int, int]) -> float:
    """Mean Huffman code length per symbol, weighted by the counts."""
    lengths = huffman_code_lengths(counts)
    total = sum(counts[symbol] for symbol in lengths)
    return sum(counts[symbol] * length for symbol, length in lengths.items()) / total


def size_reduction_factor(bits: float, bucket_size: int | None) -> float:
    """QD's factor against 32-bit floats: ``32k / (k·b + 2·32)`` per bucket of k (a min and a max), else ``32 / b``."""
    if bucket_size is None:
        return 32 / bits
    return 32 * bucket_size / (bucket_size * bits + 2 * 32)


def model_size_mb(full_precision_params: int, quantized_params: int, bits_per_weight: float,
                  buckets: int) -> float:
    """Megabytes (1e6 bytes): 4 bytes per full-precision parameter, the codes, and a min and a max per bucket."""
    if min(full_precision_params, quantized_params, buckets) < 0 or not math.isfinite(bits_per_weight):
        raise ValueError("parameter and bucket counts must be >= 0 and bits per weight finite")
    return (4 * full_precision_params + bits_per_weight * quantized_params / 8 + 8 * buckets) / 1e6
