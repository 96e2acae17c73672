"""Differentiable quantization: point allocation, the gradient rule, re-sorting, the packed file, a DQ run; and
post-training quantization of a trained student."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from compresslib.models import create_model, load_model
from compresslib.quantization.differentiable import (LearnedPoints, LearnedPointsQuantizer, allocate_points,
                                                     gradient_norms, initial_points)
from compresslib.quantization.pack import load_packed, pack_model
from compresslib.quantization.shadow import quantized_parameter_names
from compresslib.quantization.uniform import fake_quantize
from compresslib.settings import SpecError, build_settings
from compresslib.training.loop import train
from compresslib.training.post_training import post_training_quantize
from compresslib.specs.training import PostTrainingSpec, build_spec

EXAMPLE = torch.zeros(1, 3, 32, 32)
TINY = {"dataset": "synthetic", "model": "demo_conv_student1", "epochs": 2, "batch_size": 32, "lr": 0.05,
        "schedule": "constant", "eval_batch_size": 128, "threads": 1}
DQ = TINY | {"kind": "quantize", "lr": 1e-3, "kd": {}, "quant": {"method": "dq", "bits": 2, "bucket_size": 64}}


def pm_spec(bucket_size: int | None) -> PostTrainingSpec:
    """Post-training quantization at 2 bits."""
    return build_settings(PostTrainingSpec, {"quant": {"method": "pm", "bits": 2, "bucket_size": bucket_size}})


@pytest.fixture(scope="module")
def student_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained full-precision student (hard labels), the starting point of DQ and PM."""
    run_dir = tmp_path_factory.mktemp("student")
    labels = {"dataset": "synthetic", "teacher": "t", "student": "s"}
    train(build_spec(TINY | {"kind": "undistilled", "labels": labels}), tiny_dataset, run_dir)
    return run_dir


def test_allocation_keeps_half_and_shares_the_rest_by_gradient_norm():
    # 3 tensors x 4 points = 12; each keeps 2, the other 6 go 3:2:1 -> 5, 4, 3
    assert allocate_points([3.0, 2.0, 1.0], 4) == [5, 4, 3]
    # 4 x 16 = 64; each keeps 8; 32 shared as 0.1/0.2/0.3/0.4 -> 3.2, 6.4, 9.6, 12.8 -> 3, 6, 10, 13
    assert allocate_points([1.0, 2.0, 3.0, 4.0], 16) == [11, 14, 18, 21]
    # 3 x 4 = 12; shares 1.5, 1.5, 3 round (half to even) to 2, 2, 3: one too many, taken from the largest
    assert allocate_points([1.0, 1.0, 2.0], 4) == [4, 4, 4]
    # 3 x 6 = 18; each keeps 3; shares 2.25, 2.25, 4.5 round to 2, 2, 4: one too few, given to the smallest
    assert allocate_points([1.0, 1.0, 2.0], 6) == [6, 5, 7]
    assert allocate_points([0.0, 0.0], 8) == [8, 8]  # no gradient: everyone keeps its share
    for norms in ([0.3, 7.0, 0.01, 2.5, 1.0], [1.0] * 7, [5.0, 1e-9]):
        assert sum(allocate_points(norms, 16)) == 16 * len(norms)


