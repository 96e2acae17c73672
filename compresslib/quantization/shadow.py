"""Quantized distillation's weights (QD, seeds.md §1.3): full-precision shadow weights, used at their quantized point.

Each step quantizes the selected parameters in place, runs forward and backward there, and restores the
full-precision values before the optimiser step, so the gradient taken at the quantized point updates the
shadow weights (the straight-through estimator). Every parameter tensor is quantized (weights, biases,
BatchNorm affine parameters) except, unless asked, those of the first and the last layer.

"First and last layer" means the first and the last convolution or linear layer in forward order
(``skip_by="layers"``). The original skipped parameter tensors 0 and -1 in registration order, which in
its conv nets is the classifier's weight and the final BatchNorm's bias and leaves the first convolution
quantized (seeds.md §1.10-c); ``skip_by="registration"`` reproduces that.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import torch
from torch import nn

from compresslib.specs.quantization import SKIP_BY, check_settings
from compresslib.quantization.uniform import QuantizedTensor, quantize

__all__ = ["ShadowQuantizer", "quantized_parameter_names", "forward_order_layers", "quantize_model_"]

_LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Linear)


def forward_order_layers(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Names of the convolution and linear layers in the order a forward pass on ``example`` calls them."""
    called: list[str] = []
    hooks = [module.register_forward_pre_hook(lambda module, args, name=name: called.append(name))
             for name, module in model.named_modules() if isinstance(module, _LAYER_TYPES)]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return list(dict.fromkeys(called))


def quantized_parameter_names(model: nn.Module, example: torch.Tensor, quantize_first_last: bool,
                              skip_by: str = "layers") -> list[str]:
    """The parameters QD quantizes, in registration order."""
    @functools.cache
    def first_and_last() -> set[str]:  # a forward pass, so only when the "layers" rule asks
        layers = forward_order_layers(model, example)
        if not layers:
            raise ValueError(f"{type(model).__name__} has no convolution or linear layer to keep in full precision")
        return {layers[0], layers[-1]}

    return select_quantized(model, quantize_first_last, skip_by,
                            lambda name: name.rpartition(".")[0] in first_and_last())


def select_quantized(model: nn.Module, quantize_first_last: bool, skip_by: str,
                     kept_layer: Callable[[str], bool]) -> list[str]:
    """The parameter names QD quantizes: all (``quantize_first_last``), all but the first and last registered
    (``skip_by="registration"``, the original's rule), or all but those ``kept_layer`` names (``"layers"``)."""
    names = [name for name, _ in model.named_parameters()]
    if quantize_first_last:
        return names
    if skip_by == "registration":
        return names[1:-1]
    if skip_by != "layers":
        raise ValueError(f"skip_by must be one of {', '.join(SKIP_BY)}, got {skip_by!r}")
    return [name for name in names if not kept_layer(name)]


class ShadowQuantizer:
    """Quantizes a fixed set of a model's parameters, temporarily (a training step) or for good (the end)."""

    def __init__(self, model: nn.Module, names: list[str], bits: int, bucket_size: int | None,
                 stochastic: bool = False) -> None:
        check_settings(bits, bucket_size)
        parameters = dict(model.named_parameters())
        self.parameters = [parameters[name] for name in names]
        self.names = list(names)
        self.bits, self.bucket_size, self.stochastic = bits, bucket_size, stochastic

    @contextlib.contextmanager
    def quantized(self) -> Iterator[None]:
        """Inside the block the parameters hold their quantized values; afterwards their full-precision ones."""
        shadows = [parameter.detach().clone() for parameter in self.parameters]
        self.quantize_()
        try:
            yield
        finally:
            with torch.no_grad():
                for parameter, shadow in zip(self.parameters, shadows):
                    parameter.copy_(shadow)

    def after_step(self) -> None:
        """Nothing to do after an optimiser step: the next step quantizes the updated shadow weights afresh."""

    @torch.no_grad()
    def quantize_(self) -> dict[str, QuantizedTensor]:
        """Replace each parameter by its quantized value; return the codes by name (what a packed file stores).

        Stochastic rounding draws from torch's global RNG.
        """
        codes = {}
        for name, parameter in zip(self.names, self.parameters):
            # no finiteness check: it would wait for the GPU on every tensor of every step
            quantized = quantize(parameter, self.bits, self.bucket_size, stochastic=self.stochastic,
                                 check_finite=False)
            parameter.copy_(quantized.dequantize().to(parameter.dtype))
            codes[name] = quantized
        return codes

    def finalize_(self) -> dict[str, QuantizedTensor]:
        """Quantize the parameters for good (the end of training); the same interface as DQ's quantizer."""
        return self.quantize_()


def quantize_model_(model: nn.Module, example: torch.Tensor, bits: int, bucket_size: int | None,
                    quantize_first_last: bool = False, skip_by: str = "layers") -> dict[str, QuantizedTensor]:
    """Post-training ("PM") quantization: round a trained model's parameters onto their grids, in place.

    Returns the codes of the quantized parameters by name, in registration order (what a packed file stores).
    """
    names = quantized_parameter_names(model, example, quantize_first_last, skip_by)
    return ShadowQuantizer(model, names, bits, bucket_size).quantize_()
