"""Quantization settings (``QuantSpec``) and their allowed values, without torch (config checks read them).

One ``QuantSpec`` serves every quantized run: QD (quantized distillation, ``method="qd"``: full-precision shadow
weights trained at their quantized point), DQ (differentiable quantization, ``"dq"``: the quantization points of
a trained model's tensors are learned, its weights stay) and post-training quantization (``"pm"``: a trained
model rounded onto its grids, no training). Which methods a run accepts is its own spec's check.
"""

from __future__ import annotations

from dataclasses import dataclass

from compresslib.settings import SpecError, require, require_choice

__all__ = ["QuantSpec", "QUANT_METHODS", "SKIP_BY", "POINT_INITS", "MIN_BITS", "MAX_BITS", "check_settings",
           "bucket_tag", "parse_bucket_tag", "BUCKET_PATTERN"]

QUANT_METHODS = ("qd", "dq", "pm")
SKIP_BY = ("layers", "registration")  # "first and last layer": in forward order, or the original's registration
POINT_INITS = ("quantiles", "uniform")  # DQ's starting points: quantiles of each scaled tensor, or uniform levels
MIN_BITS, MAX_BITS = 2, 8
NO_BUCKETS = "none"  # a path's bucket part for one bucket per tensor (bucket_size None)
BUCKET_PATTERN = rf"\d+|{NO_BUCKETS}"  # a bucket size as a path spells it (a regular expression)


@dataclass
class QuantSpec:
    """How a run's parameters are quantized (the module docstring says what each method does)."""

    method: str = "qd"  # qd | dq | pm
    bits: int = 4  # 2..8; DQ: the budget is 2**bits points per tensor on average
    bucket_size: int | None = 256  # elements per min-max bucket; null: one bucket per tensor
    stochastic: bool = False  # QD: stochastic instead of nearest rounding (off in every QD experiment)
    quantize_first_last: bool = False  # also quantize the first and last layer (QD's quantize_first_and_last_layer)
    skip_by: str = "layers"  # "layers": first/last conv or linear in forward order; "registration": the original's
    points_init: str = "quantiles"  # DQ: "quantiles" of each scaled tensor or "uniform" levels
    auto_bits: bool = True  # DQ: share the point budget between tensors by gradient norm
    gradient_batches: int = 5  # DQ auto_bits: training batches the gradient norms are averaged over (CNN: 5)

    def validate(self, methods: tuple[str, ...] = QUANT_METHODS) -> None:
        """Check the values (the run's ``quant`` settings); ``methods`` are those the run accepts."""
        require_choice("quant.method", self.method, methods)
        try:
            check_settings(self.bits, self.bucket_size)
        except ValueError as error:
            raise SpecError(f"quant.{error}") from None
        require_choice("quant.skip_by", self.skip_by, SKIP_BY)
        require_choice("quant.points_init", self.points_init, POINT_INITS)
        require(self.gradient_batches >= 1, "quant.gradient_batches", self.gradient_batches, "an integer >= 1")
        require(not (self.method != "qd" and self.stochastic), "quant.stochastic", self.stochastic,
                f"false for method {self.method} (its points are nearest-assigned)")


def check_settings(bits: int, bucket_size: int | None) -> None:
    """Raise ValueError unless ``bits`` is in [MIN_BITS, MAX_BITS] and ``bucket_size`` is None or positive."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")
    if bucket_size is not None and (isinstance(bucket_size, bool) or not isinstance(bucket_size, int)
                                    or bucket_size < 1):
        raise ValueError(f"bucket_size must be a positive integer or None (one bucket), got {bucket_size!r}")


def bucket_tag(bucket_size: int | None) -> str:
    """A bucket size as a path spells it: ``256``, or ``none`` for one bucket per tensor."""
    return NO_BUCKETS if bucket_size is None else str(bucket_size)


def parse_bucket_tag(tag: str) -> int | None:
    """Inverse of :func:`bucket_tag`."""
    return None if tag == NO_BUCKETS else int(tag)
