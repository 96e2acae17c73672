"""CIFAR ResNets for LIT: exact parameter counts, option-A shortcuts, activations and the section API."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from compresslib.activations import LMA
from compresslib.models import count_parameters, create_model, list_models, load_model, save_model
from compresslib.models.resnet_cifar import CifarResNet, ShortcutA

# 10 classes, ReLU. He et al. / akamaster print 0.27 M and 1.7 M for ResNet-20 and ResNet-110.
PARAMETER_COUNTS = {
    "resnet8": 75_290,
    "resnet14": 172_506,
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
}
BLOCKS_PER_STAGE = {"resnet8": 1, "resnet14": 2, "resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9,
                     "resnet110": 18}
PAIRS = [("resnet110", "resnet20"), ("resnet14", "resnet8")]  # (teacher, student)


@pytest.mark.parametrize("name", sorted(PARAMETER_COUNTS))
def test_parameter_counts_and_output_shape(name: str):
    model = create_model(name)
    assert count_parameters(model) == PARAMETER_COUNTS[name]
    assert model.blocks_per_stage == BLOCKS_PER_STAGE[name]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_rounded_counts_and_option_b_difference():
    assert round(PARAMETER_COUNTS["resnet20"] / 1e6, 2) == 0.27
    assert round(PARAMETER_COUNTS["resnet110"] / 1e6, 2) == 1.73
    # The often-quoted 1,730,714 for ResNet-110 is option B: 1x1 conv + BN projections at 16->32 and 32->64.
    option_b_extra = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert PARAMETER_COUNTS["resnet110"] + option_b_extra == 1_730_714
    assert count_parameters(create_model("resnet20", num_classes=100)) == PARAMETER_COUNTS["resnet20"] + 90 * 65


def test_models_are_registered():
    assert set(list_models("resnet*")) - set(PARAMETER_COUNTS) == {"resnet10", "resnet18", "resnet34"}  # ESNAC's


def test_depth_must_be_6n_plus_2():
    with pytest.raises(ValueError, match="6n \\+ 2"):
        CifarResNet(depth=21)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        CifarResNet(depth=2)


@pytest.mark.parametrize("name", ["resnet8", "resnet20"])
def test_forward_is_the_composition_of_stem_sections_head(name: str):
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        outputs = model.section_outputs(x)
        composed = model.stem(x)
        for section in model.sections:
            composed = section(composed)
        logits = model(x)
    assert isinstance(model.sections, nn.ModuleList) and len(model.sections) == 3
    assert len(outputs) == len(model.sections) + 1
    assert [tuple(h.shape) for h in outputs] == [(3, 16, 32, 32), (3, 16, 32, 32), (3, 32, 16, 16), (3, 64, 8, 8)]
    assert torch.equal(composed, outputs[-1])
    assert torch.equal(logits, model.head(outputs[-1]))
    assert torch.equal(logits, model.head(composed))
    assert model.forward_head(outputs[-1], pre_logits=True).shape == (3, 64)


@pytest.mark.parametrize(("teacher_name", "student_name"), PAIRS)
def test_student_sections_fit_between_teacher_features(teacher_name: str, student_name: str):
    torch.manual_seed(0)
    teacher, student = create_model(teacher_name).eval(), create_model(student_name).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = teacher.section_outputs(x)
        for index, section in enumerate(student.sections):
            assert section(features[index]).shape == features[index + 1].shape
        student.stem.load_state_dict(teacher.stem.state_dict())
        student.head.load_state_dict(teacher.head.state_dict())
        assert torch.equal(student.stem(x), features[0])
        assert torch.equal(student.head(features[-1]), teacher(x))


def test_option_a_shortcut_has_no_parameters_and_zero_pads():
    model = create_model("resnet20")
    shortcuts = [m for m in model.modules() if isinstance(m, ShortcutA)]
    assert len(shortcuts) == 2  # first block of stages 2 and 3; every other shortcut is the identity
    assert all(not list(m.parameters()) and not list(m.buffers()) for m in shortcuts)
    assert isinstance(model.sections[0][0].shortcut, nn.Identity)
    x = torch.randn(2, 16, 32, 32)
    out = model.sections[1][0].shortcut(x)
    assert out.shape == (2, 32, 16, 16)
    assert torch.equal(out[:, :8], torch.zeros(2, 8, 16, 16))  # planes // 4 = 8 zero channels on each side
    assert torch.equal(out[:, 24:], torch.zeros(2, 8, 16, 16))
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    out = model.sections[2][0].shortcut(torch.randn(2, 32, 16, 16))
    assert out.shape == (2, 64, 8, 8) and not out[:, :16].any() and not out[:, 48:].any()


@pytest.mark.parametrize("name", ["resnet8", "resnet20"])
def test_activation_is_used_in_stem_and_every_block(name: str):
    model = create_model(name, activation="lma4")
    activations = 1 + 3 * BLOCKS_PER_STAGE[name] * 2  # the stem + two per block
    assert len([m for m in model.modules() if isinstance(m, LMA)]) == activations
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert count_parameters(model) - PARAMETER_COUNTS[name] == activations * 2 * 4  # LMA: 2K per layer
    model.train()
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_initialisation():
    torch.manual_seed(0)
    model = create_model("resnet110")
    conv = model.sections[2][5].conv1.weight  # 64 x 64 x 3 x 3: Kaiming normal, fan-in 576
    assert conv.std().item() == pytest.approx(math.sqrt(2 / 576), rel=0.05)
    assert conv.mean().abs().item() < 0.01
    bn = model.sections[1][3].bn2
    assert torch.equal(bn.weight, torch.ones(32)) and torch.equal(bn.bias, torch.zeros(32))
    assert model.head.fc.weight.std().item() == pytest.approx(math.sqrt(2 / 64), rel=0.1)


def test_lit_initialisation_uses_fan_out_and_leaves_the_classifier_at_the_default():
    torch.manual_seed(0)
    model = create_model("resnet110", init="lit")
    first = model.sections[1][0].conv1.weight  # 32 x 16 x 3 x 3: fan-out 288 differs from fan-in 144
    assert first.std().item() == pytest.approx(math.sqrt(2 / 288), rel=0.05)
    fc = model.head.fc.weight  # PyTorch's Linear default: uniform within 1 / sqrt(fan-in)
    assert fc.abs().max().item() <= 1 / math.sqrt(64) and fc.std().item() < math.sqrt(2 / 64) / 2
    with pytest.raises(ValueError, match="init must be one of akamaster, lit"):
        create_model("resnet20", init="xavier")


def test_model_file_round_trip(tmp_path):
    torch.manual_seed(0)
    model = create_model("resnet8", activation="swish").train()
    model(torch.randn(8, 3, 32, 32))  # move the BN running statistics
    model.eval()
    save_model(tmp_path / "model.pt", model, "resnet8", {"activation": "swish"})
    loaded, _ = load_model(tmp_path / "model.pt")
    loaded.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), loaded(x))
