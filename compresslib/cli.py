"""Shared entry-point plumbing for workflow_scripts: the attempt's header and earlier attempts in the job's log, logging
to stderr, and clean failures.

A rule's job appends its output to its log (``>> {log} 2>&1``), but Snakemake deletes a job's log before each attempt
(``Job.remove_existing_output``): also before a retry, and inside every SLURM job. So a job whose stderr is a log file
keeps a second hard link to it, ``.<log name>.attempts`` beside it, which holds every line of the attempt however the
attempt ends (SIGKILL included); the next attempt copies it back into its new log, above its own header, and takes its
place. A job that succeeds removes the link: its log holds every attempt since the job last succeeded.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from compresslib import provenance
from compresslib.gpu_slots import GPUUnavailable
from compresslib.io import temporaries

__all__ = ["run_main", "add_run_options", "attempt_header", "error_summary", "ATTEMPTS_SUFFIX", "LOG_FORMAT",
           "ATTEMPT_STARTED", "STOPPED_BY_SIGTERM"]

# what a job's log holds, which compresslib.runs.observe reads back
ATTEMPTS_SUFFIX = ".attempts"  # ``.<log name>.attempts``: the earlier attempts of a log Snakemake deletes
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ATTEMPT_STARTED = "=== attempt started "  # an attempt's header begins so; below it, that attempt's lines
STOPPED_BY_SIGTERM = "stopped by SIGTERM"  # the warning as SIGTERM stops a job begins so

# Bad input (config, spec, data, checkpoint: ValueError), unreachable or wrong files (OSError, which
# includes DownloadError) and diverged training (FloatingPointError) are explained by their message, so
# the job log ends with that one line. Anything else (a bug, CUDA out of memory) keeps its traceback.
_INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, FloatingPointError, GPUUnavailable)

log = logging.getLogger("compresslib")


def run_main(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Head the job's log with this attempt (after the earlier attempts' lines), configure logging, run
    ``main(argv)``, and exit 1 with a one-line error for bad input. SIGTERM (a scheduler stopping the job) unwinds it
    like an error: its temporary files and its run folder's lock go, its last saved state stays, and it exits 143."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT)
    logging.captureWarnings(True)
    signal.signal(signal.SIGTERM, _stopped)
    attempts = _keep_attempts(_stderr_file())
    print(attempt_header(), file=sys.stderr, flush=True)
    try:
        main(argv)
    except _INPUT_ERRORS as error:
        log.error("%s: %s", type(error).__name__, error)
        sys.exit(1)
    if attempts is not None:
        attempts.unlink(missing_ok=True)


def error_summary(error: BaseException, limit: int = 200) -> str:
    """``<type>: <first line of its message>`` (at most ``limit`` characters of it): an error as a log or a report
    names it in one line."""
    first_line = next(iter(str(error).strip().splitlines()), "")
    return f"{type(error).__name__}: {first_line[:limit]}"


def attempt_header() -> str:
    """The line that starts an attempt's part of a log: when (UTC), where, and under SLURM which job (and how often
    SLURM restarted it: a requeued job keeps its id)."""
    job = provenance.job_identity()
    where = f"on host {job['hostname']}"
    if job["slurm_job_id"] is not None:
        restarts = job["slurm_restart_count"]
        where += f", SLURM job {job['slurm_job_id']}" + (f" (restart {restarts})" if restarts is not None else "")
    return f"{ATTEMPT_STARTED}{provenance.now_iso()} {where} ==="


def _stderr_file() -> Path | None:
    """The regular file this process's stderr writes to (Linux: by /proc), or None (a terminal, a pipe, a deleted
    file, another system)."""
    try:
        opened = os.fstat(sys.stderr.fileno())
        if not stat.S_ISREG(opened.st_mode):
            return None
        path = Path(os.readlink(f"/proc/self/fd/{sys.stderr.fileno()}"))
        found = path.stat()
    except (OSError, ValueError):
        return None
    return path if (found.st_dev, found.st_ino) == (opened.st_dev, opened.st_ino) else None


def _keep_attempts(log_path: Path | None) -> Path | None:
    """Copy the earlier attempts kept beside ``log_path`` into it (through stderr: after what is there, whether it
    was opened to append or truncated), then make the kept file a hard link of ``log_path``; returns the kept file.
    None, logged, where the file system makes no hard links: the log then holds this attempt alone."""
    if log_path is None:
        return None
    kept = log_path.with_name(f".{log_path.name}{ATTEMPTS_SUFFIX}")
    try:
        for leftover in temporaries(kept):  # a link a killed attempt made but did not rename
            leftover.unlink(missing_ok=True)
        if kept.exists() and not os.path.samefile(kept, log_path):  # else the log was kept (a run by hand, `>>`)
            sys.stderr.flush()
            with open(kept, "rb") as earlier:
                shutil.copyfileobj(earlier, sys.stderr.buffer)
            sys.stderr.buffer.flush()
        link = kept.with_name(f".{kept.name}.{os.getpid()}.tmp")
        os.link(log_path, link)
        os.replace(link, kept)
    except OSError as error:
        log.warning("cannot keep this attempt's lines beside %s for the next attempt (%s)", log_path, error)
        return None
    return kept


def _stopped(signum: int, frame: object) -> None:
    log.warning("%s; a rerun resumes from the last saved state", STOPPED_BY_SIGTERM)
    raise SystemExit(128 + signum)


def add_run_options(parser: argparse.ArgumentParser, outputs: str, required: bool = True) -> None:
    """A job's ``--run-dir`` (the run folder, for ``outputs``) and ``--overwrite``."""
    parser.add_argument("--run-dir", required=required, help=f"directory for {outputs}")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished run in the run folder (refused without it; an unfinished one resumes)")
