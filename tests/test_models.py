"""Model registry and the QD/LMA architectures: exact parameter counts, activation wiring, model files."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compresslib.activations import LMA, Swish
from compresslib.models import (count_parameters, create_model, is_model, list_models, load_model, register_model,
                                save_model)

# Paper targets (reference/seeds.md §1.6, §2.5): conv nets at 10 classes, wide ResNets at 100.
PARAMETER_COUNTS = {
    ("qd_conv_teacher", 10): 5_346_142,
    ("qd_conv_student0", 10): 1_000_235,
    ("qd_conv_student1", 10): 318_415,
    ("qd_conv_student2", 10): 111_935,
    ("wide_resnet16_10", 100): 17_179_940,
    ("wide_resnet10_4", 100): 1_223_300,
    ("wide_resnet10_2", 100): 316_004,
}


@pytest.mark.parametrize(("name", "num_classes"), sorted(PARAMETER_COUNTS))
def test_parameter_counts_match_the_papers(name: str, num_classes: int):
    model = create_model(name, num_classes=num_classes)
    assert count_parameters(model) == PARAMETER_COUNTS[name, num_classes]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, num_classes)


def test_rounded_counts_as_published():
    """The counts the papers print (M parameters, two decimals), from the models themselves."""
    rounded = {name: round(count_parameters(create_model(name, num_classes=classes)) / 1e6, 2)
               for name, classes in PARAMETER_COUNTS}
    assert rounded["qd_conv_teacher"] == 5.35 and rounded["qd_conv_student0"] == 1.00
    assert rounded["wide_resnet16_10"] == 17.18 and rounded["wide_resnet10_4"] == 1.22
    assert rounded["wide_resnet10_2"] == 0.32


@pytest.mark.parametrize(("activation", "extra"), [("relu", (0, 0, 0)), ("prelu", (5, 5, 5)),
                                                    ("swish", (700, 510, 350)), ("aplu8", (8400, 6120, 4200)),
                                                    ("lma8", (80, 80, 80))])
def test_activation_parameters_of_lma_students(activation: str, extra: tuple[int, int, int]):
    """LMA's extra parameters per student (reference/seeds.md §2.3)."""
    for index, expected in enumerate(extra):
        name = f"qd_conv_student{index}"
        assert count_parameters(create_model(name, activation=activation)) - PARAMETER_COUNTS[name, 10] == expected


def test_wide_resnet_uses_the_activation_in_every_block():
    """LMA's released WRN dropped the activation from the blocks; here every block and the head get it."""
    model = create_model("wide_resnet10_2", activation="lma4")
    lma_layers = [m for m in model.modules() if isinstance(m, LMA)]
    assert len(lma_layers) == 3 * 2 + 1  # 3 stages x 1 block x 2 activations + the head
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())


def test_conv_net_block_order_is_conv_bn_activation_pool_dropout():
    model = create_model("qd_conv_student0", activation="swish")
    kinds = [type(m).__name__ for m in model.features]
    assert kinds[:6] == ["Conv2d", "BatchNorm2d", "Swish", "Conv2d", "BatchNorm2d", "Swish"]
    assert kinds[6:8] == ["MaxPool2d", "Dropout2d"]
    assert isinstance(model.classifier, nn.Linear)  # plain logits: no ReLU after the output layer
    swish_widths = [m.beta.numel() for m in model.modules() if isinstance(m, Swish)]
    assert swish_widths == [75, 50, 50, 25, 500]


def test_dropout_can_be_removed_through_kwargs():
    model = create_model("qd_conv_student0", dropout=[])
    assert not any(isinstance(m, (nn.Dropout, nn.Dropout2d)) for m in model.modules())


def test_registry_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown model 'resnet9000'.*qd_conv_teacher"):
        create_model("resnet9000")
    with pytest.raises(TypeError, match="model 'qd_conv_student0'.*width"):
        create_model("qd_conv_student0", width=3)
    with pytest.raises(ValueError, match="already registered"):
        register_model(create_model.__globals__["_MODELS"]["qd_conv_teacher"])
    assert is_model("wide_resnet10_4") and not is_model("nope")
    assert list_models("wide_resnet*") == ["wide_resnet10_2", "wide_resnet10_4", "wide_resnet16_10"]
    assert count_parameters(create_model("qd_conv_student1", activation=None)) == 318_415  # None -> default


def test_model_file_round_trip(tmp_path):
    torch.manual_seed(0)
    model = create_model("qd_conv_student2", activation="lma8").train()
    model(torch.randn(8, 3, 32, 32))  # move BN and LMA running statistics away from their initial values
    model.eval()
    save_model(tmp_path / "model.pt", model, "qd_conv_student2", {"activation": "lma8"}, extra={"dataset": "cifar10"})
    loaded, meta = load_model(tmp_path / "model.pt")
    loaded.eval()
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(model(x), loaded(x))
    assert meta["dataset"] == "cifar10" and "state_dict" not in meta


def test_model_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_model(tmp_path / "missing.pt")
    torch.save({"format": 1, "name": "qd_conv_student2", "kwargs": {}, "state_dict": {}}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt: weights do not fit"):
        load_model(tmp_path / "bad.pt")
