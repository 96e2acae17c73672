"""Shared entry-point plumbing for workflow_scripts: logging to stderr and clean failures."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

__all__ = ["run_main"]

# Errors that describe bad input (config, data, checkpoint, network): their message says everything,
# so the job log ends with it rather than with a traceback.
_INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, RuntimeError)


def run_main(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Configure logging, run ``main(argv)``, and exit 1 with a one-line error for bad input."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    try:
        main(argv)
    except _INPUT_ERRORS as error:
        logging.getLogger("compresslib").debug("details", exc_info=True)
        logging.getLogger("compresslib").error("%s: %s", type(error).__name__, error)
        sys.exit(1)
