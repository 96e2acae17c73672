"""Aggregation of run records into tables, checked against numbers worked out by hand."""

import json
import math

import pandas as pd
import pytest

from compresslib.experiments import load_records, table_paths, write_tables
from compresslib.experiments.distill import experiment_table, seed_table
from compresslib.experiments.esnac_tables import ESNAC_COLUMNS, ESNAC_SEARCH_COLUMNS, esnac_tables
from compresslib.experiments.esnac import in_experiment as in_esnac_experiment
from compresslib.experiments.lit import lit_summary, lit_table
from compresslib.experiments.quantize import quantize_summary, quantize_table
from compresslib.results import IDENTITY_COLUMNS, SIZE_COLUMNS, runs_table, summarize

# LMA's README table (reference/readmes/LMA-README.md), five seeds of best test accuracy. Its ReLU row
# prints mean 89.92 / std 0.21, APLU-8's values; its own numbers give mean 88.742, sample std 0.2533.
LMA_RELU_BEST = [0.8864, 0.8891, 0.8835, 0.8898, 0.8883]
LMA_APLU8_BEST = [0.8967, 0.9012, 0.8975, 0.8994, 0.9013]
T_975_4 = 2.776445  # scipy.stats.t.ppf(0.975, 4)
T_975_1 = 12.706205  # scipy.stats.t.ppf(0.975, 1)
T_975_2 = 4.302653  # scipy.stats.t.ppf(0.975, 2)
TEACHER = "conv-teacher"


def experiment(activations, seeds, students=("conv-s0",)):
    """One config.yaml experiment entry."""
    return {"teacher": "conv-teacher", "students": list(students), "activations": activations, "seeds": seeds}


EXPERIMENTS = {
    "lma-cifar10": experiment(["relu", "lma8"], [1, 2, 3], students=["conv-s0", "conv-s1"]),
    "lma-bins": experiment(["lma4", "lma8"], [1, 2]),
}


def make_record(kind="distill", student="conv-s0", activation="lma8", seed=1, final=0.88, best=0.89, teacher=TEACHER):
    """A record.json as a training job writes it (three epochs), with every section of the contract."""
    epochs = 3
    family = activation.rstrip("0123456789")
    bins = int(activation[len(family) :]) if activation != family else None
    labels = {"dataset": "cifar10", "teacher": teacher} | ({"student": student} if kind != "teacher" else {})
    run_dir = f"results/{kind}/cifar10/{teacher}/{student if kind != 'teacher' else ''}/{activation}/seed{seed}"
    return {
        "format": 1,
        "kind": kind,
        "run_dir": run_dir,
        "labels": labels,
        "seed": seed,
        "spec": {
            "kind": kind,
            "lr": 0.01,
            "milestones": [100, 150],
            "kd": {"temperature": 2.0, "alpha": 0.9} if kind == "distill" else None,
        },
        "spec_hash": f"hash-{kind}-{student}-{activation}-{seed}",
        "activation": activation,
        "activation_family": family,
        "bins": bins,
        "metrics": {
            "final_epoch": epochs,
            "final_test_acc": final,
            "final_val_acc": final,
            "final_train_loss": 0.3,
            "best_epoch": epochs - 1,
            "best_val_acc": best,
            "best_test_acc": best,
            "max_test_acc": best,
            "selection": "final",
            "selected_test_acc": final,
            "epochs_run": epochs,
            "stopped_early": False,
        },
        "curve": {
            "epoch": list(range(1, epochs + 1)),
            "train_loss": [1.0 / e for e in range(1, epochs + 1)],
            "val_acc": [best * e / epochs for e in range(1, epochs + 1)],
            "test_acc": [best * e / epochs for e in range(1, epochs + 1)],
            "lr": [0.01] * epochs,
        },
        "model": {"name": "qd_conv_student0", "params": 1000, "activation_params": 80, "bytes_fp32": 4000},
        "quantization": None,
        "lit": None,
        "timing": {"wall_s": 8.0, "train_s": 7.0, "epoch_s_mean": 2.3, "train_examples_per_s": 100.0, "sessions": []},
        "hardware": {"device": "cpu", "device_name": "cpu", "cuda_visible_devices": None, "threads": 2},
        "provenance": {"git_revision": "abc123", "packages": {"torch": "2.14.1"}, "command": ["python", "train.py"]},
    }


def make_quantized(method="qd", bits=2, bucket=256, seed=1, final=0.8, best=0.82, size_mb=0.0123, huffman=1.8, **rest):
    """A quantize record: a distill record plus its quantization section; pm (no training) has no curve."""
    record = make_record("quantize", seed=seed, final=final, best=final if method == "pm" else best, **rest)
    record["quantization"] = {
        "method": method,
        "bits": bits,
        "bucket_size": bucket,
        "quantized_params": 960,
        "full_precision_params": 40,
        "huffman_mean_bits": huffman,
        "size_reduction_factor": 32 / bits,
        "size_mb": size_mb,
        "packed_bytes": 12000,
        "compression": 9.5,
    }
    if method == "pm":
        record["curve"] = {key: [] for key in record["curve"]}
    return record


def quantize_experiment(**overrides):
    """One config.yaml quantize experiment: students in non-alphabetical order, buckets 256 before per-tensor."""
    return {
        "teacher": TEACHER,
        "students": ["conv-s1", "conv-s0"],
        "activations": ["relu"],
        "seeds": [1, 2],
        "methods": ["qd", "pm"],
        "bits": [2, 4],
        "buckets": [256, None],
        "references": ["distilled", "undistilled"],
    } | overrides


def quantize_records():
    """Members of quantize_experiment() in a shuffled order, then runs it must leave out."""
    members = [
        make_quantized("pm", seed=1, final=0.5, activation="relu"),
        make_quantized("qd", bucket=None, seed=1, final=0.7, size_mb=0.0111, activation="relu"),
        make_quantized("qd", seed=2, final=0.84, best=0.85, huffman=1.9, activation="relu"),
        make_record("distill", seed=1, final=0.88, best=0.89, activation="relu"),
        make_quantized("qd", bits=4, seed=1, final=0.86, size_mb=0.0234, activation="relu"),
        make_quantized("qd", seed=1, final=0.80, best=0.82, huffman=1.8, activation="relu"),
        make_record("undistilled", seed=1, final=0.85, best=0.86, activation="relu"),
        make_record("distill", seed=2, final=0.90, best=0.91, activation="relu"),
        make_quantized("pm", bits=4, seed=1, final=0.6, student="conv-s1", activation="relu"),
    ]
    outsiders = [
        make_quantized("dq", activation="relu"),  # method not asked for
        make_quantized("qd", bits=8, activation="relu"),
        make_quantized("qd", bucket=512, activation="relu"),
        make_quantized("qd", seed=3, activation="relu"),
        make_quantized("qd", activation="lma8"),
        make_quantized("qd", activation="relu", teacher="other-teacher"),
        make_quantized("qd", activation="relu", student="conv-s9"),
        make_record("distill", activation="relu", student="conv-s9"),
        make_record("teacher", activation="relu"),
    ]
    return members + outsiders


LIT_EXPERIMENT = {
    "dataset": "cifar10",
    "teacher": TEACHER,
    "student": "conv-s0",
    "activation": "relu",
    "seeds": [1, 2, 3],
    "baselines": ["kd", "scratch"],  # the table still puts scratch first
}


def with_model(record, name, params):
    return record | {"model": {"name": name, "params": params, "activation_params": 0, "bytes_fp32": 4 * params}}


