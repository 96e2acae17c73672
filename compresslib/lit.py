"""LIT: learned intermediate-representation training (Koratana et al., ICML 2019; seeds.md §4.2).

Teacher and student are :class:`compresslib.models.sections.SectionedNet` models of one family: the same
stem and head, fewer blocks per section in the student. Phase 1 trains every student section on the
teacher's input to that section (``h_{i-1}``) to reproduce the teacher's output of it (``h_i``, MSE), so
the sections learn independently, while a KD term on the student's own end-to-end output keeps the whole
network in view; β balances the two. The stem and head are copied from the teacher and frozen. Phase 2
is plain full-model KD (compresslib.losses.kd_loss).

The originals combine the phase-1 terms in two ways (``combine``):

* ``"sections"`` (VDCNN): each section minimises ``(1 - β)·MSE_i`` and the shared term is ``β·L_KD``,
  i.e. ``β·L_KD + (1 - β)·Σ MSE_i`` over all sections;
* ``"halved"`` (CIFAR): ``(β·L_KD + (1 - β)·Σ MSE_i) / 2``.

A student section's MSE depends on no other section's parameters, so both give each section the gradient
its own optimiser saw in the original. ``per_section`` optimisers (VDCNN) are one SGD per section, as the
original steps them; ``shared`` (CIFAR) is one SGD over all sections. With equal hyperparameters the two
take the same steps: the original's per-section optimisers exist to run sections on separate GPUs.

The training run itself (phases, optimisers, schedules, checkpoints, resume across the phase boundary) is
compresslib.training.loop with ``spec.lit`` set; this module holds what is specific to LIT.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from compresslib.losses import kd_loss
from compresslib.models.sections import SectionedNet

__all__ = ["COMBINES", "PhaseOneLoss", "check_pair", "copy_and_freeze_ends", "keep_ends_frozen", "phase_one_loss",
           "phase_one_parameter_sets", "train_phase_one_epoch", "section_mse"]

COMBINES = ("sections", "halved")


@dataclass(frozen=True)
class PhaseOneLoss:
    """The phase-1 objective and its parts (detached parts, for logging per section)."""

    total: torch.Tensor
    kd: torch.Tensor
    sections: list[torch.Tensor]
    logits: torch.Tensor  # the student's own end-to-end output (detached)


def check_pair(teacher: nn.Module, student: nn.Module, example: torch.Tensor) -> None:
    """Raise ValueError unless the two models can be trained with LIT: same section count and boundary shapes.

    The check runs in eval mode (no BatchNorm statistic moves) and leaves every module's mode as it was.
    """
    for role, model in (("teacher", teacher), ("student", student)):
        if not isinstance(model, SectionedNet):
            raise ValueError(f"LIT needs models with stem / sections / head; the {role} is {type(model).__name__}")
    if len(teacher.sections) != len(student.sections):
        raise ValueError(f"the teacher has {len(teacher.sections)} sections, the student {len(student.sections)}")
    with torch.no_grad(), _eval_mode(teacher, student):
        teacher_outputs = teacher.section_outputs(example)
        if student.stem(example).shape != teacher_outputs[0].shape:
            raise ValueError("teacher and student differ at the stem output")
        for index, section in enumerate(student.sections):
            try:
                shape = section(teacher_outputs[index]).shape
            except RuntimeError as error:  # e.g. a convolution expecting other channels
                raise ValueError(f"student section {index} cannot take the teacher's input to it: {error}") from None
            if shape != teacher_outputs[index + 1].shape:
                raise ValueError(f"teacher and student differ at the output of section {index}: "
                                 f"{tuple(teacher_outputs[index + 1].shape)} vs {tuple(shape)}")


@contextlib.contextmanager
def _eval_mode(*models: nn.Module) -> Iterator[None]:
    modes = [(module, module.training) for model in models for module in model.modules()]
    for model in models:
        model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def copy_and_freeze_ends(teacher: SectionedNet, student: SectionedNet) -> list[str]:
    """Copy the teacher's stem and head into the student and freeze them (parameters and BatchNorm statistics).

    Returns the names of the frozen parameters. The frozen modules are put in eval mode; call
    :func:`keep_ends_frozen` after ``student.train()`` to keep them there.
    """
    frozen = []
    for name in ("stem", "head"):
        source, target = getattr(teacher, name), getattr(student, name)
        target.load_state_dict(source.state_dict())
        target.requires_grad_(False).eval()
        frozen += [f"{name}.{parameter}" for parameter, _ in target.named_parameters()]
    return frozen


def keep_ends_frozen(student: SectionedNet) -> None:
    """Put the frozen stem and head back in eval mode (``student.train()`` switched every module)."""
    student.stem.eval()
    student.head.eval()


def phase_one_loss(teacher: SectionedNet, student: SectionedNet, inputs: torch.Tensor, targets: torch.Tensor, *,
                   beta: float, combine: str, temperature: float, weight: float, kl_reduction: str = "batchmean",
                   soft_loss: str = "kl") -> PhaseOneLoss:
    """LIT's phase-1 objective for one batch (see the module docstring); the teacher runs without gradients."""
    if combine not in COMBINES:
        raise ValueError(f"combine must be one of {', '.join(COMBINES)}, got {combine!r}")
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    with torch.no_grad():
        teacher_outputs = teacher.section_outputs(inputs)
        teacher_logits = teacher.forward_head(teacher_outputs[-1])
    sections = [F.mse_loss(section(teacher_outputs[index]).float(), teacher_outputs[index + 1].float())
                for index, section in enumerate(student.sections)]
    logits = student(inputs)
    kd = kd_loss(logits, targets, teacher_logits, temperature=temperature, weight=weight,
                 kl_reduction=kl_reduction, soft_loss=soft_loss)
    total = beta * kd + (1 - beta) * torch.stack(sections).sum()
    if combine == "halved":
        total = total / 2
    return PhaseOneLoss(total, kd.detach(), [loss.detach() for loss in sections], logits.detach())


