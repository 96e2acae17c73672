"""`snakemake --profile slurm` on a real single-node SLURM cluster (.ci/slurm-local.sh, fake GPUs as GRES).

One run of a shrunk demo DAG (same rules, teacher, students, activations and aggregation as the demo)
through the shipped profile, installed with `make slurm-profile`, checked against a local run of the same
DAG made at the same time. The run is built to hit three things at once: the teacher is sized (from a
measured epoch time) to outlive a 1-minute limit, so SLURM kills it and the retry must resume from its
checkpoint with a 2-minute limit; one extra student diverges on purpose and must be reported as FAILED
with its log while everything else completes; every job asks for a GPU of a given model and a partition
that only the environment names.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from compresslib.io import load_torch
from conftest import REPO, SNAKEMAKE

pytestmark = pytest.mark.slow

CLUSTER_SCRIPT = REPO / ".ci" / "slurm-local.sh"
PARTITION = "compresslib-ci"  # not the cluster's default: jobs only land here through COMPRESSLIB_SLURM_PARTITION
GPU_MODEL = "fake"
TEACHER_SECONDS = 75  # training time the teacher is sized to: beyond a 1-minute limit, well within 1 + 2 minutes
DIVERGING = "demo-diverge"
QUICK_TEACHER = "quick-teacher"
DIVERGING_RUN = f"synthetic/{QUICK_TEACHER}/{DIVERGING}/relu/seed1"
DEMO_CONFIG = yaml.safe_load((REPO / "profiles/demo/config.yaml").read_text())
SLURM_PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")  # what .ci/slurm-local.sh installs
TIMING_COLUMNS = {"train_seconds", "eval_seconds", "examples_per_s"}


def _require_root_and_apt() -> None:
    if os.geteuid() != 0:
        pytest.skip("starting a local SLURM cluster needs root (apt-get install slurmctld slurmd munge)")
    if shutil.which("apt-get") is None:
        pytest.skip("starting a local SLURM cluster needs apt-get (Debian or Ubuntu)")


def _installed(packages: tuple[str, ...]) -> set[str]:
    query = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *packages],
                           capture_output=True, text=True)
    return {line.split()[0] for line in query.stdout.splitlines() if line.endswith(" installed")}


@pytest.fixture(scope="module")
def cluster():
    """Start the cluster; afterwards stop it and remove the SLURM packages this test installed.

    Removing them matters: with SLURM's client tools installed but no controller, the plugin asks
    `scontrol` for its settings on every Snakemake start and waits 10 s for an answer.
    """
    _require_root_and_apt()
    installed_before = _installed(SLURM_PACKAGES)
    env = {**os.environ, "SLURM_LOCAL_PARTITION": f"debug {PARTITION}", "SLURM_LOCAL_GPUS": "2",
           "SLURM_LOCAL_GPU_TYPE": GPU_MODEL}
    subprocess.run(["bash", str(CLUSTER_SCRIPT), "start"], env=env, check=True, timeout=900,
                   capture_output=True, text=True)
    try:
        yield
    finally:
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop"], env=env, timeout=120, capture_output=True)
        added = sorted(set(SLURM_PACKAGES) - installed_before)
        if added:
            subprocess.run(["apt-get", "purge", "-y", "-q", *added], timeout=300, capture_output=True,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def _epoch_seconds(tmp_path: Path, config: dict) -> float:
    """Time one teacher epoch on this machine with one thread (what the cluster jobs get)."""
    data = tmp_path / "calibrate" / "dataset.pt"
    subprocess.run([sys.executable, "workflow_scripts/prepare_dataset.py", "--dataset", "synthetic", "--out", str(data),
                    "--synthetic", json.dumps(config["data"]["synthetic"])], cwd=REPO, check=True, capture_output=True)
    teacher = config["teachers"]["demo-teacher"]
    subprocess.run([sys.executable, "workflow_scripts/train.py", "--data", str(data), "--run-dir",
                    str(tmp_path / "calibrate" / "run"), "--threads", "1", "dataset=synthetic",
                    f"model={teacher['model']}", "epochs=1", "batch_size=64"], cwd=REPO, check=True, capture_output=True)
    record = json.loads((tmp_path / "calibrate" / "run" / "record.json").read_text())
    return record["timing"]["epoch_s_mean"]


def _workflow_profile(tmp_path: Path) -> Path:
    """The demo's configuration shrunk for CI, plus a diverging student, as a workflow profile."""
    config = copy.deepcopy(DEMO_CONFIG)
    config["data"]["synthetic"] = {"train_size": 3000, "test_size": 500, "seed": 0}
    epochs = max(6, math.ceil(TEACHER_SECONDS / _epoch_seconds(tmp_path, config)))
    config["teachers"]["demo-teacher"]["train"].update(epochs=epochs, milestones=[epochs - 2])
    config["students"]["demo-s1"]["train"].update(epochs=2, milestones=[1])
    # the diverging student learns from a one-epoch teacher, so that its tries overlap the slow teacher's
    config["teachers"][QUICK_TEACHER] = copy.deepcopy(config["teachers"]["demo-teacher"])
    config["teachers"][QUICK_TEACHER]["train"].update(epochs=1, milestones=[])
    config["students"][DIVERGING] = copy.deepcopy(config["students"]["demo-s1"])
    config["students"][DIVERGING]["train"]["lr"] = 1.0e4  # the loss overflows in the first epoch
    config["distill"] = {"ci": {"teacher": "demo-teacher", "students": ["demo-s1"], "activations": ["relu", "lma8"],
                                "seeds": [1, 2]}}
    config["quantize"] = {}  # quantize jobs are scheduled like the students; tests/test_workflow.py runs them
    config["lit"] = {}  # LIT jobs too (tests/test_workflow.py's demo runs them), and their text teacher
    del config["teachers"]["demo-text-teacher"], config["students"]["demo-text-student"]
    config["esnac"] = {}  # likewise ESNAC's searches and their teacher
    del config["teachers"]["demo-esnac-teacher"]
    config["translation"] = {}  # and the translation jobs
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(yaml.safe_dump(config))
    (profile / "config.v8+.yaml").write_text(yaml.safe_dump({
        "configfile": str(profile / "config.yaml"), "replace-workflow-config": True,
        "set-threads": {"train_teacher": 1, "distill_student": 1},
        # the form of profiles/default's runtimes, on a scale a CI run can outlast
        "set-resources": {"train_teacher": {"mem_mb": 1000, "runtime": "1 * attempt"},
                          "distill_student": {"mem_mb": 1000, "runtime": "2 * attempt"}},
    }))
    return profile


