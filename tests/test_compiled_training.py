"""Compiled training steps (compresslib.training.compiled, spec.compile): a compiled run computes what an eager run
does, resumes to what an uninterrupted compiled run gives, and where compiling fails (at the first forward or only at
the first backward) falls back to eager with the state the failed step touched put back, so that its numbers are the
eager run's exactly; the record says which happened."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from compresslib.data.loader import DeviceLoader
from compresslib.io import load_torch
from compresslib.settings import SpecError, spec_hash
from compresslib.specs.training import build_spec
from compresslib.training import loop
from compresslib.training.compiled import CompiledModels, compile_wanted, training_models

# 512 training images in batches of 48: ten full batches and a kept partial one of 32, so a compiled run has two
# static training graphs. No dropout and no augmentation, so that eager and compiled runs can agree to float rounding:
# inductor draws dropout masks from its own generator, and the zero-padded borders of augmented crops make exact ties
# in max pooling, which eager and compiled kernels may send the gradient through differently (both are right). A
# small rate keeps the two trajectories close for longer (SGD amplifies any difference, see below).
TINY = {"dataset": "synthetic", "model": "demo_conv_student1", "model_kwargs": {"dropout": []}, "augment": False,
        "epochs": 2, "batch_size": 48, "lr": 0.005, "schedule": "constant", "eval_batch_size": 128, "threads": 1}


def _train(data: Path, run_dir: Path, **settings) -> dict:
    return loop.train(build_spec(TINY | settings), data, run_dir)


@pytest.fixture(scope="module")
def eager_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory, one_thread) -> Path:
    run_dir = tmp_path_factory.mktemp("eager")
    _train(tiny_dataset, run_dir, compile="off")
    return run_dir


@pytest.fixture(scope="module")
def compiled_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory, one_thread) -> Path:
    """The one really compiled run of the module (inductor's C++ on the CPU: tens of seconds with a cold cache)."""
    run_dir = tmp_path_factory.mktemp("compiled")
    _train(tiny_dataset, run_dir, compile="on")
    return run_dir


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "record.json").read_text())


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_torch(run_dir / "model.pt")["state_dict"]


def _assert_same_run(run_dir: Path, reference_dir: Path) -> None:
    """Bit for bit: metrics, curves, the whole history but its timings, and the weights."""
    record, reference = _record(run_dir), _record(reference_dir)
    assert record["metrics"] == reference["metrics"] and record["curve"] == reference["curve"]
    timings = ["train_seconds", "eval_seconds", "examples_per_s"]
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "history.csv").drop(columns=timings),
                                  pd.read_csv(reference_dir / "history.csv").drop(columns=timings))
    weights = _weights(run_dir)
    for key, value in _weights(reference_dir).items():
        assert torch.equal(value, weights[key]), key


def test_a_compiled_run_computes_what_the_eager_run_does(eager_run: Path, compiled_run: Path):
    """Within float rounding. Compiled kernels fuse and reorder fp32 arithmetic: a step differs from the eager one by
    ~1e-6 relative (more in a BatchNorm channel of tiny variance), and SGD amplifies that from step to step (on this
    data by up to ~100x an epoch, measured over seeds and rates). So the first epoch must agree to 1e-5 relative, the
    final one to 1e-3; an accuracy may differ by an example whose two top logits are that close (256 test images)."""
    eager, compiled = _record(eager_run), _record(compiled_run)
    assert compiled["timing"]["compile"] == {"requested": "on", "used": ["on"]}
    assert eager["timing"]["compile"] == {"requested": "off", "used": ["off"]}
    assert compiled["spec_hash"] == eager["spec_hash"]  # how a run executes is not part of what it is
    assert compiled["epoch_batches"] == {"count": 11, "last_size": 32, "dropped_examples": 0}  # the partial batch kept
    eager_history, compiled_history = pd.read_csv(eager_run / "history.csv"), pd.read_csv(compiled_run / "history.csv")
    for epoch, tolerance in enumerate((1e-5, 1e-3)):
        for column in ("train_loss", "test_loss"):
            assert compiled_history[column][epoch] == pytest.approx(eager_history[column][epoch], rel=tolerance)
        assert compiled_history.train_acc[epoch] == pytest.approx(eager_history.train_acc[epoch], abs=1 / 512)
        assert compiled_history.test_acc[epoch] == pytest.approx(eager_history.test_acc[epoch], abs=1 / 256)
    assert eager_history.train_loss[1] < 0.9 * eager_history.train_loss[0]  # it learnt: not a flat match
    eager_weights, compiled_weights = _weights(eager_run), _weights(compiled_run)
    for key, value in eager_weights.items():
        assert torch.allclose(compiled_weights[key].float(), value.float(), rtol=1e-3, atol=1e-5), key


class _Stopped(Exception):
    pass


