"""Curve plots: every declared file is a readable PNG, whatever has finished so far."""

import matplotlib.image
import pytest

from compresslib.experiments import plot_paths, write_plots
from compresslib.experiments.lit import plot_run
from compresslib.experiments.quantize import plot_accuracy_vs_size, quantize_summary
from compresslib.plots import _point_label, curves_by_epoch, plot_curves, plot_running_best, running_best

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DISTILL = {
    "lma-cifar10": {
        "teacher": "conv-teacher",
        "students": ["conv-s0", "conv-s1"],
        "activations": ["relu", "lma8"],
        "seeds": [1, 2],
    },
    "lma-bins": {"teacher": "conv-teacher", "students": ["conv-s0"], "activations": ["lma4", "lma8"], "seeds": [1]},
}
QUANTIZE = {
    "qd-cifar10": DISTILL["lma-cifar10"]
    | {"methods": ["qd", "pm"], "bits": [2, 4], "buckets": [256, None], "references": ["distilled"]},
    "qd-none": DISTILL["lma-bins"] | {"methods": ["dq"], "bits": [2], "buckets": [None], "references": [],
                                      "dataset": "cifar10"},
}
LIT = {
    "lit-cifar10": {"dataset": "cifar10", "teacher": "conv-teacher", "student": "conv-s0", "activation": "relu",
                    "seeds": [1, 2], "baselines": ["scratch", "kd"]},
    "lit-none": {"dataset": "cifar100", "teacher": "conv-teacher", "student": "conv-s0", "activation": "relu",
                 "seeds": [3], "baselines": []},
}
ESNAC = {
    "esnac-c100": {"teachers": {"vgg19": {"dataset": "cifar100", "reference": "vgg19-full"},
                                "resnet18": {"dataset": "cifar100", "reference": "resnet18"}},
                   "strategies": ["esnac", "random"], "seeds": [1, 2], "top_k": 4},
}
EXPERIMENTS = {"distill": DISTILL, "quantize": QUANTIZE, "lit": LIT, "esnac": ESNAC}


def make_record(kind="distill", student="conv-s0", activation="relu", seed=1, test_acc=(0.5, 0.6, 0.7)):
    """The fields of a record.json that plotting reads (the LIT plots read the teacher's final accuracy)."""
    epochs = list(range(1, len(test_acc) + 1))
    labels = {"dataset": "cifar10", "teacher": "conv-teacher"} | ({"student": student} if kind != "teacher" else {})
    final = test_acc[-1] if test_acc else None
    return {
        "kind": kind,
        "run_dir": f"results/{kind}/cifar10/conv-teacher/{student}/{activation}/seed{seed}",
        "labels": labels,
        "activation": activation,
        "seed": seed,
        "metrics": {"final_test_acc": final, "best_test_acc": final},
        "model": {"name": f"{kind}-net", "params": 1000, "bytes_fp32": 4000},
        "curve": {"epoch": epochs, "test_acc": list(test_acc), "train_loss": [1.0] * len(epochs)},
    }


def make_lit(seed=1, sections=3, phase1_epochs=2):
    """A LIT record: phase 1 then phase 2 (five epochs in all), one MSE curve per section on each split."""
    record = make_record("lit", seed=seed, test_acc=(0.3, 0.5, 0.7, 0.75, 0.8))
    mse = [[0.5 / (section * epoch) for epoch in range(1, phase1_epochs + 1)] for section in range(1, sections + 1)]
    return record | {
        "lit": {"phase1_epochs": phase1_epochs, "sections": sections, "section_mse": mse,
                "section_test_mse": [[2 * value for value in curve] for curve in mse]},
    }


def make_quantized(method="qd", bits=2, bucket=256, student="conv-s0", seed=1, final=0.8, size_mb=0.01):
    """The fields of a quantize record.json that the accuracy-against-size plot reads (through the summary)."""
    record = make_record(kind="distill", student=student, seed=seed, test_acc=() if method == "pm" else (0.5, final))
    quantization = {"method": method, "bits": bits, "bucket_size": bucket, "size_mb": size_mb, "packed_bytes": 100}
    return record | {
        "kind": "quantize",
        "activation_family": "relu",
        "bins": None,
        "metrics": {"final_test_acc": final, "best_test_acc": final},
        "model": {"params": 1000, "bytes_fp32": 4000},
        "quantization": quantization | {"compression": 40.0, "huffman_mean_bits": 1.7},
    }


