"""The experiment configuration (config.yaml): readable validation errors, cross-checks, and the job matrix.

The workflow validates config.yaml against ``rules/schemas/config.schema.yaml`` (types, ranges,
allowed values, defaults). This module turns schema violations into one message per problem that
names the key, the value and what is allowed; checks what a schema cannot (a student's teacher
exists, model names are registered, names do not collide); and expands the experiment matrix into
the jobs the workflow runs and the spec values each job receives. It never imports Snakemake.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from compresslib.activations import parse_activation

__all__ = ["ConfigError", "load_schema", "schema_errors", "load_config", "check_config", "format_problems", "TeacherJob", "DistillJob",
           "teacher_jobs", "distill_jobs", "canonical_activation", "teacher_spec_values", "student_spec_values",
           "experiments_for_aggregation", "QuantizeJob", "quantize_jobs", "bucket_tag", "undistilled_jobs",
           "reference_distill_jobs", "undistilled_spec_values", "workflow_distill_jobs", "workflow_undistilled_jobs",
           "LitJob", "lit_jobs", "lit_spec_values",
           "lit_baseline_jobs", "LIT_ACTIVATION", "teacher_kd_epochs", "teacher_outputs", "EsnacJob", "esnac_jobs",
           "esnac_search_values",
           "esnac_full_train_values", "NO_ACTIVATION", "TranslationTeacherJob",
           "TranslationJob", "translation_method_path", "translation_teacher_jobs", "translation_corpora",
           "translation_student_activations", "translation_jobs", "translation_teacher_values"]


class ConfigError(ValueError):
    """config.yaml is invalid; the message lists every problem found."""


def load_schema(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def schema_errors(config: dict, schema: dict) -> list[str]:
    """Every schema violation in ``config`` as ``"<key path>: <problem>; allowed: <what>"``."""
    validator = jsonschema.Draft202012Validator(schema)
    messages = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        messages.append(_describe(error))
    return messages


def load_config(path: str | Path, schema_path: str | Path) -> dict:
    """A config file validated against the workflow's schema with its defaults filled in (what Snakemake's
    ``validate`` does), then cross-checked; a bad config raises ConfigError naming every problem."""
    config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    schema = load_schema(schema_path)
    problems = schema_errors(config, schema)
    if problems:
        raise ConfigError(format_problems(problems))
    _DefaultFiller(schema).validate(config)
    check_config(config)
    return config


def _fill_defaults(validator: Any, properties: dict, instance: Any, schema: dict) -> Iterator:
    # jsonschema's documented recipe for defaults, as in Snakemake's validate
    if isinstance(instance, dict):
        for key, subschema in properties.items():
            if "default" in subschema:
                instance.setdefault(key, json.loads(json.dumps(subschema["default"])))
    yield from jsonschema.Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, schema)


_DefaultFiller = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"properties": _fill_defaults})


def _key_path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error.absolute_path)
    value, schema, keyword = error.instance, error.schema, error.validator
    hint = schema.get("description", "")
    if keyword == "enum":
        return f"{where}: {value!r} is not allowed; allowed: {', '.join(map(str, error.validator_value))}"
    if keyword == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed)) if isinstance(value, dict) else []
        allowed_text = f"allowed keys: {', '.join(allowed)}" if allowed else "names must match " + \
            json.dumps(schema.get("propertyNames", {}).get("pattern", ""))
        return f"{where}: unknown key {', '.join(map(repr, extra)) or ''}; {allowed_text}"
    if keyword == "type":
        return f"{where}: {value!r} is not {_article(error.validator_value)}" + (f" ({hint})" if hint else "")
    if keyword in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        symbol = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[keyword]
        return f"{where}: {value!r} is out of range; allowed: {symbol} {error.validator_value}"
    if keyword == "pattern":
        return f"{where}: {value!r} is not allowed; allowed: {hint or 'strings matching ' + error.validator_value}"
    if keyword in ("required", "minItems", "uniqueItems", "minProperties"):  # jsonschema's message says it all
        return f"{where}: {error.message}"
    return f"{where}: {error.message}" + (f" ({hint})" if hint else "")


def _article(type_name: Any) -> str:
    if isinstance(type_name, list):
        return " or ".join(_article(t) for t in type_name)
    return {"integer": "an integer", "object": "a mapping", "array": "a list", "null": "null"}.get(
        type_name, f"a {type_name}")


def check_config(config: dict) -> None:
    """Cross-reference checks after schema validation; raise ConfigError listing every problem."""
    from compresslib.data.datasets import DATASETS, GENERATORS
    from compresslib.models import is_model, list_models

    problems = []
    teachers, students = config.get("teachers", {}), config.get("students", {})
    for name in sorted(set(teachers) & set(students)):
        problems.append(f"teachers.{name} / students.{name}: a name cannot be both a teacher and a student "
                        "(their result paths would collide)")
    for kind, entries in (("teachers", teachers), ("students", students)):
        for name, entry in entries.items():
            if not is_model(entry["model"]):
                problems.append(f"{kind}.{name}.model: {entry['model']!r} is not a registered model; "
                                f"allowed: {', '.join(list_models())}")
    for name, teacher in teachers.items():
        if teacher["dataset"] not in DATASETS:
            problems.append(f"teachers.{name}.dataset: {teacher['dataset']!r} is not allowed; "
                            f"allowed: {', '.join(DATASETS)}")
        elif DATASETS[teacher["dataset"]].kind == "text" and teacher["normalization"] is not None:
            problems.append(f"teachers.{name}.normalization: {teacher['dataset']} is text (character ids go to an "
                            "embedding), which takes no normalisation; leave it null")
        problems += _activation_problems([(f"teachers.{name}.activation", teacher["activation"])])
    experiments = [(f"{section}.{name}", experiment) for section in ("distill", "quantize")
                   for name, experiment in config.get(section, {}).items()]
    for where, experiment in experiments:
        if experiment["teacher"] not in teachers:
            problems.append(f"{where}.teacher: {experiment['teacher']!r} names no teacher; "
                            f"allowed: {', '.join(teachers) or '(no teachers defined)'}")
        for index, student in enumerate(experiment["students"]):
            if student not in students:
                problems.append(f"{where}.students[{index}]: {student!r} names no student; "
                                f"allowed: {', '.join(students) or '(no students defined)'}")
        problems += _activation_problems([(f"{where}.activations[{index}]", tag)
                                          for index, tag in enumerate(experiment["activations"])])
    problems += _lit_problems(config)
    problems += _esnac_problems(config)
    problems += _translation_problems(config)
    downloadable = [dataset for dataset in DATASETS if dataset not in GENERATORS]
    for dataset in config["data"]["extracted"]:
        if dataset not in downloadable:
            problems.append(f"data.extracted.{dataset}: not a downloadable dataset; allowed: {', '.join(downloadable)}")
    if problems:
        raise ConfigError(format_problems(problems))
    problems = _spec_problems(config)
    if problems:
        raise ConfigError(format_problems(problems))
    quantize_jobs(config)  # raises when two experiments ask for one run with different settings
    esnac_jobs(config)  # likewise for searches
    translation_jobs(config)  # and for translation students


def _spec_problems(config: dict) -> list[str]:
    """Settings a schema cannot judge (e.g. augmentation of a text dataset), checked by building each kind of
    run's TrainSpec now rather than when its job starts."""
    from compresslib.training.spec import build_spec

    runs = [(f"teachers.{name}", teacher_spec_values(config, name)) for name in config["teachers"]]
    pairs = dict.fromkeys((experiment["teacher"], student) for section in ("distill", "quantize")
                          for experiment in config.get(section, {}).values() for student in experiment["students"])
    runs += [(f"students.{student} (taught by {teacher})", student_spec_values(config, teacher, student, "relu", 1))
             for teacher, student in pairs]
    runs += [(f"lit.{name}", lit_spec_values(config, experiment["teacher"], experiment["student"], 1))
             for name, experiment in config.get("lit", {}).items()]
    searches = [(name, job) for name, experiment in config.get("esnac", {}).items()
                for job in _esnac_experiment_jobs(config, experiment)]
    search_runs = [(f"esnac.{name} ({job.teacher}, {job.strategy})", esnac_search_values(config, job))
                   for name, job in searches]
    finals = [(f"esnac.{name}.full_train", esnac_full_train_values(config, job, rank=0)) for name, job in searches]
    translation = [(f"translation.teachers.{name}", translation_teacher_values(config, name))
                   for name in config["translation"]["teachers"]]
    translation += [(f"translation.students.{job.student} ({job.method}, {job.activation}, taught by {job.teacher})",
                     values) for job, values in translation_jobs(config).items()]
    return (_failures(build_spec, runs) + _failures(_build_search_spec, search_runs) + _failures(build_spec, finals)
            + _failures(_build_translation_spec, translation))


