"""The translation family's tables and plots, from its records: ``summary-translation.{csv,md}`` (BLEU and
perplexity per test split beside size and speed), ``paired-translation.{csv,md}`` (word- and sequence-level KD
against the undistilled student, paired by seed), ``pareto-translation.{csv,md}`` (per corpus, the runs no other
beats on both test BLEU and the packed file's size), ``translation/<experiment>.png`` (BLEU against size) and
``bleu-vs-size/<corpus>.png`` (BLEU against the packed file's size, every experiment of a corpus, the front ringed).

Only aggregation imports this module (through :mod:`compresslib.experiments.translation`'s ``write_tables`` and
``write_plots``), so it may import pandas, scipy and matplotlib.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from compresslib import paired, plots, results
from compresslib.experiments.base import positions
from compresslib.experiments.translation import KIND, NO_ACTIVATION, experiment_corpora, plot_paths, table_paths
from compresslib.pareto import front_table, on_disk_front

__all__ = ["in_experiment", "translation_table", "translation_summary", "translation_paired", "corpus_rows",
           "translation_pareto", "plot_bleu_vs_size", "write_tables", "write_plots"]

TEST_SPLIT = "test"  # the first test split: always a column, and the plotted one
LABELS = ("corpus", "teacher", "student", "activation")  # the labels translation_table names plainly
SUMMARY_KEYS = ["experiment", *LABELS, "method", "bits", "bucket"]
MEASURED = ["timing.sentences_per_s", "memory.inference_peak_bytes"]  # of the first test split
# one marker per method, like its image counterpart's (compresslib.experiments.quantize), in legend order
MARKERS = {"teacher": "*", "undistilled": "s", "word-kd": "D", "seq-kd": "P", "qd": "o"}
CONFIGURATION = ["teacher", "student", "activation", "method", "bits", "bucket"]  # one point of a corpus's front
BLEU_LABEL = f"{TEST_SPLIT} BLEU (sacreBLEU, 0-100)"


def in_experiment(record: dict, experiment: dict) -> bool:
    """Whether a record is a row of a translation experiment: its teacher, or a student run it asks for.

    The teacher is every translation teacher record of the experiment's corpus and teacher label (whatever its
    seed); a student run must match a listed student, one of that student's activations, a method and a seed,
    and a qd run also the bits and bucket size (null: one bucket per tensor) of its quantization section.
    """
    if record["kind"] != KIND:
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


def translation_table(records: list[dict], experiments: dict) -> pd.DataFrame:
    """The rows of each translation experiment (``{name: experiment}``): the ``results.with_size_columns`` frame of its
    members, with the columns ``experiment``, ``corpus``, ``teacher``, ``student``, ``activation`` (NaN for the
    teacher) put first.

    Rows follow the config: experiment, the teacher's runs, then student, activation (in the order first listed),
    method, bits descending, the experiment's bucket order, and the seed.
    """
    def frame(members: list[dict]) -> pd.DataFrame:
        rows = results.runs_table(members)
        methods = rows.reindex(columns=["labels.method"]).astype(object)["labels.method"]
        rows = results.with_size_columns(rows, methods.fillna("teacher"))  # a teacher has no method label
        labels = rows.reindex(columns=[f"labels.{key}" for key in LABELS])
        labels.columns = list(LABELS)
        rows[MEASURED] = rows.reindex(columns=MEASURED).astype(float)  # null: not measured
        # runs_table's image activation column is NaN for translation runs: the label takes its place
        return pd.concat([labels, rows.drop(columns=list(LABELS), errors="ignore")], axis=1)

    def order(experiment: dict) -> tuple[list[str], dict, set[str]]:
        activations = dict.fromkeys(tag for tags in experiment["activations"].values() for tag in tags)
        rank = {
            "run_kind": {"teacher": 0},  # the teacher first; every student's run_kind ties (NaN) and sorts on
            "student": positions(experiment["students"]),
            "activation": positions(list(activations)),
            "method": positions(experiment["methods"]),
            "bucket": positions([0 if bucket is None else bucket for bucket in experiment["buckets"]]),
        }
        return ["run_kind", "student", "activation", "method", "bits", "bucket", "seed"], rank, {"bits"}

    return results.experiment_rows(records, experiments, in_experiment, frame, order)


def translation_summary(records: list[dict], experiments: dict) -> pd.DataFrame:
    """summary-translation.csv: per configuration of :func:`translation_table` (:data:`SUMMARY_KEYS`),
    the statistics of BLEU (``bleu.<split>_mean``, ...) then of perplexity (``ppl.<split>_mean``, ...) of every test
    split present ("test" always, first), then the means of the parameters, the sizes and :data:`MEASURED`."""
    table = translation_table(records, experiments)
    metrics = [f"metrics.{metric}.{split}" for metric in ("bleu", "ppl") for split in _splits(table)]
    table = table.reindex(columns=[*table.columns, *(metric for metric in metrics if metric not in table.columns)])
    return results.summarize(table, SUMMARY_KEYS, metrics=metrics,
                             means=["model.params", *results.SIZE_COLUMNS, *MEASURED])


def _splits(table: pd.DataFrame) -> list[str]:
    """The test splits of a :func:`translation_table`: "test" (always) first, then the others it has."""
    present = {column.removeprefix("metrics.bleu.") for column in table.columns if column.startswith("metrics.bleu.")}
    return [TEST_SPLIT, *sorted(present - {TEST_SPLIT})]


def translation_paired(records: list[dict], experiments: dict) -> pd.DataFrame:
    """paired-translation.csv: per experiment, student and activation, word- and sequence-level KD against the
    undistilled student of the same seed, BLEU of every test split. The undistilled run is one job whichever
    experiment asks for it, so it is the baseline whatever ``methods`` shows."""
    with_baseline = {name: e | {"methods": list(dict.fromkeys(["undistilled", *e["methods"]]))}
                     for name, e in experiments.items()}
    table = translation_table(records, with_baseline)
    return paired.paired_table(table, ["experiment", *LABELS], "method", "undistilled",
                               [f"metrics.bleu.{split}" for split in _splits(table)], arms=["word-kd", "seq-kd"],
                               unit="BLEU")


def _markdown(summary: pd.DataFrame, experiments: dict, records: list[dict]) -> str:
    """summary-translation.md: one section per translation experiment, a row per configuration with BLEU of every
    test split its rows have (with its 95% interval), the test perplexity and the translation speed; each section
    names the sacrebleu signature of one of its records."""
    def method(row: dict) -> str:
        if pd.isna(row["bucket"]):  # full precision
            return row["method"]
        return f"{row['method']} {row['bits']}-bit, " + (f"k={row['bucket']}" if row["bucket"] else "per-tensor")

    def bleu(row: dict, split: str) -> list[str]:
        n = row[f"bleu.{split}_n"]
        if not n:  # no run has the split
            return ["—", "—"]
        mean_std, ci = results.summary_estimate(row, f"bleu.{split}")
        return [f"{mean_std} ({n})", ci]

    def section(name: str, experiment: dict, rows: list[dict]) -> list[str]:
        heading = f"## {name}: students of `{experiment['teacher']}` on `{experiment['corpus']}`"
        splits = [column.removeprefix("bleu.").removesuffix("_n") for column in summary.columns
                  if column.startswith("bleu.") and column.endswith("_n") and any(row[column] for row in rows)]
        header = ["method", "student", "activation", "params", "size (MB)", "fp32 ÷ packed file",
                  *(cell for split in splits for cell in (f"BLEU {split}", "95% CI")), f"{TEST_SPLIT} ppl",
                  "sentences/s"]

        def cells(row: dict) -> list[str]:
            return [
                method(row), *("—" if pd.isna(row[key]) else str(row[key]) for key in ("student", "activation")),
                f"{round(row['model.params']):,}", results.three_significant(row["size_mb"]),
                results.two_decimals(row["fp32_over_packed"]),
                *(cell for split in splits for cell in bleu(row, split)),
                results.summary_mean_std(row, f"ppl.{TEST_SPLIT}"),
                results.three_significant(row["timing.sentences_per_s"]),
            ]

        lines = results.markdown_section(heading, header, rows, cells)
        if rows:  # one signature stands for all: the runs of an experiment share corpus, casing and sacrebleu
            member = next(r for r in records if in_experiment(r, experiment))
            lines += ["", f"sacrebleu signature (of one record): `{member['metrics']['bleu_signature']}`"]
        return lines

    return results.markdown_document(
        "# Translation: BLEU and perplexity against model size",
        "BLEU: sacrebleu's corpus BLEU (0-100) of the beam-search translations of each test split, as mean ± std "
        f"(n) over the n seeds (sample std, ddof=1); {results.INTERVAL_NOTE}; perplexity: the {TEST_SPLIT} split's, "
        "mean ± std. Size: 4 bytes per parameter for full precision, the Huffman-coded quantized model for qd (k: "
        "bucket size). fp32 ÷ packed file: the 32-bit float model's bytes over the bytes of its packed file "
        f"(fixed-width codes; 1 for full precision). sentences/s: beam search over the {TEST_SPLIT} split.",
        summary, experiments, section)


def corpus_rows(summary: pd.DataFrame, corpus: str) -> pd.DataFrame:
    """The summary's configurations of one corpus, each once, teachers and students of every experiment side by
    side, with ``packed_mb`` and ``pareto`` (:func:`compresslib.pareto.on_disk_front` of mean test BLEU)."""
    return on_disk_front(summary[summary["corpus"] == corpus], CONFIGURATION, f"bleu.{TEST_SPLIT}_mean")


def translation_pareto(records: list[dict], experiments: dict) -> pd.DataFrame:
    """pareto-translation.csv: per corpus, the configurations on the front of mean test BLEU against the size of the
    packed file (full precision: its float32 state), smallest first."""
    return front_table(translation_summary(records, experiments), "corpus", CONFIGURATION, f"bleu.{TEST_SPLIT}_mean")


def _pareto_markdown(front: pd.DataFrame) -> str:
    """pareto-translation.md: the front's rows, BLEU as mean ± std with its 95% interval."""
    header = ["corpus", "teacher", "student", "activation", "method", "bits", "bucket", "packed (MB)",
              f"BLEU {TEST_SPLIT}", "95% CI", "n"]
    rows = [[*("—" if pd.isna(row[key]) else str(row[key]) for key in ("corpus", *CONFIGURATION)),
             results.three_significant(row["packed_mb"]), *results.summary_estimate(row, f"bleu.{TEST_SPLIT}"),
             str(row[f"bleu.{TEST_SPLIT}_n"])]
            for row in front.to_dict("records")]
    table = results.markdown_table(header, rows)
    return "\n".join([
        "# Translation: the Pareto front of BLEU against size on disk", "",
        "Per corpus, the configurations (teachers and students of every experiment) that no other one beats on both "
        f"the packed file's size and the mean {TEST_SPLIT} BLEU (sacreBLEU, mean ± std over the n seeds; "
        f"{results.INTERVAL_NOTE}). Full precision counts its float32 state; bucket 0 is one bucket per tensor.", "",
        *table, ""])


