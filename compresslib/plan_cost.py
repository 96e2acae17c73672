"""Estimate the device time of a config's whole DAG, per rule family, from per-epoch times measured here.

    python -m compresslib.plan_cost [--config config.yaml] [--device auto] [--examples N] [--out plan.json]
    python -m compresslib.plan_cost --plan-only      # the jobs and what would be measured, no measuring

Every job the workflow would run for the config is expanded as the workflow expands it (``compresslib.config``)
and charged in units of a *cost group*: what one of its epochs costs depends on the model and its settings, the
dataset, the batch size, the teacher it runs, its quantization and LIT, not on the seed or the learning rate.
Each group is measured once, by running compresslib's own code on this device for two epochs on stand-in data of
the real shape (random images or character ids with the real number of classes: speed does not depend on
content):

* training-loop jobs (teachers, students, QD, DQ, LIT, ESNAC's full trainings, post-training evaluations):
  ``compresslib.training.loop.train`` with a random-weight teacher of the real architecture, or its table of
  logits for students that read them from one (``teacher_outputs``);
* a teacher's table of logits for every view (``teacher_views``): ``compute_teacher_views`` on a few images;
* ESNAC's search: ``compresslib.esnac.search.search`` on random candidates of the real teacher, and one learned
  kernel fitted on half a full history with expected improvement over the real number of proposals;
* translation jobs: ``compresslib.translation.train.train_translation`` on the first pairs of the prepared corpus
  (real lengths, tokenisers and vocabularies).

The second (warm) epoch's seconds per training example (per target token for translation) and per evaluated
example scale to the real split sizes and epoch counts. The result is this device's time for the DAG; measured
on the kind of GPU the jobs will use, it is their GPU-hours.

Left out, so under-counted: each job's start-up (interpreter, CUDA context, loading data), downloads and data
preparation. Over-counted: the ``generic`` schedule's early stops (every run is charged its maximum epochs).
ESNAC's full trainings are charged at the speed of a random candidate of the search. A translation corpus must be
prepared (``snakemake -c1 resources/<corpus>/corpus.pt``, under ``--directory``, the workflow's working directory)
for its jobs to be measured; until then they are listed as not estimated.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import logging
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from compresslib import config as cfg
from compresslib.cli import run_main
from compresslib.data.datasets import get_dataset_info, save_dataset
from compresslib.data.text import VOCAB_SIZE
from compresslib.devices import place
from compresslib.esnac.kernel import fit_kernel, propose
from compresslib.esnac.search import SearchSpec, search
from compresslib.esnac.space import build_student, compress, encode, extract_graph, random_action
from compresslib.io import load_torch, save_torch, sha256_file, write_json
from compresslib.models import create_model, save_model
from compresslib.training.loop import ESNAC_MODEL, train
from compresslib.training.spec import build_settings, build_spec
from compresslib.training.teacher_views import compute_teacher_views, save_teacher_views, view_count
from compresslib.translation.corpus import load_corpus
from compresslib.translation.train import TranslationSpec, train_translation

__all__ = ["CostGroup", "Job", "Plan", "plan", "measure", "estimate", "main"]

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "rules" / "schemas" / "config.schema.yaml"
MEASURED_EPOCHS = 2  # the last is the warm one that is scaled up
DEFAULT_EXAMPLES = {"cpu": 256, "cuda": 8192}  # stand-in training and test examples per measurement
ESNAC_CANDIDATES = 3  # random candidates of a searched teacher timed per search measurement
VIEWS_SHARE = 16  # a teacher_views measurement runs the teacher on every view of examples / VIEWS_SHARE images


# ---- the plan: jobs charged in units of cost groups -------------------------------------------------------------

@dataclass(frozen=True)
class CostGroup:
    """What one measurement covers. ``kind`` is training | teacher_views | search | esnac_full_train | translation;
    ``spec`` the JSON of the run's settings that its cost depends on; ``teacher`` the JSON of the teacher's model
    identity."""

    kind: str
    spec: str
    teacher: str = "null"

    def values(self) -> dict:
        return json.loads(self.spec)


@dataclass
class Job:
    """One job of the DAG: its rule, a name, and how many units of each cost group it takes."""

    rule: str
    name: str
    units: dict[tuple[CostGroup, str], float] = field(default_factory=dict)
    missing: str | None = None  # why it cannot be estimated


@dataclass
class Plan:
    jobs: list[Job]
    groups: list[CostGroup]  # each once, in first-use order


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _split_sizes(config: dict, dataset: str) -> tuple[int, int]:
    info = get_dataset_info(dataset)
    if info.split_sizes is not None:
        return info.split_sizes
    options = config["data"][dataset]  # a generated dataset: its generator's options
    return options["train_size"], options["test_size"]


def _training_cost(values: dict, teacher: dict | None = None) -> CostGroup:
    spec = build_spec(values)
    fields = ("dataset", "model", "model_kwargs", "activation", "batch_size", "eval_batch_size", "augment", "mean",
              "std", "kd", "quant", "lit", "teacher_outputs")
    return CostGroup("training", _json({key: spec.to_dict()[key] for key in fields}), _json(teacher))


def _model_identity(entry: dict) -> dict:
    return {"model": entry["model"], "model_kwargs": entry["model_kwargs"], "activation": entry["activation"]}


def plan(config: dict, directory: str | Path = REPO) -> Plan:
    """Every job of the config's DAG with the units it takes (nothing is measured); prepared translation corpora
    are looked up under ``directory``, the workflow's working directory."""
    jobs: list[Job] = []
    teachers = config["teachers"]
    modes = cfg.teacher_outputs(config)  # where a teacher's distilled and QD students take its logits from

    def reading(teacher: str) -> dict:
        return {"teacher_outputs": "cached"} if modes[teacher] == "cached" else {}

    def training(rule: str, name: str, values: dict, teacher: dict | None = None) -> None:
        spec = build_spec(values)
        group = _training_cost(values, teacher)
        train_n, test_n = _split_sizes(config, spec.dataset)
        held_out = spec.holdout_size if spec.validation == "holdout" else 0
        phases = [("", spec.epochs)] + ([("lit_", spec.lit.epochs)] if spec.lit is not None else [])
        units = {}
        for prefix, epochs in phases:
            units[(group, f"{prefix}train")] = epochs * (train_n - held_out)
            units[(group, f"{prefix}eval")] = epochs * (test_n + held_out)
        jobs.append(Job(rule, name, units))

    for job in cfg.teacher_jobs(config):
        values = cfg.teacher_spec_values(config, job.teacher)
        training("train_teacher", f"{job.dataset}/{job.teacher}", values)
        if modes[job.teacher] == "cached":  # one pass over every view of every training image
            spec = build_spec(values)
            group = CostGroup("teacher_views", _json({"dataset": spec.dataset, "mean": spec.mean, "std": spec.std}),
                              _json(_model_identity(teachers[job.teacher])))
            jobs.append(Job("teacher_views", f"{job.dataset}/{job.teacher}",
                            {(group, "view"): view_count() * _split_sizes(config, spec.dataset)[0]}))
    for job in cfg.workflow_distill_jobs(config):
        training("distill_student", f"{job.dataset}/{job.teacher}/{job.student}/{job.tag}/seed{job.seed}",
                 cfg.student_spec_values(config, job.teacher, job.student, job.tag, job.seed) | reading(job.teacher),
                 _model_identity(teachers[job.teacher]))
    for job in cfg.workflow_undistilled_jobs(config):
        training("train_undistilled", f"{job.dataset}/{job.teacher}/{job.student}/{job.tag}/seed{job.seed}",
                 cfg.undistilled_spec_values(config, job.teacher, job.student, job.tag, job.seed))
    for job, settings in cfg.quantize_jobs(config).items():
        name = f"{job.dataset}/{job.teacher}/{job.student}/{job.method}-b{job.bits}-k{job.bucket}/{job.tag}/seed{job.seed}"
        student = cfg.student_spec_values(config, job.teacher, job.student, job.tag, job.seed)
        if job.method == "pm":  # no training: the distilled student evaluated before and after rounding
            group = _training_cost(student | {"kd": None})
            jobs.append(Job("quantize_post_training", name,
                            {(group, "eval"): 2 * _split_sizes(config, job.dataset)[1]}))
            continue
        # QD distils from the teacher; DQ's teacher is the distilled student itself
        teacher = _model_identity(teachers[job.teacher]) if job.method == "qd" else \
            {"model": student["model"], "model_kwargs": student["model_kwargs"], "activation": job.tag}
        training("quantize_train", name, settings | (reading(job.teacher) if job.method == "qd" else {}), teacher)
    for job in cfg.lit_jobs(config):
        training("lit_train", f"{job.dataset}/{job.teacher}-to-{job.student}/seed{job.seed}",
                 cfg.lit_spec_values(config, job.teacher, job.student, job.seed), _model_identity(teachers[job.teacher]))
    for job in cfg.esnac_jobs(config):
        jobs += _esnac_jobs(config, job)
    jobs += _translation_jobs(config, Path(directory))
    groups = list(dict.fromkeys(group for job in jobs for group, _ in job.units))
    return Plan(jobs, groups)