def _build_search_spec(values: dict) -> Any:
    from compresslib.esnac.search import SearchSpec
    from compresslib.training.spec import build_settings

    return build_settings(SearchSpec, values)


def _build_translation_spec(values: dict) -> Any:
    from compresslib.training.spec import build_settings
    from compresslib.translation.train import TranslationSpec

    return build_settings(TranslationSpec, values)


def _lit_problems(config: dict) -> list[str]:
    problems, pairs = [], {}
    teachers, students = config.get("teachers", {}), config.get("students", {})
    for name, experiment in config.get("lit", {}).items():
        where = f"lit.{name}"
        for role, entries in (("teacher", teachers), ("student", students)):
            if experiment[role] not in entries:
                problems.append(f"{where}.{role}: {experiment[role]!r} names no {role}; "
                                f"allowed: {', '.join(entries) or f'(no {role}s defined)'}")
        pair = (experiment["teacher"], experiment["student"])
        if pair in pairs:  # one result folder per (teacher, student, seed)
            problems.append(f"{where}: lit.{pairs[pair]} already trains {pair[1]} from {pair[0]}")
        pairs.setdefault(pair, name)
        if experiment["baselines"] and experiment["student"] in students:
            phases = experiment["lit"]["epochs"] + experiment["full_model"]["epochs"]
            recipe = students[experiment["student"]]["train"]["epochs"]
            if recipe != phases:
                problems.append(f"{where}.baselines: the baselines train with students.{experiment['student']}.train "
                                f"({recipe} epochs), but LIT's two phases take {phases}; make them equal so the "
                                "comparison is at the same epochs")
    return problems


