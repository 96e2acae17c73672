"""The experiment configuration (config.yaml): readable validation errors, cross-checks, and the job matrix.

The workflow validates config.yaml against ``rules/schemas/config.schema.yaml`` (types, ranges,
allowed values, defaults). This module turns schema violations into one message per problem that
names the key, the value and what is allowed; checks what a schema cannot (a student's teacher
exists, model names are registered, names do not collide); and expands the experiment matrix into
the jobs the workflow runs and the spec values each job receives. It never imports Snakemake.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from compresslib.activations import parse_activation

__all__ = ["ConfigError", "load_schema", "schema_errors", "check_config", "format_problems", "TeacherJob", "DistillJob",
           "teacher_jobs", "distill_jobs", "canonical_activation", "teacher_spec_values", "student_spec_values",
           "experiments_for_aggregation"]


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
    from compresslib.data.datasets import DATASETS
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
        problems += _activation_problems([(f"teachers.{name}.activation", teacher["activation"])])
    for name, experiment in config.get("distill", {}).items():
        where = f"distill.{name}"
        if experiment["teacher"] not in teachers:
            problems.append(f"{where}.teacher: {experiment['teacher']!r} names no teacher; "
                            f"allowed: {', '.join(teachers) or '(no teachers defined)'}")
        for index, student in enumerate(experiment["students"]):
            if student not in students:
                problems.append(f"{where}.students[{index}]: {student!r} names no student; "
                                f"allowed: {', '.join(students) or '(no students defined)'}")
        problems += _activation_problems([(f"{where}.activations[{index}]", tag)
                                          for index, tag in enumerate(experiment["activations"])])
    for dataset in config["data"]["extracted"]:
        if dataset not in DATASETS or dataset == "synthetic":
            problems.append(f"data.extracted.{dataset}: not a downloadable dataset; allowed: cifar10, cifar100")
    if problems:
        raise ConfigError(format_problems(problems))


def format_problems(problems: list[str]) -> str:
    return "invalid config:\n" + "\n".join(f"  - {problem}" for problem in problems)


def _activation_problems(tags: list[tuple[str, str]]) -> list[str]:
    """``"<key>: <why>"`` for every (key, tag) whose tag is not a valid activation."""
    problems = []
    for where, tag in tags:
        try:
            parse_activation(tag)
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


def _run_values(config: dict, entry: dict, teacher: str, activation: str, seed: int, labels: dict) -> dict:
    """TrainSpec values shared by teacher and student runs: the entry's model and recipe, the validation
    policy, and the teacher's dataset and normalisation (a student must see the teacher's inputs)."""
    teacher_entry = config["teachers"][teacher]
    validation = config["validation"]
    normalization = teacher_entry["normalization"] or {}
    return {"dataset": teacher_entry["dataset"], "model": entry["model"], "model_kwargs": entry["model_kwargs"],
            "activation": activation, "seed": seed, **entry["train"],
            "validation": validation["policy"], "holdout_size": validation["holdout_size"],
            "holdout_seed": validation["holdout_seed"],
            "mean": normalization.get("mean"), "std": normalization.get("std"),
            "labels": {"dataset": teacher_entry["dataset"], "teacher": teacher, **labels}}


def teacher_spec_values(config: dict, name: str) -> dict:
    """The TrainSpec values of teacher ``name``."""
    teacher = config["teachers"][name]
    return _run_values(config, teacher, name, teacher["activation"], teacher["seed"], labels={})


def student_spec_values(config: dict, teacher: str, student: str, activation: str, seed: int) -> dict:
    """The TrainSpec values of one distillation run."""
    entry = config["students"][student]
    return _run_values(config, entry, teacher, activation, seed, labels={"student": student}) | {"kd": entry["kd"]}


def experiments_for_aggregation(config: dict) -> dict:
    """The distill experiments with canonical activation tags, as compresslib.results expects them."""
    return {name: {"teacher": e["teacher"], "students": list(e["students"]),
                   "activations": ["".join(canonical_activation(tag)) for tag in e["activations"]],
                   "seeds": list(e["seeds"])}
            for name, e in config["distill"].items()}
