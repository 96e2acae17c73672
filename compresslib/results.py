"""Run records and their aggregation into tables.

Each finished training run writes one ``record.json`` (the contract between training jobs and
aggregation); so does each finished ESNAC search (kind ``esnac_search``: its candidates' rewards and its
top architectures, but no training metrics). Translation runs (kind ``translation``, written by
:mod:`compresslib.translation.train`) have their own shape: ``run_kind``, BLEU and perplexity per test split,
no image-classifier activation fields. This module reads those records and rebuilds every table from them;
nothing is ever appended to an existing table.

    runs.csv                  one row per training record, every field flattened with dots (the curve left
                              out; a translation run's BLEU as metrics.bleu.<split>); search records are not
                              training runs and are left out
    summary-teachers.csv      teachers grouped by dataset, teacher and model
    summary-distill.csv       distilled students grouped by experiment, student, activation
    seeds-distill-{best,final}.csv, seeds-distill.md
                              LMA's table: one row per student and activation, one column per seed
    summary-quantize.csv, summary-quantize.md
                              quantized students (and their full-precision references) grouped by
                              experiment, student, activation, method, bits and bucket
    summary-lit.csv, summary-lit.md
                              per LIT experiment its teacher, baselines (scratch, kd) and LIT students,
                              with parameter counts and the compression against the teacher
    summary-esnac.csv, summary-esnac.md
                              ESNAC's stat.py table: per search of an ESNAC experiment, its fully trained
                              architectures before and after full training, the best one marked; the
                              Markdown adds a comparison of the search strategies per teacher
    summary-translation.csv, summary-translation.md
                              per translation experiment its teacher, then every student, activation and
                              method (and bits and bucket for qd): BLEU and perplexity of every test split,
                              size, compression, translation speed and memory

Experiments come as ``{"distill": {name: {...}}, "quantize": {name: {...}}, "lit": {name: {...}},
"esnac": {name: {...}}, "translation": {name: {...}}}``, the config.yaml entries of each kind (see
:func:`in_experiment`, :func:`in_quantize_experiment`, :func:`in_lit_experiment`, :func:`in_esnac_experiment`
and :func:`in_translation_experiment`); any kind may be absent. An ESNAC experiment is ``{"teachers": {teacher:
{"dataset": ..., "reference": ...}}, "strategies": [...], "seeds": [...], "top_k": k}``: the searches of each
teacher on its dataset with each strategy and seed, of which the ``top_k`` best-rewarded architectures were fully
trained. ``reference`` names the teacher whose record's final test accuracy f(x) after full training is measured
against (ESNAC's stat.py used teachers trained on the full training set; it may be the searched teacher itself).
A translation experiment is ``{"corpus": ..., "teacher": ..., "students": [...], "activations": {student: [tags]},
"methods": [...], "bits": [...], "buckets": [...], "seeds": [...]}``: its teacher's runs (labels corpus and
teacher), then the students' runs of each listed method (undistilled, word-kd, seq-kd, or qd: quantized
distillation, whose bits and bucket come from the record's quantization section), FFN activation tag (``none``
for an LSTM) and seed.

Every summary but the LIT and ESNAC ones carries the size columns of :func:`with_size_columns`: ``method``
(qd, dq, pm, or fp-teacher, fp-distilled, fp-undistilled for full precision; a translation run's method label,
or teacher), ``bits`` (32 for full precision), ``bucket``, ``size_mb``, ``packed_bytes``, ``compression`` and
``huffman_mean_bits``. ``bucket`` is the quantizer's bucket size, 0 for a quantized run with one bucket per
tensor (a null bucket_size), and empty (NaN) for full precision, so the CSV tells "no buckets" from "not
quantized". LIT runs are all full precision, so summary-lit names its rows by LIT's own methods (teacher,
scratch, kd, lit) and measures size by parameter count.

ESNAC's reward of a compressed architecture x is ``f(x) = c(2 - c) * acc / teacher_acc`` with the
compression ``c = 1 - params / teacher_params``. Before full training (the search reward) both accuracies
are on the search's held-out split; after it, acc is the fully trained architecture's final test accuracy
and teacher_acc the reference teacher's final test accuracy, both read from their records.

Statistics: ``std`` is the sample standard deviation (ddof=1); the 95% confidence interval is the
Student-t interval ``mean ± t(0.975, n-1) * std / sqrt(n)``. Both are NaN for a single run.
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

__all__ = [
    "SUMMARY_METRICS",
    "IDENTITY_COLUMNS",
    "SIZE_COLUMNS",
    "load_records",
    "split_experiments",
    "in_experiment",
    "in_quantize_experiment",
    "in_lit_experiment",
    "esnac_experiments",
    "in_esnac_experiment",
    "translation_experiments",
    "in_translation_experiment",
    "lit_section_curves",
    "runs_table",
    "with_size_columns",
    "summarize",
    "experiment_table",
    "quantize_table",
    "quantize_summary",
    "seed_table",
    "lit_table",
    "lit_summary",
    "esnac_table",
    "esnac_searches",
    "translation_table",
    "translation_summary",
    "write_tables",
    "table_paths",
]

SUMMARY_METRICS = ("metrics.final_test_acc", "metrics.best_test_acc")
IDENTITY_COLUMNS = (
    "kind",
    "labels.dataset",
    "labels.teacher",
    "labels.student",
    "activation",
    "activation_family",
    "bins",
    "seed",
)
RECORD_FORMAT = 1
REQUIRED_KEYS = (
    "format",
    "kind",
    "run_dir",
    "labels",
    "activation",
    "activation_family",
    "bins",
    "seed",
    "spec",
    "metrics",
    "curve",
)
RECORD_KINDS = ("teacher", "distill", "undistilled", "quantize", "lit", "esnac")
STUDENT_KINDS = ("distill", "undistilled", "quantize", "lit")  # the kinds whose labels name a student
MODEL_KEYS = ("params", "bytes_fp32")
QUANTIZATION_KEYS = (
    "method",
    "bits",
    "bucket_size",
    "quantized_params",
    "full_precision_params",
    "huffman_mean_bits",
    "size_reduction_factor",
    "size_mb",
    "packed_bytes",
    "compression",
)
QUANTIZATION_METHODS = ("qd", "dq", "pm")
LIT_KEYS = ("phase1_epochs", "sections", "section_mse", "section_test_mse")  # what aggregation reads of "lit"
# the row of a LIT experiment each record kind stands for, in table order; scratch and kd are the baselines
LIT_METHODS = {"teacher": "teacher", "undistilled": "scratch", "distill": "kd", "lit": "lit"}
# the method column of full-precision runs, and the record kind a quantize experiment's references name
FULL_PRECISION_METHODS = {"teacher": "fp-teacher", "distill": "fp-distilled", "undistilled": "fp-undistilled"}
REFERENCE_KINDS = {"distilled": "distill", "undistilled": "undistilled"}
# what with_size_columns adds: the configuration columns every summary groups by, then the per-run sizes
METHOD_COLUMNS = ["method", "bits", "bucket"]
SIZE_COLUMNS = ("size_mb", "packed_bytes", "compression", "huffman_mean_bits")
SEED_TABLE_KEYS = ["experiment", "labels.dataset", "labels.teacher", "labels.student", "activation"]
QUANTIZE_SUMMARY_KEYS = [*SEED_TABLE_KEYS, *METHOD_COLUMNS]
TEACHER_SUMMARY_KEYS = ["labels.dataset", "labels.teacher", "model.name", *METHOD_COLUMNS]
# the seeds of one configuration are summarised together: a run's identity without kind and seed
DISTILL_SUMMARY_KEYS = [
    "experiment",
    *(column for column in IDENTITY_COLUMNS if column not in ("kind", "seed")),
    *METHOD_COLUMNS,
]
SEED_TABLE_METRICS = {"best": "metrics.best_test_acc", "final": "metrics.final_test_acc"}
LIT_SUMMARY_KEYS = ["experiment", "labels.dataset", "labels.teacher", "labels.student", "method", "model.name"]
EXPERIMENT_KINDS = ("distill", "quantize", "lit", "esnac", "translation")
# an ESNAC search's record: no training metrics, its own required keys; each architecture it kept is then fully
# trained as an ordinary training record of kind "esnac" whose labels name the search and the architecture's rank
SEARCH_KIND = "esnac_search"
SEARCH_REQUIRED_KEYS = ("format", "kind", "run_dir", "labels", "seed", "strategy", "teacher", "top", "curve")
SEARCH_LABELS = ("dataset", "teacher", "strategy")
SEARCH_TEACHER_KEYS = ("params", "val_acc")
SEARCH_TOP_KEYS = ("rank", "index", "params", "compression", "times", "val_acc", "reward")
SEARCH_CURVE_KEYS = ("index", "reward", "best_reward")
ESNAC_LABELS = ("dataset", "teacher", "strategy", "search_seed", "rank")
ESNAC_COLUMNS = [
    "experiment", "dataset", "teacher", "strategy", "seed", "rank", "index", "params", "ratio", "times",
    "acc_before", "acc_after", "f_before", "f_after", "teacher_acc", "teacher_params", "best",
]
ESNAC_SEARCH_COLUMNS = [
    "experiment", "dataset", "teacher", "strategy", "seed", "candidates", "best_reward", "best_f_after",
    "teacher_acc", "teacher_params",
]
# a translation run's record (compresslib.translation.train): no image activation fields, BLEU and perplexity per
# test split; its run_kind says which inputs trained it
TRANSLATION_KIND = "translation"
TRANSLATION_REQUIRED_KEYS = ("format", "kind", "run_kind", "run_dir", "labels", "seed", "spec", "metrics",
                             "translations", "curve", "model", "quantization", "timing", "memory")
TRANSLATION_METRICS = ("final_bleu", "bleu_signature", "final_test_ppl", "bleu", "ppl")
TRANSLATION_STUDENT_LABELS = ("corpus", "teacher", "student", "method", "activation")
# a student's method label and the run_kind train.py derives from the inputs that trained it
TRANSLATION_METHODS = {"undistilled": "undistilled", "word-kd": "distill", "seq-kd": "seq_distill", "qd": "quantize"}
TRANSLATION_TEST_SPLIT = "test"  # the first test split: always a column, and the plotted one
TRANSLATION_LABELS = ("corpus", "teacher", "student", "activation")  # the labels translation_table names plainly
TRANSLATION_SUMMARY_KEYS = ["experiment", *TRANSLATION_LABELS, *METHOD_COLUMNS]
TRANSLATION_MEASURED = ["timing.sentences_per_s", "memory.inference_peak_bytes"]  # of the first test split
TRANSLATION_MEANS = ["model.params", *SIZE_COLUMNS, *TRANSLATION_MEASURED]


# ----------------------------------------------------------------------------- reading records


def load_records(paths: Iterable[str | Path]) -> list[dict]:
    """Read record.json files, in the order given; every error names the file it comes from."""
    records = []
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"record file not found: {path}")
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        _check_record(record, path)
        records.append(record)
    return records


def _check_record(record: Any, path: Path) -> None:
    if not isinstance(record, dict):
        raise ValueError(f"{path}: a record must be a JSON object, got {type(record).__name__}")
    if record.get("kind") == SEARCH_KIND:
        _check_search_record(record, path)
        return
    if record.get("kind") == TRANSLATION_KIND:
        _check_translation_record(record, path)
        return
    _require(record, REQUIRED_KEYS, path, "record lacks required keys")
    _check_format(record, path)
    if record["kind"] not in RECORD_KINDS:
        raise ValueError(f"{path}: record kind {record['kind']!r}, expected one of {RECORD_KINDS}")
    label_keys = ("dataset", "teacher", "student") if record["kind"] in STUDENT_KINDS else ("dataset", "teacher")
    label_keys = ESNAC_LABELS if record["kind"] == "esnac" else label_keys
    _require(record["labels"], label_keys, path, f"{record['kind']} record lacks labels")
    _require(record["metrics"], [key.removeprefix("metrics.") for key in SUMMARY_METRICS], path,
             "record lacks metrics")
    _require(record.get("model"), MODEL_KEYS, path, "record lacks model keys")  # every size column starts from them
    if record["kind"] == "lit":
        _require(record.get("lit"), LIT_KEYS, path, "lit record lacks lit keys")
        lit_section_curves(record, source=path)
    if record["kind"] == "quantize":
        _check_quantization(record, path, "quantize")


def _require(section: dict | None, keys: Iterable[str], path: Path, what: str) -> None:
    """Raise ``<path>: <what> [the keys section lacks]`` when ``section`` (None: empty) lacks any of ``keys``."""
    missing = [key for key in keys if key not in (section or {})]
    if missing:
        raise ValueError(f"{path}: {what} {missing}")


def _check_format(record: dict, path: Path) -> None:
    if record["format"] != RECORD_FORMAT:
        raise ValueError(f"{path}: record format {record['format']!r}, expected {RECORD_FORMAT}")


def _check_quantization(record: dict, path: Path, what: str) -> None:
    """A quantized run's ``quantization`` section: every key the size columns read, and a known method."""
    _require(record.get("quantization"), QUANTIZATION_KEYS, path, f"{what} record lacks quantization keys")
    method = record["quantization"]["method"]
    if method not in QUANTIZATION_METHODS:
        raise ValueError(f"{path}: quantization method {method!r}, not one of {QUANTIZATION_METHODS}")


