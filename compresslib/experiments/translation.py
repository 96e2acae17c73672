"""Translation teachers and students (config ``translation.teachers``, ``.students``, ``.experiments``): LMA's
Transformer students per FFN activation and QD's LSTM students per method, with BLEU and perplexity.

Jobs: ``train_translation_teacher`` per teacher entry; ``translate_training_split`` per teacher whose students
learn from its beam translations (sequence-level KD); ``train_translation_student`` per experiment, student, method
(undistilled, word-kd, seq-kd, qd with its bits and bucket size), FFN activation (``none`` for an LSTM, which has no
activation to choose) and seed. Word-level KD and QD read the teacher's model, sequence-level KD its translations.
The corpora they train on are the corpora family's. Two experiments may share a run only with the same settings.

Tables: ``summary-translation.{csv,md}`` (BLEU and perplexity per test split beside size and speed) and
``paired-translation.{csv,md}`` (word- and sequence-level KD against the undistilled student, paired by seed);
plots: ``translation/<experiment>.png`` (BLEU against size).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compresslib.activation_tags import TAG_PATTERN, canonical_tag
from compresslib.catalog import TRANSLATION_MODEL_ARGUMENTS
from compresslib.experiments.base import Family, Job, Study, alternatives, argument_problems, failures, \
    file_arguments, overrides, positions, require_keys, summary_paths, unique_jobs
from compresslib.experiments.corpora import corpus_file
from compresslib.experiments.teachers import RUN_OUTPUTS, reference_problems
from compresslib.runs.record import MODEL_KEYS, QUANTIZATION_KEYS
from compresslib.specs.quantization import BUCKET_PATTERN, bucket_tag, parse_bucket_tag
from compresslib.specs.translation import TranslationSpec, build_translation_spec

__all__ = ["TrainTranslationTeacher", "TranslateTrainingSplit", "TrainTranslationStudent", "FAMILY"]

KIND = "translation"  # every translation run's record kind; its run_kind is the spec's kind
FFN_ACTIVATION_MODELS = ("transformer_nmt",)  # translation models whose FFN activation an experiment chooses
NO_ACTIVATION = "none"  # the activation part of a path for models without a choosable one (the LSTM)
# a student's method (its label) and its run kind (the spec's kind); QD's students distil word-level
RUN_KINDS = {"undistilled": "undistilled", "word-kd": "distill", "seq-kd": "seq_distill", "qd": "quantize"}
REQUIRED_KEYS = ("run_kind", "spec", "metrics", "translations", "curve", "model", "quantization", "timing", "memory")
METRICS = ("final_bleu", "bleu_signature", "final_test_ppl", "bleu", "ppl")
STUDENT_LABELS = ("corpus", "teacher", "student", "method", "activation")
TEST_SPLIT = "test"  # the first test split: always a column, and the plotted one
LABELS = ("corpus", "teacher", "student", "activation")  # the labels translation_table names plainly
SUMMARY_KEYS = ["experiment", *LABELS, "method", "bits", "bucket"]
MEASURED = ["timing.sentences_per_s", "memory.inference_peak_bytes"]  # of the first test split
# one marker per method, like its image counterpart's (compresslib.experiments.quantize), in legend order
MARKERS = {"teacher": "*", "undistilled": "s", "word-kd": "D", "seq-kd": "P", "qd": "o"}


def _values(entry: dict, corpus: str, seed: int, kind: str, labels: dict) -> dict:
    return {"kind": kind, "corpus": corpus, "model": entry["model"], "model_kwargs": dict(entry["model_kwargs"]),
            "seed": seed, **entry["train"], "labels": labels}


@dataclass(frozen=True)
class _TeacherJob(Job):
    """A job of one translation teacher (its wildcard is ``nmt_teacher``, beside the image teachers' ``teacher``)."""

    LOG = "{corpus}/{nmt_teacher}/seed{seed}"

    corpus: str
    teacher: str
    seed: int

    def wildcards(self) -> dict[str, str]:
        return {"corpus": self.corpus, "nmt_teacher": self.teacher, "seed": str(self.seed)}

    @classmethod
    def from_wildcards(cls, wildcards: Any) -> Job:
        return cls(wildcards["corpus"], wildcards["nmt_teacher"], int(wildcards["seed"]))

    def unplanned_problem(self, study: Study) -> str | None:
        """Another seed of a teacher is its own job; another corpus is not."""
        corpus = study.config["translation"]["teachers"][self.teacher]["corpus"]
        return None if self.corpus == corpus else \
            f"{self.folder()}: translation teacher {self.teacher} trains on {corpus}, not {self.corpus}"


@dataclass(frozen=True)
class TrainTranslationTeacher(_TeacherJob):
    RULE = "train_translation_teacher"
    FOLDER = "results/translation/{corpus}/teachers/{nmt_teacher}/seed{seed}"
    OUTPUTS = RUN_OUTPUTS
    WHAT = "a translation teacher"

    def spec_values(self, study: Study) -> dict:
        entry = study.config["translation"]["teachers"][self.teacher]
        return _values(entry, self.corpus, self.seed, "teacher", {"corpus": self.corpus, "teacher": self.teacher})

    def inputs(self, study: Study) -> dict[str, Any]:
        return {"corpus": corpus_file(self.corpus)}

    def arguments(self, study: Study) -> str:
        return overrides(self.spec_values(study), TranslationSpec)

    def model_file(self) -> str:
        return self.outputs()["model"]


def teacher_job(config: dict, name: str) -> TrainTranslationTeacher:
    entry = config["translation"]["teachers"][name]
    return TrainTranslationTeacher(entry["corpus"], name, entry["seed"])


@dataclass(frozen=True)
class TranslateTrainingSplit(_TeacherJob):
    RULE = "translate_training_split"
    FOLDER = TrainTranslationTeacher.FOLDER + "/seq-kd"  # the teacher's beam translations of the training split
    OUTPUTS = {"ids": "targets.pt", "text": "train.txt"}
    WHAT = "a translation teacher whose training split is translated"

    def inputs(self, study: Study) -> dict[str, Any]:
        teacher = TrainTranslationTeacher(self.corpus, self.teacher, self.seed)
        return {"corpus": corpus_file(self.corpus), "model": teacher.model_file()}

    def arguments(self, study: Study) -> str:
        """The teacher's own decoding settings."""
        train = study.config["translation"]["teachers"][self.teacher]["train"]
        ratio = train["max_decode_ratio"]
        return (f"--beam-size {train['beam_size']} --max-length {train['max_decode_length']} "
                f"--batch-tokens {train['eval_batch_tokens']}" + (f" --max-ratio {ratio}" if ratio else ""))


@dataclass(frozen=True)
class TrainTranslationStudent(Job):
    RULE = "train_translation_student"
    FOLDER = "results/translation/{corpus}/students/{nmt_teacher}/{nmt_student}/{nmt_method}/{ffn}/seed{seed}"
    OUTPUTS = RUN_OUTPUTS
    LOG = "{corpus}/{nmt_teacher}/{nmt_student}/{nmt_method}/{ffn}/seed{seed}"
    WHAT = "a run of any translation experiment"

    corpus: str
    teacher: str
    student: str
    method: str  # undistilled | word-kd | seq-kd | qd
    bits: int | None  # qd's; None for the other methods
    bucket_size: int | None
    activation: str  # canonical FFN activation tag (lma8), or "none"
    seed: int
    experiment: str = field(default="", compare=False)

    def method_tag(self) -> str:
        """The method as its path spells it: the method, or ``qd-b<bits>-k<bucket>``."""
        return f"qd-b{self.bits}-k{bucket_tag(self.bucket_size)}" if self.method == "qd" else self.method

    def wildcards(self) -> dict[str, str]:
        return {"corpus": self.corpus, "nmt_teacher": self.teacher, "nmt_student": self.student,
                "nmt_method": self.method_tag(), "ffn": self.activation, "seed": str(self.seed)}

    @classmethod
    def from_wildcards(cls, wildcards: Any) -> Job:
        method, bits, bucket = wildcards["nmt_method"], None, None
        if method.startswith("qd-"):
            bits_part, bucket_part = method.removeprefix("qd-b").split("-k")
            method, bits, bucket = "qd", int(bits_part), parse_bucket_tag(bucket_part)
        return cls(wildcards["corpus"], wildcards["nmt_teacher"], wildcards["nmt_student"], method, bits, bucket,
                   wildcards["ffn"], int(wildcards["seed"]))

    def spec_values(self, study: Study) -> dict:
        translation = study.config["translation"]
        entry, experiment = translation["students"][self.student], translation["experiments"][self.experiment]
        values = _values(entry, self.corpus, self.seed, RUN_KINDS[self.method], {
            "corpus": self.corpus, "teacher": self.teacher, "student": self.student, "method": self.method,
            "activation": self.activation})
        if self.activation != NO_ACTIVATION:
            values["model_kwargs"]["activation"] = self.activation
        if self.method in ("word-kd", "qd"):  # QD's quantized students distil word-level from the teacher
            values["kd"] = dict(entry["kd"])
        if self.method == "qd":
            values["quant"] = {"method": "qd", "bits": self.bits, "bucket_size": self.bucket_size,
                               "quantize_first_last": experiment["quantize_first_last"],
                               "skip_by": experiment["skip_by"]}
        return values

    def model_files(self, study: Study) -> dict[str, str]:
        """Word-level KD and QD read the teacher; sequence-level KD reads its translations of the training split."""
        teacher = teacher_job(study.config, self.teacher)
        if self.method == "seq-kd":
            return {"targets": TranslateTrainingSplit(teacher.corpus, teacher.teacher, teacher.seed).outputs()["ids"]}
        return {} if self.method == "undistilled" else {"teacher": teacher.model_file()}

    def inputs(self, study: Study) -> dict[str, Any]:
        return {"corpus": corpus_file(self.corpus), **self.model_files(study)}

    def arguments(self, study: Study) -> str:
        return f"{file_arguments(self.model_files(study))} {overrides(self.spec_values(study), TranslationSpec)}"


def check(config: dict) -> list[str]:
    translation = config["translation"]
    corpora, teachers, students = translation["corpora"], translation["teachers"], translation["students"]
    problems = []
    for name, teacher in teachers.items():
        if teacher["corpus"] not in corpora:
            problems.append(f"translation.teachers.{name}.corpus: {teacher['corpus']!r} is not under "
                            f"translation.corpora; allowed: {', '.join(corpora) or '(no corpora defined)'}")
    for kind, entries in (("teachers", teachers), ("students", students)):
        problems += [problem for name, entry in entries.items() for problem in argument_problems(
            f"translation.{kind}.{name}.model_kwargs", entry["model"], entry["model_kwargs"],
            TRANSLATION_MODEL_ARGUMENTS[entry["model"]])]
    for name, student in students.items():
        if "activation" in student["model_kwargs"]:
            problems.append(f"translation.students.{name}.model_kwargs.activation: a student's FFN activation comes "
                            "from its experiments' activations; leave it out")
    for name, experiment in translation["experiments"].items():
        where = f"translation.experiments.{name}"
        problems += reference_problems(where, experiment, teachers, students, kind="translation ")
        problems += [f"{where}.activations: {student!r} is a {students[student]['model']}, which has no FFN "
                     "activation to choose; give it an experiment without activations"
                     for student in experiment["students"] if experiment["activations"] and student in students
                     and students[student]["model"] not in FFN_ACTIVATION_MODELS]
        if "qd" in experiment["methods"] and not experiment["bits"]:
            problems.append(f"{where}.bits: methods include qd, so give the bit widths to quantize to")
    return problems


def student_activations(config: dict, experiment: dict) -> dict[str, list[str]]:
    """Each student's canonical activation tags: the experiment's list for a Transformer (relu when it gives
    none), ``none`` for a model without an FFN activation to choose."""
    students = config["translation"]["students"]
    tags = [canonical_tag(tag) for tag in experiment["activations"] or ["relu"]]
    return {student: tags if students[student]["model"] in FFN_ACTIVATION_MODELS else [NO_ACTIVATION]
            for student in experiment["students"]}


def wildcards(config: dict) -> dict[str, str]:
    translation = config["translation"]
    methods = [rf"qd-b\d+-k({BUCKET_PATTERN})" if method == "qd" else method for method in RUN_KINDS]
    return {"nmt_teacher": alternatives(translation["teachers"]), "nmt_student": alternatives(translation["students"]),
            "nmt_method": "|".join(methods), "ffn": f"{TAG_PATTERN}|{NO_ACTIVATION}"}


def jobs(study: Study) -> list[Job]:
    """The teachers, the translations of the training split that sequence-level KD needs, and every student run of
    every experiment once, in config order."""
    config = study.config
    translation = config["translation"]
    teachers = [teacher_job(config, name) for name in translation["teachers"]]

    def runs() -> Any:
        for name, experiment in translation["experiments"].items():
            corpus = translation["teachers"][experiment["teacher"]]["corpus"]
            quantized = [(bits, bucket) for bits in experiment["bits"] for bucket in experiment["buckets"]]
            for student, tags in student_activations(config, experiment).items():
                for method, tag, seed in itertools.product(experiment["methods"], tags, experiment["seeds"]):
                    for bits, bucket in quantized if method == "qd" else [(None, None)]:
                        job = TrainTranslationStudent(corpus, experiment["teacher"], student, method, bits, bucket,
                                                      tag, seed, name)
                        yield job, job.spec_values(study)

    students = unique_jobs(runs(), lambda first, second: (
        f"translation.experiments.{first.experiment} and translation.experiments.{second.experiment} both ask for "
        f"{first.method_tag()} of {first.student} ({first.activation}, seed {first.seed}) with different settings "
        "(quantize_first_last or skip_by); give one of the experiments another student entry"))
    sequence_kd = dict.fromkeys(job.teacher for job in students if job.method == "seq-kd")
    translated = [TranslateTrainingSplit(job.corpus, job.teacher, job.seed) for job in teachers
                  if job.teacher in sequence_kd]
    return [*teachers, *translated, *students]


def check_jobs(study: Study) -> list[str]:
    teachers = [(f"translation.teachers.{job.teacher}", job.spec_values(study))
                for job in study.of_type(TrainTranslationTeacher)]
    students = [(f"translation.students.{job.student} ({job.method}, {job.activation}, taught by {job.teacher})",
                 job.spec_values(study)) for job in study.of_type(TrainTranslationStudent)]
    return failures(build_translation_spec, teachers + students)


def check_record(record: dict, path: Path) -> None:
    """A translation record: its own keys; labels naming corpus and teacher (a student's also its student, method
    and activation, the method agreeing with the run_kind); BLEU and perplexity of the same test splits; a qd
    student's quantization facts."""
    require_keys(record, REQUIRED_KEYS, path, f"{KIND} record lacks required keys")
    run_kind, labels, metrics = record["run_kind"], record["labels"], record["metrics"]
    if run_kind != "teacher" and run_kind not in RUN_KINDS.values():
        raise ValueError(f"{path}: {KIND} run_kind {run_kind!r}, expected teacher or one of "
                         f"{sorted(RUN_KINDS.values())}")
    label_keys = STUDENT_LABELS if run_kind != "teacher" else ("corpus", "teacher")
    require_keys(labels, label_keys, path, f"{KIND} {run_kind} record lacks labels")
    if run_kind != "teacher":
        method = labels["method"]
        if method not in RUN_KINDS:
            raise ValueError(f"{path}: {KIND} method label {method!r}, not one of "
                             f"{list(RUN_KINDS)}")
        if RUN_KINDS[method] != run_kind:  # the workflow's label and the inputs it trained with disagree
            raise ValueError(f"{path}: {KIND} record labelled method {method!r} has run_kind {run_kind!r}; "
                             f"a {method} run has run_kind {RUN_KINDS[method]!r}")
    require_keys(metrics, METRICS, path, f"{KIND} record lacks metrics")
    if not (isinstance(metrics["bleu"], dict) and isinstance(metrics["ppl"], dict)
            and metrics["bleu"].keys() == metrics["ppl"].keys()):
        raise ValueError(f"{path}: {KIND} metrics bleu and ppl must map the same test splits to numbers, "
                         f"got {metrics['bleu']!r} and {metrics['ppl']!r}")
    require_keys(record["model"], MODEL_KEYS, path, f"{KIND} record lacks model keys")
    if run_kind == "quantize":
        require_keys(record.get("quantization"), QUANTIZATION_KEYS, path,
                     f"{KIND} qd record lacks quantization keys")


def experiments(config: dict) -> dict:
    translation = config["translation"]
    return {name: {"corpus": translation["teachers"][e["teacher"]]["corpus"], "teacher": e["teacher"],
                   "students": list(e["students"]), "activations": student_activations(config, e),
                   "methods": list(e["methods"]), "bits": list(e["bits"]), "buckets": list(e["buckets"]),
                   "seeds": list(e["seeds"])}
            for name, e in translation["experiments"].items()}


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


def translation_table(records: list[dict], experiments: dict):
    """The rows of each translation experiment (``{name: experiment}``): the ``results.with_size_columns`` frame of its
    members, with the columns ``experiment``, ``corpus``, ``teacher``, ``student``, ``activation`` (NaN for the
    teacher) put first.

    Rows follow the config: experiment, the teacher's runs, then student, activation (in the order first listed),
    method, bits descending, the experiment's bucket order, and the seed.
    """
    import pandas as pd

    from compresslib import results  # pandas: only aggregation needs it

    def frame(members: list[dict]):
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


def translation_summary(records: list[dict], experiments: dict):
    """summary-translation.csv: per configuration of :func:`translation_table` (:data:`SUMMARY_KEYS`),
    the statistics of BLEU (``bleu.<split>_mean``, ...) then of perplexity (``ppl.<split>_mean``, ...) of every test
    split present ("test" always, first), then the means of the parameters, the sizes and :data:`MEASURED`."""
    from compresslib import results

    table = translation_table(records, experiments)
    metrics = [f"metrics.{metric}.{split}" for metric in ("bleu", "ppl") for split in _splits(table)]
    table = table.reindex(columns=[*table.columns, *(metric for metric in metrics if metric not in table.columns)])
    return results.summarize(table, SUMMARY_KEYS, metrics=metrics,
                             means=["model.params", *results.SIZE_COLUMNS, *MEASURED])


def _splits(table) -> list[str]:
    """The test splits of a :func:`translation_table`: "test" (always) first, then the others it has."""
    present = {column.removeprefix("metrics.bleu.") for column in table.columns if column.startswith("metrics.bleu.")}
    return [TEST_SPLIT, *sorted(present - {TEST_SPLIT})]


def translation_paired(records: list[dict], experiments: dict):
    """paired-translation.csv: per experiment, student and activation, word- and sequence-level KD against the
    undistilled student of the same seed, BLEU of every test split. The undistilled run is one job whichever
    experiment asks for it, so it is the baseline whatever ``methods`` shows."""
    from compresslib import paired

    with_baseline = {name: e | {"methods": list(dict.fromkeys(["undistilled", *e["methods"]]))}
                     for name, e in experiments.items()}
    table = translation_table(records, with_baseline)
    return paired.paired_table(table, ["experiment", *LABELS], "method", "undistilled",
                               [f"metrics.bleu.{split}" for split in _splits(table)], arms=["word-kd", "seq-kd"],
                               unit="BLEU")


def _markdown(summary, experiments: dict, records: list[dict]) -> str:
    """summary-translation.md: one section per translation experiment, a row per configuration with BLEU of every
    test split its rows have, the test perplexity and the translation speed; each section names the sacrebleu
    signature of one of its records."""
    import pandas as pd

    from compresslib.results import markdown_document, markdown_section, summary_mean_std, three_significant, \
        two_decimals

    def method(row: dict) -> str:
        if pd.isna(row["bucket"]):  # full precision
            return row["method"]
        return f"{row['method']} {row['bits']}-bit, " + (f"k={row['bucket']}" if row["bucket"] else "per-tensor")

    def bleu(row: dict, split: str) -> str:
        n = row[f"bleu.{split}_n"]
        return f"{summary_mean_std(row, f'bleu.{split}')} ({n})" if n else "—"  # n 0: no run has the split

    def section(name: str, experiment: dict, rows: list[dict]) -> list[str]:
        heading = f"## {name}: students of `{experiment['teacher']}` on `{experiment['corpus']}`"
        splits = [column.removeprefix("bleu.").removesuffix("_n") for column in summary.columns
                  if column.startswith("bleu.") and column.endswith("_n") and any(row[column] for row in rows)]
        header = ["method", "student", "activation", "params", "size (MB)", "compression",
                  *(f"BLEU {split}" for split in splits), f"{TEST_SPLIT} ppl", "sentences/s"]

        def cells(row: dict) -> list[str]:
            return [
                method(row), *("—" if pd.isna(row[key]) else str(row[key]) for key in ("student", "activation")),
                f"{round(row['model.params']):,}", three_significant(row["size_mb"]),
                two_decimals(row["compression"]),
                *(bleu(row, split) for split in splits),
                summary_mean_std(row, f"ppl.{TEST_SPLIT}"),
                three_significant(row["timing.sentences_per_s"]),
            ]

        lines = markdown_section(heading, header, rows, cells)
        if rows:  # one signature stands for all: the runs of an experiment share corpus, casing and sacrebleu
            member = next(r for r in records if in_experiment(r, experiment))
            lines += ["", f"sacrebleu signature (of one record): `{member['metrics']['bleu_signature']}`"]
        return lines

    return markdown_document(
        "# Translation: BLEU and perplexity against model size",
        "BLEU: sacrebleu's corpus BLEU (0-100) of the beam-search translations of each test split, as mean ± std "
        f"(n) over the n seeds (sample std, ddof=1); perplexity: the {TEST_SPLIT} split's, mean ± std. "
        "Size: 4 bytes per parameter for full precision, the Huffman-coded quantized model for qd (k: bucket size); "
        f"compression is against the 32-bit float model. sentences/s: beam search over the {TEST_SPLIT} "
        "split.",
        summary, experiments, section)


def plot_bleu_vs_size(summary, out_path: Path, title: str) -> None:
    """Mean BLEU on the test split (error bar: sample std over seeds) against size in MB on a log axis.

    ``summary`` holds :func:`translation_summary` rows of one experiment, drawn as the quantize family's accuracy
    against size; the teacher is a star in a colour of its own, named after it.
    """
    from compresslib import plots  # matplotlib: only aggregation needs it

    students = summary["student"].fillna(summary["teacher"])  # the teacher's row has no student
    plots.plot_against_size(summary.assign(student=students), out_path, title, f"bleu.{TEST_SPLIT}", "student",
                            f"BLEU ({TEST_SPLIT})", MARKERS)


def table_paths(out_dir: Path) -> list[Path]:
    return [*summary_paths(out_dir, "translation"), *summary_paths(out_dir, "translation", "paired")]


def write_tables(records: list[dict], experiments: dict, out_dir: Path) -> None:
    from compresslib import paired
    from compresslib.results import write_summary

    summary_csv, summary_markdown, paired_csv, paired_markdown = table_paths(out_dir)
    summary = translation_summary(records, experiments)
    write_summary(summary, _markdown(summary, experiments, records), summary_csv, summary_markdown)
    comparisons = translation_paired(records, experiments)
    write_summary(comparisons, paired.paired_markdown(
        "# Translation students: word- and sequence-level KD against the undistilled student, paired by seed",
        "runs with the same seed; sacrebleu BLEU points", comparisons, experiments,
        lambda name, e: f"## {name}: students of `{e['teacher']}` on `{e['corpus']}`",
        {"student": "student", "activation": "activation"}), paired_csv, paired_markdown)


def plot_paths(experiments: dict, out_dir: Path) -> list[Path]:
    return [Path(out_dir) / "translation" / f"{name}.png" for name in experiments]


def write_plots(records: list[dict], experiments: dict, out_dir: Path) -> None:
    summary = translation_summary(records, experiments)
    for (name, experiment), path in zip(experiments.items(), plot_paths(experiments, out_dir), strict=True):
        plot_bleu_vs_size(summary[summary["experiment"] == name], path,
                          f"{name}: students of {experiment['teacher']} on {experiment['corpus']}")


FAMILY = Family(name="translation", check=check, jobs=jobs, wildcards=wildcards, check_jobs=check_jobs,
                records=(TrainTranslationTeacher, TrainTranslationStudent), record_kinds=(KIND,),
                check_record=check_record, experiments=experiments, table_paths=table_paths,
                write_tables=write_tables, plot_paths=plot_paths, write_plots=write_plots)
