"""What every experiment family is made of: its jobs (:class:`Job`), the study that plans them (:class:`Study`), and
the table of what a family provides (:class:`Family`). Nothing here needs torch, pandas or matplotlib.

A :class:`Job` is one job of the workflow's DAG: its rule (``rules/<family>.smk``), the values of the rule's
wildcards, the files it reads and the arguments of its workflow script. The rules, the cost planner
(``compresslib.plan_cost``) and the aggregation all consume the same job objects, planned once per config by a
:class:`Study`; a rule asks the study for the job its wildcards name. A path no experiment asks for is refused with
its name, unless the config's entries alone define its job (another seed of a teacher, say).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from compresslib.config import ConfigError, format_problems
from compresslib.runs.record import RECORD_NAME
from compresslib.settings import format_overrides

__all__ = ["Job", "Study", "Family", "ConfigError", "REPORT_LABELS", "ALL", "ALL_EXPERIMENTS", "unfinished_runs",
           "failures", "argument_problems", "milestone_problems", "unique_jobs", "overrides", "json_argument",
           "file_arguments", "summary_paths", "report_labels", "positions", "require_keys", "alternatives"]

# What the Snakemake report files each plot under, so that a reader can filter: the plot's experiment (a report
# subcategory of its family's category) and these labels, each a value or ALL where the plot shows every value of its
# experiment (every activation as a curve, every seed in a band).
REPORT_LABELS = ("figure", "dataset", "teacher", "student", "activation", "method", "bits", "seed")
ALL = "all"
ALL_EXPERIMENTS = "all experiments"  # the subcategory of a plot over several experiments (a dataset's Pareto front)


@dataclass(frozen=True)
class Job:
    """One job of the DAG. Subclasses are frozen dataclasses whose compared fields are the job's identity (its
    rule's wildcards, typed); a field declared with ``compare=False`` carries what the job was planned from (the
    experiment that first asked for it)."""

    RULE: ClassVar[str]
    FOLDER: ClassVar[str]  # the folder of its outputs, a pattern of the rule's wildcards
    OUTPUTS: ClassVar[dict[str, str]]  # output role -> file name in the folder
    LOG: ClassVar[str]  # its log's and benchmark's path under logs/<rule>/ and benchmarks/<rule>/
    WHAT: ClassVar[str] = "a job"  # what a planned job of this kind is, for the refusal of a stray one
    # A paper-scale student keeps a GPU a few per cent busy: such jobs lease one of a GPU's slots, the others a whole
    # GPU (compresslib.gpu_slots; the rules' `gpu` resource counts slots).
    SHARES_GPU: ClassVar[bool] = False

    @property
    def rule(self) -> str:
        return self.RULE

    def wildcards(self) -> dict[str, str]:
        """The rule's wildcard values of this job (the compared fields, as path parts)."""
        return {field.name: str(getattr(self, field.name)) for field in dataclasses.fields(self) if field.compare}

    @classmethod
    def from_wildcards(cls, wildcards: Mapping[str, str]) -> Job:
        """The job a rule's wildcards name, its fields typed (the inverse of :meth:`wildcards`)."""
        values = {field.name: int(wildcards[field.name]) if field.type in (int, "int") else wildcards[field.name]
                  for field in dataclasses.fields(cls) if field.compare}
        return cls(**values)

    @classmethod
    def patterns(cls) -> dict[str, str]:
        """The rule's output patterns by role."""
        return {role: f"{cls.FOLDER}/{name}" for role, name in cls.OUTPUTS.items()}

    @classmethod
    def log_pattern(cls) -> str:
        return f"logs/{cls.RULE}/{cls.LOG}.log"

    @classmethod
    def benchmark_pattern(cls) -> str:
        return f"benchmarks/{cls.RULE}/{cls.LOG}.tsv"

    def folder(self) -> str:
        return self.FOLDER.format(**self.wildcards())

    def run_folder(self) -> str | None:
        """Its folder when the job is a run in a folder of its own (``compresslib.runs``: one run, its record.json
        written last), else None (a download's record sits beside its file among others)."""
        return self.folder() if self.OUTPUTS.get("record") == RECORD_NAME else None

    def name(self) -> str:
        """The job's name among its rule's jobs (its log's path under logs/<rule>/)."""
        return self.LOG.format(**self.wildcards())

    def outputs(self) -> dict[str, str]:
        return {role: pattern.format(**self.wildcards()) for role, pattern in self.patterns().items()}

    def inputs(self, study: Study) -> dict[str, Any]:
        """The files the job reads, by role (beside its script)."""
        return {}

    def arguments(self, study: Study) -> str:
        """Its workflow script's arguments beyond the fixed ones of its rule (shell-quoted)."""
        return ""

    def checkpoint(self) -> Job | None:
        """The checkpoint job whose outputs add this job to Snakemake's DAG (it is known to Snakemake only once that
        job has run), or None."""
        return None

    def unplanned_problem(self, study: Study) -> str | None:
        """Why this job, which no experiment of the config asks for, cannot run when a user asks for its outputs by
        path; None where the config's entries alone define it. Most jobs take settings from their experiment, so the
        default refuses."""
        return f"{self.folder()} is not {self.WHAT} in the config"

    def teacher_passes(self, study: Study) -> tuple[str, int] | None:
        """``(teacher, epochs)`` when the job runs a teacher's logits on every training batch for that many epochs
        (which decides whether the teacher's logits are cached; ``compresslib.experiments.teachers``)."""
        return None


