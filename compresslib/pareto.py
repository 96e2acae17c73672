"""Pareto fronts: the runs no other run beats on both size and score.

A row is dominated when another row is at most its size and at least its score, and strictly better in one of the
two. Rows with a missing size or score take no part (never on the front, never dominating). Equal rows do not
dominate each other, so both stay on the front.

The families' Pareto tables and plots (quantize: accuracy, translation: BLEU) put a summary's configurations on the
front of their mean score against the size of their packed file (:func:`on_disk_front`, :func:`front_table`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

__all__ = ["non_dominated", "mark_front", "on_disk_front", "front_table"]


def non_dominated(sizes: Sequence[float], scores: Sequence[float]) -> list[bool]:
    """For each (size, score) pair: whether it is on the front (smaller size and higher score are better)."""
    if len(sizes) != len(scores):
        raise ValueError(f"{len(sizes)} sizes but {len(scores)} scores")
    known = [i for i in range(len(sizes)) if not (_missing(sizes[i]) or _missing(scores[i]))]
    # by size, the higher score first within one size: a row is on the front when its score beats every smaller row's
    known.sort(key=lambda i: (sizes[i], -scores[i]))
    front = [False] * len(sizes)
    best_score, best_at = -math.inf, None  # the best score among strictly smaller or equal-but-better rows so far
    for i in known:
        if scores[i] > best_score:
            front[i], best_score, best_at = True, scores[i], (sizes[i], scores[i])
        elif (sizes[i], scores[i]) == best_at:  # the very same point as the last row on the front
            front[i] = True
    return front


def mark_front(frame: pd.DataFrame, size: str, score: str, within: Sequence[str] = ()) -> pd.Series:
    """A boolean column: whether each row of ``frame`` is on the front of ``score`` against ``size`` among the rows
    that share its ``within`` columns (the whole frame when empty)."""
    on_front = pd.Series(False, index=frame.index, dtype=bool)
    groups = frame.groupby(list(within), dropna=False, sort=False) if within else [(None, frame)]
    for _, rows in groups:
        on_front[rows.index] = pd.Series(non_dominated(rows[size].tolist(), rows[score].tolist()), index=rows.index,
                                         dtype=bool)
    return on_front


def on_disk_front(summary: pd.DataFrame, configuration: Sequence[str], score: str) -> pd.DataFrame:
    """Each configuration of ``summary`` once (its first row: a run several experiments share is one point), with
    ``packed_mb`` (the mean size of its packed file in MB; full precision: its float32 state) and ``pareto`` (whether
    no other configuration is as small and scores at least as well on ``score``)."""
    rows = summary.drop_duplicates(list(configuration))
    rows = rows.assign(packed_mb=rows["packed_bytes"] / 1e6)
    return rows.assign(pareto=mark_front(rows, "packed_mb", score))


def front_table(summary: pd.DataFrame, group: str, configuration: Sequence[str], score: str) -> pd.DataFrame:
    """Per value of ``group`` (a dataset, a corpus), the configurations of ``summary`` on :func:`on_disk_front`,
    smallest first, without the ``experiment`` and ``pareto`` columns."""
    fronts = [on_disk_front(summary[summary[group] == value], configuration, score)
              for value in dict.fromkeys(summary[group].dropna())]
    front = pd.concat(fronts) if fronts else summary.assign(packed_mb=pd.Series(dtype=float),
                                                           pareto=pd.Series(dtype=bool))
    return front[front["pareto"]].sort_values([group, "packed_mb"], kind="stable").drop(
        columns=["experiment", "pareto"])


def _missing(value: float) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
