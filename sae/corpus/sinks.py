"""Outputs written a chunk at a time, complete only at the end, resumable in between.

Every chunk of the input becomes an **output table**: ``text`` (string), ``embedding``
(fixed-size list of float32 or float16) and the kept columns (:func:`output_table`).
A sink writes them in order to a temporary file in the output's state directory and
renames it over the output when the last one is in, so an existing output survives any
failure (the rename is atomic).

* :class:`ParquetSink` writes one row group per chunk. A Parquet file cannot be
  continued once its writer is gone (its footer is written last), so each chunk is also
  kept as an Arrow IPC file in the state directory; a resumed run copies those back
  into a new Parquet file and goes on. They are removed when the output is complete.
* :class:`NpySink` writes rows after a ``.npy`` header that is rewritten with the final
  shape at the end; a resumed run cuts the file after the last finished chunk.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from sae.corpus.state import EMBED_POLICY, ResumeRefusedError, sync
from sae.errors import InputError

DTYPES = ("float32", "float16")
#: Text columns are small and compress well; embeddings do not and are stored plain,
#: which also saves the time of trying (about a fifth of the embedding time for float32).
TEXT_CODEC = "snappy"


def output_schema(chunk_schema: Any, dim: int, dtype: str, metadata: dict[str, str] | None = None) -> Any:
    """The output's schema: ``text``, ``embedding`` (fixed-size list of ``dtype``), kept columns."""
    import pyarrow as pa

    if dtype not in DTYPES:
        raise InputError(f"--dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    value = pa.float16() if dtype == "float16" else pa.float32()
    fields = [chunk_schema.field("text"), pa.field("embedding", pa.list_(value, dim))]
    fields += [chunk_schema.field(i) for i in range(1, len(chunk_schema))]
    return pa.schema(fields, metadata=metadata)


def output_table(chunk: Any, embeddings: np.ndarray, schema: Any) -> Any:
    """A chunk's output table: its ``text``, its ``embeddings`` as the schema's dtype, its kept columns."""
    import pyarrow as pa

    value_type = schema.field("embedding").type.value_type
    dtype = np.float16 if value_type == pa.float16() else np.float32
    values = np.ascontiguousarray(embeddings, dtype=dtype)
    column = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
    arrays = [chunk.column(0), column] + [chunk.column(i) for i in range(1, chunk.num_columns)]
    return pa.Table.from_arrays(arrays, schema=schema)


def embeddings_of(table: Any) -> np.ndarray:
    """The ``(rows, dim)`` embeddings of an output table, without a copy where possible."""
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)


