"""Paired comparisons: the per-seed differences between an arm and its baseline, their interval and tests.

The designs pair runs by seed: runs of one comparison with the same seed start from the same initial weights and
see the same batches, so the difference of two such runs is free of the seed's share of the spread. For each group
of a tidy frame (one row per run), each compared arm, each baseline and each metric, :func:`paired_table` takes the
values of the pairs present in both arms (a seed missing from either is left out and counted) and computes, from
the differences ``d = arm − baseline`` in the metric's unit as the tables show it (``scale``: accuracy in
percentage points, BLEU in points):

- ``n``: the pairs used; ``unpaired``: the pairing values (seeds) present in one arm only, left out;
- ``arm_mean``, ``baseline_mean``: each arm's mean over the pairs used; ``mean_diff``: the mean of d;
- ``std_diff``: the sample standard deviation of d (ddof=1);
- ``ci95_low``, ``ci95_high``: the 95% Student-t interval ``mean_diff ± t(0.975, n−1) · std_diff / √n``;
- ``t``, ``t_p``: the paired t-test (``scipy.stats.ttest_rel``, two-sided);
- ``wilcoxon_w``, ``wilcoxon_p``: the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, two-sided, scipy's
  defaults: zero differences are dropped; W is the smaller of the positive and negative rank sums; the p-value is
  exact up to 50 differences, by exhaustive permutation up to 13 when there are ties or zeros);
- ``mde``: the minimum detectable effect, the smallest true mean difference the paired t-test detects with these
  many pairs at two-sided α = 0.05 with power 0.8, from the observed spread::

      MDE = (t(0.975, n−1) + t(0.80, n−1)) · std_diff / √n

- ``note``: what could not be computed and why (fewer than two pairs, identical differences, no non-zero
  difference, too few non-zero differences for the Wilcoxon test to reach p < 0.05).

Nothing here reads torch; the experiment families build their frames (``compresslib.experiments``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from compresslib.results import decimals, markdown_document, markdown_section, two_decimals, write_summary

__all__ = ["PAIRED_COLUMNS", "ALPHA", "POWER", "paired_statistics", "paired_table", "paired_markdown",
           "write_paired"]

STATISTICS = ["arm_mean", "baseline_mean", "mean_diff", "std_diff", "ci95_low", "ci95_high", "t", "t_p", "wilcoxon_w",
              "wilcoxon_p", "mde"]
PAIRED_COLUMNS = ["arm", "baseline", "metric", "unit", "paired_by", "n", "unpaired", *STATISTICS, "note"]
ALPHA, POWER = 0.05, 0.8  # the MDE's two-sided level and power
WILCOXON_MIN_PAIRS = 6  # the fewest non-zero differences whose smallest two-sided p, 2 / 2**m, is below 0.05
# differences are rounded to this many decimals of the table's unit, so that the float noise of scaling (0.81 * 100
# - 0.80 * 100) neither makes equal differences unequal nor zero differences non-zero
DIFFERENCE_DECIMALS = 9


def paired_statistics(arm: Sequence[float], baseline: Sequence[float]) -> dict:
    """The statistics of one comparison (the module docstring's columns from ``n`` to ``note``, without
    ``unpaired``) from its paired values: ``arm[i]`` and ``baseline[i]`` share a seed."""
    arm, baseline = np.asarray(arm, dtype=float), np.asarray(baseline, dtype=float)
    differences = np.round(arm - baseline, DIFFERENCE_DECIMALS)
    n = len(differences)
    row = dict.fromkeys(STATISTICS, math.nan) | {"n": n, "note": ""}
    if n == 0:
        return row | {"note": "no pairs: no seed has runs in both arms"}
    row |= {"arm_mean": arm.mean(), "baseline_mean": baseline.mean(), "mean_diff": differences.mean()}
    if n < 2:
        return row | {"note": "one pair: no spread, interval, t-test, Wilcoxon test or MDE"}
    std = differences.std(ddof=1)
    standard_error = std / math.sqrt(n)
    t_975, t_power = stats.t.ppf(1 - ALPHA / 2, n - 1), stats.t.ppf(POWER, n - 1)
    row |= {"std_diff": std, "ci95_low": row["mean_diff"] - t_975 * standard_error,
            "ci95_high": row["mean_diff"] + t_975 * standard_error, "mde": (t_975 + t_power) * standard_error}
    nonzero = int(np.count_nonzero(differences))
    if nonzero == 0:
        return row | {"note": "every difference zero: no t-test or Wilcoxon test"}
    notes = []
    if std == 0:
        notes.append("every difference equal: t undefined")
    else:
        test = stats.ttest_rel(arm, baseline)
        row |= {"t": float(test.statistic), "t_p": float(test.pvalue)}
    test = stats.wilcoxon(differences)
    row |= {"wilcoxon_w": float(test.statistic), "wilcoxon_p": float(test.pvalue)}
    if nonzero < n:
        notes.append(f"Wilcoxon dropped {n - nonzero} zero difference(s)")
    if nonzero < WILCOXON_MIN_PAIRS:  # W = 0 has two sign patterns of 2**m: p >= 2 / 2**m
        notes.append(f"Wilcoxon p ≥ {2 / 2**nonzero:.3g} with {nonzero} non-zero difference(s): p < 0.05 needs "
                     f"{WILCOXON_MIN_PAIRS}")
    return row | {"note": "; ".join(notes)}


def paired_table(frame: pd.DataFrame, by: Sequence[str], arm: str, baseline: str | Sequence[str],
                 metrics: Sequence[str], arms: Sequence[str] | None = None, pair_on: str | Sequence[str] = "seed",
                 scale: float = 1.0, unit: str = "") -> pd.DataFrame:
    """Every comparison of ``frame`` (one row per run): per group of ``by``, per baseline (a value of the ``arm``
    column, or several in turn), per compared arm (``arms``, in their order, or every other value in the order of
    the frame) and per metric column, the :func:`paired_statistics` of ``scale`` times the values paired on
    ``pair_on`` (a missing value, NaN, is no run). Columns: ``by``, then :data:`PAIRED_COLUMNS`, ``metric`` named
    without its ``metrics.`` prefix. A comparison is a row when the group has values of its arm, with n 0 when it has
    none of the baseline. Groups keep the frame's order. Two runs of one arm and pair in a group are an error."""
    by, baselines = list(by), [baseline] if isinstance(baseline, str) else list(baseline)
    pair_on = [pair_on] if isinstance(pair_on, str) else list(pair_on)
    frame = frame.reindex(columns=[*frame.columns, *(metric for metric in metrics if metric not in frame.columns)])
    rows = []
    groups = frame.groupby(by, dropna=False, sort=False) if not frame.empty else []
    for key, group in groups:
        present = list(dict.fromkeys(group[arm]))
        compared = [value for value in (present if arms is None else arms) if value in present
                    and value not in baselines]
        for base in baselines:
            for value in compared:
                for metric in metrics:
                    values = {side: _paired_values(group, arm, side, metric, pair_on, key)
                              for side in (value, base)}
                    if values[value].empty:  # e.g. a test split only other students were scored on
                        continue
                    common = values[value].index.intersection(values[base].index, sort=True)
                    unpaired = len(values[value].index.symmetric_difference(values[base].index))
                    statistics = paired_statistics(scale * values[value].loc[common], scale * values[base].loc[common])
                    rows.append({**dict(zip(by, key, strict=True)), "arm": value, "baseline": base,
                                 "metric": metric.removeprefix("metrics."), "unit": unit,
                                 "paired_by": " and ".join(pair_on), "unpaired": unpaired, **statistics})
    return pd.DataFrame(rows, columns=[*by, *PAIRED_COLUMNS])


