"""Device placement: ``auto`` leases slots of a GPU (faked here) and names them in the record; given GPUs that torch
cannot use stop the job with the reason; the CPU is where no GPU was given, or where it was asked for. Leases
themselves: tests/test_gpu_slots.py."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from compresslib import devices
from compresslib.devices import CudaStatus, DeviceChoice, GPUUnavailable, cuda_status, place
from compresslib.gpu_slots import DEVICE_ENV, JOB_SLOTS_ENV, SLOTS_ENV

SCHEDULER_ENV = ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "SLURM_GPUS_ON_NODE", SLOTS_ENV,
                 JOB_SLOTS_ENV, DEVICE_ENV)
CPU_ON_PURPOSE = "(to train on the CPU on purpose: device=cpu, or COMPRESSLIB_DEVICE=cpu for every job)"
DRIVER_TOO_OLD = ("CUDA initialization: The NVIDIA driver on your system is too old (found version 12020). Please "
                  "update your GPU driver by downloading and installing a new version from the URL: "
                  "http://www.nvidia.com/Download/index.aspx Alternatively, go to: https://pytorch.org to install a "
                  "PyTorch version that has been compiled with your version of the CUDA driver. (Triggered "
                  "internally at /pytorch/c10/cuda/CUDAFunctions.cpp:119.)")


@pytest.fixture(autouse=True)
def no_gpus_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a job no scheduler gave GPUs, whatever machine runs the tests."""
    for name in SCHEDULER_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def two_fake_gpus(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Two GPUs seen through a fake CUDA runtime; returns the devices ``torch.cuda.set_device`` was given."""
    current: list[int] = []
    monkeypatch.setattr(devices, "cuda_status", lambda: CudaStatus(2, None))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(uuid=f"uuid-{index}"))
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    return current


def no_usable_gpu(monkeypatch: pytest.MonkeyPatch, reason: str = "torch 2.x is a CPU build, without CUDA") -> None:
    monkeypatch.setattr(devices, "cuda_status", lambda: CudaStatus(0, reason))


def test_auto_leases_slots_of_the_gpus_and_names_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                     two_fake_gpus: list[int]):
    """One-slot jobs spread over two GPUs of two slots each; the record names each job's GPU and slot."""
    monkeypatch.setenv(SLOTS_ENV, "2")
    monkeypatch.setenv(JOB_SLOTS_ENV, "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    monkeypatch.setenv("SLURM_JOB_GPUS", "4,6")
    with place("auto", tmp_path) as first, place("auto", tmp_path) as second, place("auto", tmp_path) as third:
        assert [placement.device for placement in (first, second, third)] == \
            [torch.device("cuda", 0), torch.device("cuda", 1), torch.device("cuda", 0)]
        assert two_fake_gpus == [0, 1, 0]
        assert third.describe() == {"device": "cuda:0", "device_choice": "auto: leased GPU slots",
                                    "gpu_uuid": "uuid-0", "gpu_slots": [1], "slots_per_gpu": 2,
                                    "gpu_lock_dir": str(tmp_path), "cuda_visible_devices": "4,6",
                                    "slurm_gpus": "4,6"}
        assert third.lease.paths == (tmp_path / "gpu-uuid-0-slot1.lock",)
    monkeypatch.delenv(JOB_SLOTS_ENV)  # a job run by hand: a whole GPU
    with place("auto", tmp_path) as whole:  # every lease was returned
        assert (whole.device, whole.lease.slots, whole.describe()["gpu_slots"]) == (torch.device("cuda", 0), (0, 1),
                                                                                     [0, 1])


def test_an_explicit_gpu_takes_no_lease_and_is_named(tmp_path: Path, two_fake_gpus: list[int]):
    with place("cuda:1", tmp_path) as placement:
        assert placement.describe() | {"cuda_visible_devices": None} == {
            "device": "cuda:1", "device_choice": "requested", "gpu_uuid": "uuid-1", "gpu_slots": None,
            "slots_per_gpu": None, "gpu_lock_dir": None, "cuda_visible_devices": None, "slurm_gpus": None}
    with pytest.raises(GPUUnavailable, match=r"^device=cuda:2: torch sees 2 GPU\(s\), cuda:0 to cuda:1$"), \
            place("cuda:2", tmp_path):
        pass
    assert list(tmp_path.iterdir()) == []


def test_bad_slots_stop_the_job_before_it_leases(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  two_fake_gpus: list[int]):
    monkeypatch.setenv(JOB_SLOTS_ENV, "5")
    with pytest.raises(ValueError, match=r"^COMPRESSLIB_JOB_GPU_SLOTS='5': must be a whole number from 0 to 4"), \
            place("auto", tmp_path):
        pass


@pytest.mark.parametrize("variable, value", [("CUDA_VISIBLE_DEVICES", "0,1"), ("SLURM_JOB_GPUS", "3"),
                                             ("SLURM_GPUS_ON_NODE", "1")])
def test_gpus_given_but_unusable_stop_the_job_saying_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                         variable: str, value: str):
    monkeypatch.setenv(variable, value)
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)  # torch's own facts: a CPU build
    with pytest.raises(GPUUnavailable) as raised, place("auto", tmp_path):
        pass
    assert str(raised.value) == (f"device=auto: the job was given GPUs ({variable}={value!r}) but torch cannot use "
                                 f"any: torch {torch.__version__} is a CPU build, without CUDA {CPU_ON_PURPOSE}")


def test_a_driver_too_old_is_quoted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """What torch says of a driver too old for its CUDA, on one line, is the job's error."""
    def too_old() -> bool:
        warnings.warn(DRIVER_TOO_OLD, UserWarning)
        return False

    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", too_old)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    with pytest.raises(GPUUnavailable) as raised, place("cuda", tmp_path):
        pass
    assert str(raised.value) == ("device=cuda: the job was given GPUs (CUDA_VISIBLE_DEVICES='2') but torch cannot use "
                                 f"any: {DRIVER_TOO_OLD.split(' (Triggered')[0]} {CPU_ON_PURPOSE}")


