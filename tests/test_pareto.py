"""compresslib.pareto: the non-dominated runs, with ties, missing values and groups, and the fronts of summaries
against their packed files."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from compresslib.pareto import front_table, mark_front, non_dominated, on_disk_front


def test_front_of_a_hand_drawn_set():
    sizes = [1.0, 2.0, 2.0, 3.0, 4.0, 0.5]
    scores = [70.0, 80.0, 75.0, 79.0, 90.0, 60.0]
    # 0.5/60 smallest; 1/70 better score; 2/80; 2/75 beaten by 2/80; 3/79 beaten by 2/80; 4/90 best score
    assert non_dominated(sizes, scores) == [True, True, False, False, True, True]


def test_equal_points_both_stay_and_equal_scores_at_larger_size_do_not():
    assert non_dominated([1.0, 1.0, 2.0], [50.0, 50.0, 50.0]) == [True, True, False]
    assert non_dominated([1.0, 2.0], [50.0, 50.0]) == [True, False]


def test_missing_values_take_no_part():
    assert non_dominated([1.0, math.nan, 2.0, 3.0], [50.0, 99.0, None, 60.0]) == [True, False, False, True]
    assert non_dominated([], []) == []
    with pytest.raises(ValueError, match="2 sizes but 1 scores"):
        non_dominated([1.0, 2.0], [3.0])


def test_fronts_within_groups():
    frame = pd.DataFrame({"dataset": ["a", "a", "a", "b", "b"], "size_mb": [1.0, 2.0, 3.0, 1.0, 2.0],
                          "acc": [50.0, 60.0, 55.0, 70.0, 65.0]}, index=[10, 11, 12, 13, 14])
    assert mark_front(frame, "size_mb", "acc", within=["dataset"]).tolist() == [True, True, False, True, False]
    assert mark_front(frame, "size_mb", "acc").tolist() == [False, False, False, True, False]
    assert mark_front(frame.iloc[:0], "size_mb", "acc").empty


def summary_rows():
    """Summary rows of two experiments over two corpora: "b" shares its 4-bit run with "a"; score: mean BLEU."""
    return pd.DataFrame({
        "experiment": ["a", "a", "a", "a", "b", "b", "c"],
        "corpus": ["wmt", "wmt", "wmt", "wmt", "wmt", "wmt", "iwslt"],
        "method": ["teacher", "qd", "qd", "undistilled", "qd", "word-kd", "teacher"],
        "bits": [32, 4, 2, 32, 4, 32, 32],
        "packed_bytes": [20_000, 700, 400, 4000, 700, 4000, 8000],
        "bleu_mean": [30.0, 26.0, 26.0, 24.0, 26.0, 27.0, 21.0],
    })


def test_on_disk_front_counts_a_shared_configuration_once():
    rows = on_disk_front(summary_rows().iloc[:6], ["method", "bits"], "bleu_mean")
    assert rows["experiment"].tolist() == ["a", "a", "a", "a", "b"]  # b's 4-bit row: a's, once
    assert rows["packed_mb"].tolist() == [0.02, 0.0007, 0.0004, 0.004, 0.004]
    # 2-bit 0.0004 MB at 26 beats 4-bit (0.0007 MB, 26 too); word-kd 0.004 MB at 27 beats undistilled (24)
    assert rows["pareto"].tolist() == [True, False, True, False, True]


def test_front_table_lists_each_group_smallest_first():
    front = front_table(summary_rows(), "corpus", ["method", "bits"], "bleu_mean")
    assert front[["corpus", "method", "bits", "packed_mb"]].values.tolist() == [
        ["iwslt", "teacher", 32, 0.008], ["wmt", "qd", 2, 0.0004], ["wmt", "word-kd", 32, 0.004],
        ["wmt", "teacher", 32, 0.02]]
    assert list(front.columns) == ["corpus", "method", "bits", "packed_bytes", "bleu_mean", "packed_mb"]
    empty = front_table(summary_rows().iloc[:0], "corpus", ["method", "bits"], "bleu_mean")
    assert empty.empty and "packed_mb" in empty.columns
