"""Teachers (config ``teachers``, ``validation``, ``teacher_outputs``): the image and text classifiers every student
family learns from.

Jobs: ``train_teacher`` per teacher entry, and ``teacher_views`` per teacher whose students read its logits from a
table (``views.pt``: its logits for every augmented view of every training image) instead of running it. That is
decided here (:func:`teacher_outputs`) from every planned job that runs a teacher on each training batch: under
``teacher_outputs: auto`` a teacher of an image dataset is cached when those jobs' epochs together exceed the views
of an image (162 for pad-4 crops and flips), since building the table then costs fewer teacher passes; ``cached``
and ``online`` force it (text teachers, and teachers without such jobs, stay online).

Also here: the values every image training run shares (:func:`run_values`: the teacher's dataset and input
normalisation, the validation policy), the check of every image training record (:func:`check_training_record`),
``summary-teachers.csv`` and ``teachers.png``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compresslib.activation_tags import parse_activation
from compresslib.catalog import CLASSIFIER_MODEL_ARGUMENTS, CLASSIFIER_RUN_ARGUMENTS, DATASETS
from compresslib.experiments.base import ALL_EXPERIMENTS, Family, Job, Study, alternatives, argument_problems, \
    failures, milestone_problems, overrides, report_labels, require_keys
from compresslib.experiments.datasets import dataset_file, training_examples
from compresslib.runs.record import MODEL_KEYS, RECORD_NAME
from compresslib.specs.training import TrainSpec, build_spec

__all__ = ["TrainTeacher", "TeacherViews", "RUN_OUTPUTS", "FULL_PRECISION_METHODS", "run_values", "teacher_validation",
           "teacher_job", "teacher_kd_epochs", "teacher_outputs", "with_image_summary_columns",
           "dataset_problem", "reference_problems", "model_problems", "check_training_record", "FAMILY"]

RUN_OUTPUTS = {"model": "model.pt", "record": RECORD_NAME, "history": "history.csv"}
VIEWS_PER_IMAGE = 162  # pad-4 crop offsets x flips (compresslib.training.teacher_views.view_count())
# the method column of full-precision runs in size tables, by record kind
FULL_PRECISION_METHODS = {"teacher": "fp-teacher", "distill": "fp-distilled", "undistilled": "fp-undistilled"}
TRAINING_RECORD_KEYS = ("spec", "metrics", "curve", "activation", "activation_family", "bins")
SUMMARY_KEYS = ["labels.dataset", "labels.teacher", "model.name", "method", "bits", "bucket"]


@dataclass(frozen=True)
class TrainTeacher(Job):
    RULE = "train_teacher"
    FOLDER = "results/teachers/{dataset}/{teacher}/seed{seed}"
    OUTPUTS = RUN_OUTPUTS
    LOG = "{dataset}/{teacher}/seed{seed}"
    WHAT = "a teacher"

    dataset: str
    teacher: str
    seed: int

    def spec_values(self, study: Study) -> dict:
        """The TrainSpec values of this teacher."""
        entry = study.config["teachers"][self.teacher]
        return run_values(study.config, entry, self.teacher, entry["activation"], self.seed, kind="teacher",
                          labels={}, validation=teacher_validation(study.config, self.teacher))

    def inputs(self, study: Study) -> dict[str, Any]:
        return {"data": dataset_file(self.dataset)}

    def arguments(self, study: Study) -> str:
        return overrides(self.spec_values(study), TrainSpec)

    def unplanned_problem(self, study: Study) -> str | None:
        return dataset_problem(self, self.teacher, study.config)  # another seed of a teacher is its own job

    def model_file(self) -> str:
        return self.outputs()["model"]


@dataclass(frozen=True)
class TeacherViews(Job):
    RULE = "teacher_views"
    FOLDER = TrainTeacher.FOLDER
    OUTPUTS = {"views": "views.pt"}
    LOG = TrainTeacher.LOG
    WHAT = "a teacher whose logits are cached"

    dataset: str
    teacher: str
    seed: int

    def inputs(self, study: Study) -> dict[str, Any]:
        return {"data": dataset_file(self.dataset), "teacher": TrainTeacher(self.dataset, self.teacher,
                                                                            self.seed).model_file()}

    def unplanned_problem(self, study: Study) -> str | None:
        if DATASETS[self.dataset].kind != "image":
            return f"{self.folder()}: {self.dataset} is a text dataset; only an image teacher's logits are cached"
        return dataset_problem(self, self.teacher, study.config)


def dataset_problem(job: Job, teacher: str, config: dict) -> str | None:
    """Why a job of image teacher ``teacher`` asked for by path cannot run: a dataset other than the teacher's."""
    dataset = config["teachers"][teacher]["dataset"]
    if job.dataset == dataset:
        return None
    return f"{job.folder()}: teacher {teacher} trains on {dataset}, not {job.dataset}"


def teacher_job(config: dict, name: str) -> TrainTeacher:
    """The training job of teacher ``name``."""
    entry = config["teachers"][name]
    return TrainTeacher(entry["dataset"], name, entry["seed"])


