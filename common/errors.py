"""The one exception type a user is meant to read.

Anything raised as :class:`JetfleetError` is a problem the user can fix (a
missing folder, an unknown name, a corrupt file). The command-line entry
points print it as a single line, without a traceback, and exit non-zero;
every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class JetfleetError(Exception):
    """A user-fixable error: ``message`` says what was wrong, ``hint`` how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
