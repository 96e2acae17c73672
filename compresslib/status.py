"""``python -m compresslib status [DIRECTORY] [--configfile FILE] [--json]``: a running study at a glance.

Per experiment, how many of its planned jobs finished, are running, failed or have not started, then a line for each
running job (how far, seconds per epoch or ESNAC candidate, the ETA as a clock time and a duration) and each failed
one (its log's last line). The planned jobs are the workflow's own: the config is read as the workflow reads it
(this checkout's config.yaml, or the ``--configfile`` that names the study, as for snakemake) and planned by
``compresslib.experiments``, so "not started" is planned and not begun. Each job's status comes from its files under
DIRECTORY, the workflow's working directory (results/, logs/; the demo's is demo/), by the rule of
``compresslib.runs.observe``: running while its run folder's lock is seen held, or while it keeps writing (its
log, state or sessions file within three of its epochs, at least 10 minutes; an hour before its first epoch is saved
and after its last); failed when its log ends in an error, a traceback or the SIGTERM stop, or when it went silent for
longer. Nothing is written or locked and neither torch nor Snakemake is imported: it can run on a login node while a
SLURM run writes the tree.

Jobs are grouped by family and, where the job names it, the experiment that asked for it first
(``quantize/qd-cifar10``); a job shared by several experiments (a teacher, a distilled student) counts once, in its
family. Downloads and prepared data count in their families (data, corpora); a job without a run folder finishes when
all its outputs exist. Left out: the aggregate job (tables, plots; no planned job) and run folders the config does not
plan (an earlier config's).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from compresslib import experiments
from compresslib.experiments import ConfigError, Job, Study
from compresslib.runs.observe import FAILED, FINISHED, NOT_STARTED, RUNNING, STATES, RunStatus, run_status
from compresslib.runs.progress import format_clock, format_duration, local_iso

__all__ = ["JobStatus", "study_status", "format_report", "report_json", "main"]

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "rules" / "schemas" / "config.schema.yaml"
LAST_LINE_WIDTH = 120  # a failed job's last log line is cut to this many characters


@dataclass(frozen=True)
class JobStatus:
    """A planned job, the group it is counted in, and what its files say of it."""

    group: str
    job: Job
    status: RunStatus

    def name(self) -> str:
        return f"{self.job.rule} {self.job.name()}"

    def to_json(self, now: float) -> dict:
        return {"group": self.group, "rule": self.job.rule, "name": self.job.name(),
                "run_dir": self.job.run_folder(), "log": job_log(self.job), **self.status.to_json(now)}


def job_log(job: Job) -> str:
    """The job's log, relative to the workflow's working directory (``logs/<rule>/<name>.log``)."""
    return job.log_pattern().format(**job.wildcards())


def study_status(study: Study, directory: Path, now: float) -> list[JobStatus]:
    """The status of every job the study plans, found under ``directory`` as of ``now`` (Unix time), in the order
    of the families, each job in the first family that asks for it."""
    statuses, seen = [], set()
    for family in study.families:
        for job in study.jobs_of(family.name):
            if job in seen:
                continue
            seen.add(job)
            experiment = getattr(job, "experiment", "")  # a job planned from an experiment's settings names it
            folder = job.run_folder()
            status = run_status(directory / job_log(job), None if folder is None else directory / folder,
                                tuple(directory / path for path in job.outputs().values()), now)
            statuses.append(JobStatus(f"{family.name}/{experiment}" if experiment else family.name, job, status))
    return statuses


def _groups(statuses: list[JobStatus]) -> dict[str, list[JobStatus]]:
    groups: dict[str, list[JobStatus]] = {}
    for entry in statuses:
        groups.setdefault(entry.group, []).append(entry)
    return groups


def _counts(statuses: list[JobStatus]) -> dict[str, int]:
    counted = Counter(entry.status.state for entry in statuses)
    return {state: counted[state] for state in STATES}


def format_report(statuses: list[JobStatus], now: float, title: str) -> str:
    """The table: ``title``, the totals, then per group its counts and a line per running and per failed job."""
    totals = _counts(statuses)
    lines = [title, f"{len(statuses)} jobs: " + ", ".join(f"{count} {state.replace('_', ' ')}"
                                                          for state, count in totals.items()), "",
             f"{'group':<32}{'jobs':>6}{'finished':>10}{'running':>9}{'failed':>8}{'not started':>13}"]
    for group, members in _groups(statuses).items():
        counts = _counts(members)
        lines.append(f"{group:<32}{len(members):>6}{counts[FINISHED]:>10}{counts[RUNNING]:>9}{counts[FAILED]:>8}"
                     f"{counts[NOT_STARTED]:>13}")
        lines += [f"  {_running_line(entry, now)}" for entry in members if entry.status.state == RUNNING]
        lines += [f"  {_failed_line(entry)}" for entry in members if entry.status.state == FAILED]
    return "\n".join(lines)


def _running_line(entry: JobStatus, now: float) -> str:
    status, session = entry.status, entry.status.session or {}
    if status.progress is not None:
        parts = [status.progress.describe(now)]
    elif session.get("started_at"):
        started = datetime.fromisoformat(session["started_at"]).timestamp()
        parts = [f"started {format_clock(started, now)} ({format_duration(max(now - started, 0))} ago)"]
    else:
        parts = []
    host, slurm_job = session.get("hostname"), session.get("slurm_job_id")
    if host or slurm_job:
        parts.append(" ".join(filter(None, [host, slurm_job and f"SLURM job {slurm_job}"])))
    return " · ".join([f"running  {entry.name()}", *parts, status.reason])


def _failed_line(entry: JobStatus) -> str:
    status = entry.status
    reached = [f"{status.progress.unit} {status.progress.done}/{status.progress.total}"] if status.progress else []
    line = status.last_line.strip()
    cut = line if len(line) <= LAST_LINE_WIDTH else line[:LAST_LINE_WIDTH - 1] + "…"
    return " · ".join([f"failed   {entry.name()}", *reached, status.reason, cut or "(empty log)"])


def report_json(statuses: list[JobStatus], now: float, directory: Path, config: Path) -> dict:
    """Every planned job's status, by group, with the counts (``--json``)."""
    return {"directory": str(directory), "config": str(config), "now": local_iso(now), "counts": _counts(statuses),
            "groups": [{"name": group, "counts": _counts(members), "jobs": [entry.to_json(now) for entry in members]}
                       for group, members in _groups(statuses).items()]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m compresslib status", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", nargs="?", type=Path, default=Path("."),
                        help="the workflow's working directory, holding results/ and logs/ (default: .; the demo's: "
                        "demo); its results/ folder is taken for it")
    parser.add_argument("--configfile", type=Path, default=REPO / "config.yaml",
                        help="the study's config, as given to snakemake (default: this checkout's config.yaml)")
    parser.add_argument("--json", action="store_true", help="every planned job's status as JSON")
    args = parser.parse_args(argv)
    directory = args.directory
    if directory.name == "results" and not (directory / "results").is_dir():
        directory = directory.parent
    if not directory.is_dir():
        parser.error(f"{args.directory} is not a directory")
    try:
        study = experiments.load_config(args.configfile, SCHEMA)
    except (ConfigError, OSError) as error:
        parser.exit(1, f"{parser.prog}: {args.configfile}: {error}\n")
    now = time.time()
    statuses = study_status(study, directory, now)
    if args.json:
        print(json.dumps(report_json(statuses, now, directory, args.configfile), indent=2))
    else:
        print(format_report(statuses, now, f"{directory.resolve()} ({args.configfile}) at {local_iso(now)}"))
