"""Where a training job runs: the device it is given, and a lease that keeps concurrent jobs off each other's GPU.

A scheduler that hands out GPUs (SLURM's ``--gpus``, a user's ``CUDA_VISIBLE_DEVICES``) narrows what the
job can see, and the job uses what it sees. On one multi-GPU machine, N concurrent jobs (Snakemake's
local executor with ``--resources gpu=N``) all see every GPU; each job then leases the first free one by
holding an exclusive ``flock`` on a per-GPU file for as long as it runs. The kernel drops the lock when
the process dies, however it dies, so a killed job never strands its GPU. Files are keyed by the GPU's
UUID, so jobs that see the same GPU under different indices (two SLURM jobs on one node, each with its
own ``CUDA_VISIBLE_DEVICES=0``) still tell GPUs apart. An explicit device (``cuda:1``, ``cpu``) takes no
lease: that is how to share one GPU between jobs on purpose.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

__all__ = ["GPU_LOCK_DIR_ENV", "CPU_EVAL_BATCH", "Placement", "place", "lease_slot", "default_lock_dir",
           "evaluation_batch_size", "Precision", "device_precision"]

log = logging.getLogger(__name__)

GPU_LOCK_DIR_ENV = "COMPRESSLIB_GPU_LOCK_DIR"
_POLL_SECONDS = 5.0
# On a CPU, evaluation batches beyond ~128 images outgrow the caches: measured on 2 cores, the demo teacher
# evaluates 1,792 images/s at 128 and 1,315 at 1,000, the QD conv teacher 473 and 388 (docs/benchmarks.md).
CPU_EVAL_BATCH = 128


@dataclass(frozen=True)
class Placement:
    """The device a job runs on, and (for a leased GPU) which physical GPU and lock file."""

    device: torch.device
    gpu_uuid: str | None = None
    lease: str | None = None  # the lock file held while the job runs

    def describe(self) -> dict:
        # SLURM's own GPU ids say which physical GPUs it gave, also where cgroups renumber CUDA_VISIBLE_DEVICES
        return {"device": str(self.device), "gpu_uuid": self.gpu_uuid, "gpu_lease": self.lease,
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "slurm_gpus": os.environ.get("SLURM_STEP_GPUS") or os.environ.get("SLURM_JOB_GPUS")}


def default_lock_dir() -> Path:
    """``$COMPRESSLIB_GPU_LOCK_DIR``, else one folder per machine under the system's temporary directory."""
    return Path(os.environ.get(GPU_LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "compresslib-gpu-locks")


@contextlib.contextmanager
def place(requested: str = "auto", lock_dir: str | Path | None = None) -> Iterator[Placement]:
    """Resolve ``requested`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) to a device for the duration of the block.

    ``auto`` is the CPU when no GPU is visible; otherwise it leases a free visible GPU, waiting while every
    one of them is leased by another job.
    """
    if requested != "auto":
        yield Placement(torch.device(requested))
        return
    if not torch.cuda.is_available():
        yield Placement(torch.device("cpu"))
        return
    uuids = [str(torch.cuda.get_device_properties(index).uuid) for index in range(torch.cuda.device_count())]
    with lease_slot(uuids, lock_dir if lock_dir is not None else default_lock_dir()) as (index, lock_path):
        torch.cuda.set_device(index)
        yield Placement(torch.device("cuda", index), gpu_uuid=uuids[index], lease=str(lock_path))


@contextlib.contextmanager
def lease_slot(keys: Sequence[str], lock_dir: str | Path, poll_seconds: float = _POLL_SECONDS
               ) -> Iterator[tuple[int, Path]]:
    """Hold an exclusive lock on the first free ``<lock_dir>/gpu-<key>.lock``; yield ``(index, lock path)``.

    Blocks, polling, while every slot is held by another process.
    """
    if not keys:
        raise ValueError("no GPU slots to lease from")
    lock_dir = Path(lock_dir)
    _make_shared_dir(lock_dir)
    waiting_since = None
    while True:
        for index, key in enumerate(keys):
            path = lock_dir / f"gpu-{key}.lock"
            # O_RDONLY is enough for flock, so a lock file another user created (mode 644) still works
            descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                continue
            try:
                if waiting_since is not None:
                    log.info("leased GPU %d after waiting %.0f s", index, time.monotonic() - waiting_since)
                yield index, path
            finally:
                os.close(descriptor)  # closing the descriptor releases the lock
            return
        if waiting_since is None:
            waiting_since = time.monotonic()
            log.warning("all %d visible GPUs are leased by other compresslib jobs (locks in %s); waiting. "
                        "Give Snakemake --resources gpu=<number of GPUs> to queue jobs instead.", len(keys), lock_dir)
        time.sleep(poll_seconds)


def _make_shared_dir(path: Path) -> None:
    """Create ``path`` writable by every user (sticky, like /tmp), so jobs of several users share the leases."""
    path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):  # made by another user: it is theirs to set
        if path.stat().st_mode & 0o7777 != 0o1777 and path.stat().st_uid == os.getuid():
            path.chmod(0o1777)


def evaluation_batch_size(requested: int, device: torch.device) -> int:
    """The evaluation batch a job uses on ``device``: ``requested`` on a GPU, at most :data:`CPU_EVAL_BATCH` on the
    CPU. Evaluation is per example (eval mode), so the batch changes speed, not results."""
    return requested if device.type == "cuda" else min(requested, CPU_EVAL_BATCH)


class Precision(NamedTuple):
    """How a job's models run: the autocast context, and the memory layout of their inputs."""

    autocast: torch.autocast
    memory_format: torch.memory_format
    bf16: bool

    @property
    def channels_last(self) -> bool:
        return self.memory_format == torch.channels_last

    def describe(self) -> str:
        return f"{'bf16 autocast' if self.bf16 else 'fp32'}, channels_last {self.channels_last}"


def device_precision(device: torch.device, precision: str = "auto", channels_last: bool | None = None,
                     images: bool = True) -> Precision:
    """How a job's models run on ``device``.

    ``precision`` (a spec's: auto, fp32, bf16): ``auto`` is bf16 autocast on CUDA and fp32 on the CPU.
    ``channels_last`` None: on for images on CUDA, else the default layout (character ids and tokens have none).
    """
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    layout = device.type == "cuda" and images if channels_last is None else channels_last
    return Precision(torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16),
                     torch.channels_last if layout else torch.contiguous_format, bf16)
