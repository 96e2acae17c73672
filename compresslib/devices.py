"""Where a job runs: the device it is given, and a lease on slots of a GPU that lets concurrent jobs share GPUs
without crowding one.

A scheduler that hands out GPUs (SLURM's ``--gpus``, a user's ``CUDA_VISIBLE_DEVICES``) narrows what the job can see,
and the job uses what it sees. Each GPU is cut into ``COMPRESSLIB_GPU_SLOTS`` slots (``compresslib.gpu_slots``), and a
job with ``device: auto`` leases ``COMPRESSLIB_JOB_GPU_SLOTS`` of them, all on one GPU (a job run by hand: a whole
GPU), of the GPU with the most free slots, so jobs spread over the GPUs: it holds an exclusive ``flock`` on one file
per slot for as long as it runs. A job waits while no GPU has enough free slots, and meanwhile keeps new jobs off the
GPU it waits for, so a stream of one-slot jobs cannot starve a whole-GPU one. The kernel drops the locks when the
process dies, however it dies, so a killed job never strands a slot. Files are keyed by the GPU's UUID, so jobs that
see the same GPU under different indices (two SLURM jobs on one node, each with its own ``CUDA_VISIBLE_DEVICES=0``)
still tell GPUs apart. An explicit device (``cuda:1``, ``cpu``) takes no lease: that is how to share a GPU between
jobs beyond its slots on purpose.

A job that was given GPUs (by ``CUDA_VISIBLE_DEVICES`` or SLURM) that torch cannot use (a CPU build of torch, a driver
too old for its CUDA) stops at once with :class:`GPUUnavailable` instead of training on the CPU for days: the CPU is
``device: auto`` only where no GPU was given, else a choice (``device: cpu``, or ``COMPRESSLIB_DEVICE=cpu`` for every
job), and every record says how its device was chosen (:class:`DeviceChoice`).
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from compresslib.gpu_slots import DEVICE_ENV, GPUUnavailable, device_override, gpus_given, job_slots, slots_per_gpu

__all__ = ["GPU_LOCK_DIR_ENV", "CPU_EVAL_BATCH", "DeviceChoice", "SlotLease", "Placement", "GPUUnavailable",
           "CudaStatus", "cuda_status", "place", "lease_slots", "default_lock_dir", "evaluation_batch_size",
           "Precision", "device_precision"]

log = logging.getLogger(__name__)

GPU_LOCK_DIR_ENV = "COMPRESSLIB_GPU_LOCK_DIR"
_POLL_SECONDS = 5.0
_CHOOSING_LOCK = "choosing.lock"  # held while a job counts free slots and takes some: no two take one slot
# On a CPU, evaluation batches beyond ~128 images outgrow the caches: measured on 2 cores, the demo teacher
# evaluates 1,792 images/s at 128 and 1,315 at 1,000, the QD conv teacher 473 and 388 (docs/benchmarks.md).
CPU_EVAL_BATCH = 128


class DeviceChoice(enum.StrEnum):
    """How a job's device was chosen (a record's ``hardware.device_choice``)."""

    REQUESTED = "requested"  # the job named its device (cpu, cuda:1)
    ENVIRONMENT = f"requested by {DEVICE_ENV}"  # for every job whose device is auto
    LEASED_GPU = "auto: leased GPU slots"
    NO_GPU_GIVEN = "auto: CPU, no GPU given to the job"
    NO_GPU_ASKED = "auto: CPU, the workflow asked for no GPU"


class SlotLease(NamedTuple):
    """Slots of one GPU held by this process: the GPU's index among the leased keys, its slots, their lock files."""

    index: int
    slots: tuple[int, ...]
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class Placement:
    """The device a job runs on, how it was chosen, and for a GPU which physical one (and the slots it leased)."""

    device: torch.device
    choice: DeviceChoice = DeviceChoice.REQUESTED
    gpu_uuid: str | None = None
    lease: SlotLease | None = None
    slots_per_gpu: int | None = None

    def describe(self) -> dict:
        # SLURM's own GPU ids say which physical GPUs it gave, also where cgroups renumber CUDA_VISIBLE_DEVICES
        return {"device": str(self.device), "device_choice": self.choice.value, "gpu_uuid": self.gpu_uuid,
                "gpu_slots": list(self.lease.slots) if self.lease else None, "slots_per_gpu": self.slots_per_gpu,
                "gpu_lock_dir": str(self.lease.paths[0].parent) if self.lease else None,
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "slurm_gpus": os.environ.get("SLURM_STEP_GPUS") or os.environ.get("SLURM_JOB_GPUS")}


