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

import pytest
import snakemake_executor_plugin_slurm as slurm_plugin
from snakemake.iocontainers import ResourceList

from compresslib import experiments
from compresslib.slurm import job_state, node_names, sequential_request
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


def test_a_packed_job_asks_for_its_largest_member_and_their_summed_time():
    members = [{"gpu": 1, "mem_mb": 1000, "runtime": 120, "_cores": 4, "gpu_model": "a100"},
               {"gpu": 1, "mem_mb": 3000, "runtime": 60, "_cores": 2, "tmpdir": "/tmp"}]
    assert sequential_request(members) == {"gpu": 1, "mem_mb": 3000, "runtime": 180, "_cores": 4}


def test_the_adapter_is_on_for_the_pinned_plugin():
    assert slurm_plugin.compresslib_adapted


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


def test_a_group_asks_slurm_for_one_gpu_and_its_members_summed_time():
    member = {"gpu": 1, "mem_mb": 1000, "runtime": 2, "_cores": 1, "_nodes": 1}
    group = _Job({**member, "gpu": 2, "mem_mb": 2000, "_cores": 2}, [_Job(member), _Job(member)])  # Snakemake's sum
    packed = ADAPTER["PackedJob"](group)
    request = (packed.resources["gpu"], packed.resources["runtime"], packed.resources["mem_mb"], packed.threads)
    assert request == (1, 4, 1000, 1)
    assert packed.name == "students"
    assert slurm_plugin.set_gres_string(group).strip() == "--gpus=1"
    assert slurm_plugin.set_gres_string(_Job(member)).strip() == "--gpus=1"


@pytest.mark.parametrize(("value", "gpus"), [(None, 1), ("1", 1), ("0", 0)])
def test_gpus_per_job_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str | None, gpus: int):
    if value is None:
        monkeypatch.delenv(experiments.GPUS_PER_JOB_ENV, raising=False)
    else:
        monkeypatch.setenv(experiments.GPUS_PER_JOB_ENV, value)
    assert experiments.gpus_per_job() == gpus


def test_a_cluster_without_gpus_asks_for_none_in_every_training_rule(tmp_path):
    """COMPRESSLIB_GPUS_PER_JOB=0 reaches every rule that asks for a GPU; any other value than 0 or 1 stops the
    workflow before any job, naming the variable."""
    command = [str(SNAKEMAKE), "-n", "--workflow-profile", "profiles/demo", "--directory", str(tmp_path)]
    plain = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    without = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                             env={**os.environ, experiments.GPUS_PER_JOB_ENV: "0"})
    assert plain.returncode == without.returncode == 0, without.stderr[-3000:]
    asking = re.findall(r"resources: .*\bgpu=(\d)", plain.stdout + plain.stderr)
    assert len(asking) > 40 and set(asking) == {"1"}  # the demo's training jobs
    assert re.findall(r"resources: .*\bgpu=(\d)", without.stdout + without.stderr) == ["0"] * len(asking)
    wrong = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                           env={**os.environ, experiments.GPUS_PER_JOB_ENV: "2"})
    assert wrong.returncode != 0 and "COMPRESSLIB_GPUS_PER_JOB='2': must be 1" in wrong.stdout + wrong.stderr
