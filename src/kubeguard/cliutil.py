"""Small helpers every subcommand uses to talk to the user: one clear line, never a traceback.

Only the commands layer (`*/commands.py`, cli.py) imports this module: library code raises a
`KubeguardError` subclass and logs through `logging` (the "kubeguard" logger), which
`log_to_stderr` turns into the same one-line warnings.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from typing import Any, NoReturn

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


OUTPUT_LOST_EXIT = 3  # standard output could not be written (disk full, closed pipe): see docs/cli.md


class OutputLost(BaseException):
    """Standard output could not be written. A BaseException so that no command's error handling swallows
    it and goes on writing; `run_cli` reports it in one line and exits with OUTPUT_LOST_EXIT."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(cause)
        self.cause = cause


class GuardedStream:
    """A stream proxy whose write/flush failures raise OutputLost (its `buffer` is guarded too)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, data: Any) -> int:
        try:
            return self._stream.write(data)
        except OSError as exc:
            raise OutputLost(exc) from exc

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise OutputLost(exc) from exc

    @property
    def buffer(self) -> GuardedStream:
        return GuardedStream(self._stream.buffer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def run_cli(main: Any) -> NoReturn:
    """Run the CLI with stdout guarded: a failed write to standard output (``> /dev/full``) ends the run with
    one line on stderr and exit OUTPUT_LOST_EXIT; a closed pipe (``| head``) ends it quietly, same code."""
    sys.stdout = GuardedStream(sys.stdout)
    try:
        try:
            main()
        finally:
            sys.stdout.flush()
    except OutputLost as lost:
        if lost.cause.errno != errno.EPIPE:
            reason = lost.cause.strerror or str(lost.cause)
            stderr.print(f"kubeguard: error: cannot write to standard output: {reason}; output is incomplete",
                         markup=False)
        devnull = os.open(os.devnull, os.O_WRONLY)  # the interpreter's last flush must not fail again
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ is not None else 1)
        sys.exit(OUTPUT_LOST_EXIT)
    sys.exit(0)
