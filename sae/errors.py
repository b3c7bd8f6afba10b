"""Errors that reach the user as one line and an exit code, never a traceback."""

from __future__ import annotations

import errno
import os
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


def short_repr(value: object, limit: int = 60) -> str:
    """``repr`` of a value, cut to ``limit`` characters (error messages stay one short line)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (a library's multi-line error inside ours), or
    its type's name when it has none."""
    return " ".join(str(exc).split()) or type(exc).__name__


class StdoutError(SaeError):
    """Standard output cannot be written (a full disk, ``> /dev/full``): exit code 1."""


class _StdoutClosedError(Exception):
    """The reader of standard output went away (``| head``): a BrokenPipeError of stdout's."""


class _CheckedStdout:
    """``sys.stdout`` while a script runs: a write or flush that fails raises
    :class:`StdoutError` (:class:`_StdoutClosedError` when the reader has gone), so that a
    failure of standard output is told apart from an ``OSError`` of anything else."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def _call(self, method: str, *args):
        if self._stream is None:  # started with it closed (>&-): an error once something is written
            if method == "flush":
                return None
            raise StdoutError("standard output is closed")
        try:
            return getattr(self._stream, method)(*args)
        except BrokenPipeError:
            raise _StdoutClosedError from None
        except OSError as exc:
            raise StdoutError(f"standard output: writing failed: {exc.strerror or exc}") from None

    def write(self, text: str) -> int:
        return self._call("write", text)

    def writelines(self, lines) -> None:
        self._call("writelines", lines)

    def flush(self) -> None:
        self._call("flush")

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _drop_stdout(stream) -> None:
    """Point the process's standard output at /dev/null after it failed, so that the
    interpreter's flush at exit does not print a second error about the same data."""
    if stream is not sys.__stdout__ or stream is None:
        return  # a stream of the caller's (a test's capture): left alone
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
    except (OSError, ValueError):
        pass


#: Errors of a path as given (exit code 2, bad input); any other error of a file is the
#: job's (a full disk, an I/O error: exit code 1).
PATH_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG,
                         errno.ELOOP, errno.EROFS, errno.EEXIST})


def run_script(main: Callable[[], int | None], prog: str | None = None) -> int:
    """Run a script's ``main()`` (the ``tools/`` scripts) the way the CLI runs a command:
    a :class:`SaeError` becomes one line on stderr (``PROG: error: …``, the script's file
    name by default) and its exit code, not a traceback.

    Standard output that fails is one too: a full disk (``> /dev/full``) is
    ``standard output: writing failed: …`` and exit code 1; a reader that went away
    (``| head``) ends the script silently with exit code 1, as a pipeline expects."""
    stream = sys.stdout
    sys.stdout = _CheckedStdout(stream)
    try:
        code = int(main() or 0)
        sys.stdout.flush()  # what is still buffered fails here, not at exit
        return code
    except _StdoutClosedError:
        _drop_stdout(stream)
        return 1
    except SaeError as exc:
        if isinstance(exc, StdoutError):
            _drop_stdout(stream)
        print(f"{prog or Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # A file the command was pointed at that a check before it did not foresee (a
        # directory that cannot be entered, a full disk): one line naming it. Without a
        # file name it is not the user's, and keeps its traceback.
        if exc.filename is None:
            raise
        print(f"{prog or Path(sys.argv[0]).name}: error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2 if exc.errno in PATH_ERRNOS else 1
    finally:
        sys.stdout = stream
