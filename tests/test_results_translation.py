"""Translation records in the tables and the plots: fakes built to the structure of
``compresslib.translation.train._Job._record``, checked against hand-computed numbers, and one real record of a
tiny trained teacher and QD student."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image
import pandas as pd
from matplotlib.collections import PathCollection
import pytest
from test_results import make_quantized, make_record, quantize_experiment

from compresslib.data.corpus import prepare_corpus
from compresslib.data.synthetic_translation import make_synthetic_translation
from compresslib.experiments import load_records, plot_paths, table_paths, write_plots, write_tables
from compresslib.experiments.translation_tables import plot_bleu_vs_size, translation_summary, translation_table
from compresslib.results import runs_table
from compresslib.settings import build_settings
from compresslib.specs.translation import TranslationSpec
from compresslib.translation.train import train_translation

CORPUS, TEACHER = "wmt13", "transformer-big"
SIGNATURE = "nrefs:1|case:lc|eff:no|tok:13a|smooth:exp|version:2.6.0"
T_975_1 = 12.706205  # scipy.stats.t.ppf(0.975, 1)
T_975_2 = 4.302653  # scipy.stats.t.ppf(0.975, 2)
# the spec's kind (the record's run_kind) of each method label of the workflow (None: a teacher)
RUN_KINDS = {None: "teacher", "undistilled": "undistilled", "word-kd": "distill", "seq-kd": "seq_distill",
             "qd": "quantize"}
EXPERIMENT = {
    "corpus": CORPUS,
    "teacher": TEACHER,
    "students": ["tf-small", "lstm-small"],
    "activations": {"tf-small": ["relu", "lma8"], "lstm-small": ["none"]},
    "methods": ["undistilled", "word-kd", "qd"],
    "bits": [4, 2],
    "buckets": [256, None],
    "seeds": [1, 2, 3],
}
EMPTY = EXPERIMENT | {"teacher": "nobody"}

pytestmark = pytest.mark.usefixtures("one_thread")  # the real record's tiny training runs faster on one thread


def make_translation(method=None, student="tf-small", activation="relu", seed=1, bleu=27.0, newstest=None, ppl=5.0,
                     params=1000, bits=4, bucket=256, size_mb=0.0006, sentences_per_s=100.0, peak=None,
                     teacher=TEACHER, corpus=CORPUS):
    """A translation record.json as ``_Job._record`` writes it (two epochs; the test split, plus newstest2013 when
    ``newstest`` is its BLEU); ``method`` None is a teacher, "qd" carries the quantization facts of
    ``pack_and_measure``."""
    student_labels = {"student": student, "method": method, "activation": activation} if method else {}
    labels = {"corpus": corpus, "teacher": teacher} | student_labels
    method_path = f"qd-b{bits}-k{bucket}" if method == "qd" else method
    role = f"students/{student}/{method_path}/{activation}" if method else f"teachers/{teacher}"
    run_dir = f"results/translation/{corpus}/{role}/seed{seed}"
    splits = {"test": (bleu, ppl)} | ({"newstest2013": (newstest, ppl + 1.0)} if newstest is not None else {})
    translations = {
        split: {"bleu": score, "signature": SIGNATURE, "ppl": perplexity, "nll": math.log(perplexity),
                "target_tokens": 3000, "sentences": 100, "file": f"translations/{split}.txt", "translate_s": 2.0,
                "sentences_per_s": 50.0}
        for split, (score, perplexity) in splits.items()
    }
    translations["test"] |= {"sentences_per_s": sentences_per_s, "translate_s": 100 / sentences_per_s}
    spec = {"kind": RUN_KINDS[method], "corpus": corpus, "model": "transformer_nmt",
            "model_kwargs": {"layers": 2, "d_model": 32}, "seed": seed, "epochs": 2,
            "kd": {"temperature": 1.0, "weight": 0.7} if method in ("word-kd", "qd") else None, "quant": None,
            "labels": labels}
    quantization = None
    if method == "qd":
        spec["quant"] = {"method": "qd", "bits": bits, "bucket_size": bucket, "stochastic": False,
                         "quantize_first_last": False, "skip_by": "layers", "points_init": "quantiles",
                         "auto_bits": True, "gradient_batches": 5}
        quantization = spec["quant"] | {
            "quantized_tensors": ["encoder_layers.0.w_1.weight"], "full_precision_tensors": ["generator.weight"],
            "quantized_params": 900, "full_precision_params": 100, "buckets": 4, "huffman_mean_bits": bits - 0.5,
            "size_reduction_factor": 32 / bits, "size_mb": size_mb, "packed_file": "model.packed",
            "packed_bytes": 700, "fp32_bytes": 4 * params, "compression": 4 * params / 700,
        }
    return {
        "format": 1,
        "kind": "translation",
        "run_dir": run_dir,
        "labels": labels,
        "seed": seed,
        "spec": spec,
        "spec_hash": f"hash-{run_dir}",
        "run_kind": RUN_KINDS[method],
        "metrics": {
            "final_epoch": 2, "final_train_loss": 1.5, "final_val_ppl": ppl, "validation_split": "valid",
            "final_bleu": bleu, "bleu_signature": SIGNATURE, "final_test_ppl": ppl, "bleu_lowercase": True,
            "best_epoch": 2, "best_val_ppl": ppl, "bleu": {split: r["bleu"] for split, r in translations.items()},
            "ppl": {split: r["ppl"] for split, r in translations.items()}, "epochs_run": 2, "selection": "final",
            **({"final_shadow_val_ppl": ppl - 0.1} if method == "qd" else {}),
        },
        "translations": translations,
        "curve": {"epoch": [1, 2], "train_loss": [3.0, 1.5], "val_ppl": [9.0, ppl], "lr": [0.001, 0.0007]},
        "model": {"name": "transformer_nmt", "params": params, "activation_params": 0, "bytes_fp32": 4 * params},
        "optimizer": {"name": "noam", "max_grad_norm": 0.0, "steps": 40},
        "quantization": quantization,
        "memory": {"device_type": "cpu" if peak is None else "cuda", "param_bytes": 4 * params,
                   "process_peak_rss_bytes": 10**9, "inference_peak_bytes": peak, "train_peak_bytes": None,
                   "note": "inference_peak_bytes: CUDA max_memory_allocated while translating the split"},
        "timing": {"wall_s": 30.0, "train_s": 20.0, "epoch_s_mean": 12.0, "train_tokens_per_s": 5000.0,
                   "inference_split": "test", "inference_s": 100 / sentences_per_s,
                   "sentences_per_s": sentences_per_s, "resumed_from_epoch": 0,
                   "sessions": [{"started_at": "2026-01-01T00:00:00+00:00", "start_epoch": 0, "device": "cpu"}]},
        "hardware": {"device": "cpu", "threads": 1},
        "provenance": {"git_revision": "abc123", "packages": {"sacrebleu": "2.6.0"}},
    }


def translation_records():
    """The members of EXPERIMENT in a shuffled order, then runs it must leave out."""
    members = [
        make_translation("qd", bits=2, bucket=None, seed=1, bleu=20.0, size_mb=0.0004),
        make_translation("word-kd", seed=2, bleu=27.4, newstest=25.2, ppl=5.2, sentences_per_s=120.0, peak=3000),
        make_translation("undistilled", student="lstm-small", activation="none", bleu=22.0, params=800),
        make_translation("word-kd", activation="lma8", seed=3, bleu=28.5, params=1100),
        make_translation(bleu=30.0, newstest=28.0, ppl=4.0, params=5000),  # the teacher
        make_translation("qd", seed=2, bleu=26.5, size_mb=0.0007),
        make_translation("word-kd", seed=1, bleu=26.8, newstest=24.8, ppl=5.0, sentences_per_s=80.0, peak=1000),
        make_translation("undistilled", bleu=24.0),
        make_translation("word-kd", activation="lma8", seed=1, bleu=27.5, params=1100),
        make_translation("qd", seed=1, bleu=26.0, size_mb=0.0005),
        make_translation("word-kd", activation="lma8", seed=2, bleu=28.0, params=1100),
    ]
    outsiders = [
        make_translation("word-kd", activation="swish"),  # activation not asked for
        make_translation("undistilled", student="lstm-small", activation="relu"),  # not one of the LSTM's
        make_translation("seq-kd"),  # method not asked for
        make_translation("word-kd", seed=4),
        make_translation("qd", bits=8),
        make_translation("qd", bucket=512),
        make_translation("word-kd", student="tf-tiny"),
        make_translation("word-kd", teacher="other-teacher"),
        make_translation(teacher="other-teacher"),
        make_translation(corpus="iwslt"),
        make_record("distill", activation="relu", teacher=TEACHER),  # an image run of a teacher of the same name
    ]
    return members + outsiders


IDENTITY = ["method", "student", "activation", "bits", "bucket", "seed"]


def rows_of(table):
    return [tuple(None if pd.isna(value) else value for value in row) for row in table[IDENTITY].values.tolist()]


def test_translation_table_keeps_members_teacher_first_in_config_order():
    table = translation_table(translation_records(), {"wmt": EXPERIMENT, "empty": EMPTY})
    assert list(table.columns[:5]) == ["experiment", "corpus", "teacher", "student", "activation"]
    assert set(table["experiment"]) == {"wmt"} and set(table["corpus"]) == {CORPUS}
    assert rows_of(table) == [
        ("teacher", None, None, 32, None, 1),
        ("undistilled", "tf-small", "relu", 32, None, 1),
        ("word-kd", "tf-small", "relu", 32, None, 1),
        ("word-kd", "tf-small", "relu", 32, None, 2),
        ("qd", "tf-small", "relu", 4, 256, 1),
        ("qd", "tf-small", "relu", 4, 256, 2),
        ("qd", "tf-small", "relu", 2, 0, 1),  # bits descending; bucket 0: one bucket per tensor
        ("word-kd", "tf-small", "lma8", 32, None, 1),
        ("word-kd", "tf-small", "lma8", 32, None, 2),
        ("word-kd", "tf-small", "lma8", 32, None, 3),
        ("undistilled", "lstm-small", "none", 32, None, 1),
    ]


SUMMARY_STATS = ["n", "mean", "std", "min", "max", "ci95_low", "ci95_high"]
SUMMARY_COLUMNS = [
    "experiment", "corpus", "teacher", "student", "activation", "method", "bits", "bucket",
    *(f"{metric}.{split}_{stat}" for metric in ("bleu", "ppl") for split in ("test", "newstest2013")
      for stat in SUMMARY_STATS),
    "model.params", "size_mb", "packed_bytes", "fp32_over_packed", "huffman_mean_bits", "timing.sentences_per_s",
    "memory.inference_peak_bytes",
]


def test_translation_summary_matches_hand_computed_statistics():
    summary = translation_summary(translation_records(), {"wmt": EXPERIMENT})
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert summary["method"].tolist() == ["teacher", "undistilled", "word-kd", "qd", "qd", "word-kd", "undistilled"]
    teacher, undistilled, word_kd, qd4, qd2, lma8, lstm = (row for _, row in summary.iterrows())

    # word-kd, relu: BLEU 26.8 and 27.4 -> mean 27.1, sample std sqrt(2 * 0.3^2 / 1) = 0.42426
    assert word_kd["bleu.test_n"] == 2 and word_kd["bleu.test_mean"] == pytest.approx(27.1)
    assert word_kd["bleu.test_std"] == pytest.approx(math.sqrt(0.18))
    assert (word_kd["bleu.test_min"], word_kd["bleu.test_max"]) == (26.8, 27.4)
    assert word_kd["bleu.test_ci95_high"] == pytest.approx(27.1 + T_975_1 * math.sqrt(0.18) / math.sqrt(2))
    assert word_kd["bleu.newstest2013_mean"] == pytest.approx(25.0) and word_kd["ppl.test_mean"] == pytest.approx(5.1)
    assert word_kd["ppl.newstest2013_mean"] == pytest.approx(6.1)
    assert word_kd["timing.sentences_per_s"] == pytest.approx(100.0) and word_kd["memory.inference_peak_bytes"] == 2000
    # lma8: 27.5, 28.0, 28.5 -> mean 28, std 0.5; no newstest2013 run: n 0
    assert (lma8["bleu.test_n"], lma8["bleu.test_mean"], lma8["bleu.test_std"]) == (3, pytest.approx(28.0), 0.5)
    assert lma8["bleu.test_ci95_low"] == pytest.approx(28.0 - T_975_2 * 0.5 / math.sqrt(3))
    assert lma8["bleu.newstest2013_n"] == 0 and pd.isna(lma8["bleu.newstest2013_mean"])
    assert math.isnan(lma8["memory.inference_peak_bytes"])  # measured on the CPU: null in every record
    # a single run has no spread
    assert undistilled["bleu.test_n"] == 1 and math.isnan(undistilled["bleu.test_std"])

    # full precision: 32 bits, no bucket, 4 bytes per parameter
    for row, params in ((teacher, 5000), (undistilled, 1000), (lma8, 1100), (lstm, 800)):
        assert (row["bits"], row["model.params"], row["size_mb"], row["packed_bytes"], row["fp32_over_packed"]) == (
            32, params, 4 * params / 1e6, 4 * params, 1.0)
        assert pd.isna(row["bucket"]) and pd.isna(row["huffman_mean_bits"])
    assert pd.isna(teacher["student"]) and pd.isna(teacher["activation"]) and teacher["bleu.test_mean"] == 30.0
    # qd: the sizes of the quantization section, averaged over the seeds
    assert (qd4["bits"], qd4["bucket"], qd4["bleu.test_mean"]) == (4, 256, pytest.approx(26.25))
    assert qd4["size_mb"] == pytest.approx(0.0006) and qd4["packed_bytes"] == 700
    assert qd4["fp32_over_packed"] == pytest.approx(4000 / 700) and qd4["huffman_mean_bits"] == 3.5
    assert (qd2["bits"], qd2["bucket"], qd2["size_mb"], qd2["bleu.test_mean"]) == (2, 0, 0.0004, 20.0)


def test_summary_translation_files(tmp_path):
    records = translation_records()
    experiments = {"translation": {"wmt": EXPERIMENT, "empty": EMPTY}}
    written = write_tables(records, experiments, tmp_path)
    assert written == table_paths(tmp_path) and [p.name for p in written[-6:]] == [
        "summary-translation.csv", "summary-translation.md", "paired-translation.csv", "paired-translation.md",
        "pareto-translation.csv", "pareto-translation.md"]
    csv = pd.read_csv(tmp_path / "summary-translation.csv")
    assert list(csv.columns) == SUMMARY_COLUMNS and len(csv) == 7
    assert csv["bleu.test_mean"].round(2).tolist() == [30.0, 24.0, 27.1, 26.25, 20.0, 28.0, 22.0]
    markdown = (tmp_path / "summary-translation.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Translation: BLEU and perplexity against model size\n")
    assert "mean ± std (n) over the n seeds (sample std, ddof=1); 95% CI: the Student-t interval" in markdown
    # word-kd relu: 27.1 ± t(0.975, 1) · 0.424 / √2 = 27.1 ± 3.81; lma8: 28 ± t(0.975, 2) · 0.5 / √3 = 28 ± 1.24
    expected = "\n".join([
        f"## wmt: students of `{TEACHER}` on `{CORPUS}`",
        "",
        "| method | student | activation | params | size (MB) | fp32 ÷ packed file | BLEU test | 95% CI "
        "| BLEU newstest2013 | 95% CI | test ppl | sentences/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        "| teacher | — | — | 5,000 | 0.0200 | 1.00 | 30.00 ± — (1) | — | 28.00 ± — (1) | — | 4.00 ± — | 100 |",
        "| undistilled | tf-small | relu | 1,000 | 0.00400 | 1.00 | 24.00 ± — (1) | — | — | — | 5.00 ± — | 100 |",
        "| word-kd | tf-small | relu | 1,000 | 0.00400 | 1.00 | 27.10 ± 0.42 (2) | [23.29, 30.91] | 25.00 ± 0.28 (2) "
        "| [22.46, 27.54] | 5.10 ± 0.14 | 100 |",
        "| qd 4-bit, k=256 | tf-small | relu | 1,000 | 0.000600 | 5.71 | 26.25 ± 0.35 (2) | [23.07, 29.43] | — | — "
        "| 5.00 ± 0.00 | 100 |",
        "| qd 2-bit, per-tensor | tf-small | relu | 1,000 | 0.000400 | 5.71 | 20.00 ± — (1) | — | — | — | 5.00 ± — "
        "| 100 |",
        "| word-kd | tf-small | lma8 | 1,100 | 0.00440 | 1.00 | 28.00 ± 0.50 (3) | [26.76, 29.24] | — | — "
        "| 5.00 ± 0.00 | 100 |",
        "| undistilled | lstm-small | none | 800 | 0.00320 | 1.00 | 22.00 ± — (1) | — | — | — | 5.00 ± — | 100 |",
        "",
        f"sacrebleu signature (of one record): `{SIGNATURE}`",
        "",
        "## empty: students of `nobody` on `wmt13`",
        "",
        "no finished runs",
    ])
    assert expected in markdown


@pytest.mark.parametrize("experiments", [{"translation": {"empty": EMPTY}}, {}, {"quantize": {}}])
def test_summary_translation_without_finished_runs_has_headers(tmp_path, experiments):
    written = write_tables([make_record("teacher", activation="relu")], experiments, tmp_path)
    assert written == table_paths(tmp_path)
    csv = pd.read_csv(tmp_path / "summary-translation.csv")
    test_only = [c for c in SUMMARY_COLUMNS if "newstest2013" not in c]  # the test split is always a column
    assert csv.empty and list(csv.columns) == test_only
    markdown = (tmp_path / "summary-translation.md").read_text(encoding="utf-8")
    section = "## empty: students of `nobody` on `wmt13`\n\nno finished runs"
    assert (section in markdown) == ("translation" in experiments)


def test_translation_records_leave_the_image_tables_unchanged(tmp_path):
    image = [make_record("teacher", activation="relu"), make_record("distill", activation="relu", seed=1),
             make_record("distill", activation="relu", seed=2, final=0.9), make_quantized(activation="relu")]
    experiments = {"distill": {"main": {"teacher": "conv-teacher", "students": ["conv-s0"], "activations": ["relu"],
                                        "seeds": [1, 2]}},
                   "quantize": {"qd": quantize_experiment(students=["conv-s0"])}}
    alone = write_tables(image, experiments, tmp_path / "alone")
    mixed = write_tables(image + translation_records(), experiments | {"translation": {"wmt": EXPERIMENT}},
                         tmp_path / "mixed")
    for before, after in zip(alone, mixed, strict=True):
        if before.name.startswith("runs"):  # run tables: the image runs' rows are unchanged
            runs_alone, runs_mixed = pd.read_csv(before), pd.read_csv(after)
            same = runs_mixed[runs_mixed["run_dir"].isin(runs_alone["run_dir"])].reset_index(drop=True)
            pd.testing.assert_frame_equal(same[runs_alone.columns], runs_alone, check_dtype=False)
        elif not before.name.endswith(("-translation.csv", "-translation.md")):
            assert before.read_bytes() == after.read_bytes(), before.name
    assert len(pd.read_csv(mixed[0])) == len(image) + len(translation_records())  # every training record is a row


def test_runs_table_flattens_translation_records():
    frame = runs_table([make_translation("word-kd", bleu=27.4, newstest=25.2), make_translation(bleu=30.0)])
    assert list(frame["run_kind"]) == ["distill", "teacher"]  # sorted by labels.student: the teacher has none
    assert frame["metrics.bleu.test"].tolist() == [27.4, 30.0]
    assert frame.loc[0, "metrics.bleu.newstest2013"] == 25.2 and pd.isna(frame.loc[1, "metrics.bleu.newstest2013"])
    assert frame.loc[0, "translations.test.signature"] == SIGNATURE
    assert frame["activation"].isna().all() and frame["bins"].isna().all()  # no image activation fields
    assert frame.loc[0, "labels.activation"] == "relu" and frame["labels.corpus"].tolist() == [CORPUS, CORPUS]
    assert not any(column.startswith("curve") for column in frame.columns)


def write_record(path: Path, record: dict) -> Path:
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


def test_load_records_checks_translation_records(tmp_path):
    good = [make_translation(), make_translation("qd", bucket=None), make_translation("seq-kd", activation="none")]
    assert load_records([write_record(tmp_path / f"good{i}.json", record) for i, record in enumerate(good)]) == good

    def refused(record, message):
        path = write_record(tmp_path / "refused.json", record)
        with pytest.raises(ValueError, match=rf"{path}: {message}"):
            load_records([path])

    no_translations = make_translation("word-kd")
    del no_translations["translations"]
    refused(no_translations, r"translation record lacks required keys \['translations'\]")
    no_method = make_translation("word-kd")
    del no_method["labels"]["method"]
    refused(no_method, r"translation distill record lacks labels \['method'\]")
    refused(make_translation("word-kd") | {"format": 2}, "record format 2, expected 1")
    refused(make_translation("word-kd") | {"run_kind": "lit"}, "translation run_kind 'lit', expected teacher or")
    unknown = make_translation("word-kd")
    unknown["labels"]["method"] = "kd"
    refused(unknown, "translation method label 'kd', not one of")
    refused(make_translation("word-kd") | {"run_kind": "seq_distill"},
            "translation record labelled method 'word-kd' has run_kind 'seq_distill'; a word-kd run has run_kind "
            "'distill'")
    no_size = make_translation("qd")
    del no_size["quantization"]["size_mb"]
    refused(no_size, r"translation qd record lacks quantization keys \['size_mb'\]")
    refused(make_translation("qd") | {"quantization": None}, "translation qd record lacks quantization keys")
    uneven = make_translation(newstest=25.0)
    del uneven["metrics"]["ppl"]["newstest2013"]
    refused(uneven, "translation metrics bleu and ppl must map the same test splits")
    no_bleu = make_translation()
    del no_bleu["metrics"]["bleu_signature"]
    refused(no_bleu, r"translation record lacks metrics \['bleu_signature'\]")
    no_params = make_translation()
    del no_params["model"]["params"]
    refused(no_params, r"translation record lacks model keys \['params'\]")


def assert_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(path).ndim == 3


def test_write_plots_draws_each_translation_experiment(tmp_path):
    experiments = {"translation": {"wmt": EXPERIMENT, "empty": EMPTY}}
    written = write_plots(translation_records(), experiments, tmp_path)
    assert written == plot_paths(experiments, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "teachers.png", "translation/wmt.png", "translation/empty.png", "bleu-vs-size/wmt13.png"]
    for path in written:
        assert_png(path)
    assert (tmp_path / "translation/wmt.png").read_bytes() != (tmp_path / "translation/empty.png").read_bytes()
    assert [p.name for p in plot_paths({"translation": {}, "lit": {}}, tmp_path)] == ["teachers.png"]
    summary = translation_summary(translation_records(), {"wmt": EXPERIMENT})
    plot_bleu_vs_size(summary.iloc[:1], tmp_path / "teacher-only.png", "only the teacher")
    assert_png(tmp_path / "teacher-only.png")


def pareto_records():
    """translation_records with the 2-bit QD run's packed file at 400 bytes (the 4-bit runs': 700), and a teacher on
    a second corpus."""
    records = translation_records()
    for record in records:
        if (record["quantization"] or {}).get("bits") == 2:
            record["quantization"]["packed_bytes"] = 400
    return records


# every configuration of EXPERIMENT at its packed size (full precision: 4 bytes per parameter) and mean test BLEU:
# qd 2-bit 0.0004 MB 20, qd 4-bit 0.0007 MB 26.25, the LSTM 0.0032 MB 22, undistilled 0.004 MB 24, word-kd relu
# 0.004 MB 27.1, word-kd lma8 0.0044 MB 28, the teacher 0.02 MB 30; the LSTM and undistilled are beaten by qd 4-bit
WMT_FRONT = [("qd", "relu", 2, 0, 0.0004, 20.0), ("qd", "relu", 4, 256, 0.0007, 26.25),
             ("word-kd", "relu", 32, -1, 0.004, 27.1), ("word-kd", "lma8", 32, -1, 0.0044, 28.0),
             ("teacher", "—", 32, -1, 0.02, 30.0)]  # method, activation, bits, bucket (-1: none), MB, BLEU
# a second experiment of the corpus shares runs with the first (each configuration is one point) and one on iwslt
PARETO_EXPERIMENTS = {"wmt": EXPERIMENT, "wmt-kd": EXPERIMENT | {"methods": ["word-kd"]},
                      "iwslt": EXPERIMENT | {"corpus": "iwslt"}}


def test_pareto_translation_lists_the_front_of_bleu_against_the_packed_file(tmp_path):
    write_tables(pareto_records(), {"translation": PARETO_EXPERIMENTS}, tmp_path)
    front = pd.read_csv(tmp_path / "pareto-translation.csv")
    assert front["corpus"].tolist() == ["iwslt"] + ["wmt13"] * 5
    labels = front[["method", "activation"]].fillna("—").values.tolist()
    numbers = front[["bits", "bucket", "packed_mb", "bleu.test_mean"]].fillna(-1).round(6).values.tolist()
    assert [(*label, *number) for label, number in zip(labels, numbers, strict=True)] == [
        ("teacher", "—", 32, -1, 0.004, 27.0), *WMT_FRONT]
    assert front["student"].fillna("—").tolist() == ["—", "tf-small", "tf-small", "tf-small", "tf-small", "—"]
    assert "experiment" not in front.columns and "pareto" not in front.columns
    markdown = (tmp_path / "pareto-translation.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Translation: the Pareto front of BLEU against size on disk\n")
    header = "| corpus | teacher | student | activation | method | bits | bucket | packed (MB) | BLEU test | 95% CI |"
    assert header in markdown
    row = f"| {CORPUS} | {TEACHER} | {{}} |"
    # word-kd relu: 27.1 ± t(0.975, 1) · 0.424 / √2; qd 4-bit: 26.25 ± t(0.975, 1) · 0.354 / √2
    assert row.format("tf-small | relu | word-kd | 32 | — | 0.00400 | 27.10 ± 0.42 | [23.29, 30.91] | 2") in markdown
    assert row.format("tf-small | relu | qd | 4 | 256 | 0.000700 | 26.25 ± 0.35 | [23.07, 29.43] | 2") in markdown
    assert row.format("tf-small | relu | qd | 2 | 0 | 0.000400 | 20.00 ± — | — | 1") in markdown  # one seed
    assert row.format("— | — | teacher | 32 | — | 0.0200 | 30.00 ± — | — | 1") in markdown
    assert "| undistilled |" not in markdown
    write_tables([], {"translation": PARETO_EXPERIMENTS}, tmp_path)
    assert pd.read_csv(tmp_path / "pareto-translation.csv").empty
    assert "no finished runs" in (tmp_path / "pareto-translation.md").read_text(encoding="utf-8")


def test_bleu_vs_size_rings_the_front_of_each_corpus(tmp_path, figures):
    written = write_plots(pareto_records(), {"translation": PARETO_EXPERIMENTS}, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written][-2:] == ["bleu-vs-size/wmt13.png",
                                                                          "bleu-vs-size/iwslt.png"]
    (axes,) = figures[tmp_path / "bleu-vs-size/wmt13.png"].axes
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("size on disk (MB, packed file)", "test BLEU (sacreBLEU, 0-100)")
    (ringed,) = [collection for collection in axes.collections if isinstance(collection, PathCollection)]
    assert ringed.get_offsets()[:, 0].tolist() == pytest.approx([size for *_, size, _ in WMT_FRONT])
    assert ringed.get_offsets()[:, 1].tolist() == pytest.approx([bleu for *_, bleu in WMT_FRONT])
    # a point per configuration, each once; the LSTM names no activation (it has none to choose)
    assert sorted(text.get_text() for text in axes.texts) == [
        "2b relu per-tensor", "32b", "32b", "32b lma8", "32b relu", "32b relu", "4b relu k=256"]
    (axes,) = figures[tmp_path / "bleu-vs-size/iwslt.png"].axes
    assert len(axes.containers) == 1 and axes.legend_.get_texts()[1].get_text() == TEACHER


# ----------------------------------------------------------------------------- a real record

SYNTHETIC = "synthetic_translation"
TINY = {
    "corpus": SYNTHETIC, "model": "transformer_nmt",
    "model_kwargs": {"layers": 1, "d_model": 16, "heads": 2, "ffn": 32, "dropout": 0.0},
    "epochs": 1, "batch_tokens": 200, "eval_batch_tokens": 400, "warmup": 50, "lr": 2.0, "max_decode_ratio": 2.0,
    "device": "cpu", "threads": 1, "labels": {"corpus": SYNTHETIC, "teacher": "tiny"},
}
QD_LABELS = {"corpus": SYNTHETIC, "teacher": "tiny", "student": "tiny-student", "method": "qd", "activation": "relu"}


@pytest.fixture(scope="module")
def real_records(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A tiny teacher and a 4-bit QD student of it, one epoch each on a synthetic corpus: their record.json files."""
    root = tmp_path_factory.mktemp("translation")
    pairs = make_synthetic_translation(300, 8, seed=1, vocabulary=30, min_length=3, max_length=6)
    prepare_corpus(SYNTHETIC, pairs, root / "corpus.pt", vocab_size=80, max_length=30,
                   provenance={"source": "make_synthetic_translation(300, 8, seed=1, vocabulary=30)"})
    train_translation(build_settings(TranslationSpec, TINY, []), root / "corpus.pt", root / "teacher")
    student = build_settings(TranslationSpec, TINY | {"kind": "quantize", "labels": QD_LABELS, "kd": {}},
                             ["quant.bits=4", "quant.bucket_size=16"])
    train_translation(student, root / "corpus.pt", root / "student", teacher_path=root / "teacher" / "model.pt")
    return [root / "teacher" / "record.json", root / "student" / "record.json"]


