"""Helpers the CLI tests share."""

from __future__ import annotations


def one_line_error(capsys) -> str:
    """The one line a refused command printed on stderr (and no traceback)."""
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]