def make_lit(seed=1, final=0.88, best=0.89, sections=3, phase1_epochs=2, **rest):
    """A LIT record: three epochs, the first two of phase 1, one MSE curve per section on each split."""
    record = make_record("lit", activation="relu", seed=seed, final=final, best=best, **rest)
    record["lit"] = {
        "phase1_epochs": phase1_epochs,
        "full_model_epochs": 3 - phase1_epochs,
        "beta": 0.75,
        "combine": "halved",
        "optimizer": "per_section",
        "sections": sections,
        "frozen_parameters": ["stem.0.weight", "head.weight"],
        "section_mse": [[0.4 / section, 0.2 / section] for section in range(1, sections + 1)],
        "section_test_mse": [[0.5 / section, 0.3 / section] for section in range(1, sections + 1)],
    }
    return with_model(record, "resnet20", 1000)


def lit_records():
    """The teacher, both baselines and the LIT runs of LIT_EXPERIMENT (LIT's seed 2 missing), shuffled, then
    runs it must leave out."""
    def student(kind, seed, final, **rest):
        return with_model(make_record(kind, activation="relu", seed=seed, final=final, best=final + 0.01, **rest),
                          "resnet20", 1000)

    members = [
        make_lit(seed=3, final=0.89, best=0.90),
        student("distill", 2, 0.86),
        with_model(make_record("teacher", activation="relu", final=0.93, best=0.94), "resnet56", 4270),
        student("undistilled", 1, 0.80),
        make_lit(seed=1, final=0.87, best=0.88),
        student("distill", 1, 0.84),
        student("undistilled", 2, 0.82),
        student("distill", 3, 0.85),
    ]
    other_dataset = make_lit(seed=1)
    other_dataset["labels"]["dataset"] = "cifar100"
    outsiders = [
        make_lit(seed=4),  # seed not asked for
        make_lit(seed=1, teacher="other-teacher"),
        make_lit(seed=1, student="conv-s1"),
        other_dataset,
        student("distill", 1, 0.5, student="conv-s1"),
        make_record("distill", activation="lma8", seed=1),
        make_record("teacher", activation="relu", teacher="other-teacher"),
        make_quantized(activation="relu"),
    ]
    return members + outsiders


def readme_records(activation, accuracies):
    return [make_record(activation=activation, seed=seed, best=best) for seed, best in enumerate(accuracies, start=1)]


def relu_records():
    return readme_records("relu", LMA_RELU_BEST)


# ----------------------------------------------------------------------------- summarize


def test_summarize_matches_hand_computed_statistics():
    summary = summarize(runs_table(relu_records()), by=["activation"])
    row = summary.iloc[0]
    assert list(summary.columns[:3]) == ["activation", "final_test_acc_n", "final_test_acc_mean"]
    assert row["best_test_acc_n"] == 5
    assert row["best_test_acc_mean"] == pytest.approx(0.88742, abs=1e-9)
    assert row["best_test_acc_std"] == pytest.approx(0.0025332, abs=1e-7)
    assert row["best_test_acc_min"] == 0.8835 and row["best_test_acc_max"] == 0.8898
    half_width = T_975_4 * 0.00253318 / math.sqrt(5)
    assert row["best_test_acc_ci95_low"] == pytest.approx(0.88742 - half_width, abs=1e-6)
    assert row["best_test_acc_ci95_high"] == pytest.approx(0.88742 + half_width, abs=1e-6)
    assert row["final_test_acc_std"] == pytest.approx(0.0)  # every final accuracy is 0.88


def test_summarize_single_run_has_no_spread_and_nan_bins_is_a_group():
    records = [make_record(activation="relu"), make_record(seed=1, best=0.8), make_record(seed=2, best=0.9)]
    summary = summarize(runs_table(records), by=["activation_family", "bins"])
    assert len(summary) == 2
    relu = summary[summary["activation_family"] == "relu"].iloc[0]
    assert pd.isna(relu["bins"])
    assert relu["best_test_acc_n"] == 1
    assert relu["best_test_acc_mean"] == 0.89
    assert all(pd.isna(relu[f"best_test_acc_{stat}"]) for stat in ("std", "ci95_low", "ci95_high"))
    lma = summary[summary["activation_family"] == "lma"].iloc[0]
    assert lma["bins"] == 8
    assert lma["best_test_acc_std"] == pytest.approx(math.sqrt(0.005))


def test_summarize_empty_frame_keeps_headers():
    summary = summarize(runs_table([]), by=["labels.dataset", "model.name"])
    assert summary.empty
    assert list(summary.columns[:4]) == ["labels.dataset", "model.name", "final_test_acc_n", "final_test_acc_mean"]


# ----------------------------------------------------------------------------- runs_table


def test_runs_table_flattens_everything_but_the_curve():
    records = [make_record(seed=2), make_record(kind="teacher", activation="relu"), make_record(seed=1)]
    frame = runs_table(records)
    assert list(frame.columns[: len(IDENTITY_COLUMNS)]) == list(IDENTITY_COLUMNS)
    assert not any(column.startswith("curve") for column in frame.columns)
    assert list(frame["kind"]) == ["distill", "distill", "teacher"]
    assert list(frame["seed"]) == [1, 2, 1]
    assert pd.isna(frame.loc[2, "labels.student"])
    assert frame.loc[0, "spec.kd.temperature"] == 2.0
    assert frame.loc[0, "metrics.best_test_acc"] == 0.89
    assert frame.loc[0, "provenance.packages.torch"] == "2.14.1"
    assert json.loads(frame.loc[0, "provenance.command"]) == ["python", "train.py"]
    assert json.loads(frame.loc[0, "spec.milestones"]) == [100, 150]


# ----------------------------------------------------------------------------- experiments and seed tables


def test_experiment_table_repeats_shared_runs_and_drops_outsiders():
    records = [
        make_record(activation="lma8", seed=1),  # in both experiments
        make_record(activation="relu", seed=1),
        make_record(activation="lma4", seed=2),
        make_record(activation="lma8", seed=3),  # seed 3 is only in the main experiment
        make_record(activation="swish", seed=1),  # no experiment asks for swish
        make_record(activation="relu", seed=1, teacher="other-teacher"),
        make_record(activation="relu", seed=1, student="conv-s9"),
        make_record(kind="teacher", activation="relu"),
    ]
    table = experiment_table(records, EXPERIMENTS)
    assert table.columns[0] == "experiment"
    pairs = list(zip(table["experiment"], table["activation"], table["seed"], strict=True))
    # config order of experiments and activations (relu before lma8), then seed
    assert pairs == [
        ("lma-cifar10", "relu", 1),
        ("lma-cifar10", "lma8", 1),
        ("lma-cifar10", "lma8", 3),
        ("lma-bins", "lma4", 2),
        ("lma-bins", "lma8", 1),
    ]


