"""A teaching job: a corpus streamed through a teacher into a teacher file, resumable.

``sae teach CORPUS -o TEACHER.parquet`` reads CORPUS a chunk at a time (the readers of
:mod:`sae.corpus.sources`), embeds each chunk with the teacher and writes it as one
Parquet row group before reading the next (the writer and resume state of ``sae embed``,
:class:`~sae.corpus.job.OutputRun`), so memory depends on the chunk, not on the corpus,
and a run stopped by Ctrl-C, ``kill`` or a crash keeps every finished chunk.

Beside ``DIR/TEACHER.parquet`` the state lives in ``DIR/.TEACHER.parquet.resume/`` while it
is written: ``state.json`` (the options below, and for every finished chunk its rows, a
digest of its texts and how many of them the teacher cut) and the finished chunks as Arrow
files. The same command with ``--resume`` checks the corpus's texts against those digests,
copies the finished chunks back and goes on; the file it ends with holds the same bytes as
a run never interrupted. The teacher file appears at its path only complete (renamed into
place); the state is removed then.

The corpus is identified by its texts, not by its file's size or date: a corpus fixed or
extended after the interruption resumes as long as the finished chunks' texts are unchanged
(what ``sae embed`` refuses, since its chunks cost seconds, not minutes of a teacher).
Unlike ``sae embed``, a run without ``--resume`` never discards an interrupted run's
finished chunks: it is refused, with the way to continue them or to start over.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sae.corpus.job import Output, OutputRun, Progress, SilentProgress, path_arg
from sae.corpus.sinks import output_schema, output_table
from sae.corpus.sources import Columns, Source, open_source
from sae.corpus.state import ResumePolicy, ResumeState, check_not_written, state_dir
from sae.errors import InputError
from sae.io import check_writable, output_format
from sae.teacher import DEFAULT_MODEL, PRECISIONS, TaughtChunk, model_fingerprint

#: Texts per chunk: a resume step and a Parquet row group. About 25 s of the default teacher
#: in settled precision at 80 texts/s on 2 cores, the most an interruption loses; 3 MiB of
#: embeddings.
DEFAULT_TEACH_CHUNK_ROWS = 2048


@dataclass(frozen=True)
class TeachOptions:
    """What a teaching job computes. Every field but ``resume`` is part of its identity:
    a resumed run must embed as the interrupted one did, or its file would mix the two."""

    model: str = DEFAULT_MODEL  #: the teacher, as named (recorded in the file's metadata)
    precision: str = "settled"  #: a key of :data:`sae.teacher.PRECISIONS`
    batch_size: int = 64  #: texts per teacher batch
    #: texts per chunk, rounded up to a multiple of ``batch_size`` (:attr:`chunk`)
    chunk_rows: int = DEFAULT_TEACH_CHUNK_ROWS
    resume: bool = False  #: continue an interrupted run of the same job

    def __post_init__(self) -> None:
        if isinstance(self.model, os.PathLike):  # a model directory: recorded as the str it names
            object.__setattr__(self, "model", os.fspath(self.model))
        if not isinstance(self.model, str):
            raise TypeError(f"TeachOptions.model must be a str or an os.PathLike, got {type(self.model).__name__}")
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        for flag, value in (("--batch-size", self.batch_size), ("--chunk-rows", self.chunk_rows)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{flag}: must be an integer >= 1, got {value!r}")

    @property
    def chunk(self) -> int:
        """Texts per chunk: ``chunk_rows`` rounded up to whole teacher batches, so that every
        chunk but the corpus's last is cut into full batches (in float32 a text's last bits
        depend on its batch; the chunks, and so the batches, are the same in every run)."""
        return -(-self.chunk_rows // self.batch_size) * self.batch_size


class Teacher(Protocol):
    """What a teaching job embeds with: :class:`sae.teacher.SentenceTeacher`, or in tests
    anything with the same attributes."""

    dim: int  #: embedding dimension
    limit: int  #: tokens the teacher reads of a text (named when texts are cut)
    label: str  #: the ``precision`` the file records

    def embed(self, texts: list[str], progress: Callable[[int], None] | None = None) -> TaughtChunk: ...


@dataclass
class TeachSummary:
    """What a teaching job did."""

    rows: int  #: texts in the teacher file
    embedded: int  #: texts the teacher embedded in this run (fewer when it resumed)
    dim: int
    seconds: float
    cut: int  #: texts of the whole file the teacher cut to its limit
    first_cut: int  #: the file's row (from 0) of the first of them; -1 when none
    limit: int  #: the teacher's limit, in tokens


class TeachJob:
    """``sae teach CORPUS -o OUTPUT``, planned: the output and the corpus are checked, and
    an interrupted run's state too (refused without ``resume``, compared with it), before
    any teacher is loaded. :meth:`run` then embeds with one."""

    def __init__(self, corpus: str | os.PathLike[str], output: str | os.PathLike[str],
                 options: TeachOptions = TeachOptions()) -> None:
        self.corpus = path_arg("corpus", corpus)
        self.output = path_arg("output", output)
        if not isinstance(options, TeachOptions):
            raise TypeError(f"options must be a TeachOptions, got {type(options).__name__}")
        self.options = options
        #: a model replaced under the same name or path must not resume (None: a hub name)
        self._model_files = model_fingerprint(options.model)
        self.path = check_writable(self.output, (self.corpus,))  # a Parquet corpus is not replaced by its teacher file
        output_format(self.output, allowed=("parquet",))
        # sae teach has no --text-column: read 'text', and name no flag when it is missing.
        self.source: Source = open_source(self.corpus, Columns(flags=False), options.chunk)
        self.policy = ResumePolicy(command="sae teach", start_over=f"delete {state_dir(self.path)} to start over",
                                   discard=False, keep_on_bad_input=True)
        check_not_written(self.path, self.policy.command)
        ResumeState.inspect(self.path, self.identity(), options.resume, self.policy)

    def identity(self) -> dict[str, Any]:
        """What a resumed run must share with the interrupted one; the corpus is checked by
        the digests of its finished chunks' texts."""
        opts = self.options
        return {"command": "teach", "format": "parquet", "model": opts.model, "model_files": self._model_files,
                "precision": opts.precision, "batch_size": opts.batch_size, "chunk_rows": opts.chunk}

    def metadata(self, teacher: Teacher) -> dict[str, str]:
        """The teacher file's metadata, as ``sae teach`` has always written it."""
        return {"teacher": self.options.model, "normalized": "true", "source": self.corpus,
                "precision": teacher.label}

    def run(self, teacher: Teacher, progress: Progress | None = None) -> TeachSummary:
        """Embed the corpus with ``teacher`` a chunk at a time and write the teacher file."""
        progress = progress or SilentProgress()
        start = time.perf_counter()
        schema = output_schema(self.source.schema(), teacher.dim, "float32", self.metadata(teacher))
        # Compact: the encodings write_teacher gave the file in one go (settled values repeat).
        output = Output(self.source, Path(self.path), "parquet", compact=True)
        cuts = CutTally()
        embedded = 0
        with OutputRun(output, schema, self.identity(), self.options.resume, self.policy) as run:
            progress.start(self.source.rows, run.state.rows)
            chunks = self.source.chunks()
            run.skip_resumed(chunks)
            row = 0
            for record in run.state.chunks:
                cuts.add(row, record.notes or {})
                row += record.rows
            for chunk in chunks:
                taught = teacher.embed(chunk.column("text").to_pylist(), progress.advance)
                notes = {"cut": taught.cut, "first_cut": taught.first_cut}
                run.write(output_table(chunk, taught.embeddings, schema), notes)
                cuts.add(row, notes)
                row += chunk.num_rows
                embedded += chunk.num_rows
        return TeachSummary(rows=row, embedded=embedded, dim=teacher.dim, seconds=time.perf_counter() - start,
                            cut=cuts.count, first_cut=cuts.first, limit=teacher.limit)