def _check_translation_record(record: dict, path: Path) -> None:
    """A translation record: its own keys; labels naming corpus and teacher (a student's also its student, method
    and activation, the method agreeing with the run_kind); BLEU and perplexity of the same test splits; a qd
    student's quantization facts."""
    _require(record, TRANSLATION_REQUIRED_KEYS, path, f"{TRANSLATION_KIND} record lacks required keys")
    _check_format(record, path)
    run_kind, labels, metrics = record["run_kind"], record["labels"], record["metrics"]
    if run_kind != "teacher" and run_kind not in TRANSLATION_METHODS.values():
        raise ValueError(f"{path}: {TRANSLATION_KIND} run_kind {run_kind!r}, expected teacher or one of "
                         f"{sorted(TRANSLATION_METHODS.values())}")
    label_keys = TRANSLATION_STUDENT_LABELS if run_kind != "teacher" else ("corpus", "teacher")
    _require(labels, label_keys, path, f"{TRANSLATION_KIND} {run_kind} record lacks labels")
    if run_kind != "teacher":
        method = labels["method"]
        if method not in TRANSLATION_METHODS:
            raise ValueError(f"{path}: {TRANSLATION_KIND} method label {method!r}, not one of "
                             f"{list(TRANSLATION_METHODS)}")
        if TRANSLATION_METHODS[method] != run_kind:  # the workflow's label and the inputs it trained with disagree
            raise ValueError(f"{path}: {TRANSLATION_KIND} record labelled method {method!r} has run_kind {run_kind!r}; "
                             f"a {method} run has run_kind {TRANSLATION_METHODS[method]!r}")
    _require(metrics, TRANSLATION_METRICS, path, f"{TRANSLATION_KIND} record lacks metrics")
    if not (isinstance(metrics["bleu"], dict) and isinstance(metrics["ppl"], dict)
            and metrics["bleu"].keys() == metrics["ppl"].keys()):
        raise ValueError(f"{path}: {TRANSLATION_KIND} metrics bleu and ppl must map the same test splits to numbers, "
                         f"got {metrics['bleu']!r} and {metrics['ppl']!r}")
    _require(record["model"], MODEL_KEYS, path, f"{TRANSLATION_KIND} record lacks model keys")
    if run_kind == "quantize":
        _check_quantization(record, path, f"{TRANSLATION_KIND} qd")


