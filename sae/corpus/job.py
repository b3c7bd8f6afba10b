"""An embedding job over a corpus: plan its outputs, stream chunks through the engine, resume.

:func:`embed_corpus` is what ``sae embed`` runs on one machine: each chunk of the input
is read, embedded and written before the next is read, so memory depends on the chunk
size, not on the input. :mod:`sae.corpus.cluster` runs the same :class:`Job` with Ray.
Both write the same bytes: chunks, embeddings and output tables do not depend on who
computed them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sae.corpus.dataset import find_parts, is_dataset, prepare_output_dir
from sae.corpus.sinks import DTYPES, NpySink, ParquetSink, output_schema, output_table, readable_parts
from sae.corpus.sources import Columns, Source, open_source
from sae.corpus.state import (
    EMBED_POLICY,
    DatasetState,
    ResumePolicy,
    ResumeRefusedError,
    ResumeState,
    resumable_rows,
    state_dir,
    text_digest,
)
from sae.errors import InputError, SaeError
from sae.io import check_writable, output_format

log = logging.getLogger(__name__)

#: Rows per chunk, resume step and Parquet row group: 48 MiB of 384-d float32 embeddings.
DEFAULT_CHUNK_ROWS = 32768
#: The dataset-wide resume record, inside the output directory.
DATASET_STATE = ".dataset.resume.json"


#: The most rows a chunk may have (far more than any chunk's memory allows).
MAX_CHUNK_ROWS = (1 << 31) - 1


@dataclass(frozen=True)
class EmbedOptions:
    """What a job writes. Every field is part of a run's identity: a resumed run must match."""

    text_column: str = "text"
    keep_columns: tuple[str, ...] = ()
    dtype: str = "float32"  #: of the embeddings written: float32 or float16
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    resume: bool = False  #: continue an interrupted run of the same job

    def __post_init__(self) -> None:
        # Types first, each naming its field: a wrong one otherwise fails far from here (a float
        # chunk_rows as an IndexError mid-read, a str keep_columns as "'e' is listed twice").
        if not isinstance(self.text_column, str):
            raise TypeError(f"EmbedOptions.text_column must be a str, got {type(self.text_column).__name__}")
        if isinstance(self.keep_columns, str | bytes) or not isinstance(self.keep_columns, tuple | list):
            raise TypeError("EmbedOptions.keep_columns must be a tuple or list of column names, got "
                            f"{type(self.keep_columns).__name__} {self.keep_columns!r}")
        if not all(isinstance(name, str) for name in self.keep_columns):
            raise TypeError(f"EmbedOptions.keep_columns must hold column names (str), got {self.keep_columns!r}")
        # A list is kept as the tuple the field promises (the options stay hashable); the
        # identity stores a list of them either way.
        object.__setattr__(self, "keep_columns", tuple(self.keep_columns))
        if not isinstance(self.dtype, str):
            raise TypeError(f"EmbedOptions.dtype must be a str ({' or '.join(DTYPES)}), "
                            f"got {type(self.dtype).__name__}")
        if isinstance(self.chunk_rows, bool) or not isinstance(self.chunk_rows, int):
            raise TypeError(f"EmbedOptions.chunk_rows must be an int, got {type(self.chunk_rows).__name__} "
                            f"{self.chunk_rows!r}")
        if not isinstance(self.resume, bool):
            raise TypeError(f"EmbedOptions.resume must be a bool, got {self.resume!r}")
        if self.dtype not in DTYPES:
            raise InputError(f"--dtype: {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.chunk_rows < 1:
            raise InputError(f"--chunk-rows: must be >= 1, got {self.chunk_rows}")
        if self.chunk_rows > MAX_CHUNK_ROWS:  # pyarrow takes a batch size as a C long
            raise InputError(f"--chunk-rows: must be at most {MAX_CHUNK_ROWS:,}, got {self.chunk_rows}")


def path_arg(name: str, value: Any) -> str:
    """``value`` (a str or an os.PathLike naming a str path) as a str; TypeError naming ``name`` otherwise."""
    path = os.fspath(value) if isinstance(value, str | os.PathLike) else None
    if not isinstance(path, str):
        raise TypeError(f"{name} must be a str or an os.PathLike, got {type(value).__name__}")
    return path


class Progress(Protocol):
    """Where a job reports rows: ``start`` once (``total`` None when unknown), then ``advance``."""

    def start(self, total: int | None, done: int) -> None: ...

    def advance(self, rows: int) -> None: ...


class SilentProgress:
    """A :class:`Progress` that shows nothing."""

    def start(self, total: int | None, done: int) -> None:
        pass

    def advance(self, rows: int) -> None:
        pass


@dataclass
class EmbedSummary:
    """What a job did."""

    rows: int  #: rows in the outputs written
    embedded: int  #: rows embedded by this run (fewer than ``rows`` when it resumed)
    outputs: list[Path]
    seconds: float

    @property
    def rate(self) -> float:
        """Rows embedded per second by this run."""
        return self.embedded / self.seconds if self.seconds > 0 else float("inf")


class TruncationTally(logging.Filter):
    """Counts the engine's warnings about truncated texts, one per ``embed`` call, so that a
    job of many chunks reports them once (:meth:`report`) instead of once per chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.texts = 0
        self.cap = 0

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if "were truncated" in str(record.msg) and len(args) == 3 and isinstance(args[0], int):
            self.texts += args[0]
            self.cap = int(args[1])
            return False
        return True

    def __enter__(self) -> TruncationTally:
        logging.getLogger("sae.engine").addFilter(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        logging.getLogger("sae.engine").removeFilter(self)

    def add(self, texts: int, cap: int) -> None:
        """Count truncations seen elsewhere (by a Ray worker)."""
        self.texts += texts
        self.cap = max(self.cap, cap)

    def report(self) -> None:
        """Log the total, once."""
        if self.texts:
            log.warning("%d text(s) longer than %d tokens were truncated to %d tokens", self.texts, self.cap, self.cap)


@contextmanager
def writing(out: Path | str) -> Iterator[None]:
    """The operating system refusing a write of ``out`` (a full disk, a file size limit)
    as one line and exit 1: a failure of the system, not of the input, so the caller
    keeps the resume state and ``--resume`` goes on once there is room."""
    try:
        yield
    except OSError as exc:
        # pyarrow's strerror is "Error writing bytes to file. Detail: [errno 28] ..."
        reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc)).splitlines()[0]
        raise SaeError(f"{out}: writing failed: {reason}") from None


@dataclass(frozen=True)
class Output:
    """One output file of a job and the source it is made from."""

    source: Source
    path: Path
    format: str  #: "parquet" or "npy"
    relative: str | None = None  #: a dataset part's path below OUT
    #: Parquet: every column in pyarrow's default encodings, not plain embeddings (sae teach;
    #: see :class:`~sae.corpus.sinks.ParquetSink`)
    compact: bool = False


@dataclass
class Job:
    """The outputs of ``sae embed INPUT -o OUT``, their schemas and identities.

    Planning opens the inputs and checks them and the output, before any engine
    exists. :meth:`bind` then names the engine: ``algorithm`` (its content hash),
    ``backend`` ("cpu" or "gpu") and ``dim``, which join the options in each output's
    identity, since a resumed run must embed as the interrupted one did.
    """

    input: str
    output: str
    options: EmbedOptions = EmbedOptions()
    algorithm: str = ""
    backend: str = ""
    dim: int = 0
    long_texts: str = "window"
    outputs: list[Output] = field(init=False)
    dataset_dir: Path | None = field(init=False, default=None)
    _finished: DatasetState | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        # Paths from Python may be os.PathLike; the job keeps them as the str the CLI gives.
        self.input = path_arg("input", self.input)
        self.output = path_arg("output", self.output)
        if not self.input:  # Path("") is the current directory, which would be embedded as a dataset
            raise InputError("INPUT is empty: name a file, a directory or glob of Parquet files, or - for stdin")
        if not isinstance(self.options, EmbedOptions):  # a dict would fail later, as an AttributeError
            raise TypeError(f"options must be an EmbedOptions, got {type(self.options).__name__}")
        opts = self.options
        columns = Columns(opts.text_column, tuple(opts.keep_columns))
        if is_dataset(self.input):
            created = not Path(self.output).exists()
            self.dataset_dir = prepare_output_dir(self.output)
            try:
                parts = find_parts(self.input, exclude=self.dataset_dir)
                self.outputs = [
                    Output(open_source(p.path, columns, opts.chunk_rows),
                           part_output(self.dataset_dir, p.relative, p.path), "parquet", p.relative)
                    for p in parts
                ]
            except BaseException:
                if created:  # refused before any work: leave no empty OUT behind
                    self.dataset_dir.rmdir()
                raise
            return
        out = check_writable(self.output, inputs=(self.input,))
        fmt = output_format(out)
        if fmt == "npy" and columns.keep:
            raise InputError(f"{self.output}: a .npy output holds only embeddings; --keep-columns needs Parquet")
        self.outputs = [Output(open_source(self.input, columns, opts.chunk_rows), out, fmt)]

    def summary(self, rows_written: int, embedded: int, seconds: float) -> EmbedSummary:
        """The summary of a finished run that wrote ``rows_written`` rows (more in the outputs
        when parts of a dataset were finished by the run it resumed)."""
        rows = self.rows if self.rows is not None else rows_written
        return EmbedSummary(rows, embedded, [o.path for o in self.outputs], seconds)

    def bind(self, algorithm: str, backend: str, dim: int, long_texts: str = "window") -> Job:
        """Name the engine that embeds this job (see the class docstring); returns the job."""
        self.algorithm, self.backend, self.dim, self.long_texts = algorithm, backend, dim, long_texts
        return self

    @property
    def rows(self) -> int | None:
        """Rows in the whole input, when known before reading it."""
        counts = [o.source.rows for o in self.outputs]
        return None if any(c is None for c in counts) else sum(c for c in counts if c is not None)

    def schema(self, output: Output) -> Any:
        return output_schema(output.source.schema(), self.dim, self.options.dtype, {"sae.algorithm": self.algorithm})

    def identity(self, output: Output) -> dict[str, Any]:
        opts = self.options
        return {
            "input": output.source.identity(),
            "format": output.format,
            "dtype": opts.dtype,
            "chunk_rows": opts.chunk_rows,
            "text_column": opts.text_column,
            "keep_columns": list(opts.keep_columns),
            "algorithm": self.algorithm,
            "backend": self.backend,
            "long_texts": self.long_texts,
        }

    # -- resuming ---------------------------------------------------------------------

    def pending(self) -> Iterator[Output]:
        """The outputs still to write: all of them, or on ``--resume`` of a dataset those
        an interrupted run did not finish. Call :meth:`done` after each."""
        if self.dataset_dir is not None:
            identity = {"parts": {o.relative: self.identity(o) for o in self.outputs}}
            with writing(self.output):
                self._finished = DatasetState.open(self.dataset_dir / DATASET_STATE, identity,
                                                   self.options.resume, self.output)
        for output in self.outputs:
            if self._finished is None or output.relative not in self._finished.done:
                yield output

    def done(self, output: Output) -> None:
        if self._finished is not None and output.relative is not None:
            with writing(self.output):
                self._finished.mark(output.relative)

    def complete(self) -> None:
        """Every output is written: forget the dataset's resume record."""
        if self._finished is not None:
            self._finished.remove()

    def resumable_chunks(self, output: Output) -> int:
        """Chunks of ``output`` that ``--resume`` keeps; an :class:`InputError` when the
        interrupted run differs (checked again, under a lock, by :meth:`open`)."""
        state = ResumeState.inspect(output.path, self.identity(output), self.options.resume)
        if state is None:
            return 0
        if output.format == "parquet":  # as OutputRun will find them
            return readable_parts(state_dir(output.path), self.schema(output), len(state.chunks))[0]
        return len(state.chunks)

    def resumed_rows(self) -> int:
        """Rows an interrupted run already wrote that ``--resume`` keeps (read, not checked)."""
        if not self.options.resume:
            return 0
        rows = 0
        finished = DatasetState.peek(self.dataset_dir / DATASET_STATE) if self.dataset_dir else set()
        for output in self.outputs:
            if output.relative in finished:
                rows += output.source.rows or 0
            else:
                rows += resumable_rows(output.path)
        return rows

    def open(self, output: Output) -> OutputRun:
        """Start writing ``output``: a fresh state, or the interrupted run's on ``--resume``."""
        if output.relative is not None:
            output.path.parent.mkdir(parents=True, exist_ok=True)  # a part in a subdirectory
        return OutputRun(output, self.schema(output), self.identity(output), self.options.resume)


def part_output(out_dir: Path, relative: str, source: Path) -> Path:
    """Where a dataset part's output goes, checked before any work as a single OUT is
    (:func:`~sae.io.check_writable`: not a directory, pipe or device; a symbolic link
    written through), and the directories it needs below ``out_dir`` not files."""
    path = out_dir / relative
    folder = out_dir
    for name in Path(relative).parts[:-1]:
        folder = folder / name
        if folder.exists() and not folder.is_dir():
            raise InputError(f"{folder}: is a file, where the output of the part {relative} needs a directory")
        if not folder.exists():
            return path  # created by Job.open; nothing below it exists yet
    return check_writable(path, inputs=(source,))


class OutputRun:
    """Writing one output, chunk after chunk; a context manager that keeps the resume
    state on failure (except when the input itself is bad and the ``policy`` says that a
    resumed run would only meet it again)."""

    def __init__(self, output: Output, schema: Any, identity: dict[str, Any], resume: bool,
                 policy: ResumePolicy = EMBED_POLICY) -> None:
        self.output = output
        self.schema = schema
        self.policy = policy
        with writing(output.path):
            self.state = ResumeState.open(output.path, identity, resume, policy)
            try:
                self._drop_damaged_parts()
                if output.format == "npy":
                    self.sink: Any = NpySink(output.path, self.state.directory, schema, self.state.rows)
                else:
                    self.sink = ParquetSink(output.path, self.state.directory, schema, policy.start_over,
                                            compact=output.compact)
            except BaseException:
                self.state.close()
                raise
        self.chunk = 0  #: the next chunk to read
        self.rows = 0
        self._closed = False

    def _drop_damaged_parts(self) -> None:
        """Resume before the first saved chunk that cannot be read (a damaged disk, a file
        touched by hand): the chunks before it are good, and it and the rest are embedded
        again, rather than refusing the whole state."""
        if self.output.format != "parquet" or not self.state.chunks:
            return
        kept, reason = readable_parts(self.state.directory, self.schema, len(self.state.chunks))
        if kept < len(self.state.chunks):
            log.warning("%s: its saved chunk %d is unreadable (%s); embedding again from row %d", self.output.path,
                        kept, reason, sum(c.rows for c in self.state.chunks[:kept]) + 1)
            self.state.keep(kept)

    @property
    def resumed_chunks(self) -> int:
        return len(self.state.chunks)

    def __enter__(self) -> OutputRun:
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        self.close(exc)

    def close(self, exc: BaseException | None = None) -> None:
        """Finish the output (rename it into place, drop the state), or after ``exc`` drop
        the unfinished file and keep the state, except when the input itself is bad and
        the policy does not keep it: a resumed run would meet the same rows again.
        Closing twice does nothing."""
        if self._closed:
            return
        if exc is None:
            try:
                with writing(self.output.path):
                    self.sink.finish()
            except BaseException as failure:
                self.close(failure)
                raise
            self._closed = True
            self.state.remove()
            return
        self._closed = True
        self.sink.abort()
        # Input that fails while the finished chunks are read back (a closed stdin, another
        # stream) is no reason to lose them: as a refused resume, the state stays.
        replaying = self.chunk < len(self.state.chunks)
        bad_input = isinstance(exc, InputError) and not isinstance(exc, ResumeRefusedError) and not replaying
        if bad_input and not self.policy.keep_on_bad_input:
            self.state.remove()
        else:
            self.state.close()

    def skip_resumed(self, chunks: Iterator[Any]) -> None:
        """Read past the chunks the interrupted run finished, checking that they hold the
        same texts, and put their output back in place."""
        out = self.output.path
        for record in self.state.chunks:
            chunk = next(chunks, None)
            if chunk is None:
                raise ResumeRefusedError(f"{out}: cannot resume, the input now ends before row {self.rows + 1}, "
                                    "where the interrupted run had gone past")
            if chunk.num_rows != record.rows or text_digest(chunk) != record.digest:
                first, last = self.rows + 1, self.rows + record.rows
                raise ResumeRefusedError(f"{out}: cannot resume, rows {first}-{last} of the input differ from the "
                                         f"interrupted run's ({self.policy.start_over})")
            with writing(out):
                self.sink.replay(self.chunk)
            self.chunk += 1
            self.rows += chunk.num_rows

    def write(self, table: Any, notes: dict[str, Any] | None = None) -> None:
        """Write the next chunk's output table, then record it as finished, with ``notes``
        (see :class:`~sae.corpus.state.ChunkRecord`)."""
        with writing(self.output.path):
            self.sink.write(self.chunk, table)
            self.state.commit(table.num_rows, text_digest(table), notes)
        self.chunk += 1
        self.rows += table.num_rows


class WriteBehind:
    """Writes a run's chunks on a thread of their own, one at a time and in order, so that
    writing chunk k overlaps embedding chunk k + 1 (one more chunk in memory).

    :meth:`wait` raises a failed write; leaving the ``with`` block waits for the write in
    flight, so the run is never closed under it.
    """

    def __init__(self, run: OutputRun) -> None:
        self.run = run
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sae-write")
        self._pending: Future[None] | None = None

    def write(self, table: Any) -> None:
        self.wait()
        self._pending = self._pool.submit(self.run.write, table)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._pool.shutdown(wait=True)  # a write's own error is raised by wait(), not here


# -- on this machine ------------------------------------------------------------------------


def embed_corpus(
    input: str | os.PathLike[str], output: str | os.PathLike[str], engine: Any, options: EmbedOptions = EmbedOptions(),
    progress: Progress | None = None,
) -> EmbedSummary:
    """Embed INPUT into OUT with ``engine`` (a :class:`sae.Engine`), one chunk at a time.

    INPUT: a text file (one text per line), a Parquet or Arrow file, ``-`` for stdin, or
    a directory or glob of Parquet files (then OUT is a directory with one output per
    part). OUT: Parquet, or ``.npy`` (embeddings only). Both may be a str or an os.PathLike.
    Raises :class:`InputError` for bad input or options, before any work where it can be
    found without reading the rows; TypeError for an argument or option of the wrong type.
    """
    return run_job(Job(input, output, options), engine, progress)


def run_job(job: Job, engine: Any, progress: Progress | None = None) -> EmbedSummary:
    """Run a planned :class:`Job` on this machine with ``engine``."""
    job.bind(engine.algorithm.content_hash, engine.backend.name, engine.dim, engine.long_texts)
    progress = progress or SilentProgress()
    start = time.perf_counter()
    progress.start(job.rows, job.resumed_rows())
    embedded = rows = 0
    with TruncationTally() as truncated:
        for out in job.pending():
            with job.open(out) as run, WriteBehind(run) as writer:
                chunks = out.source.chunks()
                run.skip_resumed(chunks)
                for chunk in chunks:
                    embeddings = engine.embed(chunk.column("text").to_pylist(), progress=progress.advance)
                    writer.write(output_table(chunk, embeddings, run.schema))
                    embedded += chunk.num_rows
                writer.wait()
            rows += run.rows
            job.done(out)
    job.complete()
    truncated.report()
    return job.summary(rows, embedded, time.perf_counter() - start)


def embed_in_memory(input: str, output: str, engine: Any) -> int:
    """``sae embed`` as it was before streaming: read every text, embed them in one call,
    write one table. Kept as the anchor that tools/bench_stream.py measures against."""
    from sae.io import read_texts, write_embeddings

    check_writable(output)
    texts = read_texts(input)
    write_embeddings(output, texts, engine.embed(texts))
    return len(texts)