def make_search(teacher="vgg19", strategy="esnac", seed=1, rewards=(0.2, 0.5, 0.4, 0.7), dataset="cifar100"):
    """The fields of an esnac_search record.json that the search-progress plot reads."""
    best = [max(rewards[: i + 1]) for i in range(len(rewards))]
    return {
        "kind": "esnac_search",
        "run_dir": f"results/esnac/{dataset}/{teacher}/{strategy}/seed{seed}",
        "labels": {"dataset": dataset, "teacher": teacher, "strategy": strategy},
        "seed": seed,
        "strategy": strategy,
        "curve": {"index": list(range(len(rewards))), "reward": list(rewards), "best_reward": best},
    }


def assert_png(path):
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert matplotlib.image.imread(path).ndim == 3


def test_write_plots_writes_exactly_plot_paths(tmp_path):
    records = [
        make_record(kind="teacher", seed=1),
        make_record(kind="teacher", seed=2, test_acc=(0.4, 0.8)),
        make_record(activation="relu", seed=1),
        make_record(activation="relu", seed=2, test_acc=(0.5, 0.65)),  # stopped early
        make_record(activation="lma8", seed=1, test_acc=(0.6, 0.7, 0.8, 0.85)),
        make_record(activation="lma4", seed=1),
        make_record(activation="swish", seed=1),  # in no experiment
    ]  # conv-s1 has no finished run at all
    records += [make_quantized(seed=1), make_quantized(seed=2, final=0.7), make_quantized("pm", bucket=None)]
    records += [make_lit(seed=1)]  # seed 2 of lit-cifar10 and lit-none have no finished run
    records += [make_search(seed=1), make_search(seed=2, rewards=(0.6, 0.3, 0.8)), make_search(strategy="random"),
                make_search(seed=3), make_search(dataset="cifar10")]  # resnet18 has no search; the last two: no seed 3,
    # no vgg19 on cifar10 in the experiment
    written = write_plots(records, EXPERIMENTS, tmp_path)
    assert written == plot_paths(EXPERIMENTS, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "teachers.png",
        "distill/lma-cifar10/conv-s0.png",
        "distill/lma-cifar10/conv-s1.png",
        "distill/lma-bins/conv-s0.png",
        "quantize/qd-cifar10.png",
        "quantize/qd-none.png",  # no finished runs
        "accuracy-vs-size/cifar10.png",  # every experiment naming cifar10 (qd-none names it)
        "lit/lit-cifar10/seed1.png",
        "lit/lit-cifar10/seed2.png",
        "lit/lit-none/seed3.png",
        "esnac/esnac-c100/vgg19.png",
        "esnac/esnac-c100/resnet18.png",  # no finished runs
    ]
    for path in written:
        assert_png(path)
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == sorted(written)  # no temp files left


def test_write_plots_with_no_records(tmp_path):
    written = write_plots([], EXPERIMENTS, tmp_path)
    assert written == plot_paths(EXPERIMENTS, tmp_path)
    for path in written:
        assert_png(path)


def test_plot_paths_of_each_kind_alone(tmp_path):
    quantize_only = plot_paths({"quantize": QUANTIZE}, tmp_path)
    assert [p.name for p in quantize_only] == ["teachers.png", "qd-cifar10.png", "qd-none.png", "cifar10.png"]
    assert len(plot_paths({"distill": DISTILL}, tmp_path)) == 4
    lit_only = plot_paths({"lit": LIT, "distill": {}}, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in lit_only] == [
        "teachers.png", "lit/lit-cifar10/seed1.png", "lit/lit-cifar10/seed2.png", "lit/lit-none/seed3.png"
    ]
    for without_lit in ({}, {"lit": {}}, {"distill": DISTILL, "quantize": QUANTIZE}):
        assert not [p for p in plot_paths(without_lit, tmp_path) if "lit" in p.parts]
    esnac_only = plot_paths({"esnac": ESNAC}, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in esnac_only] == [
        "teachers.png", "esnac/esnac-c100/vgg19.png", "esnac/esnac-c100/resnet18.png"
    ]
    for without_esnac in ({}, {"esnac": {}}, {"distill": DISTILL, "quantize": QUANTIZE, "lit": LIT}):
        assert not [p for p in plot_paths(without_esnac, tmp_path) if "esnac" in p.parts]
    with pytest.raises(ValueError, match="unknown kinds"):
        plot_paths(DISTILL, tmp_path)  # the shape before quantize experiments


