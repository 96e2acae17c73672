"""`snakemake --profile slurm` on a real single-node SLURM cluster with accounting (.ci/slurm-local.sh, slurmdbd, fake
GPUs as GRES), in the status mode the plugin uses on such a cluster (sacct).

One run of a shrunk demo DAG (same rules, teacher, students, activations and aggregation as the demo) through the
shipped profile, installed with `make slurm-profile`, checked against a local run of the same DAG made at the same
time. The run meets the faults of a production cluster while it runs: the teacher is sized (from a measured epoch
time) to outlive a 1-minute limit, so SLURM kills it and the retry must resume from its checkpoint with a 2-minute
limit, and that retry is preempted mid-epoch by a job of a higher-tier partition; one student is cancelled
(`scancel`) mid-epoch and another loses its node mid-epoch (slurmd and its jobs' processes killed, node DOWN, node
back): each is retried or requeued and resumes, and every record's sessions list every SLURM job that worked on
it. One extra student diverges on purpose and must be reported as FAILED with its log while everything else
completes; every job asks for a GPU of a given model and a partition that only the environment names. Then the
students run again packed two to a SLURM job, which must ask for one GPU and run them side by side on it, and then
once more one SLURM job each, sharing GPUs by the scheduler's `shard` GRES.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from compresslib.io import load_torch
from conftest import REPO, SNAKEMAKE, installed_packages, purge_packages_added_since, require_root_and_apt

pytestmark = pytest.mark.slow

CLUSTER_SCRIPT = REPO / ".ci" / "slurm-local.sh"
PARTITION = "compresslib-ci"  # not the cluster's default: jobs only land here through COMPRESSLIB_SLURM_PARTITION
GPU_MODEL = "fake"
NODE = "vm"  # the node name .ci/slurm-local.sh gives the machine
PREEMPTING = "compresslib-urgent"  # a partition of a higher tier: its jobs requeue the running jobs in their way
SLURM_LOCAL_DIR = Path("/tmp/slurm-local")  # the script's state folder (its default)
CLUSTER_ENV = {**os.environ, "SLURM_LOCAL_ACCOUNTING": "slurmdbd", "SLURM_LOCAL_PARTITION": f"debug {PARTITION}",
               "SLURM_LOCAL_PREEMPT_PARTITION": PREEMPTING, "SLURM_LOCAL_GPUS": "2", "SLURM_LOCAL_GPU_TYPE": GPU_MODEL,
               "SLURM_LOCAL_SHARDS": "2",
               "SLURM_LOCAL_DIR": str(SLURM_LOCAL_DIR)}
TEACHER_LOG = "logs/train_teacher/synthetic/demo-teacher/seed1.log"
TEACHER_SECONDS = 90  # training time the teacher is sized to: beyond a 1-minute limit, well within 1 + 2 minutes
DIVERGING = "demo-diverge"
QUICK_TEACHER = "quick-teacher"
DIVERGING_RUN = f"synthetic/{QUICK_TEACHER}/{DIVERGING}/relu/seed1"
STUDENTS = [(activation, seed) for activation in ("relu", "lma8") for seed in (1, 2)]
STUDENT_EPOCHS = 3
DEMO_CONFIG = yaml.safe_load((REPO / "profiles/demo/config.yaml").read_text())
TIMING_COLUMNS = {"train_seconds", "eval_seconds", "examples_per_s"}


def _processes(keep) -> list[int]:
    """The pids of the processes whose /proc folder ``keep`` accepts (those that vanish or refuse reading are left)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and keep(proc):
                found.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return found


def _job_processes() -> list[int]:
    """Processes started by SLURM jobs: what a job leaves behind when its node dies without cgroups to kill it."""
    return _processes(lambda proc: b"\0SLURM_JOB_ID=" in b"\0" + (proc / "environ").read_bytes())


