"""Real CIFAR-10 images from ../shared/data: prepared through the workflow script, then a short teacher run.

The shared folder holds real CIFAR-10 subsets (5085 train / 1017 test images) whose per-file md5s differ from the
official ones, so verification is switched off explicitly, as a user pointing at such a folder would do.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from compresslib.data.datasets import load_dataset
from compresslib.training.loop import train
from compresslib.specs.training import build_spec
from conftest import REPO, shared_data


def _prepare(root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "workflow_scripts/prepare_dataset.py"), "--dataset", "cifar10",
                           "--out", str(out), "--extracted", str(root), *extra], capture_output=True, text=True)


@pytest.fixture(scope="module")
def cifar10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = shared_data("cifar10")
    out = tmp_path_factory.mktemp("cifar10") / "dataset.pt"
    process = _prepare(root, out, "--no-verify")
    assert process.returncode == 0, process.stderr
    assert "checksum verification is OFF for cifar10" in process.stderr  # switched off, and it says so
    return out


def test_verification_on_refuses_the_subset(tmp_path: Path):
    process = _prepare(shared_data("cifar10"), tmp_path / "dataset.pt")
    assert process.returncode == 1 and "ChecksumError" in process.stderr and "data_batch_1" in process.stderr
    assert not any(tmp_path.iterdir())


def test_prepared_subset(cifar10: Path):
    data = load_dataset(cifar10)
    assert len(data["train_labels"]) == 5085 and len(data["test_labels"]) == 1017
    assert data["train_labels"][:5].tolist() == [6, 9, 9, 4, 1]
    assert data["provenance"]["verified"] is False and data["provenance"]["source"] == "extracted"


@pytest.mark.slow
def test_short_teacher_training_beats_chance_clearly(cifar10: Path, tmp_path: Path):
    spec = build_spec({"dataset": "cifar10", "model": "demo_conv_teacher", "epochs": 4, "batch_size": 64, "lr": 0.05,
                       "schedule": "multistep", "milestones": [3], "gamma": 0.2, "threads": 2})
    record = train(spec, cifar10, tmp_path)
    assert record["metrics"]["final_test_acc"] > 0.3  # 10 classes: chance is 0.1
    assert json.loads((tmp_path / "record.json").read_text())["provenance"]["dataset"]["verified"] is False
