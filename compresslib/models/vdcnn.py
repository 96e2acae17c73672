"""Very deep convolutional networks (VDCNN) for character-level text classification, as used by LIT.

Paper: Conneau, Schwenk, Barrault, LeCun, "Very Deep Convolutional Networks for Text Classification",
EACL 2017; the "-maxpool" variants (no shortcuts) that Koratana, Kang, Bailis, Zaharia, "LIT: Learned
Intermediate Representation Training for Model Compression", ICML 2019, distils on Amazon Review Full.
Original: codyaustun/pytorch-sentiment ``sentiment/models/vdcnn.py`` as vendored by
stanford-futuredata/lit-code ``vdcnn/vdcnn.py`` (``VDCNN*MaxPool``). Re-implemented, not copied.

Input: a LongTensor (N, L) of character indices (vocabulary 69: 0 padding, 1 unknown, 2.. the 67
alphabet symbols; L = 1014 in the paper). Stem: Embedding(69, 16) -> Conv1d(16 -> 64, k3). Four sections
of widths 64/128/256/512 with [1,1,1,1] (vdcnn9), [2,2,2,2] (vdcnn17), [5,5,2,2] (vdcnn29) or [8,8,5,3]
(vdcnn49) blocks. Block: MaxPool1d(3, stride 2, padding 1) when the width increases (first block of
sections 1..3), then conv3 -> BN -> ReLU -> conv3 -> BN -> ReLU, no shortcut. Head: k-max pooling over
the length (k = 8, original order kept), flatten, Linear 4096 -> 2048 -> ReLU -> 2048 -> ReLU -> classes.
Convs are Kaiming-normal (fan_in), BN weight 1 and bias 0, Linear and Embedding PyTorch's defaults.

As in the original, no conv has a bias, the stem's included (``bias=False`` passed to every conv), and
the embedding has no ``padding_idx`` (padding gets a learned vector); ``bias=True`` adds conv biases.

Section API (shared with the CIFAR ResNets, used by LIT): ``stem`` maps ids to h0 (N, 64, L),
``sections[i]`` maps h_i to h_{i+1}, ``head`` maps h4 to logits; ``section_outputs`` returns
[h0, .., h4]. For L = 1014: h1 (N, 64, 1014), h2 (N, 128, 507), h3 (N, 256, 254), h4 (N, 512, 127).
Depths differ only in blocks per section, so a teacher's and a student's sections, stems and heads are
interchangeable in shape. Each pool maps a length L to ceil(L / 2), so h4 has length ceil(L / 8) and
k-max pooling needs ceil(L / 8) >= k: the minimum input length is 57 for k = 8
(``VDCNN.min_input_length``).

Parameter counts (5 classes; the FC head is 12,597,253 of each): vdcnn9 14,178,133 (14.18 M);
vdcnn17 16,270,933 (16.27 M); vdcnn29 16,641,877 (16.64 M); vdcnn49 19,770,453 (19.77 M). The
``demo_*`` variants (widths 16/32/64/128, FC 256, L = 128) are for CPU smoke runs and reproduce nothing:
demo_vdcnn_student 430,613; demo_vdcnn_teacher 562,133.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from compresslib.models.registry import register_model
from compresslib.models.sections import SectionedNet

__all__ = ["VDCNN", "VDCNNStem", "MaxPoolBlock", "KMaxPool1d", "kmax_pooling", "VDCNN_CFGS"]

# blocks per section; widths, hidden and kmax default to the paper's.
VDCNN_CFGS: dict[str, dict[str, Any]] = {
    "vdcnn9": dict(blocks=[1, 1, 1, 1]),
    "vdcnn17": dict(blocks=[2, 2, 2, 2]),
    "vdcnn29": dict(blocks=[5, 5, 2, 2]),
    "vdcnn49": dict(blocks=[8, 8, 5, 3]),
    "demo_vdcnn_student": dict(blocks=[1, 1, 1, 1], widths=[16, 32, 64, 128], hidden=256),
    "demo_vdcnn_teacher": dict(blocks=[2, 2, 2, 2], widths=[16, 32, 64, 128], hidden=256),
}


def kmax_pooling(x: torch.Tensor, k: int, dim: int = -1) -> torch.Tensor:
    """The k largest values along ``dim``, in their original order (not sorted by value)."""
    indices = x.topk(k, dim=dim).indices.sort(dim=dim).values
    return x.gather(dim, indices)


class KMaxPool1d(nn.Module):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(-1) < self.k:  # topk's own error would not say what was too short
            raise ValueError(f"k-max pooling needs a length of at least k = {self.k}, got {x.size(-1)}; "
                             f"the input text is too short for this model")
        return kmax_pooling(x, self.k, dim=-1)

    def extra_repr(self) -> str:
        return f"k={self.k}"


class MaxPoolBlock(nn.Module):
    """[MaxPool1d when the width increases] -> conv3 -> BN -> ReLU -> conv3 -> BN -> ReLU, no shortcut."""

    def __init__(self, in_width: int, out_width: int, bias: bool = False) -> None:
        super().__init__()
        self.pool = nn.MaxPool1d(3, stride=2, padding=1) if out_width > in_width else nn.Identity()
        self.conv1 = nn.Conv1d(in_width, out_width, 3, padding=1, bias=bias)
        self.bn1 = nn.BatchNorm1d(out_width)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv1d(out_width, out_width, 3, padding=1, bias=bias)
        self.bn2 = nn.BatchNorm1d(out_width)
        self.act2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(self.pool(x))))
        return self.act2(self.bn2(self.conv2(x)))


class VDCNNStem(nn.Module):
    """Character ids (N, L) -> embedding (N, L, E) -> (N, E, L) -> Conv1d -> h0 (N, width, L)."""

    def __init__(self, vocab_size: int, embedding_dim: int, width: int, bias: bool = False) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.conv = nn.Conv1d(embedding_dim, width, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.embedding(x).transpose(1, 2))  # Conv1d wants channels before length


class VDCNN(SectionedNet):
    def __init__(
        self,
        blocks: Sequence[int],
        widths: Sequence[int] = (64, 128, 256, 512),
        num_classes: int = 5,
        activation: str = "relu",
        vocab_size: int = 69,
        embedding_dim: int = 16,
        hidden: int = 2048,
        kmax: int = 8,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if activation != "relu":  # accepted so the shared training loop can pass it
            raise ValueError(f"VDCNN supports only activation 'relu', got {activation!r}")
        if len(blocks) != len(widths) or any(count < 1 for count in blocks):
            raise ValueError(f"VDCNN needs one block count >= 1 per width, got blocks {list(blocks)} "
                             f"for widths {list(widths)}")
        self.stem = VDCNNStem(vocab_size, embedding_dim, widths[0], bias=bias)
        in_width = widths[0]
        sections = []
        for count, width in zip(blocks, widths):
            section = []
            for _ in range(count):
                section.append(MaxPoolBlock(in_width, width, bias=bias))
                in_width = width
            sections.append(nn.Sequential(*section))
        self.sections = nn.ModuleList(sections)
        self.head = nn.Sequential(OrderedDict([
            ("kmax", KMaxPool1d(kmax)),
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(in_width * kmax, hidden)),
            ("act1", nn.ReLU(inplace=True)),
            ("fc2", nn.Linear(hidden, hidden)),
            ("act2", nn.ReLU(inplace=True)),
            ("fc3", nn.Linear(hidden, num_classes)),
        ]))
        self.num_classes = num_classes
        num_pools = sum(after > before for before, after in zip(widths, widths[1:]))
        self.min_input_length = 2 ** num_pools * (kmax - 1) + 1  # each pool maps L to ceil(L / 2)
        self._initialize_weights()

    def _initialize_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv1d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm1d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head[:-1](x) if pre_logits else self.head(x)


def _create_vdcnn(variant: str, **kwargs: Any) -> VDCNN:
    return VDCNN(**{**VDCNN_CFGS[variant], **kwargs})


@register_model
def vdcnn9(**kwargs: Any) -> VDCNN:
    """VDCNN-9 maxpool (LIT's Amazon Review Full student), 14.18 M parameters at 5 classes."""
    return _create_vdcnn("vdcnn9", **kwargs)


@register_model
def vdcnn17(**kwargs: Any) -> VDCNN:
    """VDCNN-17 maxpool (the teacher of lit-code's example config), 16.27 M parameters at 5 classes."""
    return _create_vdcnn("vdcnn17", **kwargs)


@register_model
def vdcnn29(**kwargs: Any) -> VDCNN:
    """VDCNN-29 maxpool (one of lit-code's pretrained teachers), 16.64 M parameters at 5 classes."""
    return _create_vdcnn("vdcnn29", **kwargs)


@register_model
def vdcnn49(**kwargs: Any) -> VDCNN:
    """VDCNN-49 maxpool, 19.77 M parameters at 5 classes."""
    return _create_vdcnn("vdcnn49", **kwargs)


@register_model
def demo_vdcnn_student(**kwargs: Any) -> VDCNN:
    """Demo-scale VDCNN student, [1,1,1,1] blocks (CPU smoke runs only)."""
    return _create_vdcnn("demo_vdcnn_student", **kwargs)


@register_model
def demo_vdcnn_teacher(**kwargs: Any) -> VDCNN:
    """Demo-scale VDCNN teacher, [2,2,2,2] blocks (CPU smoke runs only)."""
    return _create_vdcnn("demo_vdcnn_teacher", **kwargs)
