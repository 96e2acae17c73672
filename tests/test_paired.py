"""Paired comparisons (compresslib.paired) against numbers worked out by hand, and each family's paired table built
from fake records.

Closed forms used below: with one degree of freedom t is Cauchy, so its quantile is tan(π(q − 1/2)) and a
two-sided p is 1 − (2/π)·atan|t|; with two, a two-sided p is 1 − |t|/√(2 + t²) and the 0.80 quantile is 0.6/√0.32.
An exact two-sided Wilcoxon p is 2 · #{sign patterns with W ≤ w} / 2^m for m non-zero differences.
"""

import math

import pandas as pd
import pytest
from test_results import ESNAC_EXPERIMENT, LIT_EXPERIMENT, esnac_records, experiment, lit_records, make_record, \
    quantize_experiment, quantize_records
from test_results_translation import EXPERIMENT as TRANSLATION_EXPERIMENT
from test_results_translation import translation_records

from compresslib.experiments import write_tables
from compresslib.experiments.distill import distill_paired
from compresslib.experiments.esnac_tables import esnac_paired, esnac_tables
from compresslib.experiments.lit import lit_paired
from compresslib.experiments.quantize import quantize_paired
from compresslib.experiments.translation_tables import translation_paired
from compresslib.paired import PAIRED_COLUMNS, paired_statistics, paired_table

T_975_1, T_80_1 = math.tan(0.475 * math.pi), math.tan(0.3 * math.pi)  # 12.7062, 1.3764
T_975_2, T_80_2 = 4.302652729911275, 0.6 / math.sqrt(0.32)  # 4.3027, 1.0607
STATISTICS = ["n", "mean_diff", "std_diff", "ci95_low", "ci95_high", "t", "t_p", "wilcoxon_w", "wilcoxon_p", "mde"]
FEW_PAIRS = "p < 0.05 needs 6"  # the note of a Wilcoxon test with fewer than six non-zero differences


def p_one_df(t):
    return 1 - 2 / math.pi * math.atan(abs(t))


def numbers(row):
    return [row[column] for column in STATISTICS]


# ----------------------------------------------------------------------------- one comparison


def test_three_differences():
    row = paired_statistics([81, 83, 83], [80, 81, 79])  # d = 1, 2, 4
    sd = math.sqrt(7 / 3)  # squares about 7/3: 16/9 + 1/9 + 25/9 = 42/9, over 2
    se = sd / math.sqrt(3)
    t = (7 / 3) / se  # √7
    assert numbers(row) == pytest.approx([
        3, 7 / 3, sd, 7 / 3 - T_975_2 * se, 7 / 3 + T_975_2 * se, t, 1 - t / math.sqrt(2 + t**2),
        0, 2 / 8,  # every difference positive: W = 0, one sign pattern of 8 on each side
        (T_975_2 + T_80_2) * se], rel=1e-9)
    assert (row["arm_mean"], row["baseline_mean"]) == (pytest.approx(247 / 3), 80)
    assert row["note"] == f"Wilcoxon p ≥ 0.25 with 3 non-zero difference(s): {FEW_PAIRS}"


def test_wilcoxon_with_mixed_signs_and_with_enough_pairs():
    mixed = paired_statistics([1, -2, 3, 4], [0, 0, 0, 0])
    # ranks 1..4, the negative one ranked 2: W = 2; sign patterns with W ≤ 2: none, {1}, {2} of 16
    assert (mixed["wilcoxon_w"], mixed["wilcoxon_p"]) == (2, pytest.approx(2 * 3 / 16))
    six = paired_statistics([0, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6])  # arm below baseline every time
    assert (six["mean_diff"], six["wilcoxon_w"], six["wilcoxon_p"]) == (-3.5, 0, pytest.approx(2 / 64))
    assert six["t"] < 0 and six["note"] == ""


def test_one_pair_has_a_mean_only():
    row = paired_statistics([0.9], [0.8])
    assert row["n"] == 1 and row["mean_diff"] == pytest.approx(0.1)
    assert all(math.isnan(row[column]) for column in STATISTICS[2:])
    assert row["note"] == "one pair: no spread, interval, t-test, Wilcoxon test or MDE"


def test_two_pairs():
    row = paired_statistics([2, 5], [1, 2])  # d = 1, 3: mean 2, sd √2, standard error 1
    assert numbers(row) == pytest.approx([2, 2, math.sqrt(2), 2 - T_975_1, 2 + T_975_1, 2, p_one_df(2), 0, 0.5,
                                          T_975_1 + T_80_1])