def teacher_validation(config: dict, name: str) -> dict:
    """The validation settings teacher ``name`` trains with: its own, else the config's."""
    return config["teachers"][name]["validation"] or config["validation"]


def run_values(config: dict, entry: dict, teacher: str, activation: str, seed: int, kind: str, labels: dict,
               validation: dict | None = None) -> dict:
    """TrainSpec values shared by teacher and student runs: the entry's model and recipe, the validation policy
    (the top-level one unless given), and the teacher's dataset and normalisation (a student must see the teacher's
    inputs)."""
    teacher_entry = config["teachers"][teacher]
    validation = validation or config["validation"]
    normalization = teacher_entry["normalization"] or {}
    return {"kind": kind, "dataset": teacher_entry["dataset"], "model": entry["model"],
            "model_kwargs": entry["model_kwargs"], "activation": activation, "seed": seed, **entry["train"],
            "validation": validation["policy"], "holdout_size": validation["holdout_size"],
            "holdout_seed": validation["holdout_seed"], "holdout_split": validation["holdout_split"],
            "mean": normalization.get("mean"), "std": normalization.get("std"),
            "labels": {"dataset": teacher_entry["dataset"], "teacher": teacher, **labels}}


def teacher_kd_epochs(study: Study) -> dict[str, int]:
    """Per teacher, the epochs of the planned jobs that run it on every training batch (their ``teacher_passes``).
    The teachers' own family is left out: it plans the views jobs this decides on."""
    epochs = dict.fromkeys(study.config["teachers"], 0)
    others = [family.name for family in study.families if family.name != FAMILY.name]
    for job in dict.fromkeys(job for family in others for job in study.jobs_of(family)):
        passes = job.teacher_passes(study)
        if passes is not None:
            epochs[passes[0]] += passes[1]
    return epochs


def teacher_outputs(study: Study) -> dict[str, str]:
    """Per teacher, where the logits of the jobs that run it on every training batch come from: ``cached`` (its
    views table, one teacher_views job) or ``online`` (the module docstring says which)."""
    def decide() -> dict[str, str]:
        config = study.config
        modes = {}
        for name, count in teacher_kd_epochs(study).items():
            cacheable = count > 0 and DATASETS[config["teachers"][name]["dataset"]].kind == "image"
            wanted = count > VIEWS_PER_IMAGE if config["teacher_outputs"] == "auto" else \
                config["teacher_outputs"] == "cached"
            modes[name] = "cached" if cacheable and wanted else "online"
        return modes

    return study.memo("teacher_outputs", decide)


def activation_problems(tags: Iterable[tuple[str, str]]) -> list[str]:
    """``"<key>: <why>"`` for every (key, tag) whose tag is not a valid activation."""
    return failures(parse_activation, tags)


def reference_problems(where: str, experiment: dict, teachers: dict, students: dict, kind: str = "") -> list[str]:
    """The teacher, students and activations an experiment of students names (``kind``: "translation " for the
    translation section's entries)."""
    problems = []
    if experiment["teacher"] not in teachers:
        problems.append(f"{where}.teacher: {experiment['teacher']!r} names no {kind}teacher; "
                        f"allowed: {', '.join(teachers) or f'(no {kind}teachers defined)'}")
    for index, student in enumerate(experiment["students"]):
        if student not in students:
            problems.append(f"{where}.students[{index}]: {student!r} names no {kind}student; "
                            f"allowed: {', '.join(students) or f'(no {kind}students defined)'}")
    return problems + activation_problems([(f"{where}.activations[{index}]", tag)
                                           for index, tag in enumerate(experiment["activations"] or [])])


def model_problems(where: str, entry: dict) -> list[str]:
    """The model of a teacher or student entry at ``where`` (an image or text classifier) and its ``model_kwargs``
    (arguments its constructor takes, but not those the run passes itself)."""
    model, kwargs = entry["model"], entry["model_kwargs"]
    if model not in CLASSIFIER_MODEL_ARGUMENTS:
        return [f"{where}.model: {model!r} is not a registered classifier model; "
                f"allowed: {', '.join(sorted(CLASSIFIER_MODEL_ARGUMENTS))}"]
    set_by_run = [f"{where}.model_kwargs.{key}: {value!r} is set by the run ({CLASSIFIER_RUN_ARGUMENTS[key]}); "
                  "allowed: leave it out" for key, value in kwargs.items() if key in CLASSIFIER_RUN_ARGUMENTS]
    return set_by_run + argument_problems(f"{where}.model_kwargs", model,
                                          [key for key in kwargs if key not in CLASSIFIER_RUN_ARGUMENTS],
                                          CLASSIFIER_MODEL_ARGUMENTS[model])


