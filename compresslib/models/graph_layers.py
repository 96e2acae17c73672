"""Networks as layer graphs (ESNAC): the ``Concat`` layer and ``esnac_net``, a network given as a layer list.

ESNAC's layer graph (compresslib.esnac.space) is read off a ``torch.fx`` trace of the teacher: every
``nn.Module`` call becomes a layer, and a ``+`` becomes summed inputs of the next layer. Channel
concatenation therefore needs a module of its own; flattening and channel shuffling use ``nn.Flatten``
and ``nn.ChannelShuffle``. A compressed network is an :class:`ArchNet`: a list of :class:`Layer` settings and
each layer's sources. It is registered as ``esnac_net`` with the architecture as its keyword arguments, so a
model file rebuilds it like any other model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from compresslib.models.registry import register_model

__all__ = ["LAYER_KINDS", "Concat", "Layer", "ArchNet", "gather_inputs"]

LAYER_KINDS = ("identity", "flatten", "concat", "shuffle", "conv", "maxpool", "avgpool", "relu", "bn", "linear")


class Concat(nn.Module):
    """Concatenate a list of tensors along the channel dimension (ESNAC's ``Concat``)."""

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(inputs, dim=1)


@dataclass(frozen=True)
class Layer:
    """One layer: its kind and the settings that rebuild it. Channels are of the (summed) input and output."""

    kind: str
    in_channels: int
    out_channels: int
    kernel_size: int = 0
    stride: int = 0
    padding: int = 0
    groups: int = 0  # convolution groups, or a channel shuffle's groups
    bias: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def gather_inputs(x: torch.Tensor, outputs: Any, sources: Sequence[int], kind: str) -> Any:
    """A layer's input: the network input (no sources), the list of sources (Concat) or their sum."""
    if not sources:
        return x
    if kind == "concat":
        return [outputs[j] for j in sources]
    total = outputs[sources[0]]
    for j in sources[1:]:
        total = total + outputs[j]
    return total


class ArchNet(nn.Module):
    """A network given as a layer list and each layer's sources: a layer sums its inputs (a Concat lists them)."""

    def __init__(self, layers: Sequence[dict | Layer], inputs: Sequence[Sequence[int]]) -> None:
        super().__init__()
        specs = [layer if isinstance(layer, Layer) else Layer(**layer) for layer in layers]
        if len(specs) != len(inputs) or not specs:
            raise ValueError(f"esnac_net: {len(specs)} layers but {len(inputs)} input lists")
        for i, sources in enumerate(inputs):
            if any(not 0 <= j < i for j in sources):
                raise ValueError(f"esnac_net: layer {i} reads {list(sources)}; a layer reads earlier layers only")
        self.kinds = [spec.kind for spec in specs]
        self.sources = [tuple(sources) for sources in inputs]
        self.layers = nn.ModuleList(_module(spec) for spec in specs)
        last_use = {}
        for i, sources in enumerate(self.sources):
            for j in sources:
                last_use[j] = i
        self.release = [[j for j, last in last_use.items() if last == i] for i in range(len(specs))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: dict[int, torch.Tensor] = {}
        for i, (layer, sources, kind) in enumerate(zip(self.layers, self.sources, self.kinds)):
            outputs[i] = layer(gather_inputs(x, outputs, sources, kind))
            for j in self.release[i]:  # free what no later layer reads
                del outputs[j]
        return outputs[len(self.layers) - 1]


def _module(spec: Layer) -> nn.Module:
    if spec.kind == "conv":
        return nn.Conv2d(spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride, spec.padding,
                         groups=spec.groups, bias=spec.bias)
    if spec.kind == "linear":
        return nn.Linear(spec.in_channels, spec.out_channels, bias=spec.bias)
    if spec.kind == "bn":
        return nn.BatchNorm2d(spec.out_channels)
    if spec.kind == "maxpool":
        return nn.MaxPool2d(spec.kernel_size, spec.stride, spec.padding)
    if spec.kind == "avgpool":
        return nn.AvgPool2d(spec.kernel_size, spec.stride, spec.padding)
    if spec.kind == "shuffle":
        return nn.ChannelShuffle(spec.groups)
    modules = {"relu": nn.ReLU, "identity": nn.Identity, "flatten": nn.Flatten, "concat": Concat}
    if spec.kind not in modules:
        raise ValueError(f"esnac_net: unknown layer kind {spec.kind!r}; known: {', '.join(LAYER_KINDS)}")
    return modules[spec.kind]()


@register_model
def esnac_net(layers: list, inputs: list, num_classes: int | None = None, activation: str = "relu") -> ArchNet:
    """An ESNAC-compressed network (its architecture is its arguments); ``num_classes`` is checked, not used."""
    if activation != "relu":
        raise ValueError(f"esnac_net: ESNAC's layers use ReLU only, got activation {activation!r}")
    net = ArchNet(layers, inputs)
    if num_classes is not None and net.layers[-1].out_features != num_classes:
        raise ValueError(f"esnac_net: the architecture has {net.layers[-1].out_features} outputs, the dataset "
                         f"{num_classes} classes")
    return net
