"""Quantized distillation: which parameters are quantized, shadow weights, and a quantized training run."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from compresslib.data.datasets import load_dataset
from compresslib.data.loader import DeviceLoader
from compresslib.io import load_torch
from compresslib.models import create_model, load_model
from compresslib.quantization.shadow import (ShadowQuantizer, forward_order_layers, quantize_model_,
                                             quantized_parameter_names)
from compresslib.quantization.uniform import fake_quantize
from compresslib.training.loop import evaluate, train
from compresslib.specs.training import build_spec

EXAMPLE = torch.zeros(1, 3, 32, 32)
QD_RUN = {"kind": "quantize", "dataset": "synthetic", "model": "demo_conv_student1", "epochs": 2, "batch_size": 32,
          "lr": 0.05, "schedule": "constant", "eval_batch_size": 128, "threads": 1,
          "quant": {"bits": 2, "bucket_size": 64}}


class OutputFirst(nn.Module):
    """Registers its classifier before its features, as QD's ConvolForwardNet does."""

    def __init__(self) -> None:
        super().__init__()
        self.out = nn.Linear(8, 10)
        self.conv = nn.Conv2d(3, 8, 3)
        self.norm = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(self.conv(x)).mean((2, 3)))


def test_first_and_last_layers_follow_the_forward_pass_not_registration():
    model = OutputFirst()
    assert forward_order_layers(model, EXAMPLE) == ["conv", "out"]
    assert quantized_parameter_names(model, EXAMPLE, quantize_first_last=False) == ["norm.weight", "norm.bias"]
    # the original's rule: parameter tensors 0 and -1 in registration order (here out.weight and norm.bias)
    assert quantized_parameter_names(model, EXAMPLE, False, skip_by="registration") == [
        "out.bias", "conv.weight", "conv.bias", "norm.weight"]
    assert quantized_parameter_names(model, EXAMPLE, quantize_first_last=True) == [n for n, _ in model.named_parameters()]
    with pytest.raises(ValueError, match="skip_by must be one of layers, registration"):
        quantized_parameter_names(model, EXAMPLE, False, skip_by="modules")


def test_paper_student_keeps_its_first_convolution_and_classifier_in_full_precision():
    model = create_model("qd_conv_student0", num_classes=10, activation="relu")
    names = quantized_parameter_names(model, EXAMPLE, quantize_first_last=False)
    skipped = [name for name, _ in model.named_parameters() if name not in names]
    assert skipped == ["features.0.weight", "features.0.bias", "classifier.weight", "classifier.bias"]


def test_shadow_weights_are_used_at_their_quantized_point_and_restored():
    torch.manual_seed(0)
    model = create_model("demo_conv_student1", num_classes=10, activation="relu")
    names = quantized_parameter_names(model, EXAMPLE, quantize_first_last=False)
    quantizer = ShadowQuantizer(model, names, bits=2, bucket_size=64)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    inputs, targets = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))

    with quantizer.quantized():
        for name, parameter in model.named_parameters():
            expected = fake_quantize(before[name], 2, 64) if name in names else before[name]
            assert torch.equal(parameter, expected), name
        torch.manual_seed(1)  # same dropout masks in both passes
        nn.functional.cross_entropy(model(inputs), targets).backward()
    for name, value in model.state_dict().items():
        if name in dict(model.named_parameters()):
            assert torch.equal(value, before[name]), name  # the full-precision values are back

    # the gradient is the one of the quantized network (straight-through to the shadow weights)
    reference = copy.deepcopy(model)
    reference.load_state_dict(before)
    reference.zero_grad(set_to_none=True)
    with torch.no_grad():
        for name, parameter in reference.named_parameters():
            if name in names:
                parameter.copy_(fake_quantize(parameter, 2, 64))
    torch.manual_seed(1)
    nn.functional.cross_entropy(reference(inputs), targets).backward()
    for (name, parameter), (_, expected) in zip(model.named_parameters(), reference.named_parameters()):
        assert torch.equal(parameter.grad, expected.grad), name


def test_a_quantized_run_saves_the_quantized_model_and_reports_both_accuracies(tiny_dataset: Path, tmp_path: Path):
    record = train(build_spec(QD_RUN), tiny_dataset, tmp_path)
    quantization = record["quantization"]
    assert quantization["bits"] == 2 and quantization["bucket_size"] == 64 and quantization["skip_by"] == "layers"
    assert quantization["full_precision_tensors"] == ["features.0.weight", "features.0.bias", "classifier.weight",
                                                      "classifier.bias"]
    assert quantization["quantized_params"] + quantization["full_precision_params"] == record["model"]["params"]

    history = pd.read_csv(tmp_path / "history.csv")
    assert {"shadow_val_acc", "shadow_test_acc"} <= set(history.columns)
    assert record["metrics"]["final_shadow_test_acc"] == history.shadow_test_acc.iloc[-1]

    model, _ = load_model(tmp_path / "model.pt", torch.device("cpu"))
    for name, parameter in model.named_parameters():
        if name not in quantization["full_precision_tensors"]:
            assert torch.equal(parameter, fake_quantize(parameter, 2, 64)), name  # on its 2-bit grid
    # the reported accuracy is the saved (quantized) model's
    dataset = load_dataset(tiny_dataset)
    loader = DeviceLoader(dataset["test_inputs"], dataset["test_labels"], batch_size=128, augment=False,
                          shuffle=False, mean=[0.5] * 3, std=[0.5] * 3, device=torch.device("cpu"))
    assert evaluate(model, loader)[0] == record["metrics"]["final_test_acc"]
    assert json.loads((tmp_path / "record.json").read_text())["spec"]["quant"]["bits"] == 2
    assert load_torch(tmp_path / "model.pt")["spec"]["quant"]["bucket_size"] == 64


@pytest.mark.parametrize("bucket_size", [256, None], ids=["bucket256", "no-bucket"])
def test_post_training_quantization_rounds_a_trained_model_in_place(bucket_size):
    torch.manual_seed(3)
    model = create_model("demo_conv_student1", num_classes=10, activation="relu")
    before = {name: value.clone() for name, value in model.named_parameters()}
    names = list(quantize_model_(model, EXAMPLE, bits=2, bucket_size=bucket_size))  # the codes, by name
    assert names == quantized_parameter_names(model, EXAMPLE, quantize_first_last=False)
    for name, parameter in model.named_parameters():
        expected = fake_quantize(before[name], 2, bucket_size) if name in names else before[name]
        assert torch.equal(parameter, expected), name
        if name in names and bucket_size is None:
            assert parameter.unique().numel() <= 4  # one 2-bit grid per tensor


def test_quantization_settings_are_checked_by_one_rule_and_named_in_the_spec():
    from compresslib.settings import SpecError

    with pytest.raises(SpecError, match=r"^quant\.bits must be an integer from 2 to 8, got 9$"):
        build_spec({"kind": "quantize", "quant": {"bits": 9}})
    with pytest.raises(SpecError, match=r"^quant\.bucket_size must be a positive integer or None"):
        build_spec({"kind": "quantize", "quant": {"bucket_size": 0}})
    with pytest.raises(ValueError, match="bits must be an integer from 2 to 8"):
        ShadowQuantizer(nn.Linear(2, 2), ["weight"], bits=1, bucket_size=None)
