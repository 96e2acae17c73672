"""Plots: every declared file is a readable PNG, whatever has finished so far, and each figure reads like a
paper's (axes in words and units, whole epochs, a legend saying what colour, marker and band mean)."""

import math

import matplotlib.image
import pytest
from matplotlib.figure import Figure

from compresslib import plots
from compresslib.experiments import plot_paths, write_plots
from compresslib.experiments.lit import plot_run
from compresslib.experiments.quantize import plot_accuracy_vs_size, quantize_summary
from compresslib.plots import _point_label, curves_by_epoch, plot_curves, plot_running_best, running_best

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DISTILL = {
    "lma-cifar10": {
        "dataset": "cifar10",
        "teacher": "conv-teacher",
        "students": ["conv-s0", "conv-s1"],
        "activations": ["relu", "lma8"],
        "seeds": [1, 2],
    },
    "lma-bins": {"dataset": "cifar10", "teacher": "conv-teacher", "students": ["conv-s0"],
                 "activations": ["lma4", "lma8"], "seeds": [1]},
}
QUANTIZE = {
    "qd-cifar10": DISTILL["lma-cifar10"]
    | {"methods": ["qd", "pm"], "bits": [2, 4], "buckets": [256, None], "references": ["distilled"]},
    "qd-none": DISTILL["lma-bins"] | {"methods": ["dq"], "bits": [2], "buckets": [None], "references": []},
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


def legend_texts(axes):
    """The legend's title and its entries' labels."""
    legend = axes.get_legend()
    return legend.get_title().get_text(), [text.get_text() for text in legend.get_texts()]


def drawn_lines(axes):
    """Each drawn line's label and its (x, y) points."""
    return {line.get_label(): (list(map(float, line.get_xdata())), list(map(float, line.get_ydata())))
            for line in axes.get_lines() if len(line.get_xdata())}


def visible_tick_labels(axis):
    """The labels of the ticks in view, major and minor, by position."""
    low, high = sorted(axis.get_view_interval())
    ticks = [(location, label.get_text()) for minor in (False, True)
             for location, label in zip(axis.get_ticklocs(minor=minor), axis.get_ticklabels(minor=minor), strict=True)
             if low <= location <= high and label.get_text()]
    return [text for _, text in sorted(ticks)]


def whole_numbers(ticks):
    return all(float(tick).is_integer() for tick in ticks)


def test_write_plots_writes_exactly_plot_paths(tmp_path, figures):
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
    assert set(figures) == set(written)
    (teachers,) = figures[tmp_path / "teachers.png"].axes
    assert legend_texts(teachers) == ("teacher\nmean ± std over n seeds", ["conv-teacher (n=2)"])
    (students,) = figures[tmp_path / "distill/lma-cifar10/conv-s0.png"].axes
    assert legend_texts(students) == ("activation\nmean ± std over n seeds", ["relu (n=2)", "lma8 (n=1)"])
    (on_disk,) = figures[tmp_path / "accuracy-vs-size/cifar10.png"].axes
    assert legend_texts(on_disk)[1][-1] == "Pareto front" and on_disk.get_xlabel() == "size on disk (MB, packed file)"
    (search,) = figures[tmp_path / "esnac/esnac-c100/vgg19.png"].axes
    assert search.get_title().endswith("\nreward f = c(2 − c) · accuracy ÷ teacher's, c = 1 − parameters ÷ teacher's")
    assert (search.get_xlabel(), search.get_ylabel()) == ("candidates evaluated", "best reward so far, f")
    for figure in figures.values():
        for axes in figure.axes:
            assert "_" not in axes.get_xlabel() + axes.get_ylabel()  # words, not column names


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


def test_accuracy_vs_size_points_and_labels(tmp_path, figures):
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
    (axes,) = figures[tmp_path / "size.png"].axes
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("model size (MB)", "final test accuracy (%)")
    assert legend_texts(axes) == ("point: mean, bar: ± std over seeds\nlabel: bits per weight", [
        "colour: model", "conv-s0", "conv-s1", "marker: method", "fp-distilled", "qd", "pm"])
    points = [container.lines[0] for container in axes.containers]  # each error bar's point
    assert [point.get_xdata()[0] for point in points] == pytest.approx([0.004, 0.01, 0.01, 0.01])  # MB
    assert [point.get_ydata()[0] for point in points] == pytest.approx([90.0, 80.0, 80.0, 80.0])  # percent
    assert_png(tmp_path / "size.png")
    assert_png(tmp_path / "empty.png")
    assert (tmp_path / "size.png").read_bytes() != (tmp_path / "empty.png").read_bytes()


def test_plot_curves_averages_over_the_runs_that_reached_each_epoch(tmp_path, figures):
    records = [make_record(seed=1, test_acc=(0.5, 0.6, 0.7)), make_record(seed=2, test_acc=(0.7, 0.8))]
    per_epoch = curves_by_epoch(records, "test_acc")
    assert per_epoch.mean(axis=1).tolist() == pytest.approx([0.6, 0.7, 0.7])
    assert per_epoch.count(axis=1).tolist() == [2, 2, 1]
    plot_curves({"relu": records, "lma8": []}, tmp_path / "curves.png", "mixed lengths", "activation")
    assert_png(tmp_path / "curves.png")
    (axes,) = figures[tmp_path / "curves.png"].axes
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("epoch", "test accuracy (%)")
    assert whole_numbers(axes.get_xticks())
    assert legend_texts(axes) == ("activation\nmean ± std over n seeds", ["relu (n=2)", "lma8 (no finished runs)"])
    epochs, mean = drawn_lines(axes)["relu (n=2)"]
    assert (epochs, mean) == ([1, 2, 3], pytest.approx([60.0, 70.0, 70.0]))  # percent
    assert axes.get_lines()[0].get_marker() == "o"
    # the band: ± the sample std of 50 and 70 (then 60 and 80), 10√2; none at epoch 3, which one run reached
    band = axes.collections[0].get_paths()[0].vertices
    assert band[:, 0].max() == 2
    assert (band[:, 1].min(), band[:, 1].max()) == pytest.approx((60 - 10 * math.sqrt(2), 70 + 10 * math.sqrt(2)))


def test_plot_curves_rejects_a_curve_with_missing_values(tmp_path):
    record = make_record()
    record["curve"]["test_acc"].pop()
    with pytest.raises(ValueError, match="seed1.*3 epochs but 2 test_acc"):
        plot_curves({"relu": [record]}, tmp_path / "bad.png", "bad", "activation")
    assert not list(tmp_path.iterdir())


def test_plot_lit_run_draws_a_run_and_a_missing_one(tmp_path, figures):
    plot_run({"lit": make_lit()}, tmp_path / "run.png", "a run", teacher_test_acc=0.9)
    plot_run({"lit": make_lit()}, tmp_path / "no-teacher.png", "a run")
    plot_run({"lit": None}, tmp_path / "missing.png", "no run")
    for name in ("run.png", "no-teacher.png", "missing.png"):
        assert_png(tmp_path / name)
    images = {(tmp_path / name).read_bytes() for name in ("run.png", "no-teacher.png", "missing.png")}
    assert len(images) == 3  # the teacher line and the missing run each change the figure
    mse, accuracy = figures[tmp_path / "run.png"].axes
    assert (mse.get_yscale(), mse.get_ylabel()) == ("log", "mean squared error (log scale)")
    # train MSE 0.5 / (section · epoch) and test twice that: 0.083 to 1, labelled at the decades, as plain numbers
    assert visible_tick_labels(mse.yaxis) == ["0.1", "1"]
    assert legend_texts(mse)[1] == ["section 1", "section 2", "section 3", "train", "test"]
    assert legend_texts(accuracy)[1] == ["LIT", "teacher (final epoch, mean)", "end of LIT's phase 1"]
    for axes in (mse, accuracy):
        assert whole_numbers(axes.get_xticks())
    missing = figures[tmp_path / "missing.png"].axes
    assert [text.get_text() for axes in missing for text in axes.texts] == ["no finished runs"] * 2


def test_lit_plots_show_the_baselines_of_their_seed(tmp_path, figures):
    records = [
        make_record("teacher", test_acc=(0.7, 0.9)),
        make_lit(seed=1),  # test accuracy 30, 50, 70, 75, 80 %
        make_record("undistilled", seed=1, test_acc=(0.4, 0.5, 0.6, 0.65, 0.7)),
        make_record("undistilled", seed=2, test_acc=(0.2, 0.4)),
        make_record("distill", seed=1, test_acc=(0.45, 0.55, 0.65, 0.7, 0.78)),
        make_record("distill", seed=1, student="conv-s1"),  # another student's
        make_record("distill", seed=1, activation="lma8"),  # LIT's baselines are ReLU networks
    ]
    write_plots(records, {"lit": LIT}, tmp_path)
    mse, accuracy = figures[tmp_path / "lit/lit-cifar10/seed1.png"].axes
    assert (accuracy.get_xlabel(), accuracy.get_ylabel()) == ("epoch", "test accuracy (%)")
    assert legend_texts(accuracy) == ("one run per method", [
        "scratch (hard labels)", "KD", "LIT", "teacher (final epoch, mean)", "end of LIT's phase 1"])
    drawn = drawn_lines(accuracy)
    epochs = [1, 2, 3, 4, 5]
    assert drawn["scratch (hard labels)"] == (epochs, pytest.approx([40.0, 50.0, 60.0, 65.0, 70.0]))
    assert drawn["KD"] == (epochs, pytest.approx([45.0, 55.0, 65.0, 70.0, 78.0]))
    assert drawn["LIT"] == (epochs, pytest.approx([30.0, 50.0, 70.0, 75.0, 80.0]))
    assert drawn["teacher (final epoch, mean)"][1] == pytest.approx([90.0, 90.0])
    assert drawn["end of LIT's phase 1"][0] == [2.5, 2.5]  # after phase 1's two epochs
    mse, accuracy = figures[tmp_path / "lit/lit-cifar10/seed2.png"].axes  # seed 2: no LIT run, no KD run
    assert legend_texts(accuracy)[1] == ["scratch (hard labels)", "KD (no finished run)", "LIT (no finished run)",
                                         "teacher (final epoch, mean)"]
    assert drawn_lines(accuracy)["scratch (hard labels)"] == ([1, 2], pytest.approx([20.0, 40.0]))
    assert [text.get_text() for text in mse.texts] == ["no finished runs"]
    mse, accuracy = figures[tmp_path / "lit/lit-none/seed3.png"].axes  # no baselines, no run, another dataset
    assert accuracy.get_legend() is None and [text.get_text() for text in accuracy.texts] == ["no finished runs"]


def test_plain_log_labels_label_a_short_range_without_exponents(tmp_path, figures):
    figure = Figure()
    axes = figure.add_subplot()
    axes.plot([1, 2], [0.22, 0.5])
    axes.set_yscale("log")
    plots.plain_log_labels(axes.yaxis)
    plots.save(figure, tmp_path / "short.png")
    assert visible_tick_labels(axes.yaxis) == ["0.3", "0.4", "0.5"]


def test_plot_lit_run_rejects_a_record_with_the_wrong_number_of_section_curves(tmp_path):
    record = make_lit(sections=4)
    record["lit"]["section_mse"].pop()
    with pytest.raises(ValueError, match="lit/.*seed1: LIT record has 4 sections but 3 section_mse curves"):
        plot_run({"lit": record}, tmp_path / "bad.png", "bad")
    assert not list(tmp_path.iterdir())


def test_plot_running_best_draws_strategies_with_and_without_searches(tmp_path, figures):
    searches = [make_search(seed=1), make_search(seed=2, rewards=(0.6, 0.3, 0.8))]  # the second stopped early
    curves = [search["curve"]["best_reward"] for search in searches]
    per_candidate = running_best(curves)
    assert per_candidate.index.tolist() == [1, 2, 3, 4]  # x: candidates evaluated, from 1
    assert per_candidate.mean(axis=1).tolist() == pytest.approx([0.4, 0.55, 0.65, 0.7])
    assert per_candidate.min(axis=1).tolist() == pytest.approx([0.2, 0.5, 0.5, 0.7])
    random = make_search(strategy="random")["curve"]["best_reward"]
    for name, groups in (("two", {"esnac": curves, "random": [random]}), ("one", {"esnac": curves[:1], "random": []}),
                         ("none", {"esnac": [], "random": []})):
        plot_running_best(groups, tmp_path / f"{name}.png", name, "candidates evaluated", "best reward so far",
                          "strategy")
    for name in ("two.png", "one.png", "none.png"):
        assert_png(tmp_path / name)
    assert len({(tmp_path / name).read_bytes() for name in ("two.png", "one.png", "none.png")}) == 3
    (axes,) = figures[tmp_path / "two.png"].axes
    assert legend_texts(axes) == ("strategy\nmean over n searches,\nband: their min to max",
                                  ["esnac (n=2)", "random (n=1)"])
    assert drawn_lines(axes)["esnac (n=2)"] == ([1, 2, 3, 4], pytest.approx([0.4, 0.55, 0.65, 0.7]))
    assert {line.get_drawstyle() for line in axes.get_lines()} == {"steps-post"}  # the best so far holds until beaten
    assert whole_numbers(axes.get_xticks())
