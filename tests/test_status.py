"""``python -m compresslib status``: each job state from the files a job leaves (record, state and sessions files, the
run folder's lock, logs written by compresslib.cli), a half-written state, the ETA arithmetic, and the command over
the demo's planned jobs (text, JSON, torch-free)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
import torch

from compresslib import status
from compresslib.experiments import load_config
from compresslib.runs.checkpoint import CHECKPOINT_NAME, SESSIONS_NAME, peek_checkpoint, save_checkpoint, \
    save_sessions
from compresslib.runs.folder import LOCK_NAME
from compresslib.runs.observe import FAILED, FINISHED, NOT_STARTED, RUNNING, lock_held, quiet_limit, run_status, \
    state_progress
from compresslib.runs.progress import Progress, format_clock, format_duration
from compresslib.runs.record import Record, write_record

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "profiles" / "demo" / "config.yaml"
SCHEMA = REPO / "rules" / "schemas" / "config.schema.yaml"
T0 = datetime(2026, 3, 10, 20, 55, tzinfo=timezone.utc).timestamp()  # a Tuesday
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch):
    """Local time is UTC, so clock times are known."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _age(path: Path, seconds: float) -> None:
    """Make ``path`` last written ``seconds`` ago."""
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


def _training_state(run_dir: Path, epoch_seconds: list[float], epochs: int = 200, lit_epochs: int | None = None,
                    start_epoch: int = 0) -> Path:
    """A training run's state file after ``len(epoch_seconds)`` epochs, as compresslib.training.loop saves it."""
    history = [{"epoch": index + 1, "train_seconds": seconds - 1.0, "eval_seconds": 1.0}
               for index, seconds in enumerate(epoch_seconds)]
    path = run_dir / CHECKPOINT_NAME
    save_checkpoint(path, {
        "identity": {"epochs": epochs, "lit": None if lit_epochs is None else {"epochs": lit_epochs}},
        "sessions": [{"started_at": "2026-03-10T20:00:00+00:00", "start_epoch": start_epoch, "hostname": "gpu07",
                      "slurm_job_id": "4242"}],
        "next_epoch": len(history), "history": history, "model": {"weight": torch.ones(3, 3)}})
    return path


def _job_log(log: Path, body: str) -> None:
    """Run ``body`` as a workflow script's main under compresslib.cli.run_main, its stderr appended to ``log`` as a
    rule's shell line does."""
    log.parent.mkdir(parents=True, exist_ok=True)
    code = f"from compresslib.cli import run_main\ndef main(argv):\n    {body}\nrun_main(main)"
    with open(log, "ab") as handle:
        subprocess.run([sys.executable, "-c", code], stderr=handle, env=ENV, check=False, timeout=60)


# ---- progress and its arithmetic --------------------------------------------------------------------------------

def test_progress_gives_rate_and_eta_as_computed_by_hand(utc):
    progress = Progress.measured(5, 200, [12.0, 12.6], as_of=T0)
    assert progress.seconds_per_unit == pytest.approx(12.3)
    assert progress.finish == pytest.approx(T0 + 195 * 12.3)  # 2398.5 s: 21:34:58.5, to the minute 21:35
    assert progress.describe(now=T0) == "epoch 5/200 · 12.3 s/epoch · ETA 21:35 (40 min)"
    assert progress.describe(now=T0 + 1800) == "epoch 5/200 · 12.3 s/epoch · ETA 21:35 (10 min)"  # 598.5 s left
    assert progress.describe(now=T0 + 3000) == "epoch 5/200 · 12.3 s/epoch · ETA 21:35 (overdue by 10 min)"
    assert progress.to_json(T0 + 1800)["remaining_s"] == pytest.approx(598.5)
    assert progress.to_json(T0)["eta"] == "2026-03-10T21:34:58+00:00"
    assert Progress.measured(0, 200, [], as_of=T0).describe(T0) == "epoch 0/200"
    assert Progress.measured(200, 200, [10.0], as_of=T0).describe(T0) == "epoch 200/200 · 10.0 s/epoch"
    slow = Progress.measured(3, 40, [1700.0, 1900.0], unit="candidate", as_of=T0)  # 37 x 30 min = 18 h 30 min
    assert slow.describe(T0) == "candidate 3/40 · 30 min/candidate · ETA Wed 15:25 (18 h 30 min)"


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0 s"), (45, "45 s"), (59.6, "1 min"), (2398.5, "40 min"),
                                               (3 * 3600 + 5 * 60, "3 h 05 min"), (2 * 86400 + 4 * 3600, "2 d 4 h")])