def _esnac_jobs(config: dict, job: cfg.EsnacJob) -> list[Job]:
    spec = build_settings(SearchSpec, cfg.esnac_search_values(config, job))
    teacher = _json(_model_identity(config["teachers"][job.teacher]))
    search_fields = {key: value for key, value in spec.identity().items()
                     if key in ("dataset", "batch_size", "eval_batch_size", "acquisition_samples", "kernel",
                                "steps", "candidates_per_step")}
    group = CostGroup("search", _json(search_fields), teacher)
    train_n, test_n = _split_sizes(config, spec.dataset)
    candidates = spec.steps * spec.candidates_per_step
    units = {(group, "candidate"): candidates * spec.epochs * train_n}  # train on N - holdout, score the holdout
    if spec.strategy == "esnac":
        units[(group, "proposal")] = candidates
    name = f"{job.dataset}/{job.teacher}/{job.strategy}/seed{job.seed}"
    full = build_spec(cfg.esnac_full_train_values(config, job, rank=0) | {"model": ESNAC_MODEL})
    full_fields = {key: full.to_dict()[key] for key in ("dataset", "batch_size", "eval_batch_size", "augment")}
    full_group = CostGroup("esnac_full_train", _json(full_fields), teacher)
    return [Job("esnac_search", name, units)] + [
        Job("esnac_full_train", f"{name}/final-{rank}", {(full_group, "train"): full.epochs * train_n,
                                                          (full_group, "eval"): full.epochs * test_n})
        for rank in range(spec.top_k)]


