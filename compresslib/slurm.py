"""What SLURM reports about a job, read the way SLURM means it, and what a packed SLURM job needs.

The workflow's adapter to snakemake-executor-plugin-slurm (``rules/slurm.smk``) routes the plugin's readings through
these functions; they are plain functions of SLURM's text so that they are tested without a cluster (docs/slurm.md
has the plugin faults they mend and the upstream reports).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["job_state", "node_names", "sequential_request", "ADDED_UP"]

ADDED_UP = frozenset({"runtime"})  # a packed job's members run one after another: their times add up


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


def sequential_request(members: Iterable[Mapping[str, object]]) -> dict[str, int]:
    """What one SLURM job running ``members`` one after another needs: the largest member's count of every numeric
    resource (GPUs, CPUs, memory), and the members' times added up (``ADDED_UP``)."""
    request: dict[str, int] = {}
    for resources in members:
        for name, value in resources.items():
            if isinstance(value, bool) or not isinstance(value, int):
                continue
            request[name] = request.get(name, 0) + value if name in ADDED_UP else max(request.get(name, value), value)
    return request