def _check_search_record(record: dict, path: Path) -> None:
    """An ESNAC search record: its own keys, labels naming its strategy, a teacher, top architectures and a curve."""
    _require(record, SEARCH_REQUIRED_KEYS, path, f"{SEARCH_KIND} record lacks required keys")
    _check_format(record, path)
    _require(record["labels"], SEARCH_LABELS, path, f"{SEARCH_KIND} record lacks labels")
    if record["labels"]["strategy"] != record["strategy"]:
        raise ValueError(f"{path}: {SEARCH_KIND} record's strategy {record['strategy']!r} disagrees with its "
                         f"label {record['labels']['strategy']!r}")
    _require(record["teacher"], SEARCH_TEACHER_KEYS, path, f"{SEARCH_KIND} record lacks teacher keys")
    if not isinstance(record["top"], list):
        raise ValueError(f"{path}: {SEARCH_KIND} record's top must be a list, got {type(record['top']).__name__}")
    for entry in record["top"]:
        what = f"{SEARCH_KIND} record's top architecture {entry.get('rank')!r} lacks keys"
        _require(entry, SEARCH_TOP_KEYS, path, what)
    _require(record["curve"], SEARCH_CURVE_KEYS, path, f"{SEARCH_KIND} record lacks curve keys")
    lengths = [len(record["curve"][key]) for key in SEARCH_CURVE_KEYS]
    if len(set(lengths)) != 1:
        raise ValueError(f"{path}: {SEARCH_KIND} curve has {dict(zip(SEARCH_CURVE_KEYS, lengths, strict=True))} "
                         "values; expected one of each per evaluated candidate")


def _experiment_kinds(experiments: dict) -> dict[str, dict]:
    """Every kind of :data:`EXPERIMENT_KINDS` to its experiments (``{}`` where absent); any other key is an error."""
    unknown = sorted(set(experiments) - set(EXPERIMENT_KINDS))
    if unknown:
        expected = ", ".join(f"{kind!r}: ..." for kind in EXPERIMENT_KINDS)
        raise ValueError(f"experiments: unknown kinds {unknown}; expected {{{expected}}}")
    return {kind: experiments.get(kind) or {} for kind in EXPERIMENT_KINDS}


def split_experiments(experiments: dict) -> tuple[dict, dict, dict]:
    """The distill, quantize and lit experiments of ``{"distill": {...}, "quantize": {...}, "lit": {...},
    "esnac": {...}, "translation": {...}}`` (the esnac and translation ones come from :func:`esnac_experiments` and
    :func:`translation_experiments`).

    Any kind may be absent (it has no experiments). Any other key is an error, so the older
    ``{name: experiment}`` shape fails loudly instead of matching nothing.
    """
    kinds = _experiment_kinds(experiments)
    return kinds["distill"], kinds["quantize"], kinds["lit"]


def esnac_experiments(experiments: dict) -> dict:
    """The ESNAC experiments (``{name: experiment}``) of the experiments by kind, checked as in
    :func:`split_experiments`."""
    return _experiment_kinds(experiments)["esnac"]


def translation_experiments(experiments: dict) -> dict:
    """The translation experiments (``{name: experiment}``) of the experiments by kind, checked as in
    :func:`split_experiments`."""
    return _experiment_kinds(experiments)["translation"]


def in_experiment(record: dict, experiment: dict) -> bool:
    """Whether a record is one of the distilled runs that an experiment (a config.yaml entry) asks for.

    An experiment that names a ``dataset`` also matches on it; the teacher name alone usually implies it.
    """
    labels = record["labels"]
    return (
        record["kind"] == "distill"
        and labels["teacher"] == experiment["teacher"]
        and labels.get("student") in experiment["students"]
        and record["activation"] in experiment["activations"]
        and record["seed"] in experiment["seeds"]
        and experiment.get("dataset") in (None, labels["dataset"])
    )


def in_quantize_experiment(record: dict, experiment: dict) -> bool:
    """Whether a record is a quantized run of a quantize experiment, or one of its full-precision references.

    Quantized runs match on method, bits and bucket size (null: one bucket per tensor) besides the student
    run; ``references`` ("distilled", "undistilled") adds the full-precision students of the same runs.
    """
    labels = record["labels"]
    if record["kind"] == "quantize":
        quantization = record["quantization"]
        wanted = (
            quantization["method"] in experiment["methods"]
            and quantization["bits"] in experiment["bits"]
            and quantization["bucket_size"] in experiment["buckets"]
        )
    else:
        wanted = record["kind"] in {REFERENCE_KINDS[reference] for reference in experiment["references"]}
    return (
        wanted
        and labels["teacher"] == experiment["teacher"]
        and labels.get("student") in experiment["students"]
        and record["activation"] in experiment["activations"]
        and record["seed"] in experiment["seeds"]
        and experiment.get("dataset") in (None, labels["dataset"])
    )


def in_lit_experiment(record: dict, experiment: dict) -> bool:
    """Whether a record is a row of a LIT experiment: its teacher, one of its baselines, or one of its LIT runs.

    The teacher is every teacher record of the experiment's dataset and teacher label; the baselines
    ("scratch": undistilled, "kd": distilled) and the LIT runs must also match its student, activation and seeds.
    """
    labels = record["labels"]
    if record["kind"] not in LIT_METHODS:  # e.g. a translation run, whose labels name no dataset
        return False
    if (labels["dataset"], labels["teacher"]) != (experiment["dataset"], experiment["teacher"]):
        return False
    if record["kind"] == "teacher":
        return True
    return (
        LIT_METHODS[record["kind"]] in {"lit", *experiment["baselines"]}
        and labels["student"] == experiment["student"]
        and record["activation"] == experiment["activation"]
        and record["seed"] in experiment["seeds"]
    )


def in_esnac_experiment(record: dict, experiment: dict) -> bool:
    """Whether a record belongs to an ESNAC experiment: one of its searches, the full training of one of their
    ``top_k`` architectures, or the reference teacher of one of its teachers.

    A search or full training matches on the teacher and its dataset, the strategy and the (search) seed.
    """
    labels = record["labels"]
    if record["kind"] == "teacher":
        return any((labels["dataset"], labels["teacher"]) == (entry["dataset"], entry["reference"])
                   for entry in experiment["teachers"].values())
    if record["kind"] == SEARCH_KIND:
        seed = record["seed"]
    elif record["kind"] == "esnac":
        seed = labels["search_seed"]
        if labels["rank"] >= experiment["top_k"]:
            return False
    else:
        return False
    entry = experiment["teachers"].get(labels["teacher"])
    return (
        entry is not None
        and labels["dataset"] == entry["dataset"]
        and labels["strategy"] in experiment["strategies"]
        and seed in experiment["seeds"]
    )


