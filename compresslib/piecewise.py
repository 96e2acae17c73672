"""The kernels behind LMA and APLU: ``y = slope[g, k] * x + offset[g, k]`` with hand-written gradients.

Both layers are piecewise linear. Every element ``x`` falls into one of K segments ``k``, and its group ``g`` (APLU:
its channel; LMA: one group) picks the table row. Written this way a forward pass is one segment index, two gathers
and one multiply-add per element, and the backward pass gets the parameter gradients from the per-(group, segment)
sums of ``grad`` and ``grad * x``:

* LMA (:func:`uniform_bins`): K equal bins of width ``width`` from ``lower``, ``k = clamp(floor((x - lower) / width),
  0, K - 1)``, one table for all elements.
* APLU (:func:`hinge_sum`): ``relu(x) + sum_s a_s relu(b_s - x)`` per channel is continuous and linear between its
  breakpoints ``{0, b_1 .. b_S}``, so K = S + 2 segments; ``k`` counts the breakpoints at or below ``x`` (0 counts
  only when ``x > 0``, matching ``relu'(0) = 0``; ``b_s`` when ``x >= b_s``, matching ``relu'(b_s - b_s) = 0``).

The segment index is kept for backward in one byte per element. A float32 tensor on the CPU goes to the C kernels
of :mod:`compresslib.piecewise_cpu` (one pass forward, one pass backward) where they are built. Elsewhere the
torch operations below run, and the per-slot sums use ``torch.bincount``: on CUDA
a per-block shared-memory histogram, without global contended atomics (bincount does read its largest index back
to the host); under ``torch.compile`` a one-hot reduction that inductor fuses without materialising it. On one CPU
thread the elements go through in chunks of about ``CHUNK_ELEMENTS``, so that each chunk's temporaries stay in
cache between the passes; elsewhere in one piece.

Inputs are tensors contiguous in their storage order (the callers permute channels_last maps to NHWC); a NaN
input gives a NaN output (its index is clamped into the table like any other), never an out-of-range index.
"""

from __future__ import annotations

import torch

from compresslib import piecewise_cpu

__all__ = ["CHUNK_ELEMENTS", "batch_mean_std", "hinge_tables", "hinge_sum", "uniform_bins"]

CHUNK_ELEMENTS = 1 << 19  # one CPU thread: 2 MiB of float32 per temporary, so that a chunk's passes run in cache
_LANES = 16  # CPU bincount: copies of each slot, filled round-robin (see _slot_sums)
_STATS_ROW = 1024  # CPU statistics: float32 sums over rows this long, combined in float64


def batch_mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased standard deviation of all of ``x`` (at least two elements), in ``x``'s dtype.

    On CUDA and under ``torch.compile``: ``torch.var_mean``, one Welford pass. In eager mode on the CPU that is a
    slow serial loop, so there each row of 1024 elements gets a float32 sum and norm (vectorised, accurate over a
    short row) and the rows are combined in float64: two fast reads of ``x``. The one-pass formula
    ``sum(x^2) - n mean^2`` cancels digits when ``|mean|`` dwarfs the spread; past ``|mean| > 10 std`` the
    statistics are recomputed with two passes.
    """
    if x.device.type != "cpu" or torch.compiler.is_compiling():
        var, mean = torch.var_mean(x, correction=1)
        return mean, var.sqrt()
    flat = x.reshape(-1)
    n = flat.numel()
    split = n - n % _STATS_ROW
    rows, tail = flat[:split].view(-1, _STATS_ROW), flat[split:].double()
    total = rows.sum(1).double().sum() + tail.sum()
    squares = torch.linalg.vector_norm(rows, dim=1).double().square().sum() + tail.square().sum()
    spread = squares - total * total / n  # (n - 1) * variance
    if spread > 1e-2 * squares:  # False for NaN too: then the two passes give the NaN
        return (total / n).to(x.dtype), (spread / (n - 1)).sqrt().to(x.dtype)
    mean = x.mean()
    return mean, ((x - mean).square().sum() / (n - 1)).sqrt()


def uniform_bins(
    x: torch.Tensor, slope: torch.Tensor, offset: torch.Tensor, lower: torch.Tensor, width: torch.Tensor
) -> torch.Tensor:
    """``slope[k] * x + offset[k]`` with ``k = clamp(floor((x - lower) / width), 0, K - 1)``, K = ``slope.numel()``.

    ``lower`` and ``width`` (0-d, at least float32) carry no gradient; a bf16 ``x`` is binned in their dtype.
    """
    return _UniformBins.apply(x, slope, offset, lower, width)


def hinge_tables(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel slope and offset tables, each (C, S + 2), of ``relu(x) + sum_s a_s relu(b_s - x)``.

    Segment ``k`` holds the ``x`` with exactly ``k`` breakpoints counted (see the module docstring), so with the
    breakpoints ranked from left to right (``b`` as the layer's input dtype ``dtype`` rounds it, the kink at 0 after
    any ``b_s`` equal to 0) the hinges still active in segment ``k`` are those of rank >= ``k``, and relu is active
    once its kink's rank is below ``k``. Differentiable in ``a`` and ``b``; the ranks carry no gradient.
    """
    channels, hinges = a.shape
    with torch.no_grad():
        kink = torch.zeros(channels, 1, dtype=dtype, device=b.device)
        points = torch.cat([b.to(dtype), kink], dim=1)  # the kink last: a stable sort ranks it after b_s == 0
        rank = points.argsort(dim=1, stable=True).argsort(dim=1)
        segment = torch.arange(hinges + 2, device=b.device)
        active = rank.unsqueeze(-1) >= segment  # (C, S + 1, K): breakpoint j lies right of segment k
    hinge_active = active[:, :hinges].to(a.dtype)  # products and sums, not einsum: autocast would make it bf16
    slope = (~active[:, hinges]).to(a.dtype) - (a.unsqueeze(-1) * hinge_active).sum(1)
    offset = ((a * b).unsqueeze(-1) * hinge_active).sum(1)
    return slope, offset


