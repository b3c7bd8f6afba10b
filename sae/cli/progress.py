"""A progress bar on stderr for the commands that stream a corpus (``sae embed``, ``sae teach``)."""

from __future__ import annotations

import sys
from typing import Any


class ProgressBar:
    """Rows done, rate and time left (when the input's size is known) on stderr; a
    :class:`sae.corpus.job.Progress`. Shown only at a terminal (none in logs), and only
    when at least ``min_rows`` rows are left, or their number is unknown."""

    def __init__(self, label: str = "embedding", min_rows: int = 0) -> None:
        self.label = label
        self.min_rows = min_rows
        self._bar: Any = None

    def start(self, total: int | None, done: int) -> None:
        if not sys.stderr.isatty() or (total is not None and total - done < self.min_rows):
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn(self.label), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=total, completed=done, rate="")

    def advance(self, rows: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, rows)
            speed = self._bar.tasks[0].speed
            self._bar.update(self._task, rate=f"{speed:,.0f} texts/s" if speed else "")

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
