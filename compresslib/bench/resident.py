"""Path (b), compresslib's: the training loop's own data layout, precision and epoch function.

The split lives on the device as uint8 in a ``DeviceLoader`` (crop, flip and normalisation of index slices
of an epoch plan; no workers, no host copies). On CUDA the models run under bf16 autocast in channels_last,
which is what the loop's defaults (``precision=auto``, ``channels_last=None``) choose; on the CPU, fp32 in
the default layout. Training steps are the loop's ``train_epoch`` itself (forward, ``kd_loss``, backward,
SGD step; loss and correct counts summed on the device and read once), run over windows of consecutive
batches, so that a timed span can be any number of steps. A KD student's teacher runs online under the same
autocast, or its logits are looked up per view in a ``TeacherViews`` table, built as
workflow_scripts/teacher_views.py builds it. Evaluation is the loop's ``evaluate``. Compiled, the models run as
the loop runs them (``compresslib.training.compiled.CompiledModels``: static shapes, the first step of each shape
guarded, eager after a failure), and ``compile`` says what ran.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from compresslib.bench.pairs import LOSS, Pair
from compresslib.data.loader import DeviceLoader, EpochPlan
from compresslib.devices import device_precision, evaluation_batch_size
from compresslib.training.compiled import CompiledModels
from compresslib.training.loop import train_epoch
from compresslib.specs.training import TrainSpec
from compresslib.training.teacher_views import TeacherViews, compute_teacher_views

__all__ = ["resident_loader", "build_views", "ResidentTraining"]


def resident_loader(images: torch.Tensor, labels: torch.Tensor, pair: Pair, *, train: bool, device: torch.device,
                    seed: int = 0) -> DeviceLoader:
    """The loop's training loader (augmented, shuffled; the last partial batch dropped, as the reference does) or
    its evaluation loader (TrainSpec's evaluation batch, as the loop uses it on ``device``) over uint8
    ``(N, C, H, W)`` images."""
    batch_size = pair.batch_size if train else evaluation_batch_size(TrainSpec().eval_batch_size, device)
    return DeviceLoader(images, labels, batch_size=batch_size,
                        augment=train, shuffle=train, drop_last=train, seed=seed, mean=pair.info.mean,
                        std=pair.info.std, device=device,
                        channels_last=device_precision(device).channels_last)


def build_views(teacher: nn.Module, loader: DeviceLoader, pair: Pair) -> TeacherViews:
    """The teacher's logits for every view of every image of ``loader``, made as the workflow's teacher_views job
    makes them (``compute_teacher_views``: bf16 autocast and channels_last on CUDA, not compiled)."""
    logits = compute_teacher_views(teacher, loader.inputs, mean=pair.info.mean, std=pair.info.std, pad=loader.pad,
                                   device=loader.device)
    return TeacherViews(logits, pad=loader.pad)


@dataclass
class _Window:
    """``steps`` batches of an endless stream, shaped like the DeviceLoader that ``train_epoch`` reads
    (its ``device`` and ``indexed_batches``)."""

    device: torch.device
    batches: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, EpochPlan]]
    steps: int

    def indexed_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, EpochPlan]]:
        return itertools.islice(self.batches, self.steps)


class ResidentTraining:
    """The loop's training steps on ``model`` over the loader's epochs one after another. KD logits come from
    ``teacher`` online or from ``views``; with neither, the loss is cross-entropy. The models are moved to the
    loader's device and memory format; ``compiled`` compiles the model and an online teacher as the loop does."""

    def __init__(self, model: nn.Module, loader: DeviceLoader, optimizer: torch.optim.Optimizer, *,
                 teacher: nn.Module | None = None, views: TeacherViews | None = None, compiled: bool = False) -> None:
        if teacher is not None and views is not None:
            raise ValueError("KD logits come from the online teacher or from its views table, not both")
        if len(loader) == 0:
            raise ValueError(f"{loader.num_examples} images make no full batch of {loader.batch_size}")
        self.autocast, memory_format, _ = device_precision(loader.device)
        if teacher is not None:
            teacher = teacher.eval().requires_grad_(False).to(loader.device, memory_format=memory_format)
        self.models = CompiledModels(model.to(loader.device, memory_format=memory_format), teacher, compiled=compiled)
        self.loader, self.optimizer, self.views = loader, optimizer, views
        self.examples = torch.arange(loader.num_examples, device=loader.device)  # the table's rows: the whole split
        self._batches = (batch for epoch in itertools.count()
                         for batch in loader.indexed_batches(loader.epoch_plan(epoch)))

    def run(self, steps: int) -> float:
        """Take ``steps`` steps; return their mean loss (the loop's one host read per epoch)."""
        loss, _ = train_epoch(self.models, _Window(self.loader.device, self._batches, steps), [self.optimizer], LOSS,
                               self.autocast, views=self.views, examples=self.examples)
        return loss

