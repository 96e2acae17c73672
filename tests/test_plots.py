"""Curve plots: every declared file is a readable PNG, whatever has finished so far."""

import matplotlib.image
import pytest

from compresslib.plots import _curves_by_epoch, plot_curves, plot_paths, write_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXPERIMENTS = {
    "lma-cifar10": {
        "teacher": "conv-teacher",
        "students": ["conv-s0", "conv-s1"],
        "activations": ["relu", "lma8"],
        "seeds": [1, 2],
    },
    "lma-bins": {"teacher": "conv-teacher", "students": ["conv-s0"], "activations": ["lma4", "lma8"], "seeds": [1]},
}


def make_record(kind="distill", student="conv-s0", activation="relu", seed=1, test_acc=(0.5, 0.6, 0.7)):
    """The fields of a record.json that plotting reads."""
    epochs = list(range(1, len(test_acc) + 1))
    labels = {"dataset": "cifar10", "teacher": "conv-teacher"} | ({"student": student} if kind == "distill" else {})
    return {
        "kind": kind,
        "run_dir": f"results/{kind}/cifar10/conv-teacher/{student}/{activation}/seed{seed}",
        "labels": labels,
        "activation": activation,
        "seed": seed,
        "curve": {"epoch": epochs, "test_acc": list(test_acc), "train_loss": [1.0] * len(epochs)},
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
    written = write_plots(records, EXPERIMENTS, tmp_path)
    assert written == plot_paths(EXPERIMENTS, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "teachers.png",
        "distill/lma-cifar10/conv-s0.png",
        "distill/lma-cifar10/conv-s1.png",
        "distill/lma-bins/conv-s0.png",
    ]
    for path in written:
        assert_png(path)
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == sorted(written)  # no temp files left


def test_write_plots_with_no_records(tmp_path):
    written = write_plots([], EXPERIMENTS, tmp_path)
    assert written == plot_paths(EXPERIMENTS, tmp_path)
    for path in written:
        assert_png(path)


def test_plot_curves_averages_over_the_runs_that_reached_each_epoch(tmp_path):
    records = [make_record(seed=1, test_acc=(0.5, 0.6, 0.7)), make_record(seed=2, test_acc=(0.7, 0.8))]
    per_epoch = _curves_by_epoch(records, "test_acc")
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
