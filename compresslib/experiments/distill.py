"""Distilled students (config ``students``, ``distill``): LMA's students per activation and seed.

Jobs: ``distill_student`` (a student distilled from its teacher with the student entry's ``kd`` settings) per
experiment, student, activation tag and seed, and ``train_undistilled`` (the same student on hard labels only),
which other families ask for as references and baselines (quantize, LIT). A student of a teacher whose logits are
cached (``compresslib.experiments.teachers.teacher_outputs``) reads them from the teacher's views table.

Tables: ``summary-distill.csv`` (per experiment, student and activation over the seeds), LMA's per-seed table
(``seeds-distill-{best,final}.csv``, ``seeds-distill.md``) and every activation against ReLU paired by seed
(``paired-distill.{csv,md}``); plots: ``distill/<experiment>/<student>.png``, the test-accuracy curves of every
activation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compresslib.activation_tags import TAG_PATTERN, canonical_tag
from compresslib.experiments.base import Family, Job, Study, alternatives, failures, file_arguments, \
    milestone_problems, overrides, positions, report_labels, summary_paths
from compresslib.experiments.datasets import dataset_file
from compresslib.experiments.teachers import RUN_OUTPUTS, TeacherViews, \
    check_training_record, dataset_problem, model_problems, reference_problems, run_values, teacher_job, \
    teacher_outputs, with_image_summary_columns
from compresslib.specs.training import TrainSpec, build_spec

__all__ = ["DistillStudent", "TrainUndistilled", "STUDENT_LABELS", "student_values", "student_pairs", "is_student_run",
           "FAMILY"]

STUDENT_LABELS = ("dataset", "teacher", "student")
SEED_TABLE_KEYS = ["experiment", "labels.dataset", "labels.teacher", "labels.student", "activation"]
SEED_TABLE_METRICS = {"best": "metrics.best_test_acc", "final": "metrics.final_test_acc"}
PAIRED_BASELINE = "relu"  # every activation is compared with ReLU on the same student and seed
# the seeds of one configuration are summarised together: a run's identity without kind and seed
SUMMARY_KEYS = ["experiment", "labels.dataset", "labels.teacher", "labels.student", "activation", "activation_family",
                "bins", "method", "bits", "bucket"]


def student_values(config: dict, teacher: str, student: str, activation: str, seed: int, kind: str) -> dict:
    """The TrainSpec values of a run of student ``student`` taught by (or, undistilled, beside) ``teacher``: the
    student's recipe on the teacher's inputs, with its kd settings unless ``kind`` is undistilled."""
    entry = config["students"][student]
    values = run_values(config, entry, teacher, activation, seed, kind=kind, labels={"student": student})
    return values if kind == "undistilled" else values | {"kd": entry["kd"]}


@dataclass(frozen=True)
class DistillStudent(Job):
    RULE = "distill_student"
    FOLDER = "results/distill/{dataset}/{teacher}/{student}/{activation}/seed{seed}"
    OUTPUTS = RUN_OUTPUTS
    LOG = "{dataset}/{teacher}/{student}/{activation}/seed{seed}"
    WHAT = "a distilled student"
    SHARES_GPU = True

    dataset: str
    teacher: str
    student: str
    activation: str  # canonical tag: lma8, relu
    seed: int

    def spec_values(self, study: Study) -> dict:
        values = student_values(study.config, self.teacher, self.student, self.activation, self.seed, "distill")
        return values | {"teacher_outputs": teacher_outputs(study)[self.teacher]}

    def model_files(self, study: Study) -> dict[str, str]:
        """Its teacher's model file, and the teacher's views file when it reads the logits from there."""
        teacher = teacher_job(study.config, self.teacher)
        files = {"teacher": teacher.model_file()}
        if teacher_outputs(study)[self.teacher] == "cached":
            files["teacher_views"] = TeacherViews(teacher.dataset, teacher.teacher, teacher.seed).outputs()["views"]
        return files

    def inputs(self, study: Study) -> dict[str, Any]:
        return {"data": dataset_file(self.dataset), **self.model_files(study)}

    def arguments(self, study: Study) -> str:
        return f"{file_arguments(self.model_files(study))} {overrides(self.spec_values(study), TrainSpec)}"

    def unplanned_problem(self, study: Study) -> str | None:
        return student_problem(self, study)

    def teacher_passes(self, study: Study) -> tuple[str, int]:
        return self.teacher, study.config["students"][self.student]["train"]["epochs"]

    def model_file(self) -> str:
        return self.outputs()["model"]


@dataclass(frozen=True)
class TrainUndistilled(Job):
    RULE = "train_undistilled"
    FOLDER = "results/undistilled/{dataset}/{teacher}/{student}/{activation}/seed{seed}"
    OUTPUTS = RUN_OUTPUTS
    LOG = DistillStudent.LOG
    WHAT = "an undistilled student"
    SHARES_GPU = True

    dataset: str
    teacher: str  # the teacher entry fixes the student's dataset and input normalisation
    student: str
    activation: str
    seed: int

    def spec_values(self, study: Study) -> dict:
        return student_values(study.config, self.teacher, self.student, self.activation, self.seed, "undistilled")

    def inputs(self, study: Study) -> dict[str, Any]:
        return {"data": dataset_file(self.dataset)}

    def arguments(self, study: Study) -> str:
        return overrides(self.spec_values(study), TrainSpec)

    def unplanned_problem(self, study: Study) -> str | None:
        return student_problem(self, study)


def student_problem(job: DistillStudent | TrainUndistilled, study: Study) -> str | None:
    """Why a student run asked for by path (any student of any teacher, activation and seed) cannot run: a dataset
    other than its teacher's, or settings that make no valid spec."""
    problem = dataset_problem(job, job.teacher, study.config)
    return problem or next(iter(failures(build_spec, [(job.folder(), job.spec_values(study))])), None)


