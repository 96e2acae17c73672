"""Generic tables from run records: flattening, size columns, statistics over seeds, and Markdown.

The experiment families (``compresslib.experiments``) build their tables from these: ``runs.csv`` and the
``runs-<kind>.csv`` tables split :func:`runs_table` of every training record (``compresslib.run_tables``); a
family's summary groups its members' rows by configuration and
:func:`summarize`\\ s each group. Nothing is ever appended to an existing table: every file is rebuilt from the
records.

Statistics: ``std`` is the sample standard deviation (ddof=1); the 95% confidence interval is the Student-t
interval ``mean ± t(0.975, n-1) * std / sqrt(n)``. Both are NaN for a single run. The Markdown shows both, in the
unit of the mean (:func:`summary_estimate`).

Size columns (:func:`with_size_columns`): ``method`` (the quantization method, or a full-precision label the
family gives), ``bits`` (32 for full precision), ``bucket`` (the quantizer's bucket size, 0 for one bucket per
tensor, empty (NaN) for full precision, so the CSV tells "no buckets" from "not quantized"), ``size_mb``,
``packed_bytes``, ``fp32_over_packed`` (the float32 model's bytes over the packed file's) and
``huffman_mean_bits``.

Best epoch (:func:`with_best_epoch_column`): ``best_test_acc`` is the test accuracy of the epoch with the best
validation accuracy, and ``best_epoch_chosen_on`` says what that validation was: ``test`` (the test set itself, as
in the originals: optimistic) or ``holdout`` (a part held out of the training split).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from compresslib.io import atomic_open
from compresslib.runs.record import MODEL_KEYS, QUANTIZATION_KEYS
from compresslib.specs.training import TrainSpec

__all__ = ["SUMMARY_METRICS", "IDENTITY_COLUMNS", "SIZE_COLUMNS", "BEST_EPOCH_COLUMN", "BEST_EPOCH_LABELS",
           "INTERVAL_NOTE", "ACCURACY_NOTE", "runs_table", "with_size_columns", "with_best_epoch_column", "summarize",
           "t_half_width", "experiment_rows", "write_csv", "write_text", "write_summary", "markdown_document",
           "markdown_section", "markdown_table", "markdown_header", "markdown_row", "summary_mean_std",
           "summary_estimate", "interval", "best_epoch_policies", "best_epoch_header", "best_epoch_cells", "mean_std",
           "three_significant", "decimals", "two_decimals", "signed_two_decimals"]

SUMMARY_METRICS = ("metrics.final_test_acc", "metrics.best_test_acc")
IDENTITY_COLUMNS = ("kind", "labels.dataset", "labels.teacher", "labels.student", "activation", "activation_family",
                    "bins", "seed")
# the per-run sizes with_size_columns adds after the configuration columns (method, bits, bucket)
SIZE_COLUMNS = ("size_mb", "packed_bytes", "fp32_over_packed", "huffman_mean_bits")
BEST_EPOCH_COLUMN = "best_epoch_chosen_on"
# the Markdown header of best_test_acc by what chose its epoch (a spec's validation policy)
BEST_EPOCH_LABELS = {"test": "best epoch by test (%, optimistic)", "holdout": "best epoch by val → test (%)"}
INTERVAL_NOTE = "95% CI: the Student-t interval of that mean, in the unit of the column before it (— below two seeds)"
ACCURACY_NOTE = (
    f"mean ± std over the n seeds (sample std, ddof=1); {INTERVAL_NOTE}. Final epoch: the last epoch's test "
    "accuracy. Best epoch by test (optimistic): the test accuracy of the epoch with the best validation accuracy "
    "where the test set was the validation set (`validation: test`, as in the originals), so the test set chose the "
    "epoch; best epoch by val → test: the same where validation was a part held out of the training split "
    "(`validation: holdout`), shown where the runs have it.")


# ----------------------------------------------------------------------------- frames

def runs_table(records: list[dict]) -> pd.DataFrame:
    """One row per record, every field flattened with dots except the per-epoch ``curve``.

    Lists (and dicts left unflattened, e.g. empty ones) become JSON strings so each cell is a scalar. The identity
    columns come first and the rows are sorted by them; a translation record has no dataset, activation or bins
    (NaN there: its labels.corpus and labels.activation say them) and flattens its BLEU to
    ``metrics.bleu.<split>``.
    """
    frame = pd.json_normalize([{key: value for key, value in r.items() if key != "curve"} for r in records])
    for column in frame.columns:
        if frame[column].map(_is_nested).any():
            frame[column] = frame[column].map(lambda value: json.dumps(value) if _is_nested(value) else value)
    for column in IDENTITY_COLUMNS:
        if column not in frame.columns:
            frame[column] = np.nan  # e.g. labels.student when only teachers have finished
    frame["bins"] = frame["bins"].astype("Int64")  # null for relu/prelu/swish; keep the rest integral
    rest = [column for column in frame.columns if column not in IDENTITY_COLUMNS]
    frame = frame[[*IDENTITY_COLUMNS, *rest]]
    return frame.sort_values(list(IDENTITY_COLUMNS), kind="stable").reset_index(drop=True)


def _is_nested(value: Any) -> bool:
    return isinstance(value, (list, dict))


def with_size_columns(frame: pd.DataFrame, full_precision_method: pd.Series) -> pd.DataFrame:
    """A :func:`runs_table` frame plus ``method``, ``bits``, ``bucket`` and the :data:`SIZE_COLUMNS`.

    Quantized runs (those with a ``quantization`` section) take them from it (bucket 0: one bucket per tensor); the
    others get ``full_precision_method`` (one label per row), 32 bits, a NaN bucket, 4 bytes per parameter,
    ``fp32_over_packed`` 1 and no Huffman code length.
    """
    section = frame.reindex(columns=[f"quantization.{key}" for key in QUANTIZATION_KEYS])  # NaN with no quantized run
    section.columns = list(QUANTIZATION_KEYS)
    quantized = section["method"].notna()
    model = frame.reindex(columns=[f"model.{key}" for key in MODEL_KEYS])
    return frame.assign(
        method=full_precision_method.where(~quantized, section["method"]),
        bits=section["bits"].where(quantized, 32).astype("Int64"),
        bucket=section["bucket_size"].fillna(0).where(quantized).astype("Int64"),
        size_mb=section["size_mb"].where(quantized, 4 * model["model.params"] / 1e6).astype(float),
        packed_bytes=section["packed_bytes"].where(quantized, model["model.bytes_fp32"]).astype("Int64"),
        fp32_over_packed=section["compression"].where(quantized, 1.0).astype(float),  # the record's name for it
        huffman_mean_bits=section["huffman_mean_bits"].where(quantized).astype(float),
    )


def with_best_epoch_column(frame: pd.DataFrame) -> pd.DataFrame:
    """A :func:`runs_table` frame plus :data:`BEST_EPOCH_COLUMN`: the validation policy that chose the epoch of
    ``metrics.best_test_acc`` (``spec.validation``; a spec without it has TrainSpec's default)."""
    policy = frame.reindex(columns=["spec.validation"])["spec.validation"].astype(object)
    return frame.assign(**{BEST_EPOCH_COLUMN: policy.fillna(TrainSpec.validation)})


def summarize(
    frame: pd.DataFrame, by: list[str], metrics: Sequence[str] = SUMMARY_METRICS, means: Sequence[str] = ()
) -> pd.DataFrame:
    """Per group of ``by`` and per metric: n, mean, std, min, max and the 95% Student-t interval.

    Groups keep the order in which they first appear; a NaN key (bins of relu) is a group of its own.
    Columns are named after the metric without its ``metrics.`` prefix: ``final_test_acc_mean``. The
    columns in ``means`` follow, each as its plain mean under its own name.
    """
    by, means = list(by), list(means)
    missing = [column for column in [*by, *metrics, *means] if column not in frame.columns]
    if missing and not frame.empty:
        raise ValueError(f"summarize: frame has no columns {missing}")
    frame = frame.reindex(columns=[*frame.columns, *missing])  # an empty frame still gets its headers
    grouped = frame.groupby(by, dropna=False, sort=False)
    parts = []
    for metric in metrics:
        name = metric.removeprefix("metrics.")
        part = grouped[metric].agg(["count", "mean", "std", "min", "max"])
        n = part["count"].astype(int)
        half_width = t_half_width(part["std"], n)
        parts.append(pd.DataFrame({
            f"{name}_n": n, f"{name}_mean": part["mean"], f"{name}_std": part["std"], f"{name}_min": part["min"],
            f"{name}_max": part["max"], f"{name}_ci95_low": part["mean"] - half_width,
            f"{name}_ci95_high": part["mean"] + half_width,
        }))
    parts.append(grouped[means].mean())
    return pd.concat(parts, axis=1).reset_index()


def t_half_width(std: pd.Series, n: pd.Series) -> pd.Series:
    """Half the width of the 95% Student-t interval of a mean: ``t(0.975, n-1) * std / sqrt(n)``; NaN for n < 2, as
    the sample std is."""
    t_quantile = stats.t.ppf(0.975, np.maximum(n - 1, 1))  # clipped only to keep scipy quiet for n < 2
    return t_quantile * std / np.sqrt(n.clip(lower=1))


def experiment_rows(records: list[dict], experiments: dict, belongs: Callable[[dict, dict], bool],
                    frame: Callable[[list[dict]], pd.DataFrame],
                    order: Callable[[dict], tuple[list[str], dict, set[str]]]) -> pd.DataFrame:
    """Each experiment's member records (``belongs(record, experiment)``) as ``frame`` rows, sorted by
    ``order(experiment)`` (the sort columns, a rank per config-ordered column, the descending columns), under an
    ``experiment`` column put first. A run that several experiments ask for appears once per experiment."""
    tables = []
    for name, experiment in experiments.items():
        members = [record for record in records if belongs(record, experiment)]
        if not members:
            continue
        columns, rank, descending = order(experiment)
        rows = frame(members).sort_values(
            columns,
            ascending=[column not in descending for column in columns],
            key=lambda column: column.map(rank[column.name]) if column.name in rank else column,
            kind="stable",
        )
        tables.append(rows.assign(experiment=name))
    table = pd.concat(tables, ignore_index=True) if tables else frame([]).assign(experiment=pd.Series(dtype=str))
    return table[["experiment", *(column for column in table.columns if column != "experiment")]]


# ----------------------------------------------------------------------------- files

def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False)


