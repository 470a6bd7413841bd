"""Small helpers every subcommand uses to talk to the user: one clear line, never a traceback."""

from __future__ import annotations

import sys
from typing import NoReturn

from rich.console import Console

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class UserError(Exception):
    """A user's mistake (bad file, bad flag value, unreadable input): printed as one line, exit `code`."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def warn(message: str) -> None:
    """One warning line on stderr."""
    stderr.print(f"kubeguard: warning: {message}", markup=False)


def die(message: str, code: int = 2) -> NoReturn:
    """One error line on stderr, then exit with `code`."""
    stderr.print(f"kubeguard: error: {message}", markup=False)
    sys.exit(code)