def holdout_problems(config: dict) -> list[str]:
    """Every held-out split that would take a whole training split: the top-level one on each teacher's dataset
    (students train with it too), a teacher's own on its dataset."""
    teachers = config["teachers"]
    splits = [("validation", config["validation"], dict.fromkeys(entry["dataset"] for entry in teachers.values()))]
    splits += [(f"teachers.{name}.validation", entry["validation"], [entry["dataset"]])
               for name, entry in teachers.items() if entry["validation"]]
    problems = []
    for where, validation, datasets in splits:
        if validation["policy"] != "holdout":
            continue
        size = validation["holdout_size"]
        for dataset in datasets:
            examples = training_examples(config, dataset) if dataset in DATASETS else None  # else refused below
            if examples is not None and size >= examples:
                problems.append(f"{where}.holdout_size: {size} leaves nothing of the {examples} training examples "
                                f"of {dataset} to train on; allowed: 1 to {examples - 1}")
    return problems


def check(config: dict) -> list[str]:
    problems = holdout_problems(config)
    teachers, students = config["teachers"], config.get("students", {})
    for name in sorted(set(teachers) & set(students)):
        problems.append(f"teachers.{name} / students.{name}: a name cannot be both a teacher and a student "
                        "(their result paths would collide)")
    for name, teacher in teachers.items():
        problems += model_problems(f"teachers.{name}", teacher)
        problems += milestone_problems(f"teachers.{name}.train", teacher["train"])
        if teacher["dataset"] not in DATASETS:
            problems.append(f"teachers.{name}.dataset: {teacher['dataset']!r} is not allowed; "
                            f"allowed: {', '.join(DATASETS)}")
        elif DATASETS[teacher["dataset"]].kind == "text" and teacher["normalization"] is not None:
            problems.append(f"teachers.{name}.normalization: {teacher['dataset']} is text (character ids go to an "
                            "embedding), which takes no normalisation; leave it null")
        problems += activation_problems([(f"teachers.{name}.activation", teacher["activation"])])
    return problems


def jobs(study: Study) -> list[Job]:
    teachers = [teacher_job(study.config, name) for name in study.config["teachers"]]
    modes = teacher_outputs(study)
    return [*teachers, *(TeacherViews(job.dataset, job.teacher, job.seed) for job in teachers
                         if modes[job.teacher] == "cached")]


def check_jobs(study: Study) -> list[str]:
    """Settings a schema cannot judge (augmentation of a text dataset, ...), by building each teacher's spec."""
    return failures(build_spec, [(f"teachers.{job.teacher}", job.spec_values(study))
                                 for job in study.of_type(TrainTeacher)])


def check_training_record(record: dict, path: Path, labels: Iterable[str]) -> None:
    """A record of an image or text training run: the keys the tables read, and ``labels`` among its labels."""
    require_keys(record, TRAINING_RECORD_KEYS, path, "record lacks required keys")
    require_keys(record["labels"], labels, path, f"{record['kind']} record lacks labels")
    require_keys(record["metrics"], ("final_test_acc", "best_test_acc"), path, "record lacks metrics")
    require_keys(record.get("model"), MODEL_KEYS, path, "record lacks model keys")


def check_record(record: dict, path: Path) -> None:
    check_training_record(record, path, ("dataset", "teacher"))


def with_image_summary_columns(rows):
    """``results.with_size_columns`` of image training runs (a full-precision run's method names its kind), and
    what chose their best epoch (``results.with_best_epoch_column``)."""
    from compresslib import results  # pandas: only aggregation needs it

    return results.with_best_epoch_column(results.with_size_columns(rows, rows["kind"].map(FULL_PRECISION_METHODS)))


def table_paths(out_dir: Path) -> list[Path]:
    return [Path(out_dir) / "summary-teachers.csv"]


def write_tables(records: list[dict], experiments: dict, out_dir: Path) -> None:
    from compresslib import results  # pandas and scipy: only aggregation needs them

    teachers = [record for record in records if record["kind"] == "teacher"]
    rows = with_image_summary_columns(results.runs_table(teachers))
    summary = results.summarize(rows, [*SUMMARY_KEYS, results.BEST_EPOCH_COLUMN], means=results.SIZE_COLUMNS)
    results.write_csv(summary, *table_paths(out_dir))


def plot_paths(experiments: dict, out_dir: Path) -> dict[Path, dict[str, str]]:
    return {Path(out_dir) / "teachers.png": report_labels(ALL_EXPERIMENTS, "test accuracy by epoch", student="—",
                                                          activation="—", method="teacher", bits=32)}


def write_plots(records: list[dict], experiments: dict, out_dir: Path) -> None:
    from compresslib import plots  # matplotlib: only aggregation needs it

    teachers = [record for record in records if record["kind"] == "teacher"]
    groups = {teacher: [r for r in teachers if r["labels"]["teacher"] == teacher]
              for teacher in sorted({r["labels"]["teacher"] for r in teachers})}
    plots.plot_curves(groups, *plot_paths(experiments, out_dir), "Teachers: test accuracy", "teacher")


def wildcards(config: dict) -> dict[str, str]:
    return {"teacher": alternatives(config["teachers"]), "seed": r"\d+"}


FAMILY = Family(name="teachers", title="Teachers", check=check, jobs=jobs, wildcards=wildcards,
                check_jobs=check_jobs, records=(TrainTeacher,), record_kinds=("teacher",), check_record=check_record,
                table_paths=table_paths, write_tables=write_tables, plot_paths=plot_paths, write_plots=write_plots)
