"""One exception type for every user mistake.

A ``NanosegError`` carries a message that says *what* went wrong, *which file* (when there is one)
and *what to do*. The CLI prints it as one line and exits non-zero; it never shows a traceback for
these. Anything else escaping the CLI is a bug.

Example
-------
>>> from nanoseg.errors import NanosegError
>>> err = NanosegError("cannot read image", path="a.dm4", hint="check the file is complete")
>>> str(err)
'a.dm4: cannot read image (check the file is complete)'
"""

from __future__ import annotations

import os


class NanosegError(Exception):
    """A user-facing error: bad input, bad parameters, missing calibration, ..."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, hint: str | None = None):
        self.message = message
        self.path = None if path is None else os.fspath(path)
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = self.message
        if self.path:
            text = f"{self.path}: {text}"
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class SettingsMismatchError(NanosegError):
    """An output folder holds finished work made with other settings, so it cannot be resumed (a
    :class:`NanosegError`: the CLI reports it the same way; a caller that owns the folder may start afresh)."""


def require(condition: bool, message: str, *, path=None, hint: str | None = None) -> None:
    """Raise :class:`NanosegError` unless ``condition`` holds.

    >>> require(1 > 0, "never raised")
    """
    if not condition:
        raise NanosegError(message, path=path, hint=hint)