@dataclass(frozen=True)
class Family:
    """What one experiment family provides: the driver (``compresslib.experiments``) runs every family's part of
    config checking, planning, record checking, tables and plots, in the order of its table of families."""

    name: str  # its key in the aggregation's experiments (for most families, also its config section)
    check: Callable[[dict], list[str]] = lambda config: []  # references between config entries
    jobs: Callable[[Study], Iterable[Job]] = lambda study: ()  # the jobs it asks for (of any family's kinds)
    check_jobs: Callable[[Study], list[str]] = lambda study: []  # what only the planned jobs tell (their settings)
    records: tuple[type[Job], ...] = ()  # the job kinds whose record.json aggregation reads, in table order
    record_lists: tuple[type[Job], ...] = ()  # job kinds writing a list of record paths (known after a checkpoint)
    record_kinds: tuple[str, ...] = ()  # the record kinds it checks
    unlisted_kinds: tuple[str, ...] = ()  # record kinds of no training run, which runs.csv leaves out
    check_record: Callable[[dict, Path], None] = lambda record, path: None
    experiments: Callable[[dict], dict] = lambda config: {}  # its experiments as the tables and plots read them
    table_paths: Callable[[Path], list[Path]] = lambda out_dir: []
    write_tables: Callable[[list[dict], dict, Path], None] = lambda records, experiments, out_dir: None
    title: str = ""  # its category in the Snakemake report
    # each plot, in drawing order, with its report labels (:func:`report_labels`)
    plot_paths: Callable[[dict, Path], dict[Path, dict[str, str]]] = lambda experiments, out_dir: {}
    wildcards: Callable[[dict], dict[str, str]] = lambda config: {}  # its rules' wildcards' regular expressions
    write_plots: Callable[[list[dict], dict, Path], None] = lambda records, experiments, out_dir: None