def in_translation_experiment(record: dict, experiment: dict) -> bool:
    """Whether a record is a row of a translation experiment: its teacher, or a student run it asks for.

    The teacher is every translation teacher record of the experiment's corpus and teacher label (whatever its
    seed); a student run must match a listed student, one of that student's activations, a method and a seed,
    and a qd run also the bits and bucket size (null: one bucket per tensor) of its quantization section.
    """
    if record["kind"] != TRANSLATION_KIND:
        return False
    labels = record["labels"]
    if (labels["corpus"], labels["teacher"]) != (experiment["corpus"], experiment["teacher"]):
        return False
    if record["run_kind"] == "teacher":
        return True
    quantization = record["quantization"]
    return (
        labels["student"] in experiment["students"]
        and labels["activation"] in experiment["activations"].get(labels["student"], [])
        and labels["method"] in experiment["methods"]
        and record["seed"] in experiment["seeds"]
        and (labels["method"] != "qd"
             or (quantization["bits"] in experiment["bits"] and quantization["bucket_size"] in experiment["buckets"]))
    )


def lit_section_curves(record: dict, source: str | Path | None = None) -> tuple[list[list[float]], list[list[float]]]:
    """A LIT record's per-section MSE curves, train and test: one curve per section, one value per phase-1 epoch.

    Raises ValueError naming ``source`` (default: the record's run_dir) when their number disagrees with
    ``lit.sections`` or their length with ``lit.phase1_epochs``.
    """
    source = record["run_dir"] if source is None else source
    lit = record["lit"]
    curves = {key: lit[key] for key in ("section_mse", "section_test_mse")}
    for key, per_section in curves.items():
        if len(per_section) != lit["sections"]:
            raise ValueError(f"{source}: LIT record has {lit['sections']} sections but {len(per_section)} {key} curves")
        lengths = [len(curve) for curve in per_section]
        if any(length != lit["phase1_epochs"] for length in lengths):
            raise ValueError(
                f"{source}: LIT {key} curves have {lengths} values; "
                f"expected {lit['phase1_epochs']}, one per phase-1 epoch"
            )
    return curves["section_mse"], curves["section_test_mse"]


# ----------------------------------------------------------------------------- tables


def runs_table(records: list[dict]) -> pd.DataFrame:
    """One row per training record, every field flattened with dots except the per-epoch ``curve``.

    Search records (kind ``esnac_search``) are no training runs and are left out. Lists (and dicts left
    unflattened, e.g. empty ones) become JSON strings so each cell is a scalar. The identity columns come
    first and the rows are sorted by them; a translation record has no dataset, activation or bins (NaN there:
    its labels.corpus and labels.activation say them) and flattens its BLEU to ``metrics.bleu.<split>``.
    """
    records = [r for r in records if r["kind"] != SEARCH_KIND]
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


def with_size_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """A :func:`runs_table` frame plus ``method``, ``bits``, ``bucket`` and the :data:`SIZE_COLUMNS`.

    Quantized runs (and qd translation runs) take them from their ``quantization`` section (bucket 0: one
    bucket per tensor); full precision runs get their kind's fp-method (a translation run its method label, or
    teacher), 32 bits, a NaN bucket, 4 bytes per parameter, compression 1 and no Huffman code length.
    """
    translation = frame["kind"] == TRANSLATION_KIND
    run = frame.reindex(columns=["run_kind", "labels.method"]).astype(object)  # NaN without translation runs
    quantized = (frame["kind"] == "quantize") | (translation & (run["run_kind"] == "quantize"))
    full_precision = frame["kind"].map(FULL_PRECISION_METHODS).where(
        ~translation, run["labels.method"].fillna("teacher"))  # a translation teacher has no method label
    section = frame.reindex(columns=[f"quantization.{key}" for key in QUANTIZATION_KEYS])  # NaN with no quantized run
    section.columns = list(QUANTIZATION_KEYS)
    model = frame.reindex(columns=[f"model.{key}" for key in MODEL_KEYS])
    return frame.assign(
        method=full_precision.where(~quantized, section["method"]),
        bits=section["bits"].where(quantized, 32).astype("Int64"),
        bucket=section["bucket_size"].fillna(0).where(quantized).astype("Int64"),
        size_mb=section["size_mb"].where(quantized, 4 * model["model.params"] / 1e6).astype(float),
        packed_bytes=section["packed_bytes"].where(quantized, model["model.bytes_fp32"]).astype("Int64"),
        compression=section["compression"].where(quantized, 1.0).astype(float),
        huffman_mean_bits=section["huffman_mean_bits"].where(quantized).astype(float),
    )


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
        t_quantile = stats.t.ppf(0.975, np.maximum(n - 1, 1))  # clipped only to keep scipy quiet for n < 2
        half_width = t_quantile * part["std"] / np.sqrt(n.clip(lower=1))  # NaN for n < 2, as std is
        parts.append(
            pd.DataFrame(
                {
                    f"{name}_n": n,
                    f"{name}_mean": part["mean"],
                    f"{name}_std": part["std"],
                    f"{name}_min": part["min"],
                    f"{name}_max": part["max"],
                    f"{name}_ci95_low": part["mean"] - half_width,
                    f"{name}_ci95_high": part["mean"] + half_width,
                }
            )
        )
    parts.append(grouped[means].mean())
    return pd.concat(parts, axis=1).reset_index()


def experiment_table(records: list[dict], experiments: dict) -> pd.DataFrame:
    """Distilled runs per experiment: the runs_table rows of each member, with an ``experiment`` column.

    A run that several experiments ask for appears once per experiment. Experiments keep their config
    order; inside one, rows follow the config's student and activation order, then the seed.
    """

    def order(experiment: dict) -> tuple[list[str], dict, set[str]]:
        rank = {"labels.student": _positions(experiment["students"]),
                "activation": _positions(experiment["activations"])}
        return ["labels.student", "activation", "seed"], rank, set()

    return _experiment_rows(records, experiments, in_experiment, runs_table, order)


def quantize_table(records: list[dict], experiments: dict) -> pd.DataFrame:
    """The rows of each quantize experiment (``{name: experiment}``) with an ``experiment`` column and the size columns.

    Rows follow the config: experiment, student, activation, then method (fp-undistilled, fp-distilled,
    then the experiment's methods), bits descending, the experiment's bucket order, and the seed.
    """

    def order(experiment: dict) -> tuple[list[str], dict, set[str]]:
        methods = [FULL_PRECISION_METHODS["undistilled"], FULL_PRECISION_METHODS["distill"], *experiment["methods"]]
        rank = {
            "labels.student": _positions(experiment["students"]),
            "activation": _positions(experiment["activations"]),
            "method": _positions(methods),
            "bucket": _positions([0 if bucket is None else bucket for bucket in experiment["buckets"]]),
        }
        return ["labels.student", "activation", "method", "bits", "bucket", "seed"], rank, {"bits"}

    return _experiment_rows(records, experiments, in_quantize_experiment,
                            lambda members: with_size_columns(runs_table(members)), order)


def _experiment_rows(records: list[dict], experiments: dict, belongs: Callable[[dict, dict], bool],
                     frame: Callable[[list[dict]], pd.DataFrame],
                     order: Callable[[dict], tuple[list[str], dict, set[str]]]) -> pd.DataFrame:
    """Each experiment's member records as ``frame`` rows, sorted by ``order(experiment)`` (the sort columns, a
    rank per config-ordered column, the descending columns), under an ``experiment`` column put first."""
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


