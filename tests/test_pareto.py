"""compresslib.pareto: the non-dominated runs, with ties, missing values and groups."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from compresslib.pareto import mark_front, non_dominated


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
