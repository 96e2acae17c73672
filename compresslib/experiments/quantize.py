"""Quantized students (config ``quantize``): QD, DQ and post-training quantization beside full-precision references.

Jobs, per experiment, student, activation, seed, method, bits and bucket size: ``quantize_train`` for QD (quantized
distillation from the teacher, or its views table when its logits are cached; the experiment's ``qd_train`` may
override the student's recipe) and DQ (the quantization points of the distilled student are learned; it is also
the teacher), ``quantize_post_training`` for PM (the distilled student rounded onto its grids). They ask the
distill family for the distilled students DQ and PM start from and the references an experiment shows
(``references``: distilled, undistilled). Two experiments may share a run only with the same settings.

Tables: ``summary-quantize.{csv,md}`` (accuracy against size per method, bits and bucket, references first) and
``paired-quantize.{csv,md}`` (each quantized configuration against the full-precision distilled student, paired by
seed); plots: ``quantize/<experiment>.png`` and ``accuracy-vs-size/<dataset>.png`` (every experiment of a dataset).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compresslib.activation_tags import canonical_tag
from compresslib.experiments.base import ALL_EXPERIMENTS, Family, Job, Study, failures, file_arguments, \
    milestone_problems, overrides, positions, report_labels, require_keys, summary_paths, unique_jobs
from compresslib.experiments.datasets import dataset_file
from compresslib.experiments.distill import STUDENT_LABELS, DistillStudent, TrainUndistilled, is_student_run, \
    student_pairs, student_values
from compresslib.experiments.teachers import FULL_PRECISION_METHODS, RUN_OUTPUTS, check_training_record, \
    reference_problems, teacher_outputs, with_image_summary_columns
from compresslib.runs.record import QUANTIZATION_KEYS, RECORD_NAME
from compresslib.specs.quantization import BUCKET_PATTERN, QUANT_METHODS, bucket_tag, parse_bucket_tag
from compresslib.settings import build_settings
from compresslib.specs.training import TRAINED_QUANT_METHODS, PostTrainingSpec, TrainSpec

__all__ = ["QuantizeTrain", "PostTrainingQuantize", "FAMILY"]

PACKED = {"packed": "model.packed"}
REFERENCE_KINDS = {"distilled": "distill", "undistilled": "undistilled"}  # an experiment's references: record kinds
SUMMARY_KEYS = ["experiment", "labels.dataset", "labels.teacher", "labels.student", "activation", "method", "bits",
                "bucket"]
MARKERS = {"fp-undistilled": "s", "fp-distilled": "D", "qd": "o", "dq": "^", "pm": "v"}  # one per method, in order


@dataclass(frozen=True)
class _QuantizedStudent(Job):
    FOLDER = "results/quantize/{dataset}/{teacher}/{student}/{method}-b{bits}-k{bucket}/{activation}/seed{seed}"
    LOG = "{dataset}/{teacher}/{student}/{method}-b{bits}-k{bucket}/{activation}/seed{seed}"
    WHAT = "a run of any quantize experiment"

    dataset: str
    teacher: str
    student: str
    method: str  # qd | dq | pm
    bits: int
    bucket_size: int | None  # None: one bucket per tensor
    activation: str
    seed: int
    experiment: str = field(default="", compare=False)  # the first experiment asking for it: its settings

    def wildcards(self) -> dict[str, str]:
        return {"dataset": self.dataset, "teacher": self.teacher, "student": self.student, "method": self.method,
                "bits": str(self.bits), "bucket": bucket_tag(self.bucket_size), "activation": self.activation,
                "seed": str(self.seed)}

    @classmethod
    def from_wildcards(cls, wildcards: Any) -> Job:
        return cls(wildcards["dataset"], wildcards["teacher"], wildcards["student"], wildcards["method"],
                   int(wildcards["bits"]), parse_bucket_tag(wildcards["bucket"]), wildcards["activation"],
                   int(wildcards["seed"]))

    def distilled(self) -> DistillStudent:
        """The full-precision distilled student this run starts from (dq, pm) or stands beside (qd)."""
        return DistillStudent(self.dataset, self.teacher, self.student, self.activation, self.seed)

    def quant(self, study: Study) -> dict:
        experiment = study.config["quantize"][self.experiment]
        return {"method": self.method, "bits": self.bits, "bucket_size": self.bucket_size,
                "quantize_first_last": experiment["quantize_first_last"], "skip_by": experiment["skip_by"]}

    def inputs(self, study: Study) -> dict[str, Any]:
        return {"data": dataset_file(self.dataset), **self.model_files(study)}


@dataclass(frozen=True)
class QuantizeTrain(_QuantizedStudent):
    RULE = "quantize_train"
    OUTPUTS = RUN_OUTPUTS | PACKED
    SHARES_GPU = True
    METHODS = "|".join(TRAINED_QUANT_METHODS)  # the methods of this rule (its wildcard constraint)

    def settings(self, study: Study) -> dict:
        """What the experiment decides of the run: QD, the student's distillation (``qd_train`` overriding its
        recipe) at the quantized point; DQ, the distilled student's points learned with the experiment's ``dq``
        recipe."""
        experiment = study.config["quantize"][self.experiment]
        values = student_values(study.config, self.teacher, self.student, self.activation, self.seed, "quantize")
        quant = self.quant(study)
        if self.method == "qd":
            return values | (experiment["qd_train"] or {}) | {"quant": quant}
        dq = dict(experiment["dq"])
        quant |= {key: dq.pop(key) for key in ("points_init", "auto_bits", "gradient_batches")}
        return values | dq | {"quant": quant}

    def spec_values(self, study: Study) -> dict:
        """The TrainSpec values: the settings, and where the teacher's logits come from (DQ's teacher is the
        distilled student itself, which runs online)."""
        mode = teacher_outputs(study)[self.teacher] if self.method == "qd" else "online"
        return self.settings(study) | {"teacher_outputs": mode}

    def model_files(self, study: Study) -> dict[str, str]:
        """QD distils from the teacher (or its views file); DQ learns the points of the distilled student, which is
        also its teacher."""
        if self.method == "qd":
            return self.distilled().model_files(study)
        model = self.distilled().model_file()
        return {"teacher": model, "init": model}

    def arguments(self, study: Study) -> str:
        return f"{file_arguments(self.model_files(study))} {overrides(self.spec_values(study), TrainSpec)}"

    def teacher_passes(self, study: Study) -> tuple[str, int] | None:
        return (self.teacher, self.settings(study)["epochs"]) if self.method == "qd" else None


@dataclass(frozen=True)
class PostTrainingQuantize(_QuantizedStudent):
    RULE = "quantize_post_training"
    OUTPUTS = {"model": "model.pt", "record": RECORD_NAME} | PACKED
    METHODS = "pm"

    def settings(self, study: Study) -> dict:
        return {"quant": self.quant(study)}

    def spec_values(self, study: Study) -> dict:
        return self.settings(study)

    def model_files(self, study: Study) -> dict[str, str]:
        return {"model": self.distilled().model_file()}

    def arguments(self, study: Study) -> str:
        return overrides(self.spec_values(study), PostTrainingSpec)


def _run(dataset: str, teacher: str, student: str, method: str, bits: int, bucket_size: int | None, tag: str,
         seed: int, experiment: str) -> _QuantizedStudent:
    job_type = PostTrainingQuantize if method == "pm" else QuantizeTrain
    return job_type(dataset, teacher, student, method, bits, bucket_size, canonical_tag(tag), seed, experiment)


def check(config: dict) -> list[str]:
    problems = []
    for name, experiment in config.get("quantize", {}).items():
        where = f"quantize.{name}"
        problems += reference_problems(where, experiment, config["teachers"], config.get("students", {}))
        problems += [problem for key in ("qd_train", "dq") if experiment[key]  # qd_train null: the student's recipe
                     for problem in milestone_problems(f"{where}.{key}", experiment[key])]
    return problems


def jobs(study: Study) -> list[Job]:
    """Every quantization run of every experiment once, then the distilled and undistilled students they need."""
    config, quantize = study.config, study.config.get("quantize", {})
    runs = (_run(config["teachers"][e["teacher"]]["dataset"], e["teacher"], student, method, bits, bucket, tag,
                 seed, name)
            for name, e in quantize.items() for student, tag, seed, method, bits, bucket in itertools.product(
                e["students"], e["activations"], e["seeds"], e["methods"], e["bits"], e["buckets"]))
    planned: list[Job] = unique_jobs(((job, job.settings(study)) for job in runs), lambda first, second: (
        f"quantize.{first.experiment} and quantize.{second.experiment} both ask for {first.method} of "
        f"{first.student} ({first.activation}, seed {first.seed}, {first.bits} bits, bucket "
        f"{bucket_tag(first.bucket_size)}) with different settings (qd_train, dq, quantize_first_last or skip_by); "
        "give one of the experiments another student entry"))
    # dq and pm start from the distilled students; references show them (and the undistilled ones)
    planned += [job for e in quantize.values()
                if "distilled" in e["references"] or not set(e["methods"]) <= {"qd"}
                for job in student_pairs(config, e, DistillStudent)]
    planned += [job for e in quantize.values() if "undistilled" in e["references"]
                for job in student_pairs(config, e, TrainUndistilled)]
    return planned


def check_jobs(study: Study) -> list[str]:
    runs = study.of_type(QuantizeTrain, PostTrainingQuantize)
    return failures(lambda job: build_settings(TrainSpec if isinstance(job, QuantizeTrain) else PostTrainingSpec,
                                               job.spec_values(study)),
                    [(f"quantize.{job.experiment} ({job.method} of {job.student})", job) for job in runs])


def check_record(record: dict, path: Path) -> None:
    check_training_record(record, path, STUDENT_LABELS)
    require_keys(record.get("quantization"), QUANTIZATION_KEYS, path, "quantize record lacks quantization keys")
    method = record["quantization"]["method"]
    if method not in QUANT_METHODS:
        raise ValueError(f"{path}: quantization method {method!r}, not one of {QUANT_METHODS}")


def experiments(config: dict) -> dict:
    return {name: {"teacher": e["teacher"], "students": list(e["students"]),
                   "activations": [canonical_tag(tag) for tag in e["activations"]], "seeds": list(e["seeds"]),
                   "methods": list(e["methods"]), "bits": list(e["bits"]), "buckets": list(e["buckets"]),
                   "references": list(e["references"]), "dataset": config["teachers"][e["teacher"]]["dataset"]}
            for name, e in config.get("quantize", {}).items()}


def in_experiment(record: dict, experiment: dict) -> bool:
    """Whether a record is a quantized run of a quantize experiment (matching method, bits and bucket size too;
    null: one bucket per tensor), or one of the full-precision references it shows."""
    if record["kind"] == "quantize":
        quantization = record["quantization"]
        wanted = (quantization["method"] in experiment["methods"] and quantization["bits"] in experiment["bits"]
                  and quantization["bucket_size"] in experiment["buckets"])
    else:
        wanted = record["kind"] in {REFERENCE_KINDS[reference] for reference in experiment["references"]}
    return wanted and is_student_run(record, experiment)


def quantize_table(records: list[dict], experiments: dict):
    """The rows of each quantize experiment with an ``experiment`` column and the size columns: student, activation,
    then method (fp-undistilled, fp-distilled, then the experiment's methods), bits descending, the experiment's
    bucket order, and the seed."""
    from compresslib import results  # pandas: only aggregation needs it

    def frame(members: list[dict]):
        return with_image_summary_columns(results.runs_table(members))

    def order(experiment: dict) -> tuple[list[str], dict, set[str]]:
        methods = [FULL_PRECISION_METHODS["undistilled"], FULL_PRECISION_METHODS["distill"], *experiment["methods"]]
        rank = {"labels.student": positions(experiment["students"]),
                "activation": positions(experiment["activations"]), "method": positions(methods),
                "bucket": positions([0 if bucket is None else bucket for bucket in experiment["buckets"]])}
        return ["labels.student", "activation", "method", "bits", "bucket", "seed"], rank, {"bits"}

    return results.experiment_rows(records, experiments, in_experiment, frame, order)


def quantize_summary(records: list[dict], experiments: dict):
    """summary-quantize.csv: the accuracy statistics and mean sizes of every configuration of the table, and what
    chose its best epochs."""
    from compresslib import results

    return results.summarize(quantize_table(records, experiments), [*SUMMARY_KEYS, results.BEST_EPOCH_COLUMN],
                             means=results.SIZE_COLUMNS)


def _markdown(summary, experiments: dict) -> str:
    """summary-quantize.md: one section per quantize experiment, accuracies in percent as ``mean ± std`` with their
    95% intervals."""
    import pandas as pd

    from compresslib import results

    def section(name: str, experiment: dict, rows: list[dict]) -> list[str]:
        policies = results.best_epoch_policies(rows)
        header = ["dataset", "student", "activation", "method", "bits", "bucket", "final epoch (%)", "95% CI",
                  *results.best_epoch_header(policies), "n", "size (MB)", "fp32 ÷ packed file"]

        def cells(row: dict) -> list[str]:
            return [*(str(row[key]) for key in ("labels.dataset", "labels.student", "activation", "method", "bits")),
                    "—" if pd.isna(row["bucket"]) else str(row["bucket"]),
                    *results.summary_estimate(row, "final_test_acc", 100), *results.best_epoch_cells(row, policies),
                    str(row["final_test_acc_n"]), results.three_significant(row["size_mb"]),
                    results.two_decimals(row["fp32_over_packed"])]

        return results.markdown_section(f"## {name}: students of `{experiment['teacher']}`", header, rows, cells)

    return results.markdown_document(
        "# Quantized students: test accuracy (%) against model size",
        f"{results.ACCURACY_NOTE} PM rounds a trained model and evaluates it once: its best epoch is its final one. "
        "Bits 32 with bucket — is full precision; bucket 0 is one bucket per tensor. Size (MB): QD's formula, "
        "with Huffman-coded codes (full precision: 4 bytes per parameter). fp32 ÷ packed file: the 32-bit float "
        "model's bytes over the bytes of its packed file, whose codes are fixed-width, so it is smaller than the "
        "float model's size over size (MB).",
        summary, experiments, section)


def quantize_paired(records: list[dict], experiments: dict):
    """paired-quantize.csv: per experiment, student and activation, each quantized configuration (its folder's
    name: ``qd-b2-k256``, ``pm-b4-knone``) against the full-precision distilled student of the same seed, which DQ
    and PM start from and QD stands beside; final and best test accuracy in percentage points. The distilled
    student is one job whichever experiment asks for it, so it is the reference whatever ``references`` shows."""
    import pandas as pd

    from compresslib import paired, results

    rows = quantize_table(records, {name: e | {"references": ["distilled"]} for name, e in experiments.items()})
    configurations = [method if pd.isna(bucket) else f"{method}-b{bits}-k{bucket_tag(int(bucket) or None)}"
                      for method, bits, bucket in zip(rows["method"], rows["bits"], rows["bucket"], strict=True)]
    return paired.paired_table(rows.assign(configuration=configurations), SUMMARY_KEYS[:5], "configuration",
                               FULL_PRECISION_METHODS["distill"], results.SUMMARY_METRICS, scale=100, unit="pp")


CONFIGURATION = ["labels.teacher", "labels.student", "activation", "method", "bits", "bucket"]  # one point each


def dataset_rows(summary, dataset: str):
    """The summary's configurations of one dataset, each once, references and methods of every experiment side by
    side, with ``packed_mb`` and ``pareto`` (:func:`compresslib.pareto.on_disk_front` of mean final accuracy)."""
    from compresslib.pareto import on_disk_front

    return on_disk_front(summary[summary["labels.dataset"] == dataset], CONFIGURATION, "final_test_acc_mean")


def quantize_pareto(records: list[dict], experiments: dict):
    """pareto-quantize.csv: per dataset, the configurations on the front of mean final test accuracy against the
    size of the packed file, smallest first."""
    from compresslib.pareto import front_table

    return front_table(quantize_summary(records, experiments), "labels.dataset", CONFIGURATION,
                       "final_test_acc_mean")


def _pareto_markdown(front) -> str:
    from compresslib import results

    header = ["dataset", "teacher", "student", "activation", "method", "bits", "bucket", "packed (MB)",
              "final epoch (%)", "95% CI", "n"]
    rows = [[*(str(row[key]) for key in ("labels.dataset", "labels.teacher", "labels.student", "activation",
                                          "method", "bits")),
             "—" if row["method"].startswith("fp-") else str(row["bucket"]),
             results.three_significant(row["packed_mb"]),
             *results.summary_estimate(row, "final_test_acc", 100), str(row["final_test_acc_n"])]
            for row in front.to_dict("records")]
    table = results.markdown_table(header, rows)
    return "\n".join([
        "# Quantized students: the Pareto front of accuracy against size on disk", "",
        "Per dataset, the configurations that no other one beats on both the packed file's size and the mean final "
        f"test accuracy (mean ± std over the n seeds; {results.INTERVAL_NOTE}). Full precision counts its float32 "
        "state.", "", *table, ""])


def table_paths(out_dir: Path) -> list[Path]:
    return [*summary_paths(out_dir, "quantize"), *summary_paths(out_dir, "quantize", "paired"),
            *summary_paths(out_dir, "quantize", "pareto")]


def write_tables(records: list[dict], experiments: dict, out_dir: Path) -> None:
    from compresslib import paired
    from compresslib.results import write_summary

    summary_csv, summary_markdown, *paired_paths, pareto_csv, pareto_markdown = table_paths(out_dir)
    summary = quantize_summary(records, experiments)
    write_summary(summary, _markdown(summary, experiments), summary_csv, summary_markdown)
    comparisons = quantize_paired(records, experiments)
    paired.write_paired(
        comparisons, experiments, paired_paths,
        "# Quantized students against their full-precision distilled students, paired by seed",
        "runs with the same seed; test accuracy in percentage points",
        lambda name, e: f"## {name}: students of `{e['teacher']}`",
        {"labels.student": "student", "activation": "activation"})
    front = quantize_pareto(records, experiments)
    write_summary(front, _pareto_markdown(front), pareto_csv, pareto_markdown)


def _datasets(experiments: dict) -> list[str]:
    """The datasets the experiments name (config order), each getting one plot of all its runs."""
    return list(dict.fromkeys(e["dataset"] for e in experiments.values() if e.get("dataset")))


def plot_paths(experiments: dict, out_dir: Path) -> dict[Path, dict[str, str]]:
    out_dir = Path(out_dir)
    return {**{out_dir / "quantize" / f"{name}.png": report_labels(
                   name, "final test accuracy against model size", dataset=e["dataset"], teacher=e["teacher"])
               for name, e in experiments.items()},
            **{out_dir / "accuracy-vs-size" / f"{dataset}.png": report_labels(
                   ALL_EXPERIMENTS, "final test accuracy against packed file size, Pareto front", dataset=dataset)
               for dataset in _datasets(experiments)}}


def plot_accuracy_vs_size(summary, out_path: Path, title: str, on_disk: bool = False) -> None:
    """Mean final test accuracy (error bar: sample std over seeds) against size in MB on a log axis (QD's size, or
    with ``on_disk`` the packed file's, with the Pareto front drawn): one colour per student, one marker per method,
    each point annotated with its bits (and activation or bucket where the rows have several)."""
    from compresslib import plots

    plots.plot_against_size(summary, out_path, title, "final_test_acc", "labels.student", "final test accuracy (%)",
                            MARKERS, scale=100, size_column="packed_mb" if on_disk else "size_mb",
                            front=summary["pareto"] if on_disk else None)


def write_plots(records: list[dict], experiments: dict, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    summary = quantize_summary(records, experiments)
    for name, experiment in experiments.items():
        plot_accuracy_vs_size(summary[summary["experiment"] == name], out_dir / "quantize" / f"{name}.png",
                              f"{name}: quantized students of {experiment['teacher']}")
    for dataset in _datasets(experiments):
        plot_accuracy_vs_size(dataset_rows(summary, dataset), out_dir / "accuracy-vs-size" / f"{dataset}.png",
                              f"{dataset}: every quantize experiment, size on disk", on_disk=True)


def wildcards(config: dict) -> dict[str, str]:
    return {"method": "|".join(QUANT_METHODS), "bits": r"\d+", "bucket": BUCKET_PATTERN}


FAMILY = Family(name="quantize", title="Quantization", check=check, jobs=jobs, wildcards=wildcards,
                check_jobs=check_jobs,
                records=(_QuantizedStudent,), record_kinds=("quantize",), check_record=check_record,
                experiments=experiments, table_paths=table_paths, write_tables=write_tables, plot_paths=plot_paths,
                write_plots=write_plots)
