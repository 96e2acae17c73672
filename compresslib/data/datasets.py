"""The prepared on-disk format every image and text training job reads, and preparing it.

A prepared dataset is one ``dataset.pt`` file (airbench's idea): uint8 inputs and int64 labels for
the train and test splits, the class names and a provenance dict (where the bytes came from, their
checksums, whether verification was on). Inputs are images ``(N, 3, H, W)`` or, for text datasets,
documents encoded as character indices ``(N, L)`` (``compresslib.data.text``). Training jobs load it
straight onto their device; nothing decodes examples per sample. The file is memory-mapped on load,
so a 3 GB text split is read from the page cache, not copied into a second buffer.

The datasets themselves (classes, shapes, split sizes, normalisation) are listed in ``compresslib.catalog``.
Normalisation statistics are per recipe: QD and LMA normalise CIFAR-10 with mean = std = 0.5
(reference/seeds.md §1.7), CIFAR-100 with its own channel statistics. Text has none: character ids
go to an embedding.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from compresslib.data.synthetic import make_synthetic
from compresslib.data.synthetic_text import make_synthetic_text
from compresslib.catalog import get_dataset_info
from compresslib.data.text import VOCAB_SIZE
from compresslib.io import load_versioned, save_torch

__all__ = ["GENERATORS", "save_dataset", "load_dataset", "prepare_dataset"]

FORMAT_VERSION = 2  # 2: split keys train_inputs/test_inputs (images or encoded documents)
SPLIT_KEYS = ("train_inputs", "train_labels", "test_inputs", "test_labels")


# The generators of compresslib.catalog.GENERATED_DATASETS (options from config ``data.<name>``).
GENERATORS = {"synthetic": make_synthetic, "synthetic_text": make_synthetic_text}


def save_dataset(path: str | Path, name: str, arrays: dict[str, Any], provenance: dict) -> None:
    """Validate and write a prepared dataset atomically, its checksum beside it."""
    payload = {"format": FORMAT_VERSION, "name": name, "classes": list(arrays["classes"]), "provenance": provenance}
    payload.update({key: arrays[key] for key in SPLIT_KEYS})
    _check_dataset(payload, str(path))
    save_torch(path, payload, checksum=True)


def load_dataset(path: str | Path) -> dict[str, Any]:
    """Read a prepared dataset (CPU tensors mapped from the file) and check it, naming the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prepared dataset {path} does not exist (run the prepare_dataset rule first)")
    payload = load_versioned(path, FORMAT_VERSION, "prepared dataset", "rerun the prepare_dataset rule", mmap=True)
    _check_dataset(payload, str(path))
    return payload


def _check_dataset(payload: dict, where: str) -> None:
    info = get_dataset_info(payload["name"])
    expected = tuple(payload["train_inputs"].shape[1:])  # fixes the axes the registry leaves open
    if len(expected) == len(info.input_shape):
        expected = tuple(size if size is not None else actual for size, actual in zip(info.input_shape, expected))
    for split in ("train", "test"):
        inputs, labels = payload[f"{split}_inputs"], payload[f"{split}_labels"]
        if inputs.dtype != torch.uint8 or inputs.ndim != 1 + len(info.input_shape) or inputs.shape[1:] != expected:
            shape = ", ".join("L" if size is None else str(size) for size in info.input_shape)
            same = " with the same L in both splits" if None in info.input_shape else ""
            raise ValueError(f"{where}: {split}_inputs must be uint8 of shape (N, {shape}){same}, "
                             f"got {inputs.dtype} {tuple(inputs.shape)}")
        if info.kind == "text" and inputs.numel() and inputs.max() >= VOCAB_SIZE:
            raise ValueError(f"{where}: {split}_inputs holds character index {int(inputs.max())}, but the "
                             f"vocabulary has {VOCAB_SIZE} entries (0..{VOCAB_SIZE - 1})")
        if labels.dtype != torch.int64 or labels.shape != inputs.shape[:1]:
            raise ValueError(f"{where}: {split}_labels must be int64 with one label per example")
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
    """Build ``out_path`` from a verified archive, an already-extracted folder, or the dataset's generator.

    ``synthetic`` holds the generator's options (``GENERATORS``). Returns the provenance stored in the file.
    """
    log = log or logging.getLogger(__name__)
    get_dataset_info(name)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Scratch beside the output (same filesystem, cleaned up whatever happens, and a killed job's by its rerun): an
    # unpacked CIFAR archive, or the encoded text splits that the saved tensors are mapped from until written.
    prefix = f".{out_path.name}.prepare-"
    for leftover in out_path.parent.glob(f"{prefix}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=prefix) as scratch:
        arrays, provenance = _read_source(name, Path(scratch), archive, extracted, verify_checksums, synthetic, log)
        save_dataset(out_path, name, arrays, provenance)
    log.info("prepared %s: %d train / %d test examples -> %s", name, len(arrays["train_labels"]),
             len(arrays["test_labels"]), out_path)
    return provenance


def _read_source(name: str, scratch: Path, archive: str | Path | None, extracted: str | Path | None,
                 verify_checksums: bool, synthetic: dict | None, log: logging.Logger) -> tuple[dict, dict]:
    """The dataset's arrays and their provenance, from whichever source is given."""
    from compresslib.data.cifar import read_cifar
    from compresslib.data.download import ARCHIVES, extract_archive, md5_file, require_md5
    from compresslib.data.zhang import ZHANG_RELEASES, read_zhang_release

    if name in GENERATORS:
        options = dict(synthetic or {})
        return GENERATORS[name](**options), {"source": "synthetic", "options": options}
    if archive is not None:
        source = {"source": "archive", "archive": str(archive), "verified": True}
    elif extracted is not None:
        source = {"source": "extracted", "path": str(extracted), "verified": verify_checksums}
    else:
        raise ValueError(f"dataset {name!r} needs an archive or an extracted folder")

    if name in ZHANG_RELEASES:
        if extracted is not None:
            log.warning("%s publishes no per-file md5: the CSVs in %s are used as they are and their md5s recorded",
                        name, extracted)
            source["verified"] = False
        arrays = read_zhang_release(name, scratch, archive=archive, extracted=extracted,
                                    expected_md5=ARCHIVES[name].md5 if archive is not None else None, log=log)
        extra = {"md5": arrays["md5"]} if archive is not None else {}
        return arrays, {**source, **extra, "files": arrays["files"], "rows": arrays["rows"]}
    if archive is not None:  # checked whole first: a damaged member is reported as the archive's fault
        require_md5(archive, md5_file(archive), ARCHIVES[name].md5)
        arrays = read_cifar(extract_archive(Path(archive), scratch / "extracted"), name, verify_checksums=True)
    else:
        if not verify_checksums:
            log.warning("checksum verification is OFF for %s: the files in %s are used as they are", name, extracted)
        arrays = read_cifar(Path(extracted), name, verify_checksums=verify_checksums)
    return arrays, {**source, "files": arrays["files"]}
