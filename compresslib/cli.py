"""Shared entry-point plumbing for workflow_scripts: logging to stderr and clean failures."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

__all__ = ["run_main"]

# Bad input (config, spec, data, checkpoint: ValueError), unreachable or wrong files (OSError, which
# includes DownloadError) and diverged training (FloatingPointError) are explained by their message, so
# the job log ends with that one line. Anything else (a bug, CUDA out of memory) keeps its traceback.
_INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, FloatingPointError)


def run_main(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Configure logging, run ``main(argv)``, and exit 1 with a one-line error for bad input."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    try:
        main(argv)
    except _INPUT_ERRORS as error:
        logging.getLogger("compresslib").error("%s: %s", type(error).__name__, error)
        sys.exit(1)
