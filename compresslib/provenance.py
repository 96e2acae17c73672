"""What a run needs to record to be reproduced: software versions, git revision, hardware, the job it ran in.

torch is imported by ``hardware`` alone: every job names itself in its log with ``job_identity`` (``compresslib.cli``),
also those that never use torch (downloads, aggregation).
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import re
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compresslib.devices import Placement

__all__ = ["software", "hardware", "job_identity", "git_revision", "code_sha256", "now_iso", "run_provenance"]

PACKAGES = ("compresslib", "torch", "torchvision", "numpy", "pandas", "snakemake", "snakemake-executor-plugin-slurm")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_revision(path: str | Path | None = None) -> dict:
    """``{"git_revision": sha or None, "git_dirty": bool or None}`` of the repository holding ``path``."""
    cwd = Path(path or Path(__file__).resolve().parent)
    try:
        revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                  check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, check=True, timeout=10).stdout
        return {"git_revision": revision, "git_dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):  # not a checkout, or git missing: say so, don't fail
        return {"git_revision": None, "git_dirty": None}


@functools.cache
def code_sha256() -> str:
    """The sha256 of the code a job runs: compresslib's Python files, and the workflow scripts beside it in a
    checkout (by path and content); an edited but uncommitted checkout has its own."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for folder in (package, package.parent / "workflow_scripts"):
        for path in sorted(folder.rglob("*.py")):
            digest.update(f"{path.relative_to(package.parent)}\0{len(path.read_bytes())}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def software() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": platform.python_version(), "packages": versions, **git_revision()}


def job_identity() -> dict:
    """The host and, under SLURM, the job this process runs in, its node, and how often SLURM restarted the job: a
    job resubmitted by Snakemake gets a new id, one requeued by SLURM keeps its id and counts one restart more."""
    job = os.environ.get("SLURM_JOB_ID")
    return {"hostname": socket.gethostname(), "slurm_job_id": job, "slurm_node": os.environ.get("SLURMD_NODENAME"),
            "slurm_restart_count": _restart_count(job)}


def _restart_count(job: str | None) -> int | None:
    if job is None:
        return None
    count = os.environ.get("SLURM_RESTART_COUNT", "")
    return int(count) if count.isdigit() else _scontrol_restarts(job)


_SCONTROL_TIMEOUT_S = 5  # a controller that does not answer must not hold the job up


@functools.cache  # a job's restarts do not change while it runs: a requeue ends the process
def _scontrol_restarts(job: str) -> int | None:
    """``Restarts=`` of ``scontrol show job -o <job>`` (SLURM's controller; no accounting database needed): the job
    steps snakemake-executor-plugin-slurm starts (2.8.0) lose SLURM_RESTART_COUNT with every other SLURM_ variable
    but the job's id. None when scontrol is missing, fails or is slow."""
    try:
        shown = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, check=True,
                               timeout=_SCONTROL_TIMEOUT_S).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(?:^|\s)Restarts=(\d+)", shown)
    return int(match.group(1)) if match else None


def hardware(placement: Placement, threads: int) -> dict:
    """The device the run used (and how it got it), CPU threads, whether LMA and APLU ran on the CPU kernels, host
    and interpreter."""
    import torch

    from compresslib import piecewise_cpu

    device = placement.device
    info = {
        **placement.describe(),
        "device_type": device.type,
        "device_name": platform.processor() or platform.machine(),
        "threads": threads,
        "cpu_kernels": piecewise_cpu.kernel_state(),
        **job_identity(),
        "platform": platform.platform(),
        "executable": sys.executable,
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def run_provenance(dataset: dict, command: list[str] | None, started_at: str, **models: dict | None) -> dict:
    """A record's ``provenance``: code and package versions, the dataset file, the input models, the command."""
    versions = software()
    return {"git_revision": versions["git_revision"], "git_dirty": versions["git_dirty"],
            "code_sha256": code_sha256(), "packages": versions["packages"], "python": versions["python"],
            "dataset": dataset, **models,
            "command": command if command is not None else list(sys.argv),
            "started_at": started_at, "finished_at": now_iso()}
