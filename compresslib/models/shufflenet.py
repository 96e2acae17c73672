"""CIFAR ShuffleNet v1 with g = 2 groups, the ESNAC teacher.

Source: Cao, Wang, Kitani, "Learnable Embedding Space for Efficient Neural Architecture Compression", ICLR 2019
(ESNAC), ``models/shufflenet.py`` of its code, which adapts kuangliu/pytorch-cifar's ``shufflenet.py`` (after
Zhang, Zhou, Lin, Sun, "ShuffleNet", CVPR 2018). Re-implemented.

Stem: 1x1 conv (3 -> 24, no bias) -> BN -> ReLU. Three stages with out planes 200, 400, 800 and 4, 8, 4 blocks;
the first block of a stage has stride 2, the rest stride 1. Head: AvgPool2d(4) -> ``nn.Flatten`` -> Linear(800,
classes). PyTorch's default initialisation (ESNAC does not re-initialise).

Bottleneck(in, out, stride). The main branch produces ``branch = out - in`` channels in a stride-2 block (the
shortcut supplies the other ``in``) and ``out`` in a stride-1 block; ``mid = branch // 4``; ``g1 = 1`` when
``in == 24`` (the first block), else 2:

* conv1 1x1 in -> mid, groups g1 (no bias) -> bn1 -> relu1 -> ``nn.ChannelShuffle(g1)``;
* conv2 3x3 depthwise (groups = mid, stride, padding 1, no bias) -> bn2, no ReLU;
* conv3 1x1 mid -> branch, groups 2 (no bias) -> bn3;
* stride 1: relu3(bn3 output + block input);
* stride 2: the shortcut is a 1x1 conv in -> in with groups 2 (no bias, **no BatchNorm**) followed by
  AvgPool2d(3, stride 2, padding 1), and the output is relu3(Concat([main, shortcut])).

What the parameter counts settle (seeds.md §3.2 gives 1.06 M at 100 classes and 0.99 M at 10):

* ``mid`` is a quarter of the *branch* width, not of the block's out planes: ESNAC builds a stride-2 block as
  kuangliu's ``Bottleneck(in, out - in)``, so the stride-2 mids are 44, 50, 100. With ``mid = out // 4``
  (50, 100, 200) the network has 1,040,570 / 1,112,660 parameters (1.04 M / 1.11 M), which matches neither.
* The shortcut conv has no BatchNorm. The counts cannot tell (a BN after it adds 2 x (24 + 200 + 400) = 1,248
  parameters: 989,118 / 1,061,208, also 0.99 M / 1.06 M), but the layer order can: the stride-2 shortcut convs
  are at module-call indices 11, 50 and 125 (stem conv = 0, counting conv, BN, ReLU, shuffle, pool and concat
  calls), and a BN after the first one would move the other two to 51 and 126.

Module-call order per block: conv1, bn1, relu1, shuffle, conv2, bn2, conv3, bn3, [shortcut_conv, shortcut_pool,
concat], relu3; stride-1 blocks have an ``add`` node for the residual sum. ``Concat``
(``compresslib.models.graph_layers``) takes the list ``[main, shortcut]``; it is not a ``torch.nn`` module, so a
plain ``torch.fx.symbolic_trace`` inlines it as a ``torch.cat`` node, and a tracer that keeps it a leaf (or forward
hooks) sees it as a module call. Only ReLU is supported (ESNAC's layer types).

Parameter counts: shufflenet_g2 987,870 at 10 classes (0.99 M) and 1,059,960 at 100 classes (1.06 M).
"""

from __future__ import annotations

import torch
from torch import nn

from compresslib.activations import create_activation
from compresslib.models.graph_layers import Concat
from compresslib.models.registry import register_model
from compresslib.models.vgg import require_relu

__all__ = ["Bottleneck", "ShuffleNet"]

STEM_PLANES = 24


class Bottleneck(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int, groups: int = 2,
                 activation: str = "relu") -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleNet bottleneck stride must be 1 or 2, got {stride}")
        if stride == 1 and in_planes != out_planes:
            raise ValueError(f"a stride-1 ShuffleNet bottleneck keeps its width, got {in_planes} -> {out_planes}")
        self.stride = stride
        branch_planes = out_planes - in_planes if stride == 2 else out_planes
        mid_planes = branch_planes // 4
        first_groups = 1 if in_planes == STEM_PLANES else groups
        self.conv1 = nn.Conv2d(in_planes, mid_planes, 1, groups=first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_planes)
        self.relu1 = create_activation(activation, mid_planes)
        self.shuffle = nn.ChannelShuffle(first_groups)
        self.conv2 = nn.Conv2d(mid_planes, mid_planes, 3, stride=stride, padding=1, groups=mid_planes, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_planes)
        self.conv3 = nn.Conv2d(mid_planes, branch_planes, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(branch_planes)
        if stride == 2:
            self.shortcut_conv = nn.Conv2d(in_planes, in_planes, 1, groups=groups, bias=False)
            self.shortcut_pool = nn.AvgPool2d(3, stride=2, padding=1)
            self.concat = Concat()
        self.relu3 = create_activation(activation, out_planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shuffle(self.relu1(self.bn1(self.conv1(x))))
        out = self.bn3(self.conv3(self.bn2(self.conv2(out))))
        if self.stride == 2:
            return self.relu3(self.concat([out, self.shortcut_pool(self.shortcut_conv(x))]))
        return self.relu3(out + x)


class ShuffleNet(nn.Module):
    def __init__(self, out_planes: tuple[int, ...] = (200, 400, 800), num_blocks: tuple[int, ...] = (4, 8, 4),
                 groups: int = 2, num_classes: int = 10, activation: str = "relu", name: str = "shufflenet") -> None:
        super().__init__()
        require_relu(name, activation)
        if len(out_planes) != len(num_blocks):
            raise ValueError(f"model {name!r}: {len(out_planes)} stage widths for {len(num_blocks)} stages")
        self.conv1 = nn.Conv2d(3, STEM_PLANES, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_PLANES)
        self.relu1 = create_activation(activation, STEM_PLANES)
        in_planes = STEM_PLANES
        stages = []
        for planes, blocks in zip(out_planes, num_blocks):
            stage = []
            for index in range(blocks):
                stage.append(Bottleneck(in_planes, planes, 2 if index == 0 else 1, groups, activation))
                in_planes = planes
            stages.append(nn.Sequential(*stage))
        self.layers = nn.Sequential(*stages)
        self.avgpool = nn.AvgPool2d(4)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_planes, num_classes)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.relu1(self.bn1(self.conv1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


@register_model
def shufflenet_g2(num_classes: int = 10, activation: str = "relu") -> ShuffleNet:
    """CIFAR ShuffleNet v1, g = 2 (ESNAC teacher), 0.99 M parameters at 10 classes, 1.06 M at 100."""
    return ShuffleNet((200, 400, 800), (4, 8, 4), groups=2, num_classes=num_classes, activation=activation,
                      name="shufflenet_g2")
