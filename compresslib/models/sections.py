"""The section interface LIT trains through: ``stem`` -> ``sections[0..S-1]`` -> ``head``.

A family whose teacher and student differ only in blocks per section (CIFAR ResNets, VDCNN) subclasses
:class:`SectionedNet`, so a student's section i can take a teacher's h_i and be trained to give its h_{i+1}.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SectionedNet"]


class SectionedNet(nn.Module):
    """Subclasses set ``stem``, ``sections`` (an nn.ModuleList) and ``head``, and define ``forward_head``."""

    stem: nn.Module
    sections: nn.ModuleList
    head: nn.Module

    def section_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[h0, h1, ..., h_S]: the stem's output, then each section's."""
        outputs = [self.stem(x)]
        for section in self.sections:
            outputs.append(section(outputs[-1]))
        return outputs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for section in self.sections:
            x = section(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))  # forward_head: the family's (timm's convention)
