"""The training loop on a tiny synthetic dataset: outputs, record contents, resume after a kill, errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compresslib.data.datasets import prepare_dataset
from compresslib.data.loader import DeviceLoader
from compresslib.io import load_torch
from compresslib.runs.checkpoint import CheckpointMismatch, save_checkpoint
from compresslib.runs.lifecycle import TrainingDiverged
from compresslib.settings import SpecError
from compresslib.training.compiled import CompiledModels
from compresslib.training.loop import HISTORY_COLUMNS, train, train_epoch
from compresslib.specs.training import build_spec
from conftest import killed_and_resumed, train_script_command

TINY = {"dataset": "synthetic", "model": "demo_conv_student1", "epochs": 3, "batch_size": 32, "lr": 0.05,
        "schedule": "multistep", "milestones": [2], "eval_batch_size": 128, "threads": 1}


@pytest.fixture(scope="module")
def teacher_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("teacher")
    train(build_spec(TINY | {"model": "demo_conv_student0", "labels": {"teacher": "t"}}), tiny_dataset, run_dir)
    return run_dir


def test_teacher_outputs_and_record(teacher_run: Path, tiny_dataset: Path):
    assert sorted(p.name for p in teacher_run.iterdir()) == [".finished", "history.csv", "model.pt", "model.pt.sha256",
                                                            "record.json"]
    record = json.loads((teacher_run / "record.json").read_text())
    history = pd.read_csv(teacher_run / "history.csv")
    assert list(history.columns) == list(HISTORY_COLUMNS) and list(history.epoch) == [1, 2, 3]
    assert list(history.lr) == pytest.approx([0.05, 0.05, 0.005])  # multistep at epoch 2, gamma 0.1
    metrics = record["metrics"]
    assert record["kind"] == "teacher" and record["labels"] == {"teacher": "t"}
    assert metrics["final_test_acc"] == history.test_acc.iloc[-1] == record["curve"]["test_acc"][-1]
    assert metrics["best_test_acc"] == history.test_acc.max()  # test-as-validation: best val == best test
    assert metrics["final_test_acc"] > 0.15  # a tiny net on 512 images still beats chance (0.10)
    assert record["model"]["params"] == 107_098 and record["spec"]["validation"] == "test"
    assert record["provenance"]["dataset"]["source"] == "synthetic"
    assert len(record["spec_hash"]) == 64 and record["provenance"]["packages"]["torch"].startswith("2.14")
    assert record["hardware"]["device"] == "cpu" and record["timing"]["train_examples_per_s"] > 0
    model_file = load_torch(teacher_run / "model.pt")
    assert model_file["dataset"] == "synthetic" and model_file["normalization"]["mean"] == [0.5, 0.5, 0.5]


def test_student_distils_from_teacher(teacher_run: Path, tiny_dataset: Path, tmp_path: Path):
    spec = build_spec(TINY | {"kind": "distill", "activation": "lma4", "kd": {"kl_reduction": "mean"},
                              "selection": "best"})
    record = train(spec, tiny_dataset, tmp_path, teacher_path=teacher_run / "model.pt")
    assert record["kind"] == "distill" and record["bins"] == 4 and record["activation_family"] == "lma"
    assert record["provenance"]["teacher_model"]["path"].endswith("model.pt")
    assert record["metrics"]["selected_test_acc"] == record["metrics"]["best_test_acc"]
    assert record["model"]["activation_params"] == 2 * 4 * 5  # five LMA-4 layers


def test_holdout_validation_is_recorded_and_used(tiny_dataset: Path, tmp_path: Path):
    spec = build_spec(TINY | {"epochs": 1, "validation": "holdout", "holdout_size": 100})
    record = train(spec, tiny_dataset, tmp_path)
    assert record["spec"]["validation"] == "holdout"
    assert record["metrics"]["final_val_acc"] != record["metrics"]["final_test_acc"]  # 100 held-out vs 256 test images


def _train_command(data: Path, run_dir: Path, *extra: str) -> list[str]:
    return train_script_command(data, run_dir, TINY | {"epochs": 4}, *extra)


DQ_OF_TEACHER = ("--teacher", "{teacher}", "--init", "{teacher}", 'kind="quantize"', 'model="demo_conv_student0"',
                 'quant.method="dq"', "quant.bits=2", "quant.bucket_size=64", "kd.weight=0.7", "lr=0.001")
# LIT from a ResNet-14 to a ResNet-8, 4 epochs in all: killed at the phase boundary or inside phase 2 ...
LIT_OF_RESNET = ("--teacher", "{lit_teacher}", 'kind="lit"', 'model="resnet8"', "kd.temperature=6", "kd.weight=0.05",
                 'kd.soft_loss="cross_entropy"', "lit.epochs=2", "lit.lr=0.05", "lit.milestones=[1]", "lit.beta=0.75",
                 'lit.combine="halved"', 'lit.optimizer="shared"', "epochs=2")
# ... or inside phase 1 or at the boundary, with one optimiser per section
LIT_LONG_PHASE_ONE = (*LIT_OF_RESNET, "lit.epochs=3", "epochs=1", 'lit.optimizer="per_section"')
# per step: 16 batches of 32 an epoch, 4 epochs: T = 64 steps, W = 16, floor 0.005; killed inside the decay
COSINE = ('schedule="cosine"', "warmup_epochs=1", "lr_floor_fraction=0.1")


@pytest.fixture(scope="module")
def lit_teacher_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("lit-teacher")
    train(build_spec(TINY | {"model": "resnet14", "epochs": 1}), tiny_dataset, run_dir)
    return run_dir


@pytest.mark.parametrize("extra", [(), ('kind="quantize"', "quant.bits=2", "quant.bucket_size=64"), DQ_OF_TEACHER,
                                   LIT_OF_RESNET, LIT_LONG_PHASE_ONE, COSINE],
                         ids=["fp32", "quantized", "differentiable-quantization", "lit-boundary-or-phase-2",
                              "lit-phase-1-or-boundary", "cosine"])
def test_killed_run_resumes_to_bit_identical_results(tiny_dataset: Path, tmp_path: Path, extra: tuple[str, ...],
                                                     teacher_run: Path, lit_teacher_run: Path):
    """SIGKILL a training process after its second epoch's checkpoint, rerun it, compare with an uninterrupted run."""
    extra = tuple(item.format(teacher=teacher_run / "model.pt", lit_teacher=lit_teacher_run / "model.pt")
                  for item in extra)
    reference, resumed = killed_and_resumed(lambda run_dir: _train_command(tiny_dataset, run_dir, *extra), tmp_path)
    assert resumed["lit"] == reference["lit"]  # LIT: the per-section losses too; None otherwise
    if "lit.epochs=2" in extra:  # a LIT run: phase 1, then full-model KD, the sections' losses of phase 1
        history = pd.read_csv(tmp_path / "resumed/history.csv")
        phase_one = 3 if "lit.epochs=3" in extra else 2
        assert list(history.phase) == ["lit"] * phase_one + ["full_model"] * (4 - phase_one)
        assert resumed["kind"] == "lit" and resumed["lit"]["sections"] == 3
        assert [len(curve) for curve in resumed["lit"]["section_mse"]] == [phase_one] * 3
        assert history.section1_mse.notna().sum() == phase_one
    if extra == COSINE:  # the curve's rate is each epoch's first step's: steps 0, 16, 32, 48
        assert resumed["epoch_batches"]["count"] == 16
        assert resumed["curve"]["lr"] == pytest.approx([0.05 / 17, 0.05, 0.005 + 0.0225 * 1.5, 0.005 + 0.0225 * 0.5])
        assert {key: resumed["spec"][key] for key in ("schedule", "lr", "warmup_epochs", "lr_floor_fraction")} == {
            "schedule": "cosine", "lr": 0.05, "warmup_epochs": 1, "lr_floor_fraction": 0.1}