def test_seed_table_reproduces_lma_readme_rows():
    records = relu_records() + readme_records("aplu8", LMA_APLU8_BEST)
    records += [make_record(seed=1, best=0.9), make_record(seed=3, best=0.92)]
    table = seed_table(experiment_table(records, {"main": experiment(["relu", "aplu8", "lma8"], [1, 2, 3, 4, 5])}))
    keys = ["experiment", "labels.dataset", "labels.teacher", "labels.student", "activation", "best_epoch_chosen_on"]
    assert list(table.columns) == [*keys, "seed1", "seed2", "seed3", "seed4", "seed5", "mean", "std", "n",
                                   "ci95_low", "ci95_high"]
    relu, aplu, lma = table.iloc[0], table.iloc[1], table.iloc[2]
    assert round(aplu["mean"], 2) == 89.92 and round(aplu["std"], 2) == 0.21
    assert relu["activation"] == "relu" and relu["best_epoch_chosen_on"] == "test"  # TrainSpec's default
    assert [relu[f"seed{s}"] for s in range(1, 6)] == pytest.approx([88.64, 88.91, 88.35, 88.98, 88.83])
    assert round(relu["mean"], 2) == 88.74 and round(relu["std"], 2) == 0.25 and relu["n"] == 5
    half_width = T_975_4 * 0.253318 / math.sqrt(5)  # in percent, as the mean
    assert (relu["ci95_low"], relu["ci95_high"]) == pytest.approx((88.742 - half_width, 88.742 + half_width), abs=1e-4)
    assert lma["seed1"] == pytest.approx(90.0) and lma["seed3"] == pytest.approx(92.0)
    assert pd.isna(lma["seed2"]) and lma["n"] == 2
    assert lma["mean"] == pytest.approx(91.0) and lma["std"] == pytest.approx(math.sqrt(2))
    assert lma["ci95_high"] == pytest.approx(91.0 + T_975_1 * 1.0, abs=1e-4)  # t * sqrt(2) / sqrt(2)
    final = seed_table(experiment_table(records, {"main": experiment(["relu"], [1])}), "metrics.final_test_acc")
    assert "best_epoch_chosen_on" not in final.columns and pd.isna(final.loc[0, "ci95_low"])  # one seed: no interval


def test_seed_table_rejects_two_records_of_one_run():
    frame = experiment_table([make_record(), make_record()], EXPERIMENTS)
    with pytest.raises(ValueError, match="more than one record"):
        seed_table(frame)


# ----------------------------------------------------------------------------- quantize experiments

QUANTIZE_COLUMNS = [
    *("experiment", "labels.dataset", "labels.teacher", "labels.student", "activation", "method", "bits", "bucket",
      "best_epoch_chosen_on"),
    *(f"{metric}_{stat}" for metric in ("final_test_acc", "best_test_acc")
      for stat in ("n", "mean", "std", "min", "max", "ci95_low", "ci95_high")),
    *SIZE_COLUMNS,
]


def test_quantize_table_keeps_members_and_references_in_config_order():
    table = quantize_table(quantize_records(), {"qd": quantize_experiment()})
    rows = [
        (student, method, bits, None if pd.isna(bucket) else bucket, seed)
        for student, method, bits, bucket, seed in table[
            ["labels.student", "method", "bits", "bucket", "seed"]
        ].itertuples(index=False)
    ]
    # students as configured (s1 first); references first; bits descending; bucket 256 before per-tensor (0)
    assert rows == [
        ("conv-s1", "pm", 4, 256, 1),
        ("conv-s0", "fp-undistilled", 32, None, 1),
        ("conv-s0", "fp-distilled", 32, None, 1),
        ("conv-s0", "fp-distilled", 32, None, 2),
        ("conv-s0", "qd", 4, 256, 1),
        ("conv-s0", "qd", 2, 256, 1),
        ("conv-s0", "qd", 2, 256, 2),
        ("conv-s0", "qd", 2, 0, 1),
        ("conv-s0", "pm", 2, 256, 1),
    ]
    assert set(table["experiment"]) == {"qd"} and table.columns[0] == "experiment"


def test_quantize_experiment_references_are_optional():
    only_distilled = quantize_table(quantize_records(), {"qd": quantize_experiment(references=["distilled"])})
    assert "fp-undistilled" not in set(only_distilled["method"]) and "fp-distilled" in set(only_distilled["method"])
    none = quantize_table(quantize_records(), {"qd": quantize_experiment(references=[], methods=["pm"], bits=[2])})
    assert none["method"].tolist() == ["pm"] and none["labels.student"].tolist() == ["conv-s0"]


def test_quantize_summary_matches_hand_computed_statistics():
    summary = quantize_summary(quantize_records(), {"qd": quantize_experiment()})
    assert list(summary.columns) == QUANTIZE_COLUMNS
    assert summary["method"].tolist() == ["pm", "fp-undistilled", "fp-distilled", "qd", "qd", "qd", "pm"]
    qd = summary.iloc[4]  # qd, 2 bits, buckets of 256, seeds 1 and 2
    assert (qd["bits"], qd["bucket"], qd["final_test_acc_n"]) == (2, 256, 2)
    assert qd["final_test_acc_mean"] == pytest.approx(0.82)
    assert qd["final_test_acc_std"] == pytest.approx(0.02 * math.sqrt(2))  # |0.80 - 0.84| / sqrt(2)
    assert qd["final_test_acc_ci95_low"] == pytest.approx(0.82 - T_975_1 * 0.02, abs=1e-6)  # t * std / sqrt(2)
    assert qd["best_test_acc_mean"] == pytest.approx(0.835)
    assert qd["best_test_acc_std"] == pytest.approx(0.015 * math.sqrt(2))
    assert (qd["size_mb"], qd["packed_bytes"], qd["fp32_over_packed"]) == (0.0123, 12000, 9.5)
    assert qd["huffman_mean_bits"] == pytest.approx(1.85)  # mean of 1.8 and 1.9
    per_tensor = summary.iloc[5]
    assert (per_tensor["bits"], per_tensor["bucket"], per_tensor["size_mb"]) == (2, 0, 0.0111)
    distilled = summary.iloc[2]  # full precision: 1000 parameters of 4 bytes
    assert (distilled["bits"], distilled["size_mb"], distilled["packed_bytes"], distilled["fp32_over_packed"]) == (
        32, 0.004, 4000, 1.0
    )
    assert pd.isna(distilled["bucket"]) and pd.isna(distilled["huffman_mean_bits"])
    assert distilled["final_test_acc_mean"] == pytest.approx(0.89) and distilled["final_test_acc_n"] == 2
    pm = summary.iloc[6]  # one post-training run: no spread, final and best alike
    assert pm["final_test_acc_mean"] == pm["best_test_acc_mean"] == 0.5 and pd.isna(pm["final_test_acc_std"])


def test_pareto_quantize_lists_the_front_of_accuracy_against_the_packed_file(tmp_path):
    records = quantize_records()
    for record in records:  # the 2-bit QD runs' files made smaller than the float32 state (4000 bytes)
        quantization = record.get("quantization") or {}
        if (quantization.get("method"), quantization.get("bits"), quantization.get("bucket_size")) == ("qd", 2, 256):
            quantization["packed_bytes"] = 1500
        elif (quantization.get("method"), quantization.get("bucket_size")) == ("qd", None):
            quantization["packed_bytes"] = 1000
    write_tables(records, {"quantize": {"qd": quantize_experiment()}}, tmp_path)
    front = pd.read_csv(tmp_path / "pareto-quantize.csv")
    # 0.0010 MB at 70 %, 0.0015 MB at 82 %, 0.0040 MB at 89 % (fp-distilled); the rest are beaten (pm 4-bit on
    # conv-s1 at 0.012 MB and 60 %, fp-undistilled at 0.004 MB and 85 %, qd 4-bit at 0.012 MB and 86 %)
    assert front[["method", "bits", "bucket", "packed_mb"]].fillna(-1).values.tolist() == [
        ["qd", 2, 0, 0.001], ["qd", 2, 256, 0.0015], ["fp-distilled", 32, -1, 0.004]]
    assert front["final_test_acc_mean"].round(4).tolist() == [0.7, 0.82, 0.89]
    markdown = (tmp_path / "pareto-quantize.md").read_text(encoding="utf-8")
    row = "| cifar10 | conv-teacher | conv-s0 | relu | {} |"
    assert "| packed (MB) | final epoch (%) | 95% CI | n |" in markdown
    assert row.format("qd | 2 | 256 | 0.00150 | 82.00 ± 2.83 | [56.59, 107.41] | 2") in markdown
    assert row.format("fp-distilled | 32 | — | 0.00400 | 89.00 ± 1.41 | [76.29, 101.71] | 2") in markdown
    assert row.format("qd | 2 | 0 | 0.00100 | 70.00 ± — | — | 1") in markdown  # one seed: no interval
    write_tables([], {"quantize": {"qd": quantize_experiment()}}, tmp_path)
    assert pd.read_csv(tmp_path / "pareto-quantize.csv").empty
    assert "no finished runs" in (tmp_path / "pareto-quantize.md").read_text(encoding="utf-8")


