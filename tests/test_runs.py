"""The run lifecycle every job shares: the record's one format, input facts, resume identity and sessions, state
files of another layout, and a finish that writes the record last and clears the work in progress."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from compresslib import provenance
from compresslib.runs import folder
from compresslib.io import atomic_path, load_torch, save_torch
from compresslib.runs.checkpoint import CHECKPOINT_FORMAT, CheckpointMismatch
from compresslib.runs.lifecycle import Run
from compresslib.runs.record import (RECORD_FORMAT, Record, read_record, read_record_list, write_record,
                                     write_record_list)


def _record(**sections: object) -> Record:
    return Record(kind="teacher", run_dir="results/x", labels={"dataset": "synthetic"}, seed=3, spec={"lr": 0.1},
                  spec_hash="abc", sections=dict(sections), timing={"wall_s": 1.0}, hardware={"device": "cpu"},
                  provenance={"command": ["train.py"]})


def test_a_record_writes_its_header_then_its_sections_and_reads_back(tmp_path: Path):
    path = write_record(tmp_path, _record(metrics={"final_test_acc": 0.5}, curve={"epoch": [1]}))
    assert path == tmp_path / "record.json"
    written = json.loads(path.read_text())
    assert list(written) == ["format", "kind", "run_dir", "labels", "seed", "spec", "spec_hash", "metrics", "curve",
                             "timing", "hardware", "provenance"]
    assert written["format"] == RECORD_FORMAT and read_record(path) == written
    with pytest.raises(ValueError, match="may not redefine its own keys \\['seed'\\]"):
        _record(seed=4).to_json()


@pytest.mark.parametrize(("content", "message"), [
    ('{"format": 1, "kind": ', "record is not valid JSON"),
    ("[1, 2]", "record must be a JSON object, got list"),
    ('{"format": 1, "kind": "teacher", "labels": {}}', r"record lacks required keys \['run_dir', 'seed'\]"),
    ('{"format": 2, "kind": "teacher", "run_dir": "x", "labels": {}, "seed": 1}', "record format 2, expected 1"),
])
def test_reading_a_bad_record_names_the_file(tmp_path: Path, content: str, message: str):
    path = tmp_path / "record.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: {message}"):
        read_record(path)


def test_reading_a_missing_record_names_the_file(tmp_path: Path):
    missing = tmp_path / "missing.json"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        read_record(missing)


def _input(path: Path, content: bytes) -> Path:
    """An input file as another job writes it: its checksum beside it."""
    with atomic_path(path, checksum=True) as tmp:
        tmp.write_bytes(content)
    return path


def _run(run_dir: Path, lr: float = 0.1, command: list[str] | None = None) -> Run:
    return Run(run_dir, command=command, identity={"lr": lr}, outputs=("model.pt",), work=("work",))


def _scontrol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    """A fake SLURM ``scontrol`` first on PATH, running ``script`` (sh); returns the file each call's arguments are
    noted in."""
    calls, fake = tmp_path / "scontrol-calls", tmp_path / "bin" / "scontrol"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n{script}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    return calls


def test_the_lifecycle_resumes_its_own_state_and_finishes_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    data = _input(tmp_path / "data.bin", b"12345")
    data_sha256 = hashlib.sha256(b"12345").hexdigest()
    # each process (session) of the run: its start time, and the SLURM job it ran in
    monkeypatch.setattr(provenance, "now_iso", lambda: "2024-01-01T00:00:00+00:00")
    monkeypatch.setenv("SLURM_JOB_ID", "101")
    monkeypatch.setenv("SLURMD_NODENAME", "gpu07")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    _scontrol(tmp_path, monkeypatch, "exit 1")  # no controller to ask: the restart count is unknown
    first = _run(tmp_path / "run", command=["first"])
    first.check_inputs(data=data)
    with first.owned() as finished, first.placed("cpu"):
        assert finished is None and first.resume() is None
        assert first.input_file(data, rows=5) == {"path": str(data), "sha256": data_sha256, "rows": 5}
        first.begin_session(start_epoch=0)
        first.save_state({"next_epoch": 1, "weights": torch.ones(2)})
    (tmp_path / "run" / "work").mkdir()

    other = _run(tmp_path / "run", lr=0.2)
    other.check_inputs(data=data)
    with other.owned(), pytest.raises(CheckpointMismatch, match="lr: 0.1 in the checkpoint, 0.2 requested"):
        other.resume()

    monkeypatch.setattr(provenance, "now_iso", lambda: "2024-01-02T00:00:00+00:00")
    monkeypatch.setenv("SLURM_JOB_ID", "102")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    second = _run(tmp_path / "run", command=["second"])
    second.check_inputs(data=data)
    with second.owned(), second.placed("cpu"):
        state = second.resume()
        assert state["next_epoch"] == 1 and torch.equal(state["weights"], torch.ones(2))
        second.begin_session(start_epoch=1)
        assert [session["start_epoch"] for session in second.sessions] == [0, 1]
        assert all(session["device"] == "cpu" for session in second.sessions)
        save_torch(tmp_path / "run" / "model.pt", {"w": torch.ones(2)}, checksum=True)
        record = second.record(kind="teacher", labels={}, seed=1, spec={}, spec_hash="h", sections={},
                               timing=second.timing(train_s=2.0), data=second.input_file(data))
        written = second.finish(record)
    host = socket.gethostname()
    assert written["timing"]["train_s"] == 2.0 and written["timing"]["sessions"] == [
        {"started_at": "2024-01-01T00:00:00+00:00", "start_epoch": 0, "hostname": host, "slurm_job_id": "101",
         "slurm_node": "gpu07", "slurm_restart_count": None, "device": "cpu"},
        {"started_at": "2024-01-02T00:00:00+00:00", "start_epoch": 1, "hostname": host, "slurm_job_id": "102",
         "slurm_node": "gpu07", "slurm_restart_count": 1, "device": "cpu"}]
    assert written["provenance"]["dataset"] == {"path": str(data), "sha256": data_sha256}
    assert written["provenance"]["started_at"] == "2024-01-02T00:00:00+00:00"
    assert written["provenance"]["code_sha256"] == provenance.code_sha256()
    assert written["provenance"]["command"] == ["second"] and written["hardware"]["device"] == "cpu"
    # no state, work or lock; the finished run's files are also linked in .finished/
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == [
        ".finished", "model.pt", "model.pt.sha256", "record.json"]
    kept = tmp_path / "run" / ".finished"
    files = json.loads((kept / "made-from.json").read_text())["files"]
    assert sorted(files) == ["model.pt", "model.pt.sha256", "record.json"]  # each under its sha256: no second
    assert sorted(path.name for path in kept.iterdir()) == sorted([*files.values(), "made-from.json"])  # record.json
    for name, sha256 in files.items():
        assert (kept / sha256).stat().st_ino == (tmp_path / "run" / name).stat().st_ino
        assert hashlib.sha256((kept / sha256).read_bytes()).hexdigest() == sha256


def _finished_run(run_dir: Path, data: Path) -> dict:
    run = _run(run_dir)
    run.check_inputs(data=data)
    with run.owned(), run.placed("cpu"):
        run.begin_session(start_epoch=0)
        save_torch(run_dir / "model.pt", {"w": torch.arange(3.0)}, checksum=True)
        return run.finish(run.record(kind="teacher", labels={}, seed=1, spec={}, spec_hash="h", sections={},
                                     timing=run.timing(), data=run.input_file(data)))


def _deleted_by_snakemake(run_dir: Path) -> None:
    """What Snakemake does before it runs a job again: its declared outputs go."""
    for name in ("model.pt", "record.json"):
        (run_dir / name).unlink()


def test_a_finished_run_whose_outputs_were_deleted_is_restored_not_run_again(tmp_path: Path):
    run_dir, data = tmp_path / "run", _input(tmp_path / "data.bin", b"12345")
    written = _finished_run(run_dir, data)
    before = (run_dir / "model.pt").stat().st_mtime_ns
    _deleted_by_snakemake(run_dir)
    again = _run(run_dir)
    again.check_inputs(data=data)
    with again.owned() as finished:
        assert finished == written
    assert torch.equal(load_torch(run_dir / "model.pt")["w"], torch.arange(3.0))
    assert (run_dir / "model.pt").stat().st_mtime_ns >= before  # made now, as far as Snakemake can tell
    assert read_record(run_dir / "record.json") == written


@pytest.mark.parametrize("change", ["settings", "input", "code", "damaged"])
def test_a_kept_run_is_not_restored_for_another_job_or_when_damaged(tmp_path: Path, change: str,
                                                                    monkeypatch: pytest.MonkeyPatch):
    run_dir, data = tmp_path / "run", _input(tmp_path / "data.bin", b"12345")
    _finished_run(run_dir, data)
    _deleted_by_snakemake(run_dir)
    lr = 0.2 if change == "settings" else 0.1
    if change == "input":
        data = _input(tmp_path / "data.bin", b"67890")
    if change == "code":
        monkeypatch.setattr(provenance, "code_sha256", lambda: "0" * 64)
    if change == "damaged":
        files = json.loads((run_dir / ".finished" / "made-from.json").read_text())["files"]
        kept = run_dir / ".finished" / files["model.pt"]
        kept.write_bytes(kept.read_bytes()[:-1] + b"x")
    again = _run(run_dir, lr=lr)
    again.check_inputs(data=data)
    with again.owned() as finished:
        assert finished is None
        assert sorted(path.name for path in run_dir.iterdir()) == [".lock", "model.pt.sha256"]  # to be made anew


def test_a_state_file_written_from_other_input_files_is_refused(tmp_path: Path):
    """The input files' checksums are part of the identity a state file must match: a run whose dataset was made
    again (another dataset, its checksum recorded) does not continue the old one's epochs."""
    for content in (b"old", b"new"):
        run = _run(tmp_path / "run")
        run.check_inputs(data=_input(tmp_path / "data.bin", content))
        with run.owned():
            if content == b"old":
                run.save_state({"next_epoch": 1})
            else:
                with pytest.raises(CheckpointMismatch, match=f"data_sha256: '{hashlib.sha256(b'old').hexdigest()}' "
                                                             "in the checkpoint, "):
                    run.resume()