def _esnac_problems(config: dict) -> list[str]:
    from compresslib.data.datasets import DATASETS

    problems = []
    teachers = config.get("teachers", {})
    for name, experiment in config.get("esnac", {}).items():
        where = f"esnac.{name}"
        for index, teacher in enumerate(experiment["teachers"]):
            entry = teachers.get(teacher)
            if entry is None:
                problems.append(f"{where}.teachers[{index}]: {teacher!r} names no teacher; "
                                f"allowed: {', '.join(teachers) or '(no teachers defined)'}")
            elif entry["dataset"] in DATASETS and DATASETS[entry["dataset"]].kind != "image":
                problems.append(f"{where}.teachers[{index}]: ESNAC compresses image classifiers; {teacher!r} is "
                                f"trained on {entry['dataset']}")
            elif (entry["validation"] or config["validation"])["policy"] != "holdout":
                problems.append(f"{where}.teachers[{index}]: teacher {teacher!r} trains on the whole training set "
                                "(validation policy test), but the search scores candidates on images the teacher has "
                                "not seen; give it validation: {policy: holdout, holdout_split: last} (ESNAC's 45K/5K)")
        for searched, reference in experiment["reference_teachers"].items():
            if searched not in experiment["teachers"]:
                problems.append(f"{where}.reference_teachers: {searched!r} is not one of the experiment's teachers")
            elif reference not in teachers:
                problems.append(f"{where}.reference_teachers.{searched}: {reference!r} names no teacher")
            elif searched in teachers and teachers[reference]["dataset"] != teachers[searched]["dataset"]:
                problems.append(f"{where}.reference_teachers.{searched}: {reference!r} is trained on "
                                f"{teachers[reference]['dataset']}, {searched!r} on {teachers[searched]['dataset']}")
    return problems


def format_problems(problems: list[str]) -> str:
    return "invalid config:\n" + "\n".join(f"  - {problem}" for problem in problems)


def _activation_problems(tags: list[tuple[str, str]]) -> list[str]:
    """``"<key>: <why>"`` for every (key, tag) whose tag is not a valid activation."""
    return _failures(parse_activation, tags)


def _failures(check: Callable[[Any], object], items: Iterable[tuple[str, Any]]) -> list[str]:
    """``"<where>: <error>"`` for every ``(where, value)`` on which ``check`` raises ValueError."""
    problems = []
    for where, value in items:
        try:
            check(value)
        except ValueError as error:
            problems.append(f"{where}: {error}")
    return problems


def canonical_activation(tag: str) -> tuple[str, str]:
    """``(family, bins)`` as path parts: ``"lma"`` -> ``("lma", "8")``, ``"relu"`` -> ``("relu", "")``."""
    family, bins = parse_activation(tag)
    return family, "" if bins is None else str(bins)


@dataclass(frozen=True)
class TeacherJob:
    dataset: str
    teacher: str
    seed: int


@dataclass(frozen=True)
class DistillJob:
    dataset: str
    teacher: str
    student: str
    activation: str  # family, e.g. "lma"
    bins: str  # segment count as a string, "" for unsegmented activations
    seed: int

    @property
    def tag(self) -> str:
        return self.activation + self.bins


def teacher_jobs(config: dict) -> list[TeacherJob]:
    return [TeacherJob(t["dataset"], name, t["seed"]) for name, t in config["teachers"].items()]


def distill_jobs(config: dict) -> list[DistillJob]:
    """Every distillation run of every experiment, once, in config order."""
    jobs: dict[DistillJob, None] = {}
    for experiment in config["distill"].values():
        teacher = config["teachers"][experiment["teacher"]]
        for student in experiment["students"]:
            for tag in experiment["activations"]:
                family, bins = canonical_activation(tag)
                for seed in experiment["seeds"]:
                    jobs[DistillJob(teacher["dataset"], experiment["teacher"], student, family, bins, seed)] = None
    return list(jobs)