def write_text(text: str, path: Path) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_summary(summary: pd.DataFrame, markdown: str, csv_path: Path, markdown_path: Path) -> None:
    """A family's table (its summary, its paired comparisons) as CSV, and its Markdown."""
    write_csv(summary, csv_path)
    write_text(markdown, markdown_path)


# ----------------------------------------------------------------------------- Markdown

def markdown_document(title: str, note: str, summary: pd.DataFrame, experiments: dict,
                      section: Callable[[str, dict, list[dict]], list[str]]) -> str:
    """A summary as Markdown: title, note, then ``section(name, experiment, its summary rows)`` per experiment."""
    lines = [title, "", note]
    for name, experiment in experiments.items():
        lines += section(name, experiment, summary[summary["experiment"] == name].to_dict("records"))
    return "\n".join(lines) + "\n"


def markdown_section(heading: str, header: list[str], rows: list[dict],
                     cells: Callable[[dict], list[str]]) -> list[str]:
    """One experiment's lines: its heading, then its rows as a table, or "no finished runs"."""
    return ["", heading, "", *markdown_table(header, [cells(row) for row in rows])]


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a table of ``rows`` (each its cells) under ``header``, or "no finished runs" without rows."""
    return [*markdown_header(header), *map(markdown_row, rows)] if rows else ["no finished runs"]


def markdown_header(header: Sequence[str]) -> list[str]:
    return [markdown_row(header), "|" + "---|" * len(header)]


def markdown_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def summary_mean_std(row: dict, metric: str, scale: float = 1.0) -> str:
    """A :func:`summarize` row's ``mean ± std`` of ``metric`` times ``scale``, two decimals."""
    return f"{two_decimals(scale * row[f'{metric}_mean'])} ± {two_decimals(scale * row[f'{metric}_std'])}"


