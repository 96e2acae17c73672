"""Differentiable quantization (DQ, seeds.md §1.4): learn where each tensor's quantization points lie.

Each quantized parameter tensor gets one sorted vector of points in the [0, 1] domain of its per-bucket
min-max scaling, shared by all of its buckets. Every element is assigned to its nearest point and stands
for ``minimum + point * (maximum - minimum)`` of its bucket. The full-precision weights never change;
only the points train, and autograd through that expression gives exactly the paper's gradient
``dL/dp_k = sum over elements j assigned to k of (maximum - minimum)_bucket(j) * dL/dw_j``. The points are
re-sorted after every optimiser step, so the nearest-point search can use the midpoints between them.

The points are attached as ``torch.nn.utils.parametrize`` parametrizations: the model keeps its layers and
computes with the quantized weights wherever it reads them, its state_dict (checkpoint) carries the points,
and :meth:`LearnedPointsQuantizer.finalize_` leaves plain quantized parameters behind for saving.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from compresslib.specs.quantization import POINT_INITS
from compresslib.quantization.uniform import QuantizedTensor, bucket_range, bucket_rows, dequantize_points

__all__ = ["MAX_CODE_BITS", "LearnedPoints", "LearnedPointsQuantizer", "allocate_points",
           "gradient_norms", "initial_points"]

MAX_CODE_BITS = 16  # a packed code is at most 16 bits wide


def initial_points(scaled: torch.Tensor, count: int, init: str) -> torch.Tensor:
    """``count`` starting points for a tensor whose scaled elements are ``scaled`` (padding excluded).

    "quantiles": evenly spaced percentiles (0..100 %) of the scaled elements, as the original; "uniform":
    ``i / (count - 1)``, the uniform quantizer's levels.
    """
    if init == "uniform":
        return torch.linspace(0, 1, count, dtype=torch.float32)
    if init != "quantiles":
        raise ValueError(f"point initialisation must be one of {', '.join(POINT_INITS)}, got {init!r}")
    values = scaled.detach().double().cpu().numpy()
    return torch.from_numpy(np.percentile(values, np.linspace(0, 100, count))).float()


class LearnedPoints(nn.Module):
    """Parametrization of one tensor: each element replaced by its nearest learned point, bucket by bucket."""

    def __init__(self, weight: torch.Tensor, count: int, bucket_size: int | None, init: str) -> None:
        super().__init__()
        if count < 2:
            raise ValueError(f"a quantized tensor needs at least 2 points, got {count}")
        self.bucket_size = bucket_size
        scaled, _, _ = self._scale(weight.detach().float())
        self.points = nn.Parameter(initial_points(scaled.flatten()[: weight.numel()], count, init).to(weight.device))

    def _scale(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        buckets = bucket_rows(weight, self.bucket_size)
        minimum, maximum, scale = bucket_range(buckets)
        return (buckets - minimum[:, None]) / scale[:, None], minimum, maximum

    def codes(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each element's nearest point (ties to the lower one), with the buckets' minima and maxima."""
        with torch.no_grad():
            scaled, minimum, maximum = self._scale(weight.detach().float())
            points = self.points.detach()
            codes = torch.bucketize(scaled, (points[1:] + points[:-1]) / 2)
        return codes, minimum, maximum

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        codes, minimum, maximum = self.codes(weight)
        values = dequantize_points(codes, self.points, minimum[:, None], maximum[:, None])
        return values.flatten()[: weight.numel()].reshape(weight.shape).to(weight.dtype)

    def quantized(self, weight: torch.Tensor) -> QuantizedTensor:
        codes, minimum, maximum = self.codes(weight)
        points = self.points.detach().float()
        return QuantizedTensor(codes, minimum, maximum, weight.shape, max(1, math.ceil(math.log2(points.numel()))),
                               self.bucket_size, points)