def _run_values(config: dict, entry: dict, teacher: str, activation: str, seed: int, labels: dict,
                validation: dict | None = None) -> dict:
    """TrainSpec values shared by teacher and student runs: the entry's model and recipe, the validation
    policy (the top-level one unless given), and the teacher's dataset and normalisation (a student must
    see the teacher's inputs)."""
    teacher_entry = config["teachers"][teacher]
    validation = validation or config["validation"]
    normalization = teacher_entry["normalization"] or {}
    return {"dataset": teacher_entry["dataset"], "model": entry["model"], "model_kwargs": entry["model_kwargs"],
            "activation": activation, "seed": seed, **entry["train"],
            "validation": validation["policy"], "holdout_size": validation["holdout_size"],
            "holdout_seed": validation["holdout_seed"], "holdout_split": validation["holdout_split"],
            "mean": normalization.get("mean"), "std": normalization.get("std"),
            "labels": {"dataset": teacher_entry["dataset"], "teacher": teacher, **labels}}


def teacher_spec_values(config: dict, name: str) -> dict:
    """The TrainSpec values of teacher ``name``."""
    teacher = config["teachers"][name]
    return _run_values(config, teacher, name, teacher["activation"], teacher["seed"], labels={},
                       validation=teacher.get("validation"))


def student_spec_values(config: dict, teacher: str, student: str, activation: str, seed: int) -> dict:
    """The TrainSpec values of one distillation run."""
    entry = config["students"][student]
    return _run_values(config, entry, teacher, activation, seed, labels={"student": student}) | {"kd": entry["kd"]}


@dataclass(frozen=True)
class QuantizeJob:
    dataset: str
    teacher: str
    student: str
    method: str  # qd | dq | pm
    bits: int
    bucket: str  # bucket size as a string, "none" for one bucket per tensor
    activation: str
    bins: str
    seed: int

    @property
    def tag(self) -> str:
        return self.activation + self.bins

    @property
    def distilled(self) -> DistillJob:
        """The full-precision distilled student this run starts from (dq, pm) or stands beside (qd)."""
        return DistillJob(self.dataset, self.teacher, self.student, self.activation, self.bins, self.seed)


def bucket_tag(bucket_size: int | None) -> str:
    return "none" if bucket_size is None else str(bucket_size)


def quantize_jobs(config: dict) -> dict[QuantizeJob, dict]:
    """Every quantization run of every experiment, once, in config order, with its settings.

    A run's settings are TrainSpec values (qd, dq) or post-training arguments (pm). Two experiments may
    share a run only if they give it the same settings; otherwise their results would overwrite each other.
    """
    def entries() -> Iterable[tuple[str, QuantizeJob, dict]]:
        for name, experiment in config.get("quantize", {}).items():
            teacher = config["teachers"][experiment["teacher"]]
            for student, tag, seed, method, bits, bucket_size in itertools.product(
                    experiment["students"], experiment["activations"], experiment["seeds"], experiment["methods"],
                    experiment["bits"], experiment["buckets"]):
                family, bins = canonical_activation(tag)
                job = QuantizeJob(teacher["dataset"], experiment["teacher"], student, method, bits,
                                  bucket_tag(bucket_size), family, bins, seed)
                yield name, job, _quantize_settings(config, experiment, job, bucket_size)

    return _unique_jobs(entries(), lambda first, second, job: (
        f"quantize.{first} and quantize.{second} both ask for {job.method} of {job.student} ({job.tag}, seed "
        f"{job.seed}, {job.bits} bits, bucket {job.bucket}) with different settings (qd_train, dq, quantize_first_last "
        "or skip_by); give one of the experiments another student entry"))


def _unique_jobs(entries: Iterable[tuple[str, Any, dict]], conflict: Callable[[str, str, Any], str]) -> dict:
    """``{job: settings}`` from ``(experiment, job, settings)`` in order, each job once. Two experiments may share a
    job only with the same settings (else their results would overwrite each other); every clash is reported
    with ``conflict(first experiment, second experiment, job)``."""
    jobs: dict[Any, dict] = {}
    owners: dict[Any, str] = {}
    problems = []
    for name, job, settings in entries:
        if job in jobs and jobs[job] != settings:
            problems.append(conflict(owners[job], name, job))
        jobs.setdefault(job, settings)
        owners.setdefault(job, name)
    if problems:
        raise ConfigError(format_problems(problems))
    return jobs


def _quantize_settings(config: dict, experiment: dict, job: QuantizeJob, bucket_size: int | None) -> dict:
    """TrainSpec values of a qd or dq run; the post-training arguments of a pm run."""
    layers = {"quantize_first_last": experiment["quantize_first_last"], "skip_by": experiment["skip_by"]}
    if job.method == "pm":
        return {"bits": job.bits, "bucket_size": bucket_size, **layers}
    values = student_spec_values(config, job.teacher, job.student, job.tag, job.seed)
    quant = {"method": job.method, "bits": job.bits, "bucket_size": bucket_size, **layers}
    if job.method == "qd":
        return values | (experiment["qd_train"] or {}) | {"quant": quant}
    dq = dict(experiment["dq"])
    quant |= {key: dq.pop(key) for key in ("points_init", "auto_bits", "gradient_batches")}
    return values | dq | {"quant": quant}