def test_accuracy_vs_size_points_and_labels(tmp_path):
    distilled = make_record(kind="distill", seed=1) | {
        "activation_family": "relu",
        "bins": None,
        "metrics": {"final_test_acc": 0.9, "best_test_acc": 0.9},
        "model": {"params": 1000, "bytes_fp32": 4000},
    }
    records = [make_quantized(bits=4), make_quantized(bucket=None), make_quantized("pm", student="conv-s1"), distilled]
    summary = quantize_summary(records, {"q": QUANTIZE["qd-cifar10"]})
    labels = [_point_label(row, ["bucket"]) for row in summary.to_dict("records")]
    assert labels == ["32b", "4b k=256", "2b per-tensor", "2b k=256"]  # conv-s0 (reference first), then conv-s1
    assert _point_label(summary.iloc[1].to_dict(), []) == "4b"
    assert _point_label(summary.iloc[1].to_dict(), ["activation", "bucket"]) == "4b relu k=256"
    plot_accuracy_vs_size(summary, tmp_path / "size.png", "sizes")
    plot_accuracy_vs_size(summary.iloc[:0], tmp_path / "empty.png", "nothing")
    assert_png(tmp_path / "size.png")
    assert_png(tmp_path / "empty.png")
    assert (tmp_path / "size.png").read_bytes() != (tmp_path / "empty.png").read_bytes()


def test_plot_curves_averages_over_the_runs_that_reached_each_epoch(tmp_path):
    records = [make_record(seed=1, test_acc=(0.5, 0.6, 0.7)), make_record(seed=2, test_acc=(0.7, 0.8))]
    per_epoch = curves_by_epoch(records, "test_acc")
    assert per_epoch.mean(axis=1).tolist() == pytest.approx([0.6, 0.7, 0.7])
    assert per_epoch.count(axis=1).tolist() == [2, 2, 1]
    plot_curves({"relu": records, "lma8": []}, tmp_path / "curves.png", "mixed lengths")
    assert_png(tmp_path / "curves.png")


def test_plot_curves_rejects_a_curve_with_missing_values(tmp_path):
    record = make_record()
    record["curve"]["test_acc"].pop()
    with pytest.raises(ValueError, match="seed1.*3 epochs but 2 test_acc"):
        plot_curves({"relu": [record]}, tmp_path / "bad.png", "bad")
    assert not list(tmp_path.iterdir())


def test_plot_lit_run_draws_a_run_and_a_missing_one(tmp_path):
    plot_run(make_lit(), tmp_path / "run.png", "a run", teacher_test_acc=0.9)
    plot_run(make_lit(), tmp_path / "no-teacher.png", "a run")
    plot_run(None, tmp_path / "missing.png", "no run")
    for name in ("run.png", "no-teacher.png", "missing.png"):
        assert_png(tmp_path / name)
    images = {(tmp_path / name).read_bytes() for name in ("run.png", "no-teacher.png", "missing.png")}
    assert len(images) == 3  # the teacher line and the missing run each change the figure


def test_plot_lit_run_rejects_a_record_with_the_wrong_number_of_section_curves(tmp_path):
    record = make_lit(sections=4)
    record["lit"]["section_mse"].pop()
    with pytest.raises(ValueError, match="lit/.*seed1: LIT record has 4 sections but 3 section_mse curves"):
        plot_run(record, tmp_path / "bad.png", "bad")
    assert not list(tmp_path.iterdir())


def test_plot_running_best_draws_strategies_with_and_without_searches(tmp_path):
    searches = [make_search(seed=1), make_search(seed=2, rewards=(0.6, 0.3, 0.8))]  # the second stopped early
    curves = [search["curve"]["best_reward"] for search in searches]
    per_candidate = running_best(curves)
    assert per_candidate.index.tolist() == [1, 2, 3, 4]  # x: candidates evaluated, from 1
    assert per_candidate.mean(axis=1).tolist() == pytest.approx([0.4, 0.55, 0.65, 0.7])
    assert per_candidate.min(axis=1).tolist() == pytest.approx([0.2, 0.5, 0.5, 0.7])
    random = make_search(strategy="random")["curve"]["best_reward"]
    for name, groups in (("two", {"esnac": curves, "random": [random]}), ("one", {"esnac": curves[:1], "random": []}),
                         ("none", {"esnac": [], "random": []})):
        plot_running_best(groups, tmp_path / f"{name}.png", name, "candidates evaluated", "best reward so far")
    for name in ("two.png", "one.png", "none.png"):
        assert_png(tmp_path / name)
    assert len({(tmp_path / name).read_bytes() for name in ("two.png", "one.png", "none.png")}) == 3