def student_pairs(config: dict, experiment: dict, job_type: type[Job]) -> list[Job]:
    """The ``job_type`` runs (distilled or undistilled) of an experiment's students, activations and seeds."""
    dataset = config["teachers"][experiment["teacher"]]["dataset"]
    return [job_type(dataset, experiment["teacher"], student, canonical_tag(tag), seed)
            for student, tag, seed in itertools.product(experiment["students"], experiment["activations"],
                                                        experiment["seeds"])]


def check(config: dict) -> list[str]:
    teachers, students = config["teachers"], config.get("students", {})
    problems = [problem for name, entry in students.items() for problem in [
        *model_problems(f"students.{name}", entry), *milestone_problems(f"students.{name}.train", entry["train"])]]
    for name, experiment in config.get("distill", {}).items():
        problems += reference_problems(f"distill.{name}", experiment, teachers, students)
    return problems


def jobs(study: Study) -> list[Job]:
    return [job for experiment in study.config["distill"].values()
            for job in student_pairs(study.config, experiment, DistillStudent)]


def check_jobs(study: Study) -> list[str]:
    """Each student's settings on each of its teachers' inputs (augmentation of a text dataset, ...), distilled and
    undistilled: one spec of each kind per teacher and student stands for all its activations and seeds."""
    kinds = {(type(job), job.teacher, job.student): job for job in study.of_type(DistillStudent, TrainUndistilled)}
    problems = failures(build_spec, [(f"students.{job.student} (taught by {job.teacher})", job.spec_values(study))
                                     for job in kinds.values()])
    return list(dict.fromkeys(problems))  # a recipe both kinds refuse is one problem


def check_record(record: dict, path: Path) -> None:
    check_training_record(record, path, STUDENT_LABELS)


def experiments(config: dict) -> dict:
    return {name: {"dataset": config["teachers"][e["teacher"]]["dataset"], "teacher": e["teacher"],
                   "students": list(e["students"]),
                   "activations": [canonical_tag(tag) for tag in e["activations"]], "seeds": list(e["seeds"])}
            for name, e in config["distill"].items()}


def is_student_run(record: dict, experiment: dict) -> bool:
    """Whether a record is a run of one of an experiment's students, activations and seeds beside its teacher (an
    experiment that names a ``dataset`` also matches on it; the teacher name alone usually implies it)."""
    labels = record["labels"]
    return (labels["teacher"] == experiment["teacher"] and labels.get("student") in experiment["students"]
            and record["activation"] in experiment["activations"] and record["seed"] in experiment["seeds"]
            and experiment.get("dataset") in (None, labels["dataset"]))