def test_durations_keep_two_units_at_most(seconds: float, text: str):
    assert format_duration(seconds) == text


def test_clock_times_name_the_day_only_when_it_is_not_today(utc):
    assert format_clock(T0 + 2398.5, T0) == "21:35"
    assert format_clock(T0 + 12 * 3600, T0) == "Wed 08:55"
    assert format_clock(T0 + 30 * 86400, T0) == "2026-04-09 20:55"


def test_quiet_limit_is_three_units_and_at_least_ten_minutes():
    assert quiet_limit(Progress(5, 200, 300.0, "epoch", T0)) == 900
    assert quiet_limit(Progress(5, 200, 12.3, "epoch", T0)) == 600
    assert quiet_limit(None) == quiet_limit(Progress(200, 200, 12.3, "epoch", T0)) == 3600  # nothing to time by


# ---- state files, read without torch ------------------------------------------------------------------------------

def test_peek_reads_a_state_files_plain_values_and_no_tensor(tmp_path: Path):
    path = _training_state(tmp_path, [10.0, 12.0, 14.0], epochs=8)
    state = peek_checkpoint(path)
    assert state["next_epoch"] == 3 and state["identity"] == {"epochs": 8, "lit": None}
    assert [row["train_seconds"] for row in state["history"]] == [9.0, 11.0, 13.0]
    assert not isinstance(state["model"]["weight"], torch.Tensor)  # a placeholder: no tensor was loaded
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=f"{truncated} is not a readable compresslib checkpoint"):
        peek_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    with zipfile.ZipFile(foreign, "w") as archive:  # a pickle that would build another class: never run
        archive.writestr("foreign/data.pkl", pickle.dumps({"format": 3, "when": datetime.now()}))
    with pytest.raises(ValueError, match="datetime.datetime is not plain state"):
        peek_checkpoint(foreign)


def test_progress_of_each_state_layout_is_timed_by_its_latest_session():
    history = [{"train_seconds": seconds, "eval_seconds": 1.0} for seconds in (50.0, 50.0, 9.0, 11.0)]
    resumed = {"identity": {"epochs": 10, "lit": {"epochs": 5}}, "next_epoch": 4, "history": history,
               "sessions": [{"start_epoch": 0}, {"start_epoch": 2}]}
    progress = state_progress(resumed, T0)
    assert (progress.done, progress.total, progress.unit) == (4, 15, "epoch")  # LIT's phase 1 before the 10
    assert progress.seconds_per_unit == pytest.approx(11.0)  # (10 + 12) / 2: the resumed session's epochs only
    search = {"identity": {"steps": 4, "candidates_per_step": 3, "epochs": 2},
              "evaluated": [{"train_seconds": seconds} for seconds in (30.0, 60.0, 90.0)],
              "sessions": [{"evaluated_before": 0}]}
    progress = state_progress(search, T0)
    assert (progress.done, progress.total, progress.unit, progress.seconds_per_unit) == (3, 12, "candidate", 60.0)
    assert state_progress({"identity": {}, "sessions": []}, T0) is None


# ---- one job's state ----------------------------------------------------------------------------------------------

def test_nothing_of_a_job_is_not_started_and_its_record_is_finished(tmp_path: Path):
    run_dir, log = tmp_path / "results" / "run", tmp_path / "logs" / "run.log"
    assert run_status(log, run_dir).state == NOT_STARTED
    run_dir.mkdir(parents=True)  # Snakemake makes a job's folder as it starts the job, which logs at once
    assert run_status(log, run_dir).state == NOT_STARTED
    _training_state(run_dir, [10.0])
    (run_dir / LOCK_NAME).write_text("pid 1 on host gpu07\n")
    write_record(run_dir, Record(kind="teacher", run_dir=str(run_dir), labels={}, seed=1, spec={}, spec_hash="x"))
    assert run_status(log, run_dir).state == FINISHED  # the record is written last: the rest is being cleared


