"""Generic plots from run records: test-accuracy curves (mean ± std over seeds), a metric against model size, and
the best value so far against evaluations.

The experiment families (``compresslib.experiments``) draw their figures with these and with their own plots.
Figures are built with ``matplotlib.figure.Figure`` (rendered by Agg), never through pyplot, so no display or global
figure state is involved. Every file is written atomically. Each figure reads like a paper's: axes in words and
units (accuracy in %), whole epochs, one legend saying what colour, marker and band mean, set beside the axes where
it could cover the data.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogFormatter, LogLocator, MaxNLocator, NullFormatter

from compresslib.io import atomic_path

__all__ = ["DPI", "ACCURACY_LABEL", "MARKERS", "plot_curves", "curves_by_epoch", "plot_against_size",
           "running_best", "plot_running_best", "plain_log_labels", "legend_beside", "note_no_finished_runs", "save"]

DPI = 120
ACCURACY_LABEL = "test accuracy (%)"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # the n-th curve's marker, beside its colour C<n>
WIDE = (8.5, 4.5)  # inches: the axes and a legend beside them


def plot_curves(groups: dict[str, list[dict]], out_path: str | Path, title: str, legend_title: str) -> None:
    """Plot test accuracy (%) against epoch: per group (a colour and marker each) the mean over its records with a
    ± std band; the legend, titled ``legend_title`` (what a group is), says so.

    Records that stopped early contribute to the epochs they reached, so the mean at each epoch is over
    the records that got there; the std is the sample std (ddof=1) and has no band where one record is
    left. Groups without records appear in the legend as "no finished runs"; with none at all the axes
    carry that note alone.
    """
    figure = Figure(figsize=WIDE)
    axes = figure.add_subplot()
    for index, (label, records) in enumerate(groups.items()):  # an empty group keeps its colour: stable per figure
        if not records:
            axes.plot([], [], " ", label=f"{label} (no finished runs)")  # named in the legend, nothing drawn
            continue
        per_epoch = 100 * curves_by_epoch(records, "test_acc")
        mean, std = per_epoch.mean(axis=1), per_epoch.std(axis=1, ddof=1)
        (line,) = axes.plot(per_epoch.index, mean, label=f"{label} (n={len(records)})", linewidth=1.2,
                            marker=MARKERS[index % len(MARKERS)], markersize=4, color=f"C{index}")
        axes.fill_between(per_epoch.index, mean - std, mean + std, color=line.get_color(), alpha=0.15, linewidth=0)
    if any(groups.values()):
        legend_beside(axes, title=f"{legend_title}\nmean ± std over n seeds")
    else:
        note_no_finished_runs(axes)
    axes.set(title=title, xlabel="epoch", ylabel=ACCURACY_LABEL)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    axes.grid(alpha=0.3)
    save(figure, out_path)


def curves_by_epoch(records: list[dict], metric: str) -> pd.DataFrame:
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


def plot_against_size(summary: pd.DataFrame, out_path: str | Path, title: str, metric: str, student_column: str,
                      ylabel: str, markers: dict[str, str], scale: float = 1.0, size_column: str = "size_mb",
                      front: pd.Series | None = None) -> None:
    """``scale`` times the mean of ``metric`` (error bar: its std) against ``size_column`` (MB) on a log axis, one
    colour per ``student_column`` value, one marker per method (``markers``, in legend order), each point labelled
    with its bits and, where the rows have several, its activation or bucket. ``front`` (a boolean per row): the
    Pareto front, ringed and joined by a step line. The legend, beside the axes, says what colour, marker, error bar
    and label mean. With no rows the axes carry a "no finished runs" note."""
    figure = Figure(figsize=WIDE)
    axes = figure.add_subplot()
    students = list(dict.fromkeys(summary[student_column]))
    colours = {student: f"C{i}" for i, student in enumerate(students)}
    several = [column for column in ("activation", "bucket") if summary[column].dropna().nunique() > 1]
    for row in summary.to_dict("records"):
        size, value, std = row[size_column], scale * row[f"{metric}_mean"], scale * row[f"{metric}_std"]
        axes.errorbar(
            size,
            value,
            yerr=0 if pd.isna(std) else std,  # a single run has no spread
            marker=markers[row["method"]],
            color=colours[row[student_column]],
            linestyle="none",
            capsize=2,
        )
        label = _point_label(row, several)
        axes.annotate(label, (size, value), xytext=(4, 3), textcoords="offset points", fontsize="x-small")
    on_front = summary[front.reindex(summary.index, fill_value=False)] if front is not None else summary.iloc[:0]
    if not on_front.empty:
        on_front = on_front.sort_values(size_column)
        points = (on_front[size_column], scale * on_front[f"{metric}_mean"])
        axes.plot(*points, drawstyle="steps-post", color="black", linewidth=0.8, alpha=0.6, zorder=1)
        axes.scatter(*points, s=140, facecolors="none", edgecolors="black", linewidths=1.0, zorder=3)
    if summary.empty:
        note_no_finished_runs(axes)
    else:
        axes.set_xscale("log")
        # plain labels at 1, 2 and 5 per decade: matplotlib's own labels minor ticks over a range under a decade,
        # where they overlap
        axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.margins(x=0.1)  # room for the right-most point's label
        handles = [_heading("colour: model")]
        handles += [Line2D([], [], color=colour, marker="o", linestyle="none", label=student)
                    for student, colour in colours.items()]
        handles.append(_heading("marker: method"))
        handles += [Line2D([], [], color="gray", marker=marker, linestyle="none", label=method)
                    for method, marker in markers.items() if method in set(summary["method"])]
        if not on_front.empty:
            handles.append(Line2D([], [], color="black", marker="o", markerfacecolor="none", markersize=11,
                                  linewidth=0.8, alpha=0.6, label="Pareto front"))
        legend_beside(axes, handles=handles, title="point: mean, bar: ± std over seeds\nlabel: bits per weight")
    xlabel = "size on disk (MB, packed file)" if size_column == "packed_mb" else "model size (MB)"
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.grid(alpha=0.3, which="both")
    save(figure, out_path)


def _heading(text: str) -> Line2D:
    """A legend entry that draws nothing: a heading for the entries below it."""
    return Line2D([], [], linestyle="none", label=text)


def _point_label(row: dict, several: list[str]) -> str:
    """"2b", followed by the activation and the bucket (k=256, per-tensor) where the plot has several of them."""
    parts = [f"{row['bits']}b"]
    if "activation" in several and not pd.isna(row["activation"]):  # a translation teacher has no activation label
        parts.append(row["activation"])
    if "bucket" in several and not pd.isna(row["bucket"]):  # full precision has no bucket
        parts.append(f"k={row['bucket']}" if row["bucket"] else "per-tensor")
    return " ".join(parts)


def running_best(curves: list[list[float]]) -> pd.DataFrame:
    """Curves of the best value so far (a column each), indexed by the number of evaluations (1..n); NaN past the
    end of a shorter curve."""
    return pd.concat([pd.Series(curve, index=range(1, len(curve) + 1), dtype=float) for curve in curves],
                     axis=1).sort_index()


def plot_running_best(groups: dict[str, list[list[float]]], out_path: str | Path, title: str, xlabel: str,
                      ylabel: str, legend_title: str) -> None:
    """Plot curves of the best value so far (an ESNAC search's best reward) against the evaluations (1..n), as
    steps with a marker per evaluation.

    Per group (a colour and marker each; the legend is titled ``legend_title``) the mean over its curves, with a band
    from their minimum to their maximum when there are several; a curve that stopped earlier contributes to the
    evaluations it reached. Groups without curves appear in the legend as "no finished runs"; with none at all the
    axes carry that note alone.
    """
    figure = Figure(figsize=WIDE)
    axes = figure.add_subplot()
    for index, (label, curves) in enumerate(groups.items()):
        if not curves:
            axes.plot([], [], " ", label=f"{label} (no finished runs)")
            continue
        per_evaluation = running_best(curves)
        (line,) = axes.plot(per_evaluation.index, per_evaluation.mean(axis=1), label=f"{label} (n={len(curves)})",
                            linewidth=1.2, drawstyle="steps-post", marker=MARKERS[index % len(MARKERS)],
                            markersize=4, color=f"C{index}")
        if len(curves) > 1:
            axes.fill_between(per_evaluation.index, per_evaluation.min(axis=1), per_evaluation.max(axis=1),
                              step="post", color=line.get_color(), alpha=0.15, linewidth=0)
    if any(groups.values()):
        legend_beside(axes, title=f"{legend_title}\nmean over n searches,\nband: their min to max")
    else:
        note_no_finished_runs(axes)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    save(figure, out_path)


class _PlainLogFormatter(LogFormatter):
    """matplotlib's choice of which log-axis ticks to label, written as plain numbers (0.3, not 3×10⁻¹)."""

    def __call__(self, value: float, pos: int | None = None) -> str:
        return f"{value:g}" if super().__call__(value, pos) else ""


def plain_log_labels(axis: Axis) -> None:
    """Label a log axis's ticks as plain numbers, the minor ones too where the axis spans too little for decades."""
    axis.set_major_formatter(_PlainLogFormatter())
    axis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False))


def legend_beside(axes: Axes, **legend: object) -> None:
    """The axes' legend to the right of them, where it covers no data."""
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small",
                title_fontsize="small", alignment="left", **legend)


def note_no_finished_runs(axes: Axes) -> None:
    axes.text(0.5, 0.5, "no finished runs", transform=axes.transAxes, ha="center", va="center", color="gray")


def save(figure: Figure, out_path: str | Path) -> None:
    figure.tight_layout()
    with atomic_path(out_path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