def _replace_with_umask(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` (its data on disk) over ``out`` with the permissions a plain
    ``open()`` would give, and wait for the rename to be on disk."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    sync(tmp)
    os.replace(tmp, out)
    sync(out.parent)


class ParquetSink:
    """One row group per chunk, resumable through the chunks kept as Arrow files.

    ``compact`` writes every column with pyarrow's default encodings (Snappy, dictionary
    pages), as ``pq.write_table`` does, instead of plain embeddings: a teacher's settled
    values (multiples of 2⁻²⁰) repeat enough for a dictionary to pay, and its chunks take
    minutes, not the milliseconds that trying costs (4,000 STS-B sentences in chunks of
    2,048: 5.2 MB against 6.2 MB plain; 0.16 s against 0.02 s to write)."""

    def __init__(self, out: Path, workdir: Path, schema: Any, start_over: str = EMBED_POLICY.start_over,
                 compact: bool = False) -> None:
        self.out = out
        self.schema = schema
        self.start_over = start_over  #: the advice when a kept chunk cannot be resumed
        self.compact = compact
        self.parts = workdir / "parts"
        self.parts.mkdir(exist_ok=True)
        self.tmp = workdir / "output.parquet.tmp"
        self._writer: Any = None

    def _open(self) -> Any:
        if self._writer is None:
            import pyarrow.parquet as pq

            if self.compact:
                self._writer = pq.ParquetWriter(self.tmp, self.schema)
                return self._writer
            plain = _leaf_paths(self.schema)
            embedding = [p for p in plain if p == "embedding" or p.startswith("embedding.")]
            others = [p for p in plain if p not in embedding]
            codecs = {p: TEXT_CODEC for p in others} | {p: "none" for p in embedding}
            self._writer = pq.ParquetWriter(
                self.tmp, self.schema, compression=codecs, use_dictionary=others,
                write_statistics=others, write_page_index=False,
            )
        return self._writer

    def _part(self, index: int) -> Path:
        return self.parts / f"{index:08d}.arrow"

    def replay(self, index: int) -> int:
        """Write kept chunk ``index`` (a resumed run's earlier work) again; its rows."""
        import pyarrow as pa

        try:
            with pa.OSFile(str(self._part(index))) as source:
                table = pa.ipc.open_file(source).read_all()
        except (pa.ArrowException, OSError) as exc:  # damaged past its footer (readable_parts checks that)
            raise ResumeRefusedError(f"{self.out}: cannot resume, its saved chunk {index} is unreadable ({exc}); "
                                     f"{self.start_over}") from None
        if table.schema != self.schema:
            raise ResumeRefusedError(f"{self.out}: cannot resume, its saved chunk {index} has another schema; "
                                     f"{self.start_over}")
        self._open().write_table(table, row_group_size=max(table.num_rows, 1))
        return table.num_rows

    def write(self, index: int, table: Any) -> None:
        """Keep chunk ``index`` (renamed into place once whole), then add it as a row group."""
        import pyarrow as pa

        part = self._part(index)
        tmp = part.with_suffix(".tmp")
        try:
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, self.schema) as writer:
                writer.write_table(table)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk: give back the room of the half-written part
            raise
        sync(tmp)  # on disk before the state names it: it must survive a crash of the system too
        os.replace(tmp, part)
        sync(self.parts)
        self._open().write_table(table, row_group_size=max(table.num_rows, 1))

    def finish(self) -> None:
        """Close the file and rename it over the output."""
        self._open().close()
        self._writer = None
        _replace_with_umask(self.tmp, self.out)

    def abort(self) -> None:
        """Drop the unfinished file; the kept chunks stay for a resumed run."""
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:
                pass
            self._writer = None
        self.tmp.unlink(missing_ok=True)


def readable_parts(workdir: Path, schema: Any, chunks: int) -> tuple[int, str | None]:
    """How many of the first ``chunks`` chunks that a :class:`ParquetSink` kept in ``workdir``
    open as Arrow files of ``schema``, and why the next one does not (None if all do).
    Only their footers are read: cheap, and it finds a missing, cut or overwritten file."""
    import pyarrow as pa

    for index in range(chunks):
        try:
            with pa.OSFile(str(workdir / "parts" / f"{index:08d}.arrow")) as source:
                same = pa.ipc.open_file(source).schema == schema
        except (pa.ArrowException, OSError) as exc:
            return index, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not same:
            return index, "another schema"
    return chunks, None


def _leaf_paths(schema: Any) -> list[str]:
    """The Parquet column paths (``embedding.list.element``) of an Arrow schema, which
    per-column writer options are keyed by."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = pa.BufferOutputStream()
    pq.ParquetWriter(buf, schema).close()
    meta = pq.ParquetFile(pa.BufferReader(buf.getvalue())).schema
    return [meta.column(i).path for i in range(len(meta))]


class NpySink:
    """Rows of a ``(rows, dim)`` array after a ``.npy`` header written last."""

    def __init__(self, out: Path, workdir: Path, schema: Any, rows_done: int) -> None:
        import pyarrow as pa

        value_type = schema.field("embedding").type
        self.out = out
        self.dtype = np.dtype(np.float16 if value_type.value_type == pa.float16() else np.float32)
        self.dim = value_type.list_size
        self.tmp = workdir / "output.npy.tmp"
        self.rows = rows_done
        header = npy_header(self.dtype, 0, self.dim)
        self.header_bytes = len(header)
        size = self.header_bytes + rows_done * self.dim * self.dtype.itemsize
        #: OUT was renamed into place by a run killed before it removed its state
        self.finished = rows_done > 0 and not self.tmp.exists() and self._renamed(workdir / "state.json", size)
        if self.finished:
            self._file: Any = None
        elif rows_done == 0:
            self._file = open(self.tmp, "wb")  # open until finish or abort
            self._file.write(header)
        else:
            if not self.tmp.exists() or self.tmp.stat().st_size < size:
                raise InputError(f"{out}: cannot resume, its unfinished file {self.tmp} is shorter than "
                                 "its state says; run without --resume to start over")
            self._file = open(self.tmp, "r+b")
            self._file.truncate(size)
            self._file.seek(size)

    def _renamed(self, state: Path, size: int) -> bool:
        """Whether OUT is this run's finished file: the rows its state records, in a file
        written after the state's last change (an older OUT is not)."""
        try:
            if self.out.stat().st_size != size or self.out.stat().st_mtime_ns < state.stat().st_mtime_ns:
                return False
            with open(self.out, "rb") as f:
                if np.lib.format.read_magic(f) != (1, 0):  # npy_header writes version 1.0
                    return False
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        except (OSError, ValueError):
            return False
        return shape == (self.rows, self.dim) and not fortran and dtype == self.dtype

    def replay(self, index: int) -> int:
        """Nothing to do: the finished rows are still in the file."""
        return 0

    def write(self, index: int, table: Any) -> None:
        if self.finished:
            raise ResumeRefusedError(f"{self.out}: cannot resume, the input now goes on after row {self.rows}, "
                                     "where the finished output ends; run without --resume to start over")
        rows = embeddings_of(table).astype(self.dtype, copy=False)
        self._file.write(np.ascontiguousarray(rows).data)
        self._file.flush()  # on disk before the state names it: a killed process or a crash loses nothing
        os.fsync(self._file.fileno())
        self.rows += len(rows)

    def finish(self) -> None:
        if self.finished:
            return
        header = npy_header(self.dtype, self.rows, self.dim)
        if len(header) != self.header_bytes:  # pragma: no cover - numpy leaves room for 21 digits
            raise RuntimeError("the .npy header grew")
        self._file.seek(0)
        self._file.write(header)
        self._file.close()  # synced by the rename
        _replace_with_umask(self.tmp, self.out)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()  # the rows written so far stay for a resumed run


def npy_header(dtype: np.dtype, rows: int, dim: int) -> bytes:
    """A ``.npy`` version 1.0 header for a C-ordered ``(rows, dim)`` array. numpy pads it so
    that the first dimension can grow in place, so its length does not depend on ``rows``."""
    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (rows, dim)}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()
