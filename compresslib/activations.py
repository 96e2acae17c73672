"""Activation layers for the LMA reproduction, and the one place models get their activations from.

Paper: Xu, Ke, Zhang, Bian, Liu, "Light Multi-segment Activation for Model Compression", AAAI-20
(arXiv 1907.06870). Original code: github.com/LMA-NeurIPS19/LMA (later LMA-AAAI/LMA), ``activations.py``,
PyTorch 1.0. The formulas below follow that code; where it had a bug, the intended behaviour is
implemented, the original stays reachable by a constructor option where it changes numbers, and the
change is listed in docs/deviations.md ("Activations").

Families and their tags (``compresslib.activation_tags``):

========  =========================================================  =============================
tag       function                                                   parameters per layer
========  =========================================================  =============================
relu      max(x, 0)                                                  0
prelu     relu(x) - a * relu(-x), one scalar a (init 0.25)           1
swish     x * sigmoid(beta_c * x), beta per channel (init 1)         C
aplu<K>   relu(x) + sum_s a_cs * relu(-x + b_cs), S = K - 2 hinges   2 * (K - 2) * C
lma<K>    (alpha0_k + delta_slope_k) * x + offset_k, K bins          2 * K
========  =========================================================  =============================

``C`` is the channel count, dim 1 of the input: (N, C) and (N, C, H, W) inputs both work, contiguous or
channels_last. A bare ``lma``/``aplu`` means K = 8, the paper's default. LMA and APLU run on the piecewise-linear
kernels of ``compresslib.piecewise``; ``python -m compresslib.bench.activations`` times the layers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from compresslib.activation_tags import DEFAULT_NUM_BINS, check_num_bins, parse_activation
from compresslib.piecewise import batch_mean_std, hinge_sum, hinge_tables, uniform_bins

__all__ = ["ACTIVATION_TYPES", "APLU", "LMA", "PReLU", "Swish", "create_activation"]


def _channel_shape(x: torch.Tensor, num_features: int, name: str) -> tuple[int, ...]:
    """Shape that broadcasts a (C,) vector along dim 1 of ``x``: (C,) for (N, C), (C, 1, 1) for (N, C, H, W)."""
    if x.dim() < 2 or x.shape[1] != num_features:
        raise ValueError(f"{name} expects (N, {num_features}, ...) input, got shape {tuple(x.shape)}")
    return (num_features,) + (1,) * (x.dim() - 2)


def _flat_rows(x: torch.Tensor, num_features: int, name: str) -> torch.Tensor:
    """The original's layout: the contiguous NCHW tensor viewed as (-1, C), so parameter j acts on every
    element whose flat index is j modulo C (channels only for 2-D input)."""
    if x.numel() % num_features:
        raise ValueError(f"{name} with per_channel=False needs numel divisible by {num_features}, got {tuple(x.shape)}")
    return x.contiguous().view(-1, num_features)


def _memory_format(t: torch.Tensor) -> torch.memory_format:
    channels_last = t.ndim == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if channels_last else torch.contiguous_format


def _storage_order(t: torch.Tensor) -> torch.Tensor:
    """``t`` as a contiguous tensor in its storage order: NHWC for channels_last, itself otherwise."""
    if _memory_format(t) == torch.channels_last:
        return t.permute(0, 2, 3, 1)
    return t.contiguous()


def _logical_order(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Undo :func:`_storage_order` for a result computed in ``like``'s storage order."""
    return t.permute(0, 3, 1, 2) if _memory_format(like) == torch.channels_last else t


# ---------------------------------------------------------------------------------------------------------------------
# Baselines


