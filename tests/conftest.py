"""Shared fixtures: repository paths, the offline real-data folder, a tiny prepared dataset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test when that folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real-data sample {path} is absent (it lives in ../shared/data beside the checkout)")
    return path


def run_snakemake(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    """Run this environment's snakemake from the repository root; return the finished process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.run([str(SNAKEMAKE), *args], cwd=cwd, capture_output=True, text=True, env=env)
    if check and process.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({process.returncode}):\n"
                             f"{process.stdout[-4000:]}\n{process.stderr[-4000:]}")
    return process


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the SLURM cluster test last: it is the longest, and it installs and removes system packages."""
    items.sort(key=lambda item: item.path.name == "test_slurm.py")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared synthetic dataset small enough for unit-test training runs (512 train / 256 test)."""
    from compresslib.data.datasets import prepare_dataset

    path = tmp_path_factory.mktemp("data") / "dataset.pt"
    prepare_dataset("synthetic", path, synthetic={"train_size": 512, "test_size": 256, "seed": 3})
    return path


@pytest.fixture(scope="module")
def one_thread():
    """One torch intra-op thread for a module's tests (tiny networks run faster, and identically, on one)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
