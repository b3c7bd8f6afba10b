"""Errors that reach the user as one line and an exit code, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


class SaeError(Exception):
    """Base class: a failure the CLI reports as one line with :attr:`exit_code`."""

    exit_code = 1


class InputError(SaeError):
    """Bad usage or bad input (a file, a text, an option): exit code 2."""

    exit_code = 2


class AlgorithmError(InputError):
    """An invalid Algorithm: names the file, the field and the reason."""

    def __init__(self, file: str, field: str, reason: str) -> None:
        self.file, self.field, self.reason = file, field, reason
        super().__init__(f"{file}: {field}: {reason}")


class BackendUnavailableError(InputError):
    """An explicitly requested backend cannot run here (for example no GPU adapter)."""


def run_script(main: Callable[[], int | None], prog: str | None = None) -> int:
    """Run a script's ``main()`` (the ``tools/`` scripts) the way the CLI runs a command:
    a :class:`SaeError` becomes one line on stderr (``PROG: error: …``, the script's file
    name by default) and its exit code, not a traceback."""
    try:
        return int(main() or 0)
    except SaeError as exc:
        print(f"{prog or Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