def _paired_values(group: pd.DataFrame, arm: str, value: str, metric: str, pair_on: list[str], key: tuple) \
        -> pd.Series:
    """One arm's values of ``metric`` indexed by the pairing columns, missing ones left out."""
    values = group[group[arm] == value].set_index(pair_on)[metric].astype(float).dropna()
    if values.index.has_duplicates:
        twice = sorted(set(values.index[values.index.duplicated()]))
        raise ValueError(f"paired_table: more than one {value} run of {key} for {' and '.join(pair_on)} {twice}")
    return values


def paired_markdown(title: str, what: str, table: pd.DataFrame, experiments: dict,
                    heading: Callable[[str, dict], str], labels: dict[str, str], places: int = 2) -> str:
    """A :func:`paired_table` as Markdown: ``title``; a note saying ``what`` pairs the runs and what the differences
    are (metric and unit), and what each column means; then a section per experiment under ``heading(name,
    experiment)`` whose rows start with the ``labels`` columns (column: header). Values to ``places`` decimals,
    p-values to three significant figures, ``—`` where a value could not be computed (the note says why)."""
    header = [*labels.values(), "arm", "baseline", "metric", "pairs", "Δ mean", "std", "95% CI", "t", "p (t)", "W",
              "p (W)", "MDE", "note"]

    def p_value(value: float) -> str:
        return "—" if math.isnan(value) else f"{value:.3g}"  # 0.0903, 3.74e-05

    def signed(value: float) -> str:
        return "—" if math.isnan(value) else f"{value:+.{places}f}"

    def cells(row: dict) -> list[str]:
        pairs = str(row["n"]) + (f" ({row['unpaired']} unpaired)" if row["unpaired"] else "")
        interval = "—" if math.isnan(row["ci95_low"]) else f"[{signed(row['ci95_low'])}, {signed(row['ci95_high'])}]"
        return [*("—" if pd.isna(row[column]) else str(row[column]) for column in labels), row["arm"],
                row["baseline"], row["metric"], pairs, signed(row["mean_diff"]), decimals(row["std_diff"], places),
                interval, two_decimals(row["t"]), p_value(row["t_p"]),
                "—" if math.isnan(row["wilcoxon_w"]) else f"{row['wilcoxon_w']:g}", p_value(row["wilcoxon_p"]),
                decimals(row["mde"], places), row["note"]]

    def section(name: str, experiment: dict, rows: list[dict]) -> list[str]:
        return markdown_section(heading(name, experiment), header, rows, cells)

    note = (f"Δ = arm − baseline per pair of runs ({what}); only pairs with runs in both arms count (pairs: how "
            "many, and how many seeds only one arm has, left out). std: sample standard deviation of Δ "
            "(ddof=1); 95% CI: mean ± t(0.975, n−1)·std/√n; t, p (t): paired t-test; W, p (W): Wilcoxon "
            "signed-rank test (zero differences dropped); MDE: the smallest mean difference these pairs detect "
            "with the paired t-test at two-sided α = 0.05 and power 0.8, (t(0.975, n−1) + t(0.80, n−1))·std/√n. "
            "— where a value cannot be computed; the note says why.")
    return markdown_document(title, note, table, experiments, section)


def write_paired(table: pd.DataFrame, experiments: dict, paths: Sequence[Path], title: str, what: str,
                 heading: Callable[[str, dict], str], labels: dict[str, str], places: int = 2) -> None:
    """A family's paired comparisons as CSV and as :func:`paired_markdown`'s Markdown (``paths``: the two files)."""
    write_summary(table, paired_markdown(title, what, table, experiments, heading, labels, places), *paths)
