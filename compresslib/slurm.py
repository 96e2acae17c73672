"""What SLURM reports about a job, read the way SLURM means it, and what a SLURM job holding GPU slots needs.

The workflow's adapter to snakemake-executor-plugin-slurm (``rules/slurm.smk``) routes the plugin's readings through
these functions; they are plain functions of SLURM's text so that they are tested without a cluster (docs/slurm.md
has the plugin faults they mend and the upstream reports).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from compresslib.config import ConfigError

__all__ = ["job_state", "node_names", "gpus_for_slots", "side_by_side", "SHARING_ENV", "gpu_sharing", "slot_request",
           "step_gpu_options"]

SHARING_ENV = "COMPRESSLIB_SLURM_GPU_SHARING"
# how jobs that hold part of a GPU get it: "groups" (a SLURM job per Snakemake group, with whole GPUs, shared by the
# group's members), or "shard" (each such job asks for shards of a GPU: the site's `shard` GRES, one per slot)
SHARING_MODES = ("groups", "shard")


def job_state(reported: str) -> str:
    """The base state of a job from ``sacct``/``squeue`` State text.

    ``sacct`` appends who cancelled a job (``CANCELLED by 1000``); the state is the first word. Without this a
    cancelled job reads as a state no one knows, which a status poller takes for "still running" for ever.
    """
    words = reported.split()
    return words[0] if words else reported


def node_names(nodelist: str) -> list[str]:
    """The node names in ``sacct -o NodeList`` text: none for a job holding no node (``None assigned``, as a requeued
    job reads once it waits again), else the hostlist expressions it names (``gpu[01-02]``, ``vm``)."""
    text = nodelist.strip()
    if not text or text.startswith("None"):
        return []
    return [name for name in text.split(",") if name]


def gpus_for_slots(slots: int, slots_per_gpu: int) -> int:
    """The GPUs that hold ``slots`` GPU slots (``compresslib.gpu_slots``): a job's, or the sum of a group's members that
    run side by side. A whole GPU's slots or fewer is one GPU."""
    return -(-slots // slots_per_gpu)


def gpu_sharing(environ: Mapping[str, str] = os.environ) -> str:
    """``COMPRESSLIB_SLURM_GPU_SHARING`` (one of :data:`SHARING_MODES`), ``groups`` where unset."""
    mode = environ.get(SHARING_ENV, "groups")
    if mode not in SHARING_MODES:
        raise ConfigError(f"{SHARING_ENV}={mode!r}: must be {' or '.join(SHARING_MODES)}")
    return mode


def slot_request(resources: Mapping[str, object], slots_per_gpu: int, sharing: str) -> dict[str, object]:
    """The resources SLURM must see for a job (or group job) whose ``gpu`` counts GPU slots: the GPUs that hold them,
    or, with ``shard`` sharing and less than a GPU's slots, that many shards of a GPU (``--gres=shard[:<model>]:<n>``,
    the site giving each GPU ``slots_per_gpu`` shards)."""
    request = dict(resources)
    slots = request.get("gpu")
    if not isinstance(slots, int) or slots <= 0:
        return request
    if sharing == "shard" and slots < slots_per_gpu:
        del request["gpu"]
        model = request.pop("gpu_model", None)
        request["gres"] = f"shard:{model}:{slots}" if model else f"shard:{slots}"
    else:
        request["gpu"] = gpus_for_slots(slots, slots_per_gpu)
    return request


def step_gpu_options(slots: int, slots_per_gpu: int, sharing: str) -> str:
    """The srun options of a job step holding ``slots`` GPU slots inside its SLURM job (the job asked for them as
    :func:`slot_request` says): the GPUs, or the shards, that hold them, shared with the job's other steps
    (``--overlap``: without it SLURM holds a step until the GPU is free). A shard step names the shards untyped: SLURM
    22.05 refuses a step that asks ``shard:<model>:<n>`` or nothing ("Invalid generic resource specification")."""
    if slots <= 0:
        return ""
    if sharing == "shard" and slots < slots_per_gpu:
        return f"--gres=shard:{slots} --overlap"
    return f"--gpus={gpus_for_slots(slots, slots_per_gpu)} --overlap"


def side_by_side(general_args: str) -> str:
    """The job-step arguments of a SLURM job with the members of a group run side by side: without the plugin's
    ``--jobs 1`` (each member is still one job step; the allocation's CPUs bound how many run at once)."""
    return general_args.replace("--jobs 1", "--jobs unlimited")
