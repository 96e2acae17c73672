"""The torch-free side of GPU placement, which the workflow reads too (its dry run must not import torch): how many
jobs share a GPU, how much of one a job leases, the device chosen for all jobs in place of ``auto``, whether the job
was given GPUs, and the error for given GPUs that torch cannot use.

A GPU is cut into ``COMPRESSLIB_GPU_SLOTS`` slots; a job leases ``COMPRESSLIB_JOB_GPU_SLOTS`` of them, all on one GPU
(``compresslib.devices.place``). The workflow sets a job's slots from its Snakemake ``gpu`` resource (a student 1, a
teacher all of them), so ``--resources gpu=<GPUs x slots>`` counts slots on one machine; a job run by hand leases a
whole GPU.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping

from compresslib.config import ConfigError

__all__ = ["SLOTS_ENV", "JOB_SLOTS_ENV", "DEVICE_ENV", "DEFAULT_SLOTS", "GPUUnavailable", "slots_per_gpu",
           "job_slots", "device_override", "gpus_given"]

SLOTS_ENV = "COMPRESSLIB_GPU_SLOTS"
JOB_SLOTS_ENV = "COMPRESSLIB_JOB_GPU_SLOTS"
DEVICE_ENV = "COMPRESSLIB_DEVICE"
_DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
# Provisional: the paper's students use a few per cent of a GPU each, but how many run side by side before they slow
# each other down is for the GPU check to measure (one job against N concurrent ones); set it from that measurement.
DEFAULT_SLOTS = 4
# The variables by which a scheduler gives a job GPUs; CUDA_VISIBLE_DEVICES names none when its first entry is one of
# _NO_DEVICES (CUDA stops reading the list at the first entry that is no device; SLURM writes NoDevFiles)
_VISIBLE_ENV = "CUDA_VISIBLE_DEVICES"
_SLURM_GPU_ENVS = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "SLURM_GPUS_ON_NODE")
_NO_DEVICES = ("", "-1", "NoDevFiles")


class GPUUnavailable(RuntimeError):
    """The job was given GPUs (or asked for one) that torch cannot use; the message says why, in one line."""


def slots_per_gpu(environ: Mapping[str, str] = os.environ) -> int:
    """The slots each GPU is cut into: ``COMPRESSLIB_GPU_SLOTS``, else :data:`DEFAULT_SLOTS`."""
    return _whole_number(environ, SLOTS_ENV, DEFAULT_SLOTS, range(1, sys.maxsize), "a whole number of at least 1")


def job_slots(environ: Mapping[str, str] = os.environ) -> int:
    """The slots of one GPU this job leases: ``COMPRESSLIB_JOB_GPU_SLOTS`` (1 to :func:`slots_per_gpu`; 0 where the
    workflow asked for no GPU, on a cluster without GPUs), else all of them (a whole GPU)."""
    slots = slots_per_gpu(environ)
    return _whole_number(environ, JOB_SLOTS_ENV, slots, range(slots + 1),
                         f"a whole number from 0 to {slots} (the slots of a GPU, {SLOTS_ENV})")


def _whole_number(environ: Mapping[str, str], name: str, default: int, allowed: range, described: str) -> int:
    value = environ.get(name)
    if value is None:
        return default
    if not (value.strip().isdecimal() and int(value) in allowed):
        raise ConfigError(f"{name}={value!r}: must be {described}")
    return int(value)


def device_override(environ: Mapping[str, str] = os.environ) -> str | None:
    """The device ``COMPRESSLIB_DEVICE`` puts in place of a job's ``auto`` (``cpu``: training on the CPU where GPUs
    were given, by choice), or None where it is unset or ``auto``."""
    value = environ.get(DEVICE_ENV)
    if value is not None and not _DEVICE_PATTERN.fullmatch(value):
        raise ConfigError(f"{DEVICE_ENV}={value!r}: must be auto, cpu, cuda or cuda:<index>")
    return None if value in (None, "auto") else value


def gpus_given(environ: Mapping[str, str] = os.environ) -> tuple[str, str] | None:
    """``(variable, value)`` of the first variable saying the job was given GPUs (``CUDA_VISIBLE_DEVICES`` naming
    devices, or SLURM's GPU variables naming some), or None."""
    visible = environ.get(_VISIBLE_ENV)
    if visible is not None and visible.split(",")[0].strip() not in _NO_DEVICES:
        return _VISIBLE_ENV, visible
    for name in _SLURM_GPU_ENVS:
        value = environ.get(name, "").strip()
        if value not in ("", "0"):
            return name, value
    return None