def _translation_jobs(config: dict, directory: Path) -> list[Job]:
    teachers = config["translation"]["teachers"]
    stats = {corpus: _corpus_stats(directory / _corpus_file(corpus)) for corpus in cfg.translation_corpora(config)}

    def job(rule: str, name: str, values: dict, teacher: str | None, translate_train: bool = False) -> Job:
        spec = build_settings(TranslationSpec, values)
        corpus = stats[spec.corpus]
        if corpus is None:
            return Job(rule, name, missing=f"{directory / _corpus_file(spec.corpus)} is not prepared "
                                           f"(snakemake -c1 {_corpus_file(spec.corpus)})")
        identity = {key: value for key, value in spec.identity().items() if key not in ("seed", "epochs", "labels")}
        identity["corpus_file"] = str(directory / _corpus_file(spec.corpus))
        teacher_identity = cfg.translation_teacher_values(config, teacher) if teacher else None
        group = CostGroup("translation", _json(identity), _json(teacher_identity and {
            key: teacher_identity[key] for key in ("model", "model_kwargs")}))
        if translate_train:  # the teacher's beam translations of the training split
            return Job(rule, name, {(group, "translate"): corpus["pairs"]["train"]})
        valid = "valid" if "valid" in corpus["pairs"] else "test"
        tests = [split for split in corpus["pairs"] if split not in ("train", "valid")]
        return Job(rule, name, {
            (group, "train_token"): spec.epochs * corpus["tokens"]["train"],
            (group, "eval_token"): spec.epochs * corpus["tokens"][valid] + sum(corpus["tokens"][s] for s in tests),
            (group, "translate"): sum(corpus["pairs"][split] for split in tests)})

    jobs = [job("train_translation_teacher", f"{t.corpus}/{t.teacher}/seed{t.seed}",
                cfg.translation_teacher_values(config, t.teacher), None) for t in cfg.translation_teacher_jobs(config)]
    students = cfg.translation_jobs(config)
    for name in dict.fromkeys(s.teacher for s in students if s.method == "seq-kd"):
        jobs.append(job("translate_training_split", f"{teachers[name]['corpus']}/{name}",
                        cfg.translation_teacher_values(config, name), None, translate_train=True))
    for s, values in students.items():
        jobs.append(job("train_translation_student", f"{s.corpus}/{s.teacher}/{s.student}/{s.method}/{s.activation}/"
                        f"seed{s.seed}", values, s.teacher if "kd" in values else None))
    return jobs