def _positions(values: Sequence) -> dict:
    return {value: i for i, value in enumerate(values)}


def lit_table(records: list[dict], experiments: dict) -> pd.DataFrame:
    """The rows of each LIT experiment (``{name: experiment}``) with ``experiment`` and ``method`` columns.

    Rows go teacher, scratch, kd, lit (only the baselines an experiment lists), then by seed. The teacher's
    rows carry the experiment's student label too, so every row names the pair it belongs to.
    """

    def frame(members: list[dict]) -> pd.DataFrame:
        rows = runs_table(members)
        return rows.assign(method=rows["kind"].map(LIT_METHODS))

    def order(experiment: dict) -> tuple[list[str], dict, set[str]]:
        return ["method", "seed"], {"method": _positions(list(LIT_METHODS.values()))}, set()

    table = _experiment_rows(records, experiments, in_lit_experiment, frame, order)
    students = table["experiment"].map({name: experiment["student"] for name, experiment in experiments.items()})
    return table.assign(**{"labels.student": table["labels.student"].fillna(students)})


def lit_summary(records: list[dict], experiments: dict) -> pd.DataFrame:
    """summary-lit.csv: per LIT experiment and method, the accuracy statistics, the mean parameter count and
    ``compression_vs_teacher`` (the teacher's parameters over the row's; NaN while the teacher is missing)."""
    summary = summarize(lit_table(records, experiments), LIT_SUMMARY_KEYS, means=["model.params"])
    teacher_params = summary[summary["method"] == "teacher"].set_index("experiment")["model.params"]
    return summary.assign(compression_vs_teacher=summary["experiment"].map(teacher_params) / summary["model.params"])


def esnac_table(records: list[dict], experiments: dict) -> pd.DataFrame:
    """summary-esnac.csv, ESNAC's stat.py table: per search of each ESNAC experiment (``{name: experiment}``), one
    row per fully trained architecture (the ``top_k`` best by search reward).

    Columns :data:`ESNAC_COLUMNS`: ``seed`` is the search's seed; ``rank`` the architecture's place by search
    reward (ESNAC's Index, ``arch-<rank>``) and ``index`` its place in the search's evaluation order; ``ratio``
    the compression c and ``times`` 1/(1 - c); ``acc_before`` and ``f_before`` its search accuracy and reward;
    ``acc_after`` the test accuracy of its full training's saved model (``selected_test_acc``: the final epoch's,
    or the best epoch's with ``selection: best`` as ESNAC; NaN until that run finished); ``teacher_acc`` the
    reference teacher's final test accuracy (NaN while its record is missing); ``f_after = c(2 - c) * acc_after /
    teacher_acc``; ``best`` marks the architecture of the search with the highest f_after (none while no
    architecture has one). Rows follow the config: experiment, teacher, strategy, seed, then rank; a search
    that several experiments ask for appears under each.
    """
    return _esnac_frames(records, experiments)[0]


def esnac_searches(records: list[dict], experiments: dict) -> pd.DataFrame:
    """One row per search of each ESNAC experiment (:data:`ESNAC_SEARCH_COLUMNS`), in :func:`esnac_table`'s order:
    the candidates it evaluated, its best search reward, the best f_after of its fully trained architectures
    (NaN while none finished), and its teacher's accuracy and parameter count as :func:`esnac_table` has them."""
    return _esnac_frames(records, experiments)[1]


