"""Device placement: GPU leases keep concurrent jobs on distinct GPUs, survive killed holders, and fall back to the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from compresslib import devices
from compresslib.devices import lease_slot, place

HOLD_SCRIPT = """
import json, sys, time
from compresslib.devices import lease_slot
keys, lock_dir, hold, out = json.loads(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
with lease_slot(keys, lock_dir, poll_seconds=0.02) as (index, _):
    start = time.time()
    print("leased", flush=True)
    time.sleep(hold)
    end = time.time()
with open(out, "w") as handle:
    json.dump({"index": index, "start": start, "end": end}, handle)
"""


def _holder(keys: list[str], lock_dir: Path, hold: float, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLD_SCRIPT, json.dumps(keys), str(lock_dir), str(hold), str(out)],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)


def test_concurrent_jobs_never_share_a_slot(tmp_path: Path):
    """Six jobs, two GPUs: at most two hold a lease at a time, never two on the same GPU, all of them finish."""
    keys = ["GPU-aaaa", "GPU-bbbb"]
    processes = [_holder(keys, tmp_path / "locks", 0.4, tmp_path / f"job{n}.json") for n in range(6)]
    for process in processes:
        assert process.wait(timeout=60) == 0
    spans = [json.loads((tmp_path / f"job{n}.json").read_text()) for n in range(6)]
    assert {span["index"] for span in spans} == {0, 1}
    for index in (0, 1):
        held = sorted((span["start"], span["end"]) for span in spans if span["index"] == index)
        assert all(earlier[1] <= later[0] for earlier, later in zip(held, held[1:])), held
    # the six 0.4 s holds needed at least three rounds of two
    assert max(span["end"] for span in spans) - min(span["start"] for span in spans) >= 3 * 0.4


def test_a_killed_holder_frees_its_gpu(tmp_path: Path):
    lock_dir = tmp_path / "locks"
    holder = _holder(["GPU-aaaa"], lock_dir, 600, tmp_path / "never.json")
    assert holder.stdout.readline().strip() == "leased"
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait()
    start = time.monotonic()
    with lease_slot(["GPU-aaaa"], lock_dir, poll_seconds=0.02) as (index, path):
        assert index == 0 and path == lock_dir / "gpu-GPU-aaaa.lock"
    assert time.monotonic() - start < 1.0  # no waiting: the kernel dropped the dead process's lock
    assert lock_dir.stat().st_mode & 0o7777 == 0o1777  # other users' jobs can lease here too


def test_a_busy_machine_makes_the_job_wait(tmp_path: Path):
    holder = _holder(["GPU-aaaa"], tmp_path / "locks", 0.5, tmp_path / "first.json")
    assert holder.stdout.readline().strip() == "leased"
    with lease_slot(["GPU-aaaa"], tmp_path / "locks", poll_seconds=0.02):
        waited_until = time.time()
    holder.wait(timeout=30)
    assert waited_until >= json.loads((tmp_path / "first.json").read_text())["end"]


def test_no_slots_is_an_error(tmp_path: Path):
    with pytest.raises(ValueError, match="no GPU slots"), lease_slot([], tmp_path):
        pass


def test_without_a_gpu_auto_is_the_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with place("auto", tmp_path) as placement:
        assert placement.device == torch.device("cpu") and placement.lease is None
    assert not (tmp_path / "gpu-locks").exists()


def test_auto_leases_distinct_visible_gpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Two GPUs seen through a fake CUDA runtime: nested jobs get cuda:0 and cuda:1, keyed by UUID."""
    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(uuid=f"uuid-{index}"))
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    monkeypatch.delenv("SLURM_STEP_GPUS", raising=False)
    monkeypatch.setenv("SLURM_JOB_GPUS", "4,6")
    with place("auto", tmp_path) as first, place("auto", tmp_path) as second:
        assert (first.device, second.device) == (torch.device("cuda", 0), torch.device("cuda", 1))
        assert current == [0, 1]
        assert first.describe() == {"device": "cuda:0", "gpu_uuid": "uuid-0", "gpu_lease": str(tmp_path / "gpu-uuid-0.lock"),
                                    "cuda_visible_devices": "4,6", "slurm_gpus": "4,6"}
    with place("auto", tmp_path) as again:  # both leases were returned
        assert again.device == torch.device("cuda", 0)


def test_an_explicit_device_takes_no_lease(tmp_path: Path):
    with place("cpu", tmp_path) as placement:
        assert placement.device == torch.device("cpu") and placement.lease is None and placement.gpu_uuid is None


def test_default_lock_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(devices.GPU_LOCK_DIR_ENV, str(tmp_path / "shared"))
    assert devices.default_lock_dir() == tmp_path / "shared"
    monkeypatch.delenv(devices.GPU_LOCK_DIR_ENV)
    assert devices.default_lock_dir().name == "compresslib-gpu-locks"


def test_a_job_given_a_gpu_without_cuda_runs_on_the_cpu_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                                                    tiny_dataset: Path, tmp_path: Path):
    """What a GPU job scheduled on a node without CUDA (the CI's fake GRES) does: CPU, stated in its record."""
    from compresslib.training.loop import train
    from compresslib.specs.training import build_spec

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    record = train(build_spec({"dataset": "synthetic", "model": "demo_conv_student1", "epochs": 1, "batch_size": 128,
                               "lr": 0.05, "schedule": "constant"}), tiny_dataset, tmp_path / "run")
    hardware = record["hardware"]
    assert (hardware["device"], hardware["device_type"], hardware["cuda_visible_devices"]) == ("cpu", "cpu", "1")
    assert hardware["gpu_lease"] is None and hardware["gpu_uuid"] is None
    assert record["timing"]["sessions"][0]["device"] == "cpu"


def test_the_cpu_evaluates_in_small_batches_and_a_gpu_in_the_configured_ones():
    from compresslib.devices import CPU_EVAL_BATCH, evaluation_batch_size

    assert evaluation_batch_size(1000, torch.device("cpu")) == CPU_EVAL_BATCH == 128
    assert evaluation_batch_size(64, torch.device("cpu")) == 64  # a smaller configured batch is kept
    assert evaluation_batch_size(1000, torch.device("cuda", 0)) == 1000


def test_the_evaluation_batch_changes_no_result():
    from compresslib.data.loader import DeviceLoader
    from compresslib.models import create_model
    from compresslib.training.loop import evaluate

    torch.manual_seed(0)
    model = create_model("demo_conv_student0", num_classes=10)
    images, labels = torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8), torch.randint(0, 10, (300,))
    scores = [evaluate(model, DeviceLoader(images, labels, batch_size=batch, augment=False, shuffle=False,
                                           mean=[0.5] * 3, std=[0.5] * 3)) for batch in (1000, 128, 7)]
    assert scores[0][0] == scores[1][0] == scores[2][0]  # the same correct predictions
    assert scores[0][1] == pytest.approx(scores[1][1], rel=1e-6) == pytest.approx(scores[2][1], rel=1e-6)
