"""read_cifar on the real CIFAR subsets in shared/data, and its error cases.

The shared subsets (see shared/data/README.md) hold the first images of each official batch file,
byte for byte, so labels and pixels match the official release, but the per-file md5s do not:
reading them needs verify_checksums=False, and verification must name the first mismatching file.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10, CIFAR100

from compresslib.data.cifar import CIFAR_FOLDERS, read_cifar
from compresslib.data.download import ChecksumError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CIFAR10_ROOT = SHARED_DATA / "cifar10"
CIFAR100_ROOT = SHARED_DATA / "cifar100"
CIFAR10_FILES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"]


def _require(root: Path, dataset: str) -> Path:
    if not (root / CIFAR_FOLDERS[dataset]).is_dir():
        pytest.skip(f"real {dataset} subset not found at {root / CIFAR_FOLDERS[dataset]} (see shared/data/README.md)")
    return root


@pytest.fixture(scope="module")
def cifar10() -> dict:
    return read_cifar(_require(CIFAR10_ROOT, "cifar10"), "cifar10", verify_checksums=False)


@pytest.fixture(scope="module")
def cifar100() -> dict:
    return read_cifar(_require(CIFAR100_ROOT, "cifar100"), "cifar100", verify_checksums=False)


def test_cifar10_subset(cifar10: dict):
    assert cifar10["train_inputs"].shape == (5085, 3, 32, 32)
    assert cifar10["test_inputs"].shape == (1017, 3, 32, 32)
    assert cifar10["train_inputs"].dtype == cifar10["test_inputs"].dtype == torch.uint8
    assert cifar10["train_inputs"].is_contiguous() and cifar10["test_inputs"].is_contiguous()
    assert cifar10["train_labels"].dtype == cifar10["test_labels"].dtype == torch.int64
    assert cifar10["train_labels"].shape == (5085,) and cifar10["test_labels"].shape == (1017,)
    assert cifar10["train_labels"][:5].tolist() == [6, 9, 9, 4, 1]
    assert cifar10["test_labels"][:5].tolist() == [3, 8, 8, 0, 6]
    assert cifar10["classes"] == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                                  "truck"]
    assert list(cifar10["files"]) == [f"cifar-10-batches-py/{name}" for name in CIFAR10_FILES]
    # batches.meta is the official file, so its md5 is torchvision's.
    assert cifar10["files"]["cifar-10-batches-py/batches.meta"] == CIFAR10.meta["md5"]


def test_cifar10_matches_torchvision_loader(cifar10: dict):
    class Unverified(CIFAR10):  # the subset's batch md5s differ from the official ones by construction
        def _check_integrity(self) -> bool:
            return True

    for split, train in (("train", True), ("test", False)):
        reference = Unverified(str(CIFAR10_ROOT), train=train)
        # torchvision stores N x H x W x C; ours is N x C x H x W.
        assert np.array_equal(cifar10[f"{split}_inputs"].permute(0, 2, 3, 1).numpy(), reference.data)
        assert cifar10[f"{split}_labels"].tolist() == reference.targets


def test_cifar10_verification_names_first_mismatching_file():
    root = _require(CIFAR10_ROOT, "cifar10")
    with pytest.raises(ChecksumError, match="data_batch_1") as caught:
        read_cifar(root, "cifar10")
    assert CIFAR10.train_list[0][1] in str(caught.value)  # the expected official md5


def test_cifar100_subset(cifar100: dict):
    assert cifar100["train_inputs"].shape == (1117, 3, 32, 32)
    assert cifar100["test_inputs"].shape == (916, 3, 32, 32)
    assert cifar100["train_labels"].dtype == torch.int64
    assert len(cifar100["classes"]) == 100
    # Fine labels: the first train image is a cattle, the first test image a mountain.
    assert cifar100["classes"][cifar100["train_labels"][0]] == "cattle"
    assert cifar100["classes"][cifar100["test_labels"][0]] == "mountain"
    assert int(cifar100["train_labels"].max()) < 100
    assert cifar100["files"]["cifar-100-python/meta"] == CIFAR100.meta["md5"]


def test_cifar100_verification_fails_on_subset():
    root = _require(CIFAR100_ROOT, "cifar100")
    with pytest.raises(ChecksumError, match="train"):
        read_cifar(root, "cifar100")


def test_missing_folder_names_path_and_layout(tmp_path: Path):
    with pytest.raises(FileNotFoundError) as caught:
        read_cifar(tmp_path, "cifar10")
    message = str(caught.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "data_batch_1" in message and "batches.meta" in message


def test_missing_file_is_named(tmp_path: Path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="lacks test, meta"):
        read_cifar(tmp_path, "cifar100")


def test_unknown_dataset_lists_allowed(tmp_path: Path):
    with pytest.raises(ValueError, match="cifar10, cifar100"):
        read_cifar(tmp_path, "mnist")


def _cifar10_folder(root: Path, first_batch: bytes) -> Path:
    """A CIFAR-10 folder of valid empty batches and meta, with ``first_batch`` as data_batch_1."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    empty = pickle.dumps({"labels": [], "data": np.zeros((0, 3072), dtype=np.uint8)}, protocol=2)
    for name in CIFAR10_FILES:
        (folder / name).write_bytes(empty)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}, protocol=2))
    (folder / "data_batch_1").write_bytes(first_batch)
    return folder


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_reads_pickles_written_by_python3(tmp_path: Path, protocol: int):
    images = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    _cifar10_folder(tmp_path, pickle.dumps({"labels": [7, 2], "data": images}, protocol=protocol))
    data = read_cifar(tmp_path, "cifar10", verify_checksums=False)
    assert data["train_labels"].tolist() == [7, 2] and data["test_inputs"].shape == (0, 3, 32, 32)
    assert torch.equal(data["train_inputs"].reshape(2, 3072), torch.from_numpy(images))


def test_malformed_pickle_names_the_file(tmp_path: Path):
    folder = _cifar10_folder(tmp_path, b"\x80\x02}q\x00(truncated")
    with pytest.raises(ValueError, match=str(folder / "data_batch_1")):
        read_cifar(tmp_path, "cifar10", verify_checksums=False)


def test_wrong_shaped_batch_names_the_file(tmp_path: Path):
    batch = {"labels": [0, 1], "data": np.zeros((2, 100), dtype=np.uint8)}
    _cifar10_folder(tmp_path, pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError, match="data_batch_1.*3072"):
        read_cifar(tmp_path, "cifar10", verify_checksums=False)


def test_pickle_cannot_run_code(tmp_path: Path):
    marker = tmp_path / "created-by-pickle"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    _cifar10_folder(tmp_path, pickle.dumps({"labels": [0], "data": Payload()}, protocol=2))
    with pytest.raises(ValueError, match="not allowed"):
        read_cifar(tmp_path, "cifar10", verify_checksums=False)
    assert not marker.exists()
