"""LIT (config ``lit``): students trained section by section on their teacher's intermediate representations, then
as a whole with KD, beside their baselines at the same epochs.

Jobs: ``lit_train`` per experiment and seed (phase 1 from the experiment's ``lit``, phase 2 from its ``full_model``,
on the student's recipe and kd settings); the baselines it lists (``scratch``: the undistilled student, ``kd``: the
distilled one, both ReLU, of the same seeds) are the distill family's jobs. Tables: ``summary-lit.{csv,md}``
(teacher, scratch, kd and lit rows with the teacher's parameters over the row's and LIT's gain) and
``paired-lit.{csv,md}`` (LIT against each baseline, paired by seed); plots:
``lit/<experiment>/seed<s>.png`` (per-section MSE in phase 1, test accuracy over both phases beside the
baselines' of the same seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compresslib.experiments.base import Family, Job, Study, failures, milestone_problems, overrides, positions, \
    report_labels, require_keys, summary_paths
from compresslib.experiments.datasets import dataset_file
from compresslib.experiments.distill import STUDENT_LABELS, DistillStudent, TrainUndistilled, student_values
from compresslib.experiments.teachers import RUN_OUTPUTS, check_training_record, teacher_job
from compresslib.specs.training import TrainSpec, build_spec

__all__ = ["LitTrain", "FAMILY", "lit_section_curves"]

LIT_ACTIVATION = "relu"  # LIT's students are the originals' ReLU networks (VDCNN's blocks allow nothing else)
LIT_RECORD_KEYS = ("phase1_epochs", "sections", "section_mse", "section_test_mse")  # what aggregation reads
# the row of a LIT experiment each record kind stands for, in table order; scratch and kd are the baselines
LIT_METHODS = {"teacher": "teacher", "undistilled": "scratch", "distill": "kd", "lit": "lit"}
BASELINES = {"scratch": TrainUndistilled, "kd": DistillStudent}
SUMMARY_KEYS = ["experiment", "labels.dataset", "labels.teacher", "labels.student", "method", "model.name"]
# each run of a seed in the accuracy panel of its plot, in legend order: its label, colour and marker
RUN_STYLES = {"scratch": ("scratch (hard labels)", "C1", "s"), "kd": ("KD", "C2", "D"), "lit": ("LIT", "C0", "o")}


@dataclass(frozen=True)
class LitTrain(Job):
    RULE = "lit_train"
    FOLDER = "results/lit/{dataset}/{teacher}-to-{student}/seed{seed}"
    OUTPUTS = RUN_OUTPUTS
    LOG = "{dataset}/{teacher}-to-{student}/seed{seed}"
    WHAT = "a run of any lit experiment"

    dataset: str
    teacher: str
    student: str
    seed: int
    experiment: str = field(default="", compare=False)

    def spec_values(self, study: Study) -> dict:
        """The student's recipe and kd settings, phase 2 from the experiment's ``full_model`` (multistep) and
        phase 1 from its ``lit``."""
        experiment = study.config["lit"][self.experiment]
        full_model = experiment["full_model"]
        return student_values(study.config, self.teacher, self.student, LIT_ACTIVATION, self.seed, "lit") | {
            "epochs": full_model["epochs"], "lr": full_model["lr"], "schedule": "multistep",
            "milestones": full_model["milestones"], "gamma": full_model["gamma"], "lit": dict(experiment["lit"])}

    def inputs(self, study: Study) -> dict[str, Any]:
        return {"data": dataset_file(self.dataset), "teacher": teacher_job(study.config, self.teacher).model_file()}

    def arguments(self, study: Study) -> str:
        return overrides(self.spec_values(study), TrainSpec)


def check(config: dict) -> list[str]:
    problems, pairs = [], {}
    teachers, students = config.get("teachers", {}), config.get("students", {})
    for name, experiment in config.get("lit", {}).items():
        where = f"lit.{name}"
        for role, entries in (("teacher", teachers), ("student", students)):
            if experiment[role] not in entries:
                problems.append(f"{where}.{role}: {experiment[role]!r} names no {role}; "
                                f"allowed: {', '.join(entries) or f'(no {role}s defined)'}")
        problems += [problem for phase in ("lit", "full_model")
                     for problem in milestone_problems(f"{where}.{phase}", experiment[phase])]
        pair = (experiment["teacher"], experiment["student"])
        if pair in pairs:  # one result folder per (teacher, student, seed)
            problems.append(f"{where}: lit.{pairs[pair]} already trains {pair[1]} from {pair[0]}")
        pairs.setdefault(pair, name)
        if experiment["baselines"] and experiment["student"] in students:
            phases = experiment["lit"]["epochs"] + experiment["full_model"]["epochs"]
            recipe = students[experiment["student"]]["train"]["epochs"]
            if recipe != phases:
                problems.append(f"{where}.baselines: the baselines train with students.{experiment['student']}.train "
                                f"({recipe} epochs), but LIT's two phases take {phases}; make them equal so the "
                                "comparison is at the same epochs")
    return problems


def jobs(study: Study) -> list[Job]:
    """Every LIT run, then the baselines the experiments ask for (kd: distilled, scratch: undistilled students)."""
    config = study.config
    runs = [LitTrain(config["teachers"][e["teacher"]]["dataset"], e["teacher"], e["student"], seed, name)
            for name, e in config.get("lit", {}).items() for seed in e["seeds"]]
    baselines = [BASELINES[baseline](run.dataset, run.teacher, run.student, LIT_ACTIVATION, run.seed)
                 for baseline in ("kd", "scratch") for run in runs
                 if baseline in config["lit"][run.experiment]["baselines"]]
    return [*runs, *baselines]


def check_jobs(study: Study) -> list[str]:
    runs = {job.experiment: job for job in study.of_type(LitTrain)}
    return failures(build_spec, [(f"lit.{name}", job.spec_values(study)) for name, job in runs.items()])


def check_record(record: dict, path: Path) -> None:
    check_training_record(record, path, STUDENT_LABELS)
    require_keys(record.get("lit"), LIT_RECORD_KEYS, path, "lit record lacks lit keys")
    lit_section_curves(record, source=path)


def experiments(config: dict) -> dict:
    return {name: {"dataset": config["teachers"][e["teacher"]]["dataset"], "teacher": e["teacher"],
                   "student": e["student"], "activation": LIT_ACTIVATION, "seeds": list(e["seeds"]),
                   "baselines": list(e["baselines"])}
            for name, e in config.get("lit", {}).items()}


def in_experiment(record: dict, experiment: dict) -> bool:
    """Whether a record is a row of a LIT experiment: its teacher, one of its baselines, or one of its LIT runs.

    The teacher is every teacher record of the experiment's dataset and teacher label; the baselines
    ("scratch": undistilled, "kd": distilled) and the LIT runs must also match its student, activation and seeds.
    """
    labels = record["labels"]
    if record["kind"] not in LIT_METHODS:  # e.g. a translation run, whose labels name no dataset
        return False
    if (labels["dataset"], labels["teacher"]) != (experiment["dataset"], experiment["teacher"]):
        return False
    if record["kind"] == "teacher":
        return True
    return (
        LIT_METHODS[record["kind"]] in {"lit", *experiment["baselines"]}
        and labels["student"] == experiment["student"]
        and record["activation"] == experiment["activation"]
        and record["seed"] in experiment["seeds"]
    )


def lit_section_curves(record: dict, source: str | Path | None = None) -> tuple[list[list[float]], list[list[float]]]:
    """A LIT record's per-section MSE curves, train and test: one curve per section, one value per phase-1 epoch.

    Raises ValueError naming ``source`` (default: the record's run_dir) when their number disagrees with
    ``lit.sections`` or their length with ``lit.phase1_epochs``.
    """
    source = record["run_dir"] if source is None else source
    lit = record["lit"]
    curves = {key: lit[key] for key in ("section_mse", "section_test_mse")}
    for key, per_section in curves.items():
        if len(per_section) != lit["sections"]:
            raise ValueError(f"{source}: LIT record has {lit['sections']} sections but {len(per_section)} {key} curves")
        lengths = [len(curve) for curve in per_section]
        if any(length != lit["phase1_epochs"] for length in lengths):
            raise ValueError(
                f"{source}: LIT {key} curves have {lengths} values; "
                f"expected {lit['phase1_epochs']}, one per phase-1 epoch"
            )
    return curves["section_mse"], curves["section_test_mse"]


def lit_table(records: list[dict], experiments: dict):
    """The rows of each LIT experiment (``{name: experiment}``) with ``experiment`` and ``method`` columns.

    Rows go teacher, scratch, kd, lit (only the baselines an experiment lists), then by seed. The teacher's
    rows carry the experiment's student label too, so every row names the pair it belongs to.
    """
    from compresslib import results  # pandas: only aggregation needs it

    def frame(members: list[dict]):
        rows = results.with_best_epoch_column(results.runs_table(members))
        return rows.assign(method=rows["kind"].map(LIT_METHODS))

    def order(experiment: dict) -> tuple[list[str], dict, set[str]]:
        return ["method", "seed"], {"method": positions(list(LIT_METHODS.values()))}, set()

    table = results.experiment_rows(records, experiments, in_experiment, frame, order)
    students = table["experiment"].map({name: experiment["student"] for name, experiment in experiments.items()})
    return table.assign(**{"labels.student": table["labels.student"].fillna(students)})


def lit_summary(records: list[dict], experiments: dict):
    """summary-lit.csv: per LIT experiment and method, what chose the best epochs, the accuracy statistics, the mean
    parameter count and ``teacher_over_student_params`` (the teacher's parameters over the row's model's, 1 for the
    teacher; NaN while the teacher is missing)."""
    from compresslib import results

    summary = results.summarize(lit_table(records, experiments), [*SUMMARY_KEYS, results.BEST_EPOCH_COLUMN],
                                means=["model.params"])
    teacher_params = summary[summary["method"] == "teacher"].set_index("experiment")["model.params"]
    return summary.assign(
        teacher_over_student_params=summary["experiment"].map(teacher_params) / summary["model.params"])


def _markdown(summary, experiments: dict) -> str:
    """summary-lit.md: one section per LIT experiment, its rows in percent, then LIT's gains over the baselines."""
    from compresslib import results

    def section(name: str, experiment: dict, rows: list[dict]) -> list[str]:
        policies = results.best_epoch_policies(rows)
        header = ["method", "model", "params", "teacher ÷ student params", "final epoch (%)", "95% CI",
                  *results.best_epoch_header(policies), "n"]

        def cells(row: dict) -> list[str]:
            return [
                row["method"], str(row["model.name"]), f"{round(row['model.params']):,}",
                results.two_decimals(row["teacher_over_student_params"]),
                *results.summary_estimate(row, "final_test_acc", 100), *results.best_epoch_cells(row, policies),
                str(row["final_test_acc_n"]),
            ]

        heading = f"## {name}: `{experiment['student']}` from `{experiment['teacher']}` on `{experiment['dataset']}`"
        lines = results.markdown_section(heading, header, rows, cells)
        if rows and experiment["baselines"]:
            final = {row["method"]: 100 * row["final_test_acc_mean"] for row in rows}
            baselines = [method for method in LIT_METHODS.values() if method in experiment["baselines"]]
            gains = [f"{results.signed_two_decimals(final.get('lit', math.nan) - final.get(baseline, math.nan))} "
                     f"pp over {baseline}" for baseline in baselines]
            lines += ["", f"LIT's gain in final test accuracy: {', '.join(gains)}"]
        return lines

    return results.markdown_document(
        "# LIT: students trained section by section, against their teacher and baselines",
        f"{results.ACCURACY_NOTE} teacher ÷ student params: the teacher's parameter count over the row's model's (1 "
        "for the teacher). A gain is LIT's mean final test accuracy minus the baseline's, in percentage points (pp).",
        summary, experiments, section)


def plot_run(runs: dict[str, dict | None], out_path: str | Path, title: str,
             teacher_test_acc: float | None = None) -> None:
    """One seed of a LIT experiment in two panels: LIT's per-section MSE over the phase-1 epochs (train solid, test
    dashed, one colour per section, log scale), and the test accuracy over every epoch of each run of ``runs``
    (``{method: record}`` of :data:`RUN_STYLES`' methods, None where that run has not finished), with a line at the
    end of LIT's phase 1 and, when known, the teacher's final test accuracy. A panel without a finished run says so.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from compresslib import plots  # matplotlib: only aggregation needs it

    figure = Figure(figsize=(14, 4.5))
    mse_axes, accuracy_axes = figure.subplots(1, 2)
    for method, record in runs.items():
        label, colour, marker = RUN_STYLES[method]
        if record is None:
            accuracy_axes.plot([], [], " ", label=f"{label} (no finished run)")  # named in the legend, nothing drawn
            continue
        test_acc = 100 * plots.curves_by_epoch([record], "test_acc")[0]
        accuracy_axes.plot(test_acc.index, test_acc, color=colour, marker=marker, markersize=4, linewidth=1.2,
                           label=label)
    if teacher_test_acc is not None:
        accuracy_axes.axhline(100 * teacher_test_acc, color="black", linestyle="--", linewidth=1,
                              label="teacher (final epoch, mean)")
    lit = runs.get("lit")
    if lit is None:
        plots.note_no_finished_runs(mse_axes)
    else:
        train_curves, test_curves = lit_section_curves(lit)
        phase1_epochs = lit["lit"]["phase1_epochs"]
        epochs = range(1, phase1_epochs + 1)
        for index, (train, test) in enumerate(zip(train_curves, test_curves, strict=True)):
            mse_axes.plot(epochs, train, color=f"C{index}", linewidth=1.2, label=f"section {index + 1}")
            mse_axes.plot(epochs, test, color=f"C{index}", linewidth=1.2, linestyle="--")
        split_handles = [Line2D([], [], color="gray", label="train"),
                         Line2D([], [], color="gray", linestyle="--", label="test")]
        plots.legend_beside(mse_axes, handles=[*mse_axes.get_legend_handles_labels()[0], *split_handles],
                            title="colour: section")
        mse_axes.set_yscale("log")
        plots.plain_log_labels(mse_axes.yaxis)
        accuracy_axes.axvline(phase1_epochs + 0.5, color="gray", linestyle=":", label="end of LIT's phase 1")
    if any(record is not None for record in runs.values()):
        plots.legend_beside(accuracy_axes, title="one run per method")
    else:
        plots.note_no_finished_runs(accuracy_axes)
    mse_axes.set(title="LIT phase 1: each section's output against the teacher's", xlabel="epoch",
                 ylabel="mean squared error (log scale)")
    accuracy_axes.set(title="LIT beside its baselines", xlabel="epoch", ylabel=plots.ACCURACY_LABEL)
    for axes in (mse_axes, accuracy_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        axes.grid(alpha=0.3, which="both")
    figure.suptitle(title)
    plots.save(figure, out_path)


def lit_paired(records: list[dict], experiments: dict):
    """paired-lit.csv: per LIT experiment, LIT against each baseline it lists (scratch, then kd), on the same
    seeds; final and best test accuracy in percentage points."""
    from compresslib import paired, results

    table = paired.paired_table(lit_table(records, experiments), SUMMARY_KEYS[:4], "method", list(BASELINES),
                                results.SUMMARY_METRICS, arms=["lit"], scale=100, unit="pp")
    pairs = zip(table["experiment"], table["baseline"], strict=True)
    return table.loc[[baseline in experiments[name]["baselines"] for name, baseline in pairs]].reset_index(drop=True)


def table_paths(out_dir: Path) -> list[Path]:
    return [*summary_paths(out_dir, "lit"), *summary_paths(out_dir, "lit", "paired")]


def write_tables(records: list[dict], experiments: dict, out_dir: Path) -> None:
    from compresslib import paired
    from compresslib.results import write_summary

    summary_csv, summary_markdown, *paired_paths = table_paths(out_dir)
    summary = lit_summary(records, experiments)
    write_summary(summary, _markdown(summary, experiments), summary_csv, summary_markdown)
    comparisons = lit_paired(records, experiments)
    paired.write_paired(
        comparisons, experiments, paired_paths, "# LIT against its baselines, paired by seed",
        "runs with the same seed; test accuracy in percentage points",
        lambda name, e: f"## {name}: `{e['student']}` from `{e['teacher']}` on `{e['dataset']}`", {})


def _run_paths(name: str, experiment: dict, out_dir: Path) -> dict[int, Path]:
    """The plot of each seed of a LIT experiment, by seed."""
    return {seed: Path(out_dir) / "lit" / name / f"seed{seed}.png" for seed in experiment["seeds"]}


def plot_paths(experiments: dict, out_dir: Path) -> dict[Path, dict[str, str]]:
    return {path: report_labels(name, "LIT's section losses and test accuracy by epoch", dataset=e["dataset"],
                                teacher=e["teacher"], student=e["student"], activation=e["activation"], seed=seed)
            for name, e in experiments.items() for seed, path in _run_paths(name, e, out_dir).items()}


def write_plots(records: list[dict], experiments: dict, out_dir: Path) -> None:
    """Per LIT experiment and seed, LIT's run beside the baselines the experiment lists, of the same seed."""
    lit = lit_summary(records, experiments)
    for name, experiment in experiments.items():
        teacher = lit[(lit["experiment"] == name) & (lit["method"] == "teacher")]["final_test_acc_mean"]
        methods = [method for method in RUN_STYLES if method in {"lit", *experiment["baselines"]}]
        runs = {(LIT_METHODS[r["kind"]], r["seed"]): r for r in records
                if r["kind"] != "teacher" and in_experiment(r, experiment)}
        for seed, path in _run_paths(name, experiment, out_dir).items():
            title = f"{name}: {experiment['student']} from {experiment['teacher']}, seed {seed}"
            plot_run({method: runs.get((method, seed)) for method in methods}, path, title,
                     teacher_test_acc=teacher.iloc[0] if len(teacher) else None)


FAMILY = Family(name="lit", title="LIT", check=check, jobs=jobs, check_jobs=check_jobs,
                records=(LitTrain,), record_kinds=("lit",), check_record=check_record, experiments=experiments,
                table_paths=table_paths, write_tables=write_tables, plot_paths=plot_paths, write_plots=write_plots)
