"""Faults a job meets on a real cluster: damaged input files, damaged state files, a second process in the run
folder, a finished run in it, temporary files of killed writers, a full disk and an unwritable folder. Each is
refused before any work, or reported in one line naming the file and the cause, and never leaves a folder that
looks finished."""

from __future__ import annotations

import errno
import hashlib
import io
import itertools
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from compresslib.io import DamagedFile, atomic_path, checksum_path, load_torch, save_torch, verified_sha256
from compresslib.runs import folder
from compresslib.runs.checkpoint import load_checkpoint, save_checkpoint
from compresslib.runs.folder import FinishedRunExists, RunFolderInUse
from compresslib.runs.lifecycle import Run
from compresslib.specs.esnac import SearchSpec
from compresslib.specs.training import PostTrainingSpec, build_spec
from compresslib.specs.translation import build_translation_spec
from compresslib.training import loop
from compresslib.training.loop import train
from compresslib.training.post_training import post_training_quantize
from compresslib.training.teacher_views import make_teacher_views
from compresslib.translation.targets import translate_split
from compresslib.translation.train import train_translation
from compresslib.esnac.search import search
from conftest import REPO, train_script_command

TINY = {"dataset": "synthetic", "model": "demo_conv_student1", "epochs": 2, "batch_size": 64, "lr": 0.05,
        "eval_batch_size": 256, "threads": 1, "device": "cpu"}
STUDENT = TINY | {"kind": "distill", "kd": {"weight": 0.7}}

pytestmark = pytest.mark.usefixtures("one_thread")


def _made_by_a_job(path: Path, content: bytes) -> Path:
    with atomic_path(path, checksum=True) as tmp:
        tmp.write_bytes(content)
    return path


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _mismatch(path: Path, recorded: bytes, found: bytes) -> str:
    """The start of the refusal of ``path``: both checksums and the job that recorded one."""
    return (f"^{re.escape(str(path))} is not the file its job wrote: sha256 {hashlib.sha256(found).hexdigest()}, but "
            f"`.+` recorded {hashlib.sha256(recorded).hexdigest()}; it was damaged or replaced since: rerun that job")


# Every job kind and the files it reads that other jobs made: (job, its input roles, a call with those files).
# The files are not even torch files: a job that loaded one before checking it would fail with another message.
JOBS = {
    "train (distil, cached views)": (("data", "teacher", "views"), lambda files, run_dir: train(
        build_spec(STUDENT | {"teacher_outputs": "cached"}), files["data"], run_dir, teacher_path=files["teacher"],
        teacher_views_path=files["views"])),
    "train (differentiable quantization)": (("data", "init"), lambda files, run_dir: train(
        build_spec(TINY | {"kind": "quantize", "kd": {"weight": 0.7}, "quant": {"method": "dq"}}), files["data"],
        run_dir, teacher_path=files["init"], init_path=files["init"])),
    "post-training quantization": (("data", "model"), lambda files, run_dir: post_training_quantize(
        PostTrainingSpec(device="cpu"), files["model"], files["data"], run_dir)),
    "teacher views": (("teacher", "data"), lambda files, run_dir: make_teacher_views(
        files["teacher"], files["data"], run_dir / "views.pt", device="cpu")),
    "translate (sequence-KD targets)": (("model", "corpus"), lambda files, run_dir: translate_split(
        files["model"], files["corpus"], "train", text_path=None, ids_path=run_dir / "targets.pt", device="cpu")),
    "translation training": (("corpus", "teacher", "targets"), lambda files, run_dir: train_translation(
        build_translation_spec({"corpus": "synthetic_translation", "model": "lstm_nmt", "kind": "quantize",
                                "quant": {"method": "qd"}, "kd": {"weight": 0.5}, "device": "cpu"}),
        files["corpus"], run_dir, teacher_path=files["teacher"], targets_path=files["targets"])),
    "ESNAC search": (("data", "teacher"), lambda files, run_dir: search(
        SearchSpec(dataset="synthetic", device="cpu"), files["data"], files["teacher"], run_dir)),
}


@pytest.mark.parametrize("job", JOBS)
def test_every_job_refuses_a_damaged_input_before_any_work(job: str, tmp_path: Path):
    roles, run = JOBS[job]
    for damaged in roles:
        files = {role: _made_by_a_job(tmp_path / role / "file.pt", f"{role} bytes".encode()) for role in roles}
        _flip_byte(files[damaged], 3)
        run_dir = tmp_path / "run"
        with pytest.raises(DamagedFile, match=_mismatch(files[damaged], f"{damaged} bytes".encode(),
                                                        files[damaged].read_bytes())):
            run(files, run_dir)
        assert not run_dir.exists(), f"{job} made its folder before checking {damaged}"
        shutil.rmtree(tmp_path / damaged)


