"""The tables of finished training runs: ``runs.csv``, every run in the columns all run kinds share, and
``runs-<kind>.csv`` per record kind, that kind's records flattened (:func:`compresslib.results.runs_table`) less
the columns empty in all of its rows. ``run_dir`` joins them.

``runs.csv``'s columns (:data:`RUN_COLUMNS`) are what every training record holds whatever its kind: its folder,
kind, labelled teacher, seed and model; epochs run; parameters and float32 bytes; wall, training and mean epoch
seconds; the device; the git revision and spec hash that made it; when it finished. Three say in one column what
kinds record under different names: ``dataset`` (a translation run's corpus), ``headline_metric`` (the first of
:data:`HEADLINE_METRICS` the record has: final test accuracy, a fraction, for image and text classifiers; final
BLEU, 0 to 100, for translation) and ``headline_value``. The header is fixed: a field a record lacks is empty.

Every kind's table is written, header-only (:data:`KEY_COLUMNS`) while no run of that kind finished, so the
workflow can declare the files before any run. Importing this module loads no pandas; writing the tables does.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RUNS_TABLE", "KEY_COLUMNS", "HEADLINE_METRICS", "RUN_COLUMNS", "table_paths", "runs_overview",
           "kind_table", "write_tables"]

RUNS_TABLE = "runs.csv"
KEY_COLUMNS = ("run_dir", "kind", "seed")  # in every record's header: every kind table has them, rows or not
HEADLINE_METRICS = ("final_test_acc", "final_bleu")  # a record's headline: the first of these its metrics hold
RUN_COLUMNS = ("run_dir", "kind", "dataset", "labels.teacher", "seed", "model.name", "headline_metric",
               "headline_value", "metrics.epochs_run", "model.params", "model.bytes_fp32", "timing.wall_s",
               "timing.train_s", "timing.epoch_s_mean", "hardware.device", "hardware.device_name",
               "provenance.git_revision", "provenance.git_dirty", "spec_hash", "provenance.finished_at")


def table_paths(out_dir: str | Path, kinds: Iterable[str]) -> list[Path]:
    """``runs.csv``, then one table per kind in the order given."""
    return [Path(out_dir) / RUNS_TABLE, *(Path(out_dir) / f"runs-{kind}.csv" for kind in kinds)]


def runs_overview(records: list[dict]) -> pd.DataFrame:
    """``runs.csv``: one row per record in :data:`RUN_COLUMNS`, in :func:`~compresslib.results.runs_table`'s order."""
    from compresslib.results import runs_table  # pandas: only aggregation needs it

    return _overview(runs_table(records))


def _overview(frame: pd.DataFrame) -> pd.DataFrame:
    metrics = [f"metrics.{name}" for name in HEADLINE_METRICS]
    return frame.assign(
        dataset=_first_present(frame, ["labels.dataset", "labels.corpus"]),
        headline_metric=frame.reindex(columns=metrics).notna().idxmax(axis=1).str.removeprefix("metrics."),
        headline_value=_first_present(frame, metrics),
    ).reindex(columns=list(RUN_COLUMNS))


def _first_present(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Per row, the value of the first of ``columns`` that holds one (an absent column holds none)."""
    return frame.reindex(columns=columns).astype(object).bfill(axis=1).iloc[:, 0].infer_objects()


def kind_table(records: list[dict], kind: str) -> pd.DataFrame:
    """``runs-<kind>.csv``: the records of ``kind`` flattened, :data:`KEY_COLUMNS` first, then every column that
    holds a value in some row, in :func:`~compresslib.results.runs_table`'s order."""
    from compresslib.results import runs_table  # pandas: only aggregation needs it

    return _filled(runs_table([record for record in records if record["kind"] == kind]))


def _filled(frame: pd.DataFrame) -> pd.DataFrame:
    filled = [column for column in frame.columns if column not in KEY_COLUMNS and frame[column].notna().any()]
    return frame.reindex(columns=[*KEY_COLUMNS, *filled])


def write_tables(records: list[dict], kinds: tuple[str, ...], out_dir: str | Path) -> list[Path]:
    """Rebuild :func:`table_paths` from the records of ``kinds`` (the others are no training runs); returns them.
    Each kind's records are flattened once; the overview stacks those frames (``kind`` leads the sort, so the rows
    keep :func:`~compresslib.results.runs_table`'s order)."""
    import pandas as pd

    from compresslib.results import IDENTITY_COLUMNS, runs_table, write_csv  # pandas: only aggregation needs it

    frames = {kind: runs_table([record for record in records if record["kind"] == kind]) for kind in kinds}
    ran = [frame for frame in frames.values() if not frame.empty]  # an empty frame's columns would turn ints to floats
    overview = pd.concat(ran, ignore_index=True).sort_values(list(IDENTITY_COLUMNS), kind="stable") if ran \
        else runs_table([])
    overview_path, *kind_paths = table_paths(out_dir, kinds)
    write_csv(_overview(overview.reset_index(drop=True).copy()), overview_path)  # copy: one block per dtype
    for frame, path in zip(frames.values(), kind_paths, strict=True):
        write_csv(_filled(frame), path)
    return [overview_path, *kind_paths]