def in_experiment(record: dict, experiment: dict) -> bool:
    """Whether a record is one of the distilled runs that an experiment asks for."""
    return record["kind"] == "distill" and is_student_run(record, experiment)


def experiment_table(records: list[dict], experiments: dict):
    """Distilled runs per experiment: the runs_table rows of each member, with an ``experiment`` column, in the
    config's student and activation order, then by seed."""
    from compresslib import results  # pandas: only aggregation needs it

    def order(experiment: dict) -> tuple[list[str], dict, set[str]]:
        rank = {"labels.student": positions(experiment["students"]),
                "activation": positions(experiment["activations"])}
        return ["labels.student", "activation", "seed"], rank, set()

    return results.experiment_rows(records, experiments, in_experiment, results.runs_table, order)


def seed_table(frame, metric: str = SEED_TABLE_METRICS["best"]):
    """LMA's table: one row per (experiment, dataset, teacher, student, activation), accuracy in percent; the best
    epoch's table also says what chose the epoch (``results.BEST_EPOCH_COLUMN``).

    Columns ``seed<s>`` for every seed present in ``frame`` (NaN where a run is missing), then the mean,
    std (ddof=1), number and 95% Student-t interval (``ci95_low``, ``ci95_high``) of the seeds present in that row.
    Rows keep the order of ``frame``.
    """
    import pandas as pd

    from compresslib import results

    keys = SEED_TABLE_KEYS
    if metric == SEED_TABLE_METRICS["best"]:
        frame, keys = results.with_best_epoch_column(frame), [*keys, results.BEST_EPOCH_COLUMN]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "mean", "std", "n", "ci95_low", "ci95_high"])
    duplicated = frame.duplicated([*keys, "seed"], keep=False)
    if duplicated.any():
        runs = frame.loc[duplicated, "run_dir"].tolist()
        raise ValueError(f"seed_table: more than one record for the same experiment, run and seed: {runs}")
    seeds = sorted(frame["seed"].unique())
    seed_columns = [f"seed{seed}" for seed in seeds]
    percent = frame.set_index([*keys, "seed"])[metric].astype(float) * 100
    table = percent.unstack("seed").reindex(columns=seeds)
    table = table.reindex(pd.MultiIndex.from_frame(frame[keys].drop_duplicates()))  # unstack sorted the rows
    table.columns = seed_columns
    table["mean"] = table[seed_columns].mean(axis=1)
    table["std"] = table[seed_columns].std(axis=1, ddof=1)
    table["n"] = table[seed_columns].count(axis=1)
    half_width = results.t_half_width(table["std"], table["n"])
    table["ci95_low"], table["ci95_high"] = table["mean"] - half_width, table["mean"] + half_width
    return table.reset_index()


def _markdown_seed_table(table) -> str:
    """A seed table as Markdown: two decimals, ``mean ± std`` and its 95% interval, ``—`` for a missing run."""
    from compresslib.results import interval, markdown_header, markdown_row, two_decimals

    seed_columns = [column for column in table.columns if column.startswith("seed")]
    lines = markdown_header(["experiment", "dataset", "teacher", "student", "activation", *seed_columns,
                             "mean ± std", "95% CI", "n"])
    for row in table.to_dict("records"):
        cells = [str(row[key]) for key in SEED_TABLE_KEYS]
        cells += [two_decimals(row[column]) for column in seed_columns]
        cells += [f"{two_decimals(row['mean'])} ± {two_decimals(row['std'])}",
                  interval(row["ci95_low"], row["ci95_high"]), str(row["n"])]
        lines.append(markdown_row(cells))
    if table.empty:
        lines.append("\nno finished runs")
    return "\n".join(lines) + "\n"