def test_a_compiled_run_resumes_to_the_uninterrupted_compiled_run(tiny_dataset: Path, compiled_run: Path,
                                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   one_thread):
    train_epoch, epochs = loop.train_epoch, []

    def stopped_after_one_epoch(*args, **kwargs):
        if epochs:  # the first epoch's checkpoint is written: stop as a killed job would
            raise _Stopped
        epochs.append(1)
        return train_epoch(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(loop, "train_epoch", stopped_after_one_epoch)
        with pytest.raises(_Stopped):
            _train(tiny_dataset, tmp_path, compile="on")
    assert load_torch(tmp_path / "checkpoint.pt")["compile_used"] == ["on"]
    record = _train(tiny_dataset, tmp_path, compile="on")
    assert record["timing"]["resumed_from_epoch"] == 1
    assert record["timing"]["compile"] == {"requested": "on", "used": ["on", "on"]}
    _assert_same_run(tmp_path, compiled_run)


class _FailsInForward(nn.Module):
    """What torch.compile returns where compiling fails at the first call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("inductor: no working C++ compiler\nthe details")


class _RaiseInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor) -> torch.Tensor:
        return logits.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("backward graph: an unsupported op")


class _FailsInBackward(_FailsInForward):
    """What torch.compile returns where only the lazily compiled backward fails: the forward ran (BatchNorm's running
    statistics moved, dropout drew from the RNG) before the step failed."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return _RaiseInBackward.apply(self.model(inputs))


@pytest.mark.parametrize(("failing", "reason", "settings"), [
    (_FailsInForward, "RuntimeError: inductor: no working C++ compiler", {}),
    # with the model's dropout: the redone step must draw the same masks as the eager run's first step
    (_FailsInBackward, "RuntimeError: backward graph: an unsupported op", {"model_kwargs": {}}),
], ids=["forward", "backward"])
def test_a_failing_compile_falls_back_to_exactly_the_eager_run(failing: type, reason: str, settings: dict,
                                                                tiny_dataset: Path, eager_run: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture, one_thread):
    asked = []
    monkeypatch.setattr(torch, "compile", lambda model, **options: asked.append(options) or failing(model))
    with caplog.at_level(logging.WARNING, logger="compresslib.training.compiled"):
        record = _train(tiny_dataset, tmp_path / "fallback", compile="on", **settings)
    assert asked == [{"dynamic": False}]  # the trained model, static shapes (no teacher)
    assert record["timing"]["compile"] == {"requested": "on", "used": [f"failed ({reason}); eager"]}
    assert [message.getMessage() for message in caplog.records] == [
        f"torch.compile failed ({reason}); running eager instead"]
    reference = eager_run
    if settings:
        reference = tmp_path / "eager"
        _train(tiny_dataset, reference, compile="off", **settings)
    _assert_same_run(tmp_path / "fallback", reference)


def test_a_failing_compiled_evaluation_runs_eagerly_and_says_why(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch, "compile", lambda model, **options: _FailsInForward(model))
    model, inputs = nn.Linear(3, 2), torch.ones(1, 3)
    models = CompiledModels(model, compiled=True)
    assert models.used == "on"
    assert torch.equal(models.evaluate(lambda used: used(inputs)), model(inputs))
    assert models.used == "failed (RuntimeError: inductor: no working C++ compiler); eager"  # the first line only
    assert models.evaluate(lambda used: used) is model  # and eager from then on


def test_compile_setting_is_runtime_and_auto_compiles_on_cuda_only():
    assert spec_hash(build_spec({"compile": "on"})) == spec_hash(build_spec({"compile": "off"})) == spec_hash(
        build_spec({}))
    with pytest.raises(SpecError, match="^compile: got 'yes', expected one of auto, on, off$"):
        build_spec({"compile": "yes"})
    assert [compile_wanted(setting, torch.device(device)) for setting in ("auto", "on", "off")
            for device in ("cpu", "cuda")] == [False, True, True, True, False, False]
    lit = build_spec({"kind": "lit", "kd": {}, "lit": {}, "compile": "on"})
    assert training_models(lit, nn.Linear(3, 2), None, torch.device("cpu")).used == "on (lit phase 1 eager)"
    assert training_models(build_spec({"compile": "auto"}), nn.Linear(3, 2), None, torch.device("cpu")).used == "off"


@pytest.mark.parametrize(("examples", "batch_size", "drop_last", "expected"), [
    (512, 48, False, {"count": 11, "last_size": 32, "dropped_examples": 0}),
    (512, 48, True, {"count": 10, "last_size": 48, "dropped_examples": 32}),
    (513, 64, True, {"count": 8, "last_size": 64, "dropped_examples": 1}),  # the loop's rule: never a batch of one
    (512, 64, False, {"count": 8, "last_size": 64, "dropped_examples": 0}),
])
def test_epoch_batches_say_how_an_epoch_is_cut(examples: int, batch_size: int, drop_last: bool, expected: dict):
    loader = DeviceLoader(torch.zeros(examples, 3, 4, 4, dtype=torch.uint8), torch.zeros(examples, dtype=torch.int64),
                          batch_size=batch_size, augment=False, shuffle=True, drop_last=drop_last, mean=[0.5] * 3,
                          std=[0.5] * 3)
    assert loader.epoch_batches() == expected
    assert sum(len(labels) for _, labels in loader) == examples - expected["dropped_examples"]
