"""The teacher/student pairs the benchmarks run, with the papers' batch sizes, and what both paths share.

Both paths train the same model with the same optimiser and the same loss: SGD with Nesterov momentum 0.9
(TrainSpec's defaults) at the recipe's rate and weight decay, and ``kd_loss`` with KDSpec's defaults (LMA's
T = 2, soft weight 0.7, batch-mean KL); without teacher logits ``kd_loss`` is plain cross-entropy.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import torch
from torch import nn

from compresslib.catalog import DatasetInfo, get_dataset_info
from compresslib.losses import kd_loss
from compresslib.models import create_model
from compresslib.specs.training import KDSpec, TrainSpec

__all__ = ["Pair", "PAIRS", "LOSS", "PATHS", "PATH_LABELS"]

# The paths compared: the originals' way (a); compresslib's (b), a KD student's teacher online or its views cached.
PATHS = ("reference", "resident", "resident_cached")
PATH_LABELS = {"reference": "reference", "resident": "compresslib", "resident_cached": "compresslib cached"}
LOSS = functools.partial(kd_loss, **dataclasses.asdict(KDSpec()))


@dataclass(frozen=True)
class Pair:
    teacher: str  # registered model names
    student: str
    dataset: str  # whose class count and normalisation the models use
    batch_size: int  # the paper's training batch
    lr: float  # the recipe's initial rate (used by the accuracy check; speed does not depend on it)
    weight_decay: float
    model_kwargs: dict = field(default_factory=dict)  # for teacher and student alike
    student_kwargs: dict = field(default_factory=dict)  # for the student alone (a grid's activation, say)

    @property
    def info(self) -> DatasetInfo:
        return get_dataset_info(self.dataset)

    def build(self, name: str) -> nn.Module:
        """The teacher or the student (by registered name), freshly initialised from torch's global RNG."""
        if name not in (self.teacher, self.student):
            raise ValueError(f"{name!r} is neither this pair's teacher {self.teacher!r} nor its student "
                             f"{self.student!r}")
        kwargs = self.model_kwargs | (self.student_kwargs if name == self.student else {})
        return create_model(name, num_classes=self.info.num_classes, **kwargs)

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        defaults = TrainSpec()
        return torch.optim.SGD(model.parameters(), lr=self.lr, momentum=defaults.momentum,
                               nesterov=defaults.nesterov, weight_decay=self.weight_decay)


PAIRS: dict[str, Pair] = {
    # profiles/demo: the demo teacher and its first student, batch 64
    "demo": Pair("demo_conv_teacher", "demo_conv_student0", "synthetic", batch_size=64, lr=0.05, weight_decay=2.2e-4),
    # LMA main.py (reference/seeds.md §2.5, §2.7): the QD teacher and student 0 on CIFAR-10, batch 64
    "conv": Pair("qd_conv_teacher", "qd_conv_student0", "cifar10", batch_size=64, lr=0.01, weight_decay=2.2e-4),
    # LMA main_wrn.py: WRN-16-10 -> WRN-10-4 on CIFAR-100, batch 128, dropout 0.3 (config.yaml)
    "wrn": Pair("wide_resnet16_10", "wide_resnet10_4", "cifar100", batch_size=128, lr=0.1, weight_decay=5e-4,
                model_kwargs={"dropout": 0.3}),
}
