"""Estimate the device time of a config's whole DAG, per rule family, from per-epoch times measured here.

    python -m compresslib.plan_cost [--config config.yaml] [--device auto] [--examples N]
                                    [--concurrency-speedup X] [--out plan.json]
    python -m compresslib.plan_cost --plan-only      # the jobs and what would be measured, no measuring

Every job the workflow would run for the config is the workflow's own (``compresslib.experiments``: the same job
objects its rules run, ESNAC's full trainings included) and is charged in units of a *cost group*: what one of
its epochs costs depends on the model and its settings, the dataset, the batch size, the teacher it runs, its
quantization and LIT, not on the seed or the learning rate. Each group is measured once
(``compresslib.plan_cost.measurement``), by running compresslib's own code on this device for two epochs on stand-in
data of the real shape (random images or character ids with the real number of classes: speed does not depend on
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
example scale to the real split sizes and epoch counts.

Jobs are charged as they will run. A training measurement runs with its spec's ``compile`` (auto: compiled on CUDA),
so its warm epoch is a compiled one where the job's would be; compiling is then a start-up cost of every such job
(unit ``startup``), measured once per cost group as the first epoch's seconds over the warm one's (0 where the run
was not compiled). Students lease one slot of a GPU (the job kinds with ``SHARES_GPU``), N of them sharing it
(``COMPRESSLIB_GPU_SLOTS``), the other jobs a whole GPU: the report gives each rule's *job-hours* (the jobs' time at
the measured speed, each as if alone on the device) and its *GPU-hours* (the device time they occupy: a student's
job-hours over the concurrency speed-up, the aggregate throughput of N students sharing a GPU over one alone). The
speed-up is measured by the GPU check (``python -m compresslib.bench gpu-check``, row f) and given as
``--concurrency-speedup``; its default 1.0 assumes no gain, and the report says which was used. Measured on the kind
of GPU the jobs will use, the GPU-hours are the DAG's cost there.

Left out, so under-counted: each job's start-up other than compiling (interpreter, CUDA context, loading
data), downloads and data preparation; a real split's partial last batch, whose compiled graph the stand-in split
(a multiple of the batch) never needs. Over-counted: the ``generic`` schedule's early stops (every run is charged
its maximum epochs).
ESNAC's full trainings are charged at the speed of a random candidate of the search. A translation corpus must be
prepared (``snakemake -c1 resources/<corpus>/corpus.pt``, under ``--directory``, the workflow's working directory)
for its jobs to be measured; until then they are listed as not estimated.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from compresslib import experiments
from compresslib.catalog import get_dataset_info
from compresslib.data.corpus import load_corpus
from compresslib.devices import place
from compresslib.experiments.corpora import corpus_file
from compresslib.experiments.distill import DistillStudent, TrainUndistilled
from compresslib.experiments.esnac import EsnacFullTrain, EsnacSearch
from compresslib.experiments.lit import LitTrain
from compresslib.experiments.quantize import PostTrainingQuantize, QuantizeTrain
from compresslib.experiments.teachers import VIEWS_PER_IMAGE, TeacherViews, TrainTeacher
from compresslib.experiments.translation import TrainTranslationStudent, TrainTranslationTeacher, \
    TranslateTrainingSplit
from compresslib.experiments.translation import teacher_job as translation_teacher
from compresslib.gpu_slots import SLOTS_ENV, slots_per_gpu
from compresslib.io import write_json
from compresslib.plan_cost.measurement import DEFAULT_EXAMPLES, Context, CostGroup, device_name, json_key, measure
from compresslib.settings import build_settings
from compresslib.specs.esnac import SearchSpec
from compresslib.specs.training import ESNAC_MODEL, TrainSpec, build_spec
from compresslib.specs.translation import TranslationSpec

__all__ = ["CostGroup", "Job", "Plan", "plan", "measure", "estimate", "main"]

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "rules" / "schemas" / "config.schema.yaml"


# ---- the plan: jobs charged in units of cost groups -------------------------------------------------------------

@dataclass
class Job:
    """One job of the DAG: its rule, a name, and how many units of each cost group it takes."""

    rule: str
    name: str
    units: dict[tuple[CostGroup, str], float] = field(default_factory=dict)
    missing: str | None = None  # why it cannot be estimated
    shares_gpu: bool = False  # leases one slot of a GPU (a student), not a whole one


def _charged(job: experiments.Job, units: dict[tuple[CostGroup, str], float] | None = None,
             missing: str | None = None) -> Job:
    """The workflow's ``job`` charged ``units`` (or not estimated: ``missing`` says why)."""
    return Job(job.rule, job.name(), units or {}, missing, job.SHARES_GPU)


