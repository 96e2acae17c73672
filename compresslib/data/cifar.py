"""Read CIFAR-10 and CIFAR-100 from the python-pickle release into uint8 tensors.

The input is the layout torchvision unpacks (``cifar-10-batches-py/`` or ``cifar-100-python/`` under
a root). Each batch pickle holds ``data``, an N x 3072 uint8 array whose rows are the R, G and B
planes of a 32 x 32 image, and a label list (``labels`` for CIFAR-10, ``fine_labels`` for
CIFAR-100). Expected file names and md5s come from torchvision's class attributes, so they have a
single source of truth.

Pickles are read with an unpickler that resolves only the numpy names an array needs, so a file
that is not a CIFAR batch cannot run code while being read.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.datasets import CIFAR10, CIFAR100

from compresslib.data.download import ChecksumError

__all__ = ["CIFAR_FOLDERS", "read_cifar"]

CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}

_TORCHVISION = {"cifar10": CIFAR10, "cifar100": CIFAR100}
_LABEL_KEY = {"cifar10": "labels", "cifar100": "fine_labels"}
_IMAGE_SHAPE = (3, 32, 32)
_ROW_BYTES = 3 * 32 * 32


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals numpy needs to rebuild an ndarray."""

    # Pure constructors only. The official files name numpy.core; pickles written by numpy >= 2 name
    # numpy._core. Python 3 writes bytes into a protocol-2 pickle via _codecs.encode (or bytes() when
    # empty), and numpy uses _frombuffer from protocol 5 on.
    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
        ("__builtin__", "bytes"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR file")
        return super().find_class(module, name)


def read_cifar(root: Path, dataset: str, verify_checksums: bool = True) -> dict:
    """Read ``dataset`` ("cifar10" or "cifar100") from ``root`` in the torchvision layout.

    Returns ``train_inputs``/``test_inputs`` (uint8, N x 3 x 32 x 32, contiguous),
    ``train_labels``/``test_labels`` (int64; fine labels for CIFAR-100), ``classes`` (names indexed
    by label) and ``files`` (path relative to ``root`` -> md5). With ``verify_checksums`` every file
    must match torchvision's md5, else ``ChecksumError``; turning it off is for known subsets and
    the caller should log that it did.
    """
    if dataset not in CIFAR_FOLDERS:
        raise ValueError(f"unknown CIFAR dataset {dataset!r}; expected one of {', '.join(CIFAR_FOLDERS)}")
    spec = _TORCHVISION[dataset]
    folder = Path(root) / CIFAR_FOLDERS[dataset]
    expected = {name: md5 for name, md5 in spec.train_list + spec.test_list}
    expected[spec.meta["filename"]] = spec.meta["md5"]
    layout = f"{folder}/{{{','.join(expected)}}} (as unpacked from {spec.filename})"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist; {dataset} expects {layout}")
    missing = [name for name in expected if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}; {dataset} expects {layout}")

    files: dict[str, str] = {}
    contents: dict[str, Any] = {}
    for name, expected_md5 in expected.items():
        path = folder / name
        raw = path.read_bytes()
        md5 = hashlib.md5(raw, usedforsecurity=False).hexdigest()
        # Verify before unpickling: a file that is not the official one is never parsed.
        if verify_checksums and md5 != expected_md5:
            raise ChecksumError(
                f"{path} has md5 {md5}, expected {expected_md5} (torchvision's {dataset} release); the file is corrupt "
                f"or not the official one"
            )
        files[f"{folder.name}/{name}"] = md5
        contents[name] = _unpickle(raw, path)

    classes = _class_names(contents[spec.meta["filename"]], spec.meta["key"], folder / spec.meta["filename"])
    arrays: dict[str, Any] = {}
    for split, file_list in (("train", spec.train_list), ("test", spec.test_list)):
        batches = [_batch(contents[name], _LABEL_KEY[dataset], len(classes), folder / name) for name, _ in file_list]
        images = np.concatenate([images for images, _ in batches])
        labels = np.concatenate([labels for _, labels in batches])
        arrays[f"{split}_inputs"] = torch.from_numpy(images).reshape(-1, *_IMAGE_SHAPE).contiguous()
        arrays[f"{split}_labels"] = torch.from_numpy(labels)
    return {**arrays, "classes": classes, "files": files}


def _unpickle(raw: bytes, path: Path) -> Any:
    try:
        # The release was pickled by Python 2; latin1 maps its byte strings 1:1 (what torchvision does).
        return _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as error:  # a damaged pickle can fail with almost any exception type
        raise ValueError(f"{path} is not a readable CIFAR pickle: {error!r}") from error


def _class_names(meta: Any, key: str, path: Path) -> list[str]:
    names = meta.get(key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{path} has no list of class names under {key!r}")
    return names


def _batch(content: Any, label_key: str, num_classes: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Check one batch pickle and return its images (N x 3072 uint8) and labels (int64)."""
    if not isinstance(content, dict) or "data" not in content or label_key not in content:
        raise ValueError(f"{path} is not a CIFAR batch: expected a dict with 'data' and {label_key!r}")
    images = content["data"]
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape[1:] != (_ROW_BYTES,):
        raise ValueError(f"{path}: 'data' must be a uint8 array of shape (N, {_ROW_BYTES})")
    try:
        labels = np.asarray(content[label_key], dtype=np.int64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {label_key!r} is not a list of integer labels: {error}") from error
    if labels.shape != (len(images),):
        raise ValueError(f"{path}: {len(images)} images but {labels.size} labels under {label_key!r}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{path}: labels outside [0, {num_classes})")
    return images, labels
