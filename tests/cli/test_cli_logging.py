"""The commands' log lines: one plain line a record when stderr is not a terminal (a
service's log, a pipe), where rich wrapped every message at 80 columns."""

from __future__ import annotations

import subprocess
import sys

LOG_A_LONG_LINE = ("import logging; from sae.cli import _setup_logging; _setup_logging(False); "
                   "logging.getLogger('sae').warning('listening on %s', '/a/long/path/' * 20); "
                   "logging.getLogger('sae').debug('not shown')")


def test_a_long_message_is_one_line_when_stderr_is_not_a_terminal():
    result = subprocess.run([sys.executable, "-c", LOG_A_LONG_LINE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["WARNING  listening on " + "/a/long/path/" * 20]