def undistilled_jobs(config: dict) -> list[DistillJob]:
    """Students trained on hard labels only, as references of the quantize experiments that ask for them."""
    return _quantized_students(config, lambda experiment: "undistilled" in experiment["references"])


def reference_distill_jobs(config: dict) -> list[DistillJob]:
    """Distilled students the quantize experiments need: dq and pm start from them, references show them."""
    return _quantized_students(config, lambda experiment: "distilled" in experiment["references"]
                               or not set(experiment["methods"]) <= {"qd"})


def _quantized_students(config: dict, wanted: Callable[[dict], bool]) -> list[DistillJob]:
    """(teacher, student, activation, seed) of every quantize experiment for which ``wanted`` holds, once."""
    jobs: dict[DistillJob, None] = {}
    for experiment in filter(wanted, config.get("quantize", {}).values()):
        dataset = config["teachers"][experiment["teacher"]]["dataset"]
        for student, tag, seed in itertools.product(experiment["students"], experiment["activations"],
                                                    experiment["seeds"]):
            jobs[DistillJob(dataset, experiment["teacher"], student, *canonical_activation(tag), seed)] = None
    return list(jobs)


def workflow_distill_jobs(config: dict) -> list[DistillJob]:
    """Every distilled student the workflow trains, once: those of the distill experiments, those the quantize
    experiments start from or show, and the LIT experiments' KD baselines."""
    return list(dict.fromkeys(distill_jobs(config) + reference_distill_jobs(config) + lit_baseline_jobs(config, "kd")))


def workflow_undistilled_jobs(config: dict) -> list[DistillJob]:
    """Every student the workflow trains on hard labels alone, once: quantize references and LIT's scratch
    baselines."""
    return list(dict.fromkeys(undistilled_jobs(config) + lit_baseline_jobs(config, "scratch")))


def undistilled_spec_values(config: dict, teacher: str, student: str, activation: str, seed: int) -> dict:
    """The TrainSpec values of a student trained on hard labels (its distilled twin without kd)."""
    values = student_spec_values(config, teacher, student, activation, seed)
    del values["kd"]
    return values


LIT_ACTIVATION = "relu"  # LIT's students are the originals' ReLU networks (VDCNN's blocks allow nothing else)


@dataclass(frozen=True)
class LitJob:
    dataset: str
    teacher: str
    student: str
    seed: int


def lit_jobs(config: dict, wanted: Callable[[dict], bool] = lambda experiment: True) -> list[LitJob]:
    """Every LIT run of every experiment for which ``wanted`` holds, in config order."""
    return [LitJob(config["teachers"][e["teacher"]]["dataset"], e["teacher"], e["student"], seed)
            for e in filter(wanted, config.get("lit", {}).values()) for seed in e["seeds"]]


def lit_spec_values(config: dict, teacher: str, student: str, seed: int) -> dict:
    """The TrainSpec values of one LIT run: the student's recipe and kd settings, phase 2 from the experiment's
    ``full_model`` (multistep) and phase 1 from its ``lit``."""
    experiment = next(e for e in config["lit"].values() if (e["teacher"], e["student"]) == (teacher, student))
    full_model = experiment["full_model"]
    return student_spec_values(config, teacher, student, LIT_ACTIVATION, seed) | {
        "epochs": full_model["epochs"], "lr": full_model["lr"], "schedule": "multistep",
        "milestones": full_model["milestones"], "gamma": full_model["gamma"], "lit": dict(experiment["lit"])}


def lit_baseline_jobs(config: dict, baseline: str) -> list[DistillJob]:
    """The ``baseline`` runs ("scratch": undistilled, "kd": distilled students) the LIT experiments ask for."""
    family, bins = canonical_activation(LIT_ACTIVATION)
    return [DistillJob(job.dataset, job.teacher, job.student, family, bins, job.seed)
            for job in lit_jobs(config, lambda experiment: baseline in experiment["baselines"])]


def teacher_kd_epochs(config: dict) -> dict[str, int]:
    """Per teacher, the epochs of the runs that read its logits on every training batch: its distilled students
    (distill_student) and QD runs. LIT (its phase 1 reads the teacher's sections), DQ (its teacher is the
    distilled student) and undistilled runs do not count. Online, each such epoch is one teacher pass over the
    training split."""
    epochs = dict.fromkeys(config["teachers"], 0)
    for job in workflow_distill_jobs(config):
        epochs[job.teacher] += config["students"][job.student]["train"]["epochs"]
    for job, settings in quantize_jobs(config).items():
        if job.method == "qd":
            epochs[job.teacher] += settings["epochs"]
    return epochs


