"""Bucketed uniform quantization, the quantizer of Polino et al. (QD, seeds.md §1.2).

A tensor is flattened and cut into buckets of ``bucket_size`` consecutive elements (the whole tensor when
``None``); the last bucket is padded with copies of the last element, which leaves its minimum and
maximum unchanged. Each bucket is mapped linearly onto ``2**bits`` evenly spaced levels between its
minimum and maximum, and every element is rounded to a level: to the nearest one (deterministic), or to
one of the two around it with probabilities that make the result unbiased (stochastic).

A quantized tensor is kept as what a packed file stores: integer codes plus each bucket's minimum and
maximum. Level j is rebuilt as ``minimum + j * step`` with ``step = (maximum - minimum) / (levels - 1)``,
and the top level as the stored maximum itself, so a bucket's extremes survive quantization bit for bit
and quantizing a quantized tensor again reproduces it exactly. As in the original, a bucket narrower
than 1e-10 collapses onto its minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from compresslib.specs.quantization import check_settings

__all__ = ["QuantizedTensor", "quantize", "fake_quantize", "dequantize_points", "bucket_rows", "bucket_range"]

_DEGENERATE_RANGE = 1e-10  # the original's threshold below which a bucket's range counts as zero
_ON_LEVEL = 1e-4  # in steps: how close to a level a value must be to count as on it (stochastic rounding)


@dataclass(frozen=True)
class QuantizedTensor:
    """Integer codes (one row per bucket) with each bucket's minimum and maximum.

    Uniform levels (``points is None``): ``2**bits`` evenly spaced levels per bucket. Learned levels
    (differentiable quantization): code j stands for ``minimum + points[j] * (maximum - minimum)``, one
    sorted point vector shared by every bucket of the tensor; ``bits`` is then the code width.
    """

    codes: torch.Tensor
    minimum: torch.Tensor
    maximum: torch.Tensor
    shape: torch.Size
    bits: int
    bucket_size: int | None
    points: torch.Tensor | None = None

    @property
    def levels(self) -> int:
        return 2 ** self.bits if self.points is None else self.points.numel()

    def dequantize(self) -> torch.Tensor:
        """The float tensor the codes stand for, in the original shape (float32)."""
        minimum, maximum = self.minimum[:, None], self.maximum[:, None]
        if self.points is not None:
            values = dequantize_points(self.codes, self.points, minimum, maximum)
        else:
            top = self.levels - 1
            values = torch.where(self.codes == top, maximum, minimum + self.codes.float() * ((maximum - minimum) / top))
        return values.flatten()[: self.shape.numel()].reshape(self.shape)


def dequantize_points(codes: torch.Tensor, points: torch.Tensor, minimum: torch.Tensor,
                      maximum: torch.Tensor) -> torch.Tensor:
    """``minimum + points[codes] * (maximum - minimum)`` per bucket row: differentiable in ``points``.

    Differentiable quantization trains through this very expression and the packed file rebuilds weights
    with it, so the two agree bit for bit.
    """
    return minimum + points[codes.long()] * (maximum - minimum)


def bucket_rows(tensor: torch.Tensor, bucket_size: int | None) -> torch.Tensor:
    """The flattened tensor as one row per bucket, the last padded with copies of the last element."""
    flat = tensor.flatten()
    width = flat.numel() if bucket_size is None else bucket_size
    padding = -flat.numel() % width
    return torch.cat([flat, flat[-1:].expand(padding)]).reshape(-1, width)


def bucket_range(buckets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per bucket row: minimum, maximum (the minimum for a degenerate bucket), and the scale to divide by."""
    minimum, maximum = buckets.min(dim=1).values, buckets.max(dim=1).values
    degenerate = maximum - minimum < _DEGENERATE_RANGE
    maximum = torch.where(degenerate, minimum, maximum)
    return minimum, maximum, torch.where(degenerate, 1.0, maximum - minimum)


def quantize(tensor: torch.Tensor, bits: int, bucket_size: int | None = None, *, stochastic: bool = False,
             generator: torch.Generator | None = None, check_finite: bool = True) -> QuantizedTensor:
    """Quantize ``tensor`` to ``bits`` bits per element, per bucket of ``bucket_size`` (None: one bucket).

    ``check_finite=False`` skips the NaN/inf check, which waits for the device; training uses it every
    step and learns of non-finite weights from its loss instead.
    """
    check_settings(bits, bucket_size)
    if not tensor.is_floating_point() or tensor.numel() == 0:
        raise ValueError(f"can only quantize a non-empty floating-point tensor, got {tensor.dtype} "
                         f"{tuple(tensor.shape)}")
    if check_finite and not torch.isfinite(tensor).all():
        raise ValueError("cannot quantize a tensor holding NaN or infinite values")
    buckets = bucket_rows(tensor.detach().float(), bucket_size)
    minimum, maximum, scale = bucket_range(buckets)
    top = 2 ** bits - 1
    scaled = (buckets - minimum[:, None]) / scale[:, None] * top
    if stochastic:
        # a value already on a level (up to float error) stays there, so quantizing is idempotent
        on_level = (scaled - scaled.round()).abs() < _ON_LEVEL
        scaled = torch.where(on_level, scaled.round(), scaled)
        lower = scaled.floor()
        noise = torch.rand(scaled.shape, generator=generator, device=scaled.device)
        codes = lower + (noise < scaled - lower)
    else:
        codes = scaled.round()
    codes = torch.where((maximum == minimum)[:, None], 0.0, codes).clamp_(0, top).to(torch.uint8)
    return QuantizedTensor(codes, minimum, maximum, tensor.shape, bits, bucket_size)


def fake_quantize(tensor: torch.Tensor, bits: int, bucket_size: int | None = None, *, stochastic: bool = False,
                  generator: torch.Generator | None = None, check_finite: bool = True) -> torch.Tensor:
    """``tensor`` rounded onto its quantization levels, as a float tensor of the same shape and dtype."""
    quantized = quantize(tensor, bits, bucket_size, stochastic=stochastic, generator=generator,
                         check_finite=check_finite)
    return quantized.dequantize().to(tensor.dtype)