def plot_bleu_vs_size(summary: pd.DataFrame, out_path: Path, title: str, on_disk: bool = False) -> None:
    """Mean BLEU on the test split (error bar: sample std over seeds) against size in MB on a log axis (QD's size,
    or with ``on_disk`` the packed file's, with the Pareto front of :func:`corpus_rows` ringed).

    ``summary`` holds :func:`translation_summary` rows, drawn as the quantize family's accuracy against size; a
    teacher is a star in a colour of its own, named after it; an LSTM's point names no activation.
    """
    students = summary["student"].fillna(summary["teacher"])  # a teacher's row has no student
    activations = summary["activation"].replace(NO_ACTIVATION, pd.NA)  # a model with none to choose, as a teacher
    plots.plot_against_size(summary.assign(student=students, activation=activations), out_path, title,
                            f"bleu.{TEST_SPLIT}", "student", BLEU_LABEL, MARKERS,
                            size_column="packed_mb" if on_disk else "size_mb",
                            front=summary["pareto"] if on_disk else None)


def write_tables(records: list[dict], experiments: dict, out_dir: Path) -> None:
    summary_csv, summary_markdown, paired_csv, paired_markdown, pareto_csv, pareto_markdown = table_paths(out_dir)
    summary = translation_summary(records, experiments)
    results.write_summary(summary, _markdown(summary, experiments, records), summary_csv, summary_markdown)
    comparisons = translation_paired(records, experiments)
    paired.write_paired(
        comparisons, experiments, (paired_csv, paired_markdown),
        "# Translation students: word- and sequence-level KD against the undistilled student, paired by seed",
        "runs with the same seed; sacrebleu BLEU points",
        lambda name, e: f"## {name}: students of `{e['teacher']}` on `{e['corpus']}`",
        {"student": "student", "activation": "activation"})
    front = translation_pareto(records, experiments)
    results.write_summary(front, _pareto_markdown(front), pareto_csv, pareto_markdown)


def write_plots(records: list[dict], experiments: dict, out_dir: Path) -> None:
    summary = translation_summary(records, experiments)
    paths = list(plot_paths(experiments, out_dir))  # each experiment's, then each corpus's
    for (name, experiment), path in zip(experiments.items(), paths[:len(experiments)], strict=True):
        plot_bleu_vs_size(summary[summary["experiment"] == name], path,
                          f"{name}: students of {experiment['teacher']} on {experiment['corpus']}")
    for corpus, path in zip(experiment_corpora(experiments), paths[len(experiments):], strict=True):
        plot_bleu_vs_size(corpus_rows(summary, corpus), path, f"{corpus}: every translation experiment, size on disk",
                          on_disk=True)