def test_zero_and_equal_differences():
    zero = paired_statistics([0.8, 0.9, 0.7], [0.8, 0.9, 0.7])
    assert (zero["mean_diff"], zero["std_diff"], zero["mde"]) == (0, 0, 0)
    assert math.isnan(zero["t"]) and math.isnan(zero["wilcoxon_p"])
    assert zero["note"] == "every difference zero: no t-test or Wilcoxon test"
    # 100·0.81 − 100·0.80 and 100·0.91 − 100·0.90 differ in the last bits; both are one point
    equal = paired_table(pd.DataFrame({"arm": ["a", "a", "b", "b"], "seed": [1, 2, 1, 2],
                                       "acc": [0.80, 0.90, 0.81, 0.91], "group": "g"}),
                         ["group"], "arm", "a", ["acc"], scale=100).iloc[0]
    assert (equal["mean_diff"], equal["std_diff"], equal["ci95_low"], equal["mde"]) == (1, 0, 1, 0)
    assert math.isnan(equal["t"]) and (equal["wilcoxon_w"], equal["wilcoxon_p"]) == (0, 0.5)
    assert equal["note"] == f"every difference equal: t undefined; Wilcoxon p ≥ 0.5 with 2 non-zero difference(s): " \
                            f"{FEW_PAIRS}"
    some = paired_statistics([0, 1, 2, 3], [0, 0, 0, 0])
    assert some["wilcoxon_p"] == pytest.approx(2 / 8)  # the zero dropped: three positive differences
    assert some["note"].startswith("Wilcoxon dropped 1 zero difference(s); Wilcoxon p ≥ 0.25 with 3")


# ----------------------------------------------------------------------------- the table


def runs(rows):
    return pd.DataFrame(rows, columns=["student", "arm", "seed", "acc", "loss"])


def test_pairs_present_in_both_arms_count_and_the_rest_is_counted():
    frame = runs([("s", "x", 1, 0.5, 1.0), ("s", "x", 2, 0.7, 1.0), ("s", "x", 3, math.nan, 1.0),
                  ("s", "base", 2, 0.6, 2.0), ("s", "base", 3, 0.6, 2.0), ("s", "base", 4, 0.6, 2.0),
                  ("t", "x", 1, 0.9, 1.0)])
    table = paired_table(frame, ["student"], "arm", "base", ["acc", "loss"], scale=100, unit="pp")
    assert table.columns.tolist() == ["student", *PAIRED_COLUMNS]
    rows = table[["student", "arm", "baseline", "metric", "n", "unpaired", "mean_diff"]].values.tolist()
    assert rows == [["s", "x", "base", "acc", 1, 3, pytest.approx(10)],  # x's seed 3 is NaN: only seed 2 pairs
                    ["s", "x", "base", "loss", 2, 2, -100],
                    ["t", "x", "base", "acc", 0, 1, pytest.approx(math.nan, nan_ok=True)],
                    ["t", "x", "base", "loss", 0, 1, pytest.approx(math.nan, nan_ok=True)]]
    assert set(table["unit"]) == {"pp"} and set(table["paired_by"]) == {"seed"}
    assert table.loc[2, "note"] == "no pairs: no seed has runs in both arms"


def test_arms_baselines_and_pairing_columns():
    frame = runs([("s", arm, seed, value, 0.0) for arm, value in (("lit", 0.9), ("kd", 0.8), ("scratch", 0.7),
                                                                  ("teacher", 0.95)) for seed in (1, 2)])
    table = paired_table(frame, ["student"], "arm", ["scratch", "kd"], ["acc"], arms=["lit"])
    assert table[["arm", "baseline"]].values.tolist() == [["lit", "scratch"], ["lit", "kd"]]
    assert table["mean_diff"].tolist() == pytest.approx([0.2, 0.1])
    every = paired_table(frame, ["student"], "arm", "kd", ["acc"])  # every other arm, in the frame's order
    assert every["arm"].tolist() == ["lit", "scratch", "teacher"]