def _processes_named(name: str) -> list[int]:
    """Live processes called ``name`` (not zombies, which a container's PID 1 may never reap)."""
    def named(proc: Path) -> bool:
        command, state = (proc / "stat").read_text().rsplit(")", 1)
        return command.split("(", 1)[-1] == name and state.split()[0] != "Z"
    return _processes(named)


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def cluster():
    """Start the cluster with its accounting database; afterwards stop it, kill anything its jobs left, and remove
    every package this test installed.

    Removing them matters: with SLURM's client tools installed but no controller, the plugin asks `scontrol` for
    its settings on every Snakemake start and waits 10 s for an answer.
    """
    require_root_and_apt("starting a local SLURM cluster (slurmctld slurmd munge)")
    installed_before = installed_packages()
    subprocess.run(["bash", str(CLUSTER_SCRIPT), "start"], env=CLUSTER_ENV, check=True, timeout=900,
                   capture_output=True, text=True)
    try:
        yield
    finally:  # no job may outlive the test: cancelled, or else killed with the cluster's job steps
        subprocess.run(["scancel", "--user", str(os.getuid())], timeout=60, capture_output=True)
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop"], env=CLUSTER_ENV, timeout=120, capture_output=True)
        _kill([*_processes_named("slurmstepd"), *_job_processes()])
        purge_packages_added_since(installed_before)


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
    config["students"]["demo-s1"]["train"].update(epochs=STUDENT_EPOCHS, milestones=[1])
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
    """Every job SLURM still knows (MinJobAge keeps finished ones for 10 minutes), as its queue shows it: one row per
    job id, with what it asked for and its last state."""
    fields = "JobID:|,Comment:|,State:|,Partition:|,TimeLimit:|,tres-per-job:|,tres-per-node:|,NumCPUs:|"
    lines = subprocess.run(["squeue", "--states=all", "--noheader", "-O", fields],
                           check=True, capture_output=True, text=True).stdout.split()
    columns = ["id", "comment", "state", "partition", "time_limit", "gpus", "gres", "cpus"]
    jobs = pd.DataFrame([line.split("|")[:len(columns)] for line in lines], columns=columns)
    jobs = jobs.astype({"id": int, "cpus": int})
    return jobs.sort_values("id")


def _job_instances(since: str) -> pd.DataFrame:
    """Every run of every job from the accounting database, a requeued job once per run (sacct --duplicates), job
    steps included (``<id>.<step>``), with the state SLURM gave each ("CANCELLED by 0" as it writes it)."""
    fields = "JobIDRaw,Comment,State,Start,End,ElapsedRaw,NodeList"
    lines = subprocess.run(["sacct", "--duplicates", "--parsable2", "--noheader", "--starttime", since, "-o", fields],
                           check=True, capture_output=True, text=True).stdout.splitlines()
    columns = ["id", "comment", "state", "start", "end", "seconds", "node"]
    return pd.DataFrame([line.split("|") for line in lines], columns=columns).astype({"seconds": int})


def _runs(workdir: Path) -> dict[str, Path]:
    return {str(path.parent.relative_to(workdir)): path.parent for path in (workdir / "results").rglob("record.json")}


def _student_dir(workdir: Path, activation: str, seed: int) -> Path:
    return workdir / f"results/distill/synthetic/demo-teacher/demo-s1/{activation}/seed{seed}"


def _running_job(activation: str, seed: int) -> int | None:
    jobs = _slurm_jobs()
    student = jobs[jobs["comment"].str.endswith(f"demo-s1_{activation}_{seed}") & (jobs["state"] == "RUNNING")]
    return int(student["id"].iloc[0]) if len(student) else None


def _student_past_its_first_epoch(workdir: Path, skip: set) -> tuple[tuple[str, int], int] | None:
    """A student whose SLURM job runs and whose first epoch is checkpointed (so it is in the middle of a later one)."""
    for student in STUDENTS:
        if student not in skip and (_student_dir(workdir, *student) / "checkpoint.pt").exists():
            job = _running_job(*student)
            if job is not None:
                return student, job
    return None


def _fail_the_node(running: set[int]) -> None:
    """A power loss: slurmd and every process of the node's jobs die with it, SLURM marks the node DOWN and requeues
    its jobs, the node boots (a fresh slurmd) and returns to service."""
    pid_file = SLURM_LOCAL_DIR / "run" / "slurmd.pid"
    slurmd = int(pid_file.read_text())
    _kill([slurmd, *_processes_named("slurmstepd"), *_job_processes()])
    while _processes_named("slurmd"):
        time.sleep(0.1)
    pid_file.unlink()  # the start script takes a pid that answers kill -0 for a running slurmd: a zombie's does
    subprocess.run(["scontrol", "update", f"nodename={NODE}", "state=down", "reason=ci-node-failure"], check=True)
    subprocess.run(["bash", str(CLUSTER_SCRIPT), "start"], env={**CLUSTER_ENV, "SLURM_LOCAL_INSTALL": "0",
                   "SLURM_LOCAL_SMOKE": "0"}, check=True, timeout=120, capture_output=True)
    # the controller's orders to kill the failed node's jobs reach the node once it is back: a requeued job let start
    # at once there (its id unchanged) would be killed by them, which SLURM's two-minute hold otherwise prevents
    time.sleep(10)
    _release_requeued()