def test_summary_quantize_files(tmp_path):
    experiments = {"quantize": {"qd": quantize_experiment(), "empty": quantize_experiment(teacher="nobody")}}
    write_tables(quantize_records(), experiments, tmp_path)
    csv = pd.read_csv(tmp_path / "summary-quantize.csv")
    assert list(csv.columns) == QUANTIZE_COLUMNS and len(csv) == 7
    assert csv["bucket"].isna().tolist() == [False, True, True, False, False, False, False]  # NaN: full precision
    assert csv.loc[5, "bucket"] == 0 and csv.loc[5, "method"] == "qd"  # 0: one bucket per tensor
    markdown = (tmp_path / "summary-quantize.md").read_text(encoding="utf-8")
    expected = [
        "## qd: students of `conv-teacher`",
        "\n".join([
            "| dataset | student | activation | method | bits | bucket | final epoch (%) | 95% CI "
            "| best epoch by test (%, optimistic) | 95% CI | n | size (MB) | fp32 ÷ packed file |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            "| cifar10 | conv-s1 | relu | pm | 4 | 256 | 60.00 ± — | — | 60.00 ± — | — | 1 | 0.0123 | 9.50 |",
        ]),
        # 82 ± t(0.975, 1) · 2.83 / √2 = 82 ± 25.41; 83.5 ± 12.71 · 2.12 / √2 = 83.5 ± 19.06
        "| cifar10 | conv-s0 | relu | fp-distilled | 32 | — | 89.00 ± 1.41 | [76.29, 101.71] | 90.00 ± 1.41 "
        "| [77.29, 102.71] | 2 | 0.00400 | 1.00 |",
        "| cifar10 | conv-s0 | relu | qd | 2 | 256 | 82.00 ± 2.83 | [56.59, 107.41] | 83.50 ± 2.12 | [64.44, 102.56] "
        "| 2 | 0.0123 | 9.50 |",
        "| cifar10 | conv-s0 | relu | qd | 2 | 0 | 70.00 ± — | — | 82.00 ± — | — | 1 | 0.0111 | 9.50 |",
        "| cifar10 | conv-s0 | relu | pm | 2 | 256 | 50.00 ± — | — | 50.00 ± — | — | 1 | 0.0123 | 9.50 |",
        "## empty: students of `nobody`\n\nno finished runs",
    ]
    for text in expected:
        assert text in markdown
    assert markdown.count("| cifar10 |") == 7
    assert "best epoch by val → test" not in markdown.split("\n\n", 2)[2]  # no run held out its validation


# ----------------------------------------------------------------------------- LIT experiments


def test_lit_table_rows_go_teacher_baselines_lit_then_seed():
    table = lit_table(lit_records(), {"lit-c10": LIT_EXPERIMENT})
    rows = list(zip(table["method"], table["kind"], table["seed"], table["model.name"], strict=True))
    assert rows == [
        ("teacher", "teacher", 1, "resnet56"),
        ("scratch", "undistilled", 1, "resnet20"),
        ("scratch", "undistilled", 2, "resnet20"),
        ("kd", "distill", 1, "resnet20"),
        ("kd", "distill", 2, "resnet20"),
        ("kd", "distill", 3, "resnet20"),
        ("lit", "lit", 1, "resnet20"),
        ("lit", "lit", 3, "resnet20"),
    ]
    assert set(table["experiment"]) == {"lit-c10"} and set(table["labels.student"]) == {"conv-s0"}
    assert table.loc[6, "lit.phase1_epochs"] == 2
    only_kd = lit_table(lit_records(), {"kd-only": LIT_EXPERIMENT | {"baselines": ["kd"]}})
    assert only_kd["method"].drop_duplicates().tolist() == ["teacher", "kd", "lit"]


def test_lit_summary_statistics_and_parameter_ratio():
    summary = lit_summary(lit_records(), {"lit-c10": LIT_EXPERIMENT})
    assert summary.columns[:7].tolist() == [
        "experiment", "labels.dataset", "labels.teacher", "labels.student", "method", "model.name",
        "best_epoch_chosen_on",
    ]
    assert summary.columns[-2:].tolist() == ["model.params", "teacher_over_student_params"]
    assert summary["method"].tolist() == ["teacher", "scratch", "kd", "lit"]
    assert summary["final_test_acc_n"].tolist() == [1, 2, 3, 2]  # LIT's seed 2 is missing
    assert summary["final_test_acc_mean"].tolist() == pytest.approx([0.93, 0.81, 0.85, 0.88])
    assert pd.isna(summary.loc[0, "final_test_acc_std"])
    pair_std = 0.01 * math.sqrt(2)  # two values 0.02 apart
    assert summary["final_test_acc_std"].iloc[1:].tolist() == pytest.approx([pair_std, 0.01, pair_std])
    assert summary["best_test_acc_mean"].tolist() == pytest.approx([0.94, 0.82, 0.86, 0.89])
    assert summary.loc[3, "final_test_acc_max"] == 0.89
    assert summary["model.params"].tolist() == [4270, 1000, 1000, 1000]
    assert summary["teacher_over_student_params"].tolist() == pytest.approx([1.0, 4.27, 4.27, 4.27])


def test_lit_summary_without_the_teacher_has_no_parameter_ratio():
    records = [record for record in lit_records() if record["kind"] != "teacher"]
    summary = lit_summary(records, {"lit-c10": LIT_EXPERIMENT})
    assert summary["method"].tolist() == ["scratch", "kd", "lit"]
    assert summary["teacher_over_student_params"].isna().all()


def test_summary_lit_files(tmp_path):
    experiments = {"lit": {"lit-c10": LIT_EXPERIMENT, "empty": LIT_EXPERIMENT | {"teacher": "nobody"}}}
    write_tables(lit_records(), experiments, tmp_path)
    csv = pd.read_csv(tmp_path / "summary-lit.csv")
    assert csv["method"].tolist() == ["teacher", "scratch", "kd", "lit"]
    assert csv["teacher_over_student_params"].tolist() == pytest.approx([1.0, 4.27, 4.27, 4.27])
    markdown = (tmp_path / "summary-lit.md").read_text(encoding="utf-8")
    expected = "\n".join([
        "## lit-c10: `conv-s0` from `conv-teacher` on `cifar10`",
        "",
        "| method | model | params | teacher ÷ student params | final epoch (%) | 95% CI "
        "| best epoch by test (%, optimistic) | 95% CI | n |",
        "|---|---|---|---|---|---|---|---|---|",
        "| teacher | resnet56 | 4,270 | 1.00 | 93.00 ± — | — | 94.00 ± — | — | 1 |",
        "| scratch | resnet20 | 1,000 | 4.27 | 81.00 ± 1.41 | [68.29, 93.71] | 82.00 ± 1.41 | [69.29, 94.71] | 2 |",
        "| kd | resnet20 | 1,000 | 4.27 | 85.00 ± 1.00 | [82.52, 87.48] | 86.00 ± 1.00 | [83.52, 88.48] | 3 |",
        "| lit | resnet20 | 1,000 | 4.27 | 88.00 ± 1.41 | [75.29, 100.71] | 89.00 ± 1.41 | [76.29, 101.71] | 2 |",
        "",
        "LIT's gain in final test accuracy: +7.00 pp over scratch, +3.00 pp over kd",
        "",
        "## empty: `conv-s0` from `nobody` on `cifar10`",
        "",
        "no finished runs",
    ])
    assert expected in markdown


