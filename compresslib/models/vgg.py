"""CIFAR VGG-19 with batch normalisation, the ESNAC teacher.

Source: Cao, Wang, Kitani, "Learnable Embedding Space for Efficient Neural Architecture Compression", ICLR 2019
(ESNAC), ``models/vgg.py`` of its code; the architecture is kuangliu/pytorch-cifar's ``vgg.py`` without the
final 1x1 average pool. Re-implemented.

Feature configuration 64, 64, M, 128, 128, M, 256 x 4, M, 512 x 4, M, 512 x 4, M: every number is a 3x3 conv
(padding 1, **with bias**) -> BatchNorm2d -> ReLU, every M a MaxPool2d(2, 2), so a 32x32 input ends as 512 x 1 x 1;
then ``nn.Flatten`` and one Linear(512, classes). PyTorch's default initialisation (ESNAC does not re-initialise).

Every layer is its own module instance and ``forward`` is module calls only, so a ``torch.fx`` trace (or forward
hooks, as ESNAC's ``graph.py``) sees one node per layer in call order: a pure chain of 16 x (conv, BN, ReLU) with
5 max-pools, then flatten and fc (55 layers). ESNAC's layer types include only ReLU; any other ``activation`` is
refused (``require_relu``, shared with the other ESNAC teachers).

Parameter counts: vgg19 20,040,522 at 10 classes (20.04 M) and 20,086,692 at 100 classes (20.09 M), as ESNAC's
(seeds.md §3.2).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from compresslib.activations import create_activation
from compresslib.models.registry import register_model

__all__ = ["VGG", "VGG19_CFG", "require_relu"]

VGG19_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                    512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def require_relu(model_name: str, activation: Any) -> None:
    """ESNAC's layer types (its one-hot) include only ReLU, so its teachers are built with ReLU only."""
    if activation != "relu":
        raise ValueError(f"model {model_name!r} (an ESNAC teacher) supports only activation 'relu', "
                         f"got {activation!r}")


class VGG(nn.Module):
    def __init__(self, cfg: tuple[int | str, ...] = VGG19_CFG, num_classes: int = 10, activation: str = "relu",
                 name: str = "vgg19") -> None:
        super().__init__()
        require_relu(name, activation)
        layers: list[nn.Module] = []
        in_planes = 3
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_planes, int(item), 3, padding=1, bias=True), nn.BatchNorm2d(int(item)),
                           create_activation(activation, int(item))]
                in_planes = int(item)
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_planes, num_classes)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.features(x)))


@register_model
def vgg19(num_classes: int = 10, activation: str = "relu") -> VGG:
    """CIFAR VGG-19 with BN (ESNAC teacher), 20.04 M parameters at 10 classes, 20.09 M at 100."""
    return VGG(VGG19_CFG, num_classes=num_classes, activation=activation, name="vgg19")
