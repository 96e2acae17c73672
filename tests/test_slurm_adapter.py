"""The workflow's adapter to snakemake-executor-plugin-slurm (rules/slurm.smk, compresslib.slurm), without a cluster:
SLURM's texts as sacct writes them, the plugin's status query and GPU request through the adapter.
(tests/test_slurm.py runs the same faults on a real cluster.)"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import runpy
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest
import snakemake_executor_plugin_slurm as slurm_plugin
import snakemake_executor_plugin_slurm_jobstep as step_plugin
from snakemake.iocontainers import ResourceList

from compresslib import experiments
from compresslib.config import ConfigError
from compresslib.slurm import gpu_sharing, gpus_for_slots, job_state, node_names, side_by_side, slot_request
from conftest import REPO, SNAKEMAKE

ADAPTER = runpy.run_path(str(REPO / "rules" / "slurm.smk"))  # plain Python: what the Snakefile includes


@pytest.mark.parametrize(("reported", "state"), [("CANCELLED by 0", "CANCELLED"), ("CANCELLED by 1000", "CANCELLED"),
                                                 ("COMPLETED", "COMPLETED"), ("NODE_FAIL", "NODE_FAIL"), ("", "")])
def test_a_state_is_its_first_word(reported: str, state: str):
    assert job_state(reported) == state


@pytest.mark.parametrize(("nodelist", "names"), [("None assigned", []), ("", []), ("  vm  ", ["vm"]),
                                                 ("gpu[01-02],cpu7", ["gpu[01-02]", "cpu7"])])
def test_node_names_leave_out_a_job_without_a_node(nodelist: str, names: list[str]):
    assert node_names(nodelist) == names


@pytest.mark.parametrize(("slots", "per_gpu", "gpus"),
                         [(0, 4, 0), (1, 4, 1), (4, 4, 1), (5, 4, 2), (8, 4, 2), (3, 1, 3)])
def test_slots_are_held_by_the_fewest_gpus(slots: int, per_gpu: int, gpus: int):
    assert gpus_for_slots(slots, per_gpu) == gpus


def test_with_shards_a_job_of_part_of_a_gpu_asks_for_that_many_shards():
    student = {"gpu": 1, "gpu_model": "a100", "mem_mb": 1000}
    assert slot_request(student, 4, "groups") == student
    assert slot_request(student, 4, "shard") == {"gres": "shard:a100:1", "mem_mb": 1000}
    assert slot_request({"gpu": 3}, 4, "shard") == {"gres": "shard:3"}
    assert slot_request({"gpu": 4, "gpu_model": "a100"}, 4, "shard") == {"gpu": 1, "gpu_model": "a100"}  # a whole GPU
    assert slot_request({"gpu": 0, "mem_mb": 1}, 4, "shard") == {"gpu": 0, "mem_mb": 1}
    assert gpu_sharing({}) == "groups" and gpu_sharing({"COMPRESSLIB_SLURM_GPU_SHARING": "shard"}) == "shard"
    with pytest.raises(ConfigError, match="^COMPRESSLIB_SLURM_GPU_SHARING='mps': must be groups or shard$"):
        gpu_sharing({"COMPRESSLIB_SLURM_GPU_SHARING": "mps"})


def test_a_group_runs_its_members_side_by_side():
    assert side_by_side("--executor slurm-jobstep --jobs 1 --slurm-jobstep-pass-command-as-script") == \
        "--executor slurm-jobstep --jobs unlimited --slurm-jobstep-pass-command-as-script"


def test_the_adapter_is_on_for_the_pinned_plugins():
    assert slurm_plugin.compresslib_adapted and step_plugin.compresslib_adapted
    by_argument = SimpleNamespace(pass_command_as_script=False)
    settings = SimpleNamespace(workflow=SimpleNamespace(executor_settings=by_argument))
    assert slurm_plugin.Executor.additional_general_args(settings) == "--executor slurm-jobstep --jobs unlimited"


def test_the_status_query_reads_a_cancelled_job_as_cancelled():
    """The plugin counts CANCELLED as failed (and retries the job) but knew no `CANCELLED by <uid>`."""
    command = "printf '41|CANCELLED by 0\\n42|RUNNING\\n43|COMPLETED\\n'"
    states, seconds = asyncio.run(slurm_plugin.query_job_status(command, logging.getLogger("test")))
    assert states == {"41": "CANCELLED", "42": "RUNNING", "43": "COMPLETED"} and seconds >= 0
    assert asyncio.run(slurm_plugin.query_job_status("false", logging.getLogger("test"))) == (None, None)


def test_failed_nodes_are_real_names_and_none_while_slurm_requeues():
    failed = ADAPTER["FailedNodes"](set(), requeue=False)
    failed.add("None assigned")
    failed.add("gpu07")
    assert failed == {"gpu07"}
    requeueing = ADAPTER["FailedNodes"]({"bad01"}, requeue=True)  # nodes the user excluded stay excluded
    requeueing.add("gpu07")
    assert requeueing == {"bad01"}


class _Job:
    def __init__(self, resources: dict, members: list[_Job] = ()):
        self.resources, self.jobs = ResourceList(fromdict=resources), members
        self.name = "students"

    def is_group(self) -> bool:
        return bool(self.jobs)


def test_a_job_asks_slurm_for_the_gpus_that_hold_its_slots(monkeypatch: pytest.MonkeyPatch):
    """A rule's `gpu` counts slots: a student 1, a teacher a whole GPU's; a group adds up its members' (Snakemake's
    sum, as for their CPUs and memory) and asks for the GPUs that hold them."""
    monkeypatch.setenv("COMPRESSLIB_GPU_SLOTS", "4")
    student = {"gpu": 1, "mem_mb": 1000, "runtime": 2, "_cores": 1, "_nodes": 1}
    assert slurm_plugin.set_gres_string(_Job(student)).strip() == "--gpus=1"
    assert slurm_plugin.set_gres_string(_Job({**student, "gpu": 4})).strip() == "--gpus=1"  # a teacher
    group = _Job({**student, "gpu": 4, "mem_mb": 4000, "_cores": 4}, [_Job(student)] * 4)
    assert slurm_plugin.set_gres_string(group).strip() == "--gpus=1"
    assert slurm_plugin.set_gres_string(_Job({**student, "gpu": 5}, [_Job(student)] * 5)).strip() == "--gpus=2"
    assert ADAPTER["SlotJob"](group).name == "students" and ADAPTER["SlotJob"](group).resources["mem_mb"] == 4000
    assert slurm_plugin.set_gres_string(_Job({**student, "gpu": 0})).strip() == ""
    monkeypatch.setenv("COMPRESSLIB_SLURM_GPU_SHARING", "shard")
    assert slurm_plugin.set_gres_string(_Job(student)).strip() == "--gres=shard:1"
    assert slurm_plugin.set_gres_string(_Job({**student, "gpu": 4})).strip() == "--gpus=1"


def test_a_group_member_runs_as_a_job_step_beside_the_others(monkeypatch: pytest.MonkeyPatch):
    """Inside the group's SLURM job each member is a job step asking for the GPUs of its slots, overlapping the other
    steps (without --overlap SLURM holds a step until the GPU is free); the plugin's run_job, which waits for its step,
    returns at once."""
    monkeypatch.setenv("COMPRESSLIB_GPU_SLOTS", "4")
    assert step_plugin.get_gpu_setting(_Job({"gpu": 1})) == "--gpus=1 --overlap"
    assert step_plugin.get_gpu_setting(_Job({"gpu": 0})) == ""
    with monkeypatch.context() as shards:
        shards.setenv("COMPRESSLIB_SLURM_GPU_SHARING", "shard")
        assert step_plugin.get_gpu_setting(_Job({"gpu": 1})) == "--gres=shard:1 --overlap"
        assert step_plugin.get_gpu_setting(_Job({"gpu": 4})) == "--gpus=1 --overlap"
    step_done, reports = threading.Event(), []
    monkeypatch.setattr(step_plugin.subprocess, "Popen", lambda call, **kwargs: _Step(call, step_done))
    executor = SimpleNamespace(
        workflow=SimpleNamespace(executor_settings=SimpleNamespace(array_execs=None, pass_command_as_script=False)),
        job_array_task=None, gpu_job=None, logger=logging.getLogger("test"),
        format_job_exec=lambda job: "snakemake --target-jobs member", report_job_error=reports.append,
        report_job_submission=lambda info: reports.append(("submitted", info.job)),
        report_job_success=lambda info: reports.append(("done", info.job)))
    member = _Job({"gpu": 1, "_cores": 1})
    member.threads = 1
    step_plugin.Executor.run_job(executor, member)  # returns while its step runs
    time.sleep(0.2)
    assert reports == [("submitted", member)] and "--gpus=1 --overlap" in _Step.calls[-1]
    step_done.set()
    deadline = time.monotonic() + 5
    while len(reports) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reports == [("submitted", member), ("done", member)]


class _Step:
    """A job step's srun process that runs until ``done`` is set."""

    calls: list[str] = []

    def __init__(self, call: str, done: threading.Event):
        self.calls.append(call)
        self._done = done
        self.stdin = None

    def wait(self) -> int:
        self._done.wait(5)
        return 0


