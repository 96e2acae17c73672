"""Row a of the GPU check: the workflow's own scripts, run as its rules run them, on the device and on the CPU.

The demo study (profiles/demo/config.yaml) plans the jobs: its first distillation experiment's teacher, the views
table where the study caches that teacher's logits, and its first student (first activation, first seed). Each runs
as a subprocess with the arguments its rule gives it (``job.arguments``: the spec overrides, the teacher's files)
on the demo's synthetic dataset, prepared by ``prepare_dataset`` as the prepare_dataset rule prepares it, and on the
device named (``device=cuda:N``: the check holds the GPU's lease, which a job's ``auto`` would wait for). One chain
runs on the device with the runtime defaults the loop picks there (CUDA: bf16 autocast, channels_last,
torch.compile), another on the CPU beside it (the CPU's defaults; skipped when the device is the CPU), and each device
job's test accuracy must come within :data:`ACCURACY_TOLERANCE` below its CPU twin's: a broken precision, layout or
compiled path lands near chance (0.1), far outside.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from compresslib import experiments
from compresslib.activation_tags import canonical_tag
from compresslib.data.datasets import prepare_dataset
from compresslib.experiments.datasets import dataset_file
from compresslib.experiments.distill import DistillStudent
from compresslib.experiments.teachers import TeacherViews, teacher_job, teacher_outputs
from compresslib.runs.record import RECORD_NAME

__all__ = ["DEMO_CONFIG", "ACCURACY_TOLERANCE", "WorkflowJob", "demo_jobs", "run_workflow_check"]

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / "profiles" / "demo" / "config.yaml"
SCHEMA = REPO / "rules" / "schemas" / "config.schema.yaml"
# How far below the CPU's test accuracy a device job may land. The demo's students spread 0.65-0.81 over seeds and
# activations after their 4 epochs (the teacher's 8 epochs settle closer), and bf16 changes a run as a seed does.
ACCURACY_TOLERANCE = {"teacher": 0.05, "student": 0.15}
LOG_LINES = 3  # of a failed job's log, in the result


@dataclass(frozen=True)
class WorkflowJob:
    role: str  # teacher | views | student
    name: str  # the job's name under its rule
    command: tuple[str, ...]  # the script and its arguments as the rule gives them (data, threads, device added)
    run_dir: str | None  # train.py's run folder (relative to the chain's folder); None for the views table


def demo_jobs(study: experiments.Study, data: Path) -> list[WorkflowJob]:
    """The teacher, views table (where cached) and first student of the study's first distillation experiment."""
    config = study.config
    experiment = next(iter(config["distill"].values()))
    teacher = teacher_job(config, experiment["teacher"])
    student = DistillStudent(teacher.dataset, teacher.teacher, experiment["students"][0],
                             canonical_tag(experiment["activations"][0]), experiment["seeds"][0])
    scripts = REPO / "workflow_scripts"
    jobs = [WorkflowJob("teacher", teacher.name(), (str(scripts / "train.py"), "--data", str(data), "--run-dir",
                                                    teacher.folder(), *shlex.split(teacher.arguments(study))),
                        teacher.folder())]
    if teacher_outputs(study)[teacher.teacher] == "cached":
        views = TeacherViews(teacher.dataset, teacher.teacher, teacher.seed)
        jobs.append(WorkflowJob("views", views.name(), (str(scripts / "teacher_views.py"), "--teacher",
                                                        teacher.model_file(), "--data", str(data), "--out",
                                                        views.outputs()["views"]), None))
    jobs.append(WorkflowJob("student", student.name(), (str(scripts / "train.py"), "--data", str(data), "--run-dir",
                                                        student.folder(), *shlex.split(student.arguments(study))),
                            student.folder()))
    return jobs


def run_workflow_check(device: str, cpu_threads: int, demo_data: dict | None = None,
                       overrides: tuple[str, ...] = ()) -> dict:
    """Run the demo's jobs on ``device`` and, beside them, on the CPU (``cpu_threads`` threads); ``demo_data``
    replaces the demo dataset's sizes and ``overrides`` are added to both training jobs' settings. Returns
    ``{"jobs": [...], "dataset": {...}}``: per job its role, name, and each chain's outcome (``ok``, test accuracy,
    seconds, what the record says was compiled, or the error)."""
    with tempfile.TemporaryDirectory(prefix="compresslib-workflow-check-") as scratch:
        folder = Path(scratch)
        config = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
        if demo_data is not None:
            config["data"]["synthetic"] |= demo_data
        (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        study = experiments.load_config(folder / "config.yaml", SCHEMA)
        dataset = study.config["data"]["synthetic"]
        data = folder / dataset_file("synthetic")
        prepare_dataset("synthetic", data, synthetic=dataset)  # the prepare_dataset rule's options: data.synthetic
        jobs = demo_jobs(study, data)
        chains = {"device": (device, 1)} | ({"cpu": ("cpu", cpu_threads)} if device != "cpu" else {})
        outcomes: dict[str, list[dict]] = {}
        threads = [threading.Thread(target=lambda chain=chain, where=where: outcomes.__setitem__(
            chain, _run_chain(jobs, folder / chain, *where, overrides))) for chain, where in chains.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return {"dataset": {key: dataset[key] for key in ("train_size", "test_size", "seed")},
            "jobs": [{"role": job.role, "name": job.name, **{chain: outcomes[chain][index] for chain in outcomes}}
                     for index, job in enumerate(jobs)]}


def _run_chain(jobs: list[WorkflowJob], folder: Path, device: str, threads: int,
               overrides: tuple[str, ...]) -> list[dict]:
    """The jobs one after another in ``folder`` (their run folders relative to it); after a failure the rest are
    skipped."""
    folder.mkdir()
    # the scripts import compresslib from this checkout, also where it is not installed (a device image)
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    outcomes: list[dict] = []
    for earlier, job in zip([None, *jobs], jobs):
        if outcomes and not outcomes[-1]["ok"]:
            outcomes.append({"ok": False, "error": f"skipped: the {earlier.role} failed"})
            continue
        settings = [*overrides, f"device={device}"] if job.run_dir else ["--device", device]
        command = [sys.executable, *job.command, "--threads", str(threads), *settings]
        log = folder / f"{job.role}.log"
        tick = time.perf_counter()
        with open(log, "w", encoding="utf-8") as output:
            code = subprocess.run(command, cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT).returncode
        outcome = {"ok": code == 0, "seconds": time.perf_counter() - tick}
        if code != 0:
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-LOG_LINES:]
            outcomes.append(outcome | {"error": f"exit code {code}: " + " | ".join(tail)})
            continue
        if job.run_dir is not None:
            record = json.loads((folder / job.run_dir / RECORD_NAME).read_text(encoding="utf-8"))
            outcome |= {"test_acc": record["metrics"]["final_test_acc"], "compile": record["timing"].get("compile")}
        outcomes.append(outcome)
    return outcomes