@dataclass
class Plan:
    jobs: list[Job]
    groups: list[CostGroup]  # each once, in first-use order


def _split_sizes(config: dict, dataset: str) -> tuple[int, int]:
    info = get_dataset_info(dataset)
    if info.split_sizes is not None:
        return info.split_sizes
    options = config["data"][dataset]  # a generated dataset: its generator's options
    return options["train_size"], options["test_size"]


def _training_cost(spec: TrainSpec, teacher: dict | None = None) -> CostGroup:
    fields = ("kind", "dataset", "model", "model_kwargs", "activation", "batch_size", "eval_batch_size", "augment",
              "mean", "std", "kd", "quant", "lit", "teacher_outputs", "compile")  # compile: a runtime setting that
    values = spec.to_dict()  # changes an epoch's cost
    return CostGroup("training", json_key({key: values[key] for key in fields if key in values}), json_key(teacher))


def _model_identity(entry: dict) -> dict:
    """What a teacher's cost depends on: its network (a teacher entry's, or a student's spec values)."""
    return {"model": entry["model"], "model_kwargs": entry["model_kwargs"], "activation": entry["activation"]}


def plan(study: experiments.Study, directory: str | Path = REPO) -> Plan:
    """Every job of the study's DAG that runs on a device, with the units it takes (nothing is measured); prepared
    translation corpora are looked up under ``directory``, the workflow's working directory."""
    config = study.config
    jobs: list[Job] = []

    def teacher_identity(name: str) -> dict:
        return _model_identity(config["teachers"][name])

    def training(job: experiments.Job, values: dict, teacher: dict | None = None) -> None:
        spec = build_spec(values)
        group = _training_cost(spec, teacher)
        train_n, test_n = _split_sizes(config, spec.dataset)
        held_out = spec.holdout_size if spec.validation == "holdout" else 0
        phases = [("", spec.epochs)] + ([("lit_", spec.lit.epochs)] if spec.lit is not None else [])
        units = {(group, "startup"): 1}
        for prefix, epochs in phases:
            units[(group, f"{prefix}train")] = epochs * (train_n - held_out)
            units[(group, f"{prefix}eval")] = epochs * (test_n + held_out)
        jobs.append(_charged(job, units))

    for job in study.jobs:
        if isinstance(job, TrainTeacher):
            training(job, job.spec_values(study))
        elif isinstance(job, TeacherViews):  # one pass over every view of every training image
            spec = build_spec(TrainTeacher(job.dataset, job.teacher, job.seed).spec_values(study))
            group = CostGroup("teacher_views", json_key({"dataset": spec.dataset, "mean": spec.mean, "std": spec.std}),
                              json_key(teacher_identity(job.teacher)))
            jobs.append(_charged(job, {(group, "view"): VIEWS_PER_IMAGE * _split_sizes(config, spec.dataset)[0]}))
        elif isinstance(job, (DistillStudent, LitTrain)) or (isinstance(job, QuantizeTrain) and job.method == "qd"):
            training(job, job.spec_values(study), teacher_identity(job.teacher))
        elif isinstance(job, TrainUndistilled):
            training(job, job.spec_values(study))
        elif isinstance(job, QuantizeTrain):  # DQ's teacher is the distilled student itself
            values = job.spec_values(study)
            training(job, values, _model_identity(values))
        elif isinstance(job, PostTrainingQuantize):  # no training: the distilled student evaluated twice
            student = job.distilled().spec_values(study) | {"kind": "undistilled", "kd": None,
                                                            "teacher_outputs": "online"}
            jobs.append(_charged(job, {(_training_cost(build_spec(student)), "eval"):
                                       2 * _split_sizes(config, job.dataset)[1]}))
        elif isinstance(job, (EsnacSearch, EsnacFullTrain)):
            jobs.append(_esnac_job(study, job, json_key(teacher_identity(job.teacher))))
    jobs += _translation_jobs(study, Path(directory))
    groups = list(dict.fromkeys(group for job in jobs for group, _ in job.units))
    return Plan(jobs, groups)