def test_a_per_step_schedule_sets_the_rate_of_every_step():
    """train_epoch writes each step's rate before that step, the kept partial last batch's included."""
    seen = []

    class RecordingSGD(torch.optim.SGD):
        def step(self, closure=None):
            seen.append(self.param_groups[0]["lr"])
            return super().step(closure)

    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10))
    loader = DeviceLoader(torch.zeros(10, 3, 4, 4, dtype=torch.uint8), torch.arange(10), batch_size=4,
                          augment=False, shuffle=False, mean=[0.5] * 3, std=[0.5] * 3)  # batches of 4, 4 and 2
    optimizer = RecordingSGD(model.parameters(), lr=1.0)
    train_epoch(CompiledModels(model, compiled=False), loader, [optimizer],
                lambda logits, targets, _: F.cross_entropy(logits, targets), torch.autocast("cpu", enabled=False),
                step_rates=[0.3, 0.2, 0.1])
    assert seen == [0.3, 0.2, 0.1]


def test_checkpoint_from_other_settings_is_refused(tiny_dataset: Path, tmp_path: Path):
    # an unfinished run written with another learning rate
    checkpoint = tmp_path / "checkpoint.pt"
    spec = build_spec(TINY | {"epochs": 4, "lr": 0.5})
    save_checkpoint(checkpoint, {"identity": spec.identity(), "sessions": [], "next_epoch": 1})
    written = checkpoint.read_bytes()
    with pytest.raises(CheckpointMismatch, match=r"lr: 0.5 in the checkpoint, 0.05 requested.*delete the checkpoint"):
        train(build_spec(TINY | {"epochs": 4}), tiny_dataset, tmp_path)
    assert checkpoint.read_bytes() == written and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_input_errors(teacher_run: Path, tiny_dataset: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match="needs both a teacher model and kd settings"):
        train(build_spec(TINY), tiny_dataset, run_dir, teacher_path=teacher_run / "model.pt")
    with pytest.raises(ValueError, match="holds dataset 'synthetic', but the spec asks for 'cifar10'"):
        train(build_spec(TINY | {"dataset": "cifar10"}), tiny_dataset, run_dir)
    with pytest.raises(ValueError, match="must see the same inputs"):
        train(build_spec(TINY | {"kind": "distill", "kd": {}, "mean": [0.4, 0.4, 0.4]}), tiny_dataset, run_dir,
              teacher_path=teacher_run / "model.pt")
    with pytest.raises(ValueError, match="holdout_size must be in"):
        train(build_spec(TINY | {"validation": "holdout", "holdout_size": 512}), tiny_dataset, run_dir)
    assert not run_dir.exists()  # refused before writing anything