def _snakemake(args: list[str], cwd: Path, env: dict, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    return subprocess.Popen([*prefix, str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _finish(process: subprocess.Popen, timeout: float) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # Snakemake ignores SIGTERM while it polls SLURM; SIGINT stops it
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        raise AssertionError(f"snakemake did not finish within {timeout} s:\n{output[-6000:]}")
    return process.returncode, output


def _slurm_jobs() -> pd.DataFrame:
    """Every job SLURM still knows (MinJobAge keeps finished ones for 10 minutes), from its own queue."""
    fields = "JobID:|,Comment:|,State:|,Partition:|,TimeLimit:|,tres-per-job:|"
    lines = subprocess.run(["squeue", "--states=all", "--noheader", "-O", fields],
                           check=True, capture_output=True, text=True).stdout.split()
    columns = ["id", "comment", "state", "partition", "time_limit", "gpus"]
    jobs = pd.DataFrame([line.split("|")[:len(columns)] for line in lines], columns=columns)
    jobs["id"] = jobs["id"].astype(int)
    return jobs.sort_values("id")


def _runs(workdir: Path) -> dict[str, Path]:
    return {str(path.parent.relative_to(workdir)): path.parent for path in (workdir / "results").rglob("record.json")}


@pytest.fixture(scope="module")
def slurm_run(cluster: None, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp_path = tmp_path_factory.mktemp("slurm")
    profile = _workflow_profile(tmp_path)
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "PYTHONUNBUFFERED": "1",
           "COMPRESSLIB_SLURM_PARTITION": PARTITION, "COMPRESSLIB_GPU_MODEL": GPU_MODEL}
    # the README's set-up step, into a private Snakemake config folder
    subprocess.run(["make", "-s", "slurm-profile"], cwd=REPO, env=env, check=True, capture_output=True)
    before = set(_slurm_jobs()["id"])

    slurm_dir, local_dir = tmp_path / "slurm", tmp_path / "local"
    slurm_dir.mkdir()
    local_dir.mkdir()
    diverging_target = f"results/distill/{DIVERGING_RUN}/record.json"
    # the local reference runs alongside on one core, niced so that the cluster jobs' timing stays as measured
    local = _snakemake(["--workflow-profile", str(profile), "--cores", "1"], local_dir, env, prefix=("nice", "-n", "19"))
    cluster = ["--profile", "slurm", "--workflow-profile", str(profile),
               # the CI cluster keeps no accounting database: poll squeue, and soon
               "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2"]
    returncode, output = _finish(_snakemake([*cluster, "all", diverging_target], slurm_dir, env), 480)
    local_returncode, local_output = _finish(local, 120)
    assert local_returncode == 0, local_output[-6000:]
    jobs = _slurm_jobs()
    jobs = jobs[~jobs["id"].isin(before)]
    weights = {name: load_torch(path / "model.pt")["state_dict"] for name, path in _runs(slurm_dir).items()}

    # the students again, packed two to a SLURM job (two GPUs), as a user would pack many short runs
    grouped_returncode, grouped_output = _finish(_snakemake(
        [*cluster, "--groups", "distill_student=students", "--group-components", "students=2",
         "--forcerun", "distill_student", "all"], slurm_dir, env), 300)
    assert grouped_returncode == 0, grouped_output[-6000:]
    grouped_jobs = _slurm_jobs()
    return {"returncode": returncode, "output": output, "jobs": jobs, "weights": weights,
            "grouped_jobs": grouped_jobs[grouped_jobs["id"] > jobs["id"].max()],
            "slurm_dir": slurm_dir, "local_dir": local_dir}


def _job_kind(comment: str) -> str:
    if comment.startswith("rule_train_teacher"):
        return "quick-teacher" if QUICK_TEACHER in comment else "teacher"
    return "diverging" if DIVERGING in comment else "student"


def test_every_job_ran_in_slurm_on_the_partition_and_gpu_it_was_given(slurm_run: dict):
    jobs = slurm_run["jobs"].assign(kind=lambda frame: frame["comment"].map(_job_kind))
    assert set(jobs["partition"]) == {PARTITION}, jobs
    assert set(jobs["gpus"]) == {f"gres:gpu:{GPU_MODEL}:1"}, jobs  # --gpus=fake:1 from COMPRESSLIB_GPU_MODEL
    students = jobs[jobs["kind"] == "student"]
    assert len(students) == 4 and set(students["state"]) == {"COMPLETED"}, students
    assert list(jobs.loc[jobs["kind"] == "quick-teacher", "state"]) == ["COMPLETED"]
    teacher = jobs[jobs["kind"] == "teacher"]
    assert teacher["state"].iloc[-1] == "COMPLETED" and set(teacher["state"].iloc[:-1]) == {"TIMEOUT"}, teacher
    # localrules (dataset preparation, aggregation) never reach SLURM
    assert set(jobs["kind"]) == {"teacher", "quick-teacher", "student", "diverging"}


def test_a_timed_out_job_is_retried_with_more_runtime_and_resumes(slurm_run: dict):
    jobs = slurm_run["jobs"]
    teacher = jobs[jobs["comment"].map(_job_kind) == "teacher"]
    assert len(teacher) >= 2, teacher  # killed at least once by its 1-minute limit
    assert list(teacher["time_limit"]) == [f"{attempt}:00" for attempt in range(1, len(teacher) + 1)]
    record = json.loads((slurm_run["slurm_dir"] / "results/teachers/synthetic/demo-teacher/seed1/record.json").read_text())
    sessions = record["timing"]["sessions"]
    assert [int(s["slurm_job_id"]) for s in sessions] == list(teacher["id"])
    assert sessions[0]["start_epoch"] == 0
    assert all(later["start_epoch"] > earlier["start_epoch"] for earlier, later in zip(sessions, sessions[1:]))
    # a GPU job on a node without CUDA: SLURM's device, the CPU, and the record says both
    assert record["hardware"]["cuda_visible_devices"] in {"0", "1"} and record["hardware"]["device"] == "cpu"
    assert "resuming" in (slurm_run["slurm_dir"] / "logs/train_teacher/synthetic/demo-teacher/seed1.log").read_text()


def test_a_failing_job_is_reported_with_its_log_and_the_rest_completes(slurm_run: dict):
    assert slurm_run["returncode"] != 0
    jobs = slurm_run["jobs"]
    failed = jobs[jobs["comment"].str.contains(DIVERGING)]
    assert len(failed) == 3 and set(failed["state"]) == {"FAILED"}, failed  # the first try and two retries
    output = slurm_run["output"]
    for job_id in failed["id"]:
        assert f"SLURM-job '{job_id}' failed, SLURM status is: 'FAILED'" in output
    slurm_logs = [path for path in (slurm_run["slurm_dir"] / "logs/slurm/rule_distill_student").rglob("*.log")
                  if DIVERGING in str(path)]
    assert {int(path.stem) for path in slurm_logs} == set(failed["id"])
    assert all(str(path) in output for path in slurm_logs)
    rule_log = slurm_run["slurm_dir"] / f"logs/distill_student/{DIVERGING_RUN}.log"
    assert "TrainingDiverged: training diverged in epoch 1" in rule_log.read_text()
    assert not list((slurm_run["slurm_dir"] / "results/distill" / DIVERGING_RUN).rglob("*.*"))
    # the rest of the DAG, aggregation included, finished
    assert (slurm_run["slurm_dir"] / "results/tables/summary-distill.csv").exists()


def test_outputs_match_a_local_run(slurm_run: dict):
    slurm_runs, local_runs = _runs(slurm_run["slurm_dir"]), _runs(slurm_run["local_dir"])
    assert sorted(slurm_runs) == sorted(local_runs) == sorted(slurm_run["weights"]) and len(local_runs) == 2 + 4
    for name, local_dir in local_runs.items():
        grouped_weights = load_torch(slurm_runs[name] / "model.pt")["state_dict"]
        for key, value in load_torch(local_dir / "model.pt")["state_dict"].items():
            assert torch.equal(value, slurm_run["weights"][name][key]), (name, key)  # the first cluster run
            assert torch.equal(value, grouped_weights[key]), (name, key)  # the students' grouped rerun
        columns = lambda frame: frame.drop(columns=list(TIMING_COLUMNS))
        pd.testing.assert_frame_equal(columns(pd.read_csv(slurm_runs[name] / "history.csv")),
                                      columns(pd.read_csv(local_dir / "history.csv")))
    summary = "results/tables/summary-distill.csv"
    pd.testing.assert_frame_equal(pd.read_csv(slurm_run["slurm_dir"] / summary), pd.read_csv(slurm_run["local_dir"] / summary))


def test_short_jobs_can_share_a_slurm_job(slurm_run: dict):
    """Four students, two per SLURM job. The job asks for both students' GPUs; each student's job step gets one.

    (Plugin 2.8.0 runs a group's members one after another: snakemake-executor-plugin-slurm#469.)
    """
    grouped = slurm_run["grouped_jobs"]
    assert len(grouped) == 2 and set(grouped["state"]) == {"COMPLETED"}, grouped
    assert set(grouped["gpus"]) == {f"gres:gpu:{GPU_MODEL}:2"}, grouped
    students = [json.loads(path.read_text())
                for path in (slurm_run["slurm_dir"] / "results/distill/synthetic/demo-teacher").rglob("record.json")]
    job_of = [int(record["timing"]["sessions"][-1]["slurm_job_id"]) for record in students]
    assert sorted(job_of) == sorted(list(grouped["id"]) * 2)
    for record in students:  # one GPU of its job's two (and, without CUDA, the CPU)
        hardware = record["hardware"]
        assert hardware["cuda_visible_devices"] in {"0", "1"} and hardware["slurm_gpus"] == hardware["cuda_visible_devices"]
        assert hardware["device"] == "cpu"