def teacher_outputs(config: dict) -> dict[str, str]:
    """Per teacher, where the KD logits of its distill_student and QD runs come from: ``cached`` (a table of its
    logits for every view of every training image, one teacher_views job) or ``online`` (the teacher runs on
    every batch).

    ``teacher_outputs: auto`` caches a teacher of an image dataset when those runs' epochs together
    (teacher_kd_epochs) exceed the views of an image (162 for pad-4 crops and flips): building the table then
    costs fewer teacher passes than the runs would make online. ``cached`` and ``online`` force it; a teacher of
    a text dataset, or with no such runs, stays online (there is nothing to cache).
    """
    from compresslib.data.datasets import DATASETS
    from compresslib.training.teacher_views import view_count

    modes = {}
    for name, epochs in teacher_kd_epochs(config).items():
        cacheable = epochs > 0 and DATASETS[config["teachers"][name]["dataset"]].kind == "image"
        wanted = epochs > view_count() if config["teacher_outputs"] == "auto" else config["teacher_outputs"] == "cached"
        modes[name] = "cached" if cacheable and wanted else "online"
    return modes


def experiments_for_aggregation(config: dict) -> dict:
    """The distill, quantize, LIT, ESNAC and translation experiments (canonical activation tags), as
    compresslib.results expects them."""
    def common(e: dict) -> dict:
        return {"teacher": e["teacher"], "students": list(e["students"]),
                "activations": ["".join(canonical_activation(tag)) for tag in e["activations"]],
                "seeds": list(e["seeds"])}

    return {"distill": {name: common(e) for name, e in config["distill"].items()},
            "quantize": {name: common(e) | {"methods": list(e["methods"]), "bits": list(e["bits"]),
                                            "buckets": list(e["buckets"]), "references": list(e["references"]),
                                            "dataset": config["teachers"][e["teacher"]]["dataset"]}
                         for name, e in config.get("quantize", {}).items()},
            "lit": {name: {"dataset": config["teachers"][e["teacher"]]["dataset"], "teacher": e["teacher"],
                           "student": e["student"], "activation": LIT_ACTIVATION, "seeds": list(e["seeds"]),
                           "baselines": list(e["baselines"])}
                    for name, e in config.get("lit", {}).items()},
            "esnac": {name: {"teachers": {teacher: {"dataset": config["teachers"][teacher]["dataset"],
                                                    "reference": e["reference_teachers"].get(teacher, teacher)}
                                          for teacher in e["teachers"]},
                             "strategies": list(e["strategies"]), "seeds": list(e["seeds"]),
                             "top_k": e["search"]["top_k"]}
                      for name, e in config.get("esnac", {}).items()},
            "translation": {name: {"corpus": config["translation"]["teachers"][e["teacher"]]["corpus"],
                                   "teacher": e["teacher"], "students": list(e["students"]),
                                   "activations": translation_student_activations(config, e),
                                   "methods": list(e["methods"]), "bits": list(e["bits"]),
                                   "buckets": list(e["buckets"]), "seeds": list(e["seeds"])}
                            for name, e in config["translation"]["experiments"].items()}}


@dataclass(frozen=True)
class EsnacJob:
    dataset: str
    teacher: str
    strategy: str  # esnac | random
    seed: int


def _esnac_experiment_jobs(config: dict, experiment: dict) -> list[EsnacJob]:
    return [EsnacJob(config["teachers"][teacher]["dataset"], teacher, strategy, seed)
            for teacher, strategy, seed in itertools.product(experiment["teachers"], experiment["strategies"],
                                                              experiment["seeds"])]


def esnac_jobs(config: dict) -> dict[EsnacJob, dict]:
    """Every ESNAC search of every experiment, once, in config order, with its experiment's ``search`` and
    ``full_train`` settings. Two experiments may share a search only if they give it the same settings."""
    entries = ((name, job, {"search": experiment["search"], "full_train": experiment["full_train"]})
               for name, experiment in config.get("esnac", {}).items()
               for job in _esnac_experiment_jobs(config, experiment))
    return _unique_jobs(entries, lambda first, second, job: (
        f"esnac.{first} and esnac.{second} both search {job.teacher} ({job.strategy}, seed {job.seed}) with "
        "different search or full_train settings; give one of them other seeds"))


def esnac_search_values(config: dict, job: EsnacJob) -> dict:
    """The SearchSpec values of one search: the experiment's ``search`` settings, the held-out split the teacher
    did not train on (its own validation settings), and labels for the result tables."""
    teacher = config["teachers"][job.teacher]
    validation = teacher["validation"] or config["validation"]
    return {**_esnac_settings(config, job)["search"], "dataset": job.dataset, "strategy": job.strategy,
            "seed": job.seed, "holdout_size": validation["holdout_size"], "holdout_split": validation["holdout_split"],
            "holdout_seed": validation["holdout_seed"],
            "labels": {"dataset": job.dataset, "teacher": job.teacher, "strategy": job.strategy}}