def _corpus_file(corpus: str) -> str:
    return f"resources/{corpus}/corpus.pt"  # the workflow's path of a prepared corpus


def _corpus_stats(path: Path) -> dict | None:
    """Pairs and target tokens per split of a prepared corpus (one eos per sentence, as the loop counts them)."""
    if not path.is_file():
        return None
    stats = load_corpus(path, mmap=True)["stats"]
    return {"pairs": {split: s["pairs"] for split, s in stats.items()},
            "tokens": {split: s["tgt_tokens"] + s["pairs"] for split, s in stats.items()}}


# ---- measuring -----------------------------------------------------------------------------------------------------

@dataclass
class _Context:
    config: dict
    workdir: Path
    device: str
    examples: int
    threads: int


def measure(group: CostGroup, context: _Context) -> dict[str, float]:
    """Seconds per unit of every unit of ``group``, measured on the context's device."""
    return {"training": _measure_training, "teacher_views": _measure_teacher_views, "search": _measure_search,
            "esnac_full_train": _measure_esnac_full_train, "translation": _measure_translation}[group.kind](group,
                                                                                                          context)


def _measure_training(group: CostGroup, context: _Context, init: Path | None = None) -> dict[str, float]:
    values, teacher = group.values(), json.loads(group.teacher)
    lit = values.get("lit") and values["lit"] | {"epochs": MEASURED_EPOCHS, "milestones": []}
    spec = build_spec(values | {"epochs": MEASURED_EPOCHS, "lit": lit, "schedule": "constant",
                                "device": context.device, "threads": context.threads})
    data = _standin_dataset(context, spec.dataset)
    normalization = _normalization(spec.dataset, spec.mean, spec.std)
    if spec.quant is not None and spec.quant.method == "dq":  # DQ learns the points of a trained student
        init = _standin_model(context, teacher, spec.dataset, normalization)
    teacher_path = _standin_model(context, teacher, spec.dataset, normalization) if teacher else None
    with tempfile.TemporaryDirectory(dir=context.workdir) as run_dir:
        views = None
        if spec.teacher_outputs == "cached":  # a table of the right shape: looking a row up costs the same
            views = Path(run_dir) / "views.pt"
            classes = get_dataset_info(spec.dataset).num_classes
            save_teacher_views(views, torch.randn(context.examples, view_count(), classes), pad=4, augment=True,
                               teacher={"path": str(teacher_path), "sha256": sha256_file(teacher_path)},
                               dataset={"path": str(data), "sha256": sha256_file(data)}, normalization=normalization)
        train(spec, data, Path(run_dir) / "run", teacher_path=teacher_path, init_path=init, teacher_views_path=views)
        history = _read_csv(Path(run_dir) / "run" / "history.csv")
    n = context.examples
    warm = history[MEASURED_EPOCHS - 1::MEASURED_EPOCHS]  # the last epoch of each phase (LIT: phase 1, then 2)
    rates = {"train": float(warm[-1]["train_seconds"]) / n, "eval": float(warm[-1]["eval_seconds"]) / n}
    if spec.lit is not None:
        rates |= {"lit_train": float(warm[0]["train_seconds"]) / n, "lit_eval": float(warm[0]["eval_seconds"]) / n}
    return rates