class CutTally:
    """The texts the teacher cut, over the chunks of a file: how many, and the first."""

    def __init__(self) -> None:
        self.count = 0
        self.first = -1

    def add(self, first_row: int, notes: dict[str, Any]) -> None:
        """Count a chunk's ``notes`` (``cut``, ``first_cut``); the chunk starts at ``first_row``."""
        cut, first = int(notes.get("cut", 0)), int(notes.get("first_cut", -1))
        if cut and self.first < 0:
            self.first = first_row + first
        self.count += cut


def teach_corpus(corpus: str | os.PathLike[str], output: str | os.PathLike[str], teacher: Teacher,
                 options: TeachOptions = TeachOptions(), progress: Progress | None = None) -> TeachSummary:
    """Embed CORPUS (a ``.txt`` file, one text per line; a ``.parquet``/``.arrow`` table with a
    ``text`` column; ``-`` for stdin; a named pipe) with ``teacher`` into the teacher file
    OUTPUT, a chunk at a time, resumable (see the module docstring). Raises
    :class:`InputError` for bad input, options or a refused resume, before any work where it
    can be found without reading the rows."""
    return TeachJob(corpus, output, options).run(teacher, progress)


__all__ = ["DEFAULT_TEACH_CHUNK_ROWS", "TeachJob", "TeachOptions", "TeachSummary", "Teacher", "teach_corpus"]
