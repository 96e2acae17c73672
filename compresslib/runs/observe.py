"""One job seen from outside while the workflow runs: finished, running (how far, and when it should end), failed (the
last line of its log), or not started. It reads the job's files only, takes no lock and needs no torch, so it can
watch a results tree a SLURM run is writing from another node.

A job is one of:

1. **finished**: its run folder holds ``record.json`` (written last); a job without a run folder (a download, a
   prepared dataset, a views table), when every output exists.
2. **not started**: there is no log (nor the earlier attempts kept beside it, ``compresslib.cli``) and the run folder
   holds no lock, state or sessions file.
3. **running**, when the run folder's ``.lock`` is held. The lock is asked for without being taken (``F_OFD_GETLK``;
   NFS's lock manager answers it too), but a cluster file system may keep the locks of another node to that node.
4. **failed**, when the log's latest attempt ends the way a job that stopped ends it: an ERROR record
   (``compresslib.cli``'s one-line error), a traceback after the last record, or the SIGTERM stop (a time limit,
   ``scancel``; a retry resumes from the last saved state).
5. Otherwise by its signs of life, the newest write to its log, state, sessions or lock file: **running** while the
   newest is younger than three of the run's own units (epochs, or an ESNAC search's candidates, timed from its state
   file), and at least 10 minutes; 1 hour before its first unit is saved (start-up, a first epoch of unknown length)
   and after its last (final evaluation, translating the test sets). Older: **failed** (killed without a word:
   SIGKILL, a lost node, the out-of-memory killer).

A state file is read whole or not at all: it is replaced atomically, its temporaries (``.checkpoint.pt.*.tmp``) are
never read, and one that cannot be read (damaged, truncated on a full disk) leaves the progress unknown.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from compresslib.cli import ATTEMPT_STARTED, ATTEMPTS_SUFFIX, STOPPED_BY_SIGTERM
from compresslib.runs.checkpoint import CHECKPOINT_NAME, SESSIONS_NAME, peek_checkpoint
from compresslib.runs.folder import LOCK_NAME
from compresslib.runs.progress import Progress, format_duration, local_iso
from compresslib.runs.record import RECORD_NAME
from compresslib.specs.esnac import SEARCH_STATE
from compresslib.specs.training import total_epochs

__all__ = ["FINISHED", "RUNNING", "FAILED", "NOT_STARTED", "STATES", "RunStatus", "run_status", "lock_held",
           "state_progress", "quiet_limit"]

FINISHED, RUNNING, FAILED, NOT_STARTED = "finished", "running", "failed", "not_started"
STATES = (FINISHED, RUNNING, FAILED, NOT_STARTED)
STATE_NAMES = (CHECKPOINT_NAME, SEARCH_STATE)  # a training run's state file, an ESNAC search's
QUIET_UNITS = 3  # a run silent for this many of its own units (and MIN_QUIET_S) has stopped
MIN_QUIET_S = 600
UNTIMED_QUIET_S = 3600  # before its first unit and after its last, no unit to time it by
LOG_TAIL_BYTES = 65536
# a record in compresslib.cli's LOG_FORMAT
_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) \S+: (?P<message>.*)$")
_TRACEBACK = "Traceback (most recent call last):"


@dataclass(frozen=True)
class RunStatus:
    """What a job's files say of it: its ``state`` (one of STATES) and ``reason`` (how that was decided)."""

    state: str
    reason: str
    progress: Progress | None = None  # from its state file
    last_line: str = ""  # its log's
    last_activity: float | None = None  # Unix time of the newest write to its log, state, sessions or lock file
    session: dict | None = None  # the latest session: started_at, host, SLURM job

    def to_json(self, now: float) -> dict:
        session = self.session or {}
        return {"state": self.state, "reason": self.reason,
                "progress": None if self.progress is None else self.progress.to_json(now),
                "last_line": self.last_line,
                "last_activity": None if self.last_activity is None else local_iso(self.last_activity),
                "started_at": session.get("started_at"), "hostname": session.get("hostname"),
                "slurm_job_id": session.get("slurm_job_id")}


def run_status(log: Path, run_dir: Path | None = None, outputs: tuple[Path, ...] = (), now: float | None = None
               ) -> RunStatus:
    """The status of the job whose log is ``log`` and whose run folder is ``run_dir`` (None for a job without one:
    then ``outputs`` are its files), as of ``now`` (Unix time; default: now). See the module's docstring."""
    now = time.time() if now is None else now
    if run_dir is not None and (run_dir / RECORD_NAME).exists():
        return RunStatus(FINISHED, "record written")
    if run_dir is None and outputs and all(map(os.path.exists, outputs)):
        return RunStatus(FINISHED, "outputs written")
    log_lines, log_time = _log_tail(log)
    own_files = [run_dir / name for name in (*STATE_NAMES, SESSIONS_NAME, LOCK_NAME)] if run_dir is not None else []
    times = [moment for moment in (log_time, *map(_mtime, own_files)) if moment is not None]
    if not times:
        return RunStatus(NOT_STARTED, "no log, no run files")
    progress, session, unreadable = _saved_progress(run_dir) if run_dir is not None else (None, None, "")
    last_line = next((line for line in reversed(log_lines) if line.strip()), "")
    seen = {"progress": progress, "last_line": last_line, "last_activity": max(times), "session": session}
    if run_dir is not None and lock_held(run_dir / LOCK_NAME):
        return RunStatus(RUNNING, "lock held" + unreadable, **seen)
    if _ended(log_lines):
        return RunStatus(FAILED, "stopped" + unreadable, **seen)  # the log's last line says why
    silent, limit = now - max(times), quiet_limit(progress)
    if silent <= limit:
        return RunStatus(RUNNING, f"written {format_duration(max(silent, 0))} ago{unreadable}", **seen)
    return RunStatus(FAILED, f"silent for {format_duration(silent)} (limit {format_duration(limit)}){unreadable}",
                     **seen)