def test_pairing_on_several_columns():
    frame = pd.DataFrame({"experiment": "e", "teacher": ["a", "a", "b", "b", "c"], "seed": 1,
                          "strategy": ["esnac", "random", "esnac", "random", "esnac"], "f": [0.9, 0.8, 0.7, 0.4, 0.5]})
    row = paired_table(frame, ["experiment"], "strategy", "random", ["f"], pair_on=["teacher", "seed"]).iloc[0]
    assert (row["n"], row["unpaired"], row["paired_by"]) == (2, 1, "teacher and seed")
    assert row["mean_diff"] == pytest.approx(0.2)  # (0.1 + 0.3) / 2; teacher c has no random search


def test_two_runs_of_one_arm_and_seed_are_an_error_and_an_empty_frame_has_the_columns():
    frame = runs([("s", "x", 1, 0.5, 0.0), ("s", "x", 1, 0.6, 0.0), ("s", "base", 1, 0.5, 0.0)])
    with pytest.raises(ValueError, match=r"more than one x run of \('s',\) for seed \[1\]"):
        paired_table(frame, ["student"], "arm", "base", ["acc"])
    empty = paired_table(runs([]), ["student"], "arm", "base", ["metrics.acc"])
    assert empty.empty and empty.columns.tolist() == ["student", *PAIRED_COLUMNS]


# ----------------------------------------------------------------------------- the families' tables


def distill_records():
    """ReLU and LMA-8 of the main experiment (seeds 1-3), LMA-4 of the bins ablation (seeds 1, 2, 4), which asks
    for no ReLU run; best accuracy the same everywhere."""
    relu = [make_record(activation="relu", seed=seed, final=final, best=0.9)
            for seed, final in ((1, 0.80), (2, 0.81), (3, 0.79))]
    lma8 = [make_record(activation="lma8", seed=seed, final=final, best=0.9)
            for seed, final in ((1, 0.81), (2, 0.83), (3, 0.83))]
    lma4 = [make_record(activation="lma4", seed=seed, final=final, best=0.9)
            for seed, final in ((1, 0.78), (2, 0.80), (4, 0.85))]
    return relu + lma8 + lma4


DISTILL = {"main": experiment(["relu", "lma8"], [1, 2, 3]), "bins": experiment(["lma4"], [1, 2, 4])}


def test_distill_paired_compares_every_activation_with_relu_of_the_same_student_and_seed(tmp_path):
    table = distill_paired(distill_records(), DISTILL)
    assert table.columns[:4].tolist() == ["experiment", "labels.dataset", "labels.teacher", "labels.student"]
    assert table[["experiment", "arm", "baseline", "metric", "n", "unpaired"]].values.tolist() == [
        ["main", "lma8", "relu", "final_test_acc", 3, 0], ["main", "lma8", "relu", "best_test_acc", 3, 0],
        ["bins", "lma4", "relu", "final_test_acc", 2, 1], ["bins", "lma4", "relu", "best_test_acc", 2, 1]]
    lma8, zero, lma4 = table.iloc[0], table.iloc[1], table.iloc[2]
    assert (lma8["mean_diff"], lma8["t"], lma8["wilcoxon_p"]) == pytest.approx((7 / 3, math.sqrt(7), 0.25))
    assert zero["mean_diff"] == 0 and zero["note"] == "every difference zero: no t-test or Wilcoxon test"
    # the ablation's LMA-4 against the main experiment's ReLU runs of its seeds: 1 and 2 pair (d = -2, -1), 4 not
    assert (lma4["mean_diff"], lma4["std_diff"], lma4["t"], lma4["t_p"]) == pytest.approx(
        (-1.5, math.sqrt(0.5), -3, p_one_df(3)))
    assert lma4["unit"] == "pp" and lma4["labels.student"] == "conv-s0"
    write_tables(distill_records(), {"distill": DISTILL}, tmp_path)
    assert pd.read_csv(tmp_path / "paired-distill.csv").shape == (4, 4 + len(PAIRED_COLUMNS))
    markdown = (tmp_path / "paired-distill.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Distilled students: each activation against ReLU, paired by seed\n")
    assert "\n".join([
        "## main: students of `conv-teacher`", "",
        "| dataset | student | arm | baseline | metric | pairs | Δ mean | std | 95% CI | t | p (t) | W | p (W) | MDE "
        "| note |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        "| cifar10 | conv-s0 | lma8 | relu | final_test_acc | 3 | +2.33 | 1.53 | [-1.46, +6.13] | 2.65 | 0.118 | 0 "
        f"| 0.25 | 4.73 | Wilcoxon p ≥ 0.25 with 3 non-zero difference(s): {FEW_PAIRS} |"]) in markdown
    assert "| cifar10 | conv-s0 | lma4 | relu | final_test_acc | 2 (1 unpaired) | -1.50 | 0.71 |" in markdown


