"""CIFAR ResNets (depth 6n + 2) as used by LIT.

Paper: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016 (§4.2, the CIFAR-10
networks); used as teachers and students by Koratana, Kang, Bailis, Zaharia, "LIT: Learned Intermediate
Representation Training for Model Compression", ICML 2019. The variant follows akamaster/pytorch_resnet_cifar10
(``resnet.py``), which LIT's ``cifar10/resnet.py`` (stanford-futuredata/lit-code) follows; re-implemented.

Three stages of n BasicBlocks, widths 16 / 32 / 64, stride 2 at the start of stages 2 and 3. BasicBlock:
conv3x3 -> BN -> act -> conv3x3 -> BN, plus the shortcut, then act; convs have no bias. The shortcut is the
paper's parameter-free "option A": where the shape changes it subsamples spatially by the stride and zero-pads
the new channels (planes // 4 on each side). Stem: conv3x3 (3 -> 16, no bias) -> BN -> act; head: global
average pool -> Linear(64, classes). ``init="akamaster"`` (the default): conv and Linear weights
Kaiming-normal with fan-in, as akamaster; ``init="lit"``: conv weights Kaiming-normal with fan-out and the
Linear at PyTorch's default, as LIT's copy. BN weight 1, bias 0 either way; the architecture and parameter
counts are the same.

Section API (shared with the VDCNN family, used by LIT): ``stem`` maps the input to h0, ``sections[i]`` maps
h_i to h_{i+1} (the three stages, LIT's layer1..layer3), ``head`` maps h_S to logits, and
``section_outputs(x)`` returns [h0, ..., h_S]. Models of one family differ only in blocks per stage, so a
student's section i takes a teacher's h_i and gives a tensor of the teacher's h_{i+1} shape, and stems and
heads have the same state_dict shapes.

Parameter counts (10 classes, ReLU): resnet20 269,722 (0.27 M); resnet32 464,154 (0.46 M); resnet44 658,586
(0.66 M); resnet56 853,018 (0.85 M); resnet110 1,727,962 (1.73 M); n + 1 (a block more in each stage) adds 97,216.
(1,730,714, sometimes quoted for ResNet-110, is the option-B count: its two 1x1-conv + BN projections add
2,752.) ``resnet8`` (75,290) and ``resnet14`` (172,506) are demo-scale members for CPU smoke runs; they
reproduce nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compresslib.activations import create_activation
from compresslib.models.registry import register_model
from compresslib.models.sections import SectionedNet

__all__ = ["CifarResNet", "BasicBlock", "ShortcutA", "ClassifierHead"]

STAGE_WIDTHS = (16, 32, 64)
INITS = ("akamaster", "lit")  # weight initialisations: akamaster's (fan-in, Linear too) or LIT's copy (fan-out)


class ShortcutA(nn.Module):
    """Parameter-free projection: spatial subsampling by ``stride`` and zero channels on both sides."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        if planes < in_planes:
            raise ValueError(f"option-A shortcut can only widen, got {in_planes} -> {planes} channels")
        self.stride = stride
        extra = planes - in_planes
        self.pad = (extra // 2, extra - extra // 2)  # planes // 4 each side when the width doubles

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, *self.pad))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad={self.pad}"


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, activation: Any) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = create_activation(activation, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = ShortcutA(in_planes, planes, stride)
        self.act2 = create_activation(activation, planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))  # not in place: the input may be a teacher's kept feature


class ClassifierHead(nn.Module):
    """Global average pool -> Linear."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)  # the 8x8 map of a 32x32 input -> global average
        return x if pre_logits else self.fc(x)


class CifarResNet(SectionedNet):
    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        activation: Any = "relu",
        in_chans: int = 3,
        init: str = "akamaster",
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"CIFAR resnet depth must be 6n + 2 with n >= 1, got {depth}")
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        blocks_per_stage = (depth - 2) // 6
        in_planes = STAGE_WIDTHS[0]
        self.stem = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(in_chans, in_planes, 3, padding=1, bias=False),
            bn=nn.BatchNorm2d(in_planes),
            act=create_activation(activation, in_planes),
        ))
        sections = []
        for width, stride in zip(STAGE_WIDTHS, (1, 2, 2)):
            blocks = []
            for block_stride in [stride] + [1] * (blocks_per_stage - 1):
                blocks.append(BasicBlock(in_planes, width, block_stride, activation))
                in_planes = width
            sections.append(nn.Sequential(*blocks))
        self.sections = nn.ModuleList(sections)
        self.head = ClassifierHead(in_planes, num_classes)
        self.num_classes = num_classes
        self.blocks_per_stage = blocks_per_stage
        self._initialize_weights(init)

    def _initialize_weights(self, init: str) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in" if init == "akamaster" else "fan_out")
            elif isinstance(module, nn.Linear) and init == "akamaster":
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)


@register_model
def resnet8(**kwargs: Any) -> CifarResNet:
    """Demo-scale CIFAR ResNet, 1 block per stage (CPU smoke runs only)."""
    return CifarResNet(depth=8, **kwargs)


@register_model
def resnet14(**kwargs: Any) -> CifarResNet:
    """Demo-scale CIFAR ResNet, 2 blocks per stage (CPU smoke runs only)."""
    return CifarResNet(depth=14, **kwargs)


@register_model
def resnet20(**kwargs: Any) -> CifarResNet:
    """ResNet-20 (LIT's CIFAR-10 student), 0.27 M parameters at 10 classes."""
    return CifarResNet(depth=20, **kwargs)


@register_model
def resnet32(**kwargs: Any) -> CifarResNet:
    """ResNet-32, 0.46 M parameters at 10 classes."""
    return CifarResNet(depth=32, **kwargs)


@register_model
def resnet44(**kwargs: Any) -> CifarResNet:
    """ResNet-44, 0.66 M parameters at 10 classes."""
    return CifarResNet(depth=44, **kwargs)


@register_model
def resnet56(**kwargs: Any) -> CifarResNet:
    """ResNet-56, 0.85 M parameters at 10 classes."""
    return CifarResNet(depth=56, **kwargs)


@register_model
def resnet110(**kwargs: Any) -> CifarResNet:
    """ResNet-110 (LIT's CIFAR-10 teacher), 1.73 M parameters at 10 classes."""
    return CifarResNet(depth=110, **kwargs)
