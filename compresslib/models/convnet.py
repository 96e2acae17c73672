"""Plain convolutional nets of quantized distillation (QD) and LMA for 32 x 32 images.

Paper: Polino, Pascanu, Alistarh, "Model compression via distillation and quantization", ICLR 2018,
whose teacher and "smaller" specs follow Urban et al., "Do deep convolutional nets really need to be
deep and convolutional?"; reused by Xu et al., "Light Multi-segment Activation for Model Compression",
AAAI 2020. Originals: antspy/quantized_distillation ``cnn_models/conv_forward_model.py`` and its LMA
fork (reference/seeds.md §1.6, §2.5). Re-implemented, not copied.

Block order is LMA's: conv -> BN -> activation -> max-pool -> dropout, and the same for hidden linear
layers (BN1d); the output layer is a plain Linear (QD's ReLU on the logits is not applied). Convs use
"same" padding; conv and linear weights use Xavier-uniform (gain 1), biases PyTorch's default.
``Dropout2d`` follows conv positions, ``Dropout`` linear positions; positions count conv layers
first, then hidden linear layers.

Parameter counts (10 classes, ReLU): qd_conv_teacher 5,346,142; qd_conv_student0 1,000,235;
qd_conv_student1 318,415; qd_conv_student2 111,935. The ``demo_*`` variants are tiny nets of the same
family for the offline demo on CPU; they reproduce nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from compresslib.activations import create_activation
from compresslib.models.registry import register_model

__all__ = ["ConvNet", "CONVNET_CFGS"]

# conv: (filters, kernel) per layer; pools: layer positions followed by a 2x2 max-pool;
# dropout: (position, rate); linear: hidden widths.
CONVNET_CFGS: dict[str, dict[str, Any]] = {
    "qd_conv_teacher": dict(
        conv=[(76, 3), (76, 3), (126, 3), (126, 3), (148, 3), (148, 3), (148, 3), (148, 3)],
        pools=[1, 3, 7], dropout=[(1, 0.2), (3, 0.3), (7, 0.35), (8, 0.4), (9, 0.4)], linear=[1200, 1200]),
    "qd_conv_student0": dict(
        conv=[(75, 5), (50, 5), (50, 5), (25, 5)], pools=[1, 3], dropout=[(1, 0.2), (3, 0.3), (4, 0.4)], linear=[500]),
    "qd_conv_student1": dict(
        conv=[(50, 5), (25, 5), (25, 5), (10, 5)], pools=[1, 3], dropout=[(1, 0.2), (3, 0.3), (4, 0.4)], linear=[400]),
    "qd_conv_student2": dict(
        conv=[(25, 5), (10, 5), (10, 5), (5, 5)], pools=[1, 3], dropout=[(1, 0.2), (3, 0.3), (4, 0.4)], linear=[300]),
    "demo_conv_teacher": dict(
        conv=[(32, 3), (32, 3), (64, 3), (64, 3)], pools=[1, 3], dropout=[(1, 0.1), (3, 0.2), (4, 0.3)], linear=[256]),
    "demo_conv_student0": dict(
        conv=[(16, 3), (16, 3), (16, 3), (16, 3)], pools=[1, 3], dropout=[(1, 0.1), (3, 0.1), (4, 0.2)], linear=[96]),
    "demo_conv_student1": dict(
        conv=[(8, 3), (8, 3), (8, 3), (8, 3)], pools=[1, 3], dropout=[(1, 0.1), (3, 0.1), (4, 0.2)], linear=[48]),
}


class ConvNet(nn.Module):
    def __init__(
        self,
        conv: Sequence[Sequence[int]],
        pools: Sequence[int],
        dropout: Sequence[Sequence[float]],
        linear: Sequence[int],
        num_classes: int = 10,
        activation: Any = "relu",
        in_chans: int = 3,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        rates = {int(position): float(rate) for position, rate in dropout}
        num_layers = len(conv) + len(linear)
        if any(not 0 <= position < num_layers for position in list(rates) + list(pools)):
            raise ValueError(f"pool/dropout positions must index one of the {num_layers} conv/linear layers")
        if any(position >= len(conv) for position in pools):
            raise ValueError("max-pools can only follow conv layers")

        features: list[nn.Module] = []
        channels = in_chans
        for index, (filters, kernel) in enumerate(conv):
            features += [nn.Conv2d(channels, filters, kernel, padding=(kernel - 1) // 2),
                         nn.BatchNorm2d(filters), create_activation(activation, filters)]
            if index in pools:
                features.append(nn.MaxPool2d(2))
            if index in rates:
                features.append(nn.Dropout2d(rates[index]))
            channels = filters
        self.features = nn.Sequential(*features)

        width = channels * (image_size // 2 ** len(pools)) ** 2
        head: list[nn.Module] = [nn.Flatten()]
        for offset, hidden in enumerate(linear):
            position = len(conv) + offset
            head += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), create_activation(activation, hidden)]
            if position in rates:
                head.append(nn.Dropout(rates[position]))
            width = hidden
        self.head = nn.Sequential(*head)
        self.classifier = nn.Linear(width, num_classes)
        self.num_classes = num_classes
        self._initialize_weights()

    def _initialize_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight, gain=1.0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head(x)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _create_convnet(variant: str, **kwargs: Any) -> ConvNet:
    return ConvNet(**{**CONVNET_CFGS[variant], **kwargs})


@register_model
def qd_conv_teacher(**kwargs: Any) -> ConvNet:
    """QD/LMA CIFAR-10 teacher, 8 convs (3x3) + 2 x 1200 linear, 5.35 M parameters."""
    return _create_convnet("qd_conv_teacher", **kwargs)


@register_model
def qd_conv_student0(**kwargs: Any) -> ConvNet:
    """QD ``smallerModelSpec0`` / LMA student 0, 1.00 M parameters."""
    return _create_convnet("qd_conv_student0", **kwargs)


@register_model
def qd_conv_student1(**kwargs: Any) -> ConvNet:
    """QD ``smallerModelSpec1`` / LMA student 1, 318 K parameters."""
    return _create_convnet("qd_conv_student1", **kwargs)


@register_model
def qd_conv_student2(**kwargs: Any) -> ConvNet:
    """QD ``smallerModelSpec2`` / LMA student 2, 112 K parameters."""
    return _create_convnet("qd_conv_student2", **kwargs)


@register_model
def demo_conv_teacher(**kwargs: Any) -> ConvNet:
    """Demo-scale teacher (CPU smoke runs only)."""
    return _create_convnet("demo_conv_teacher", **kwargs)


@register_model
def demo_conv_student0(**kwargs: Any) -> ConvNet:
    """Demo-scale student (CPU smoke runs only)."""
    return _create_convnet("demo_conv_student0", **kwargs)


@register_model
def demo_conv_student1(**kwargs: Any) -> ConvNet:
    """Smaller demo-scale student (CPU smoke runs only)."""
    return _create_convnet("demo_conv_student1", **kwargs)
