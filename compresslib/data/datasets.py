"""Dataset registry and the prepared on-disk format every training job reads.

A prepared dataset is one ``dataset.pt`` file (airbench's idea): uint8 images ``(N, 3, H, W)``
and int64 labels for the train and test splits, the class names and a provenance dict
(where the bytes came from, their checksums, whether verification was on). Training jobs
load it straight onto their device; nothing decodes images per sample.

Normalisation statistics are per recipe: QD and LMA normalise CIFAR-10 with mean = std = 0.5
(reference/seeds.md §1.7), CIFAR-100 with its own channel statistics.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from compresslib.io import load_versioned, save_torch

__all__ = ["DatasetInfo", "DATASETS", "get_dataset_info", "save_dataset", "load_dataset", "prepare_dataset"]

FORMAT_VERSION = 2  # 2: split keys train_inputs/test_inputs (images or encoded documents)
SPLIT_KEYS = ("train_inputs", "train_labels", "test_inputs", "test_labels")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    mean: tuple[float, float, float]  # recipe normalisation (QD/LMA), overridable per run
    std: tuple[float, float, float]
    image_shape: tuple[int, int, int] = (3, 32, 32)


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", 10, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    "cifar100": DatasetInfo("cifar100", 100, mean=(0.5071, 0.4867, 0.4408), std=(0.2675, 0.2565, 0.2761)),
    "synthetic": DatasetInfo("synthetic", 10, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
}


def get_dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[name]


def save_dataset(path: str | Path, name: str, arrays: dict[str, Any], provenance: dict) -> None:
    """Validate and write a prepared dataset atomically."""
    payload = {"format": FORMAT_VERSION, "name": name, "classes": list(arrays["classes"]), "provenance": provenance}
    payload.update({key: arrays[key] for key in SPLIT_KEYS})
    _check_dataset(payload, str(path))
    save_torch(path, payload)


def load_dataset(path: str | Path) -> dict[str, Any]:
    """Read a prepared dataset (CPU tensors) and check its structure, naming the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prepared dataset {path} does not exist (run the prepare_dataset rule first)")
    payload = load_versioned(path, FORMAT_VERSION, "prepared dataset", "rerun the prepare_dataset rule")
    _check_dataset(payload, str(path))
    return payload


def _check_dataset(payload: dict, where: str) -> None:
    info = get_dataset_info(payload["name"])
    for split in ("train", "test"):
        images, labels = payload[f"{split}_inputs"], payload[f"{split}_labels"]
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != info.image_shape:
            shape = ", ".join(map(str, info.image_shape))
            raise ValueError(f"{where}: {split}_inputs must be uint8 of shape (N, {shape}), "
                             f"got {images.dtype} {tuple(images.shape)}")
        if labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
            raise ValueError(f"{where}: {split}_labels must be int64 with one label per image")
        if len(labels) and (labels.min() < 0 or labels.max() >= info.num_classes):
            raise ValueError(f"{where}: {split}_labels outside [0, {info.num_classes})")
    if len(payload["classes"]) != info.num_classes:
        raise ValueError(f"{where}: expected {info.num_classes} class names, got {len(payload['classes'])}")


def prepare_dataset(
    name: str,
    out_path: str | Path,
    *,
    archive: str | Path | None = None,
    extracted: str | Path | None = None,
    verify_checksums: bool = True,
    synthetic: dict | None = None,
    log: logging.Logger | None = None,
) -> dict:
    """Build ``out_path`` from a verified archive, an already-extracted folder, or the synthetic generator.

    Returns the provenance stored in the file.
    """
    from compresslib.data.cifar import read_cifar
    from compresslib.data.download import extract_archive
    from compresslib.data.synthetic import make_synthetic

    log = log or logging.getLogger(__name__)
    get_dataset_info(name)
    if name == "synthetic":
        options = dict(synthetic or {})
        arrays = make_synthetic(**options)
        provenance = {"source": "synthetic", "options": options}
    elif archive is not None:
        out_dir = Path(out_path).parent
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".extract-") as scratch:
            root = extract_archive(Path(archive), Path(scratch) / "extracted")
            arrays = read_cifar(root, name, verify_checksums=True)
        provenance = {"source": "archive", "archive": str(archive), "verified": True, "files": arrays["files"]}
    elif extracted is not None:
        if not verify_checksums:
            log.warning("checksum verification is OFF for %s: the files in %s are used as they are", name, extracted)
        arrays = read_cifar(Path(extracted), name, verify_checksums=verify_checksums)
        provenance = {"source": "extracted", "path": str(extracted), "verified": verify_checksums,
                      "files": arrays["files"]}
    else:
        raise ValueError(f"dataset {name!r} needs an archive or an extracted folder")
    save_dataset(out_path, name, arrays, provenance)
    log.info("prepared %s: %d train / %d test images -> %s", name, len(arrays["train_labels"]),
             len(arrays["test_labels"]), out_path)
    return provenance
