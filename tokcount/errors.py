"""Errors a user can act on.

Every problem caused by the user's input is raised as a subclass of ``TokcountError``; the CLI
prints ``str(error)`` as one line and exits with ``error.exit_code``. Anything else escaping is
a tokcount bug.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_INVALID_FILE = 2
EXIT_MISMATCH = 3
EXIT_REFUSED_PLAN = 4
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C)
EXIT_HANGUP = 129  # SIGHUP: the terminal went away
EXIT_TERMINATED = 143  # SIGTERM: a scheduler or `kill` stopped the run


class TokcountError(Exception):
    """Base class: a one-line, actionable message."""

    exit_code = EXIT_USAGE


class UsageError(TokcountError):
    """Bad arguments or impossible parameters (exit 1)."""

    exit_code = EXIT_USAGE


class PlanError(UsageError):
    """Parameters for which the real trainer would hang or abort."""


class FileCheckError(TokcountError):
    """A file failed a check: names the file, the check and the first bad position (exit 2)."""

    exit_code = EXIT_INVALID_FILE

    def __init__(self, path: str, check: str, detail: str, position: str | None = None, order: int | None = None):
        self.path = str(path)
        self.check = check
        self.detail = detail
        self.position = position
        # Where the position falls in the file (a line number), when units that read the file
        # out of order (interleaved parts) must agree on which of their failures came first.
        self.order = order
        # "at line 5", but "after line 5, the last one read whole" / "before its first line"
        where = (
            "" if not position else f" {position}" if position.startswith(("after ", "before ")) else f" at {position}"
        )
        super().__init__(f"{self.path}: {check} failed{where}: {detail}")

    def __reduce__(self):  # travels back from worker processes
        return (type(self), (self.path, self.check, self.detail, self.position, self.order))