def _release_requeued() -> None:
    """SLURM holds a requeued batch job back for two minutes before it may start again: skip the wait."""
    for job in _slurm_jobs().query("state == 'PENDING'")["id"]:
        subprocess.run(["scontrol", "update", f"jobid={job}", "starttime=now"], capture_output=True)


def _teacher_retry_past_an_epoch(workdir: Path) -> int | None:
    """The teacher's second SLURM job once it has finished an epoch of its own (so it is in the middle of the next)."""
    jobs = _slurm_jobs()
    retry = jobs[jobs["comment"].str.endswith("demo-teacher_1") & (jobs["state"] == "RUNNING")
                 & (jobs["time_limit"] == "2:00")]
    log = workdir / TEACHER_LOG
    if not len(retry) or not log.exists():
        return None
    job = int(retry["id"].iloc[0])
    text = log.read_text()
    header = text.rfind(f"SLURM job {job} (restart 0)")
    return job if header >= 0 and "training.loop: epoch " in text[header:] else None


def _preempt(job: int) -> None:
    """A job of the higher-tier partition that needs the whole node (both GPUs): SLURM requeues ``job`` (and whatever
    else runs) to make room; once it has run, the requeued jobs may start again."""
    urgent = subprocess.run(["sbatch", "--parsable", "-p", PREEMPTING, "--gres=gpu:2", "--mem", "100", "-t", "1",
                             "--output", os.devnull, "--wrap", "sleep 3"], check=True, capture_output=True,
                            text=True).stdout.strip()
    while True:
        state = subprocess.run(["sacct", "-X", "-n", "--parsable2", "-o", "State", "-j", urgent], capture_output=True,
                               text=True).stdout.strip()
        if state in {"COMPLETED", "FAILED", "CANCELLED"}:
            break
        time.sleep(0.5)
    _release_requeued()


def _inject_faults(workdir: Path, stop: threading.Event, faults: dict) -> None:
    """While the cluster run goes on: preempt the teacher's retry in the middle of an epoch, cancel one student's job
    in its second epoch, then fail the node under another's."""
    while "preempted" not in faults and not stop.wait(0.2):
        job = _teacher_retry_past_an_epoch(workdir)
        if job is not None:
            _preempt(job)
            faults["preempted"] = job
    while not stop.wait(0.2):
        found = _student_past_its_first_epoch(workdir, skip={faults.get("cancelled")})
        if found is None:
            continue
        student, job = found
        if "cancelled" not in faults:
            subprocess.run(["scancel", str(job)], check=True)
            faults["cancelled"] = student
            continue
        running = set(_slurm_jobs().query("state == 'RUNNING'")["id"])
        _fail_the_node(running)
        faults["node_failed"], faults["requeued"] = student, running
        return