def test_a_held_lock_is_running_however_long_the_run_was_silent(tmp_path: Path):
    run_dir = tmp_path / "run"
    code = ("import sys\nfrom pathlib import Path\nfrom compresslib.runs.folder import owned_folder\n"
            "with owned_folder(Path(sys.argv[1])):\n    print('held', flush=True)\n    sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdin=subprocess.PIPE,  # a job holding
                              stdout=subprocess.PIPE, text=True, env=ENV)  # its run folder, as its lifecycle does
    try:
        assert holder.stdout.readline() == "held\n"
        _age(_training_state(run_dir, [12.3] * 5), 86400)
        _age(run_dir / LOCK_NAME, 86400)
        assert lock_held(run_dir / LOCK_NAME) is True
        held = run_status(tmp_path / "run.log", run_dir)
        assert (held.state, held.reason) == (RUNNING, "lock held")
        assert (held.session["hostname"], held.progress.done) == ("gpu07", 5)
    finally:
        holder.kill()  # SIGKILL: its lock file stays, held by nobody
        holder.communicate(timeout=30)
    assert lock_held(run_dir / LOCK_NAME) is False and lock_held(tmp_path / "none") is None
    dead = run_status(tmp_path / "run.log", run_dir)
    assert dead.state == FAILED and dead.reason.startswith("silent for 24 h 00 min")


def test_an_unseen_lock_is_judged_by_how_long_the_run_has_been_silent(tmp_path: Path):
    run_dir, log = tmp_path / "run", tmp_path / "run.log"
    run_dir.mkdir()
    (run_dir / LOCK_NAME).write_text("pid 1 on host gpu07\n")  # held on another node, its lock not visible here
    state = _training_state(run_dir, [12.0, 12.6, 12.0, 12.6, 12.3])  # 12.3 s/epoch: silent 10 min at most
    log.write_text("2026-03-10 20:54:00,000 INFO compresslib.training.loop: epoch 5/200 ...\n")
    for path in (state, log, run_dir / LOCK_NAME):
        _age(path, 30)
    now = time.time()
    running = run_status(log, run_dir, now=now)
    assert (running.state, running.reason) == (RUNNING, "written 30 s ago")
    assert running.progress.seconds_per_unit == pytest.approx(12.3)
    assert running.progress.finish == pytest.approx(state.stat().st_mtime + 195 * 12.3)
    late = run_status(log, run_dir, now=now + 2 * 3600 - 30)
    assert (late.state, late.reason) == (FAILED, "silent for 2 h 00 min (limit 10 min)")
    assert late.last_line.endswith("epoch 5/200 ...")


@pytest.mark.parametrize(("body", "last_line"), [
    ("raise ValueError('the dataset is damaged')", "ERROR compresslib: ValueError: the dataset is damaged"),
    ("raise RuntimeError('CUDA out of memory')", "RuntimeError: CUDA out of memory"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", "stopped by SIGTERM; a rerun resumes from the last "
     "saved state"),
])
def test_a_log_ending_as_a_stopped_jobs_is_failed_at_once(tmp_path: Path, body: str, last_line: str):
    run_dir, log = tmp_path / "run", tmp_path / "logs" / "run.log"
    run_dir.mkdir()
    _training_state(run_dir, [12.3] * 5)
    _job_log(log, body)
    failed = run_status(log, run_dir)
    assert failed.state == FAILED and failed.reason == "stopped"
    assert failed.last_line.endswith(last_line)


def test_a_retry_is_failed_until_its_own_attempt_starts(tmp_path: Path):
    run_dir, log = tmp_path / "run", tmp_path / "logs" / "run.log"
    run_dir.mkdir()
    _job_log(log, "raise ValueError('time is up')")
    log.rename(log.with_name(".run.log.attempts"))  # Snakemake deleted the log; the resubmitted job waits in a queue
    failed = run_status(log, run_dir)
    assert failed.state == FAILED and failed.last_line.endswith("ValueError: time is up")
    _job_log(log, "import time; time.sleep(0)")  # the retry: the earlier attempts, then its own (here, quick) lines
    assert run_status(log, run_dir).state == RUNNING