def esnac_full_train_values(config: dict, job: EsnacJob, rank: int) -> dict:
    """TrainSpec values of the full training of a search's rank-``rank`` architecture (the model, its
    architecture and the input normalisation come from the architecture file itself)."""
    return {**_esnac_settings(config, job)["full_train"], "dataset": job.dataset, "seed": job.seed,
            "validation": "test",
            "labels": {"dataset": job.dataset, "teacher": job.teacher, "strategy": job.strategy,
                       "search_seed": job.seed, "rank": rank}}


def _esnac_settings(config: dict, job: EsnacJob) -> dict:
    jobs = esnac_jobs(config)
    if job not in jobs:
        raise ConfigError(f"no esnac experiment searches {job.teacher} on {job.dataset} with {job.strategy}, "
                          f"seed {job.seed}")
    return jobs[job]


# ----------------------------------------------------------------------------- translation

FFN_ACTIVATION_MODELS = ("transformer_nmt",)  # translation models whose FFN activation an experiment chooses
NO_ACTIVATION = "none"  # the activation part of a path for models without a choosable one (the LSTM)


@dataclass(frozen=True)
class TranslationTeacherJob:
    corpus: str
    teacher: str
    seed: int


@dataclass(frozen=True)
class TranslationJob:
    """One translation student run. ``method`` is its path part: undistilled, word-kd, seq-kd or
    qd-b<bits>-k<bucket> (quantized distillation with word-level KD)."""

    corpus: str
    teacher: str
    student: str
    method: str
    activation: str  # canonical FFN activation tag (lma8), or "none"
    seed: int


def translation_method_path(method: str, bits: int | None = None, bucket_size: int | None = None) -> str:
    """The path part of a student's method: the method, or ``qd-b<bits>-k<bucket>`` for quantized distillation."""
    return f"qd-b{bits}-k{bucket_tag(bucket_size)}" if method == "qd" else method


def translation_teacher_jobs(config: dict) -> list[TranslationTeacherJob]:
    teachers = config["translation"]["teachers"]
    return [TranslationTeacherJob(entry["corpus"], name, entry["seed"]) for name, entry in teachers.items()]


def translation_corpora(config: dict) -> list[str]:
    """The corpora some translation teacher trains on, in config order: the ones the workflow prepares."""
    return list(dict.fromkeys(job.corpus for job in translation_teacher_jobs(config)))


def translation_student_activations(config: dict, experiment: dict) -> dict[str, list[str]]:
    """Each student's canonical activation tags: the experiment's list for a Transformer (relu when it gives
    none), ``none`` for a model without an FFN activation to choose."""
    students = config["translation"]["students"]
    tags = ["".join(canonical_activation(tag)) for tag in experiment["activations"] or ["relu"]]
    return {student: tags if students[student]["model"] in FFN_ACTIVATION_MODELS else [NO_ACTIVATION]
            for student in experiment["students"]}


def translation_jobs(config: dict) -> dict[TranslationJob, dict]:
    """Every translation student run of every experiment, once, in config order, with its TranslationSpec values.
    Two experiments may share a run only if they give it the same settings."""
    def entries() -> Iterable[tuple[str, TranslationJob, dict]]:
        for name, experiment in config["translation"]["experiments"].items():
            corpus = config["translation"]["teachers"][experiment["teacher"]]["corpus"]
            quantized = [(bits, bucket) for bits in experiment["bits"] for bucket in experiment["buckets"]]
            for student, tags in translation_student_activations(config, experiment).items():
                for method, tag, seed in itertools.product(experiment["methods"], tags, experiment["seeds"]):
                    for bits, bucket in quantized if method == "qd" else [(None, None)]:
                        job = TranslationJob(corpus, experiment["teacher"], student,
                                             translation_method_path(method, bits, bucket), tag, seed)
                        yield name, job, _translation_student_values(config, experiment, job, method, bits, bucket)

    return _unique_jobs(entries(), lambda first, second, job: (
        f"translation.experiments.{first} and translation.experiments.{second} both ask for {job.method} of "
        f"{job.student} ({job.activation}, seed {job.seed}) with different settings (quantize_first_last or skip_by); "
        "give one of the experiments another student entry"))


def _translation_values(entry: dict, corpus: str, seed: int, labels: dict) -> dict:
    return {"corpus": corpus, "model": entry["model"], "model_kwargs": dict(entry["model_kwargs"]), "seed": seed,
            **entry["train"], "labels": labels}


def translation_teacher_values(config: dict, name: str) -> dict:
    """The TranslationSpec values of translation teacher ``name``."""
    entry = config["translation"]["teachers"][name]
    return _translation_values(entry, entry["corpus"], entry["seed"], {"corpus": entry["corpus"], "teacher": name})