def hinge_sum(
    x: torch.Tensor, slope: torch.Tensor, offset: torch.Tensor, b: torch.Tensor, channel_dim: int
) -> torch.Tensor:
    """APLU on ``x`` with its channels along ``channel_dim`` (not 0), given :func:`hinge_tables`' (C, K) tables and
    the hinge positions ``b`` (C, S) in ``x``'s dtype (no gradient flows into ``b`` here: it reaches ``b`` through
    the tables)."""
    return _Hinges.apply(x, slope, offset, b, channel_dim)


# ---------------------------------------------------------------------------------------------------------------------
# The autograd functions. Each chunk is a slice along dim 0; the group axis (APLU's channels) is never dim 0, so a
# (1, C, 1, ...) group view broadcasts against every chunk.


def _chunks(x: torch.Tensor) -> list:
    """Slices of ``x`` to process one after the other: chunks on one CPU thread, else the whole tensor (several
    threads split each pass already, and a chunk loop would multiply their synchronisations)."""
    if torch.compiler.is_compiling() or x.device.type != "cpu" or torch.get_num_threads() > 1 or x.dim() == 0:
        return [...]
    per_row = max(1, x[0].numel())
    rows = max(1, CHUNK_ELEMENTS // per_row)
    return [slice(start, start + rows) for start in range(0, x.shape[0], rows)]


def _group_base(x: torch.Tensor, num_groups: int, num_segments: int, channel_dim: int | None) -> torch.Tensor | None:
    """Offset of each group's row in the flattened (G * K) table, shaped to broadcast along ``channel_dim``."""
    if channel_dim is None:
        return None
    shape = [1] * x.dim()
    shape[channel_dim] = num_groups
    return (torch.arange(num_groups, dtype=torch.int32, device=x.device) * num_segments).view(shape)


def _table_index(segment: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
    index = segment.to(torch.int32)
    return index if base is None else index.add_(base)


def _gather(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return table.index_select(0, index.reshape(-1)).view(index.shape)


def _forward(ctx, x: torch.Tensor, slope: torch.Tensor, offset: torch.Tensor, segment_of, channel_dim: int | None,
             native):
    """Shared forward: ``segment_of(chunk)`` gives a chunk's int32 segment index; ``native()`` gives the output and
    uint8 segment indices from the CPU kernels, used where they take the call."""
    num_groups, num_segments = slope.shape
    keep = any(ctx.needs_input_grad)
    if piecewise_cpu.usable(x, num_segments):
        out, segments = native()
    else:
        base = _group_base(x, num_groups, num_segments, channel_dim)
        slope_x, offset_x = slope.reshape(-1).to(x.dtype), offset.reshape(-1).to(x.dtype)
        out = torch.empty_like(x)
        segments = torch.empty(x.shape, dtype=torch.uint8, device=x.device) if keep else None
        for rows in _chunks(x):
            chunk = x[rows]
            segment = segment_of(chunk)
            if keep:
                segments[rows] = segment
            index = segment if base is None else segment.add_(base)
            torch.addcmul(_gather(offset_x, index), _gather(slope_x, index), chunk, out=out[rows])
    if keep:
        ctx.save_for_backward(x, segments, slope)
        ctx.channel_dim = channel_dim
    return out


def _backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Gradients for (x, slope, offset). The parameter sums accumulate in at least float32 (bf16 autocast)."""
    x, segments, slope = ctx.saved_tensors
    num_groups, num_segments = slope.shape
    need_x, need_slope, need_offset = ctx.needs_input_grad[:3]
    if piecewise_cpu.usable(x, num_segments):
        grad_x, sums = piecewise_cpu.backward(grad, x, segments, slope, ctx.channel_dim, need_x,
                                              need_slope or need_offset)
        return grad_x, *_parameter_grads(sums, slope, need_slope, need_offset)
    base = _group_base(x, num_groups, num_segments, ctx.channel_dim)
    slope_x = slope.reshape(-1).to(x.dtype)
    grad = grad.to(x.dtype)
    sum_dtype = torch.promote_types(x.dtype, torch.float32)
    grad_x = torch.empty_like(x) if need_x else None
    sums = torch.zeros(2, slope.numel(), dtype=sum_dtype, device=x.device)  # of grad * x, of grad
    for rows in _chunks(x):
        segment, g = segments[rows], grad[rows]
        index = _table_index(segment, base)
        if need_x:
            torch.mul(g, _gather(slope_x, index), out=grad_x[rows])
        if need_slope or need_offset:
            g = g.to(sum_dtype)
            sums += _slot_sums((g * x[rows], g), index, segment, slope.shape, ctx.channel_dim)
    return grad_x, *_parameter_grads(sums, slope, need_slope, need_offset)


def _parameter_grads(sums: torch.Tensor | None, slope: torch.Tensor, need_slope: bool,
                     need_offset: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The slope and offset gradients from the (2, G * K) sums of ``grad * x`` and of ``grad``."""
    grad_slope = sums[0].view(slope.shape).to(slope.dtype) if need_slope else None
    grad_offset = sums[1].view(slope.shape).to(slope.dtype) if need_offset else None
    return grad_slope, grad_offset


def _slot_sums(weights: tuple[torch.Tensor, ...], index: torch.Tensor, segment: torch.Tensor,
               table_shape: torch.Size, channel_dim: int | None) -> torch.Tensor:
    """Sums of each of ``weights`` per table slot, (len(weights), G * K), by the flat ``index`` (overwritten).

    When compiling: per (group, ``segment``), as a one-hot reduction over every dim but ``channel_dim``, since
    bincount's output size depends on the data. The CPU's bincount adds serially, and neighbouring elements often
    share a slot, so that each add waits for the one before: there element i goes to copy ``i % _LANES`` of its slot,
    and consecutive adds are independent.
    """
    num_groups, num_segments = table_shape
    if torch.compiler.is_compiling():
        one_hot = segment.unsqueeze(-1) == torch.arange(num_segments, device=segment.device)
        dims = [d for d in range(segment.dim()) if d != channel_dim]
        return torch.stack([(one_hot * w.unsqueeze(-1)).sum(dims).reshape(-1) for w in weights])
    num_slots, lanes, slots = num_groups * num_segments, 1, index.view(-1)
    if index.device.type == "cpu":
        lanes, whole = _LANES, slots.numel() - slots.numel() % _LANES
        slots[:whole].view(-1, lanes).add_(index.new_tensor(range(0, lanes * num_slots, num_slots)))
    return torch.stack([torch.bincount(slots, weights=w.reshape(-1), minlength=lanes * num_slots)
                        .view(lanes, num_slots).sum(0) for w in weights])


class _UniformBins(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, slope, offset, lower, width):
        last = slope.numel() - 1

        def bins(chunk: torch.Tensor) -> torch.Tensor:
            # NaN -> bin 0 and +-inf -> the end bins: every index lands in the table (the output stays NaN)
            scaled = torch.sub(chunk.to(lower.dtype), lower).div_(width)
            return scaled.nan_to_num_(0.0).clamp_(0, last).to(torch.int32)

        def native() -> tuple[torch.Tensor, torch.Tensor]:
            return piecewise_cpu.lma_forward(x, slope.view(1, -1), offset.view(1, -1), lower.item(), width.item())

        return _forward(ctx, x, slope.view(1, -1), offset.view(1, -1), bins, None, native)

    @staticmethod
    def backward(ctx, grad):
        grad_x, grad_slope, grad_offset = _backward(ctx, grad)
        flat = (g.view(-1) if g is not None else None for g in (grad_slope, grad_offset))
        return grad_x, *flat, None, None


class _Hinges(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, slope, offset, b, channel_dim):
        shape = [1] * x.dim()
        shape[channel_dim] = b.shape[0]
        hinge_at = b.t().reshape(-1, *shape)  # (S, 1, .., C, .., 1)

        def count(chunk: torch.Tensor) -> torch.Tensor:
            counted = torch.gt(chunk, 0, out=torch.empty_like(chunk))
            passed = torch.empty_like(chunk)
            for position in hinge_at:
                counted.add_(torch.ge(chunk, position, out=passed))
            return counted.to(torch.int32)

        def native() -> tuple[torch.Tensor, torch.Tensor]:
            return piecewise_cpu.hinge_forward(x, slope, offset, b, channel_dim)

        return _forward(ctx, x, slope, offset, count, channel_dim, native)

    @staticmethod
    def backward(ctx, grad):
        return *_backward(ctx, grad), None, None
