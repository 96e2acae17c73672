"""Plots from run records: training curves (mean ± std over seeds) and accuracy against model size.

    <out_dir>/teachers.png                              one line per teacher
    <out_dir>/distill/<experiment>/<student>.png        one line per activation of the experiment
    <out_dir>/quantize/<experiment>.png                 final test accuracy against size in MB, one
                                                        point per student, method, bits and bucket
    <out_dir>/accuracy-vs-size/<dataset>.png            the same for every quantize experiment of a dataset
                                                        (experiments that name their ``dataset``)
    <out_dir>/lit/<experiment>/seed<seed>.png           one LIT run: per-section MSE over phase 1, and test
                                                        accuracy over both phases
    <out_dir>/esnac/<experiment>/<teacher>.png          ESNAC's search progress: the best reward so far
                                                        against the candidates evaluated, one line per strategy
                                                        (mean over seeds, min-max band)
    <out_dir>/translation/<experiment>.png              BLEU on the test split against size in MB, one point
                                                        per configuration (teacher, student, activation,
                                                        method, bits, bucket)

``experiments`` is ``{"distill": {...}, "quantize": {...}, "lit": {...}, "esnac": {...}, "translation": {...}}``
as :mod:`compresslib.results` takes it; any kind may be absent.

Figures are built with ``matplotlib.figure.Figure`` (rendered by Agg), never through pyplot, so no
display or global figure state is involved. Every file is written atomically.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from compresslib.io import atomic_path
from compresslib.results import (
    SEARCH_KIND,
    TRANSLATION_TEST_SPLIT,
    esnac_experiments,
    in_esnac_experiment,
    in_experiment,
    in_lit_experiment,
    lit_section_curves,
    lit_summary,
    quantize_summary,
    split_experiments,
    translation_experiments,
    translation_summary,
)

__all__ = ["plot_curves", "plot_accuracy_vs_size", "plot_bleu_vs_size", "plot_lit_run", "plot_search_progress",
           "plot_paths", "write_plots"]

DPI = 120
# fixed per method, so that a method looks the same in every experiment's plot (a translation method like its image
# counterpart); legend order
METHOD_MARKERS = {
    "teacher": "*", "fp-undistilled": "s", "undistilled": "s", "fp-distilled": "D", "word-kd": "D", "seq-kd": "P",
    "qd": "o", "dq": "^", "pm": "v",
}


def plot_curves(groups: dict[str, list[dict]], out_path: str | Path, title: str, metric: str = "test_acc") -> None:
    """Plot ``curve[metric]`` against epoch: per group the mean over its records with a ± std band.

    Records that stopped early contribute to the epochs they reached, so the mean at each epoch is over
    the records that got there; the std is the sample std (ddof=1) and has no band where one record is
    left. Groups without records appear in the legend as "no finished runs"; with none at all the axes
    carry that note alone.
    """
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    for label, records in groups.items():
        if not records:
            axes.plot([], [], " ", label=f"{label} (no finished runs)")  # named in the legend, nothing drawn
            continue
        per_epoch = _curves_by_epoch(records, metric)
        mean, std = per_epoch.mean(axis=1), per_epoch.std(axis=1, ddof=1)
        (line,) = axes.plot(per_epoch.index, mean, label=f"{label} (n={len(records)})", linewidth=1.2)
        axes.fill_between(per_epoch.index, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    if any(groups.values()):
        axes.legend(fontsize="small")
    else:
        _note_no_finished_runs(axes)
    axes.set(title=title, xlabel="epoch", ylabel=metric)
    axes.grid(alpha=0.3)
    _save(figure, out_path)


def _curves_by_epoch(records: list[dict], metric: str) -> pd.DataFrame:
    """One column per record, indexed by epoch; NaN past the epoch where a record stopped."""
    columns = []
    for record in records:
        curve = record["curve"]
        if len(curve["epoch"]) != len(curve[metric]):
            raise ValueError(
                f"{record['run_dir']}: curve has {len(curve['epoch'])} epochs but {len(curve[metric])} {metric} values"
            )
        columns.append(pd.Series(curve[metric], index=curve["epoch"], dtype=float))
    return pd.concat(columns, axis=1).sort_index()


def plot_accuracy_vs_size(summary: pd.DataFrame, out_path: str | Path, title: str) -> None:
    """Mean final test accuracy (error bar: sample std over seeds) against size in MB on a log axis.

    ``summary`` holds :func:`compresslib.results.quantize_summary` rows of one experiment: one colour per
    student, one marker per method, each point annotated with its bits, plus its activation or bucket
    where the rows have several. With no rows the axes carry a "no finished runs" note.
    """
    _plot_against_size(summary, out_path, title, "final_test_acc", "labels.student", "final test accuracy (%)",
                       scale=100)


def plot_bleu_vs_size(summary: pd.DataFrame, out_path: str | Path, title: str) -> None:
    """Mean BLEU on the test split (error bar: sample std over seeds) against size in MB on a log axis.

    ``summary`` holds :func:`compresslib.results.translation_summary` rows of one experiment, drawn as
    :func:`plot_accuracy_vs_size` draws its rows; the teacher is a star in a colour of its own, named after it.
    """
    students = summary["student"].fillna(summary["teacher"])  # the teacher's row has no student
    _plot_against_size(summary.assign(student=students), out_path, title, f"bleu.{TRANSLATION_TEST_SPLIT}",
                       "student", f"BLEU ({TRANSLATION_TEST_SPLIT})")


def _plot_against_size(summary: pd.DataFrame, out_path: str | Path, title: str, metric: str, student_column: str,
                       ylabel: str, scale: float = 1.0) -> None:
    """``scale`` times the mean of ``metric`` (error bar: its std) against ``size_mb`` on a log axis, one colour per
    ``student_column`` value, one marker per method, each point labelled by :func:`_point_label`."""
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    students = list(dict.fromkeys(summary[student_column]))
    colours = {student: f"C{i}" for i, student in enumerate(students)}
    several = [column for column in ("activation", "bucket") if summary[column].dropna().nunique() > 1]
    for row in summary.to_dict("records"):
        size, value, std = row["size_mb"], scale * row[f"{metric}_mean"], scale * row[f"{metric}_std"]
        axes.errorbar(
            size,
            value,
            yerr=0 if pd.isna(std) else std,  # a single run has no spread
            marker=METHOD_MARKERS[row["method"]],
            color=colours[row[student_column]],
            linestyle="none",
            capsize=2,
        )
        label = _point_label(row, several)
        axes.annotate(label, (size, value), xytext=(4, 3), textcoords="offset points", fontsize="x-small")
    if summary.empty:
        _note_no_finished_runs(axes)
    else:
        axes.set_xscale("log")
        # plain labels at 1, 2 and 5 per decade: matplotlib's own labels minor ticks over a range under a decade,
        # where they overlap
        axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.margins(x=0.1)  # room for the right-most point's label
        handles = [
            Line2D([], [], color=colour, marker="o", linestyle="none", label=student)
            for student, colour in colours.items()
        ]
        handles += [
            Line2D([], [], color="gray", marker=METHOD_MARKERS[method], linestyle="none", label=method)
            for method in METHOD_MARKERS
            if method in set(summary["method"])
        ]
        axes.legend(handles=handles, fontsize="small")
    axes.set(title=title, xlabel="model size (MB)", ylabel=ylabel)
    axes.grid(alpha=0.3, which="both")
    _save(figure, out_path)


def _point_label(row: dict, several: list[str]) -> str:
    """"2b", followed by the activation and the bucket (k=256, per-tensor) where the plot has several of them."""
    parts = [f"{row['bits']}b"]
    if "activation" in several and not pd.isna(row["activation"]):  # a translation teacher has no activation label
        parts.append(row["activation"])
    if "bucket" in several and not pd.isna(row["bucket"]):  # full precision has no bucket
        parts.append(f"k={row['bucket']}" if row["bucket"] else "per-tensor")
    return " ".join(parts)


def plot_lit_run(record: dict | None, out_path: str | Path, title: str, teacher_test_acc: float | None = None) -> None:
    """One LIT run in two panels: the per-section MSE over the phase-1 epochs (train solid, test dashed, one
    colour per section, log scale), and the student's test accuracy over every epoch with a line at the end of
    phase 1 and, when known, the teacher's final test accuracy. ``record`` None: both panels say "no finished runs".
    """
    figure = Figure(figsize=(11, 4.5))
    mse_axes, accuracy_axes = figure.subplots(1, 2)
    if record is None:
        _note_no_finished_runs(mse_axes)
        _note_no_finished_runs(accuracy_axes)
    else:
        train_curves, test_curves = lit_section_curves(record)
        phase1_epochs = record["lit"]["phase1_epochs"]
        epochs = range(1, phase1_epochs + 1)
        for index, (train, test) in enumerate(zip(train_curves, test_curves, strict=True)):
            mse_axes.plot(epochs, train, color=f"C{index}", linewidth=1.2, label=f"section {index + 1}")
            mse_axes.plot(epochs, test, color=f"C{index}", linewidth=1.2, linestyle="--")
        split_handles = [Line2D([], [], color="gray", label="train"),
                         Line2D([], [], color="gray", linestyle="--", label="test")]
        mse_axes.legend(handles=[*mse_axes.get_legend_handles_labels()[0], *split_handles], fontsize="small")
        mse_axes.set_yscale("log")
        test_acc = 100 * _curves_by_epoch([record], "test_acc")[0]
        accuracy_axes.plot(test_acc.index, test_acc, linewidth=1.2, label="student")
        accuracy_axes.axvline(phase1_epochs + 0.5, color="gray", linestyle=":", label="end of phase 1")
        if teacher_test_acc is not None:
            accuracy_axes.axhline(100 * teacher_test_acc, color="black", linestyle="--", linewidth=1,
                                  label="teacher (final)")
        accuracy_axes.legend(fontsize="small")
    mse_axes.set(title="phase 1: section MSE against the teacher", xlabel="epoch", ylabel="MSE")
    accuracy_axes.set(title="test accuracy", xlabel="epoch", ylabel="test accuracy (%)")
    for axes in (mse_axes, accuracy_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        axes.grid(alpha=0.3, which="both")
    figure.suptitle(title)
    _save(figure, out_path)


def plot_search_progress(groups: dict[str, list[dict]], out_path: str | Path, title: str) -> None:
    """Plot the best search reward so far (``curve.best_reward``) against the candidates evaluated (1..n).

    ``groups`` maps a strategy to its search records: per strategy the mean over its searches, with a band from
    their minimum to their maximum when there are several. A search that evaluated fewer candidates contributes
    to the candidates it reached. Strategies without records appear in the legend as "no finished runs"; with
    none at all the axes carry that note alone.
    """
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    for label, records in groups.items():
        if not records:
            axes.plot([], [], " ", label=f"{label} (no finished runs)")
            continue
        per_candidate = _search_progress(records)
        (line,) = axes.plot(per_candidate.index, per_candidate.mean(axis=1), label=f"{label} (n={len(records)})",
                            linewidth=1.2)
        if len(records) > 1:
            axes.fill_between(per_candidate.index, per_candidate.min(axis=1), per_candidate.max(axis=1),
                              color=line.get_color(), alpha=0.2, linewidth=0)
    if any(groups.values()):
        axes.legend(fontsize="small")
    else:
        _note_no_finished_runs(axes)
    axes.set(title=title, xlabel="candidates evaluated", ylabel="best reward so far, f(x)")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    _save(figure, out_path)


def _search_progress(records: list[dict]) -> pd.DataFrame:
    """One column per search record, indexed by the number of candidates evaluated (1..n); NaN past its end."""
    columns = [pd.Series(r["curve"]["best_reward"], index=range(1, len(r["curve"]["best_reward"]) + 1), dtype=float)
               for r in records]
    return pd.concat(columns, axis=1).sort_index()


def _note_no_finished_runs(axes: Axes) -> None:
    axes.text(0.5, 0.5, "no finished runs", transform=axes.transAxes, ha="center", va="center", color="gray")


def _save(figure: Figure, out_path: str | Path) -> None:
    figure.tight_layout()
    with atomic_path(out_path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)


def plot_paths(experiments: dict, out_dir: str | Path) -> list[Path]:
    """Every file :func:`write_plots` writes (the workflow declares them as outputs).

    ``experiments`` is ``{"distill": {...}, "quantize": {...}, "lit": {...}, "esnac": {...}, "translation": {...}}``;
    the paths depend on nothing else.
    """
    distill_experiments, quantize_experiments, lit_experiments = split_experiments(experiments)
    esnac = esnac_experiments(experiments)
    out_dir = Path(out_dir)
    paths = [out_dir / "teachers.png"]
    for name, experiment in distill_experiments.items():
        paths += [out_dir / "distill" / name / f"{student}.png" for student in experiment["students"]]
    paths += [out_dir / "quantize" / f"{name}.png" for name in quantize_experiments]
    paths += [out_dir / "accuracy-vs-size" / f"{dataset}.png" for dataset in _datasets(quantize_experiments)]
    paths += [path for name, experiment in lit_experiments.items()
              for path in _lit_run_paths(name, experiment, out_dir).values()]
    paths += [path for name, experiment in esnac.items() for path in _esnac_paths(name, experiment, out_dir).values()]
    return paths + list(_translation_paths(translation_experiments(experiments), out_dir).values())


def _translation_paths(experiments: dict, out_dir: Path) -> dict[str, Path]:
    """The BLEU-against-size plot of each translation experiment, by experiment."""
    return {name: out_dir / "translation" / f"{name}.png" for name in experiments}


def _esnac_paths(name: str, experiment: dict, out_dir: Path) -> dict[str, Path]:
    """The search-progress plot of each teacher of an ESNAC experiment, by teacher."""
    return {teacher: out_dir / "esnac" / name / f"{teacher}.png" for teacher in experiment["teachers"]}


def _lit_run_paths(name: str, experiment: dict, out_dir: Path) -> dict[int, Path]:
    """The plot of each seed of a LIT experiment, by seed."""
    return {seed: out_dir / "lit" / name / f"seed{seed}.png" for seed in experiment["seeds"]}


def _datasets(quantize_experiments: dict) -> list[str]:
    """The datasets the quantize experiments name (config order), each getting one plot of all its runs."""
    return list(dict.fromkeys(e["dataset"] for e in quantize_experiments.values() if e.get("dataset")))


def write_plots(records: list[dict], experiments: dict, out_dir: str | Path) -> list[Path]:
    """Draw the teachers' curves, the distill curves, the quantize experiments' accuracy against size, every
    LIT run, the search progress of every ESNAC experiment's teachers and each translation experiment's BLEU
    against size.

    Per distill experiment and student, one curve per activation over its seeds. Every path of
    :func:`plot_paths` is written, with a "no finished runs" note where nothing finished yet.
    """
    distill_experiments, quantize_experiments, lit_experiments = split_experiments(experiments)
    esnac = esnac_experiments(experiments)
    out_dir = Path(out_dir)
    teacher_records = [record for record in records if record["kind"] == "teacher"]
    teacher_groups = {
        teacher: [r for r in teacher_records if r["labels"]["teacher"] == teacher]
        for teacher in sorted({r["labels"]["teacher"] for r in teacher_records})
    }
    plot_curves(teacher_groups, out_dir / "teachers.png", "Teachers: test accuracy")
    for name, experiment in distill_experiments.items():
        members = [record for record in records if in_experiment(record, experiment)]
        for student in experiment["students"]:
            groups = {
                activation: [r for r in members if r["labels"]["student"] == student and r["activation"] == activation]
                for activation in experiment["activations"]
            }
            title = f"{name}: {student} distilled from {experiment['teacher']}"
            plot_curves(groups, out_dir / "distill" / name / f"{student}.png", title)
    summary = quantize_summary(records, quantize_experiments)
    for name, experiment in quantize_experiments.items():
        title = f"{name}: quantized students of {experiment['teacher']}"
        plot_accuracy_vs_size(summary[summary["experiment"] == name], out_dir / "quantize" / f"{name}.png", title)
    for dataset in _datasets(quantize_experiments):
        # a run several experiments share is one point; references and methods of every experiment side by side
        rows = summary[summary["labels.dataset"] == dataset].drop_duplicates(
            ["labels.teacher", "labels.student", "activation", "method", "bits", "bucket"])
        plot_accuracy_vs_size(rows, out_dir / "accuracy-vs-size" / f"{dataset}.png",
                              f"{dataset}: every quantize experiment")
    lit = lit_summary(records, lit_experiments)
    for name, experiment in lit_experiments.items():
        teacher = lit[(lit["experiment"] == name) & (lit["method"] == "teacher")]["final_test_acc_mean"]
        runs = {r["seed"]: r for r in records if r["kind"] == "lit" and in_lit_experiment(r, experiment)}
        for seed, path in _lit_run_paths(name, experiment, out_dir).items():
            title = f"{name}: LIT {experiment['student']} from {experiment['teacher']}, seed {seed}"
            plot_lit_run(runs.get(seed), path, title, teacher_test_acc=teacher.iloc[0] if len(teacher) else None)
    for name, experiment in esnac.items():
        searches = [r for r in records if r["kind"] == SEARCH_KIND and in_esnac_experiment(r, experiment)]
        for teacher, path in _esnac_paths(name, experiment, out_dir).items():
            groups = {strategy: [r for r in searches if (r["labels"]["teacher"], r["strategy"]) == (teacher, strategy)]
                      for strategy in experiment["strategies"]}
            dataset = experiment["teachers"][teacher]["dataset"]
            plot_search_progress(groups, path, f"{name}: ESNAC search of {teacher} on {dataset}")
    translation = translation_experiments(experiments)
    bleu = translation_summary(records, translation)
    for name, path in _translation_paths(translation, out_dir).items():
        experiment = translation[name]
        plot_bleu_vs_size(bleu[bleu["experiment"] == name], path,
                          f"{name}: students of {experiment['teacher']} on {experiment['corpus']}")
    return plot_paths(experiments, out_dir)