def quiet_limit(progress: Progress | None) -> float:
    """How long a running job may go without writing: three of its units, at least 10 minutes; an hour before its
    first unit is timed and after its last."""
    if progress is None or progress.seconds_per_unit is None or progress.done >= progress.total:
        return UNTIMED_QUIET_S
    return max(QUIET_UNITS * progress.seconds_per_unit, MIN_QUIET_S)


def lock_held(lock: Path) -> bool | None:
    """Whether a process holds ``lock`` (``compresslib.runs.folder``'s run folder lock), asked without taking it:
    ``F_OFD_GETLK`` reports a conflicting lock and changes nothing. None where it cannot tell (no such file, a
    system without open-file-description locks, a file system that refuses the query)."""
    query = getattr(fcntl, "F_OFD_GETLK", None)
    if query is None:
        return None
    layout = "hhqqi"  # Linux's struct flock: type, whence, start, length (0: the whole file), pid (0 for OFD)
    try:
        handle = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        answer = fcntl.fcntl(handle, query, struct.pack(layout, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
    except OSError:
        return None
    finally:
        os.close(handle)  # this process holds no lock on it, so closing releases nothing
    return struct.unpack(layout, answer[:struct.calcsize(layout)])[0] != fcntl.F_UNLCK


def state_progress(state: dict, as_of: float) -> Progress | None:
    """How far the run of a state file (``peek_checkpoint``) is, as of its last write ``as_of``: epochs of a training
    run (image or translation: its identity's ``epochs``, after LIT's phase 1), candidates of an ESNAC search
    (``steps`` x ``candidates_per_step``; proposing them is not timed); None for another layout. The rate is that of
    the units its latest session saved (of all, before that session saved one)."""
    identity, sessions = state.get("identity") or {}, state.get("sessions") or [{}]
    if "next_epoch" in state:  # compresslib.training.loop, compresslib.translation.train
        seconds = [row["train_seconds"] + row["eval_seconds"] for row in state["history"]]
        total = total_epochs(identity)
        done, since, unit = state["next_epoch"], sessions[-1].get("start_epoch", 0), "epoch"
    elif "evaluated" in state:  # compresslib.esnac.search
        seconds = [row["train_seconds"] for row in state["evaluated"]]
        total = identity["steps"] * identity["candidates_per_step"]
        done, since, unit = len(seconds), sessions[-1].get("evaluated_before", 0), "candidate"
    else:
        return None
    return Progress.measured(done, total, seconds[since:] or seconds, unit, as_of)


def _saved_progress(run_dir: Path) -> tuple[Progress | None, dict | None, str]:
    """The progress of the run folder's state file, the latest session (its sessions file's, else the state's), and
    why the state could not be read (empty when it could or there is none)."""
    progress, sessions, unreadable = None, None, ""
    for name in STATE_NAMES:
        path = run_dir / name
        try:
            as_of = path.stat().st_mtime
            state = peek_checkpoint(path)
            progress, sessions = state_progress(state, as_of), state.get("sessions")
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError) as error:
            unreadable = f"; state unreadable ({str(error)[:80]})"
        break
    try:
        sessions = json.loads((run_dir / SESSIONS_NAME).read_text(encoding="utf-8"))["sessions"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or one of another format: the state's list serves
    latest = sessions[-1] if isinstance(sessions, list) and sessions and isinstance(sessions[-1], dict) else None
    return progress, latest, unreadable


def _log_tail(log: Path) -> tuple[list[str], float | None]:
    """The last lines of the job's log, or of the earlier attempts kept beside it while Snakemake's retry has not
    started (a queued SLURM job), and when it was last written; ``([], None)`` without either."""
    for path in (log, log.with_name(f".{log.name}{ATTEMPTS_SUFFIX}")):
        try:
            with open(path, "rb") as handle:
                written = os.fstat(handle.fileno()).st_mtime
                handle.seek(max(os.fstat(handle.fileno()).st_size - LOG_TAIL_BYTES, 0))
                return handle.read().decode("utf-8", errors="replace").splitlines(), written
        except FileNotFoundError:
            continue
    return [], None


def _ended(lines: list[str]) -> bool:
    """Whether a log's latest attempt ends as a job that stopped ends it: an ERROR or CRITICAL record, the SIGTERM
    stop, or a traceback after its last record."""
    for line in reversed(lines):
        if line.startswith(ATTEMPT_STARTED):
            return False
        if line.startswith(_TRACEBACK):
            return True
        record = _RECORD.match(line)
        if record is not None:
            return record["level"] in ("ERROR", "CRITICAL") or record["message"].startswith(STOPPED_BY_SIGTERM)
    return False


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