def test_a_file_without_a_recorded_checksum_is_refused_with_the_remedies(tmp_path: Path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"made by hand")
    missing = re.escape(f"{path} has no recorded checksum ({path}.sha256 is missing")
    with pytest.raises(DamagedFile, match=missing) as error:
        verified_sha256(path)
    assert f"snakemake -f {path}" in str(error.value) and f"sha256sum {path} > {path}.sha256" in str(error.value)
    # the remedy for a trusted file is the standard tool: its output is a checksum file
    with open(checksum_path(path), "w") as handle:
        subprocess.run(["sha256sum", str(path)], stdout=handle, check=True)
    assert verified_sha256(path) == hashlib.sha256(b"made by hand").hexdigest()


def test_the_checksum_file_gives_the_command_that_made_the_file_and_sha256sum_checks_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "argv", ["workflow_scripts/train.py", "--run-dir", "results/teachers/x/seed1"])
    path = tmp_path / "model.pt"
    save_torch(path, {"w": torch.ones(3)}, checksum=True)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    made_by = f"`{Path(sys.executable).name} workflow_scripts/train.py --run-dir results/teachers/x/seed1`"
    assert checksum_path(path).read_text() == f"# made by {made_by}\n{sha}  model.pt\n"
    assert subprocess.run(["sha256sum", "-c", "model.pt.sha256"], cwd=tmp_path, capture_output=True).returncode == 0
    _flip_byte(path, len(path.read_bytes()) // 2)
    with pytest.raises(DamagedFile, match=f"but {re.escape(made_by)} recorded {sha}"):
        verified_sha256(path)


def test_an_input_is_hashed_once_per_job_however_often_it_is_asked_for(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch):
    path = _made_by_a_job(tmp_path / "dataset.pt", b"a prepared dataset")
    hashed = []
    original = sys.modules["compresslib.io"].sha256_file
    monkeypatch.setattr("compresslib.io.sha256_file", lambda p, *a: hashed.append(Path(p)) or original(p, *a))
    run = Run(tmp_path / "run", identity={}, outputs=())
    run.check_inputs(data=path, init=path)
    run.input_file(path, rows=3)
    verified_sha256(path)
    assert hashed == [path]


def test_every_flipped_bit_of_a_checkpoint_is_refused_or_harmless(tmp_path: Path):
    """A checkpoint carries its own checksums (one CRC32 per member): no single flipped bit loads changed state."""
    state = {"identity": {"lr": 0.1}, "sessions": [], "model": {"w": torch.randn(8, 3)}, "next_epoch": 2}
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, state)
    intact = path.read_bytes()
    outcomes = {"refused": 0, "same": 0}
    for offset, bit in itertools.product(range(len(intact)), (0x01, 0x10, 0x80)):
        damaged = bytearray(intact)
        damaged[offset] ^= bit
        path.write_bytes(bytes(damaged))
        try:
            loaded = load_checkpoint(path)
        except DamagedFile as error:
            assert str(error).startswith(f"{path} is ") and "delete it to start the run over" in str(error)
            outcomes["refused"] += 1
            continue
        # a flip in padding or in metadata nothing reads
        assert torch.equal(loaded.pop("model")["w"], state["model"]["w"]), (offset, bit)
        assert loaded == {"format": 3, **{k: v for k, v in state.items() if k != "model"}}, (offset, bit)
        outcomes["same"] += 1
    assert outcomes["refused"] > len(intact)  # most flips: about 60 % of them


def test_a_truncated_candidate_file_is_refused_naming_it(tmp_path: Path):
    path = tmp_path / "candidates" / "7.pt"
    save_torch(path, {"w": torch.randn(100)})
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DamagedFile, match=f"^{re.escape(str(path))} is not a readable ESNAC candidate"):
        load_torch(path, check=True, what="ESNAC candidate's weights")


def test_a_second_process_in_a_run_folder_is_refused_naming_the_holder(tmp_path: Path):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, pathlib\nfrom compresslib.runs.folder import owned_folder\n"
         f"with owned_folder(pathlib.Path({str(run_dir)!r})):\n    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline() == "held\n"
        run = Run(run_dir, identity={}, outputs=())
        with pytest.raises(RunFolderInUse, match=rf"^{re.escape(str(run_dir))} is in use by another run \(pid "
                                                 rf"{holder.pid} on host {re.escape(os.uname().nodename)} since "):
            with run.owned():
                pass
    finally:
        holder.communicate("")
    assert holder.returncode == 0 and not (run_dir / folder.LOCK_NAME).exists()
    with Run(run_dir, identity={}, outputs=()).owned():  # free again
        assert (run_dir / folder.LOCK_NAME).exists()