def test_best_epoch_columns_say_what_chose_the_epoch(tmp_path):
    """A teacher validated on a held-out split: its best epoch stands under "best epoch by val → test", the
    students' (validated on the test set) under the optimistic column; each row has — under the other."""
    records = lit_records()
    for record in records:
        if record["kind"] == "teacher":
            record["spec"]["validation"] = "holdout"
    write_tables(records, {"lit": {"lit-c10": LIT_EXPERIMENT}}, tmp_path)
    csv = pd.read_csv(tmp_path / "summary-lit.csv")
    assert csv["best_epoch_chosen_on"].tolist() == ["holdout", "test", "test", "test"]
    kd = csv.iloc[2]  # 86 ± t(0.975, 2) · 1.00 / √3
    assert 100 * kd["best_test_acc_ci95_low"] == pytest.approx(86 - T_975_2 / math.sqrt(3), abs=1e-4)
    markdown = (tmp_path / "summary-lit.md").read_text(encoding="utf-8")
    assert "\n".join([
        "| method | model | params | teacher ÷ student params | final epoch (%) | 95% CI "
        "| best epoch by test (%, optimistic) | 95% CI | best epoch by val → test (%) | 95% CI | n |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        "| teacher | resnet56 | 4,270 | 1.00 | 93.00 ± — | — | — | — | 94.00 ± — | — | 1 |",
        "| scratch | resnet20 | 1,000 | 4.27 | 81.00 ± 1.41 | [68.29, 93.71] | 82.00 ± 1.41 | [69.29, 94.71] | — | — "
        "| 2 |",
    ]) in markdown
    for record in records:
        record["spec"]["validation"] = "holdout"
    write_tables(records, {"distill": {"main": experiment(["relu"], [1, 2])}}, tmp_path)
    seeds = (tmp_path / "seeds-distill.md").read_text(encoding="utf-8")
    assert "## best epoch by val → test (%): `metrics.best_test_acc`" in seeds and "## best epoch by test" not in seeds
    assert pd.read_csv(tmp_path / "seeds-distill-best.csv")["best_epoch_chosen_on"].tolist() == ["holdout"]


def test_lit_gain_is_a_dash_without_lit_runs(tmp_path):
    records = [record for record in lit_records() if record["kind"] != "lit"]
    write_tables(records, {"lit": {"lit-c10": LIT_EXPERIMENT | {"baselines": ["scratch"]}}}, tmp_path)
    markdown = (tmp_path / "summary-lit.md").read_text(encoding="utf-8")
    assert "LIT's gain in final test accuracy: — pp over scratch\n" in markdown
    assert "| kd |" not in markdown


@pytest.mark.parametrize("experiments", [{}, {"distill": {}, "quantize": {}, "lit": {}}, {"distill": EXPERIMENTS}])
def test_configs_without_lit_write_an_empty_lit_summary(tmp_path, experiments):
    written = write_tables(lit_records(), experiments, tmp_path)
    assert written == table_paths(tmp_path)
    lit = pd.read_csv(tmp_path / "summary-lit.csv")
    assert lit.empty and {"method", "final_test_acc_mean", "teacher_over_student_params"} <= set(lit.columns)
    assert "## " not in (tmp_path / "summary-lit.md").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- ESNAC experiments

# ESNAC's README (seeds.md §3.9, CIFAR-100, seed 127): the best architecture of VGG-19 and ResNet-18 after full
# training, against stat.py's teacher accuracies (full 50 K training) and the teachers' sizes the table implies
VGG19_PARAMS, RESNET18_PARAMS = 20_070_000, 11_210_000
VGG19_TEACHER_ACC, RESNET18_TEACHER_ACC = 0.7371, 0.7868


def architecture(rank, compression, teacher_params, index, val_acc=0.6, teacher_val_acc=0.7):
    """A search record's ``top`` entry whose reward is ESNAC's f(x) on the search's held-out split."""
    return {
        "rank": rank, "file": f"arch-{rank}.pt", "index": index, "step": index // 8, "slot": index % 8,
        "params": round((1 - compression) * teacher_params), "compression": compression,
        "times": 1 / (1 - compression), "val_acc": val_acc,
        "reward": compression * (2 - compression) * val_acc / teacher_val_acc,
    }


def make_search(teacher="vgg19", strategy="esnac", seed=127, top=(), dataset="cifar100", teacher_params=VGG19_PARAMS,
                candidates=16):
    """An esnac_search record.json as the search writes it; its curve's rewards end at the best top reward."""
    rewards = [0.1 * (i % 5) for i in range(candidates - 1)] + [max((t["reward"] for t in top), default=0.0)]
    best = [max(rewards[: i + 1]) for i in range(candidates)]
    return {
        "format": 1, "kind": "esnac_search",
        "run_dir": f"results/esnac/{dataset}/{teacher}/{strategy}/seed{seed}",
        "labels": {"dataset": dataset, "teacher": teacher, "strategy": strategy},
        "seed": seed, "strategy": strategy, "spec": {"steps": 2, "top_k": len(top)}, "spec_hash": "hash-search",
        "teacher": {"name": teacher, "params": teacher_params, "val_acc": 0.7, "layers": 20, "groups": [64],
                    "removable": 10, "skip_candidates": 30},
        "candidates": candidates, "best_reward": max(rewards), "top": list(top),
        "curve": {"index": list(range(candidates)), "reward": rewards, "best_reward": best},
        "timing": {"wall_s": 10.0, "train_s": 9.0, "sessions": []},
        "hardware": {"device": "cpu"}, "provenance": {"git_revision": "abc123"},
    }


def make_final(teacher="vgg19", strategy="esnac", search_seed=127, rank=0, final=0.7, dataset="cifar100", params=1000):
    """The full training of a search's rank-``rank`` architecture: an ordinary training record of kind esnac."""
    record = make_record("esnac", activation="relu", seed=1, final=final, best=final + 0.01, teacher=teacher)
    record["labels"] = {"dataset": dataset, "teacher": teacher, "strategy": strategy, "search_seed": search_seed,
                        "rank": rank}
    record["run_dir"] = f"results/esnac/{dataset}/{teacher}/{strategy}/seed{search_seed}/final-{rank}"
    return with_model(record, "esnac_net", params)


def make_teacher(name, accuracy, dataset="cifar100"):
    record = make_record("teacher", activation="relu", final=accuracy, best=accuracy, teacher=name)
    record["labels"]["dataset"] = dataset
    return record


ESNAC_EXPERIMENT = {
    "teachers": {"vgg19": {"dataset": "cifar100", "reference": "vgg19-full"},
                 "resnet18": {"dataset": "cifar100", "reference": "resnet18"}},  # its own record is the reference
    "strategies": ["esnac", "random"],
    "seeds": [127, 128],
    "top_k": 2,
}