def _esnac_job(study: experiments.Study, job: EsnacSearch | EsnacFullTrain, teacher: str) -> Job:
    """A search, charged per candidate epoch and proposal; or a full training, at a random candidate's speed."""
    search_job = job if isinstance(job, EsnacSearch) else job.search()
    spec = build_settings(SearchSpec, search_job.spec_values(study))
    train_n, test_n = _split_sizes(study.config, spec.dataset)
    if isinstance(job, EsnacFullTrain):
        full = build_spec(job.spec_values(study) | {"model": ESNAC_MODEL})
        values = full.to_dict()
        fields = {key: values[key] for key in ("dataset", "batch_size", "eval_batch_size", "augment")}
        group = CostGroup("esnac_full_train", json_key(fields), teacher)
        return _charged(job, {(group, "startup"): 1, (group, "train"): full.epochs * train_n,
                              (group, "eval"): full.epochs * test_n})
    search_fields = {key: value for key, value in spec.identity().items()
                     if key in ("dataset", "batch_size", "eval_batch_size", "acquisition_samples", "kernel",
                                "steps", "candidates_per_step")}
    group = CostGroup("search", json_key(search_fields), teacher)
    candidates = spec.steps * spec.candidates_per_step
    units = {(group, "candidate"): candidates * spec.epochs * train_n}  # train on N - holdout, score the holdout
    if spec.strategy == "esnac":
        units[(group, "proposal")] = candidates
    return _charged(job, units)


def _translation_jobs(study: experiments.Study, directory: Path) -> list[Job]:
    stats = {job.corpus: _corpus_stats(directory / corpus_file(job.corpus))
             for job in study.of_type(TrainTranslationTeacher)}

    def charge(job: experiments.Job, values: dict, teacher: str | None, translate_train: bool = False) -> Job:
        spec = build_settings(TranslationSpec, values)
        corpus = stats[spec.corpus]
        if corpus is None:
            return _charged(job, missing=f"{directory / corpus_file(spec.corpus)} is not prepared "
                                         f"(snakemake -c1 {corpus_file(spec.corpus)})")
        identity = {key: value for key, value in spec.identity().items() if key not in ("seed", "epochs", "labels")}
        identity["corpus_file"] = str(directory / corpus_file(spec.corpus))
        teacher_values = _teacher_values(study, teacher) if teacher else None
        group = CostGroup("translation", json_key(identity), json_key(teacher_values and {
            key: teacher_values[key] for key in ("model", "model_kwargs")}))
        if translate_train:  # the teacher's beam translations of the training split
            return _charged(job, {(group, "translate"): corpus["pairs"]["train"]})
        valid = "valid" if "valid" in corpus["pairs"] else "test"
        tests = [split for split in corpus["pairs"] if split not in ("train", "valid")]
        return _charged(job, {
            (group, "train_token"): spec.epochs * corpus["tokens"]["train"],
            (group, "eval_token"): spec.epochs * corpus["tokens"][valid] + sum(corpus["tokens"][s] for s in tests),
            (group, "translate"): sum(corpus["pairs"][split] for split in tests)})

    jobs = []
    for job in study.jobs:
        if isinstance(job, TrainTranslationTeacher):
            jobs.append(charge(job, job.spec_values(study), None))
        elif isinstance(job, TranslateTrainingSplit):
            jobs.append(charge(job, _teacher_values(study, job.teacher), None, translate_train=True))
        elif isinstance(job, TrainTranslationStudent):
            values = job.spec_values(study)
            jobs.append(charge(job, values, job.teacher if "kd" in values else None))
    return jobs


def _teacher_values(study: experiments.Study, name: str) -> dict:
    return translation_teacher(study.config, name).spec_values(study)


def _corpus_stats(path: Path) -> dict | None:
    """Pairs and target tokens per split of a prepared corpus (one eos per sentence, as the loop counts them)."""
    if not path.is_file():
        return None
    stats = load_corpus(path, mmap=True)["stats"]
    return {"pairs": {split: s["pairs"] for split, s in stats.items()},
            "tokens": {split: s["tgt_tokens"] + s["pairs"] for split, s in stats.items()}}


# ---- the estimate -----------------------------------------------------------------------------------------------