def distill_paired(records: list[dict], experiments: dict):
    """paired-distill.csv: per experiment, dataset, teacher and student, each activation against ReLU on the same
    seeds, final and best test accuracy in percentage points. The ReLU runs need not be the experiment's own: the
    ReLU run of a teacher, student and seed is one job whichever experiment asks for it (the bins ablation's
    activations are compared with the main experiment's ReLU runs)."""
    from compresslib import paired, results  # pandas and scipy: only aggregation needs them

    with_relu = {name: experiment | {"activations": list(dict.fromkeys([PAIRED_BASELINE, *experiment["activations"]]))}
                 for name, experiment in experiments.items()}
    return paired.paired_table(experiment_table(records, with_relu), SEED_TABLE_KEYS[:-1], "activation",
                               PAIRED_BASELINE, results.SUMMARY_METRICS, scale=100, unit="pp")


def table_paths(out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    return [out_dir / "summary-distill.csv", *(out_dir / f"seeds-distill-{which}.csv" for which in SEED_TABLE_METRICS),
            out_dir / "seeds-distill.md", *summary_paths(out_dir, "distill", "paired")]


def write_tables(records: list[dict], experiments: dict, out_dir: Path) -> None:
    from compresslib import paired, results  # pandas and scipy: only aggregation needs them

    summary_path, *seed_paths, markdown_path, paired_csv, paired_markdown = table_paths(out_dir)
    rows = with_image_summary_columns(experiment_table(records, experiments))
    summary = results.summarize(rows, [*SUMMARY_KEYS, results.BEST_EPOCH_COLUMN], means=results.SIZE_COLUMNS)
    results.write_csv(summary, summary_path)
    seed_tables = {which: seed_table(rows, metric) for which, metric in SEED_TABLE_METRICS.items()}
    for path, table in zip(seed_paths, seed_tables.values(), strict=True):
        results.write_csv(table, path)
    best = seed_tables["best"]  # a table per policy that chose the best epochs, so each heading says which
    sections = [(results.BEST_EPOCH_LABELS[policy], SEED_TABLE_METRICS["best"],
                 best[best[results.BEST_EPOCH_COLUMN] == policy])
                for policy in results.best_epoch_policies(best.to_dict("records"))]
    sections.append(("final epoch (%)", SEED_TABLE_METRICS["final"], seed_tables["final"]))
    results.write_text("# Distilled students: test accuracy (%) per seed\n\n" + results.ACCURACY_NOTE + "\n\n"
                       + "\n".join(f"## {label}: `{metric}`\n\n{_markdown_seed_table(table)}"
                                    for label, metric, table in sections), markdown_path)
    comparisons = distill_paired(records, experiments)
    paired.write_paired(
        comparisons, experiments, (paired_csv, paired_markdown),
        "# Distilled students: each activation against ReLU, paired by seed",
        "runs with the same seed; test accuracy in percentage points",
        lambda name, e: f"## {name}: students of `{e['teacher']}`",
        {"labels.dataset": "dataset", "labels.student": "student"})


def plot_paths(experiments: dict, out_dir: Path) -> dict[Path, dict[str, str]]:
    return {Path(out_dir) / "distill" / name / f"{student}.png": report_labels(
                name, "test accuracy by epoch, per activation", dataset=experiment["dataset"],
                teacher=experiment["teacher"], student=student, method="KD", bits=32)
            for name, experiment in experiments.items() for student in experiment["students"]}


def write_plots(records: list[dict], experiments: dict, out_dir: Path) -> None:
    from compresslib import plots  # matplotlib: only aggregation needs it

    for name, experiment in experiments.items():
        members = [record for record in records if in_experiment(record, experiment)]
        for student in experiment["students"]:
            groups = {activation: [r for r in members if r["labels"]["student"] == student
                                   and r["activation"] == activation] for activation in experiment["activations"]}
            title = f"{name}: {student} distilled from {experiment['teacher']}"
            plots.plot_curves(groups, Path(out_dir) / "distill" / name / f"{student}.png", title, "activation")


def wildcards(config: dict) -> dict[str, str]:
    return {"student": alternatives(config.get("students", {})), "activation": TAG_PATTERN}


FAMILY = Family(name="distill", title="Distillation and activations (LMA)", check=check, jobs=jobs,
                wildcards=wildcards, check_jobs=check_jobs,
                records=(DistillStudent, TrainUndistilled), record_kinds=("distill", "undistilled"),
                check_record=check_record, experiments=experiments, table_paths=table_paths,
                write_tables=write_tables, plot_paths=plot_paths, write_plots=write_plots)
