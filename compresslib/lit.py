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
its own optimiser saw in the original.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from compresslib.losses import kd_loss
from compresslib.models.sections import SectionedNet

__all__ = ["COMBINES", "PhaseOneLoss", "check_pair", "copy_and_freeze_ends", "keep_ends_frozen", "phase_one_loss"]

COMBINES = ("sections", "halved")


@dataclass(frozen=True)
class PhaseOneLoss:
    """The phase-1 objective and its parts (detached parts, for logging per section)."""

    total: torch.Tensor
    kd: torch.Tensor
    sections: list[torch.Tensor]


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
    kd = kd_loss(student(inputs), targets, teacher_logits, temperature=temperature, weight=weight,
                 kl_reduction=kl_reduction, soft_loss=soft_loss)
    total = beta * kd + (1 - beta) * torch.stack(sections).sum()
    if combine == "halved":
        total = total / 2
    return PhaseOneLoss(total, kd.detach(), [loss.detach() for loss in sections])