def test_without_a_warning_the_reason_is_torchs_initialisation_error(monkeypatch: pytest.MonkeyPatch):
    """torch warns once per process; later, and for GPUs it cannot see, ``torch.cuda.init`` says why."""
    def no_gpu() -> None:
        raise RuntimeError("No CUDA GPUs are available")

    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "init", no_gpu)
    assert cuda_status() == CudaStatus(0, "No CUDA GPUs are available")


def test_gpus_torch_can_use_are_counted(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert cuda_status() == CudaStatus(3, None)


def test_without_gpus_given_auto_is_the_cpu_and_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    no_usable_gpu(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # hidden on purpose: no GPU given
    with place("auto", tmp_path) as placement:
        assert placement.device == torch.device("cpu") and placement.lease is None
        assert placement.describe()["device_choice"] == DeviceChoice.NO_GPU_GIVEN
        assert DeviceChoice.NO_GPU_GIVEN == "auto: CPU, no GPU given to the job"
    assert list(tmp_path.iterdir()) == []


def test_a_job_the_workflow_asked_no_gpu_for_trains_on_the_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                two_fake_gpus: list[int]):
    """COMPRESSLIB_GPUS_PER_JOB=0 makes the rules ask for no GPU slots; the job then takes none, also where it sees
    GPUs, and says why it runs on the CPU."""
    monkeypatch.setenv("COMPRESSLIB_JOB_GPU_SLOTS", "0")
    with place("auto", tmp_path) as placement:
        assert placement.device == torch.device("cpu") and placement.lease is None
        assert placement.describe()["device_choice"] == "auto: CPU, the workflow asked for no GPU"
    assert list(tmp_path.iterdir()) == []


def test_the_cpu_asked_for_is_recorded_as_asked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    no_usable_gpu(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # given a GPU, but the job asked for the CPU
    with place("cpu", tmp_path) as placement:
        assert placement.describe() | {"cuda_visible_devices": None} == {
            "device": "cpu", "device_choice": "requested", "gpu_uuid": None, "gpu_slots": None, "slots_per_gpu": None,
            "gpu_lock_dir": None, "cuda_visible_devices": None, "slurm_gpus": None}


def test_the_environment_chooses_the_device_of_every_auto_job(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                              two_fake_gpus: list[int]):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    with place("auto", tmp_path) as placement:
        assert (placement.device, placement.describe()["device_choice"]) == (torch.device("cpu"),
                                                                             "requested by COMPRESSLIB_DEVICE")
    with place("cuda:1", tmp_path) as placement:  # a job's own device comes first
        assert (placement.device, placement.choice) == (torch.device("cuda", 1), DeviceChoice.REQUESTED)
    monkeypatch.setenv(DEVICE_ENV, "cuda:1")
    with place("auto", tmp_path) as placement:
        assert (placement.device, placement.gpu_uuid, placement.lease) == (torch.device("cuda", 1), "uuid-1", None)
    assert two_fake_gpus == []  # no lease: no GPU was chosen for the job
    no_usable_gpu(monkeypatch)
    with pytest.raises(GPUUnavailable, match=r"^COMPRESSLIB_DEVICE=cuda:1: the job was given GPUs"), \
            place("auto", tmp_path):
        pass


def test_a_gpu_asked_for_without_one_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    no_usable_gpu(monkeypatch, "Found no NVIDIA driver on your system.")
    with pytest.raises(GPUUnavailable, match=r"^device=cuda:0: the job asked for a GPU but torch cannot use any: "
                                             r"Found no NVIDIA driver on your system\."), place("cuda:0", tmp_path):
        pass


def test_default_lock_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(devices.GPU_LOCK_DIR_ENV, str(tmp_path / "shared"))
    assert devices.default_lock_dir() == tmp_path / "shared"
    monkeypatch.delenv(devices.GPU_LOCK_DIR_ENV)
    assert devices.default_lock_dir().name == "compresslib-gpu-locks"


def _train_on(tiny_dataset: Path, run_dir: Path) -> dict:
    from compresslib.specs.training import build_spec
    from compresslib.training.loop import train

    return train(build_spec({"dataset": "synthetic", "model": "demo_conv_student1", "epochs": 1, "batch_size": 128,
                             "lr": 0.05, "schedule": "constant"}), tiny_dataset, run_dir)


def test_a_training_job_given_a_gpu_torch_cannot_use_stops_before_training(monkeypatch: pytest.MonkeyPatch,
                                                                            tiny_dataset: Path, tmp_path: Path):
    """A GPU job scheduled where torch has no CUDA (the CI's fake GPUs) stops at once, with no record, instead of
    training on the CPU; with the CPU chosen for every job it trains there, and its record says so."""
    monkeypatch.setenv("SLURM_STEP_GPUS", "1")
    no_usable_gpu(monkeypatch)
    with pytest.raises(GPUUnavailable, match=r"given GPUs \(SLURM_STEP_GPUS='1'\) but torch cannot use any"):
        _train_on(tiny_dataset, tmp_path / "run")
    assert not (tmp_path / "run" / "record.json").exists()
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    hardware = _train_on(tiny_dataset, tmp_path / "run")["hardware"]
    assert (hardware["device"], hardware["device_choice"], hardware["gpu_uuid"], hardware["gpu_slots"],
            hardware["slurm_gpus"]) == ("cpu", "requested by COMPRESSLIB_DEVICE", None, None, "1")
    assert json.loads((tmp_path / "run" / "record.json").read_text())["hardware"] == hardware


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
