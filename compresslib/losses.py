"""Distillation losses: one parameterised function for every Hinton-KD flavour in the originals.

Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network" (2015):

    L = w * T^2 * KL( softmax(z_t / T) || softmax(z_s / T) ) + (1 - w) * CE(z_s, y)

with student logits ``z_s``, teacher logits ``z_t``, temperature ``T`` and soft-term weight ``w``.
The KL reduction is what differs between the code bases (reference/seeds.md §1.5, §2.4, §5.3):

* ``"batchmean"`` (LMA): KL summed over classes and examples, divided by the batch size — the
  mathematically correct KL per example.
* ``"mean"`` (QD): PyTorch 0.3's default ``KLDivLoss`` averaged over *all* batch x class elements,
  i.e. ``batchmean / num_classes``; the soft term is C times weaker.

LIT's ``AlphaDistillationLoss`` (seeds.md §4.2) writes the soft term as the cross-entropy
``H(softmax(z_t / T), softmax(z_s / T))`` per example (``soft_loss="cross_entropy"``): the KL plus the
teacher's entropy, which has no gradient for the student but changes the reported loss. Its α weighs the
hard term, so LIT's α is ``1 - weight`` here.

Defaults are LMA's: T = 2, w = 0.7, batchmean, KL. Losses are computed in float32 whatever the autocast
dtype of the logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["KL_REDUCTIONS", "SOFT_LOSSES", "kd_loss"]

KL_REDUCTIONS = ("batchmean", "mean")
SOFT_LOSSES = ("kl", "cross_entropy")


def kd_loss(
    student_logits: torch.Tensor,
    targets: torch.Tensor,
    teacher_logits: torch.Tensor | None = None,
    *,
    temperature: float = 2.0,
    weight: float = 0.7,
    kl_reduction: str = "batchmean",
    soft_loss: str = "kl",
) -> torch.Tensor:
    """Hinton KD loss (see module docstring); plain cross-entropy when ``teacher_logits`` is None."""
    student_logits = student_logits.float()
    hard = F.cross_entropy(student_logits, targets)
    if teacher_logits is None:
        return hard
    if kl_reduction not in KL_REDUCTIONS:
        raise ValueError(f"kl_reduction must be one of {KL_REDUCTIONS}, got {kl_reduction!r}")
    if soft_loss not in SOFT_LOSSES:
        raise ValueError(f"soft_loss must be one of {SOFT_LOSSES}, got {soft_loss!r}")
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    # Explicit divisor: torch announces that kl_div's own "mean" will change meaning.
    divisor = student_logits.shape[0] * (student_logits.shape[1] if kl_reduction == "mean" else 1)
    soft = F.kl_div(log_p_student, log_p_teacher, reduction="sum", log_target=True) / divisor
    if soft_loss == "cross_entropy":  # + the teacher's entropy: same gradient, LIT's loss values
        soft = soft - (log_p_teacher.exp() * log_p_teacher).sum() / divisor
    return weight * temperature**2 * soft + (1.0 - weight) * hard