def esnac_records():
    """The README's VGG-19 and ResNet-18 searches (seed 127) with a runner-up each, a random search of VGG-19,
    their full trainings (ResNet-18's runner-up unfinished), the reference teachers, then records to leave out."""
    vgg = [architecture(0, 0.8470, VGG19_PARAMS, index=13), architecture(1, 0.8000, VGG19_PARAMS, index=4),
           architecture(2, 0.9000, VGG19_PARAMS, index=7, val_acc=0.3)]  # rank 2 is past top_k
    resnet = [architecture(0, 0.8876, RESNET18_PARAMS, index=9), architecture(1, 0.8500, RESNET18_PARAMS, index=2)]
    random = [architecture(0, 0.7000, VGG19_PARAMS, index=3)]
    members = [
        make_final("resnet18", rank=0, final=0.7191),
        make_search("vgg19", top=vgg),
        make_final("vgg19", rank=1, final=0.7000),
        make_teacher("resnet18", RESNET18_TEACHER_ACC),
        make_search("resnet18", top=resnet, teacher_params=RESNET18_PARAMS),
        make_final("vgg19", rank=0, final=0.7164),
        make_teacher("vgg19-full", VGG19_TEACHER_ACC),
        make_search("vgg19", strategy="random", top=random, candidates=12),
        make_final("vgg19", strategy="random", rank=0, final=0.69),
    ]
    outsiders = [
        make_final("vgg19", rank=2, final=0.9),  # rank 2 is past top_k
        make_teacher("vgg19", 0.70),  # the searched teacher, not vgg19's reference
        make_teacher("vgg19-full", 0.5, dataset="cifar10"),
        make_search("vgg19", seed=3, top=vgg),  # seed not asked for
        make_search("vgg19", strategy="evolution", top=vgg),
        make_search("vgg19", dataset="cifar10", top=vgg),
        make_final("vgg19", search_seed=3, final=0.9),
        make_search("resnet34", top=vgg),
        make_record("distill", activation="relu"),
    ]
    return members + outsiders


def test_esnac_table_reproduces_esnac_readme_rows():
    table = esnac_tables(esnac_records(), {"esnac-c100": ESNAC_EXPERIMENT})[0]
    assert table.columns.tolist() == ESNAC_COLUMNS
    rows = list(zip(table["teacher"], table["strategy"], table["seed"], table["rank"], table["index"], strict=True))
    assert rows == [("vgg19", "esnac", 127, 0, 13), ("vgg19", "esnac", 127, 1, 4), ("vgg19", "random", 127, 0, 3),
                    ("resnet18", "esnac", 127, 0, 9), ("resnet18", "esnac", 127, 1, 2)]
    assert set(table["experiment"]) == {"esnac-c100"} and set(table["dataset"]) == {"cifar100"}
    vgg, resnet = table.iloc[0], table.iloc[3]
    assert vgg["f_after"] == pytest.approx(0.8470 * (2 - 0.8470) * 0.7164 / 0.7371, abs=1e-12)
    assert vgg["f_after"] == pytest.approx(0.9492, abs=1e-4)  # the README's VGG-19 row
    assert (vgg["ratio"], vgg["acc_after"], vgg["teacher_acc"], vgg["teacher_params"]) == (
        0.8470, 0.7164, 0.7371, VGG19_PARAMS)
    assert vgg["params"] == 3_070_710 and vgg["times"] == pytest.approx(6.54, abs=5e-3)
    assert resnet["f_after"] == pytest.approx(0.9024, abs=1e-4)  # the README's ResNet-18 row
    assert (resnet["ratio"], resnet["teacher_acc"]) == (0.8876, 0.7868)
    assert resnet["params"] / 1e6 == pytest.approx(1.26, abs=5e-3) and resnet["times"] == pytest.approx(8.90, abs=5e-3)
    assert vgg["acc_before"] == 0.6 and vgg["f_before"] == pytest.approx(0.8470 * 1.153 * 0.6 / 0.7)
    assert table["best"].tolist() == [True, False, True, True, False]


def test_esnac_table_keeps_an_unfinished_full_training_and_marks_the_best_by_f_after():
    records = esnac_records()
    table = esnac_tables(records, {"e": ESNAC_EXPERIMENT})[0]
    unfinished = table.iloc[4]  # ResNet-18's rank 1 has no final record
    assert unfinished["rank"] == 1 and math.isnan(unfinished["acc_after"]) and math.isnan(unfinished["f_after"])
    assert not unfinished["best"] and unfinished["f_before"] == pytest.approx(0.85 * 1.15 * 0.6 / 0.7)
    runner_up = next(r for r in records if r["kind"] == "esnac" and r["labels"]["teacher"] == "vgg19"
                     and r["labels"]["rank"] == 1 and r["labels"]["strategy"] == "esnac")
    # the saved model's accuracy: 0.8 * 1.2 * 0.80 / 0.7371 = 1.0419 beats rank 0's 0.9492
    runner_up["metrics"]["selected_test_acc"] = 0.80
    table = esnac_tables(records, {"e": ESNAC_EXPERIMENT})[0]
    assert table["best"].tolist() == [False, True, True, True, False]
    no_finals = [r for r in records if r["kind"] != "esnac"]
    table = esnac_tables(no_finals, {"e": ESNAC_EXPERIMENT})[0]
    assert len(table) == 5 and table["acc_after"].isna().all() and not table["best"].any()


def test_esnac_teacher_accuracy_is_read_from_the_reference_record():
    records = esnac_records()
    reference = next(r for r in records if r["kind"] == "teacher" and r["labels"]["teacher"] == "vgg19-full")
    reference["metrics"]["final_test_acc"] = 0.7164  # the architecture now matches its teacher
    vgg = esnac_tables(records, {"e": ESNAC_EXPERIMENT})[0].iloc[0]
    assert vgg["teacher_acc"] == 0.7164 and vgg["f_after"] == pytest.approx(0.8470 * (2 - 0.8470))
    without = [r for r in records if r is not reference]
    table = esnac_tables(without, {"e": ESNAC_EXPERIMENT})[0]
    vgg_rows = table[table["teacher"] == "vgg19"]
    assert len(vgg_rows) == 3 and vgg_rows["teacher_acc"].isna().all() and vgg_rows["f_after"].isna().all()
    assert vgg_rows["acc_after"].tolist() == [0.7164, 0.7, 0.69] and not vgg_rows["best"].any()
    assert table[table["teacher"] == "resnet18"]["f_after"].iloc[0] == pytest.approx(0.9024, abs=1e-4)


def test_esnac_table_repeats_a_shared_search_and_refuses_duplicates():
    experiments = {"both": ESNAC_EXPERIMENT, "vgg-only": ESNAC_EXPERIMENT | {
        "teachers": {"vgg19": ESNAC_EXPERIMENT["teachers"]["vgg19"]}, "strategies": ["esnac"], "top_k": 1}}
    table = esnac_tables(esnac_records(), experiments)[0]
    assert table["experiment"].tolist() == ["both"] * 5 + ["vgg-only"]
    assert table.iloc[5]["f_after"] == pytest.approx(0.9492, abs=1e-4) and table.iloc[5]["best"]
    twice = esnac_records() + [make_search("vgg19", top=[])]
    with pytest.raises(ValueError, match=r"more than one record for the search of 'vgg19' on 'cifar100', esnac, "
                                         r"seed 127: \['results/esnac/cifar100/vgg19/esnac/seed127'"):
        esnac_tables(twice, experiments)[0]
    empty = esnac_tables([], experiments)[0]
    assert empty.empty and empty.columns.tolist() == ESNAC_COLUMNS


def test_esnac_searches_one_row_per_search():
    searches = esnac_tables(esnac_records(), {"e": ESNAC_EXPERIMENT})[1]
    assert searches.columns.tolist() == ESNAC_SEARCH_COLUMNS
    assert list(zip(searches["teacher"], searches["strategy"], searches["candidates"], strict=True)) == [
        ("vgg19", "esnac", 16), ("vgg19", "random", 12), ("resnet18", "esnac", 16)]
    assert searches["best_reward"].tolist() == pytest.approx([0.8470 * 1.153 * 0.6 / 0.7, 0.7 * 1.3 * 0.6 / 0.7,
                                                              0.8876 * 1.1124 * 0.6 / 0.7])
    assert searches.loc[0, "best_f_after"] == pytest.approx(0.9492, abs=1e-4)


def test_in_esnac_experiment():
    records = esnac_records()
    members = [r for r in records if in_esnac_experiment(r, ESNAC_EXPERIMENT)]
    assert [id(member) for member in members] == [id(record) for record in records[:9]]  # every member, no outsider


