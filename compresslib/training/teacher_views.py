"""The teacher's logits for every augmented view of every training image, computed once per teacher.

Students of one teacher are distilled many times (LMA: 75+ students x 200 epochs each), and an online
teacher runs once per KD batch. With pad-4 random crops and flips a CIFAR image has only
``(2 * 4 + 1)^2 * 2 = 162`` views, so when a teacher's students together train for more than 162 epochs it
is cheaper to run the teacher once on every view and look its logits up.

A view is keyed by what it is, never by where it landed in a batch: the crop offsets ``dy, dx`` in
``[0, 2 * pad]`` and the flip bit that ``DeviceLoader``'s epoch plan gives each example, and the example's
index in the full training split of the dataset file. The table is built with the loader's own
crop/flip/normalise arithmetic (one ``EpochPlan`` per view), so a looked-up row is what the online teacher
would see; only bfloat16 storage rounds it (relative error at most 2^-8). A run without augmentation sees
one view, the centre crop unflipped, which an augmented table holds too.

A views file holds a format number, the logits ``(N, views, classes)`` in bfloat16, ``pad``, ``augment``,
and the teacher file, dataset file and normalisation it was made from (paths and sha256), so a run can
refuse a table made for another teacher, dataset or normalisation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from compresslib.data.datasets import load_dataset
from compresslib.data.loader import DeviceLoader, EpochPlan
from compresslib.devices import device_precision, place
from compresslib.io import load_versioned, save_torch, verified_sha256
from compresslib.models import load_model

__all__ = ["TEACHER_VIEWS_FORMAT", "view_count", "view_index", "compute_teacher_views", "TeacherViews",
           "save_teacher_views", "make_teacher_views"]

log = logging.getLogger(__name__)

TEACHER_VIEWS_FORMAT = 1
LOOP_PAD = 4  # the training loop's crop padding (DeviceLoader's default), which the workflow's tables hold
_REBUILD = "rebuild it from this run's teacher and dataset with workflow_scripts/teacher_views.py"


def view_count(pad: int = 4, augment: bool = True) -> int:
    """Views of one image: every crop offset pair in ``[0, 2 * pad]`` times flipped or not; 1 without augmentation."""
    return (2 * pad + 1) ** 2 * 2 if augment else 1


def view_index(dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """The int64 key of each view, ``(dy * (2 * pad + 1) + dx) * 2 + flip``: ``0 .. view_count(pad) - 1``."""
    return (dy.long() * (2 * pad + 1) + dx.long()) * 2 + flip.long()


def _views(pad: int, augment: bool, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dy, dx, flip)`` of every view in key order (the inverse of :func:`view_index`)."""
    if not augment:  # the loader's plan without augmentation: centre crop, unflipped
        return (torch.tensor([pad], device=device), torch.tensor([pad], device=device),
                torch.tensor([False], device=device))
    key = torch.arange(view_count(pad), device=device)
    return key // 2 // (2 * pad + 1), key // 2 % (2 * pad + 1), key % 2 == 1


def _check_shape(logits: torch.Tensor, pad: int, augment: bool) -> None:
    views = view_count(pad, augment)
    if logits.ndim != 3 or logits.shape[1] != views:
        raise ValueError(f"teacher views must be (examples, {views} views, classes) for pad {pad}"
                         f"{'' if augment else ' without augmentation'}, got {tuple(logits.shape)}")


@torch.inference_mode()
def compute_teacher_views(teacher: nn.Module, inputs: torch.Tensor, *, mean: Sequence[float], std: Sequence[float],
                          pad: int = 4, augment: bool = True, batch_size: int = 1000,
                          device: str | torch.device) -> torch.Tensor:
    """The teacher's logits (eval mode) for every view of every image of ``inputs`` (uint8 ``(N, C, H, W)``):
    ``(N, view_count(pad, augment), num_classes)`` bfloat16 on ``device``, indexed ``[example, view_index]``.
    The teacher is moved to ``device`` and runs as an online teacher of the training loop would
    (``device_precision``: bf16 autocast and channels_last on CUDA)."""
    if inputs.dtype != torch.uint8 or inputs.ndim != 4:
        raise ValueError(f"teacher views are made of uint8 images (N, C, H, W), got {inputs.dtype} "
                         f"{tuple(inputs.shape)}")
    device = torch.device(device)
    autocast, memory_format, _ = device_precision(device)
    n = len(inputs)
    # The training loader's own crop, flip and normalisation, driven by one plan per view.
    loader = DeviceLoader(inputs, torch.zeros(n, dtype=torch.int64), batch_size=batch_size, augment=augment,
                          shuffle=False, mean=mean, std=std, pad=pad, device=device,
                          channels_last=memory_format == torch.channels_last)
    teacher.to(device, memory_format=memory_format).eval()
    order = torch.arange(n, device=device)
    dy, dx, flip = _views(pad, augment, device)
    logits = None
    with autocast:
        for view in range(len(dy)):
            plan = EpochPlan(order, dy[view].expand(n), dx[view].expand(n), flip[view].expand(n))
            for batch, _, index, _ in loader.indexed_batches(plan):
                out = teacher(batch)
                if logits is None:  # the class count is known once the teacher has answered
                    logits = torch.empty(n, len(dy), out.shape[1], dtype=torch.bfloat16, device=device)
                logits[index, view] = out.to(torch.bfloat16)
    return logits


