"""Plots from run records: training curves (mean ± std over seeds) and accuracy against model size.

    <out_dir>/teachers.png                              one line per teacher
    <out_dir>/distill/<experiment>/<student>.png        one line per activation of the experiment
    <out_dir>/quantize/<experiment>.png                 final test accuracy against size in MB, one
                                                        point per student, method, bits and bucket
    <out_dir>/accuracy-vs-size/<dataset>.png            the same for every quantize experiment of a dataset
                                                        (experiments that name their ``dataset``)

Figures are built with ``matplotlib.figure.Figure`` (rendered by Agg), never through pyplot, so no
display or global figure state is involved. Every file is written atomically.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from compresslib.io import atomic_path
from compresslib.results import in_experiment, quantize_summary, split_experiments

__all__ = ["plot_curves", "plot_accuracy_vs_size", "plot_paths", "write_plots"]

DPI = 120
# fixed per method, so that a method looks the same in every experiment's plot; legend order
METHOD_MARKERS = {"fp-undistilled": "s", "fp-distilled": "D", "qd": "o", "dq": "^", "pm": "v"}


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
        axes.text(0.5, 0.5, "no finished runs", transform=axes.transAxes, ha="center", va="center", color="gray")
    axes.set(title=title, xlabel="epoch", ylabel=metric)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(out_path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)


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
    figure = Figure(figsize=(7, 4.5))
    axes = figure.add_subplot()
    students = list(dict.fromkeys(summary["labels.student"]))
    colours = {student: f"C{i}" for i, student in enumerate(students)}
    several = [column for column in ("activation", "bucket") if summary[column].dropna().nunique() > 1]
    for row in summary.to_dict("records"):
        size, accuracy, std = row["size_mb"], 100 * row["final_test_acc_mean"], 100 * row["final_test_acc_std"]
        axes.errorbar(
            size,
            accuracy,
            yerr=0 if pd.isna(std) else std,  # a single run has no spread
            marker=METHOD_MARKERS[row["method"]],
            color=colours[row["labels.student"]],
            linestyle="none",
            capsize=2,
        )
        label = _point_label(row, several)
        axes.annotate(label, (size, accuracy), xytext=(4, 3), textcoords="offset points", fontsize="x-small")
    if summary.empty:
        axes.text(0.5, 0.5, "no finished runs", transform=axes.transAxes, ha="center", va="center", color="gray")
    else:
        axes.set_xscale("log")
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
    axes.set(title=title, xlabel="model size (MB)", ylabel="final test accuracy (%)")
    axes.grid(alpha=0.3, which="both")
    figure.tight_layout()
    with atomic_path(out_path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)


def _point_label(row: dict, several: list[str]) -> str:
    """"2b", followed by the activation and the bucket (k=256, per-tensor) where the plot has several of them."""
    parts = [f"{row['bits']}b"]
    if "activation" in several:
        parts.append(row["activation"])
    if "bucket" in several and not pd.isna(row["bucket"]):  # full precision has no bucket
        parts.append(f"k={row['bucket']}" if row["bucket"] else "per-tensor")
    return " ".join(parts)


def plot_paths(experiments: dict, out_dir: str | Path) -> list[Path]:
    """Every file :func:`write_plots` writes (the workflow declares them as outputs).

    ``experiments`` is ``{"distill": {...}, "quantize": {...}}``.
    """
    distill_experiments, quantize_experiments = split_experiments(experiments)
    out_dir = Path(out_dir)
    paths = [out_dir / "teachers.png"]
    for name, experiment in distill_experiments.items():
        paths += [out_dir / "distill" / name / f"{student}.png" for student in experiment["students"]]
    paths += [out_dir / "quantize" / f"{name}.png" for name in quantize_experiments]
    return paths + [out_dir / "accuracy-vs-size" / f"{dataset}.png" for dataset in _datasets(quantize_experiments)]


def _datasets(quantize_experiments: dict) -> list[str]:
    """The datasets the quantize experiments name (config order), each getting one plot of all its runs."""
    return list(dict.fromkeys(e["dataset"] for e in quantize_experiments.values() if e.get("dataset")))


def write_plots(records: list[dict], experiments: dict, out_dir: str | Path) -> list[Path]:
    """Draw the teachers' curves, the distill curves and the quantize experiments' accuracy against size.

    Per distill experiment and student, one curve per activation over its seeds. Every path of
    :func:`plot_paths` is written, with a "no finished runs" note where nothing finished yet.
    """
    distill_experiments, quantize_experiments = split_experiments(experiments)
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
    return plot_paths(experiments, out_dir)
