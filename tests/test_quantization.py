"""The bucketed uniform quantizer: properties over random tensors (hypothesis), stochastic rounding, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from compresslib.quantization.uniform import QuantizedTensor, fake_quantize, quantize

VALUES = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False, width=32)
BITS = st.integers(min_value=2, max_value=8)
BUCKETS = st.one_of(st.none(), st.integers(min_value=1, max_value=40))
PROPERTIES = settings(max_examples=150, deadline=None)


def _buckets(flat: torch.Tensor, bucket_size: int | None) -> torch.Tensor:
    """``flat`` cut into rows of ``bucket_size``, the last padded with copies of the last element."""
    width = flat.numel() if bucket_size is None else bucket_size
    return torch.cat([flat, flat[-1:].expand(-flat.numel() % width)]).reshape(-1, width)


@PROPERTIES
@given(values=st.lists(VALUES, min_size=1, max_size=200), bits=BITS, bucket_size=BUCKETS)
def test_each_bucket_holds_at_most_two_to_the_bits_values(values, bits, bucket_size):
    quantized = fake_quantize(torch.tensor(values), bits, bucket_size)
    for row in _buckets(quantized, bucket_size):
        assert row.unique().numel() <= 2 ** bits


@PROPERTIES
@given(values=st.lists(VALUES, min_size=1, max_size=200), bits=BITS, bucket_size=BUCKETS)
def test_error_is_at_most_half_a_step(values, bits, bucket_size):
    original = torch.tensor(values)
    error = (fake_quantize(original, bits, bucket_size) - original).abs()
    rows = _buckets(original, bucket_size)
    spread = rows.max(dim=1).values - rows.min(dim=1).values
    # a bucket narrower than 1e-10 collapses onto its minimum, as in the original
    bound = torch.where(spread < 1e-10, 1e-10, spread / (2 ** bits - 1) / 2)
    tolerance = 4 * torch.finfo(torch.float32).eps * rows.abs().max(dim=1).values  # float32 rounding
    limit = (bound + tolerance)[:, None].expand_as(rows).flatten()[: original.numel()]
    assert (error <= limit).all(), (error - limit).max()


@PROPERTIES
@given(values=st.lists(VALUES, min_size=1, max_size=200), bits=BITS, bucket_size=BUCKETS,
       stochastic=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_quantizing_twice_changes_nothing(values, bits, bucket_size, stochastic, seed):
    generator = torch.Generator().manual_seed(seed)
    once = fake_quantize(torch.tensor(values), bits, bucket_size, stochastic=stochastic, generator=generator)
    twice = fake_quantize(once, bits, bucket_size, stochastic=stochastic, generator=generator)
    assert torch.equal(once, twice)


@PROPERTIES
@given(data=st.data(), bits=BITS, bucket_size=st.integers(min_value=2, max_value=40),
       buckets=st.integers(min_value=1, max_value=5), offset=st.integers(-1000, 1000), step=st.integers(1, 1000))
def test_grid_points_are_reproduced_exactly(data, bits, bucket_size, buckets, offset, step):
    """Values on a bucket's own grid (its minimum + j * step, both ends present) come back bit for bit."""
    top = 2 ** bits - 1
    rows = []
    for _ in range(buckets):
        inner = data.draw(st.lists(st.integers(0, top), min_size=bucket_size - 2, max_size=bucket_size - 2))
        rows.append(torch.tensor(data.draw(st.permutations([0, top, *inner]))))
    grid = (torch.stack(rows) * step + offset).float().flatten()
    assert torch.equal(fake_quantize(grid, bits, bucket_size), grid)


def test_stochastic_rounding_is_unbiased_and_picks_a_neighbouring_level():
    bits, top = 2, 3
    value = 0.4  # between levels 1/3 and 2/3 of [0, 1]: rounds up with probability 0.2
    tensor = torch.cat([torch.tensor([0.0, 1.0]), torch.full((200_000,), value)])
    rounded = fake_quantize(tensor, bits, stochastic=True, generator=torch.Generator().manual_seed(0))[2:]
    torch.testing.assert_close(rounded.unique(), torch.tensor([1 / top, 2 / top]))
    fraction = value * top - math.floor(value * top)
    sigma = math.sqrt(fraction * (1 - fraction) / rounded.numel()) / top
    assert abs(rounded.double().mean().item() - value) < 5 * sigma


def test_stochastic_rounding_follows_its_generator():
    tensor = torch.randn(1000, generator=torch.Generator().manual_seed(1))
    draw = lambda seed: quantize(tensor, 3, 64, stochastic=True, generator=torch.Generator().manual_seed(seed)).codes
    assert torch.equal(draw(5), draw(5)) and not torch.equal(draw(5), draw(6))


def test_deterministic_rounding_matches_the_original_formula():
    """QD's quantizer: v' = (v - min) / (max - min), round(v' (s - 1)) / (s - 1) * (max - min) + min, per bucket."""
    tensor = torch.randn(4, 300, generator=torch.Generator().manual_seed(2))
    rows = _buckets(tensor.flatten(), 256)
    low, high = rows.min(dim=1, keepdim=True).values, rows.max(dim=1, keepdim=True).values
    reference = (torch.round((rows - low) / (high - low) * 15) / 15 * (high - low) + low).flatten()[: tensor.numel()]
    torch.testing.assert_close(fake_quantize(tensor, 4, 256), reference.reshape(tensor.shape), rtol=0, atol=1e-6)


def test_codes_and_bucket_bounds_are_what_a_packed_file_stores():
    tensor = torch.arange(10, dtype=torch.float32).reshape(2, 5)
    quantized = quantize(tensor, 2, bucket_size=4)
    assert isinstance(quantized, QuantizedTensor) and quantized.codes.dtype == torch.uint8
    assert quantized.codes.shape == (3, 4)  # 10 elements: buckets of 4, 4 and 2 padded with the last element
    assert quantized.minimum.tolist() == [0, 4, 8] and quantized.maximum.tolist() == [3, 7, 9]
    assert quantized.codes.tolist() == [[0, 1, 2, 3], [0, 1, 2, 3], [0, 3, 3, 3]]
    assert torch.equal(quantized.dequantize(), tensor)


def test_a_constant_bucket_keeps_its_value():
    tensor = torch.tensor([1.5, 1.5, 1.5, -2.0, 3.0, 0.5])
    assert torch.equal(fake_quantize(tensor, 2, 3)[:3], tensor[:3])


@pytest.mark.parametrize("arguments, message", [
    ((torch.ones(3), 1), "bits must be an integer from 2 to 8"),
    ((torch.ones(3), 9), "bits must be an integer from 2 to 8"),
    ((torch.ones(3), True), "bits must be an integer"),
    ((torch.ones(3), 4, 0), "bucket_size must be a positive integer or None"),
    ((torch.ones(3, dtype=torch.int64), 4), "non-empty floating-point tensor"),
    ((torch.ones(0), 4), "non-empty floating-point tensor"),
    ((torch.tensor([1.0, float("nan")]), 4), "NaN or infinite"),
])
def test_bad_arguments_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        quantize(*arguments)