def _esnac_frames(records: list[dict], experiments: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`esnac_table` and :func:`esnac_searches` in one pass over the experiments."""
    searches, finals, teachers = {}, {}, {}  # each record under its key, to find the one record of a key
    for record in records:
        labels = record["labels"]
        if record["kind"] == SEARCH_KIND:
            key = (labels["dataset"], labels["teacher"], record["strategy"], record["seed"])
            searches.setdefault(key, []).append(record)
        elif record["kind"] == "esnac":
            finals.setdefault(tuple(labels[key] for key in ESNAC_LABELS), []).append(record)
        elif record["kind"] == "teacher":
            teachers.setdefault((labels["dataset"], labels["teacher"]), []).append(record)
    rows, search_rows = [], []
    for name, experiment in experiments.items():
        for teacher, entry in experiment["teachers"].items():
            dataset = entry["dataset"]
            reference = _only(teachers.get((dataset, entry["reference"]), []),
                              f"reference teacher {entry['reference']!r} on {dataset!r}")
            teacher_acc = math.nan if reference is None else float(reference["metrics"]["final_test_acc"])
            for strategy in experiment["strategies"]:
                for seed in experiment["seeds"]:
                    key = (dataset, teacher, strategy, seed)
                    search = _only(searches.get(key, []),
                                   f"search of {teacher!r} on {dataset!r}, {strategy}, seed {seed}")
                    if search is None:
                        continue
                    architectures = _esnac_architectures(search, key, finals, experiment["top_k"], teacher_acc)
                    rows += [{"experiment": name, **row} for row in architectures]
                    search_rows.append({
                        "experiment": name, "dataset": dataset, "teacher": teacher, "strategy": strategy, "seed": seed,
                        "candidates": len(search["curve"]["best_reward"]),
                        "best_reward": max(search["curve"]["reward"], default=math.nan),
                        "best_f_after": max((row["f_after"] for row in architectures if row["best"]), default=math.nan),
                        "teacher_acc": teacher_acc, "teacher_params": search["teacher"]["params"],
                    })
    table = pd.DataFrame(rows, columns=ESNAC_COLUMNS).astype({"best": bool})
    return table, pd.DataFrame(search_rows, columns=ESNAC_SEARCH_COLUMNS)


def _esnac_architectures(search: dict, key: tuple, finals: dict, top_k: int, teacher_acc: float) -> list[dict]:
    """The stat.py rows (without ``experiment``) of a search's ``top_k`` architectures, by rank: each with the final
    test accuracy of its full training (the one record of ``finals[(*key, rank)]``) and ``f_after`` against
    ``teacher_acc``; the best by f_after marked."""
    dataset, teacher, strategy, seed = key
    rows = []
    for top in sorted(search["top"], key=lambda top: top["rank"]):
        if top["rank"] >= top_k:
            continue
        final = _only(finals.get((*key, top["rank"]), []),
                      f"full training of rank {top['rank']} of the {strategy} search of {teacher!r} on {dataset!r}, "
                      f"seed {seed}")
        c = float(top["compression"])
        acc_after = math.nan if final is None else float(final["metrics"]["selected_test_acc"])
        rows.append({
            "dataset": dataset, "teacher": teacher, "strategy": strategy, "seed": seed, "rank": top["rank"],
            "index": top["index"], "params": top["params"], "ratio": c, "times": float(top["times"]),
            "acc_before": float(top["val_acc"]), "acc_after": acc_after, "f_before": float(top["reward"]),
            "f_after": c * (2 - c) * acc_after / teacher_acc, "teacher_acc": teacher_acc,
            "teacher_params": search["teacher"]["params"], "best": False,
        })
    f_after = [row["f_after"] for row in rows]
    if not all(math.isnan(value) for value in f_after):
        rows[int(np.nanargmax(f_after))]["best"] = True  # a tie goes to the better search reward (lower rank)
    return rows


def _only(records: list[dict], what: str) -> dict | None:
    """The one record of ``records``, None for none; several are an error naming their run directories."""
    if len(records) > 1:
        raise ValueError(f"more than one record for the {what}: {[r['run_dir'] for r in records]}")
    return records[0] if records else None


def quantize_summary(records: list[dict], experiments: dict) -> pd.DataFrame:
    """summary-quantize.csv: the accuracy statistics and mean sizes of every configuration of :func:`quantize_table`."""
    return summarize(quantize_table(records, experiments), QUANTIZE_SUMMARY_KEYS, means=SIZE_COLUMNS)


def translation_table(records: list[dict], experiments: dict) -> pd.DataFrame:
    """The rows of each translation experiment (``{name: experiment}``): the :func:`with_size_columns` frame of its
    members, with the columns ``experiment``, ``corpus``, ``teacher``, ``student``, ``activation`` (NaN for the
    teacher) put first.

    Rows follow the config: experiment, the teacher's runs, then student, activation (in the order first listed),
    method, bits descending, the experiment's bucket order, and the seed.
    """

    def frame(members: list[dict]) -> pd.DataFrame:
        rows = with_size_columns(runs_table(members))
        labels = rows.reindex(columns=[f"labels.{key}" for key in TRANSLATION_LABELS])
        labels.columns = list(TRANSLATION_LABELS)
        rows[TRANSLATION_MEASURED] = rows.reindex(columns=TRANSLATION_MEASURED).astype(float)  # null: not measured
        # runs_table's image activation column is NaN for translation runs: the label takes its place
        return pd.concat([labels, rows.drop(columns=list(TRANSLATION_LABELS), errors="ignore")], axis=1)

    def order(experiment: dict) -> tuple[list[str], dict, set[str]]:
        activations = dict.fromkeys(tag for tags in experiment["activations"].values() for tag in tags)
        rank = {
            "run_kind": {"teacher": 0},  # the teacher first; every student's run_kind ties (NaN) and sorts on
            "student": _positions(experiment["students"]),
            "activation": _positions(list(activations)),
            "method": _positions(experiment["methods"]),
            "bucket": _positions([0 if bucket is None else bucket for bucket in experiment["buckets"]]),
        }
        return ["run_kind", "student", "activation", "method", "bits", "bucket", "seed"], rank, {"bits"}

    return _experiment_rows(records, experiments, in_translation_experiment, frame, order)


def translation_summary(records: list[dict], experiments: dict) -> pd.DataFrame:
    """summary-translation.csv: per configuration of :func:`translation_table` (:data:`TRANSLATION_SUMMARY_KEYS`),
    the statistics of BLEU (``bleu.<split>_mean``, ...) then of perplexity (``ppl.<split>_mean``, ...) of every test
    split present ("test" always, first), then the means of :data:`TRANSLATION_MEANS`."""
    table = translation_table(records, experiments)
    present = {column.removeprefix("metrics.bleu.") for column in table.columns if column.startswith("metrics.bleu.")}
    splits = [TRANSLATION_TEST_SPLIT, *sorted(present - {TRANSLATION_TEST_SPLIT})]
    metrics = [f"metrics.{metric}.{split}" for metric in ("bleu", "ppl") for split in splits]
    table = table.reindex(columns=[*table.columns, *(metric for metric in metrics if metric not in table.columns)])
    return summarize(table, TRANSLATION_SUMMARY_KEYS, metrics=metrics, means=TRANSLATION_MEANS)


def seed_table(frame: pd.DataFrame, metric: str = "metrics.best_test_acc") -> pd.DataFrame:
    """LMA's table: one row per (experiment, dataset, teacher, student, activation), accuracy in percent.

    Columns ``seed<s>`` for every seed present in ``frame`` (NaN where a run is missing), then the mean,
    std (ddof=1) and number of the seeds present in that row. Rows keep the order of ``frame``.
    """
    keys = SEED_TABLE_KEYS
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "mean", "std", "n"])
    duplicated = frame.duplicated([*keys, "seed"], keep=False)
    if duplicated.any():
        runs = frame.loc[duplicated, "run_dir"].tolist()
        raise ValueError(f"seed_table: more than one record for the same experiment, run and seed: {runs}")
    seeds = sorted(frame["seed"].unique())
    seed_columns = [f"seed{seed}" for seed in seeds]
    percent = frame.set_index([*keys, "seed"])[metric].astype(float) * 100
    table = percent.unstack("seed").reindex(columns=seeds)
    table = table.reindex(pd.MultiIndex.from_frame(frame[keys].drop_duplicates()))  # unstack sorted the rows
    table.columns = seed_columns
    table["mean"] = table[seed_columns].mean(axis=1)
    table["std"] = table[seed_columns].std(axis=1, ddof=1)
    table["n"] = table[seed_columns].count(axis=1)
    return table.reset_index()


# ----------------------------------------------------------------------------- writing


def table_paths(out_dir: str | Path) -> list[Path]:
    """Every file :func:`write_tables` writes (the workflow declares them as outputs)."""
    out_dir = Path(out_dir)
    names = [
        "runs.csv",
        "summary-teachers.csv",
        "summary-distill.csv",
        *(f"seeds-distill-{which}.csv" for which in SEED_TABLE_METRICS),
        "seeds-distill.md",
        "summary-quantize.csv",
        "summary-quantize.md",
        "summary-lit.csv",
        "summary-lit.md",
        "summary-esnac.csv",
        "summary-esnac.md",
        "summary-translation.csv",
        "summary-translation.md",
    ]
    return [out_dir / name for name in names]


def write_tables(records: list[dict], experiments: dict, out_dir: str | Path) -> list[Path]:
    """Rebuild every table in ``out_dir`` from the records; returns :func:`table_paths`.

    ``experiments`` is ``{"distill": {...}, "quantize": {...}, "lit": {...}, "esnac": {...}, "translation": {...}}``.
    Works with no distilled, quantized, LIT, ESNAC or translation runs (or experiments) yet: those tables are
    written with their headers only.
    """
    distill_experiments, quantize_experiments, lit_experiments = split_experiments(experiments)
    esnac = esnac_experiments(experiments)
    translation_exps = translation_experiments(experiments)
    (runs_path, teachers_path, distill_path, *seed_paths, markdown_path, quantize_path, quantize_markdown_path,
     lit_path, lit_markdown_path, esnac_path, esnac_markdown_path, translation_path,
     translation_markdown_path) = table_paths(out_dir)
    runs = runs_table(records)
    distill = experiment_table(records, distill_experiments)
    teachers = with_size_columns(runs[runs["kind"] == "teacher"])
    _write_csv(runs, runs_path)
    _write_csv(summarize(teachers, TEACHER_SUMMARY_KEYS, means=SIZE_COLUMNS), teachers_path)
    _write_csv(summarize(with_size_columns(distill), DISTILL_SUMMARY_KEYS, means=SIZE_COLUMNS), distill_path)
    seed_tables = {which: seed_table(distill, metric) for which, metric in SEED_TABLE_METRICS.items()}
    for path, table in zip(seed_paths, seed_tables.values(), strict=True):
        _write_csv(table, path)
    sections = [
        f"## {which.capitalize()} epoch: `{metric}`\n\n{_markdown_seed_table(seed_tables[which])}"
        for which, metric in SEED_TABLE_METRICS.items()
    ]
    with atomic_open(markdown_path, "w", encoding="utf-8") as handle:
        handle.write("# Distilled students: test accuracy (%) per seed\n\n")
        handle.write("std is the sample standard deviation (ddof=1) over the n seeds present in the row.\n\n")
        handle.write("\n".join(sections))
    quantize = quantize_summary(records, quantize_experiments)
    _write_csv(quantize, quantize_path)
    with atomic_open(quantize_markdown_path, "w", encoding="utf-8") as handle:
        handle.write(_markdown_quantize_summary(quantize, quantize_experiments))
    lit = lit_summary(records, lit_experiments)
    _write_csv(lit, lit_path)
    with atomic_open(lit_markdown_path, "w", encoding="utf-8") as handle:
        handle.write(_markdown_lit_summary(lit, lit_experiments))
    architectures, searches = _esnac_frames(records, esnac)
    _write_csv(architectures, esnac_path)
    with atomic_open(esnac_markdown_path, "w", encoding="utf-8") as handle:
        handle.write(_markdown_esnac_summary(architectures, searches, esnac))
    translation = translation_summary(records, translation_exps)
    _write_csv(translation, translation_path)
    with atomic_open(translation_markdown_path, "w", encoding="utf-8") as handle:
        handle.write(_markdown_translation_summary(translation, translation_exps, records))
    return table_paths(out_dir)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        frame.to_csv(handle, index=False)


def _markdown_seed_table(table: pd.DataFrame) -> str:
    """A seed table as Markdown: two decimals, a ``mean ± std`` column, ``—`` for a missing run."""
    seed_columns = [column for column in table.columns if column.startswith("seed")]
    header = ["experiment", "dataset", "teacher", "student", "activation", *seed_columns, "mean ± std", "n"]
    lines = _markdown_header(header)
    for row in table.to_dict("records"):
        cells = [str(row[key]) for key in SEED_TABLE_KEYS]
        cells += [_two_decimals(row[column]) for column in seed_columns]
        cells += [f"{_two_decimals(row['mean'])} ± {_two_decimals(row['std'])}", str(row["n"])]
        lines.append(_markdown_row(cells))
    if table.empty:
        lines.append("\nno finished runs")
    return "\n".join(lines) + "\n"


def _markdown_quantize_summary(summary: pd.DataFrame, experiments: dict) -> str:
    """summary-quantize.md: one section per quantize experiment, accuracies in percent as ``mean ± std``."""
    header = ["dataset", "student", "activation", "method", "bits", "bucket", "final (%)", "best (%)", "n"]
    header += ["size (MB)", "compression"]

    def cells(row: dict) -> list[str]:
        return [
            *(str(row[key]) for key in ("labels.dataset", "labels.student", "activation", "method", "bits")),
            "—" if pd.isna(row["bucket"]) else str(row["bucket"]),
            _summary_mean_std(row, "final_test_acc", 100), _summary_mean_std(row, "best_test_acc", 100),
            str(row["final_test_acc_n"]), _three_significant(row["size_mb"]), _two_decimals(row["compression"]),
        ]

    def section(name: str, experiment: dict, rows: list[dict]) -> list[str]:
        return _markdown_section(f"## {name}: students of `{experiment['teacher']}`", header, rows, cells)

    return _markdown_document(
        "# Quantized students: test accuracy (%) against model size",
        "mean ± std over the n seeds (sample std, ddof=1). Bits 32 with bucket — is full precision; bucket 0 is "
        "one bucket per tensor. Compression is against the 32-bit float model.",
        summary, experiments, section)


def _markdown_lit_summary(summary: pd.DataFrame, experiments: dict) -> str:
    """summary-lit.md: one section per LIT experiment, its rows in percent, then LIT's gains over the baselines."""
    header = ["method", "model", "params", "compression", "final (%)", "best (%)", "n"]

    def cells(row: dict) -> list[str]:
        return [
            row["method"], str(row["model.name"]), f"{round(row['model.params']):,}",
            _two_decimals(row["compression_vs_teacher"]),
            _summary_mean_std(row, "final_test_acc", 100), _summary_mean_std(row, "best_test_acc", 100),
            str(row["final_test_acc_n"]),
        ]

    def section(name: str, experiment: dict, rows: list[dict]) -> list[str]:
        heading = f"## {name}: `{experiment['student']}` from `{experiment['teacher']}` on `{experiment['dataset']}`"
        lines = _markdown_section(heading, header, rows, cells)
        if rows and experiment["baselines"]:
            final = {row["method"]: 100 * row["final_test_acc_mean"] for row in rows}
            baselines = [method for method in LIT_METHODS.values() if method in experiment["baselines"]]
            gains = [f"{_signed_two_decimals(final.get('lit', math.nan) - final.get(baseline, math.nan))} pp over "
                     f"{baseline}" for baseline in baselines]
            lines += ["", f"LIT's gain in final test accuracy: {', '.join(gains)}"]
        return lines

    return _markdown_document(
        "# LIT: students trained section by section, against their teacher and baselines",
        "mean ± std over the n seeds (sample std, ddof=1). Compression is the teacher's parameter count over the "
        "row's. A gain is LIT's mean final test accuracy minus the baseline's, in percentage points (pp).",
        summary, experiments, section)


def _markdown_esnac_summary(table: pd.DataFrame, searches: pd.DataFrame, experiments: dict) -> str:
    """summary-esnac.md: per ESNAC experiment and teacher, the strategies compared, the best fully trained
    architecture of each (the row of ESNAC's README), then the stat.py table of every search."""
    comparison_header = ["strategy", "searches", "fully trained", "best f(x) after full training",
                         "best f(x) in search", "candidates"]
    best_header = ["strategy", "seed", "Index", "Acc (%)", "#Params (M)", "Ratio", "Times", "f(x)"]
    stat_header = ["Index", "Candidate", "#Params (M)", "Ratio", "Times", "Acc before (%)", "Acc after (%)",
                   "f(x) before", "f(x) after"]

    def comparison_cells(strategy: str, rows: pd.DataFrame) -> list[str]:
        fewest, most = rows["candidates"].min(), rows["candidates"].max()  # the same budget: one number
        return [strategy, str(len(rows)), str(int(rows["best_f_after"].notna().sum())),
                _mean_std(rows["best_f_after"], 4), _mean_std(rows["best_reward"], 4),
                str(fewest) if fewest == most else f"{fewest}–{most}"]

    def best_cells(row: dict) -> list[str]:
        return [row["strategy"], str(row["seed"]), str(row["rank"]), _two_decimals(100 * row["acc_after"]),
                _two_decimals(row["params"] / 1e6), _decimals(row["ratio"], 4), f"{_two_decimals(row['times'])}×",
                _decimals(row["f_after"], 4)]

    def stat_cells(row: dict) -> list[str]:
        return [f"{row['rank']} ★" if row["best"] else str(row["rank"]), str(row["index"]),
                _two_decimals(row["params"] / 1e6), _decimals(row["ratio"], 4), f"{_two_decimals(row['times'])}×",
                _two_decimals(100 * row["acc_before"]), _two_decimals(100 * row["acc_after"]),
                _decimals(row["f_before"], 4), _decimals(row["f_after"], 4)]

    def section(name: str, experiment: dict, rows: list[dict]) -> list[str]:
        lines = ["", f"## {name}"]
        for teacher, entry in experiment["teachers"].items():
            heading = f"### `{teacher}` on `{entry['dataset']}`"
            mine = searches[(searches["experiment"] == name) & (searches["teacher"] == teacher)]
            if mine.empty:
                lines += ["", heading, "", "no finished runs"]
                continue
            teacher_acc = mine["teacher_acc"].iloc[0]
            accuracy = ("no finished run: f(x) after full training is —" if math.isnan(teacher_acc)
                        else f"final test accuracy {_two_decimals(100 * teacher_acc)}%")
            lines += ["", heading, "",
                      f"Teacher: {_two_decimals(mine['teacher_params'].iloc[0] / 1e6)} M parameters; reference "
                      f"teacher `{entry['reference']}`: {accuracy}.",
                      "", "Strategies compared (per search its best architecture; mean ± std over searches):", "",
                      *_markdown_header(comparison_header)]
            lines += [_markdown_row(comparison_cells(strategy, mine[mine["strategy"] == strategy]))
                      for strategy in experiment["strategies"] if strategy in set(mine["strategy"])]
            teacher_rows = [row for row in rows if row["teacher"] == teacher]
            best = [max((row for row in teacher_rows if row["strategy"] == strategy and row["best"]),
                        key=lambda row: row["f_after"], default=None) for strategy in experiment["strategies"]]
            if any(best):
                lines += ["", "Best fully trained architecture of each strategy over its searches:", "",
                          *_markdown_header(best_header), *(_markdown_row(best_cells(row)) for row in best if row)]
            for strategy in experiment["strategies"]:
                for seed in experiment["seeds"]:
                    search = [row for row in teacher_rows if (row["strategy"], row["seed"]) == (strategy, seed)]
                    if not search:
                        continue
                    lines += ["", f"#### `{strategy}`, seed {seed}", "", *_markdown_header(stat_header),
                              *(_markdown_row(stat_cells(row)) for row in search)]
                    marked = [row for row in search if row["best"]]
                    lines += ["", f"Best: Index {marked[0]['rank']} (candidate {marked[0]['index']}), f(x) after full "
                                  f"training {_decimals(marked[0]['f_after'], 4)}." if marked
                              else "Best: — (no architecture fully trained yet)."]
        return lines

    return _markdown_document(
        "# ESNAC: compressed architectures found by search, before and after full training",
        "Ratio is the compression c = 1 − #params / teacher #params and Times = 1 / (1 − c); f(x) = c(2 − c) · "
        "acc / teacher acc. Before: the search's accuracy and reward on its held-out split. After: the final test "
        "accuracy of the architecture's full training, against the reference teacher's final test accuracy. Index "
        "is the architecture's rank by search reward (arch-<Index>), Candidate its place in the search's "
        "evaluation order; ★ marks the best architecture of a search by f(x) after full training. "
        "std is the sample standard deviation (ddof=1); — where nothing finished.",
        table, experiments, section)


def _markdown_translation_summary(summary: pd.DataFrame, experiments: dict, records: list[dict]) -> str:
    """summary-translation.md: one section per translation experiment, a row per configuration with BLEU of every
    test split its rows have, the test perplexity and the translation speed; each section names the sacrebleu
    signature of one of its records."""

    def method(row: dict) -> str:
        if pd.isna(row["bucket"]):  # full precision
            return row["method"]
        return f"{row['method']} {row['bits']}-bit, " + (f"k={row['bucket']}" if row["bucket"] else "per-tensor")

    def bleu(row: dict, split: str) -> str:
        n = row[f"bleu.{split}_n"]
        return f"{_summary_mean_std(row, f'bleu.{split}')} ({n})" if n else "—"  # n 0: no run has the split

    def section(name: str, experiment: dict, rows: list[dict]) -> list[str]:
        heading = f"## {name}: students of `{experiment['teacher']}` on `{experiment['corpus']}`"
        splits = [column.removeprefix("bleu.").removesuffix("_n") for column in summary.columns
                  if column.startswith("bleu.") and column.endswith("_n") and any(row[column] for row in rows)]
        header = ["method", "student", "activation", "params", "size (MB)", "compression",
                  *(f"BLEU {split}" for split in splits), f"{TRANSLATION_TEST_SPLIT} ppl", "sentences/s"]

        def cells(row: dict) -> list[str]:
            return [
                method(row), *("—" if pd.isna(row[key]) else str(row[key]) for key in ("student", "activation")),
                f"{round(row['model.params']):,}", _three_significant(row["size_mb"]),
                _two_decimals(row["compression"]),
                *(bleu(row, split) for split in splits),
                _summary_mean_std(row, f"ppl.{TRANSLATION_TEST_SPLIT}"),
                _three_significant(row["timing.sentences_per_s"]),
            ]

        lines = _markdown_section(heading, header, rows, cells)
        if rows:  # one signature stands for all: the runs of an experiment share corpus, casing and sacrebleu
            member = next(r for r in records if in_translation_experiment(r, experiment))
            lines += ["", f"sacrebleu signature (of one record): `{member['metrics']['bleu_signature']}`"]
        return lines

    return _markdown_document(
        "# Translation: BLEU and perplexity against model size",
        "BLEU: sacrebleu's corpus BLEU (0-100) of the beam-search translations of each test split, as mean ± std "
        f"(n) over the n seeds (sample std, ddof=1); perplexity: the {TRANSLATION_TEST_SPLIT} split's, mean ± std. "
        "Size: 4 bytes per parameter for full precision, the Huffman-coded quantized model for qd (k: bucket size); "
        f"compression is against the 32-bit float model. sentences/s: beam search over the {TRANSLATION_TEST_SPLIT} "
        "split.",
        summary, experiments, section)


def _markdown_document(title: str, note: str, summary: pd.DataFrame, experiments: dict,
                       section: Callable[[str, dict, list[dict]], list[str]]) -> str:
    """A summary as Markdown: title, note, then ``section(name, experiment, its summary rows)`` per experiment."""
    lines = [title, "", note]
    for name, experiment in experiments.items():
        lines += section(name, experiment, summary[summary["experiment"] == name].to_dict("records"))
    return "\n".join(lines) + "\n"


def _markdown_section(heading: str, header: list[str], rows: list[dict],
                      cells: Callable[[dict], list[str]]) -> list[str]:
    """One experiment's lines: its heading, then its rows as a table, or "no finished runs"."""
    if not rows:
        return ["", heading, "", "no finished runs"]
    return ["", heading, "", *_markdown_header(header), *(_markdown_row(cells(row)) for row in rows)]


def _markdown_header(header: Sequence[str]) -> list[str]:
    return [_markdown_row(header), "|" + "---|" * len(header)]


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _summary_mean_std(row: dict, metric: str, scale: float = 1.0) -> str:
    """A :func:`summarize` row's ``mean ± std`` of ``metric`` times ``scale``, two decimals."""
    return f"{_two_decimals(scale * row[f'{metric}_mean'])} ± {_two_decimals(scale * row[f'{metric}_std'])}"


def _three_significant(value: float) -> str:
    """Three significant figures without an exponent: 0.0123, 1.23, 123, 1230."""
    if math.isnan(value):
        return "—"
    rounded = float(f"{value:.3g}")
    if rounded == 0:
        return "0"
    decimals = max(0, 2 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:.{decimals}f}"


def _mean_std(values: pd.Series, decimals: int) -> str:
    """``mean ± std`` of the values present (sample std); ``—`` for a missing part."""
    values = values.dropna()
    if values.empty:
        return "—"
    return f"{_decimals(values.mean(), decimals)} ± {_decimals(values.std(ddof=1), decimals)}"


def _decimals(value: float, decimals: int) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.{decimals}f}"


def _two_decimals(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.2f}"


def _signed_two_decimals(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:+.2f}"