class Study:
    """A checked config and its planned jobs, computed once: each family's jobs, in family order, every job once."""

    def __init__(self, config: dict, families: Iterable[Family]) -> None:
        self.config = config
        self.families = tuple(families)
        self._family_jobs: dict[str, list[Job]] = {}
        self._memo: dict[str, Any] = {}

    def jobs_of(self, family: str) -> list[Job]:
        """The jobs family ``family`` asks for, in its order."""
        if family not in self._family_jobs:
            owner = next(f for f in self.families if f.name == family)
            self._family_jobs[family] = list(owner.jobs(self))
        return self._family_jobs[family]

    @cached_property
    def jobs(self) -> list[Job]:
        """Every job of the DAG once (the first family to ask for a job plans it), in family order."""
        return list(dict.fromkeys(job for family in self.families for job in self.jobs_of(family.name)))

    def of_type(self, *types: type[Job]) -> list[Job]:
        return [job for job in self.jobs if isinstance(job, types)]

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per study (what several jobs derive from the whole plan)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def dependents(self, job: Job) -> int:
        """How many planned jobs read ``job``'s outputs, directly or through other jobs: the workflow's priority for
        it, so that the teacher dozens of students wait for starts before a job nothing waits for."""
        return self.memo("dependents", self._count_dependents).get(job, 0)

    def _count_dependents(self) -> dict[Job, int]:
        producers = {path: job for job in self.jobs for path in job.outputs().values()}
        readers: dict[Job, set[Job]] = {}
        for job in self.jobs:
            for value in job.inputs(self).values():
                for path in [value] if isinstance(value, str) else value:
                    if path in producers:
                        readers.setdefault(producers[path], set()).add(job)
        after: dict[Job, frozenset[Job]] = {}

        def descendants(job: Job) -> frozenset[Job]:
            if job not in after:
                direct = readers.get(job, set())
                after[job] = frozenset(direct).union(*(descendants(reader) for reader in direct))
            return after[job]

        return {job: len(descendants(job)) for job in self.jobs}

    @cached_property
    def _index(self) -> dict[Job, Job]:
        return {job: job for job in self.jobs}

    def job(self, job_type: type[Job], wildcards: Mapping[str, str]) -> Job:
        """The job of ``job_type`` that the rule's ``wildcards`` name: the planned one, or one asked for by path that
        the config's entries alone define; else a ConfigError naming its folder (:meth:`Job.unplanned_problem`)."""
        wanted = job_type.from_wildcards(wildcards)
        if wanted in self._index:
            return self._index[wanted]
        problem = wanted.unplanned_problem(self)
        if problem is not None:
            raise ConfigError(problem)
        return wanted


def unfinished_runs(jobs: Iterable[Job]) -> list[Job]:
    """The jobs among ``jobs`` whose run folder (under the working directory) holds a run that started and did not
    finish: the folder exists (Snakemake makes it as the job starts, the run keeps its state file there) and has no
    record.json (a run writes it last). Snakemake runs a job whose outputs are missing only when a job after it has
    to run, so a job run again on purpose (``--forcerun``, which deletes its outputs first) and stopped would stay
    unfinished while the jobs after it look up to date: the workflow asks for these records. Two stats per job and
    no torch: the workflow asks this of every planned job whenever it starts."""
    return [job for job in jobs if (folder := job.run_folder()) is not None and os.path.isdir(folder)
            and not os.path.exists(os.path.join(folder, RECORD_NAME))]


def failures(check: Callable[[Any], object], items: Iterable[tuple[str, Any]]) -> list[str]:
    """``"<where>: <error>"`` for every ``(where, value)`` on which ``check`` raises ValueError."""
    problems = []
    for where, value in items:
        try:
            check(value)
        except ValueError as error:
            problems.append(f"{where}: {error}")
    return problems


def argument_problems(where: str, model: str, keys: Iterable[str], allowed: tuple[str, ...]) -> list[str]:
    """``"<where>: <model> takes no argument ..."`` for every key (of a config's ``model_kwargs``) that is not
    ``allowed``: a typo would otherwise fail only when its job builds the model."""
    return [f"{where}: {model} takes no argument {key!r}; allowed: {', '.join(allowed) or '(none)'}"
            for key in keys if key not in allowed]