@pytest.fixture(scope="module")
def slurm_run(cluster: None, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp_path = tmp_path_factory.mktemp("slurm")
    profile = _workflow_profile(tmp_path)
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "PYTHONUNBUFFERED": "1",
           "COMPRESSLIB_SLURM_PARTITION": PARTITION, "COMPRESSLIB_GPU_MODEL": GPU_MODEL,
           # two jobs per GPU: a teacher asks for both slots of one, two students packed into one SLURM job share one;
           # the fake GPUs cannot run CUDA, so the jobs train on the CPU by choice (a job given GPUs it cannot use
           # stops otherwise)
           "COMPRESSLIB_GPU_SLOTS": "2", "COMPRESSLIB_DEVICE": "cpu"}
    # the README's set-up step, into a private Snakemake config folder
    subprocess.run(["make", "-s", "slurm-profile"], cwd=REPO, env=env, check=True, capture_output=True)
    before = set(_slurm_jobs()["id"])
    since = time.strftime("%Y-%m-%dT%H:%M:%S")

    slurm_dir, local_dir = tmp_path / "slurm", tmp_path / "local"
    slurm_dir.mkdir()
    local_dir.mkdir()
    diverging_target = f"results/distill/{DIVERGING_RUN}/record.json"
    # the local reference runs alongside on one core, niced so that the cluster jobs' timing stays as measured
    local = _snakemake(["--workflow-profile", str(profile), "--cores", "1"], local_dir, env,
                       prefix=("nice", "-n", "19"))
    # the profile as shipped, on a cluster with accounting (sacct); polled soon, as CI jobs are short
    cluster = ["--profile", "slurm", "--workflow-profile", str(profile),
               "--slurm-init-seconds-before-status-checks", "2"]
    faults: dict = {}
    stop = threading.Event()
    injector = threading.Thread(target=_inject_faults, args=(slurm_dir, stop, faults))
    injector.start()
    try:
        returncode, output = _finish(_snakemake([*cluster, "all", diverging_target], slurm_dir, env), 600)
    finally:
        stop.set()
        injector.join()
    local_returncode, local_output = _finish(local, 120)
    assert local_returncode == 0, local_output[-6000:]
    jobs = _slurm_jobs()
    jobs = jobs[~jobs["id"].isin(before) & (jobs["partition"] != PREEMPTING)]  # the workflow's jobs
    instances = _job_instances(since)
    weights = {name: load_torch(path / "model.pt")["state_dict"] for name, path in _runs(slurm_dir).items()}
    records = {name: json.loads((path / "record.json").read_text()) for name, path in _runs(slurm_dir).items()}

    # the students again, packed two to a SLURM job, as a user would pack many short runs
    grouped_returncode, grouped_output = _finish(_snakemake(
        [*cluster, "--groups", "distill_student=students", "--group-components", "students=2",
         "--forcerun", "distill_student", "all"], slurm_dir, env), 420)
    assert grouped_returncode == 0, grouped_output[-6000:]
    grouped_jobs = _slurm_jobs()
    grouped_jobs = grouped_jobs[grouped_jobs["id"] > jobs["id"].max()]
    grouped_steps = _job_instances(since).query("id.str.contains('[.][0-9]', regex=True)")
    grouped_records = [json.loads(path.read_text())
                       for path in (slurm_dir / "results/distill/synthetic/demo-teacher").rglob("record.json")]
    # and once more on a site that shares GPUs by `shard` GRES: one SLURM job per student, asking for a shard
    shard_env = {**env, "COMPRESSLIB_SLURM_GPU_SHARING": "shard"}
    shard_returncode, shard_output = _finish(_snakemake([*cluster, "--forcerun", "distill_student", "all"], slurm_dir,
                                                        shard_env), 420)
    assert shard_returncode == 0, shard_output[-6000:]
    runs = _job_instances(since).query("id.str.isdigit()").astype({"id": int})
    shard_jobs = _slurm_jobs().query("id > @grouped_jobs.id.max()").merge(runs[["id", "start", "end"]], on="id")
    return {"returncode": returncode, "output": output, "jobs": jobs, "instances": instances, "weights": weights,
            "records": records, "faults": faults, "grouped_jobs": grouped_jobs, "grouped_steps": grouped_steps,
            "grouped_records": grouped_records,
            "shard_jobs": shard_jobs, "slurm_dir": slurm_dir, "local_dir": local_dir}


def _job_kind(comment: str) -> str:
    if comment.startswith("rule_train_teacher"):
        return "quick-teacher" if QUICK_TEACHER in comment else "teacher"
    return "diverging" if DIVERGING in comment else "student"


def _sessions(record: dict) -> list[tuple[int, int]]:
    return [(int(session["slurm_job_id"]), session["slurm_restart_count"]) for session in record["timing"]["sessions"]]


def _student_record(slurm_run: dict, activation: str, seed: int) -> dict:
    return slurm_run["records"][f"results/distill/synthetic/demo-teacher/demo-s1/{activation}/seed{seed}"]


def test_every_job_ran_in_slurm_on_the_partition_and_gpu_it_was_given(slurm_run: dict):
    jobs = slurm_run["jobs"].assign(kind=lambda frame: frame["comment"].map(_job_kind))
    assert set(jobs["partition"]) == {PARTITION}, jobs
    assert set(jobs["gpus"]) == {f"gres:gpu:{GPU_MODEL}:1"}, jobs  # --gpus=fake:1 from COMPRESSLIB_GPU_MODEL
    students = jobs[jobs["kind"] == "student"]
    assert len(students) == 4 + 1 and set(students["state"]) == {"COMPLETED", "CANCELLED"}, students  # one retried
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
    record = slurm_run["records"]["results/teachers/synthetic/demo-teacher/seed1"]
    sessions = record["timing"]["sessions"]
    assert list(dict.fromkeys(int(s["slurm_job_id"]) for s in sessions)) == list(teacher["id"])
    assert sessions[0]["start_epoch"] == 0
    assert all(later["start_epoch"] > earlier["start_epoch"] for earlier, later in zip(sessions, sessions[1:]))
    # a GPU job on a node without CUDA: SLURM's device, the CPU, and the record says both
    assert record["hardware"]["cuda_visible_devices"] in {"0", "1"} and record["hardware"]["device"] == "cpu"
    log = (slurm_run["slurm_dir"] / "logs/train_teacher/synthetic/demo-teacher/seed1.log").read_text()
    assert "resuming" in log
    for job in teacher["id"]:  # every attempt's lines are kept, each under a header naming its SLURM job
        assert f"SLURM job {job}" in log