class PReLU(nn.PReLU):
    """``relu(x) - a * relu(-x)`` with one learnable scalar ``a`` per layer, initialised to 0.25 (the original's PReLU;
    identical to ``nn.PReLU(1, init=0.25)``). The weight is cast to the input dtype so the layer runs under autocast."""

    def __init__(self, init: float = 0.25) -> None:
        super().__init__(num_parameters=1, init=init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.prelu(x, self.weight.to(x.dtype))


class Swish(nn.Module):
    """``x * sigmoid(beta * x)`` with a learnable ``beta`` per channel (shape (C,)), initialised to 1.

    per_channel=False reproduces the original, which reshaped the input to (-1, C) without moving the channel axis;
    on (N, C, H, W) maps its ``beta[j]`` then scales the elements whose flat NCHW index is j modulo C.
    """

    def __init__(self, num_features: int, per_channel: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.per_channel = per_channel
        self.beta = nn.Parameter(torch.empty(num_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.beta.to(x.dtype)
        if not self.per_channel:
            rows = _flat_rows(x, self.num_features, "Swish")
            return (rows * torch.sigmoid(beta * rows)).view(x.shape)
        beta = beta.view(_channel_shape(x, self.num_features, "Swish"))
        return x * torch.sigmoid(beta * x)

    def extra_repr(self) -> str:
        return f"{self.num_features}" + ("" if self.per_channel else ", per_channel=False")


class APLU(nn.Module):
    """Adaptive piecewise linear unit (Agostinelli et al., 2015): ``relu(x) + sum_s a_s * relu(-x + b_s)``.

    K = ``num_bins`` segments means S = K - 2 hinges. ``a`` (hinge slopes) and ``b`` (hinge positions) have shape
    (C, S), one set per channel; init ``a ~ U(-0.5, 0.5)``, ``b ~ N(0, 0.5)`` (std 0.5), as in the original.
    Per channel the sum is continuous and linear between the breakpoints {0, b_1 .. b_S}, so it runs as one segment
    index and one multiply-add per element (``compresslib.piecewise.hinge_sum``), in the input's storage order.
    per_channel=False reproduces the original's (-1, C) reshape (see ``Swish``).
    """

    def __init__(self, num_features: int, num_bins: int = DEFAULT_NUM_BINS, per_channel: bool = True) -> None:
        super().__init__()
        check_num_bins("aplu", num_bins)
        self.num_features = num_features
        self.num_bins = num_bins
        self.per_channel = per_channel
        self.a = nn.Parameter(torch.empty(num_features, num_bins - 2))
        self.b = nn.Parameter(torch.empty(num_features, num_bins - 2))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.a, -0.5, 0.5)
        nn.init.normal_(self.b, mean=0.0, std=0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.per_channel:
            _channel_shape(x, self.num_features, "APLU")
            inp = _storage_order(x)
            channel_dim = 3 if _memory_format(x) == torch.channels_last else 1  # NHWC storage: channels last
        else:
            inp, channel_dim = _flat_rows(x, self.num_features, "APLU"), 1
        slope, offset = hinge_tables(self.a, self.b, x.dtype)
        out = hinge_sum(inp, slope, offset, self.b.detach().to(x.dtype), channel_dim)
        return _logical_order(out, x) if self.per_channel else out.view(x.shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, num_bins={self.num_bins}" + ("" if self.per_channel else ", per_channel=False")


# ---------------------------------------------------------------------------------------------------------------------
# LMA


class LMA(nn.Module):
    """Light multi-segment activation: a piecewise linear function on K equal bins of the input's distribution.

    One parameter set per layer, shared by all channels and positions. With mu, sigma the input's mean and
    (unbiased) std, the band [mu - 3 sigma, mu + 3 sigma] is cut into K bins of width 6 sigma / K; an element
    falls into bin ``k = clamp(floor((x - mu + 3 sigma) / (6 sigma / K)), 0, K - 1)`` (outside the band: the end
    bins) and is mapped to ``(alpha0_k + delta_slope_k) * x + offset_k``. The base slope alpha0 is fixed:
    0 for the lower K // 2 bins, 1 for the rest, and ``delta_slope`` and ``offset`` start at 0, so a fresh LMA is
    a ReLU hinged at ``mu`` for even K (at the edge of bin K // 2, below ``mu``, for odd K). The function is not
    constrained to be continuous. Gradients reach ``delta_slope``, ``offset`` and ``x`` (through the slope);
    the bin assignment carries none.

    Training mode segments with the batch statistics (whole tensor, detached) and moves the running statistics
    ``m <- (1 - momentum) m + momentum mu``, ``s <- (1 - momentum) s + momentum sigma`` (no bias correction).
    Eval mode segments with the running statistics and changes nothing; ``update_stats_in_eval=True`` restores
    the original's leak, where eval forwards (segmented with the statistics from before the update) also moved
    them. Statistics are computed in at least float32 (so under bf16 autocast too); sigma is clamped to ``eps``.
    """

    def __init__(
        self,
        num_bins: int = DEFAULT_NUM_BINS,
        momentum: float = 0.01,  # weight of the new batch in the running statistics (original: 1 - 0.99)
        eps: float = 1e-12,  # floor on sigma, so a constant input gives finite bins
        update_stats_in_eval: bool = False,  # True: the original's bug, eval batches move the running statistics
    ) -> None:
        super().__init__()
        check_num_bins("lma", num_bins)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"LMA momentum must be in [0, 1], got {momentum}")
        self.num_bins = num_bins
        self.momentum = momentum
        self.eps = eps
        self.update_stats_in_eval = update_stats_in_eval
        self.delta_slope = nn.Parameter(torch.zeros(num_bins))
        self.offset = nn.Parameter(torch.zeros(num_bins))
        base_slope = torch.zeros(num_bins)
        base_slope[num_bins // 2 :] = 1.0
        self.register_buffer("base_slope", base_slope, persistent=False)  # alpha0, fixed, rebuilt on construction
        self.register_buffer("running_mean", torch.tensor(0.0))
        self.register_buffer("running_std", torch.tensor(1.0))

    def reset_running_stats(self) -> None:
        self.running_mean.fill_(0.0)
        self.running_std.fill_(1.0)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        nn.init.zeros_(self.delta_slope)
        nn.init.zeros_(self.offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stat_dtype = torch.promote_types(x.dtype, torch.float32)
        update_stats = self.training or self.update_stats_in_eval
        inp = _storage_order(x)  # elementwise with per-layer parameters: any element order will do
        with torch.no_grad():
            if update_stats:
                if x.numel() < 2:
                    raise ValueError(f"LMA needs more than one value to estimate a std, got shape {tuple(x.shape)}")
                batch_mean, batch_std = batch_mean_std(inp.detach().to(stat_dtype))
            if self.training:
                mean, std = batch_mean, batch_std
            else:
                mean, std = self.running_mean.to(stat_dtype), self.running_std.to(stat_dtype)
            std = std.clamp_min(self.eps)
            lower = mean - 3.0 * std
            width = 6.0 * std / self.num_bins
            if update_stats:  # `lower`/`width` are fresh tensors: in eval `mean`/`std` alias the buffers
                m = self.momentum
                self.running_mean.mul_(1.0 - m).add_(batch_mean.to(self.running_mean.dtype), alpha=m)
                self.running_std.mul_(1.0 - m).add_(batch_std.to(self.running_std.dtype), alpha=m)
        out = uniform_bins(inp, self.base_slope + self.delta_slope, self.offset, lower, width)
        return _logical_order(out, x)

    def extra_repr(self) -> str:
        extra = ", update_stats_in_eval=True" if self.update_stats_in_eval else ""
        return f"num_bins={self.num_bins}, momentum={self.momentum}{extra}"


# ---------------------------------------------------------------------------------------------------------------------
# Name -> layer

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU, PReLU, Swish, APLU, LMA)


def _accepts_num_features(factory: Callable[..., nn.Module]) -> str | None:
    """How to hand ``num_features`` to ``factory``: "keyword", "positional" or None (call it with no arguments)."""
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):  # some builtins have no signature
        return None
    if any(p.name == "num_features" and p.kind is not p.POSITIONAL_ONLY for p in params):
        return "keyword"
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if params and params[0].kind in positional and params[0].default is inspect.Parameter.empty:
        return "positional"
    return None


def create_activation(
    activation: str | type[nn.Module] | Callable[[int], nn.Module], num_features: int
) -> nn.Module:
    """Build a fresh activation layer for ``num_features`` channels (dim 1 of its input).

    ``activation`` is a tag (see ``parse_activation``), or a class or callable that passes through, as in timm's
    ``create_act_layer``: it is called with ``num_features`` if it takes a ``num_features`` argument or a required
    first positional argument, else with no arguments. ``functools.partial(LMA, num_bins=4)`` and
    ``functools.partial(Swish, per_channel=False)`` reach the constructor options this way. A module instance is
    refused, since sharing one across layers would share its parameters.
    """
    if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
        raise ValueError(f"num_features must be a positive int, got {num_features!r}")
    if isinstance(activation, nn.Module):
        raise TypeError(f"create_activation takes a tag, class or factory, not a module instance: {activation!r}")
    if isinstance(activation, str):
        family, num_bins = parse_activation(activation)
        match family:
            case "relu":
                return nn.ReLU()
            case "prelu":
                return PReLU()
            case "swish":
                return Swish(num_features)
            case "aplu":
                return APLU(num_features, num_bins)
            case _:
                return LMA(num_bins)
    if not callable(activation):
        raise TypeError(f"activation must be a tag, class or callable, got {type(activation).__name__}")
    match _accepts_num_features(activation):
        case "keyword":
            layer = activation(num_features=num_features)
        case "positional":
            layer = activation(num_features)
        case _:
            layer = activation()
    if not isinstance(layer, nn.Module):
        raise TypeError(f"activation factory {activation!r} returned {type(layer).__name__}, not an nn.Module")
    return layer
