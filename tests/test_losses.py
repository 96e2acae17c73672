"""The one KD loss against hand-computed values, and the relations between its flavours."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from compresslib.losses import kd_loss

STUDENT = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
TEACHER = torch.tensor([[3.0, 0.0, -2.0], [-1.0, 2.0, 0.5]])
TARGETS = torch.tensor([0, 1])


def _by_hand(temperature: float, weight: float, per_element: bool) -> float:
    """Hinton KD written out element by element."""
    total_kl, total_ce = 0.0, 0.0
    for s_row, t_row, y in zip(STUDENT.tolist(), TEACHER.tolist(), TARGETS.tolist()):
        s_soft = [math.exp(v / temperature) for v in s_row]
        t_soft = [math.exp(v / temperature) for v in t_row]
        p_s = [v / sum(s_soft) for v in s_soft]
        p_t = [v / sum(t_soft) for v in t_soft]
        total_kl += sum(t * math.log(t / s) for t, s in zip(p_t, p_s))
        total_ce += -math.log(math.exp(s_row[y]) / sum(math.exp(v) for v in s_row))
    batch = len(TARGETS)
    kl = total_kl / (batch * STUDENT.shape[1] if per_element else batch)
    return weight * temperature**2 * kl + (1 - weight) * total_ce / batch


@pytest.mark.parametrize(("temperature", "weight"), [(2.0, 0.7), (4.0, 0.5), (1.0, 1.0)])
def test_matches_hand_computation(temperature: float, weight: float):
    lma = kd_loss(STUDENT, TARGETS, TEACHER, temperature=temperature, weight=weight)
    qd = kd_loss(STUDENT, TARGETS, TEACHER, temperature=temperature, weight=weight, kl_reduction="mean")
    assert lma.item() == pytest.approx(_by_hand(temperature, weight, per_element=False), rel=1e-6)
    assert qd.item() == pytest.approx(_by_hand(temperature, weight, per_element=True), rel=1e-6)


def test_precomputed_values():
    """Regression values (LMA defaults T=2, w=0.7; QD's per-element mean), computed once by _by_hand."""
    assert kd_loss(STUDENT, TARGETS, TEACHER).item() == pytest.approx(0.3088268, rel=1e-6)
    assert kd_loss(STUDENT, TARGETS, TEACHER, kl_reduction="mean").item() == pytest.approx(0.1822179, rel=1e-6)


def test_qd_soft_term_is_batchmean_over_classes():
    batchmean = kd_loss(STUDENT, TARGETS, TEACHER, weight=1.0)
    mean = kd_loss(STUDENT, TARGETS, TEACHER, weight=1.0, kl_reduction="mean")
    assert mean.item() == pytest.approx(batchmean.item() / 3, rel=1e-6)


def test_limits():
    ce = F.cross_entropy(STUDENT, TARGETS)
    assert kd_loss(STUDENT, TARGETS).item() == pytest.approx(ce.item())  # no teacher: hard labels only
    assert kd_loss(STUDENT, TARGETS, TEACHER, weight=0.0).item() == pytest.approx(ce.item())
    assert kd_loss(STUDENT, TARGETS, STUDENT, weight=1.0).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="kl_reduction"):
        kd_loss(STUDENT, TARGETS, TEACHER, kl_reduction="sum")


def test_gradient_flows_to_student_only_and_bf16_logits_work():
    student = STUDENT.clone().requires_grad_(True)
    teacher = TEACHER.clone().requires_grad_(True)
    kd_loss(student, TARGETS, teacher.detach()).backward()
    assert student.grad is not None and teacher.grad is None
    low = kd_loss(STUDENT.bfloat16(), TARGETS, TEACHER.bfloat16())
    assert low.dtype == torch.float32 and low.item() == pytest.approx(0.3088268, rel=2e-2)


def _lit_by_hand(temperature: float, alpha: float) -> float:
    """LIT's AlphaDistillationLoss: [alpha * sum CE + (1 - alpha) * T^2 * sum H(p_t, p_s)] / N."""
    total = 0.0
    for s_row, t_row, y in zip(STUDENT.tolist(), TEACHER.tolist(), TARGETS.tolist()):
        p_s = [math.exp(v / temperature) / sum(math.exp(u / temperature) for u in s_row) for v in s_row]
        p_t = [math.exp(v / temperature) / sum(math.exp(u / temperature) for u in t_row) for v in t_row]
        hard = -math.log(math.exp(s_row[y]) / sum(math.exp(v) for v in s_row))
        total += alpha * hard + (1 - alpha) * temperature**2 * -sum(t * math.log(s) for t, s in zip(p_t, p_s))
    return total / len(TARGETS)


@pytest.mark.parametrize(("temperature", "alpha"), [(6.0, 0.95), (1.0, 0.5)])
def test_lit_soft_cross_entropy_matches_its_loss_and_keeps_the_kl_gradient(temperature: float, alpha: float):
    student = STUDENT.clone().requires_grad_(True)
    lit = kd_loss(student, TARGETS, TEACHER, temperature=temperature, weight=1 - alpha, soft_loss="cross_entropy")
    assert lit.item() == pytest.approx(_lit_by_hand(temperature, alpha), rel=1e-5)
    (lit_grad,) = torch.autograd.grad(lit, student)
    kl = kd_loss(student, TARGETS, TEACHER, temperature=temperature, weight=1 - alpha)
    (kl_grad,) = torch.autograd.grad(kl, student)
    assert torch.allclose(lit_grad, kl_grad, atol=1e-6)  # the teacher's entropy has no student gradient
    assert lit.item() > kl.item()
    with pytest.raises(ValueError, match="soft_loss must be one of"):
        kd_loss(student, TARGETS, TEACHER, soft_loss="mse")