def test_summary_esnac_files(tmp_path):
    experiments = {"esnac": {"esnac-c100": ESNAC_EXPERIMENT,
                             "empty": ESNAC_EXPERIMENT | {"teachers": {"shufflenet": {"dataset": "cifar100",
                                                                                       "reference": "shufflenet"}}}}}
    written = write_tables(esnac_records(), experiments, tmp_path)
    assert written == table_paths(tmp_path)
    csv = pd.read_csv(tmp_path / "summary-esnac.csv")
    assert csv.columns.tolist() == ESNAC_COLUMNS and len(csv) == 5
    assert csv["best"].tolist() == [True, False, True, True, False] and csv["acc_after"].isna().tolist()[-1]
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert "esnac_search" not in set(runs["kind"])  # searches are no training runs
    esnac_runs = pd.read_csv(tmp_path / "runs-esnac.csv")
    assert (runs["kind"] == "esnac").sum() == len(esnac_runs) == 6 and "labels.search_seed" in esnac_runs.columns
    markdown = (tmp_path / "summary-esnac.md").read_text(encoding="utf-8")
    vgg_section = "\n".join([
        "### `vgg19` on `cifar100`",
        "",
        "Teacher: 20,070,000 parameters; reference teacher `vgg19-full`: final test accuracy 73.71%.",
        "",
        "Strategies compared (per search its best architecture; mean ± std over searches):",
        "",
        "| strategy | searches | fully trained | best f(x) after full training | best f(x) in search | candidates |",
        "|---|---|---|---|---|---|",
        "| esnac | 1 | 1 | 0.9492 ± — | 0.8371 ± — | 16 |",
        "| random | 1 | 1 | 0.8519 ± — | 0.7800 ± — | 12 |",
        "",
        "Best fully trained architecture of each strategy over its searches:",
        "",
        "| strategy | seed | Index | Acc (%) | #Params | Ratio | Times | f(x) |",
        "|---|---|---|---|---|---|---|---|",
        "| esnac | 127 | 0 | 71.64 | 3,070,710 | 0.8470 | 6.54× | 0.9492 |",
        "| random | 127 | 0 | 69.00 | 6,021,000 | 0.7000 | 3.33× | 0.8519 |",
        "",
        "#### `esnac`, seed 127",
        "",
        "| Index | Candidate | #Params | Ratio | Times | Acc before (%) | Acc after (%) | f(x) before "
        "| f(x) after |",
        "|---|---|---|---|---|---|---|---|---|",
        "| 0 ★ | 13 | 3,070,710 | 0.8470 | 6.54× | 60.00 | 71.64 | 0.8371 | 0.9492 |",
        "| 1 | 4 | 4,014,000 | 0.8000 | 5.00× | 60.00 | 70.00 | 0.8229 | 0.9117 |",
        "",
        "Best: Index 0 (candidate 13), f(x) after full training 0.9492.",
    ])
    assert vgg_section in markdown
    assert "| 0 ★ | 9 | 1,260,004 | 0.8876 | 8.90× | 60.00 | 71.91 | 0.8463 | 0.9024 |" in markdown
    assert "| 1 | 2 | 1,681,500 | 0.8500 | 6.67× | 60.00 | — | 0.8379 | — |" in markdown
    assert "## empty\n\n### `shufflenet` on `cifar100`\n\nno finished runs" in markdown


def test_summary_esnac_without_finished_full_training(tmp_path):
    records = [r for r in esnac_records() if r["kind"] in ("esnac_search", "teacher")]
    write_tables(records, {"esnac": {"e": ESNAC_EXPERIMENT}}, tmp_path)
    markdown = (tmp_path / "summary-esnac.md").read_text(encoding="utf-8")
    assert "| esnac | 1 | 0 | — | 0.8371 ± — | 16 |" in markdown
    assert "Best fully trained" not in markdown and "Best: — (no architecture fully trained yet)." in markdown


def test_summary_esnac_prints_a_small_network_s_parameters_exactly(tmp_path):
    # the demo's search: a 3,982-parameter architecture of a 78,002-parameter teacher
    top = [architecture(0, 1 - 3_982 / 78_002, 78_002, index=5)]
    records = [make_search("small", top=top, dataset="synthetic", teacher_params=78_002),
               make_final("small", rank=0, final=0.438, dataset="synthetic", params=3_982),
               make_teacher("small", 0.771, dataset="synthetic")]
    experiment = {"teachers": {"small": {"dataset": "synthetic", "reference": "small"}}, "strategies": ["esnac"],
                  "seeds": [127], "top_k": 1}
    write_tables(records, {"esnac": {"e": experiment}}, tmp_path)
    markdown = (tmp_path / "summary-esnac.md").read_text(encoding="utf-8")
    assert "Teacher: 78,002 parameters; reference teacher `small`" in markdown
    assert "| esnac | 127 | 0 | 43.80 | 3,982 | 0.9490 | 19.59× |" in markdown
    assert "| 0 ★ | 5 | 3,982 | 0.9490 | 19.59× | 60.00 | 43.80 |" in markdown
    csv = pd.read_csv(tmp_path / "summary-esnac.csv")  # exact integers
    assert csv[["params", "teacher_params"]].values.tolist() == [[3_982, 78_002]] and csv["params"].dtype == "int64"


@pytest.mark.parametrize("experiments", [{}, {"distill": {}, "quantize": {}, "lit": {}, "esnac": {}},
                                         {"lit": {"l": LIT_EXPERIMENT}}])
def test_configs_without_esnac_write_an_empty_esnac_summary(tmp_path, experiments):
    # esnac_records' outsider distill run is LIT's kd run of seed 1 a second time: one run folder has one record
    records = [record for record in esnac_records() if record["kind"] != "distill"] + lit_records()
    written = write_tables(records, experiments, tmp_path)
    assert written == table_paths(tmp_path)
    esnac = pd.read_csv(tmp_path / "summary-esnac.csv")
    assert esnac.empty and esnac.columns.tolist() == ESNAC_COLUMNS
    assert "## " not in (tmp_path / "summary-esnac.md").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- writing and reading


def test_write_tables_writes_exactly_table_paths(tmp_path):
    records = relu_records() + [make_record(kind="teacher", activation="relu", seed=s) for s in (1, 2)]
    experiments = {"distill": {"main": experiment(["relu"], [1, 2, 3, 4, 5])}}
    written = write_tables(records, experiments, tmp_path / "tables")
    assert written == table_paths(tmp_path / "tables")
    assert [p.name for p in written[-22:]] == [
        "paired-distill.csv", "paired-distill.md",
        "summary-quantize.csv", "summary-quantize.md", "paired-quantize.csv", "paired-quantize.md",
        "pareto-quantize.csv", "pareto-quantize.md",
        "summary-lit.csv", "summary-lit.md", "paired-lit.csv", "paired-lit.md",
        "summary-esnac.csv", "summary-esnac.md", "paired-esnac.csv", "paired-esnac.md",
        "summary-translation.csv", "summary-translation.md", "paired-translation.csv", "paired-translation.md",
        "pareto-translation.csv", "pareto-translation.md",
    ]
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == sorted(p.name for p in written)  # no temp files
    tables = tmp_path / "tables"
    runs, teachers, distill, best, final = (pd.read_csv(tables / name) for name in (
        "runs.csv", "summary-teachers.csv", "summary-distill.csv", "seeds-distill-best.csv", "seeds-distill-final.csv"))
    assert len(runs) == 7 and len(pd.read_csv(tables / "runs-distill.csv")) == 5
    teacher_rows = teachers[["labels.teacher", "model.name", "best_test_acc_n"]].values.tolist()
    assert teacher_rows == [["conv-teacher", "qd_conv_student0", 2]]
    assert distill["best_test_acc_n"].tolist() == [5] and distill["experiment"].tolist() == ["main"]
    for summary, method in ((teachers, "fp-teacher"), (distill, "fp-distilled")):  # 1000 parameters of 4 bytes
        row = summary.iloc[0]
        assert (row["method"], row["bits"], row["size_mb"], row["packed_bytes"], row["fp32_over_packed"]) == (
            method, 32, 0.004, 4000, 1.0
        )
        assert pd.isna(row["bucket"]) and pd.isna(row["huffman_mean_bits"])
        assert list(summary.columns[-len(SIZE_COLUMNS) :]) == list(SIZE_COLUMNS)
    assert best["mean"].round(2).tolist() == [88.74] and final["mean"].tolist() == [88.0]
    markdown = (tables / "seeds-distill.md").read_text(encoding="utf-8")
    assert "| relu | 88.64 | 88.91 | 88.35 | 88.98 | 88.83 | 88.74 ± 0.25 | [88.43, 89.06] | 5 |" in markdown
    assert "## best epoch by test (%, optimistic): `metrics.best_test_acc`" in markdown
    assert "## final epoch (%): `metrics.final_test_acc`" in markdown
    assert markdown.count("| main | cifar10 | conv-teacher | conv-s0 | relu |") == 2  # best and final tables