def phase_one_parameter_sets(student: SectionedNet, optimizer: str) -> list[list[nn.Parameter]]:
    """The parameters of each phase-1 optimiser: one set per section (``per_section``) or one (``shared``)."""
    sets = [list(section.parameters()) for section in student.sections]
    if optimizer == "per_section":
        return sets
    if optimizer == "shared":
        return [[parameter for section_set in sets for parameter in section_set]]
    raise ValueError(f"optimizer must be per_section or shared, got {optimizer!r}")


def train_phase_one_epoch(teacher: SectionedNet, student: SectionedNet, loader: Iterable,
                          optimizers: list[torch.optim.Optimizer], *, beta: float, combine: str, kd: Mapping,
                          autocast: torch.autocast) -> tuple[float, float, list[float]]:
    """One phase-1 epoch: ``(mean objective, student accuracy, mean MSE per section)``; ``kd`` holds
    compresslib.losses.kd_loss's keywords. Sums stay on the device and are read once (one host sync)."""
    student.train()
    keep_ends_frozen(student)
    device = next(student.parameters()).device
    loss_sum = torch.zeros((), device=device)
    section_sums = torch.zeros(len(student.sections), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    for inputs, targets in loader:
        with autocast:
            loss = phase_one_loss(teacher, student, inputs, targets, beta=beta, combine=combine, **kd)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        for optimizer in optimizers:
            optimizer.step()
        loss_sum += loss.total.detach() * len(targets)
        section_sums += torch.stack(loss.sections) * len(targets)
        correct += (loss.logits.argmax(1) == targets).sum()
        seen += len(targets)
    return loss_sum.item() / seen, correct.item() / seen, (section_sums / seen).tolist()


@torch.inference_mode()
def section_mse(teacher: SectionedNet, student: SectionedNet, loader: Iterable,
                autocast: torch.autocast) -> list[float]:
    """Mean MSE per section of the student's sections fed the teacher's inputs, over ``loader`` (eval mode)."""
    device = next(student.parameters()).device
    sums = torch.zeros(len(student.sections), device=device)
    seen = 0
    with _eval_mode(teacher, student), autocast:
        for inputs, _ in loader:
            teacher_outputs = teacher.section_outputs(inputs)
            sums += torch.stack([F.mse_loss(section(teacher_outputs[index]).float(),
                                            teacher_outputs[index + 1].float())
                                 for index, section in enumerate(student.sections)]) * len(inputs)
            seen += len(inputs)
    return (sums / seen).tolist()
