"""Translation teachers and students (config ``translation.teachers``, ``.students``, ``.experiments``): LMA's
Transformer students per FFN activation and QD's LSTM students per method, with BLEU and perplexity.

Jobs: ``train_translation_teacher`` per teacher entry; ``translate_training_split`` per teacher whose students
learn from its beam translations (sequence-level KD); ``train_translation_student`` per experiment, student, method
(undistilled, word-kd, seq-kd, qd with its bits and bucket size), FFN activation (``none`` for an LSTM, which has no
activation to choose) and seed. Word-level KD and QD read the teacher's model, sequence-level KD its translations.
The corpora they train on are the corpora family's. Two experiments may share a run only with the same settings.

Tables: ``summary-translation.{csv,md}``, ``paired-translation.{csv,md}`` and ``pareto-translation.{csv,md}``; plots:
``translation/<experiment>.png`` and ``bleu-vs-size/<corpus>.png`` (every experiment of a corpus);
:mod:`compresslib.experiments.translation_tables` writes them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compresslib.activation_tags import TAG_PATTERN, canonical_tag
from compresslib.catalog import TRANSLATION_MODEL_ARGUMENTS
from compresslib.experiments.base import ALL_EXPERIMENTS, Family, Job, Study, alternatives, argument_problems, \
    failures, file_arguments, overrides, report_labels, require_keys, summary_paths, unique_jobs
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


def table_paths(out_dir: Path) -> list[Path]:
    return [*summary_paths(out_dir, "translation"), *summary_paths(out_dir, "translation", "paired"),
            *summary_paths(out_dir, "translation", "pareto")]


def experiment_corpora(experiments: dict) -> list[str]:
    """The corpora the experiments name (config order), each getting one plot of all its runs."""
    return list(dict.fromkeys(e["corpus"] for e in experiments.values()))


def plot_paths(experiments: dict, out_dir: Path) -> dict[Path, dict[str, str]]:
    out_dir = Path(out_dir)
    return {**{out_dir / "translation" / f"{name}.png": report_labels(
                   name, "BLEU against model size", dataset=e["corpus"], teacher=e["teacher"])
               for name, e in experiments.items()},
            **{out_dir / "bleu-vs-size" / f"{corpus}.png": report_labels(
                   ALL_EXPERIMENTS, "BLEU against packed file size, Pareto front", dataset=corpus)
               for corpus in experiment_corpora(experiments)}}


def write_tables(records: list[dict], experiments: dict, out_dir: Path) -> None:
    from compresslib.experiments import translation_tables  # pandas and scipy: only aggregation needs them

    translation_tables.write_tables(records, experiments, out_dir)


def write_plots(records: list[dict], experiments: dict, out_dir: Path) -> None:
    from compresslib.experiments import translation_tables  # matplotlib: only aggregation needs it

    translation_tables.write_plots(records, experiments, out_dir)


FAMILY = Family(name="translation", title="Translation", check=check, jobs=jobs, wildcards=wildcards,
                check_jobs=check_jobs,
                records=(TrainTranslationTeacher, TrainTranslationStudent), record_kinds=(KIND,),
                check_record=check_record, experiments=experiments, table_paths=table_paths,
                write_tables=write_tables, plot_paths=plot_paths, write_plots=write_plots)