def test_initial_points_are_percentiles_or_uniform_levels():
    scaled = torch.rand(1000, generator=torch.Generator().manual_seed(0))
    expected = np.percentile(scaled.double().numpy(), np.linspace(0, 100, 5))
    assert torch.allclose(initial_points(scaled, 5, "quantiles"), torch.from_numpy(expected).float())
    assert torch.equal(initial_points(scaled, 5, "uniform"), torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    with pytest.raises(ValueError, match="quantiles, uniform"):
        initial_points(scaled, 5, "kmeans")


def test_elements_go_to_their_nearest_point_and_gradients_follow_the_rule():
    torch.manual_seed(0)
    weight = torch.randn(300)
    points = LearnedPoints(weight, 4, bucket_size=100, init="uniform")
    points.points.data = torch.tensor([0.0, 0.2, 0.7, 1.0])
    quantized = points(weight)
    buckets = weight.reshape(3, 100)
    minimum, maximum = buckets.min(1, keepdim=True).values, buckets.max(1, keepdim=True).values
    scaled = (buckets - minimum) / (maximum - minimum)
    nearest = (scaled[..., None] - points.points.detach()).abs().argmin(-1)
    expected = minimum + points.points.detach()[nearest] * (maximum - minimum)
    assert torch.allclose(quantized, expected.flatten())
    assert quantized.unique().numel() <= 3 * 4

    # dL/dp_k = sum over elements j assigned to k of (max - min)_bucket(j) * dL/dw_j
    upstream = torch.randn(300)
    (quantized * upstream).sum().backward()
    manual = torch.zeros(4)
    spread = (maximum - minimum).expand(3, 100).flatten()
    manual.index_add_(0, nearest.flatten(), spread * upstream)
    assert torch.allclose(points.points.grad, manual, atol=1e-5)


def test_only_the_points_train_and_they_stay_sorted():
    torch.manual_seed(0)
    model = create_model("demo_conv_student1", num_classes=10, activation="relu")
    names = quantized_parameter_names(model, EXAMPLE, quantize_first_last=False)
    before = {name: value.clone() for name, value in model.named_parameters()}
    quantizer = LearnedPointsQuantizer(model, names, [4] * len(names), bucket_size=64, init="quantiles")
    assert all(not p.requires_grad for n, p in model.named_parameters() if not n.endswith(".points"))
    optimizer = torch.optim.SGD(quantizer.parameters(), lr=10.0)  # big steps: points cross each other
    inputs, targets = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
        quantizer.after_step()
        for points in quantizer.parameters():
            assert torch.equal(points, points.sort().values)
    codes = quantizer.finalize_()
    after = dict(model.named_parameters())
    for name in before:
        if name in names:  # each bucket of a tensor holds at most its tensor's points
            rows = after[name].detach().flatten()
            assert rows.unique().numel() <= 4 * -(-rows.numel() // 64)
            assert torch.equal(codes[name].dequantize(), after[name].detach())
        else:
            assert torch.equal(after[name], before[name]), name  # full-precision layers never move


def test_gradient_norms_average_over_batches_in_eval_mode():
    layer = nn.Linear(3, 1, bias=False)
    layer.weight.data = torch.tensor([[1.0, 0.0, 0.0]])
    batches = [(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([0.0])), (torch.tensor([[3.0, 2.0, 1.0]]), torch.tensor([0.0]))]
    # loss = w.x, so the gradient is x; mean of the two inputs is (2, 2, 2) with norm sqrt(12)
    norms = gradient_norms(layer, ["weight"], batches, lambda output, target: output.sum())
    assert norms == pytest.approx([12 ** 0.5])


def test_a_dq_run_learns_points_of_the_trained_student_and_packs_them_exactly(student_run: Path, tiny_dataset: Path,
                                                                              tmp_path: Path):
    init = student_run / "model.pt"
    record = train(build_spec(DQ), tiny_dataset, tmp_path, teacher_path=init, init_path=init)
    quantization = record["quantization"]
    assert record["kind"] == "quantize" and quantization["method"] == "dq"
    counts = quantization["points_per_tensor"]
    assert sum(counts.values()) == 4 * len(counts) and len(set(counts.values())) > 1  # auto bits shared them out
    assert record["provenance"]["init_model"]["sha256"] == record["provenance"]["teacher_model"]["sha256"]

    trained, _ = load_model(init)
    model, _ = load_model(tmp_path / "model.pt")
    for name, parameter in model.named_parameters():
        if name in quantization["full_precision_tensors"]:
            assert torch.equal(parameter, dict(trained.named_parameters())[name]), name
        else:
            assert parameter.unique().numel() <= counts[name] * -(-parameter.numel() // 64), name
    packed, _ = load_packed(tmp_path / "model.packed")
    inputs = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(packed(inputs), model.eval()(inputs))
    assert quantization["packed_bytes"] == (tmp_path / "model.packed").stat().st_size
    assert quantization["compression"] == pytest.approx(record["model"]["bytes_fp32"] / quantization["packed_bytes"])


def test_dq_needs_an_init_model_of_the_same_architecture(student_run: Path, tiny_dataset: Path, tmp_path: Path):
    init = student_run / "model.pt"
    with pytest.raises(ValueError, match="needs an init model"):
        train(build_spec(DQ), tiny_dataset, tmp_path, teacher_path=init)
    with pytest.raises(ValueError, match="is 'demo_conv_student1'.*but this run builds 'demo_conv_student0'"):
        train(build_spec(DQ | {"model": "demo_conv_student0"}), tiny_dataset, tmp_path, teacher_path=init,
              init_path=init)
    with pytest.raises(SpecError, match="quant.points_init: got 'kmeans'"):
        build_spec(DQ | {"quant": {"method": "dq", "points_init": "kmeans"}})
    assert not (tmp_path / "record.json").exists()


@pytest.mark.parametrize("bucket_size", [64, None], ids=["bucket64", "no-bucket"])
def test_post_training_quantization_writes_a_packed_record(student_run: Path, tiny_dataset: Path, tmp_path: Path,
                                                           bucket_size: int | None):
    record = post_training_quantize(pm_spec(bucket_size), student_run / "model.pt", tiny_dataset, tmp_path)
    quantization = record["quantization"]
    assert record["kind"] == "quantize" and quantization["method"] == "pm" and quantization["bucket_size"] == bucket_size
    assert record["labels"] == {"dataset": "synthetic", "teacher": "t", "student": "s"}
    full_precision = json.loads((student_run / "record.json").read_text())["metrics"]["final_test_acc"]
    assert record["metrics"]["full_precision_test_acc"] == full_precision  # same model, same test set
    assert record["metrics"]["final_test_acc"] == record["metrics"]["best_test_acc"]

    trained, _ = load_model(student_run / "model.pt")
    model, _ = load_model(tmp_path / "model.pt")
    for name, parameter in model.named_parameters():
        original = dict(trained.named_parameters())[name]
        expected = original if name in quantization["full_precision_tensors"] else fake_quantize(original, 2, bucket_size)
        assert torch.equal(parameter, expected), name
    packed, _ = load_packed(tmp_path / "model.packed")
    with torch.no_grad():
        inputs = torch.randn(4, 3, 32, 32)
        assert torch.equal(packed(inputs), model.eval()(inputs))
    if bucket_size is None:
        assert quantization["buckets"] == len(model.state_dict()) - len(quantization["full_precision_tensors"]) - sum(
            1 for key in model.state_dict() if key not in dict(model.named_parameters()))
    with pytest.raises(ValueError, match="already quantized"):
        post_training_quantize(pm_spec(64), tmp_path / "model.pt", tiny_dataset, tmp_path / "again")


def test_points_survive_the_packed_file_for_wide_codes(tmp_path: Path):
    """A tensor given more than 256 points (auto bits at 8 bits) needs codes wider than a byte."""
    kwargs = {"num_classes": 10, "activation": "relu"}
    model = create_model("demo_conv_student1", **kwargs)
    name = max(model.state_dict(), key=lambda key: model.state_dict()[key].numel())  # a tensor of > 700 elements
    quantizer = LearnedPointsQuantizer(model, [name], [700], bucket_size=None, init="quantiles")
    codes = quantizer.finalize_()
    assert codes[name].bits == 10
    path = tmp_path / "wide.packed"
    pack_model(path, model, "demo_conv_student1", kwargs, codes)
    data = path.read_bytes()
    assert b'"bits":10' in data and b'"points":700' in data
    packed, _ = load_packed(path)
    for key, value in model.state_dict().items():
        assert torch.equal(packed.state_dict()[key], value), key