def test_a_new_run_clears_the_temporary_files_killed_writers_left(tmp_path: Path):
    run_dir = tmp_path / "run"
    leftovers = [run_dir / ".checkpoint.pt.k2j3.tmp", run_dir / ".model.pt.x9.tmp", run_dir / ".model.pt.sha256.a.tmp",
                 run_dir / "candidates" / ".4.pt.q1.tmp"]
    others = [run_dir / ".views.pt.abc.tmp", run_dir / "final-0" / ".model.pt.z.tmp"]  # other jobs' files
    for path in leftovers + others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    with Run(run_dir, identity={}, outputs=("model.pt",), work=("candidates",)).owned():
        assert [path for path in leftovers + others if path.exists()] == others


def test_a_finished_run_is_replaced_only_when_told_and_never_left_mixed(tiny_dataset: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    first = train(build_spec(TINY), tiny_dataset, run_dir)
    with pytest.raises(FinishedRunExists, match=rf"^{re.escape(str(run_dir))} holds a finished run .*pass --overwrite"):
        train(build_spec(TINY | {"lr": 0.1}), tiny_dataset, run_dir)
    assert (run_dir / "record.json").read_text() and first["spec"]["lr"] == 0.05

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the job dies between its output writes
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "write_history", killed)
        with pytest.raises(KeyboardInterrupt):
            train(build_spec(TINY | {"lr": 0.1}), tiny_dataset, run_dir, overwrite=True)
    assert not (run_dir / "record.json").exists()  # model.pt is the new run's, history.csv gone: nothing finished
    assert not (run_dir / "history.csv").exists()
    second = train(build_spec(TINY | {"lr": 0.1}), tiny_dataset, run_dir)  # resumes the unfinished one
    assert second["spec"]["lr"] == 0.1 and second["timing"]["resumed_from_epoch"] == 2


def test_a_full_disk_names_the_file_and_the_cause_and_leaves_no_temporary(tiny_dataset: Path, tmp_path: Path):
    """A file-size limit stands in for a full disk: the write fails half-way with an OS error, inside torch's writer
    (checkpoint) or Python's (record)."""
    run_dir = tmp_path / "run"
    command = train_script_command(tiny_dataset, run_dir, TINY)
    limited = subprocess.run(command, capture_output=True, text=True,
                             preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000)))
    last = limited.stderr.strip().splitlines()[-1]
    assert limited.returncode == 1
    assert last.endswith(f"OSError: [Errno {errno.EFBIG}] File too large: '{run_dir / 'checkpoint.pt'}'"), last
    # no temporary, no lock: the folder holds the failed process as a session of the run, and nothing else
    assert sorted(path.name for path in run_dir.iterdir()) == ["sessions.json"]
    record = tmp_path / "record.json"
    limited = subprocess.run([sys.executable, "-c", f"from compresslib.io import write_json\n"
                              f"write_json({str(record)!r}, {{'x': 'y' * 5000}})"], capture_output=True, text=True,
                             cwd=REPO, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000)))
    assert limited.stderr.strip().splitlines()[-1] == f"OSError: [Errno {errno.EFBIG}] File too large: '{record}'"
    assert not [path for path in tmp_path.iterdir() if path.suffix in (".tmp", ".json")]


def test_an_unwritable_run_folder_fails_before_the_first_epoch(tiny_dataset: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch):
    run_dir = tmp_path / "run"
    real_open = os.open

    def read_only(path, flags, *args):
        if Path(path).parent == run_dir and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args)
    monkeypatch.setattr(folder.os, "open", read_only)
    monkeypatch.setattr(loop, "train_epoch", lambda *args, **kwargs: pytest.fail("an epoch ran"))
    with pytest.raises(OSError, match=re.escape(f"[Errno {errno.EROFS}] cannot write in the run folder: Read-only "
                                                f"file system: '{run_dir}'")):
        train(build_spec(TINY), tiny_dataset, run_dir)


def test_torch_records_the_crc_the_checkpoint_check_reads():
    """The check relies on torch writing one CRC32 per member; a torch that stopped would fail here first."""
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(4)}, buffer)
    with zipfile.ZipFile(buffer) as archive:
        assert all(info.CRC != 0 for info in archive.infolist() if info.file_size)