def _translation_student_values(config: dict, experiment: dict, job: TranslationJob, method: str,
                                bits: int | None, bucket_size: int | None) -> dict:
    entry = config["translation"]["students"][job.student]
    values = _translation_values(entry, job.corpus, job.seed, {
        "corpus": job.corpus, "teacher": job.teacher, "student": job.student, "method": method,
        "activation": job.activation})
    if job.activation != NO_ACTIVATION:
        values["model_kwargs"]["activation"] = job.activation
    if method in ("word-kd", "qd"):  # QD's quantized students distil word-level from the teacher
        values["kd"] = dict(entry["kd"])
    if method == "qd":
        values["quant"] = {"method": "qd", "bits": bits, "bucket_size": bucket_size,
                           "quantize_first_last": experiment["quantize_first_last"], "skip_by": experiment["skip_by"]}
    return values


def _translation_problems(config: dict) -> list[str]:
    from compresslib.translation.corpus import CORPORA

    translation = config["translation"]
    corpora, teachers, students = translation["corpora"], translation["teachers"], translation["students"]
    problems = []
    for name, corpus in corpora.items():
        where = f"translation.corpora.{name}"
        generated = not CORPORA[name].files
        if generated and corpus["files"]:
            problems.append(f"{where}.files: {name} is generated, not read from files; leave files out")
        if not generated and corpus["synthetic"] is not None:
            problems.append(f"{where}.synthetic: only synthetic_translation is generated; {name} is downloaded")
        roles = sorted(CORPORA[name].files)
        if corpus["files"] and sorted(corpus["files"]) != roles:
            problems.append(f"{where}.files: give every file of {name} ({', '.join(roles)}), got "
                            f"{', '.join(sorted(corpus['files']))}")
        problems += _test_set_problems(f"{where}.test_sets", name, corpus["test_sets"])
    for name, teacher in teachers.items():
        if teacher["corpus"] not in corpora:
            problems.append(f"translation.teachers.{name}.corpus: {teacher['corpus']!r} is not under "
                            f"translation.corpora; allowed: {', '.join(corpora) or '(no corpora defined)'}")
    for kind, entries in (("teachers", teachers), ("students", students)):
        problems += [f"translation.{kind}.{name}.model_kwargs: {problem}" for name, entry in entries.items()
                     for problem in _translation_kwargs_problems(entry["model"], entry["model_kwargs"])]
    for name, student in students.items():
        if "activation" in student["model_kwargs"]:
            problems.append(f"translation.students.{name}.model_kwargs.activation: a student's FFN activation comes "
                            "from its experiments' activations; leave it out")
    for name, experiment in translation["experiments"].items():
        where = f"translation.experiments.{name}"
        if experiment["teacher"] not in teachers:
            problems.append(f"{where}.teacher: {experiment['teacher']!r} names no translation teacher; "
                            f"allowed: {', '.join(teachers) or '(no translation teachers defined)'}")
        for index, student in enumerate(experiment["students"]):
            if student not in students:
                problems.append(f"{where}.students[{index}]: {student!r} names no translation student; "
                                f"allowed: {', '.join(students) or '(no translation students defined)'}")
            elif experiment["activations"] and students[student]["model"] not in FFN_ACTIVATION_MODELS:
                problems.append(f"{where}.activations: {student!r} is a {students[student]['model']}, which has no "
                                f"FFN activation to choose; give it an experiment without activations")
        problems += _activation_problems([(f"{where}.activations[{index}]", tag)
                                          for index, tag in enumerate(experiment["activations"] or [])])
        if "qd" in experiment["methods"] and not experiment["bits"]:
            problems.append(f"{where}.bits: methods include qd, so give the bit widths to quantize to")
    return problems


def _translation_kwargs_problems(model: str, kwargs: dict) -> list[str]:
    """Constructor arguments the model does not take (a typo would otherwise fail only when its job starts)."""
    import inspect

    from compresslib.translation.models import LstmNMT, TransformerNMT

    parameters = list(inspect.signature({"transformer_nmt": TransformerNMT, "lstm_nmt": LstmNMT}[model]).parameters)
    allowed = [name for name in parameters if name not in ("src_vocab", "tgt_vocab")]
    return [f"{model} takes no argument {key!r}; allowed: {', '.join(allowed)}" for key in kwargs if key not in allowed]


def _test_set_problems(where: str, corpus: str, test_sets: list[str]) -> list[str]:
    from compresslib.translation.corpus import CORPORA
    from compresslib.translation.sources import test_set_language_pairs

    info, problems = CORPORA[corpus], []
    for index, name in enumerate(test_sets):
        pairs = test_set_language_pairs(name)
        if (info.src_lang, info.tgt_lang) not in pairs:
            problems.append(f"{where}[{index}]: {name} has no {info.src_lang}-{info.tgt_lang} pair (it has "
                            f"{', '.join('-'.join(pair) for pair in pairs)}), the languages of {corpus}")
    return problems