def _measure_teacher_views(group: CostGroup, context: _Context) -> dict[str, float]:
    """The teacher on every view of a share of the stand-in images, as workflow_scripts/teacher_views.py runs it."""
    values, teacher = group.values(), json.loads(group.teacher)
    normalization = _normalization(values["dataset"], values["mean"], values["std"])
    images = max(1, context.examples // VIEWS_SHARE)
    inputs = torch.randint(0, 256, (images, *get_dataset_info(values["dataset"]).input_shape), dtype=torch.uint8)
    with place(context.device) as placement:
        model = _model(teacher, values["dataset"]).to(placement.device)
        tick = time.perf_counter()
        compute_teacher_views(model, inputs, **normalization, device=placement.device).cpu()
        return {"view": (time.perf_counter() - tick) / (images * view_count())}


def _measure_search(group: CostGroup, context: _Context) -> dict[str, float]:
    values, teacher = group.values(), json.loads(group.teacher)
    spec = build_settings(SearchSpec, values | {"strategy": "random", "steps": 1, "candidates_per_step":
                                                ESNAC_CANDIDATES, "epochs": MEASURED_EPOCHS, "top_k": 1,
                                                "holdout_size": context.examples // 4, "device": context.device,
                                                "threads": context.threads})
    normalization = _normalization(spec.dataset)
    teacher_path = _standin_model(context, teacher, spec.dataset, normalization)
    # the reward divides by the teacher's held-out accuracy: label the stand-in images as the teacher does
    data = _standin_dataset(context, spec.dataset, labeller=(_model(teacher, spec.dataset), normalization))
    with tempfile.TemporaryDirectory(dir=context.workdir) as run_dir:
        search(spec, data, teacher_path, run_dir)
        rows = _read_csv(Path(run_dir) / "search.csv")
    # a candidate's epoch trains on the split less the holdout and scores the holdout: charged per example of both
    candidate = sum(float(row["train_seconds"]) for row in rows) / (len(rows) * MEASURED_EPOCHS * context.examples)
    graph = extract_graph(_model(teacher, spec.dataset))
    rng = random.Random(0)
    history = max(2, values["steps"] * values["candidates_per_step"] // 2)  # a kernel sees half the history on average
    sequences = [encode(compress(graph, random_action(graph, rng))) for _ in range(history)]
    actions = [encode(compress(graph, random_action(graph, rng))) for _ in range(spec.acquisition_samples)]
    with place(context.device) as placement:
        device = placement.device
        tick = time.perf_counter()
        kernel = fit_kernel([s.to(device) for s in sequences], torch.rand(history, device=device), seed=0,
                            **dataclasses.asdict(spec.kernel))
        propose(kernel, [a.to(device) for a in actions])
        proposal = time.perf_counter() - tick
    return {"candidate": candidate, "proposal": proposal}


def _measure_esnac_full_train(group: CostGroup, context: _Context) -> dict[str, float]:
    """A random candidate of the search, trained like ESNAC's full training."""
    values, teacher = group.values(), json.loads(group.teacher)
    graph = extract_graph(_model(teacher, values["dataset"]))
    architecture = compress(graph, random_action(graph, random.Random(1)))
    normalization = _normalization(values["dataset"])
    kwargs = {**architecture.model_kwargs(), "num_classes": get_dataset_info(values["dataset"]).num_classes,
              "activation": "relu"}
    init = context.workdir / f"esnac-{_digest(group)}.pt"
    save_model(init, build_student(graph, architecture), ESNAC_MODEL, kwargs,
               extra={"dataset": values["dataset"], "normalization": normalization})
    spec = values | {"model": ESNAC_MODEL, "model_kwargs": architecture.model_kwargs(), **normalization}
    training = CostGroup("training", _json(spec))
    return _measure_training(training, context, init=init)


def _measure_translation(group: CostGroup, context: _Context) -> dict[str, float]:
    values, teacher = group.values(), json.loads(group.teacher)
    subset = _corpus_subset(context, Path(values.pop("corpus_file")))
    spec = build_settings(TranslationSpec, values | {"epochs": MEASURED_EPOCHS, "device": context.device,
                                                     "threads": context.threads})
    with tempfile.TemporaryDirectory(dir=context.workdir) as run_dir:
        teacher_path = None
        if teacher is not None:  # random weights of the teacher's architecture, made for this corpus file
            corpus = load_corpus(subset, mmap=True)
            kwargs = {"src_vocab": corpus["vocab_sizes"]["src"], "tgt_vocab": corpus["vocab_sizes"]["tgt"],
                      **teacher["model_kwargs"]}
            teacher_path = Path(run_dir) / "teacher.pt"
            save_model(teacher_path, create_model(teacher["model"], **kwargs), teacher["model"], kwargs,
                       extra={"corpus": values["corpus"], "corpus_sha256": sha256_file(subset)})
        record = train_translation(spec, subset, Path(run_dir) / "run", teacher_path=teacher_path)
        warm = _read_csv(Path(run_dir) / "run" / "history.csv")[-1]
    stats = load_corpus(subset, mmap=True)["stats"]
    valid = record["metrics"]["validation_split"]
    translated = record["translations"].values()
    return {"train_token": float(warm["train_seconds"]) / float(warm["train_tokens"]),
            "eval_token": float(warm["eval_seconds"]) / (stats[valid]["tgt_tokens"] + stats[valid]["pairs"]),
            "translate": sum(t["translate_s"] for t in translated) / sum(t["sentences"] for t in translated)}


def _corpus_subset(context: _Context, corpus: Path) -> Path:
    """The first ``examples`` pairs of every split of a prepared corpus: its tokenisers, vocabularies, lengths."""
    out = context.workdir / f"corpus-{_digest(str(corpus))}.pt"
    if out.is_file():
        return out
    payload = load_torch(corpus)
    for split, entry in payload["splits"].items():
        count = min(context.examples, len(entry["src_text"]))
        for side in ("src", "tgt"):
            offsets = entry[f"{side}_offsets"][:count + 1].clone()
            entry[f"{side}_ids"] = entry[f"{side}_ids"][:int(offsets[-1])].clone()
            entry[f"{side}_offsets"] = offsets
            entry[f"{side}_text"] = entry[f"{side}_text"][:count]
        payload["stats"][split] |= {"pairs": count, "src_tokens": entry["src_ids"].numel(),
                                    "tgt_tokens": entry["tgt_ids"].numel()}
    save_torch(out, payload)
    load_corpus(out)  # the subset passes the same checks as the corpus
    return out


def _normalization(dataset: str, mean: list | None = None, std: list | None = None) -> dict:
    info = get_dataset_info(dataset)
    if info.kind != "image":
        return {"mean": None, "std": None}
    return {"mean": list(mean or info.mean), "std": list(std or info.std)}


def _standin_dataset(context: _Context, name: str,
                     labeller: tuple[torch.nn.Module, dict] | None = None) -> Path:
    """Random inputs of the dataset's shape (a generator's length from the config); random labels, or those a
    ``(model, normalization)`` predicts for them."""
    path = context.workdir / (f"data-{name}.pt" if labeller is None else f"data-{name}-{id(labeller[0])}.pt")
    if path.is_file():
        return path
    info = get_dataset_info(name)
    shape = tuple(context.config["data"][name]["length"] if size is None else size for size in info.input_shape)
    generator = torch.Generator().manual_seed(0)
    arrays: dict[str, Any] = {"classes": [str(c) for c in range(info.num_classes)]}
    for split in ("train", "test"):
        inputs = torch.randint(0, 256 if info.kind == "image" else VOCAB_SIZE, (context.examples, *shape),
                               generator=generator, dtype=torch.uint8)
        arrays[f"{split}_inputs"] = inputs
        if labeller is None:
            arrays[f"{split}_labels"] = torch.randint(0, info.num_classes, (context.examples,), generator=generator)
        else:
            model, normalization = labeller
            mean, std = (torch.tensor(normalization[key]).view(1, -1, 1, 1) for key in ("mean", "std"))
            with torch.inference_mode():
                arrays[f"{split}_labels"] = model.eval()((inputs / 255 - mean) / std).argmax(1)
    save_dataset(path, name, arrays, {"source": "compresslib.plan_cost stand-in: random inputs"})
    return path


def _model(identity: dict, dataset: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(identity["model"], num_classes=get_dataset_info(dataset).num_classes,
                        activation=identity["activation"], **identity["model_kwargs"])


def _standin_model(context: _Context, identity: dict, dataset: str, normalization: dict) -> Path:
    """Random weights of a teacher's (or DQ's trained student's) architecture, as a model file of that dataset."""
    path = context.workdir / f"model-{_digest((identity, dataset, normalization))}.pt"
    if not path.is_file():
        kwargs = {"num_classes": get_dataset_info(dataset).num_classes, "activation": identity["activation"],
                  **identity["model_kwargs"]}
        save_model(path, _model(identity, dataset), identity["model"], kwargs,
                   extra={"dataset": dataset, "normalization": normalization})
    return path


def _digest(value: Any) -> str:
    return hashlib.sha256(_json(value if not isinstance(value, CostGroup) else dataclasses.asdict(value))
                          .encode()).hexdigest()[:16]


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ---- the estimate -----------------------------------------------------------------------------------------------

def estimate(the_plan: Plan, rates: dict[CostGroup, dict[str, float]]) -> list[dict]:
    """Per rule (in plan order): jobs, jobs estimated, and the estimated hours; the plan's total last."""
    rows: dict[str, dict] = {}
    for job in the_plan.jobs:
        row = rows.setdefault(job.rule, {"rule": job.rule, "jobs": 0, "estimated": 0, "hours": 0.0, "missing": []})
        row["jobs"] += 1
        if job.missing is not None:
            if job.missing not in row["missing"]:
                row["missing"].append(job.missing)
            continue
        row["estimated"] += 1
        row["hours"] += sum(count * rates[group][unit] for (group, unit), count in job.units.items()) / 3600
    total = {"rule": "total", "jobs": sum(r["jobs"] for r in rows.values()),
             "estimated": sum(r["estimated"] for r in rows.values()), "hours": sum(r["hours"] for r in rows.values()),
             "missing": sorted({m for r in rows.values() for m in r["missing"]})}
    return [*rows.values(), total]


def _format_table(rows: list[dict], device: str) -> str:
    lines = [f"{'rule':<28}{'jobs':>7}{'estimated':>11}{'hours':>12}   ({device})"]
    for row in rows:
        note = "   (some not estimated: see below)" if row["missing"] else ""
        lines.append(f"{row['rule']:<28}{row['jobs']:>7}{row['estimated']:>11}{row['hours']:>12.2f}{note}")
    missing = rows[-1]["missing"]
    lines += [f"not estimated: {reason}" for reason in missing]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--directory", type=Path, default=REPO,
                        help="the workflow's working directory, where prepared corpora are (the demo's: demo)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N: where the jobs would run")
    parser.add_argument("--examples", type=int, help="stand-in examples per measurement (default: 256 on the CPU, "
                        "8192 on a GPU)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("--plan-only", action="store_true", help="list jobs and cost groups; measure nothing")
    parser.add_argument("--out", type=Path, help="write the plan, every measured rate and the estimate as JSON")
    args = parser.parse_args(argv)
    config = cfg.load_config(args.config, SCHEMA)
    the_plan = plan(config, args.directory)
    log.info("%d jobs, %d cost groups to measure", len(the_plan.jobs), len(the_plan.groups))
    if args.plan_only:
        for group in the_plan.groups:
            print(f"{group.kind:<18}{group.spec}  teacher={group.teacher}")
        return
    with place(args.device) as placement:
        device = placement.device
    examples = args.examples or DEFAULT_EXAMPLES[device.type]
    if examples < 8:
        parser.error(f"--examples must be >= 8, got {examples}")
    rates = {}
    with tempfile.TemporaryDirectory() as workdir:
        context = _Context(config, Path(workdir), str(device), examples, args.threads)
        for index, group in enumerate(the_plan.groups, start=1):
            tick = time.perf_counter()
            rates[group] = measure(group, context)
            log.info("[%d/%d] %s measured in %.1fs: %s", index, len(the_plan.groups), group.kind,
                     time.perf_counter() - tick, {unit: f"{rate:.3g}" for unit, rate in rates[group].items()})
    rows = estimate(the_plan, rates)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(_format_table(rows, name))
    if args.out:
        write_json(args.out, {"device": name, "examples": examples, "config": str(args.config), "estimate": rows,
                              "groups": [{**dataclasses.asdict(group), "rates": rates[group]}
                                         for group in the_plan.groups]})


if __name__ == "__main__":
    run_main(main)
