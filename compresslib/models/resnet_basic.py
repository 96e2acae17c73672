"""CIFAR ResNet-18/34 (BasicBlocks, widths 64-512), the ESNAC teachers.

Source: Cao, Wang, Kitani, "Learnable Embedding Space for Efficient Neural Architecture Compression", ICLR 2019
(ESNAC), ``models/resnet.py`` of its code; the architecture is kuangliu/pytorch-cifar's ``resnet.py`` with every
ReLU a module of its own. Re-implemented. (Not the 6n + 2 CIFAR ResNets of He et al., see ``resnet_cifar``.)

Stem: 3x3 conv (3 -> width, stride 1, no bias) -> BN -> ReLU, no max-pool. Four stages of BasicBlocks, widths
width x (1, 2, 4, 8) (width = 64 for ESNAC), stride 2 at the start of stages 2-4. BasicBlock: conv1 3x3 (stride s,
no bias) -> bn1 -> relu1 -> conv2 3x3 -> bn2, plus the shortcut, then relu2. The shortcut is the identity, or a 1x1
conv (stride s, no bias) -> BN where the shape changes. Head: AvgPool2d(4) (the 4x4 map of a 32x32 input) ->
``nn.Flatten`` -> Linear(8 x width, classes). PyTorch's default initialisation (ESNAC does not re-initialise).

Module-call order, as ESNAC's ``graph.py`` reads it (hooks) and a ``torch.fx`` trace gives it: conv1, bn1, relu1;
per block conv1, bn1, relu1, conv2, bn2, [shortcut conv, shortcut bn], relu2, with an ``add`` node for the residual
sum; then avgpool, flatten, fc. Only ReLU is supported (ESNAC's layer types).

Parameter counts (ReLU): resnet18 11,173,962 at 10 classes (11.17 M) and 11,220,132 at 100 (11.22 M); resnet34
21,282,122 (21.28 M) and 21,328,292 (21.33 M), as ESNAC's (seeds.md §3.2). ``resnet10`` (blocks [1, 1, 1, 1];
4,903,242 at width 64, 78,002 at width 8 and 10 classes) is a demo-scale member for CPU smoke runs; it reproduces
nothing.
"""

from __future__ import annotations

import torch
from torch import nn

from compresslib.activations import create_activation
from compresslib.models.registry import register_model
from compresslib.models.vgg import require_relu

__all__ = ["BasicBlock", "ResNet"]


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, activation: str = "relu") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = create_activation(activation, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Sequential | None = None  # the identity: no module, so no graph node
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))
        self.relu2 = create_activation(activation, planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return self.relu2(out + shortcut)


class ResNet(nn.Module):
    def __init__(self, num_blocks: tuple[int, int, int, int], num_classes: int = 10, activation: str = "relu",
                 width: int = 64, name: str = "resnet") -> None:
        super().__init__()
        require_relu(name, activation)
        if width < 1:
            raise ValueError(f"model {name!r}: width must be positive, got {width}")
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = create_activation(activation, width)
        in_planes = width
        stages = []
        for index, blocks in enumerate(num_blocks):
            planes = width * 2 ** index
            stage = []
            for stride in [1 if index == 0 else 2] + [1] * (blocks - 1):
                stage.append(BasicBlock(in_planes, planes, stride, activation))
                in_planes = planes
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AvgPool2d(4)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_planes, num_classes)
        self.num_classes = num_classes
        self.num_blocks = tuple(num_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


@register_model
def resnet10(num_classes: int = 10, activation: str = "relu", width: int = 64) -> ResNet:
    """Demo-scale CIFAR ResNet with one BasicBlock per stage (CPU smoke runs only; ``width=8`` for a tiny one)."""
    return ResNet((1, 1, 1, 1), num_classes=num_classes, activation=activation, width=width, name="resnet10")


@register_model
def resnet18(num_classes: int = 10, activation: str = "relu", width: int = 64) -> ResNet:
    """CIFAR ResNet-18 (ESNAC teacher), 11.17 M parameters at 10 classes, 11.22 M at 100."""
    return ResNet((2, 2, 2, 2), num_classes=num_classes, activation=activation, width=width, name="resnet18")


@register_model
def resnet34(num_classes: int = 10, activation: str = "relu", width: int = 64) -> ResNet:
    """CIFAR ResNet-34 (ESNAC teacher), 21.28 M parameters at 10 classes, 21.33 M at 100."""
    return ResNet((3, 4, 6, 3), num_classes=num_classes, activation=activation, width=width, name="resnet34")
