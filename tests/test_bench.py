"""The benchmark harness (compresslib.bench): what each path really does, that both train the same model, the
JSON's figures and ratios, the command line. Nothing here asserts a speed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch.utils.data import get_worker_info
from torchvision import transforms

from compresslib.bench import speed
from compresslib.bench.__main__ import main
from compresslib.bench.accuracy import AccuracySettings, format_accuracy, run_accuracy
from compresslib.bench.pairs import PAIRS, Pair
from compresslib.bench.reference import ReferenceTraining, reference_loader
from compresslib.bench.resident import ResidentTraining, build_views, resident_loader
from compresslib.devices import Placement

from conftest import REPO

CPU = torch.device("cpu")
# a pair small enough for unit tests: the demo teacher and the smaller demo student, batch 8, no dropout (so that a
# few dozen steps visibly learn)
TINY = Pair("demo_conv_teacher", "demo_conv_student1", "synthetic", batch_size=8, lr=0.05, weight_decay=0.0,
            model_kwargs={"dropout": []})


@pytest.fixture(autouse=True)
def tiny_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PAIRS, "tiny", TINY)


def _toy(count: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """A learnable toy: the class sets the brightness of the whole image."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(count) % 10
    images = labels.view(-1, 1, 1, 1) * 25 + torch.randint(0, 20, (count, 3, 32, 32), generator=generator)
    return images.to(torch.uint8), labels


class _InWorkerOnly:
    """Wraps a transform; fails when called outside a DataLoader worker process."""

    def __init__(self, transform: transforms.Compose) -> None:
        self.transform = transform

    def __call__(self, image):
        if get_worker_info() is None:
            raise AssertionError("the reference's transforms ran in the main process")
        return self.transform(image)


