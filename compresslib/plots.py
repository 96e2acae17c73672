"""Training curves from run records: mean ± std over seeds, one line per group.

    <out_dir>/teachers.png                              one line per teacher
    <out_dir>/distill/<experiment>/<student>.png        one line per activation of the experiment

Figures are built with ``matplotlib.figure.Figure`` (rendered by Agg), never through pyplot, so no
display or global figure state is involved. Every file is written atomically.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from compresslib.io import atomic_path
from compresslib.results import in_experiment

__all__ = ["plot_curves", "plot_paths", "write_plots"]

DPI = 120


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


def plot_paths(experiments: dict, out_dir: str | Path) -> list[Path]:
    """Every file :func:`write_plots` writes (the workflow declares them as outputs)."""
    out_dir = Path(out_dir)
    paths = [out_dir / "teachers.png"]
    for name, experiment in experiments.items():
        paths += [out_dir / "distill" / name / f"{student}.png" for student in experiment["students"]]
    return paths


def write_plots(records: list[dict], experiments: dict, out_dir: str | Path) -> list[Path]:
    """Draw the teachers' curves and, per experiment and student, one curve per activation over its seeds.

    Every path of :func:`plot_paths` is written, with a "no finished runs" note where nothing finished yet.
    """
    out_dir = Path(out_dir)
    teacher_records = [record for record in records if record["kind"] == "teacher"]
    teacher_groups = {
        teacher: [r for r in teacher_records if r["labels"]["teacher"] == teacher]
        for teacher in sorted({r["labels"]["teacher"] for r in teacher_records})
    }
    plot_curves(teacher_groups, out_dir / "teachers.png", "Teachers: test accuracy")
    for name, experiment in experiments.items():
        members = [record for record in records if in_experiment(record, experiment)]
        for student in experiment["students"]:
            groups = {
                activation: [r for r in members if r["labels"]["student"] == student and r["activation"] == activation]
                for activation in experiment["activations"]
            }
            title = f"{name}: {student} distilled from {experiment['teacher']}"
            plot_curves(groups, out_dir / "distill" / name / f"{student}.png", title)
    return plot_paths(experiments, out_dir)