def test_a_real_translation_record_lands_in_the_tables_and_the_plot(real_records, tmp_path):
    teacher, student = load_records(real_records)
    assert (teacher["kind"], teacher["run_kind"], student["run_kind"]) == ("translation", "teacher", "quantize")
    experiment = {"corpus": SYNTHETIC, "teacher": "tiny", "students": ["tiny-student"],
                  "activations": {"tiny-student": ["relu"]}, "methods": ["qd"], "bits": [4], "buckets": [16],
                  "seeds": [1]}
    experiments = {"translation": {"synthetic": experiment}}
    write_tables([teacher, student], experiments, tmp_path / "tables")
    runs = pd.read_csv(tmp_path / "tables" / "runs-translation.csv")
    assert runs["metrics.bleu.test"].tolist() == pytest.approx([teacher["metrics"]["bleu"]["test"],
                                                                student["metrics"]["bleu"]["test"]])
    summary = pd.read_csv(tmp_path / "tables" / "summary-translation.csv")
    assert summary["method"].tolist() == ["teacher", "qd"] and summary["bits"].tolist() == [32, 4]
    for row, record in zip(summary.to_dict("records"), (teacher, student), strict=True):
        assert row["bleu.test_n"] == 1 and row["bleu.test_mean"] == pytest.approx(record["metrics"]["final_bleu"])
        assert row["ppl.test_mean"] == pytest.approx(record["metrics"]["final_test_ppl"])
        assert row["model.params"] == record["model"]["params"]
        assert row["timing.sentences_per_s"] == pytest.approx(record["timing"]["sentences_per_s"])
        assert math.isnan(row["memory.inference_peak_bytes"])  # trained on the CPU
    assert summary.loc[0, "size_mb"] == pytest.approx(4 * teacher["model"]["params"] / 1e6)
    assert summary.loc[1, "size_mb"] == pytest.approx(student["quantization"]["size_mb"])
    assert summary.loc[1, "packed_bytes"] == student["quantization"]["packed_bytes"]
    assert summary.loc[1, "bucket"] == 16
    markdown = (tmp_path / "tables" / "summary-translation.md").read_text(encoding="utf-8")
    assert f"sacrebleu signature (of one record): `{teacher['metrics']['bleu_signature']}`" in markdown
    assert "| qd 4-bit, k=16 | tiny-student | relu |" in markdown
    written = write_plots([teacher, student], experiments, tmp_path / "plots")
    assert tmp_path / "plots" / "translation" / "synthetic.png" in written
    assert_png(tmp_path / "plots" / "translation" / "synthetic.png")