def test_a_preempted_job_is_requeued_and_resumes(slurm_run: dict):
    """The teacher's second job, preempted in the middle of an epoch by a job of a higher-tier partition: SLURM
    requeues it under the same id (PreemptMode=REQUEUE) and it resumes from its last epoch."""
    job = slurm_run["faults"]["preempted"]
    instances = slurm_run["instances"]
    runs = instances[instances["id"] == str(job)]
    assert list(runs["state"]) == ["PREEMPTED", "COMPLETED"], runs
    sessions = slurm_run["records"]["results/teachers/synthetic/demo-teacher/seed1"]["timing"]["sessions"]
    assert [(int(s["slurm_job_id"]), s["slurm_restart_count"]) for s in sessions][-2:] == [(job, 0), (job, 1)]
    assert sessions[-1]["start_epoch"] > sessions[-2]["start_epoch"]  # the epoch it finished before it was preempted


def _job_runs(instances: pd.DataFrame) -> pd.DataFrame:
    """The runs of jobs that started (a requeued job once per run), without their job steps."""
    return instances[~instances["id"].str.contains(".", regex=False) & (instances["start"] != "Unknown")]


def _started_runs(slurm_run: dict, student: tuple[str, int]) -> pd.DataFrame:
    """The SLURM job runs that started on ``student``, in order."""
    runs = _job_runs(slurm_run["instances"])
    return runs[runs["comment"].str.endswith("demo-s1_{}_{}".format(*student))]


def test_a_cancelled_job_is_retried_and_resumes(slurm_run: dict):
    """`scancel` mid-epoch: sacct says "CANCELLED by 0", which the plugin alone polled as running for ever."""
    student = slurm_run["faults"]["cancelled"]
    runs = _started_runs(slurm_run, student)
    assert runs["state"].iloc[0].startswith("CANCELLED") and runs["state"].iloc[-1] == "COMPLETED", runs
    assert runs["id"].nunique() >= 2  # retried as a new SLURM job
    sessions = _student_record(slurm_run, *student)["timing"]["sessions"]
    assert [int(session["slurm_job_id"]) for session in sessions] == [int(job) for job in runs["id"]]
    assert sessions[1]["start_epoch"] >= 1  # resumed after its first epoch, not started over


def test_a_failed_node_requeues_its_jobs_which_resume_and_later_jobs_still_submit(slurm_run: dict):
    instances = slurm_run["instances"]
    for job in slurm_run["faults"]["requeued"]:  # each job that ran on the node: a NODE_FAIL run, then a finished one
        runs = instances[instances["id"] == str(job)]
        assert runs["state"].iloc[0] == "NODE_FAIL" and runs["state"].iloc[-1] in {"COMPLETED", "FAILED"}, runs
    student = slurm_run["faults"]["node_failed"]
    runs = _started_runs(slurm_run, student)
    job = int(runs["id"].iloc[-1])
    record = _student_record(slurm_run, *student)
    assert _sessions(record)[-2:] == [(job, 0), (job, 1)]  # one job id, its SLURM restarts told apart
    assert record["timing"]["sessions"][-1]["start_epoch"] >= 1
    # the plugin went on submitting after the node failure (no `--exclude=None assigned`)
    assert "Unable to open file" not in slurm_run["output"] and "--exclude" not in slurm_run["output"]