def milestone_problems(where: str, recipe: Mapping[str, Any]) -> list[str]:
    """``"<where>.milestones[i]: ..."`` for every milestone of a multistep recipe (its ``epochs``, ``milestones`` and
    ``schedule``; LIT's phases have no schedule, they are multistep) after its last epoch, where it never applies.
    One at the end of the last epoch is allowed: LIT's VDCNN recipe lists one (``lit-code``'s config as written)."""
    if recipe.get("schedule", "multistep") != "multistep":
        return []
    epochs = recipe["epochs"]
    return [f"{where}.milestones[{index}]: {milestone} is beyond the {epochs} epochs; allowed: 0 to {epochs}"
            for index, milestone in enumerate(recipe["milestones"]) if milestone > epochs]


def unique_jobs(entries: Iterable[tuple[Job, Any]], conflict: Callable[[Job, Job], str]) -> list[Job]:
    """The jobs of ``(job, settings)`` in order, each once. Two experiments may ask for one job only with the same
    settings (else their results would overwrite each other); every clash is reported with ``conflict(first,
    second)`` (the two planned jobs, whose ``experiment`` fields name the experiments)."""
    first: dict[Job, tuple[Job, Any]] = {}
    problems = []
    for job, settings in entries:
        if job in first and first[job][1] != settings:
            problems.append(conflict(first[job][0], job))
        first.setdefault(job, (job, settings))
    if problems:
        raise ConfigError(format_problems(problems))
    return [job for job, _ in first.values()]


def overrides(values: Mapping[str, Any], settings: type) -> str:
    """Settings values as shell-quoted ``key=value`` arguments of a workflow script (``settings``: their class)."""
    return " ".join(shlex.quote(item) for item in format_overrides(values, settings))


def json_argument(value: Any) -> str:
    # sorted keys: a config whose mappings were reordered (a YAML dump sorts them) must not look changed
    return shlex.quote(json.dumps(value, sort_keys=True))


def file_arguments(files: Mapping[str, str]) -> str:
    """``--<role> <path>`` for every model file a job reads (``teacher_views`` -> ``--teacher-views``)."""
    return " ".join(f"--{role.replace('_', '-')} {shlex.quote(path)}" for role, path in files.items())


def summary_paths(out_dir: Path, family: str, table: str = "summary") -> list[Path]:
    """A family's table and its Markdown: ``<table>-<family>.csv`` and ``.md`` in ``out_dir`` (``summary``, or
    ``paired``: its paired comparisons)."""
    return [Path(out_dir) / f"{table}-{family}.{suffix}" for suffix in ("csv", "md")]


def report_labels(experiment: str, figure: str, **values: object) -> dict[str, str]:
    """A plot's labels in the report: ``experiment`` (the subcategory), what the ``figure`` shows, and every one of
    :data:`REPORT_LABELS` (:data:`ALL` where not given), as text."""
    unknown = set(values) - set(REPORT_LABELS)
    if unknown:
        raise ValueError(f"report labels {sorted(unknown)} are not among {REPORT_LABELS}")
    return {"experiment": experiment, "figure": figure,
            **{key: str(values.get(key, ALL)) for key in REPORT_LABELS if key != "figure"}}


def positions(values: Iterable) -> dict:
    """Each value's place in ``values`` (the config's order, which tables sort by)."""
    return {value: index for index, value in enumerate(values)}


def alternatives(names: Iterable) -> str:
    """A wildcard's regular expression matching exactly ``names`` (nothing when there are none)."""
    return "|".join(sorted(map(re.escape, map(str, names)))) or "(?!)"  # "(?!)" matches nothing


def require_keys(section: dict | None, keys: Iterable[str], path: Path, what: str) -> None:
    """Raise ``<path>: <what> [the keys section lacks]`` when ``section`` (None: empty) lacks any of ``keys``."""
    missing = [key for key in keys if key not in (section or {})]
    if missing:
        raise ValueError(f"{path}: {what} {missing}")