def estimate(the_plan: Plan, rates: dict[CostGroup, dict[str, float]],
             concurrency_speedup: float = 1.0) -> list[dict]:
    """Per rule (in plan order): jobs, jobs estimated, their job-hours (units x measured rates) and GPU-hours (a job
    that shares a GPU: its job-hours over ``concurrency_speedup``); the plan's total last."""
    rows: dict[str, dict] = {}
    for job in the_plan.jobs:
        row = rows.setdefault(job.rule, {"rule": job.rule, "jobs": 0, "estimated": 0, "job_hours": 0.0,
                                         "gpu_hours": 0.0, "missing": []})
        row["jobs"] += 1
        if job.missing is not None:
            if job.missing not in row["missing"]:
                row["missing"].append(job.missing)
            continue
        row["estimated"] += 1
        hours = sum(count * rates[group][unit] for (group, unit), count in job.units.items()) / 3600
        row["job_hours"] += hours
        row["gpu_hours"] += hours / concurrency_speedup if job.shares_gpu else hours
    total = {"rule": "total", **{key: sum(r[key] for r in rows.values())
                                 for key in ("jobs", "estimated", "job_hours", "gpu_hours")},
             "missing": sorted({m for r in rows.values() for m in r["missing"]})}
    return [*rows.values(), total]


def _format_table(rows: list[dict], device: str, sharing: str) -> str:
    lines = [f"{'rule':<28}{'jobs':>7}{'estimated':>11}{'job-hours':>12}{'GPU-hours':>12}   ({device}; {sharing})"]
    for row in rows:
        note = "   (some not estimated: see below)" if row["missing"] else ""
        lines.append(f"{row['rule']:<28}{row['jobs']:>7}{row['estimated']:>11}{row['job_hours']:>12.2f}"
                     f"{row['gpu_hours']:>12.2f}{note}")
    missing = rows[-1]["missing"]
    lines += [f"not estimated: {reason}" for reason in missing]
    return "\n".join(lines)


def _sharing(slots: int, speedup: float, compile_used: Counter) -> str:
    """What the estimate assumes, for the table's header: what the measurements compiled, and GPU sharing."""
    compiled = ", ".join(f"{used} x{count}" for used, count in sorted(compile_used.items())) or "no training"
    gain = "no gain assumed" if speedup == 1.0 else "measured"
    return f"compile: {compiled}; students share a GPU {slots} ways at a {speedup:g}x speed-up ({gain})"


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--directory", type=Path, default=REPO,
                        help="the workflow's working directory, where prepared corpora are (the demo's: demo)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N: where the jobs would run")
    parser.add_argument("--examples", type=int, help="stand-in examples per measurement (default: 256 on the CPU, "
                        "8192 on a GPU)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("--concurrency-speedup", type=_positive, default=1.0,
                        help="aggregate throughput of COMPRESSLIB_GPU_SLOTS students sharing a GPU over one alone, as "
                        "the GPU check measures it (gpu-check row f); default 1.0: no gain assumed")
    parser.add_argument("--plan-only", action="store_true", help="list jobs and cost groups; measure nothing")
    parser.add_argument("--out", type=Path, help="write the plan, every measured rate and the estimate as JSON")
    args = parser.parse_args(argv)
    slots = slots_per_gpu()
    if args.concurrency_speedup > slots:
        parser.error(f"--concurrency-speedup {args.concurrency_speedup:g}: {slots} jobs sharing a GPU "
                     f"({SLOTS_ENV}) cannot gain more than {slots}x")
    study = experiments.load_config(args.config, SCHEMA)
    config = study.config
    the_plan = plan(study, args.directory)
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
        context = Context(config, Path(workdir), str(device), examples, args.threads)
        for index, group in enumerate(the_plan.groups, start=1):
            tick = time.perf_counter()
            rates[group] = measure(group, context)
            log.info("[%d/%d] %s measured in %.1fs: %s", index, len(the_plan.groups), group.kind,
                     time.perf_counter() - tick, {unit: f"{rate:.3g}" for unit, rate in rates[group].items()})
    rows = estimate(the_plan, rates, args.concurrency_speedup)
    name = device_name(device)
    print(_format_table(rows, name, _sharing(slots, args.concurrency_speedup, context.compile_used)))
    if args.out:
        write_json(args.out, {"device": name, "examples": examples, "config": str(args.config),
                              "slots_per_gpu": slots, "concurrency_speedup": args.concurrency_speedup,
                              "compile_used": dict(context.compile_used), "estimate": rows,
                              "groups": [{**dataclasses.asdict(group), "rates": rates[group]}
                                         for group in the_plan.groups]})
