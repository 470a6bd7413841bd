"""The base of the errors kubeguard's library code raises for something the user can fix.

Library modules raise their own subclass (QueryError, OutputError, ...) with a one-line message
that says what and where; only the commands layer (`*/commands.py`, cli.py) prints it, as one
line, and exits with its `code` (2: bad input, 1: the run cannot start).
"""

from __future__ import annotations


class KubeguardError(Exception):
    """A one-line problem the user can act on (bad flag, file or configuration); `code` is the exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code
