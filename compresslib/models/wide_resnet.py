"""Wide residual networks for CIFAR as used by quantized distillation and LMA.

Paper: Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016. The variant follows
meliketoy/wide-resnet.pytorch as vendored by antspy/quantized_distillation
(``cnn_models/wide_resnet.py``) and LMA's ``main_wrn.py`` (reference/seeds.md §1.6, §2.5); re-implemented.

Depth 6n + 4, stage widths 16 / 16k / 32k / 64k. Pre-activation blocks
BN -> act -> conv3x3 -> dropout -> BN -> act -> conv3x3 (stride on the second conv); the shortcut is a
1x1 conv (with bias) when the stride or the width changes. Stem: one 3x3 conv (16 channels); head:
BN -> act -> 8x8 average pool -> Linear. Convs have biases, initialised Xavier-uniform with gain sqrt(2)
and zero bias.

The activation is used in every block and in the head. LMA's released WRN code passed it to
neither the blocks (``_wide_layer`` dropped it) nor ran at all (``select_act`` had a stray ``self``);
see docs/deviations.md. The original's final BN used ``momentum=0.9`` (a Lua-Torch-style value that in
PyTorch makes the running statistics track the last batch); compresslib uses PyTorch's 0.1 and keeps
the original reachable with ``final_bn_momentum=0.9``.

Parameter counts (100 classes, ReLU): wide_resnet16_10 17,179,940 (17.18 M); wide_resnet10_4
1,223,300 (1.22 M); wide_resnet10_2 316,004 (0.32 M).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compresslib.activations import create_activation
from compresslib.models.registry import register_model

__all__ = ["WideResNet", "WideBasic"]


class WideBasic(nn.Module):
    def __init__(self, in_planes: int, planes: int, dropout: float, stride: int, activation: Any) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.act1 = create_activation(activation, in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, bias=True)
        self.dropout = nn.Dropout(dropout)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = create_activation(activation, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=True)
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.conv1(self.act1(self.bn1(x))))
        out = self.conv2(self.act2(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(nn.Module):
    def __init__(
        self,
        depth: int,
        widen_factor: int,
        dropout: float = 0.3,
        num_classes: int = 100,
        activation: Any = "relu",
        final_bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ValueError(f"wide resnet depth must be 6n + 4 with n >= 1, got {depth}")
        blocks_per_stage = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=True)
        in_planes = widths[0]
        stages = []
        for width, stride in zip(widths[1:], (1, 2, 2)):
            blocks = []
            for block_stride in [stride] + [1] * (blocks_per_stage - 1):
                blocks.append(WideBasic(in_planes, width, dropout, block_stride, activation))
                in_planes = width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn = nn.BatchNorm2d(in_planes, momentum=final_bn_momentum)
        self.act = create_activation(activation, in_planes)
        self.classifier = nn.Linear(in_planes, num_classes)
        self.num_classes = num_classes
        self._initialize_weights()

    def _initialize_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight, gain=math.sqrt(2))
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.act(self.bn(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)  # the 8x8 map of a 32x32 input -> global average
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model
def wide_resnet16_10(**kwargs: Any) -> WideResNet:
    """WRN-16-10 (LMA's CIFAR-100 teacher), 17.18 M parameters at 100 classes."""
    return WideResNet(depth=16, widen_factor=10, **kwargs)


@register_model
def wide_resnet10_4(**kwargs: Any) -> WideResNet:
    """WRN-10-4 (LMA's CIFAR-100 student 1), 1.22 M parameters at 100 classes."""
    return WideResNet(depth=10, widen_factor=4, **kwargs)


@register_model
def wide_resnet10_2(**kwargs: Any) -> WideResNet:
    """WRN-10-2 (LMA's CIFAR-100 student 2), 0.32 M parameters at 100 classes."""
    return WideResNet(depth=10, widen_factor=2, **kwargs)