class _CountCalls(torch.nn.Module):
    """Wraps a model and counts its forward calls (and checks it runs in eval mode)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        assert not self.model.training, "the teacher must run in eval mode"
        self.calls += 1
        return self.model(inputs)


def test_reference_transforms_images_on_the_cpu_in_worker_processes():
    images, labels = _toy(32)
    loader = reference_loader(images, labels, TINY, train=True, workers=2, device=CPU)
    steps = [type(step) for step in loader.dataset.transform.transforms]
    assert steps == [transforms.RandomCrop, transforms.RandomHorizontalFlip, transforms.ToTensor, transforms.Normalize]
    assert loader.num_workers == 2 and loader.drop_last
    loader.dataset.transform = _InWorkerOnly(loader.dataset.transform)
    batches = list(loader)
    assert len(batches) == 4
    inputs, targets = batches[0]
    assert inputs.dtype == torch.float32 and inputs.shape == (8, 3, 32, 32) and inputs.min() < 0  # normalised
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == sorted(labels.tolist())


@pytest.mark.parametrize("path", ["reference", "resident"])
def test_an_online_teacher_runs_once_per_batch(path):
    images, labels = _toy(32)
    torch.manual_seed(0)
    student, teacher = TINY.build(TINY.student), _CountCalls(TINY.build(TINY.teacher))
    if path == "reference":
        loader = reference_loader(images, labels, TINY, train=True, workers=1, device=CPU)
        training = ReferenceTraining(student, loader, TINY.optimizer(student), CPU, teacher)
    else:
        training = ResidentTraining(student, resident_loader(images, labels, TINY, train=True, device=CPU),
                                    TINY.optimizer(student), teacher=teacher)
    training.run(3)
    training.run(4)  # past the end of the first epoch (4 batches)
    assert teacher.calls == 7


def test_cached_views_give_the_online_teachers_loss_and_never_run_it():
    images, labels = _toy(16)
    torch.manual_seed(0)
    student, teacher = TINY.build(TINY.student), TINY.build(TINY.teacher).eval()
    views = build_views(teacher, resident_loader(images, labels, TINY, train=True, device=CPU), TINY)
    counted = _CountCalls(teacher)
    losses = {}
    for name, source in (("online", {"teacher": counted}), ("cached", {"views": views})):
        model = TINY.build(TINY.student)
        model.load_state_dict(student.state_dict())
        torch.manual_seed(1)  # the same dropout masks
        training = ResidentTraining(model, resident_loader(images, labels, TINY, train=True, device=CPU, seed=3),
                                    TINY.optimizer(model), **source)
        losses[name] = [training.run(1) for _ in range(3)]  # 3 steps cross the 2-batch epoch: later plans too
    assert counted.calls == 3
    # the table stores bf16 logits: the KD term differs by that rounding only
    assert losses["cached"] == pytest.approx(losses["online"], rel=2e-2)


@pytest.mark.parametrize("kd", [False, True], ids=["ce", "kd"])
def test_both_paths_train_the_same_model_and_learn(kd):
    images, labels = _toy(64)
    torch.manual_seed(0)
    initial = TINY.build(TINY.student)
    teacher = TINY.build(TINY.teacher) if kd else None
    curves = {}
    for path in ("reference", "resident"):
        model = TINY.build(TINY.student)
        model.load_state_dict(initial.state_dict())
        optimizer = TINY.optimizer(model)
        if path == "reference":
            loader = reference_loader(images, labels, TINY, train=True, workers=0, device=CPU)
            training = ReferenceTraining(model, loader, optimizer, CPU, teacher)
        else:
            training = ResidentTraining(model, resident_loader(images, labels, TINY, train=True, device=CPU),
                                        optimizer, teacher=teacher)
        curves[path] = [training.run(8) for _ in range(6)]  # mean loss per 8 steps
        assert type(model) is type(initial) and optimizer.param_groups[0]["params"][0] is next(model.parameters())
    for path, curve in curves.items():
        assert sum(curve[-2:]) / 2 < 0.8 * curve[0], f"{path}: the loss did not fall ({curve})"


def test_every_measurement_of_the_plan_runs(tmp_path):
    """Every kind of measurement, in this process (the CLI gives each a fresh one)."""
    settings = speed.SpeedSettings(device="cpu", pairs=("tiny",), tasks=speed.TASKS, images=16, steps=2, warmup=1,
                                   workers=1, compile=False)
    plan = speed.plan_measurements(settings.pairs, settings.tasks)
    assert [(m.task, m.path) for m in plan] == [
        ("teacher", "reference"), ("teacher", "resident"), ("ce", "reference"), ("ce", "resident"),
        ("kd", "reference"), ("kd", "resident"), ("views", "resident"), ("kd", "resident_cached"),
        ("inference", "reference"), ("inference", "resident"), ("inference", "reference"), ("inference", "resident")]
    for measurement in plan:
        figures = speed.measure(measurement, settings, tmp_path)
        unit = "views" if measurement.task == "views" else "images"
        assert figures[f"{unit}_per_s"] > 0 and figures["seconds"] > 0 and figures["peak_memory_bytes"] > 0
        assert figures["compile"] == "off"
        expected = {"views": 16 * 162, "inference": 16}.get(measurement.task, 2 * TINY.batch_size)
        assert figures[unit] == expected


def _check_speed_result(result: dict) -> None:
    """Every figure positive; every ratio b/a of the measurements it names (tasks ce and kd)."""
    measurements = {(m["pair"], m["task"], m["model"], m["path"]): m for m in result["measurements"]}
    assert len(measurements) == len(result["measurements"]) == 6
    for m in result["measurements"]:
        speed_figure = m["views_per_s"] if m["task"] == "views" else m["images_per_s"]
        assert speed_figure > 0 and m["seconds"] > 0 and m["peak_memory_bytes"] >= m["start_memory_bytes"] > 0
    assert len(result["ratios"]) == 3  # ce, kd online, kd cached
    for ratio in result["ratios"]:
        ours = measurements[(ratio["pair"], ratio["task"], ratio["model"], ratio["path"])]
        base = measurements[(ratio["pair"], ratio["task"], ratio["model"], "reference")]
        assert ratio["speed_ratio"] == pytest.approx(ours["images_per_s"] / base["images_per_s"])
        assert ratio["memory_ratio"] == pytest.approx(ours["peak_memory_bytes"] / base["peak_memory_bytes"])
    reuse, = result["teacher_reuse"]
    pair = reuse["pair"]
    ce, online, cached = (measurements[(pair, task, PAIRS[pair].student, path)]["images_per_s"]
                          for task, path in (("ce", "resident"), ("kd", "resident"), ("kd", "resident_cached")))
    assert reuse["kd_cached_over_ce_epoch_time"] == pytest.approx(ce / cached)
    assert reuse["cached_over_online_speed"] == pytest.approx(cached / online)
    assert reuse["faster_per_epoch"] == ("cached" if cached > online else "online")
    assert reuse["table_build_s"] > 0
    assert reuse["break_even_student_epochs"] is None or reuse["break_even_student_epochs"] > 0


def test_speed_command_line_end_to_end(tmp_path):
    out = tmp_path / "speed.json"
    # every kind of measurement runs in test_every_measurement_of_the_plan_runs; here the two tasks that the
    # teacher-reuse figures need, each measurement in its own process as the command runs them
    process = subprocess.run([sys.executable, "-m", "compresslib.bench", "speed", "--device", "cpu", "--images", "64",
                              "--steps", "2", "--warmup", "1", "--workers", "1", "--tasks", "ce,kd",
                              "--out", str(out)],
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "teacher reuse" in process.stdout and "demo_conv_student0" in process.stdout
    result = json.loads(out.read_text())
    assert result["settings"] == {"device": "cpu", "pairs": ["demo"], "tasks": ["ce", "kd"], "images": 64,
                                  "steps": 2, "warmup": 1, "workers": 1, "compile": False, "seed": 0}
    assert result["hardware"]["device_type"] == "cpu" and result["software"]["packages"]["torch"]
    _check_speed_result(result)


def test_accuracy_check_runs_every_path_and_compares(tmp_path):
    settings = AccuracySettings(device="cpu", pair="tiny", epochs=1, seeds=(1, 2), images=16, test_images=16,
                                workers=0, compile=False)
    result = run_accuracy(settings, Placement(CPU))
    json.dumps(result)  # all plain values
    assert set(result["paths"]) == {"reference", "resident", "resident_cached"}
    for summary in result["paths"].values():
        assert len(summary["test_accuracy"]) == 2 and all(0 <= a <= 1 for a in summary["test_accuracy"])
    for comparison in result["against_reference"].values():
        assert isinstance(comparison["within_seed_noise"], bool)
    assert "within" in format_accuracy(result) or "OUTSIDE" in format_accuracy(result)


@pytest.mark.parametrize("argv, message", [
    (["speed", "--pairs", "demo,resnet"], "resnet given; choose from demo, conv, wrn"),
    (["speed", "--tasks", "train"], "train given; choose from teacher, ce, kd, inference"),
    (["speed", "--steps", "0"], "must be >= 1, got 0"),
    (["speed", "--warmup", "x"], "'x' is not a whole number"),
    (["speed", "--device", "gpu"], "'gpu' is not auto, cpu, cuda or cuda:N"),
    (["accuracy", "--pair", "wrn16"], "invalid choice: 'wrn16'"),
    (["accuracy", "--seeds", "1,two"], "not a comma-separated list of whole numbers"),
])
def test_bad_arguments_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["speed", "--device", "cpu", "--images", "32"], "images (32) must hold at least one batch of pair demo (64)"),
    (["accuracy", "--device", "cpu", "--seeds", "1"], "at least two distinct seeds"),
])
def test_bad_settings_are_explained_before_anything_runs(argv, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        main(argv)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(ValueError, match=r"--device cuda: 0 CUDA device\(s\) visible"):
        main(["speed", "--device", "cuda"])
