"""LIT's phase 1: section wiring, the frozen stem and head, and the combined objective."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from compresslib.lit import check_pair, copy_and_freeze_ends, keep_ends_frozen, phase_one_loss
from compresslib.losses import kd_loss
from compresslib.models import create_model

IMAGES = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
TARGETS = torch.tensor([0, 3, 7, 9])
KD = {"temperature": 6.0, "weight": 0.05, "soft_loss": "cross_entropy"}  # LIT: alpha 0.95 on the hard term


def _pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    return create_model("resnet14", num_classes=10), create_model("resnet8", num_classes=10)


def test_student_sections_take_the_teachers_inputs_and_give_its_output_shapes():
    teacher, student = _pair()
    statistics = {key: value.clone() for key, value in teacher.state_dict().items()}
    check_pair(teacher.train(), student.train(), IMAGES[:1])
    assert teacher.training and student.training and all(module.training for module in student.modules())
    assert all(torch.equal(value, statistics[key]) for key, value in teacher.state_dict().items())  # ran in eval
    outputs = teacher.eval().section_outputs(IMAGES)
    for index, section in enumerate(student.sections):
        assert section(outputs[index]).shape == outputs[index + 1].shape
    with pytest.raises(ValueError, match="teacher and student differ at the output of section 0"):
        check_pair(teacher, _narrow_student(), IMAGES[:1])
    with pytest.raises(ValueError, match="needs models with stem / sections / head"):
        check_pair(create_model("demo_conv_student1", num_classes=10), student, IMAGES[:1])


def _narrow_student() -> torch.nn.Module:
    """A student whose first section widens differently: LIT cannot pair it with the teacher."""
    student = create_model("resnet8", num_classes=10)
    student.sections[0] = torch.nn.Conv2d(16, 8, 3, padding=1)
    return student


def test_phase_one_objective_combines_kd_and_section_losses_as_the_originals():
    teacher, student = _pair()
    copy_and_freeze_ends(teacher, student)
    teacher.eval()
    student.train()
    keep_ends_frozen(student)
    torch.manual_seed(1)
    halved = phase_one_loss(teacher, student, IMAGES, TARGETS, beta=0.75, combine="halved", **KD)
    outputs = teacher.section_outputs(IMAGES)
    expected_sections = [F.mse_loss(student.sections[i](outputs[i]), outputs[i + 1]) for i in range(3)]
    expected_kd = kd_loss(student(IMAGES), TARGETS, teacher(IMAGES), **KD)
    assert [loss.item() for loss in halved.sections] == pytest.approx([loss.item() for loss in expected_sections])
    assert halved.kd.item() == pytest.approx(expected_kd.item())
    expected = (0.75 * expected_kd + 0.25 * sum(expected_sections)) / 2
    assert halved.total.item() == pytest.approx(expected.item())
    summed = phase_one_loss(teacher, student, IMAGES, TARGETS, beta=0.05, combine="sections", **KD)
    assert summed.total.item() == pytest.approx((0.05 * summed.kd + 0.95 * sum(summed.sections)).item())
    with pytest.raises(ValueError, match="combine must be one of sections, halved"):
        phase_one_loss(teacher, student, IMAGES, TARGETS, beta=0.5, combine="mean", **KD)


def test_a_section_loss_reaches_only_its_own_section_and_the_ends_stay_frozen():
    teacher, student = _pair()
    frozen = copy_and_freeze_ends(teacher, student)
    assert frozen and all(name.startswith(("stem.", "head.")) for name in frozen)
    for name in ("stem", "head"):
        for key, value in getattr(student, name).state_dict().items():
            assert torch.equal(value, getattr(teacher, name).state_dict()[key]), (name, key)
    before = {key: value.clone() for key, value in student.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    teacher.eval()
    student.train()
    keep_ends_frozen(student)
    for _ in range(3):
        loss = phase_one_loss(teacher, student, IMAGES, TARGETS, beta=0.0, combine="sections", **KD)
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
    after = student.state_dict()
    for key, value in before.items():
        if key.startswith(("stem.", "head.")):  # parameters and BatchNorm statistics alike
            assert torch.equal(after[key], value), key
    assert any(not torch.equal(after[key], value) for key, value in before.items() if key.startswith("sections."))

    # with beta = 0 the loss of section 1 gives no gradient to sections 0 and 2
    student.zero_grad()
    outputs = teacher.section_outputs(IMAGES)
    F.mse_loss(student.sections[1](outputs[1]), outputs[2]).backward()
    for index, section in enumerate(student.sections):
        has_grad = any(p.grad is not None and p.grad.abs().sum() > 0 for p in section.parameters())
        assert has_grad == (index == 1), index
