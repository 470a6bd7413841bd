"""Small helpers every subcommand uses to talk to the user: one clear line, never a traceback.

Only the commands layer (`*/commands.py`, cli.py) imports this module: library code raises a
`KubeguardError` subclass and logs through `logging` (the "kubeguard" logger), which
`log_to_stderr` turns into the same one-line warnings.
"""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

from rich.console import Console

from kubeguard.errors import KubeguardError

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

# The commands layer's name for the base error: raised for a bad flag, caught with every library error.
UserError = KubeguardError


def warn(message: str) -> None:
    """One warning line on stderr."""
    stderr.print(f"kubeguard: warning: {message}", markup=False)


def die(message: str, code: int = 2) -> NoReturn:
    """One error line on stderr, then exit with `code`."""
    stderr.print(f"kubeguard: error: {message}", markup=False)
    sys.exit(code)


class _StderrLines(logging.Handler):
    """Library log records as ``kubeguard: warning: ...`` lines on the current sys.stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"kubeguard: {record.levelname.lower()}: {record.getMessage()}\n")
        except Exception:  # a broken stderr must not stop the run
            self.handleError(record)


def log_to_stderr(level: int = logging.WARNING) -> None:
    """Show the library's log records at `level` and above on stderr (idempotent)."""
    logger = logging.getLogger("kubeguard")
    logger.setLevel(level)
    if not any(isinstance(handler, _StderrLines) for handler in logger.handlers):
        logger.addHandler(_StderrLines())