class LearnedPointsQuantizer:
    """Attaches :class:`LearnedPoints` to a model's named parameters and freezes everything else."""

    def __init__(self, model: nn.Module, names: list[str], counts: list[int], bucket_size: int | None,
                 init: str = "quantiles") -> None:
        if len(names) != len(counts):
            raise ValueError(f"{len(names)} parameters to quantize but {len(counts)} point counts")
        too_many = [(name, count) for name, count in zip(names, counts) if count > 2 ** MAX_CODE_BITS]
        if too_many:
            raise ValueError(f"too many points for a {MAX_CODE_BITS}-bit code: {too_many}")
        model.requires_grad_(False)  # only the points train
        self.model, self.names, self.counts, self.bucket_size = model, list(names), list(counts), bucket_size
        self.parametrizations: list[LearnedPoints] = []
        for name, count in zip(names, counts):
            module, attribute = self._owner(name)
            points = LearnedPoints(getattr(module, attribute), count, bucket_size, init)
            parametrize.register_parametrization(module, attribute, points)
            self.parametrizations.append(points)

    def _owner(self, name: str) -> tuple[nn.Module, str]:
        module_name, _, attribute = name.rpartition(".")
        return self.model.get_submodule(module_name), attribute

    def parameters(self) -> list[nn.Parameter]:
        """The point vectors: what the optimiser trains."""
        return [points.points for points in self.parametrizations]

    def quantized(self) -> contextlib.AbstractContextManager:
        """The model always computes with its points; inside this block each tensor is quantized only once."""
        return parametrize.cached()

    @torch.no_grad()
    def after_step(self) -> None:
        """Re-sort the points after an optimiser step, so nearest-point search by midpoints stays valid."""
        for points in self.parametrizations:
            points.points.copy_(points.points.sort().values)

    def _original(self, name: str) -> torch.Tensor:
        module, attribute = self._owner(name)
        return module.parametrizations[attribute].original

    def finalize_(self) -> dict[str, QuantizedTensor]:
        """Replace every parametrized tensor by its quantized value for good; return what a packed file stores."""
        quantized = {}
        for name, points in zip(self.names, self.parametrizations):
            quantized[name] = points.quantized(self._original(name))
            module, attribute = self._owner(name)
            parametrize.remove_parametrizations(module, attribute, leave_parametrized=True)
        return quantized


def gradient_norms(model: nn.Module, names: list[str], batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                   loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> list[float]:
    """Norm of each named parameter's gradient, averaged over ``batches`` (eval mode: no statistics change)."""
    parameters = dict(model.named_parameters())
    selected = [parameters[name] for name in names]
    sums = [torch.zeros_like(parameter) for parameter in selected]
    was_training, count = model.training, 0
    model.eval()
    try:
        for inputs, targets in batches:
            grads = torch.autograd.grad(loss_fn(model(inputs), targets), selected, allow_unused=True)
            for total, grad in zip(sums, grads):
                if grad is not None:
                    total += grad
            count += 1
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("gradient_norms needs at least one batch")
    return [(total / count).norm().item() for total in sums]


def allocate_points(norms: list[float], points_per_tensor: int) -> list[int]:
    """Automatic bit allocation: share a budget of ``points_per_tensor`` points per tensor by gradient norm.

    Every tensor keeps half its points; the other half of the whole budget goes out in proportion to the
    norms (rounded), and the rounding surplus or deficit is charged to the largest or the smallest count,
    as the original does. With no gradient at all, every tensor keeps its share.
    """
    if not norms:
        return []
    total, base = points_per_tensor * len(norms), points_per_tensor // 2
    norm_sum = sum(norms)
    if not norm_sum > 0:
        return [points_per_tensor] * len(norms)
    rest = total - base * len(norms)
    counts = [base + round(norm / norm_sum * rest) for norm in norms]
    excess = sum(counts) - total
    if excess > 0:
        counts[counts.index(max(counts))] -= excess
    elif excess < 0:
        counts[counts.index(min(counts))] -= excess
    return counts