def summary_estimate(row: dict, metric: str, scale: float = 1.0) -> list[str]:
    """Two cells of a :func:`summarize` row: ``mean ± std`` of ``metric`` and its 95% interval ``[low, high]``, both
    times ``scale`` (100: accuracy in percent), two decimals."""
    return [summary_mean_std(row, metric, scale),
            interval(scale * row[f"{metric}_ci95_low"], scale * row[f"{metric}_ci95_high"])]


def interval(low: float, high: float) -> str:
    """``[low, high]`` with two decimals; ``—`` where there is none (fewer than two seeds)."""
    return "—" if math.isnan(low) else f"[{two_decimals(low)}, {two_decimals(high)}]"


def best_epoch_policies(rows: list[dict]) -> list[str]:
    """The validation policies of the rows' best epochs, in :data:`BEST_EPOCH_LABELS` order: one column pair each."""
    present = {row[BEST_EPOCH_COLUMN] for row in rows}
    return [policy for policy in BEST_EPOCH_LABELS if policy in present]


def best_epoch_header(policies: list[str]) -> list[str]:
    return [cell for policy in policies for cell in (BEST_EPOCH_LABELS[policy], "95% CI")]


def best_epoch_cells(row: dict, policies: list[str]) -> list[str]:
    """A row's best-epoch accuracy (percent) and interval under its own policy's header, ``—`` under the others."""
    return [cell for policy in policies for cell in (
        summary_estimate(row, "best_test_acc", 100) if row[BEST_EPOCH_COLUMN] == policy else ["—", "—"])]


def mean_std(values: pd.Series, places: int) -> str:
    """``mean ± std`` of the values present (sample std); ``—`` for a missing part."""
    values = values.dropna()
    if values.empty:
        return "—"
    return f"{decimals(values.mean(), places)} ± {decimals(values.std(ddof=1), places)}"


def three_significant(value: float) -> str:
    """Three significant figures without an exponent: 0.0123, 1.23, 123, 1230."""
    if math.isnan(value):
        return "—"
    rounded = float(f"{value:.3g}")
    if rounded == 0:
        return "0"
    places = max(0, 2 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:.{places}f}"


def decimals(value: float, places: int) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.{places}f}"


def two_decimals(value: float) -> str:
    return decimals(value, 2)


def signed_two_decimals(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:+.2f}"