@pytest.mark.parametrize(("value", "gpus"), [(None, 1), ("1", 1), ("0", 0)])
def test_gpus_per_job_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str | None, gpus: int):
    if value is None:
        monkeypatch.delenv(experiments.GPUS_PER_JOB_ENV, raising=False)
    else:
        monkeypatch.setenv(experiments.GPUS_PER_JOB_ENV, value)
    assert experiments.gpus_per_job() == gpus


def _gpu_requests(output: str) -> list[tuple[str, int]]:
    """``(rule, gpu)`` of every job of a dry run that asks for the `gpu` resource."""
    return [(rule, int(gpu)) for rule, gpu in
            re.findall(r"^(?:rule|checkpoint) (\w+):\n(?:    .*\n)*?    resources: [^\n]*\bgpu=(\d+)", output, re.M)]


def test_training_rules_ask_for_gpu_slots_and_none_on_a_cluster_without_gpus(tmp_path):
    """A student asks for one slot of a GPU, the other training jobs for all of a GPU's (COMPRESSLIB_GPU_SLOTS), and
    with COMPRESSLIB_GPUS_PER_JOB=0 every rule that asks for a GPU asks for none; a wrong value of either stops the
    workflow before any job, naming the variable."""
    command = [str(SNAKEMAKE), "-n", "--workflow-profile", "profiles/demo", "--directory", str(tmp_path)]

    def dry_run(**variables: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**os.environ, **variables})

    plain, two_slots, without = dry_run(), dry_run(COMPRESSLIB_GPU_SLOTS="2"), dry_run(COMPRESSLIB_GPUS_PER_JOB="0")
    assert plain.returncode == two_slots.returncode == without.returncode == 0, without.stderr[-3000:]
    asking = _gpu_requests(plain.stdout)
    sharing = {"distill_student", "train_undistilled", "quantize_train", "esnac_full_train"}
    # ESNAC's full trainings join the DAG only once their search has run
    assert len(asking) > 40 and {rule for rule, _ in asking} > sharing - {"esnac_full_train"} | {"train_teacher"}
    assert all(gpu == (1 if rule in sharing else 4) for rule, gpu in asking), asking
    assert sorted(_gpu_requests(two_slots.stdout)) == sorted((rule, min(gpu, 2)) for rule, gpu in asking)
    assert sorted(_gpu_requests(without.stdout)) == sorted((rule, 0) for rule, _ in asking)
    for name, value, message in (("COMPRESSLIB_GPUS_PER_JOB", "2", "must be 1"),
                                 ("COMPRESSLIB_GPU_SLOTS", "0", "must be a whole number of at least 1")):
        wrong = dry_run(**{name: value})
        assert wrong.returncode != 0 and f"{name}={value!r}: {message}" in wrong.stdout + wrong.stderr
