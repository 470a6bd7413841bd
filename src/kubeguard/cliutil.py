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
    """Standard output's reader is gone (closed pipe). A BaseException so that no command's error handling
    swallows it and goes on; `run_cli` ends the run quietly with OUTPUT_LOST_EXIT."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(cause)
        self.cause = cause


class GuardedStream:
    """Standard output that survives a failed write (disk full, ``> /dev/full``).

    The first failure is reported in one line on stderr; from then on the output goes to /dev/null so
    the command runs to its end (alerts are still stored, summaries still printed) and `run_cli` exits
    with OUTPUT_LOST_EXIT. A closed pipe (EPIPE: ``| head``) raises OutputLost: nobody reads any more.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.failure: OSError | None = None

    def _failed(self, exc: OSError) -> None:
        if exc.errno == errno.EPIPE:
            self._discard()
            raise OutputLost(exc) from exc
        if self.failure is None:
            self.failure = exc
            stderr.print(f"kubeguard: error: cannot write to standard output: {exc.strerror or exc}; "
                         "output is incomplete", markup=False)
        self._discard()

    def _discard(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def write(self, data: Any) -> int:
        try:
            written: int = self._stream.write(data)
        except OSError as exc:
            self._failed(exc)
            return len(data)
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            self._failed(exc)
            self._stream.flush()  # what was buffered now goes to /dev/null

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def stdout_failed() -> bool:
    """True once a write to the guarded standard output failed (summaries then belong on stderr)."""
    return isinstance(sys.stdout, GuardedStream) and sys.stdout.failure is not None


def run_cli(main: Any) -> NoReturn:
    """Run the CLI with standard output guarded (`GuardedStream`): a failed write is one line on stderr
    and exit OUTPUT_LOST_EXIT once the command has finished; a closed pipe ends the run quietly."""
    guard = GuardedStream(sys.stdout)
    sys.stdout = guard
    code: Any = 0
    try:
        try:
            main()
        except SystemExit as done:
            code = done.code
        finally:
            guard.flush()
    except OutputLost:
        sys.exit(OUTPUT_LOST_EXIT)
    if guard.failure is not None and code in (0, None):
        sys.exit(OUTPUT_LOST_EXIT)
    sys.exit(code)