def test_every_record_lists_every_slurm_job_that_worked_on_it(slurm_run: dict):
    """Each session is a run of a SLURM job, told apart by the job's restarts; every run that lasted long enough to
    start training (SLURM killed one on the failed node as it started) is a session."""
    runs = _job_runs(slurm_run["instances"])
    runs = runs.assign(restart=runs.groupby("id").cumcount(),
                       wildcards=runs["comment"].str.split("_wildcards_").str[-1])
    for name, record in slurm_run["records"].items():  # results/<family>/<wildcard values>, "seed" before the seed
        worked = runs[runs["wildcards"] == "_".join(name.split("/")[2:]).replace("seed", "")]
        sessions = set(_sessions(record))
        assert sessions <= {(int(job), restart) for job, restart in zip(worked["id"], worked["restart"])}, name
        long = worked[worked["seconds"] >= 15]
        assert len(long) and {(int(job), restart) for job, restart in zip(long["id"], long["restart"])} <= sessions, (
            name, worked, sessions)


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
    assert not {"model.pt", "record.json"} & {path.name for path in (slurm_run["slurm_dir"] / "results/distill"
                                                                    / DIVERGING_RUN).iterdir()}
    # the rest of the DAG, aggregation included, finished
    assert (slurm_run["slurm_dir"] / "results/tables/summary-distill.csv").exists()


def test_outputs_match_a_local_run(slurm_run: dict):
    """Bit for bit, the interrupted runs (time limit, scancel, node failure) included."""
    slurm_runs, local_runs = _runs(slurm_run["slurm_dir"]), _runs(slurm_run["local_dir"])
    assert sorted(slurm_runs) == sorted(local_runs) == sorted(slurm_run["weights"]) and len(local_runs) == 2 + 4
    for name, local_dir in local_runs.items():
        rerun_weights = load_torch(slurm_runs[name] / "model.pt")["state_dict"]
        for key, value in load_torch(local_dir / "model.pt")["state_dict"].items():
            assert torch.equal(value, slurm_run["weights"][name][key]), (name, key)  # the first cluster run
            assert torch.equal(value, rerun_weights[key]), (name, key)  # the students' reruns (the last, by shards)
        columns = lambda frame: frame.drop(columns=list(TIMING_COLUMNS))
        pd.testing.assert_frame_equal(columns(pd.read_csv(slurm_runs[name] / "history.csv")),
                                      columns(pd.read_csv(local_dir / "history.csv")))
    summary = "results/tables/summary-distill.csv"
    pd.testing.assert_frame_equal(pd.read_csv(slurm_run["slurm_dir"] / summary), pd.read_csv(slurm_run["local_dir"] / summary))


def test_packed_students_share_one_gpu_side_by_side(slurm_run: dict):
    """Four students, two per SLURM job (COMPRESSLIB_GPU_SLOTS=2): each job asks for one GPU, both students' CPUs and
    the longer time of the two, and runs them at the same time as two job steps on that GPU."""
    grouped = slurm_run["grouped_jobs"]
    assert len(grouped) == 2 and set(grouped["state"]) == {"COMPLETED"}, grouped
    assert set(grouped["gpus"]) == {f"gres:gpu:{GPU_MODEL}:1"}, grouped
    assert set(grouped["cpus"]) == {2} and set(grouped["time_limit"]) == {"2:00"}, grouped  # each student `2 * attempt`
    for job in grouped["id"]:
        members = [record["hardware"] for record in slurm_run["grouped_records"]
                   if int(record["timing"]["sessions"][-1]["slurm_job_id"]) == job]
        assert len(members) == 2
        # the job's one GPU in both job steps; the fake GPU runs no CUDA, so each trains on the CPU by choice and
        # leases no slot (tests/test_gpu_slots.py leases slots of fake GPUs on one machine)
        assert len({(hardware["slurm_gpus"], hardware["cuda_visible_devices"]) for hardware in members}) == 1, members
        assert {hardware["device_choice"] for hardware in members} == {"requested by COMPRESSLIB_DEVICE"}, members
        steps = slurm_run["grouped_steps"]
        steps = steps[steps["id"].str.startswith(f"{job}.") & ~steps["id"].str.endswith("batch")].sort_values("start")
        assert len(steps) == 2 and steps["start"].iloc[1] < steps["end"].iloc[0], steps  # side by side


def test_students_share_a_gpu_by_shards_where_the_site_offers_them(slurm_run: dict):
    """With COMPRESSLIB_SLURM_GPU_SHARING=shard each one-slot student is a SLURM job asking for one shard of a GPU
    (two per GPU here), and SLURM runs two of them at the same time (the node's two CPUs bound it)."""
    jobs = slurm_run["shard_jobs"].sort_values("start")
    assert len(jobs) == 4 and set(jobs["state"]) == {"COMPLETED"}, jobs
    assert set(jobs["gres"]) == {f"gres:shard:{GPU_MODEL}:1"} and set(jobs["gpus"]) == {"N/A"}, jobs
    spans = jobs[["start", "end"]].to_records(index=False)
    assert any(later.start < earlier.end for earlier, later in zip(spans, spans[1:])), jobs
