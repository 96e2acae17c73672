"""Distillation losses, each with its formula: Hinton KD for classifiers (every flavour of the originals, one
parameterised function), its token-level form for translation, and ESNAC's regression onto the teacher's logits.

Classifiers (``kd_loss``; teachers, students, QD, DQ and LIT's phase 2):

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

Defaults are LMA's: T = 2, w = 0.7, batchmean, KL.

Translation (``nmt_loss``; QD's and LMA's ``NMTLossCompute``, word-level KD): the same two terms per target token,
``((1 - w) Σ NLL + w T² Σ KL(p_teacher || p_student)) / n``, both sums over the ``n`` target positions that are not
padding (eos included). QD divided the sums by the batch's sentence count and LMA did not mask padding in the KL;
both are recorded deviations (docs/deviations.md).

ESNAC's candidates (``logit_mse``, its "KD"): the mean squared error between student and teacher logits,
``mean((z_s - z_t)²)`` over batch x classes.

Losses are computed in float32 whatever the autocast dtype of the logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from compresslib.catalog import PAD_ID
from compresslib.specs.training import KL_REDUCTIONS, SOFT_LOSSES

__all__ = ["kd_loss", "nmt_loss", "logit_mse"]


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


def nmt_loss(logits: torch.Tensor, tgt_out: torch.Tensor, teacher_logits: torch.Tensor | None = None, *,
             pad_id: int = PAD_ID, temperature: float = 1.0, weight: float = 0.7) -> torch.Tensor:
    """Token-level NLL, or word-level KD with ``teacher_logits``, per target token (float32).

    ``((1 - w) Σ NLL + w T² Σ KL(softmax(z_t / T) || softmax(z_s / T))) / n`` with both sums over the ``n`` target
    positions that are not ``pad_id`` (eos included). ``logits`` and ``teacher_logits`` are (B, T, V).
    """
    vocab = logits.shape[-1]
    student = logits.float().reshape(-1, vocab)
    targets = tgt_out.reshape(-1)
    real = targets.ne(pad_id)
    tokens = real.sum().clamp_min(1)
    nll = F.cross_entropy(student, targets, ignore_index=pad_id, reduction="sum")
    if teacher_logits is None:
        return nll / tokens
    log_student = F.log_softmax(student / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher_logits.float().reshape(-1, vocab) / temperature, dim=-1)
    kl = F.kl_div(log_student, log_teacher, reduction="none", log_target=True).sum(-1)
    kl = torch.where(real, kl, 0.0).sum()
    return ((1.0 - weight) * nll + weight * temperature ** 2 * kl) / tokens


def logit_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """ESNAC's candidate loss: ``mean((z_s - z_t)²)`` over every logit (float32)."""
    return F.mse_loss(student_logits.float(), teacher_logits.float())