def test_quantize_paired_compares_each_configuration_with_the_distilled_student():
    experiments = {"qd": quantize_experiment(references=[])}  # the distilled students are there all the same
    table = quantize_paired(quantize_records(), experiments)
    final = table[table["metric"] == "final_test_acc"]
    assert final[["labels.student", "arm", "n", "unpaired"]].values.tolist() == [
        ["conv-s1", "pm-b4-k256", 0, 1], ["conv-s0", "qd-b4-k256", 1, 1], ["conv-s0", "qd-b2-k256", 2, 0],
        ["conv-s0", "qd-b2-knone", 1, 1], ["conv-s0", "pm-b2-k256", 1, 1]]
    assert set(table["baseline"]) == {"fp-distilled"}
    qd = final.iloc[2]  # 80 − 88 and 84 − 90
    assert (qd["mean_diff"], qd["std_diff"], qd["t"], qd["t_p"]) == pytest.approx((-7, math.sqrt(2), -7, p_one_df(7)))
    assert final["mean_diff"].tolist()[1:] == pytest.approx([-2, -7, -18, -38])


def test_lit_paired_compares_lit_with_each_listed_baseline():
    table = lit_paired(lit_records(), {"lit-c10": LIT_EXPERIMENT})
    final = table[table["metric"] == "final_test_acc"]
    assert final[["arm", "baseline", "n", "unpaired"]].values.tolist() == [["lit", "scratch", 1, 2],
                                                                          ["lit", "kd", 2, 1]]
    kd = final.iloc[1]  # LIT's seeds 1 and 3: 87 − 84, 89 − 85
    assert (kd["mean_diff"], kd["t"], kd["t_p"], kd["mde"]) == pytest.approx(
        (3.5, 7, p_one_df(7), (T_975_1 + T_80_1) * 0.5))
    only_kd = lit_paired(lit_records(), {"lit-c10": LIT_EXPERIMENT | {"baselines": ["kd"]}})
    assert set(only_kd["baseline"]) == {"kd"}


def test_esnac_paired_pairs_searches_by_seed_per_teacher_and_over_teachers():
    searches = esnac_tables(esnac_records(), {"e": ESNAC_EXPERIMENT})[1]
    table = esnac_paired(searches, {"e": ESNAC_EXPERIMENT})
    assert table[["teacher", "metric", "n", "unpaired", "paired_by"]].values.tolist() == [
        ["vgg19", "best_f_after", 1, 0, "seed"], ["vgg19", "best_reward", 1, 0, "seed"],
        ["resnet18", "best_f_after", 0, 1, "seed"], ["resnet18", "best_reward", 0, 1, "seed"],  # no random search
        ["all", "best_f_after", 1, 1, "teacher and seed"], ["all", "best_reward", 1, 1, "teacher and seed"]]
    f_after = (0.8470 * 1.153 * 0.7164 - 0.7 * 1.3 * 0.69) / 0.7371  # esnac's best architecture against random's
    assert table["mean_diff"].tolist()[:2] == pytest.approx([f_after, (0.8470 * 1.153 - 0.7 * 1.3) * 0.6 / 0.7])
    single = {"e": ESNAC_EXPERIMENT | {"teachers": {"vgg19": ESNAC_EXPERIMENT["teachers"]["vgg19"]}}}
    table = esnac_paired(esnac_tables(esnac_records(), single)[1], single)
    assert table["teacher"].tolist() == ["vgg19", "vgg19"]  # no pooled rows repeating the one teacher's


def test_translation_paired_compares_kd_with_the_undistilled_student():
    experiments = {"wmt": TRANSLATION_EXPERIMENT | {"methods": ["word-kd"]}}  # undistilled runs from anywhere
    table = translation_paired(translation_records(), experiments)
    assert table[["student", "activation", "arm", "metric", "n", "unpaired"]].values.tolist() == [
        ["tf-small", "relu", "word-kd", "bleu.test", 1, 1],  # seed 1: 26.8 − 24.0
        ["tf-small", "relu", "word-kd", "bleu.newstest2013", 0, 2],
        ["tf-small", "lma8", "word-kd", "bleu.test", 0, 3]]  # no newstest2013 row: no lma8 run has the split
    assert table.loc[0, "mean_diff"] == pytest.approx(2.8) and set(table["unit"]) == {"BLEU"}