def test_divergence_stops_with_a_clear_error(tiny_dataset: Path, tmp_path: Path):
    with pytest.raises(TrainingDiverged, match="diverged in epoch 1"):
        train(build_spec(TINY | {"lr": 1e12, "momentum": 0.0, "weight_decay": 0.0}), tiny_dataset, tmp_path)
    assert not (tmp_path / "record.json").exists() and not (tmp_path / "model.pt").exists()


def test_script_reports_bad_settings_in_one_line(tiny_dataset: Path, tmp_path: Path):
    process = subprocess.run(_train_command(tiny_dataset, tmp_path, "lr=-1"), capture_output=True, text=True)
    assert process.returncode == 1
    assert "SpecError: lr: got -1.0, expected a number > 0" in process.stderr
    assert "Traceback" not in process.stderr


def test_a_text_run_reads_character_ids_and_can_hold_out_validation(tmp_path: Path):
    data = tmp_path / "text.pt"
    prepare_dataset("synthetic_text", data, synthetic={"train_size": 600, "test_size": 200, "seed": 1, "length": 64})
    spec = build_spec({"dataset": "synthetic_text", "model": "demo_vdcnn_student", "epochs": 2, "batch_size": 32,
                       "lr": 0.01, "augment": False, "validation": "holdout", "holdout_size": 100, "threads": 1})
    record = train(spec, data, tmp_path / "run")
    assert record["metrics"]["final_val_acc"] != record["metrics"]["final_test_acc"]  # 100 held out vs 200 test
    assert record["metrics"]["epochs_run"] == 2 and record["model"]["params"] == 430_613
    assert load_torch(tmp_path / "run/model.pt")["normalization"] == {"mean": None, "std": None}
    with pytest.raises(SpecError, match="augment: got True, expected false for the text dataset synthetic_text"):
        build_spec({"dataset": "synthetic_text", "augment": True})
