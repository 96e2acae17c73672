"""Stopping a running workflow and running it again, as README "Stopping a run" tells a user to: every finished epoch
is kept. A `kill -INT` of Snakemake alone lets the running job finish but records none of it (its outputs are marked
incomplete, as when Snakemake is killed): the rerun restores the finished run instead of training it again. Ctrl-C
(SIGINT to the whole process group) stops the job too: the rerun resumes from its last checkpoint. SIGTERM to
Snakemake (what a scheduler sends) lets the running job finish, recorded: the rerun has nothing to do. A job run
again on purpose (--forcerun) trains again; stopped, a plain rerun finishes it and reruns the jobs after it, as it
does for a teacher retrained with --until after a change of its settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from compresslib.experiments.teachers import TrainTeacher
from compresslib.io import load_torch
from conftest import REPO, SNAKEMAKE, run_snakemake
from test_workflow import dry_run_jobs, listed_jobs

pytestmark = pytest.mark.slow

EPOCHS = 10


def _config() -> dict:
    """The demo's image teacher cut to a small net on a small synthetic dataset (a fraction of a second per epoch on
    one thread), with two one-epoch students: the whole DAG takes seconds."""
    demo = yaml.safe_load((REPO / "profiles/demo/config.yaml").read_text())
    teacher, student = demo["teachers"]["demo-teacher"], demo["students"]["demo-s0"]
    teacher["model"] = "demo_conv_student0"
    teacher["train"].update(epochs=EPOCHS, milestones=[])
    student["train"].update(epochs=1, milestones=[])
    return {"data": {"synthetic": {"train_size": 1000, "test_size": 200, "seed": 0}},
            "teachers": {"demo-teacher": teacher}, "students": {"demo-s0": student},
            "distill": {"demo": {"teacher": "demo-teacher", "students": ["demo-s0"], "activations": ["relu", "swish"],
                                 "seeds": [1]}}}


def _start(common: list[str], *extra: str) -> subprocess.Popen:
    """Snakemake in a process group of its own, SIGINT as in a terminal (a shell's background job ignores it, and so
    would Snakemake and its jobs)."""
    return subprocess.Popen([str(SNAKEMAKE), *common, *extra], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _when_training(checkpoint: Path, process: subprocess.Popen) -> None:
    """Wait until the job has saved its first epoch (and has more to go)."""
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        try:
            if checkpoint.exists() and 1 <= load_torch(checkpoint)["next_epoch"] < EPOCHS - 2:
                return
        except Exception:  # written as we read: look again
            pass
        time.sleep(0.05)
    raise AssertionError(f"the job never saved its first epoch:\n{process.communicate()[0][-3000:]}")


def test_a_stopped_workflow_keeps_every_finished_epoch(tmp_path: Path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_config()))
    workdir = tmp_path / "run"
    common = ["--configfile", str(tmp_path / "c.yaml"), "--workflow-profile", "none", "--directory", str(workdir),
              "--cores", "1", "--set-threads", "train_teacher=1", "distill_student=1", "--rerun-incomplete"]
    run_snakemake(*common, "--until", "prepare_dataset")
    teacher = next(wildcards for rule, wildcards, _ in dry_run_jobs(*common, "--until", "train_teacher")
                   if rule == "train_teacher" and wildcards["teacher"] == "demo-teacher")
    target = TrainTeacher.from_wildcards(teacher).outputs()["record"]
    run_dir = workdir / Path(target).parent
    record, checkpoint = run_dir / "record.json", run_dir / "checkpoint.pt"

    # kill -INT of Snakemake alone: the job trains on to the end, unrecorded; the rerun restores it
    snakemake = _start(common, target)
    _when_training(checkpoint, snakemake)
    snakemake.send_signal(signal.SIGINT)
    assert snakemake.wait(300) != 0
    finished = json.loads(record.read_text())
    assert finished["metrics"]["epochs_run"] == EPOCHS and not checkpoint.exists()
    assert "Incomplete" in run_snakemake(*[c for c in common if c != "--rerun-incomplete"], "--dry-run", target,
                                         check=False).stdout
    run_snakemake(*common, target)
    assert json.loads(record.read_text()) == finished  # the same run, not trained again
    assert any("restored the finished run" in log.read_text() for log in (workdir / "logs").rglob("*.log"))

    # Ctrl-C: SIGINT to the process group, the job included; run again on purpose, it trains from the start
    snakemake = _start(common, target, "--forcerun", "train_teacher")
    _when_training(checkpoint, snakemake)
    os.killpg(snakemake.pid, signal.SIGINT)
    assert snakemake.wait(300) != 0
    assert not record.exists()
    saved = load_torch(checkpoint)["next_epoch"]
    run_snakemake(*common, target)
    resumed = json.loads(record.read_text())
    assert [session["start_epoch"] for session in resumed["timing"]["sessions"]] == [0, saved]
    assert resumed["metrics"] == finished["metrics"]  # deterministic: the resumed run ends where the first did
    assert not checkpoint.exists() and not list(run_dir.glob(".*.tmp"))

    # SIGTERM to Snakemake alone: the running job finishes and is recorded; nothing is left to do
    snakemake = _start(common, target, "--forcerun", "train_teacher")
    _when_training(checkpoint, snakemake)
    snakemake.send_signal(signal.SIGTERM)
    snakemake.wait(300)
    assert json.loads(record.read_text())["timing"]["sessions"][0]["start_epoch"] == 0
    nothing = run_snakemake(*common, target)
    assert "Nothing to be done" in nothing.stdout + nothing.stderr

    # the whole DAG; then the teacher run again on purpose (its outputs deleted first) and stopped by Ctrl-C, while the
    # students' outputs look up to date: a plain rerun finishes the teacher from its checkpoint and reruns them
    run_snakemake(*common)
    _stop_then_rerun(common, workdir, Path(target).parent, _start(common, "--forcerun", "train_teacher"))

    # the same for the teacher retrained with --until after a change of its settings
    config = _config()
    config["teachers"]["demo-teacher"]["train"]["weight_decay"] = 0.0003
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    _stop_then_rerun(common, workdir, Path(target).parent, _start(common, "--until", "train_teacher"))


def _stop_then_rerun(common: list[str], workdir: Path, teacher: Path, snakemake: subprocess.Popen) -> None:
    """Stop ``snakemake`` (Ctrl-C) once the teacher (its run folder under ``workdir``) has saved an epoch; a plain
    rerun, whose dry run names the teacher's folder first, finishes it from its checkpoint and reruns its students."""
    record, checkpoint = workdir / teacher / "record.json", workdir / teacher / "checkpoint.pt"
    students = {path: path.stat().st_mtime_ns for path in (workdir / "results/distill").rglob("record.json")}
    assert len(students) == 2
    _when_training(checkpoint, snakemake)
    os.killpg(snakemake.pid, signal.SIGINT)
    assert snakemake.wait(300) != 0 and not record.exists()
    saved = load_torch(checkpoint)["next_epoch"]
    dry_run = run_snakemake(*common, "--dry-run").stdout
    assert ("1 run(s) started and did not finish (a run folder without its record.json); the default target runs them "
            f"again, resuming from their last checkpoints, and the jobs after them:\n    {teacher}\n") in dry_run
    assert Counter(rule for rule, _, _ in listed_jobs(dry_run)) == {"train_teacher": 1, "distill_student": 2,
                                                                   "aggregate": 1, "report_pages": 1, "all": 1}
    run_snakemake(*common)
    assert json.loads(record.read_text())["timing"]["sessions"][-1]["start_epoch"] == saved >= 1
    assert all(path.stat().st_mtime_ns > mtime for path, mtime in students.items())
    nothing = run_snakemake(*common)
    assert "Nothing to be done" in nothing.stdout + nothing.stderr