def test_a_state_file_of_another_layout_is_refused_with_a_remedy(tmp_path: Path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save({"format": CHECKPOINT_FORMAT - 1, "identity": {}, "next_epoch": 1}, run_dir / "checkpoint.pt")
    with pytest.raises(ValueError, match=re.escape(f"{run_dir / 'checkpoint.pt'} is not a compresslib checkpoint of "
                                                   f"format {CHECKPOINT_FORMAT}; it was written by another compresslib "
                                                   "version")):
        _run(run_dir).resume()


def test_a_record_list_round_trips_and_a_bad_one_names_the_file(tmp_path: Path):
    path = tmp_path / "records.json"
    write_record_list(path, ["results/a/record.json", Path("results/b/record.json")])
    assert json.loads(path.read_text()) == {"records": ["results/a/record.json", "results/b/record.json"]}
    assert read_record_list(path) == [Path("results/a/record.json"), Path("results/b/record.json")]
    path.write_text('{"records": "results/a/record.json"}')
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: a record list must be"):
        read_record_list(path)


def test_a_job_snakemake_recorded_as_finished_is_run_again_not_restored(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """A rerun on purpose (--forcerun) runs; only a job Snakemake never recorded (stopped or dead while it finished)
    is restored. The metadata path is Snakemake's own, long names split as it splits them."""
    from snakemake.persistence.file import FilePersistence

    monkeypatch.chdir(tmp_path)
    run_dir = Path("results") / ("x" * 120) / ("y" * 120) / "seed1"  # its encoded record path needs two names
    data = _input(tmp_path / "data.bin", b"12345")
    _finished_run(run_dir, data)
    _deleted_by_snakemake(run_dir)
    persistence = type("Stub", (), {"_fetch_max_len": lambda self, subject: os.pathconf(".", "PC_NAME_MAX")})()
    recorded = Path(FilePersistence._record_path(persistence, ".snakemake/metadata", str(run_dir / "record.json")))
    assert len(recorded.parts) == 4 and recorded.parts[2].startswith("@")
    assert not folder.snakemake_recorded(run_dir / "record.json")
    recorded.parent.mkdir(parents=True)
    recorded.write_text("{}")
    assert folder.snakemake_recorded(run_dir / "record.json")
    again = _run(run_dir)
    again.check_inputs(data=data)
    with again.owned() as finished:
        assert finished is None and not (run_dir / ".finished").exists()


# ---- sessions from the start, SLURM's restart counts, every attempt in the log ------------------------------------

def test_a_session_is_on_disk_before_any_state_and_a_requeued_jobs_sessions_are_told_apart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Processes killed before the run's state was next saved (the first before any) are sessions of the finished
    run; SLURM's requeues keep the job id and count up the restarts."""
    run_dir, data = tmp_path / "run", _input(tmp_path / "data.bin", b"12345")
    monkeypatch.setenv("SLURM_JOB_ID", "7")

    def session(restarts: int, epoch: int, save: bool = False, finish: bool = False) -> dict | None:
        """One process of the run; unless it finishes, it goes as a killed one goes (its lock freed, nothing else
        done)."""
        monkeypatch.setenv("SLURM_RESTART_COUNT", str(restarts))
        run = _run(run_dir)
        run.check_inputs(data=data)
        with run.owned(), run.placed("cpu"):
            state = run.resume()
            assert (state["next_epoch"] if state else 0) == epoch
            run.begin_session(start_epoch=epoch)
            if save:
                run.save_state({"next_epoch": epoch + 1})
            if finish:
                save_torch(run_dir / "model.pt", {"w": torch.ones(1)}, checksum=True)
                return run.finish(run.record(kind="teacher", labels={}, seed=1, spec={}, spec_hash="h", sections={},
                                             timing=run.epoch_timing([{"train_seconds": 1.0, "eval_seconds": 0.5}]),
                                             data=run.input_file(data)))
        return None

    session(0, 0)  # killed in its first epoch
    assert sorted(path.name for path in run_dir.iterdir()) == ["sessions.json"]
    saved = json.loads((run_dir / "sessions.json").read_text())
    assert saved["identity"] == {"lr": 0.1, "data_sha256": hashlib.sha256(b"12345").hexdigest()}
    assert [(s["start_epoch"], s["slurm_job_id"], s["slurm_restart_count"]) for s in saved["sessions"]] == [
        (0, "7", 0)]
    session(1, 0, save=True)
    session(2, 1)  # killed before its epoch's state
    written = session(3, 1, finish=True)
    sessions = written["timing"]["sessions"]
    assert [(s["start_epoch"], s["slurm_job_id"], s["slurm_restart_count"]) for s in sessions] == [
        (0, "7", 0), (0, "7", 1), (1, "7", 2), (1, "7", 3)]
    assert written["timing"]["resumed_from_epoch"] == 1
    assert not (run_dir / "sessions.json").exists() and not (run_dir / "checkpoint.pt").exists()


def test_sessions_of_other_settings_are_not_taken_and_a_state_file_alone_gives_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    run_dir, data = tmp_path / "run", _input(tmp_path / "data.bin", b"12345")
    for lr in (0.2, 0.1):  # a run killed before its first epoch, then one of other settings in its folder
        run = _run(run_dir, lr=lr)
        run.check_inputs(data=data)
        with run.owned(), run.placed("cpu"):
            assert run.resume() is None
            run.begin_session(start_epoch=0)
            assert len(run.sessions) == 1
            if lr == 0.1:
                run.save_state({"next_epoch": 1})
    (run_dir / "sessions.json").unlink()  # a state file written before runs kept a sessions file
    run = _run(run_dir)
    run.check_inputs(data=data)
    with run.owned(), run.placed("cpu"):
        run.resume()
        run.begin_session(start_epoch=1)
    assert [s["start_epoch"] for s in run.sessions] == [0, 1]
    assert json.loads((run_dir / "sessions.json").read_text())["sessions"] == run.sessions


REALISTIC_SCONTROL = (  # `scontrol show job -o <id>` of a job SLURM requeued twice (Requeue= is another field)
    "JobId={job} JobName=3f2a9c1e UserId=alice(1000) GroupId=alice(1000) MCS_label=N/A Priority=4294901757 Nice=0 "
    "Account=(null) QOS=normal JobState=RUNNING Reason=None Dependency=(null) Requeue=1 Restarts=2 BatchFlag=1 "
    "Reboot=0 ExitCode=0:0 RunTime=00:00:07 TimeLimit=00:02:00 TimeMin=N/A SubmitTime=2026-12-07T11:59:50 "
    "StartTime=2026-12-07T12:00:00 EndTime=2026-12-07T12:02:00 Partition=gpu AllocNode:Sid=login1:4242 "
    "NodeList=gpu07 BatchHost=gpu07 NumNodes=1 NumCPUs=4 NumTasks=1 CPUs/Task=4 "
    "AllocTRES=cpu=4,mem=16000M,node=1,billing=4,gres/gpu=1 WorkDir=/scratch/alice/compresslib "
    "StdOut=/scratch/alice/compresslib/logs/slurm/rule_train_teacher/{job}.log TresPerJob=gres/gpu:1")


@pytest.mark.parametrize(("job", "restart_count", "scontrol", "restarts", "asked"), [
    ("9101", None, f"echo '{REALISTIC_SCONTROL}'", 2, True),  # the job step lost it: SLURM says
    ("9102", "3", "exit 1", 3, False),
    ("9103", None, "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1", None, True),
    ("9104", None, "exec sleep 30", None, True),  # a controller that does not answer
    ("9105", None, "echo JobId={job} JobState=RUNNING", None, True),
    (None, None, "exit 1", None, False),  # not under SLURM
], ids=["from scontrol", "from the environment", "scontrol fails", "scontrol hangs", "no Restarts", "no SLURM"])
def test_the_restart_count_comes_from_slurm_where_the_job_step_lost_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, job: str | None, restart_count: str | None, scontrol: str,
        restarts: int | None, asked: bool):
    """Each case has a job id of its own: a process asks SLURM once per job."""
    for name, value in (("SLURM_JOB_ID", job), ("SLURM_RESTART_COUNT", restart_count)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    calls = _scontrol(tmp_path, monkeypatch, scontrol.format(job=job))
    monkeypatch.setattr(provenance, "_SCONTROL_TIMEOUT_S", 0.5)
    identities = [provenance.job_identity() for _ in range(2)]
    assert [(identity["slurm_job_id"], identity["slurm_restart_count"]) for identity in identities] == [
        (job, restarts)] * 2
    assert (calls.read_text().splitlines() if calls.exists() else []) == ([f"show job -o {job}"] if asked else [])


def test_scontrol_absent_gives_no_restart_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SLURM_JOB_ID", "91999")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol anywhere
    assert provenance.job_identity()["slurm_restart_count"] is None


# A job through compresslib.cli.run_main: it prints "working", then ends as told ("kill", "fail", "ok").
_JOB = """
import os, signal, sys
from compresslib.cli import run_main

def main(argv):
    print("working:", sys.argv[1], file=sys.stderr, flush=True)
    if sys.argv[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if sys.argv[1] == "fail":
        raise ValueError("bad input")
    print("torch loaded:", "torch" in sys.modules, file=sys.stderr)

run_main(main)
"""


def _attempt(how: str, log: Path | None, **slurm: str) -> subprocess.CompletedProcess:
    """One attempt of the job, its stdout and stderr appended to ``log`` (as the rules' `>> {log} 2>&1`) or, without
    a log, captured (a run by hand)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SLURM")} | slurm
    if log is None:
        return subprocess.run([sys.executable, "-c", _JOB, how], env=env, capture_output=True, text=True)
    with open(log, "a") as handle:
        return subprocess.run([sys.executable, "-c", _JOB, how], env=env, stdout=handle, stderr=handle, text=True)


def test_every_attempt_of_a_job_is_kept_in_its_log_under_a_header(tmp_path: Path):
    """Snakemake deletes a job's log before each attempt; the killed and the failed attempts' lines stay in it."""
    log = tmp_path / "logs" / "train_teacher" / "seed1.log"
    log.parent.mkdir(parents=True)
    kept = log.parent / ".seed1.log.attempts"
    assert _attempt("kill", log).returncode == -signal.SIGKILL
    assert kept.samefile(log)
    for how, code, slurm in (("fail", 1, {"SLURM_JOB_ID": "42", "SLURM_RESTART_COUNT": "1"}), ("ok", 0, {})):
        log.unlink()  # Snakemake, before the next attempt
        assert _attempt(how, log, **slurm).returncode == code
    assert not kept.exists()  # the job succeeded: its log holds every attempt
    host, when = re.escape(socket.gethostname()), r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"
    lines = log.read_text().splitlines()
    assert [line for line in lines if line.startswith("===")] == [lines[0], lines[2], lines[5]]
    assert re.fullmatch(f"=== attempt started {when} on host {host} ===", lines[0])
    assert lines[1] == "working: kill"
    assert re.fullmatch(f"=== attempt started {when} on host {host}, SLURM job 42 \\(restart 1\\) ===", lines[2])
    assert lines[3] == "working: fail" and lines[4].endswith("ERROR compresslib: ValueError: bad input")
    assert re.fullmatch(f"=== attempt started {when} on host {host} ===", lines[5])
    assert lines[6:] == ["working: ok", "torch loaded: False"]  # naming itself costs a job no torch
    assert sorted(path.name for path in log.parent.iterdir()) == ["seed1.log"]


def test_a_job_run_by_hand_without_a_log_prints_its_header_and_keeps_nothing(tmp_path: Path):
    finished = _attempt("ok", None)
    assert finished.returncode == 0
    assert re.fullmatch(f"=== attempt started .+ on host {re.escape(socket.gethostname())} ===\nworking: ok\n"
                        "torch loaded: False\n", finished.stderr)
