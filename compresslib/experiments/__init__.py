"""The experiment families and the one table that drives them: config checks, the planned DAG, record checks,
tables and plots.

Each family is one module here (``datasets``, ``teachers``, ``distill``, ``quantize``, ``lit``, ``esnac``,
``corpora``, ``translation``) that owns everything the workflow and the tables know of it, and exposes a
:class:`~compresslib.experiments.base.Family`. :data:`FAMILIES` lists them; everything below iterates over it, so a
new family is one module added there plus its ``rules/<family>.smk``. Importing this package loads neither torch nor
pandas, scipy or matplotlib (the workflow's dry run imports it); aggregation loads them when it runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from compresslib import run_tables
from compresslib.config import ConfigError, format_problems, load_schema, read_config_file, schema_errors, \
    with_defaults
from compresslib.experiments import corpora, datasets, distill, esnac, lit, quantize, teachers, translation
from compresslib.experiments.base import Family, Job, Study, unfinished_runs
from compresslib.runs.record import read_record, read_record_list

__all__ = ["FAMILIES", "RUN_KINDS", "ConfigError", "Job", "Study", "unfinished_runs", "check_config", "load_config",
           "wildcard_constraints", "gpus_per_job", "aggregation_experiments", "aggregate_inputs", "table_paths",
           "plot_paths", "report_tables", "report_plots", "family_titles", "load_records", "write_tables",
           "write_plots"]

FAMILIES: tuple[Family, ...] = (datasets.FAMILY, teachers.FAMILY, distill.FAMILY, quantize.FAMILY, lit.FAMILY,
                                esnac.FAMILY, corpora.FAMILY, translation.FAMILY)
# the record kinds of training runs, each with its runs-<kind>.csv (a fixed list: the workflow declares the files)
RUN_KINDS = tuple(kind for family in FAMILIES for kind in family.record_kinds if kind not in family.unlisted_kinds)
GPUS_PER_JOB_ENV = "COMPRESSLIB_GPUS_PER_JOB"
RUNS_CATEGORY = "All runs"  # the report's category of runs.csv and the runs-<kind>.csv tables


def gpus_per_job() -> int:
    """The GPUs each training job asks for (the rules' ``gpu`` resource): 1, or 0 where ``COMPRESSLIB_GPUS_PER_JOB=0``
    says the cluster (or machine) has none. Cluster jobs inherit the submitting shell's value, so their own Snakemake
    plans the same."""
    value = os.environ.get(GPUS_PER_JOB_ENV, "1")
    if value not in ("0", "1"):
        raise ConfigError(f"{GPUS_PER_JOB_ENV}={value!r}: must be 1 (a GPU per training job) or 0 (none, on a cluster "
                          "without GPUs)")
    return int(value)


def check_config(config: dict) -> Study:
    """Check what the schema cannot (references between entries, registered names, every planned job's settings)
    in a schema-valid config with its defaults; return its planned jobs. Raises ConfigError listing every problem."""
    problems = [problem for family in FAMILIES for problem in family.check(config)]
    if problems:
        raise ConfigError(format_problems(problems))
    study = Study(config, FAMILIES)
    problems = [problem for family in FAMILIES for problem in family.check_jobs(study)]
    if problems:
        raise ConfigError(format_problems(problems))
    return study


def load_config(path: str | Path, schema_path: str | Path) -> Study:
    """A config file read as the workflow reads it (a YAML syntax error or a key given twice is refused), validated
    against the workflow's schema with its defaults filled in (what Snakemake's ``validate`` does), then checked and
    planned; a bad config raises ConfigError naming every problem."""
    config = read_config_file(path)
    schema = load_schema(schema_path)
    problems = schema_errors(config, schema)
    if problems:
        raise ConfigError(format_problems(problems))
    return check_config(with_defaults(config, schema))


def wildcard_constraints(config: dict) -> dict[str, str]:
    """Every rule wildcard's regular expression, from the families' own enumerations and the config's names."""
    constraints: dict[str, str] = {}
    for family in FAMILIES:
        for name, pattern in family.wildcards(config).items():
            if constraints.setdefault(name, pattern) != pattern:
                raise ValueError(f"wildcard {name!r} is constrained twice: {constraints[name]!r} and {pattern!r}")
    return constraints


# ---- aggregation ------------------------------------------------------------------------------------------------

def aggregation_experiments(config: dict) -> dict:
    """Every family's experiments as its tables and plots read them, by family (families without any left out)."""
    return {family.name: view for family in FAMILIES if (view := family.experiments(config))}


def _by_family(experiments: dict) -> dict[str, dict]:
    """Each family's experiments (``{}`` where absent); a key that names no family is an error."""
    names = [family.name for family in FAMILIES]
    unknown = sorted(set(experiments) - set(names))
    if unknown:
        expected = ", ".join(f"{name!r}: ..." for name in names)
        raise ValueError(f"experiments: unknown kinds {unknown}; expected {{{expected}}}")
    return {name: experiments.get(name) or {} for name in names}


def aggregate_inputs(study: Study) -> dict[str, list[str]]:
    """What aggregation reads: the records of every family's finished runs, in table order, and the files listing
    records that only a finished checkpoint job knows (ESNAC's full trainings)."""
    return {"records": [job.outputs()["record"] for family in FAMILIES for job_type in family.records
                        for job in study.of_type(job_type)],
            "record_lists": [job.outputs()["records"] for family in FAMILIES for job_type in family.record_lists
                             for job in study.of_type(job_type)]}


def table_paths(out_dir: str | Path) -> list[Path]:
    """Every file :func:`write_tables` writes (the workflow declares them as outputs): ``runs.csv`` and each run
    kind's ``runs-<kind>.csv`` first (:mod:`compresslib.run_tables`), then the families' tables."""
    return [*run_tables.table_paths(out_dir, RUN_KINDS),
            *(path for family in FAMILIES for path in family.table_paths(Path(out_dir)))]


def plot_paths(experiments: dict, out_dir: str | Path) -> list[Path]:
    """Every file :func:`write_plots` writes, the teachers' curves first; they depend on the experiments alone."""
    by_family = _by_family(experiments)
    return [path for family in FAMILIES for path in family.plot_paths(by_family[family.name], Path(out_dir))]


def report_tables(out_dir: str | Path) -> list[tuple[str, Path]]:
    """Every file of :func:`table_paths` with its category in the Snakemake report (its family's title)."""
    return [*((RUNS_CATEGORY, path) for path in run_tables.table_paths(out_dir, RUN_KINDS)),
            *((family.title, path) for family in FAMILIES for path in family.table_paths(Path(out_dir)))]


def report_plots(experiments: dict, out_dir: str | Path) -> list[tuple[str, Path, dict[str, str]]]:
    """Every file of :func:`plot_paths` with its category in the Snakemake report (its family's title) and its labels
    (``base.report_labels``: the experiment, which is its subcategory, and what it shows)."""
    by_family = _by_family(experiments)
    return [(family.title, path, labels) for family in FAMILIES
            for path, labels in family.plot_paths(by_family[family.name], Path(out_dir)).items()]


def family_titles() -> dict[str, str]:
    """Each family's heading in the report, by name."""
    return {family.name: family.title for family in FAMILIES}


def load_records(paths: Iterable[str | Path], record_lists: Iterable[str | Path] = ()) -> list[dict]:
    """Read record.json files in the order given, then those each record list names (``runs.record.write_record_list``:
    ESNAC's, whose full trainings are known only after its search), each checked by the family of its kind; errors
    name the file."""
    checks = {kind: family for family in FAMILIES for kind in family.record_kinds}
    listed = [path for record_list in record_lists for path in read_record_list(record_list)]
    records = []
    for path in map(Path, [*paths, *listed]):
        record = read_record(path)
        if record["kind"] not in checks:
            raise ValueError(f"{path}: record kind {record['kind']!r}, expected one of {tuple(checks)}")
        checks[record["kind"]].check_record(record, path)
        records.append(record)
    return records


def write_tables(records: list[dict], experiments: dict, out_dir: str | Path) -> list[Path]:
    """Rebuild every table in ``out_dir`` from the records (nothing is appended); returns :func:`table_paths`.
    Works with no runs or experiments of any family yet: those tables hold headers or a "no finished runs" note."""
    by_family = _by_family(experiments)
    run_tables.write_tables(records, RUN_KINDS, out_dir)
    for family in FAMILIES:
        family.write_tables(records, by_family[family.name], Path(out_dir))
    return table_paths(out_dir)


def write_plots(records: list[dict], experiments: dict, out_dir: str | Path) -> list[Path]:
    """Draw every plot of :func:`plot_paths`, with a "no finished runs" note where nothing finished yet."""
    by_family = _by_family(experiments)
    for family in FAMILIES:
        family.write_plots(records, by_family[family.name], Path(out_dir))
    return plot_paths(experiments, out_dir)
