"""runs.csv (the columns every run kind shares) and runs-<kind>.csv (one kind's columns), from fake records."""

import pandas as pd
import pytest
from test_results import make_quantized, make_record
from test_results_translation import CORPUS, make_translation

from compresslib import experiments
from compresslib.run_tables import KEY_COLUMNS, RUN_COLUMNS, kind_table, runs_overview, write_tables

KINDS = ("teacher", "distill", "undistilled", "quantize", "lit", "esnac", "translation")


def mixed_records():
    """An image teacher, a distilled and a quantized student, a translation teacher and its QD student."""
    return [make_record("teacher", activation="relu", final=0.93), make_record("distill", final=0.88),
            make_quantized(final=0.8), make_translation(bleu=30.0, params=5000),
            make_translation("qd", bleu=27.4, params=1000)]


def test_run_kinds_are_every_training_record_kind_in_family_order():
    assert experiments.RUN_KINDS == KINDS  # ESNAC's searches train nothing: no runs-esnac_search.csv
    names = [path.name for path in experiments.table_paths("tables")[: 1 + len(KINDS)]]
    assert names == ["runs.csv", *(f"runs-{kind}.csv" for kind in KINDS)]


def test_runs_csv_holds_the_shared_columns_and_one_headline_per_run():
    runs = runs_overview(mixed_records())
    assert runs.columns.tolist() == list(RUN_COLUMNS)
    rows = list(zip(runs["kind"], runs["dataset"], runs["headline_metric"], runs["headline_value"], strict=True))
    assert rows == [("distill", "cifar10", "final_test_acc", 0.88), ("quantize", "cifar10", "final_test_acc", 0.8),
                    ("teacher", "cifar10", "final_test_acc", 0.93), ("translation", CORPUS, "final_bleu", 27.4),
                    ("translation", CORPUS, "final_bleu", 30.0)]
    assert runs["model.params"].tolist() == [1000, 1000, 1000, 1000, 5000]
    assert runs["model.bytes_fp32"].tolist() == [4000, 4000, 4000, 4000, 20000]
    assert runs["timing.wall_s"].tolist() == [8.0, 8.0, 8.0, 30.0, 30.0]
    assert set(runs["provenance.git_revision"]) == {"abc123"} and set(runs["hardware.device"]) == {"cpu"}
    assert runs["provenance.finished_at"].isna().all()  # the fakes have none: the column stays, empty


def test_kind_tables_hold_their_kind_only_without_empty_columns():
    records = mixed_records()
    quantize, teacher = kind_table(records, "quantize"), kind_table(records, "teacher")
    translation = kind_table(records, "translation")
    for table in (quantize, teacher, translation):
        assert table.columns[: len(KEY_COLUMNS)].tolist() == list(KEY_COLUMNS)
        assert table.notna().any().all()  # no column empty in every row
    assert quantize["quantization.packed_bytes"].tolist() == [12000] and "metrics.final_bleu" not in quantize
    assert "labels.student" not in teacher and "quantization.method" not in teacher
    assert translation["metrics.bleu.test"].tolist() == [27.4, 30.0] and "activation" not in translation
    assert "quantization.packed_bytes" in translation  # the QD student's, empty for the teacher
    joined = runs_overview(records).merge(translation, on="run_dir", suffixes=("", "_kind"))
    assert joined["headline_value"].tolist() == joined["metrics.final_bleu"].tolist() == [27.4, 30.0]


@pytest.mark.parametrize("records", [[], [make_record("teacher", activation="relu")]])
def test_every_kind_table_is_written_header_only_without_runs(tmp_path, records):
    search = make_record("teacher", activation="relu") | {"kind": "esnac_search", "run_dir": "results/esnac/s"}
    written = write_tables([*records, search], KINDS, tmp_path)
    assert [path.name for path in written] == ["runs.csv", *(f"runs-{kind}.csv" for kind in KINDS)]
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert runs.columns.tolist() == list(RUN_COLUMNS) and len(runs) == len(records)  # no search row
    for kind in KINDS[1:]:
        assert (tmp_path / f"runs-{kind}.csv").read_text(encoding="utf-8") == ",".join(KEY_COLUMNS) + "\n"
    teachers = pd.read_csv(tmp_path / "runs-teacher.csv")
    assert len(teachers) == len(records) and (len(teachers.columns) > len(KEY_COLUMNS)) == bool(records)
