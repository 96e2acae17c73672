"""GPU slots: the environment that sets them, and leases of them by concurrent processes on fake GPUs (2 GPUs x 3
slots): a slot is never held twice, a whole-GPU job waits for every slot of its GPU and is not starved by one-slot
jobs, jobs spread over the GPUs, and a killed holder frees what it held."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from compresslib.config import ConfigError
from compresslib.devices import lease_slots
from compresslib.gpu_slots import (DEFAULT_SLOTS, DEVICE_ENV, JOB_SLOTS_ENV, SLOTS_ENV, device_override, gpus_given,
                                   job_slots, slots_per_gpu)

KEYS = ["GPU-aaaa", "GPU-bbbb"]
SLOTS = 3
POLL = 0.01
FORK = multiprocessing.get_context("fork")  # the test's torch is imported already: no child imports it again


# ---- the environment ----------------------------------------------------------------------------------------------

def test_unset_slots_are_the_default_and_a_whole_gpu_per_job():
    assert slots_per_gpu({}) == DEFAULT_SLOTS == 4
    assert job_slots({}) == 4
    assert job_slots({SLOTS_ENV: "6"}) == 6  # a job run by hand leases every slot: a whole GPU, as before slots


def test_slots_are_read_from_the_environment():
    assert slots_per_gpu({SLOTS_ENV: "8"}) == 8
    assert job_slots({SLOTS_ENV: "8", JOB_SLOTS_ENV: "1"}) == 1
    assert job_slots({SLOTS_ENV: " 3 ", JOB_SLOTS_ENV: "3"}) == 3
    assert job_slots({JOB_SLOTS_ENV: "0"}) == 0  # the workflow asked for no GPU (COMPRESSLIB_GPUS_PER_JOB=0)
    assert slots_per_gpu(os.environ | {SLOTS_ENV: "2"}) == 2


@pytest.mark.parametrize("environ, message", [
    ({SLOTS_ENV: "0"}, "COMPRESSLIB_GPU_SLOTS='0': must be a whole number of at least 1"),
    ({SLOTS_ENV: "two"}, "COMPRESSLIB_GPU_SLOTS='two': must be a whole number of at least 1"),
    ({SLOTS_ENV: "1.5"}, "COMPRESSLIB_GPU_SLOTS='1.5': must be a whole number of at least 1"),
    ({JOB_SLOTS_ENV: "5"}, "COMPRESSLIB_JOB_GPU_SLOTS='5': must be a whole number from 0 to 4 (the slots of a GPU, "
                           "COMPRESSLIB_GPU_SLOTS)"),
    ({SLOTS_ENV: "2", JOB_SLOTS_ENV: "3"}, "COMPRESSLIB_JOB_GPU_SLOTS='3': must be a whole number from 0 to 2"),
    ({JOB_SLOTS_ENV: "-1"}, "COMPRESSLIB_JOB_GPU_SLOTS='-1': must be a whole number from 0 to 4"),
    ({JOB_SLOTS_ENV: ""}, "COMPRESSLIB_JOB_GPU_SLOTS='': must be a whole number from 0 to 4"),
    ({SLOTS_ENV: "-1", JOB_SLOTS_ENV: "1"}, "COMPRESSLIB_GPU_SLOTS='-1': must be a whole number of at least 1"),
])
def test_bad_slots_are_one_line_naming_the_variable(environ, message):
    with pytest.raises(ConfigError) as raised:
        job_slots(environ)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


@pytest.mark.parametrize("value, device", [(None, None), ("auto", None), ("cpu", "cpu"), ("cuda", "cuda"),
                                           ("cuda:1", "cuda:1")])
def test_the_device_in_place_of_auto(value, device):
    assert device_override({} if value is None else {DEVICE_ENV: value}) == device


@pytest.mark.parametrize("value", ["gpu", "CPU", "cuda:", "cuda:x", ""])
def test_a_bad_device_override_is_one_line(value):
    with pytest.raises(ConfigError, match=f"^COMPRESSLIB_DEVICE={value!r}: must be auto, cpu, cuda or cuda:<index>$"):
        device_override({DEVICE_ENV: value})


@pytest.mark.parametrize("environ, given", [
    ({}, None),
    ({"CUDA_VISIBLE_DEVICES": ""}, None),
    ({"CUDA_VISIBLE_DEVICES": "-1"}, None),
    ({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, None),
    ({"CUDA_VISIBLE_DEVICES": "0,1"}, ("CUDA_VISIBLE_DEVICES", "0,1")),
    ({"CUDA_VISIBLE_DEVICES": "GPU-8f0e"}, ("CUDA_VISIBLE_DEVICES", "GPU-8f0e")),
    ({"SLURM_STEP_GPUS": "2", "SLURM_JOB_GPUS": "2,3"}, ("SLURM_STEP_GPUS", "2")),
    ({"SLURM_JOB_GPUS": "3"}, ("SLURM_JOB_GPUS", "3")),
    ({"SLURM_GPUS_ON_NODE": "0"}, None),
    ({"SLURM_GPUS_ON_NODE": "1"}, ("SLURM_GPUS_ON_NODE", "1")),
    ({"CUDA_VISIBLE_DEVICES": "", "SLURM_JOB_GPUS": "1"}, ("SLURM_JOB_GPUS", "1")),
])
def test_gpus_given_by_the_scheduler(environ, given):
    assert gpus_given(environ) == given


# ---- leases -------------------------------------------------------------------------------------------------------

def _hold(keys: list[str], wanted: int, lock_dir: Path, hold: float, out: Path, leased) -> None:
    """A job: lease ``wanted`` slots, mark each slot held (a second holder of one fails: O_EXCL), hold, report."""
    with lease_slots(keys, SLOTS, wanted, lock_dir, poll_seconds=POLL) as lease:
        start = time.time()
        markers = [out.parent / "held" / path.name for path in lease.paths]
        for marker in markers:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        leased.set()
        time.sleep(hold)
        for marker in markers:
            marker.unlink()
        end = time.time()
    out.write_text(json.dumps({"index": lease.index, "slots": list(lease.slots), "start": start, "end": end}))


def _start(tmp_path: Path, name: str, wanted: int, hold: float, keys: list[str] = KEYS):
    (tmp_path / "held").mkdir(exist_ok=True)
    leased = FORK.Event()
    process = FORK.Process(target=_hold, args=(keys, wanted, tmp_path / "locks", hold, tmp_path / f"{name}.json",
                                               leased))
    process.start()
    return process, leased


def _overlap(first: dict, second: dict) -> bool:
    return first["start"] < second["end"] and second["start"] < first["end"]


def test_concurrent_jobs_never_share_a_slot(tmp_path: Path):
    """Ten jobs at once, two of them wanting a whole GPU: no slot held twice at a time, a whole-GPU job alone on its
    GPU, every job finishes."""
    wanted = [1, 1, 3, 1, 1, 1, 3, 1, 1, 1]
    jobs = [_start(tmp_path, f"job{n}", slots, 0.25) for n, slots in enumerate(wanted)]
    for process, _ in jobs:
        process.join(timeout=30)
        assert process.exitcode == 0
    spans = [json.loads((tmp_path / f"job{n}.json").read_text()) | {"wanted": slots} for n, slots in enumerate(wanted)]
    assert all(len(span["slots"]) == span["wanted"] and set(span["slots"]) <= set(range(SLOTS)) for span in spans)
    assert {span["index"] for span in spans} == {0, 1}
    for first_number, first in enumerate(spans):
        for second in spans[first_number + 1:]:
            if first["index"] == second["index"] and _overlap(first, second):
                assert not set(first["slots"]) & set(second["slots"]), (first, second)
                assert first["wanted"] + second["wanted"] <= SLOTS, (first, second)
    # 14 slot-holds of 0.25 s on 6 slots: at least three rounds; two GPUs used side by side
    elapsed = max(span["end"] for span in spans) - min(span["start"] for span in spans)
    assert 3 * 0.25 <= elapsed < 10


def test_jobs_spread_over_the_gpus(tmp_path: Path):
    """Each one-slot lease goes to the GPU with the most free slots (ties: the first)."""
    with lease_slots(KEYS, SLOTS, 1, tmp_path) as first, lease_slots(KEYS, SLOTS, 1, tmp_path) as second, \
            lease_slots(KEYS, SLOTS, 1, tmp_path) as third, lease_slots(KEYS, SLOTS, 2, tmp_path) as fourth:
        assert [(lease.index, lease.slots) for lease in (first, second, third, fourth)] == \
            [(0, (0,)), (1, (0,)), (0, (1,)), (1, (1, 2))]
        assert first.paths == (tmp_path / "gpu-GPU-aaaa-slot0.lock",)
        assert fourth.paths == (tmp_path / "gpu-GPU-bbbb-slot1.lock", tmp_path / "gpu-GPU-bbbb-slot2.lock")
    with lease_slots(KEYS, SLOTS, 3, tmp_path, poll_seconds=POLL) as whole:  # every lease was returned
        assert (whole.index, whole.slots) == (0, (0, 1, 2))


def test_a_whole_gpu_job_waits_while_any_slot_of_the_gpu_is_held(tmp_path: Path):
    holder, leased = _start(tmp_path, "one-slot", 1, 0.5, keys=KEYS[:1])
    assert leased.wait(timeout=10)
    with lease_slots(KEYS[:1], SLOTS, 2, tmp_path / "locks", poll_seconds=POLL) as beside:
        assert beside.slots == (1, 2)  # what is free is leased at once
    with lease_slots(KEYS[:1], SLOTS, 3, tmp_path / "locks", poll_seconds=POLL) as whole:
        waited_until = time.time()
    holder.join(timeout=10)
    assert whole.slots == (0, 1, 2)
    assert waited_until >= json.loads((tmp_path / "one-slot.json").read_text())["end"]


def test_one_slot_jobs_keep_off_a_gpu_a_whole_gpu_job_waits_for(tmp_path: Path):
    """While a whole-GPU job waits for a GPU, a new one-slot job takes no slot of it, so the stream of small jobs
    cannot starve it; when the waiting job is killed, its claim goes with it."""
    lock_dir = tmp_path / "locks"
    holder, holder_leased = _start(tmp_path, "holder", 1, 60, keys=KEYS[:1])
    assert holder_leased.wait(timeout=10)
    whole, whole_leased = _start(tmp_path, "whole", 3, 60, keys=KEYS[:1])
    _wait_until_claimed(lock_dir / "gpu-GPU-aaaa-waiting.lock")
    small, small_leased = _start(tmp_path, "small", 1, 0, keys=KEYS[:1])
    assert not small_leased.wait(timeout=0.3)  # two slots are free, but kept for the waiting whole-GPU job
    os.kill(whole.pid, signal.SIGKILL)
    assert small_leased.wait(timeout=5)
    small.join(timeout=10)
    assert json.loads((tmp_path / "small.json").read_text())["slots"] == [1]
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(timeout=10)
    assert not whole_leased.is_set()


def _wait_until_claimed(path: Path, timeout: float = 10) -> None:
    """Until another process holds the lock on ``path``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            descriptor = os.open(path, os.O_RDONLY)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            finally:
                os.close(descriptor)
        time.sleep(POLL)
    raise AssertionError(f"nobody locked {path} within {timeout} s")


def test_a_killed_holder_frees_its_slots(tmp_path: Path):
    lock_dir = tmp_path / "locks"
    holder, leased = _start(tmp_path, "never", 3, 600, keys=KEYS[:1])
    assert leased.wait(timeout=10)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(timeout=10)
    start = time.monotonic()
    with lease_slots(KEYS[:1], SLOTS, 3, lock_dir, poll_seconds=POLL) as lease:
        assert lease.slots == (0, 1, 2)
    assert time.monotonic() - start < 1.0  # no waiting: the kernel dropped the dead process's locks
    assert lock_dir.stat().st_mode & 0o7777 == 0o1777  # other users' jobs can lease here too


@pytest.mark.parametrize("keys, wanted, message", [
    ([], 1, "no GPUs to lease slots of"),
    (KEYS, 0, "cannot lease 0 of a GPU's 3 slots"),
    (KEYS, 4, "cannot lease 4 of a GPU's 3 slots"),
])
def test_impossible_leases_are_errors(tmp_path: Path, keys, wanted, message):
    with pytest.raises(ValueError, match=message), lease_slots(keys, SLOTS, wanted, tmp_path):
        pass
