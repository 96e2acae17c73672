"""Shared entry-point plumbing for workflow_scripts: logging to stderr and clean failures."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable

__all__ = ["run_main", "add_run_options"]

# Bad input (config, spec, data, checkpoint: ValueError), unreachable or wrong files (OSError, which
# includes DownloadError) and diverged training (FloatingPointError) are explained by their message, so
# the job log ends with that one line. Anything else (a bug, CUDA out of memory) keeps its traceback.
_INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, FloatingPointError)


def run_main(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Configure logging, run ``main(argv)``, and exit 1 with a one-line error for bad input. SIGTERM (a scheduler
    stopping the job) unwinds it like an error: its temporary files and its run folder's lock go, its last saved
    state stays, and it exits 143."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    signal.signal(signal.SIGTERM, _stopped)
    try:
        main(argv)
    except _INPUT_ERRORS as error:
        logging.getLogger("compresslib").error("%s: %s", type(error).__name__, error)
        sys.exit(1)


def _stopped(signum: int, frame: object) -> None:
    logging.getLogger("compresslib").warning("stopped by SIGTERM; a rerun resumes from the last saved state")
    raise SystemExit(128 + signum)


def add_run_options(parser: argparse.ArgumentParser, outputs: str, required: bool = True) -> None:
    """A job's ``--run-dir`` (the run folder, for ``outputs``) and ``--overwrite``."""
    parser.add_argument("--run-dir", required=required, help=f"directory for {outputs}")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a finished run in the run folder (refused without it; an unfinished one resumes)")