class TeacherViews:
    """A teacher's logits ``(N, views, classes)`` for every view of every training example, looked up by view."""

    def __init__(self, logits: torch.Tensor, pad: int = 4, augment: bool = True) -> None:
        _check_shape(logits, pad, augment)
        self.logits, self.pad, self.augment = logits, pad, augment

    def lookup(self, examples: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` float32 logits of the views ``(dy, dx, flip)`` of ``examples`` (indices into the full training
        split); a table without augmentation has one view per example, which it returns whatever the key."""
        if not self.augment:
            return self.logits[examples, 0].float()
        return self.logits[examples, view_index(dy, dx, flip, self.pad)].float()

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device, *, teacher_sha256: str | None = None,
             dataset_sha256: str | None = None, normalization: dict | None = None) -> TeacherViews:
        """A views file's table on ``device``; refuses a file made from another teacher file, dataset file or
        normalisation than those given, naming the file and every difference."""
        payload = load_versioned(path, TEACHER_VIEWS_FORMAT, "compresslib teacher-views file", _REBUILD, mmap=True)
        differences = [
            f"it was made from the {role} file {made['path']} (sha256 {made['sha256'][:12]}), this run's {role} file "
            f"has sha256 {expected[:12]}"
            for role, made, expected in (("teacher", payload["teacher"], teacher_sha256),
                                         ("dataset", payload["dataset"], dataset_sha256))
            if expected is not None and made["sha256"] != expected]
        if normalization is not None and payload["normalization"] != normalization:
            differences.append(f"it was made with normalisation {payload['normalization']}, this run uses "
                               f"{normalization}")
        if differences:
            raise ValueError(f"teacher-views file {path} does not fit this run: {'; '.join(differences)}; {_REBUILD}")
        return cls(payload["logits"].to(device), payload["pad"], payload["augment"])


def save_teacher_views(path: str | Path, logits: torch.Tensor, *, pad: int, augment: bool, teacher: dict,
                       dataset: dict, normalization: dict) -> None:
    """Write a views file atomically, its checksum beside it. ``teacher`` and ``dataset`` describe the files the
    table was made from (``{path, sha256, ...}``); ``normalization`` is ``{mean, std}`` of the teacher's inputs."""
    _check_shape(logits, pad, augment)
    for role, facts in (("teacher", teacher), ("dataset", dataset)):
        if not {"path", "sha256"} <= set(facts):
            raise ValueError(f"a teacher-views file names its {role} file by path and sha256, got {facts}")
    save_torch(path, {"format": TEACHER_VIEWS_FORMAT, "logits": logits.to("cpu", torch.bfloat16), "pad": pad,
                      "augment": augment, "teacher": dict(teacher), "dataset": dict(dataset),
                      "normalization": dict(normalization)}, checksum=True)


def make_teacher_views(teacher_path: str | Path, data_path: str | Path, out_path: str | Path, *,
                       batch_size: int = 1000, device: str = "auto", threads: int = 0) -> None:
    """The teacher_views job: run the teacher file on every pad-4 crop and flip of every training image of the
    dataset file, with the teacher's own normalisation, and write the views file ``out_path`` naming both files.
    ``device`` as the training loop places a job (auto: the GPU it was given or a free one, else the CPU);
    ``threads`` CPU threads for torch (0: torch's default). Both files are checked against the checksums their jobs
    recorded first."""
    teacher_sha256, data_sha256 = verified_sha256(teacher_path), verified_sha256(data_path)
    with place(device) as placement:
        device = placement.device
        if device.type == "cpu" and threads:
            torch.set_num_threads(threads)
        teacher, meta = load_model(teacher_path, device)
        dataset = load_dataset(data_path)
        if meta.get("dataset") != dataset["name"]:
            raise ValueError(f"teacher {teacher_path} was trained on {meta.get('dataset')!r}, but {data_path} holds "
                             f"{dataset['name']!r}")
        normalization, images = meta["normalization"], dataset["train_inputs"]
        log.info("teacher %s on %d views of %d images, device %s", meta["name"], view_count(LOOP_PAD), len(images),
                 device)
        tick = time.perf_counter()
        logits = compute_teacher_views(teacher, images, **normalization, pad=LOOP_PAD, batch_size=batch_size,
                                       device=device).cpu()
        seconds = time.perf_counter() - tick  # .cpu() waited for the device: this is the computation's time
        log.info("%.0f s, %.0f images/s", seconds, logits.shape[0] * logits.shape[1] / seconds)
        save_teacher_views(out_path, logits, pad=LOOP_PAD, augment=True,
                           teacher={"path": str(teacher_path), "sha256": teacher_sha256,
                                    "name": meta["name"], "spec_hash": meta.get("spec_hash")},
                           dataset={"path": str(data_path), "sha256": data_sha256, "name": dataset["name"]},
                           normalization=normalization)