def test_a_half_written_state_leaves_the_progress_unknown(tmp_path: Path):
    run_dir, log = tmp_path / "run", tmp_path / "run.log"
    run_dir.mkdir()
    whole = _training_state(run_dir, [12.3] * 5).read_bytes()
    (run_dir / f".{CHECKPOINT_NAME}.k2j4x.tmp").write_bytes(whole[:100])  # a writer's temporary: never read
    assert run_status(log, run_dir).progress.done == 5
    (run_dir / CHECKPOINT_NAME).write_bytes(whole[:len(whole) // 2])  # damaged in place (a full disk, a bad copy)
    save_sessions(run_dir / SESSIONS_NAME, {}, [{"started_at": "2026-03-10T20:00:00+00:00", "hostname": "gpu09"}])
    seen = run_status(log, run_dir)
    assert seen.state == RUNNING and seen.progress is None and seen.session["hostname"] == "gpu09"
    assert "; state unreadable (" in seen.reason


def test_a_job_without_a_run_folder_finishes_with_its_outputs(tmp_path: Path):
    archive, log = tmp_path / "resources" / "archive.tar.gz", tmp_path / "logs" / "download.log"
    assert run_status(log, outputs=(archive,)).state == NOT_STARTED
    log.parent.mkdir()
    log.write_text("=== attempt started 2026-03-10T20:00:00+00:00 on host login1 ===\n")
    assert run_status(log, outputs=(archive,)).state == RUNNING
    archive.parent.mkdir()
    archive.write_bytes(b"")
    assert run_status(log, outputs=(archive,)).state == FINISHED


# ---- the command over a study ---------------------------------------------------------------------------------------

def _demo_tree(directory: Path) -> int:
    """A demo study under way in ``directory``: a teacher finished, a student running, one failed; returns the number
    of planned jobs."""
    study = load_config(DEMO_CONFIG, SCHEMA)
    teacher = next(job for job in study.jobs if job.rule == "train_teacher")
    running, failed = [job for job in study.jobs if job.rule == "distill_student"][:2]
    write_record(directory / teacher.run_folder(), Record(kind="teacher", run_dir=teacher.run_folder(), labels={},
                                                          seed=1, spec={}, spec_hash="x"))
    (directory / running.run_folder()).mkdir(parents=True)
    _training_state(directory / running.run_folder(), [12.3] * 5, epochs=8)
    (directory / failed.run_folder()).mkdir(parents=True)
    _job_log(directory / status.job_log(failed), "raise ValueError('the teacher file is damaged')")
    return len(study.jobs)


def test_status_counts_every_planned_job_and_lists_the_running_and_failed(tmp_path: Path, capsys):
    planned = _demo_tree(tmp_path)
    status.main([str(tmp_path / "results"), "--configfile", str(DEMO_CONFIG), "--json"])  # results/ is taken too
    report = json.loads(capsys.readouterr().out)
    assert report["counts"] == {"finished": 1, "running": 1, "failed": 1, "not_started": planned - 3}
    jobs = {job["state"]: job for group in report["groups"] for job in group["jobs"]}
    assert jobs["running"]["progress"]["done"] == 5 and jobs["running"]["progress"]["total"] == 8
    progress = jobs["running"]["progress"]  # 3 epochs left at 12.3 s, counted from the state file's last write
    eta, as_of = (datetime.fromisoformat(progress[key]).timestamp() for key in ("eta", "as_of"))
    assert progress["seconds_per_unit"] == pytest.approx(12.3) and eta - as_of == pytest.approx(3 * 12.3, abs=1)
    assert 0 <= progress["remaining_s"] <= 3 * 12.3 + 1
    assert jobs["running"]["hostname"] == "gpu07" and jobs["running"]["slurm_job_id"] == "4242"
    assert jobs["failed"]["last_line"].endswith("ValueError: the teacher file is damaged")
    assert jobs["failed"]["log"].startswith("logs/distill_student/")
    assert [group["name"] for group in report["groups"]][:3] == ["data", "teachers", "distill"]

    status.main([str(tmp_path), "--configfile", str(DEMO_CONFIG)])
    text = capsys.readouterr().out.splitlines()
    assert text[1] == f"{planned} jobs: 1 finished, 1 running, 1 failed, {planned - 3} not started"
    distill = next(index for index, line in enumerate(text) if line.startswith("distill "))
    assert text[distill].split()[1:] == ["20", "0", "1", "1", "18"]
    assert text[distill + 1].startswith("  running  distill_student ")
    assert "epoch 5/8 · 12.3 s/epoch · ETA " in text[distill + 1] and "gpu07 SLURM job 4242" in text[distill + 1]
    assert text[distill + 2].startswith("  failed   distill_student ")
    assert text[distill + 2].endswith("ValueError: the teacher file is damaged")


def test_the_command_line_runs_without_torch(tmp_path: Path):
    planned = _demo_tree(tmp_path)
    code = ("import runpy, sys\nsys.argv = ['compresslib', 'status', *sys.argv[1:]]\n"
            "runpy.run_module('compresslib', run_name='__main__', alter_sys=True)\n"
            "assert 'torch' not in sys.modules, 'status imported torch'")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path), "--configfile", str(DEMO_CONFIG)],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{planned} jobs: 1 finished, 1 running, 1 failed" in done.stdout