class CudaStatus(NamedTuple):
    """The GPUs torch can use, and when none, why (torch's own words where it gave any)."""

    count: int
    reason: str | None


def cuda_status() -> CudaStatus:
    """What torch makes of this machine's GPUs. A driver too old for torch's CUDA is a warning of
    ``torch.cuda.is_available`` (once per process) and an error of ``torch.cuda.init``: either is the reason."""
    if not torch.backends.cuda.is_built():
        return CudaStatus(0, f"torch {torch.__version__} is a CPU build, without CUDA")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count:
        return CudaStatus(count, None)
    if caught:
        return CudaStatus(0, _one_line(str(caught[0].message)))
    try:
        torch.cuda.init()
    except RuntimeError as error:
        return CudaStatus(0, _one_line(str(error)))
    return CudaStatus(0, "CUDA sees no GPU")


def _one_line(message: str) -> str:
    """torch's message on one line, without the C++ source location it appends."""
    return " ".join(message.split(" (Triggered internally at")[0].split())


def default_lock_dir() -> Path:
    """``$COMPRESSLIB_GPU_LOCK_DIR``, else one folder per machine under the system's temporary directory."""
    return Path(os.environ.get(GPU_LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "compresslib-gpu-locks")


@contextlib.contextmanager
def place(requested: str = "auto", lock_dir: str | Path | None = None) -> Iterator[Placement]:
    """Resolve ``requested`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) to a device for the duration of the block.

    ``auto`` is ``$COMPRESSLIB_DEVICE`` where that is set; else it leases :func:`~compresslib.gpu_slots.job_slots`
    slots of one visible GPU (waiting while no GPU has that many free), or is the CPU where the job was given no GPU
    and sees none. GPUs given to the job, or a ``cuda`` device asked for, that torch cannot use raise
    :class:`GPUUnavailable`, saying why.
    """
    asked, choice = f"device={requested}", DeviceChoice.REQUESTED
    if requested == "auto" and (override := device_override()) is not None:
        requested, asked, choice = override, f"{DEVICE_ENV}={override}", DeviceChoice.ENVIRONMENT
    if requested == "auto" and job_slots() == 0:  # the workflow's rule asked for no GPU (COMPRESSLIB_GPUS_PER_JOB=0)
        requested, choice = "cpu", DeviceChoice.NO_GPU_ASKED
    device = torch.device("cuda" if requested == "auto" else requested)
    if device.type != "cuda":
        yield Placement(device, choice)
        return
    status = cuda_status()
    if not status.count:
        given = gpus_given()
        if given is None and requested == "auto":
            yield Placement(torch.device("cpu"), DeviceChoice.NO_GPU_GIVEN)
            return
        what = f"was given GPUs ({given[0]}={given[1]!r})" if given else "asked for a GPU"
        raise GPUUnavailable(f"{asked}: the job {what} but torch cannot use any: {status.reason} (to train on the "
                             f"CPU on purpose: device=cpu, or {DEVICE_ENV}=cpu for every job)")
    uuids = [str(torch.cuda.get_device_properties(index).uuid) for index in range(status.count)]
    if requested != "auto":
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= status.count:
            raise GPUUnavailable(f"{asked}: torch sees {status.count} GPU(s), cuda:0 to cuda:{status.count - 1}")
        yield Placement(device, choice, uuids[index])
        return
    slots = slots_per_gpu()
    with lease_slots(uuids, slots, job_slots(), lock_dir if lock_dir is not None else default_lock_dir()) as lease:
        torch.cuda.set_device(lease.index)
        yield Placement(torch.device("cuda", lease.index), DeviceChoice.LEASED_GPU, uuids[lease.index], lease, slots)


@contextlib.contextmanager
def lease_slots(keys: Sequence[str], slots_per_key: int, wanted: int, lock_dir: str | Path,
                poll_seconds: float = _POLL_SECONDS) -> Iterator[SlotLease]:
    """Hold ``wanted`` of the ``slots_per_key`` slots of one of ``keys`` (GPU UUIDs), of the one with the most free
    slots, for the block: an exclusive lock on each ``<lock_dir>/gpu-<key>-slot<k>.lock``.

    Blocks, polling, while no key has ``wanted`` free slots (a whole-GPU job waits until every slot of a GPU is
    free). A waiting job holds ``gpu-<key>-waiting.lock`` of the key with the most free slots, and no other job
    takes a slot of a key a job waits for: a stream of one-slot jobs cannot starve a whole-GPU job.
    """
    if not keys:
        raise ValueError("no GPUs to lease slots of")
    if not 1 <= wanted <= slots_per_key:
        raise ValueError(f"cannot lease {wanted} of a GPU's {slots_per_key} slots")
    lock_dir = Path(lock_dir)
    _make_shared_dir(lock_dir)
    lease, descriptors = _wait_for_slots(keys, slots_per_key, wanted, lock_dir, poll_seconds)
    try:
        yield lease
    finally:
        for descriptor in descriptors:
            os.close(descriptor)  # closing the descriptor releases the lock


def _wait_for_slots(keys: Sequence[str], slots_per_key: int, wanted: int, lock_dir: Path, poll_seconds: float
                    ) -> tuple[SlotLease, list[int]]:
    """:func:`lease_slots`' lease and the descriptors holding its locks, once it has them."""
    waiting: tuple[int, int] | None = None  # (key index, descriptor of its waiting lock) while this job waits
    waiting_since = None
    try:
        while True:
            with _holding(lock_dir / _CHOOSING_LOCK):  # no other job counts or takes slots meanwhile
                free = {index: _lock_free_slots(lock_dir, key, slots_per_key) for index, key in enumerate(keys)
                        if (waiting is not None and index == waiting[0]) or not _waited_for(lock_dir, key)}
                best = max(free, key=lambda index: len(free[index]), default=None)  # ties: the lowest index
                taken = None
                if best is not None and len(free[best]) >= wanted:
                    slots = sorted(free[best])[:wanted]
                    paths = tuple(_slot_path(lock_dir, keys[best], slot) for slot in slots)
                    taken = SlotLease(best, tuple(slots), paths), [free[best].pop(slot) for slot in slots]
                for held in free.values():  # every other free slot, locked only to be counted
                    for descriptor in held.values():
                        os.close(descriptor)
                if taken is not None:
                    if waiting_since is not None:
                        log.info("leased slots %s of GPU %d after waiting %.0f s", slots, best,
                                 time.monotonic() - waiting_since)
                    return taken
                if best is not None and waiting is None:
                    descriptor = _try_lock(_waiting_path(lock_dir, keys[best]))
                    waiting = (best, descriptor) if descriptor is not None else None
            if waiting_since is None:
                waiting_since = time.monotonic()
                log.warning("none of the %d visible GPUs has %d free slots of %d (leased by other compresslib jobs, "
                            "or kept for one waiting for them; locks in %s); waiting. Snakemake's "
                            "--resources gpu=<GPUs x slots per GPU> queues jobs before they start.",
                            len(keys), wanted, slots_per_key, lock_dir)
            time.sleep(poll_seconds)
    finally:
        if waiting is not None:
            os.close(waiting[1])


def _slot_path(lock_dir: Path, key: str, slot: int) -> Path:
    return lock_dir / f"gpu-{key}-slot{slot}.lock"


def _waiting_path(lock_dir: Path, key: str) -> Path:
    return lock_dir / f"gpu-{key}-waiting.lock"


def _lock_free_slots(lock_dir: Path, key: str, slots_per_key: int) -> dict[int, int]:
    """The slots of ``key`` no job holds, each now locked by this job: slot -> descriptor."""
    locked = {slot: _try_lock(_slot_path(lock_dir, key, slot)) for slot in range(slots_per_key)}
    return {slot: descriptor for slot, descriptor in locked.items() if descriptor is not None}


def _waited_for(lock_dir: Path, key: str) -> bool:
    """Whether another job holds ``key``'s waiting lock."""
    descriptor = _try_lock(_waiting_path(lock_dir, key))
    if descriptor is None:
        return True
    os.close(descriptor)
    return False


def _try_lock(path: Path) -> int | None:
    """A descriptor holding an exclusive lock on ``path`` (created if missing), or None where another holds it."""
    # O_RDONLY is enough for flock, so a lock file another user created (mode 644) still works
    descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


@contextlib.contextmanager
def _holding(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block, waiting for it."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


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