def test_a_damaged_archive_is_reported_as_the_archives_fault_before_extraction(tmp_path: Path):
    from compresslib.data.datasets import prepare_dataset
    from compresslib.data.download import ARCHIVES, ChecksumError

    archive = tmp_path / "archive.tar.gz"
    archive.write_bytes(b"a damaged download")
    found = hashlib.md5(b"a damaged download").hexdigest()
    with pytest.raises(ChecksumError, match=f"^{re.escape(str(archive))} has md5 {found}, expected "
                                            f"{ARCHIVES['cifar10'].md5}: the archive is corrupt"):
        prepare_dataset("cifar10", tmp_path / "dataset.pt", archive=archive)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["archive.tar.gz"]


def test_a_job_stopped_by_sigterm_cleans_up_and_keeps_its_last_epoch(tiny_dataset: Path, tmp_path: Path):
    """What a scheduler does to a job it stops: SIGTERM, then (much later) SIGKILL."""
    run_dir = tmp_path / "run"
    job = subprocess.Popen(train_script_command(tiny_dataset, run_dir, TINY | {"epochs": 30}), stderr=subprocess.PIPE,
                           text=True)
    while job.poll() is None and not (run_dir / "checkpoint.pt").exists():
        time.sleep(0.02)
    job.send_signal(signal.SIGTERM)
    _, log = job.communicate(timeout=60)
    assert job.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM; a rerun resumes from the last saved state" in log
    # no lock, no temporary file
    assert sorted(path.name for path in run_dir.iterdir()) == ["checkpoint.pt", "sessions.json"]
    assert load_checkpoint(run_dir / "checkpoint.pt")["next_epoch"] >= 1


def test_a_job_killed_in_its_first_epoch_is_a_session_of_the_run_and_its_lines_stay_in_the_log(tiny_dataset: Path,
                                                                                               tmp_path: Path):
    """SIGKILL before the run saved any state (here: as its first epoch starts); Snakemake deletes the log, and the
    rerun trains the run from its start. Both processes are sessions of the record, and the log holds both."""
    run_dir, log = tmp_path / "run", tmp_path / "logs" / "seed1.log"
    log.parent.mkdir()
    command = train_script_command(tiny_dataset, run_dir, TINY)
    killed_in_first_epoch = ("import os, runpy, signal, sys\n"
                             "from compresslib.training import loop\n"
                             "loop.train_epoch = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)\n"
                             f"sys.argv = {command[1:]!r}\n"
                             "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    for attempt in ([sys.executable, "-c", killed_in_first_epoch], command):
        log.unlink(missing_ok=True)  # what Snakemake does before each attempt of a job
        with open(log, "a") as handle:  # the rules' `>> {log} 2>&1`
            finished = subprocess.run(attempt, stdout=handle, stderr=handle)
        assert finished.returncode == (-signal.SIGKILL if attempt is not command else 0), log.read_text()
        if attempt is not command:
            assert sorted(path.name for path in run_dir.iterdir()) == [".lock", "sessions.json"]  # no state yet
    sessions = json.loads((run_dir / "record.json").read_text())["timing"]["sessions"]
    assert [session["start_epoch"] for session in sessions] == [0, 0]
    assert sessions[0]["started_at"] <= sessions[1]["started_at"]
    text = log.read_text()
    headers = [index for index, line in enumerate(text.splitlines()) if line.startswith("=== attempt started ")]
    assert len(headers) == 2 and headers[0] == 0 and "device cpu" in "\n".join(text.splitlines()[:headers[1]])
    assert text.count("epoch 1/2") == 1 and "epoch 2/2" in text  # only the second attempt finished an epoch
    assert sorted(path.name for path in log.parent.iterdir()) == ["seed1.log"]
    assert "sessions.json" not in {path.name for path in run_dir.iterdir()}


def test_a_rewritten_file_and_a_prepared_dataset_clear_what_their_killed_writers_left(tmp_path: Path):
    """Jobs without a run folder (views tables, targets, prepared data, downloads) leave temporaries when killed;
    the next write of the same file removes them."""
    from compresslib.data.datasets import prepare_dataset

    views = tmp_path / "views.pt"
    (tmp_path / ".views.pt.k1l2.tmp").write_bytes(b"half a table")
    scratch = tmp_path / ".dataset.pt.prepare-x7"  # a killed preparation's unpacked archive
    (scratch / "extracted").mkdir(parents=True)
    save_torch(views, {"logits": torch.zeros(2)}, checksum=True)
    prepare_dataset("synthetic", tmp_path / "dataset.pt", synthetic={"train_size": 64, "test_size": 32, "seed": 1})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dataset.pt", "dataset.pt.sha256", "views.pt",
                                                                "views.pt.sha256"]
