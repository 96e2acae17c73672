"""VDCNN (LIT's text models): exact parameter counts, k-max pooling, block layout, the section API."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compresslib.models import count_parameters, create_model, list_models, load_model, save_model
from compresslib.models.vdcnn import KMaxPool1d, MaxPoolBlock, kmax_pooling

# The maxpool variants at 5 classes (Amazon Review Full); the FC head is 12,597,253 of each.
PARAMETER_COUNTS = {
    "vdcnn9": 14_178_133,
    "vdcnn17": 16_270_933,
    "vdcnn29": 16_641_877,
    "vdcnn49": 19_770_453,
    "demo_vdcnn_student": 430_613,
    "demo_vdcnn_teacher": 562_133,
}
HEAD_PARAMETERS = 4096 * 2048 + 2048 + 2048 * 2048 + 2048 + 2048 * 5 + 5


def _ids(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 69, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(PARAMETER_COUNTS))
def test_parameter_counts(name: str):
    assert count_parameters(create_model(name, num_classes=5)) == PARAMETER_COUNTS[name]


def test_rounded_counts_as_published():
    """LIT's 14.18 / 16.27 / 16.64 M, and the conv parts 1.58 / 3.67 / 4.04 M, from the models themselves."""
    models = {name: create_model(name) for name in ("vdcnn9", "vdcnn17", "vdcnn29")}
    assert {name: round(count_parameters(m) / 1e6, 2) for name, m in models.items()} == {
        "vdcnn9": 14.18, "vdcnn17": 16.27, "vdcnn29": 16.64}
    assert all(count_parameters(m.head) == HEAD_PARAMETERS for m in models.values())
    conv = {name: round((count_parameters(m) - HEAD_PARAMETERS) / 1e6, 2) for name, m in models.items()}
    assert conv == {"vdcnn9": 1.58, "vdcnn17": 3.67, "vdcnn29": 4.04}


def test_registered_names():
    assert list_models("vdcnn*") == ["vdcnn17", "vdcnn29", "vdcnn49", "vdcnn9"]
    assert list_models("demo_vdcnn*") == ["demo_vdcnn_student", "demo_vdcnn_teacher"]


def test_kmax_pooling_keeps_the_original_order():
    x = torch.tensor([[[5.0, 1.0, 9.0, 3.0, 7.0, 2.0]], [[0.0, 8.0, 1.0, 6.0, 4.0, 2.0]]])
    assert torch.equal(kmax_pooling(x, 3), torch.tensor([[[5.0, 9.0, 7.0]], [[8.0, 6.0, 4.0]]]))
    assert torch.equal(KMaxPool1d(6)(x), x)  # k = length: everything, unchanged
    with pytest.raises(ValueError, match="at least k = 7, got 6"):
        KMaxPool1d(7)(x)


def test_full_model_on_short_text_and_the_minimum_length():
    """Three pools map L to ceil(L / 8); k = 8 needs it >= 8, so L >= 57."""
    model = create_model("vdcnn9").eval()
    assert model.min_input_length == 57
    with torch.no_grad():
        assert model(_ids(2, 57)).shape == (2, 5)
        assert [h.shape for h in model.section_outputs(_ids(2, 64))] == [
            (2, 64, 64), (2, 64, 64), (2, 128, 32), (2, 256, 16), (2, 512, 8)]
        with pytest.raises(ValueError, match="too short"):
            model(_ids(2, 56))


def test_block_layout():
    model = create_model("vdcnn17")
    blocks = [block for section in model.sections for block in section]
    assert len(model.sections) == 4 and [len(s) for s in model.sections] == [2, 2, 2, 2]
    pools = [isinstance(block.pool, nn.MaxPool1d) for block in blocks]
    assert pools == [False, False, True, False, True, False, True, False]  # first block of sections 1..3
    assert (blocks[2].conv1.in_channels, blocks[2].conv1.out_channels) == (64, 128)
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv1d))  # as in LIT, stem included
    assert model.stem.embedding.padding_idx is None
    assert not any(isinstance(m, nn.Conv1d) and m.bias is None for m in create_model("vdcnn9", bias=True).modules())
    conv = blocks[-1].conv2.weight  # Kaiming normal, fan_in = 512 * 3
    assert abs(conv.std().item() / (2 / (512 * 3)) ** 0.5 - 1) < 0.02
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any()
               for m in model.modules() if isinstance(m, nn.BatchNorm1d))


def test_maxpool_block_halves_the_length_only_when_widening():
    x = torch.randn(2, 8, 11)
    assert MaxPoolBlock(8, 16)(x).shape == (2, 16, 6)
    assert MaxPoolBlock(8, 8)(x).shape == (2, 8, 11)


def test_forward_is_the_composition_of_the_sections():
    torch.manual_seed(0)
    model = create_model("demo_vdcnn_teacher")
    model(_ids(8, 128))  # train mode: move the BN running statistics
    model.eval()
    x = _ids(4, 128, seed=1)
    with torch.no_grad():
        h = model.stem(x)
        outputs = [h]
        for index in range(4):
            h = model.sections[index](h)
            outputs.append(h)
        logits = model.head(h)
        assert torch.equal(model(x), logits)
        assert all(torch.equal(a, b) for a, b in zip(model.section_outputs(x), outputs, strict=True))
        assert torch.equal(model.forward_head(model.forward_features(x)), logits)
        assert model.forward_head(h, pre_logits=True).shape == (4, 256)


@pytest.mark.parametrize(("student_name", "teacher_name", "length"),
                         [("demo_vdcnn_student", "demo_vdcnn_teacher", 128), ("vdcnn9", "vdcnn17", 64)])
def test_teacher_and_student_sections_are_interchangeable(student_name: str, teacher_name: str, length: int):
    """LIT feeds a student section the teacher's h_i and copies the teacher's stem and head into the student."""
    student, teacher = create_model(student_name).eval(), create_model(teacher_name).eval()
    with torch.no_grad():
        hidden = teacher.section_outputs(_ids(2, length))
        for index, section in enumerate(student.sections):
            assert section(hidden[index]).shape == hidden[index + 1].shape
    for part in ("stem", "head"):
        shapes = {key: value.shape for key, value in getattr(teacher, part).state_dict().items()}
        assert shapes == {key: value.shape for key, value in getattr(student, part).state_dict().items()}
        getattr(student, part).load_state_dict(getattr(teacher, part).state_dict())


def test_only_relu_is_supported():
    with pytest.raises(ValueError, match="only activation 'relu', got 'lma8'"):
        create_model("demo_vdcnn_student", activation="lma8")
    assert count_parameters(create_model("demo_vdcnn_student", activation="relu")) == 430_613
    assert count_parameters(create_model("demo_vdcnn_student", activation=None)) == 430_613  # None -> default


def test_demo_model_trains_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = create_model("demo_vdcnn_student", num_classes=3)
    loss = nn.functional.cross_entropy(model(_ids(8, 128)), torch.arange(8) % 3)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    save_model(tmp_path / "model.pt", model, "demo_vdcnn_student", {"num_classes": 3})
    loaded, _ = load_model(tmp_path / "model.pt")
    x = _ids(4, 128, seed=2)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.eval()(x))