def test_write_tables_without_distilled_runs(tmp_path):
    experiments = {"distill": EXPERIMENTS, "quantize": {"qd": quantize_experiment()}}
    written = write_tables([make_record(kind="teacher", activation="relu")], experiments, tmp_path)
    assert written == table_paths(tmp_path)
    distill = pd.read_csv(tmp_path / "summary-distill.csv")
    assert distill.empty and "best_test_acc_mean" in distill.columns and "experiment" in distill.columns
    seeds = pd.read_csv(tmp_path / "seeds-distill-best.csv")
    assert seeds.empty and list(seeds.columns[-5:]) == ["mean", "std", "n", "ci95_low", "ci95_high"]
    assert "no finished runs" in (tmp_path / "seeds-distill.md").read_text(encoding="utf-8")
    quantize = pd.read_csv(tmp_path / "summary-quantize.csv")
    assert quantize.empty and list(quantize.columns) == QUANTIZE_COLUMNS
    assert "## qd: students of `conv-teacher`\n\nno finished runs" in (tmp_path / "summary-quantize.md").read_text()


def test_write_tables_rejects_the_old_experiments_shape(tmp_path):
    with pytest.raises(ValueError, match=r"unknown kinds \['lma-bins', 'lma-cifar10'\]; expected .*'lit'"):
        write_tables([], EXPERIMENTS, tmp_path)
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


def test_load_records_round_trip_and_errors_name_the_file(tmp_path):
    good = tmp_path / "good" / "record.json"
    good.parent.mkdir()
    good.write_text(json.dumps(make_record()), encoding="utf-8")
    assert load_records([good]) == [make_record()]

    missing = tmp_path / "missing" / "record.json"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_records([good, missing])

    truncated = tmp_path / "truncated.json"
    truncated.write_text('{"format": 1, "kind": ', encoding="utf-8")
    with pytest.raises(ValueError, match=f"{truncated}.*not valid JSON"):
        load_records([truncated])

    incomplete = tmp_path / "incomplete.json"
    without_metrics = {key: value for key, value in make_record().items() if key != "metrics"}
    incomplete.write_text(json.dumps(without_metrics), encoding="utf-8")
    with pytest.raises(ValueError, match=f"{incomplete}.*metrics"):
        load_records([incomplete])


def test_load_records_checks_quantize_and_undistilled_records(tmp_path):
    def write(name, record):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(record), encoding="utf-8")
        return path

    good = [make_quantized(), make_quantized("pm", bucket=None), make_record("undistilled")]
    assert load_records([write(f"good{i}", record) for i, record in enumerate(good)]) == good

    no_size = make_quantized()
    del no_size["quantization"]["size_mb"]
    path = write("no-size", no_size)
    with pytest.raises(ValueError, match=rf"{path}: quantize record lacks quantization keys \['size_mb'\]"):
        load_records([path])

    path = write("null", make_record("quantize"))  # "quantization": null
    with pytest.raises(ValueError, match=rf"{path}: quantize record lacks quantization keys \['method', 'bits'"):
        load_records([path])

    unknown = make_quantized()
    unknown["quantization"]["method"] = "kmeans"
    path = write("unknown", unknown)
    with pytest.raises(ValueError, match=rf"{path}: quantization method 'kmeans'"):
        load_records([path])

    no_student = make_record("undistilled")
    del no_student["labels"]["student"]
    path = write("no-student", no_student)
    with pytest.raises(ValueError, match=rf"{path}: undistilled record lacks labels \['student'\]"):
        load_records([path])

    no_params = make_record("teacher")
    del no_params["model"]["bytes_fp32"]
    path = write("no-params", no_params)
    with pytest.raises(ValueError, match=rf"{path}: record lacks model keys \['bytes_fp32'\]"):
        load_records([path])


def test_load_records_checks_lit_records(tmp_path):
    def write(name, record):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(record), encoding="utf-8")
        return path

    assert load_records([write("good", make_lit())]) == [make_lit()]

    two_curves = make_lit()
    two_curves["lit"]["section_test_mse"].pop()
    path = write("two-curves", two_curves)
    with pytest.raises(ValueError, match=rf"{path}: LIT record has 3 sections but 2 section_test_mse curves"):
        load_records([path])

    short = make_lit()
    short["lit"]["section_mse"][1].pop()
    path = write("short", short)
    with pytest.raises(ValueError, match=rf"{path}: LIT section_mse curves have \[2, 1, 2\] values; expected 2"):
        load_records([path])

    no_section = make_lit()
    del no_section["lit"]
    path = write("no-section", no_section)
    with pytest.raises(ValueError, match=rf"{path}: lit record lacks lit keys \['phase1_epochs', 'sections'"):
        load_records([path])


def test_load_records_checks_esnac_records(tmp_path):
    def write(name, record):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(record), encoding="utf-8")
        return path

    good = [make_search(top=[architecture(0, 0.8470, VGG19_PARAMS, index=13)]), make_final()]
    assert load_records([write(f"good{i}", record) for i, record in enumerate(good)]) == good

    no_top = make_search()
    del no_top["top"]
    path = write("no-top", no_top)
    with pytest.raises(ValueError, match=rf"{path}: esnac_search record lacks required keys \['top'\]"):
        load_records([path])

    short = make_search(top=[architecture(0, 0.8, VGG19_PARAMS, index=1)])
    del short["top"][0]["reward"]
    path = write("short", short)
    with pytest.raises(ValueError, match=rf"{path}: esnac_search record's top architecture 0 lacks keys \['reward'\]"):
        load_records([path])

    uneven = make_search()
    uneven["curve"]["best_reward"].pop()
    path = write("uneven", uneven)
    with pytest.raises(ValueError, match=rf"{path}: esnac_search curve has .*'best_reward': 15"):
        load_records([path])

    mislabelled = make_search(strategy="random")
    mislabelled["labels"]["strategy"] = "esnac"
    path = write("mislabelled", mislabelled)
    with pytest.raises(ValueError, match=rf"{path}: esnac_search record's strategy 'random' disagrees"):
        load_records([path])

    no_rank = make_final()
    del no_rank["labels"]["rank"]
    path = write("no-rank", no_rank)
    with pytest.raises(ValueError, match=rf"{path}: esnac record lacks labels \['rank'\]"):
        load_records([path])
