"""Inputs read a chunk at a time: text files, stdin, Parquet and Arrow tables.

Every source yields **chunks**: Arrow tables of ``chunk_rows`` rows (the last one
shorter) with a string column ``text`` and then the kept columns, in input order.
Chunk ``k`` holds input rows ``[k * chunk_rows, (k + 1) * chunk_rows)`` whatever the
input's own layout (lines, record batches, row groups), so chunks, and the output
row groups made from them, depend only on the rows and ``chunk_rows``.

:meth:`Source.chunks` reads them in order from the start (the fast path);
:meth:`Source.read_chunk` reads one by its number, for workers that each read their
own chunks (Ray). Both give the same tables. Sources pickle without open handles.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sae.corpus import lines as _lines
from sae.errors import InputError, one_line
from sae.io import check_named_once, existing_file, non_utf8_column_name, stdin_bytes

#: Table formats by file suffix; anything else is read as text, one text per line.
PARQUET_SUFFIXES = (".parquet",)
ARROW_SUFFIXES = (".arrow", ".feather", ".ipc")


@dataclass(frozen=True)
class Columns:
    """Which input columns to read: the texts, and others carried over to the output."""

    text: str = "text"
    keep: tuple[str, ...] = ()
    #: whether messages may name --text-column and --keep-columns (``sae teach`` has neither)
    flags: bool = True

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for name in self.keep:
            if name in ("text", "embedding"):
                raise InputError(f"--keep-columns: {name!r} would clash with the output's {name!r} column")
            if name in seen:
                raise InputError(f"--keep-columns: {name!r} is listed twice")
            seen.add(name)

    @property
    def read(self) -> list[str]:
        """Input columns to read, each once."""
        return list(dict.fromkeys((self.text, *self.keep)))


class Source:
    """An input read in chunks of ``chunk_rows`` rows; see the module docstring."""

    name: str
    chunk_rows: int
    #: rows in the input, when known before reading it (not for stdin)
    rows: int | None = None
    #: whether :meth:`read_chunk` works (every file except an Arrow stream)
    random_access: bool = True

    @property
    def n_chunks(self) -> int | None:
        if self.rows is None:
            return None
        return -(-self.rows // self.chunk_rows)

    def chunks(self) -> Iterator[Any]:  # Iterator[pyarrow.Table]
        """Every chunk, in order, from the first."""
        raise NotImplementedError

    def read_chunk(self, index: int) -> Any:  # pyarrow.Table
        """Chunk ``index`` alone (when :attr:`random_access`)."""
        raise InputError(f"{self.name}: cannot be read in parts by workers, only in order")

    def identity(self) -> dict[str, Any]:
        """What a resumed run must find unchanged: kind, path, size, modification time, columns."""
        raise NotImplementedError

    def for_workers(self) -> Source:
        """This source as workers elsewhere read it: its file by absolute path, since they do
        not run in this directory. Its :attr:`name`, in messages, stays as given."""
        twin = copy.copy(self)
        path = getattr(self, "path", None)
        if path is not None:
            twin.path = Path(path).absolute()  # type: ignore[attr-defined]
        return twin

    def schema(self) -> Any:  # pyarrow.Schema
        """The schema of every chunk: ``text`` (string), then the kept columns."""
        raise NotImplementedError


def open_source(spec: str | Path, columns: Columns = Columns(), chunk_rows: int = 32768) -> Source:
    """The source INPUT names: ``-`` (stdin, one text per line), a ``.parquet`` or
    ``.arrow``/``.feather``/``.ipc`` table, or any other file as text, one text per line.
    A named pipe or a device (``<(zcat corpus.txt.gz)``) is read once, in order, as stdin is.

    Problems found without reading the rows (a missing file, a missing column, a text
    file that is not UTF-8) are :class:`InputError`\\ s raised here, before any work.
    """
    if chunk_rows < 1:
        raise ValueError(f"open_source: chunk_rows must be >= 1, got {chunk_rows}")
    if str(spec) == "-":
        _lines_only(columns, "<stdin>")
        return StdinSource(chunk_rows)
    path = existing_file(spec, "a .txt, .parquet or .arrow file")
    if not path.is_file():  # a text file is read twice (indexed, then read); a pipe can be read only once
        _lines_only(columns, str(spec))
        return PipeSource(path, chunk_rows)
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return ParquetSource(path, columns, chunk_rows)
    if suffix in ARROW_SUFFIXES:
        return ArrowSource(path, columns, chunk_rows)
    _lines_only(columns, str(path))
    return TextFileSource(path, chunk_rows)


def _lines_only(columns: Columns, name: str) -> None:
    if columns.keep:
        raise InputError(f"{name}: --keep-columns needs a Parquet or Arrow input (a text file has only its lines)")
    if columns.text != "text":
        raise InputError(f"{name}: --text-column needs a Parquet or Arrow input (a text file has only its lines)")


def _file_identity(kind: str, path: Path, **extra: Any) -> dict[str, Any]:
    st = path.stat()
    return {"kind": kind, "path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, **extra}


def _text_table(texts: list[str]):  # -> pyarrow.Table
    import pyarrow as pa

    return pa.table({"text": pa.array(texts, type=pa.string())})


def _text_schema():  # -> pyarrow.Schema
    import pyarrow as pa

    return pa.schema([pa.field("text", pa.string())])


# -- text ----------------------------------------------------------------------------------


class TextFileSource(Source):
    """A text file, one text per line; indexed once (and checked to be UTF-8) when opened."""

    def __init__(self, path: Path, chunk_rows: int) -> None:
        self.path = path
        self.name = str(path)
        self.chunk_rows = chunk_rows
        self.index = _lines.index_lines(path, chunk_rows)
        self.rows = self.index.lines

    def chunks(self) -> Iterator[Any]:
        for k in range(self.index.chunks):
            yield self.read_chunk(k)

    def read_chunk(self, index: int) -> Any:
        return _text_table(_lines.read_chunk(self.path, self.index, index))

    def identity(self) -> dict[str, Any]:
        return _file_identity("text", self.path)

    def schema(self) -> Any:
        return _text_schema()


class StdinSource(Source):
    """Standard input, one text per line, read once in order (its size is not known)."""

    random_access = False

    def __init__(self, chunk_rows: int, stream: Any = None) -> None:
        self.name = "<stdin>"
        self.chunk_rows = chunk_rows
        self._stream = stream

    def _open(self) -> contextlib.AbstractContextManager[BinaryIO]:
        """The stream to read (stdin stays open once read)."""
        return contextlib.nullcontext(self._stream if self._stream is not None else stdin_bytes())

    def chunks(self) -> Iterator[Any]:
        with self._open() as stream:
            for texts in _lines.iter_lines(stream, self.name, self.chunk_rows):
                yield _text_table(texts)

    def identity(self) -> dict[str, Any]:
        return {"kind": "stdin"}

    def schema(self) -> Any:
        return _text_schema()


class PipeSource(StdinSource):
    """A named pipe or a device (``<(zcat corpus.txt.gz)``), one text per line, read once in
    order as stdin is: it cannot be indexed first, as a text file is."""

    def __init__(self, path: Path, chunk_rows: int) -> None:
        super().__init__(chunk_rows)
        self.path = path
        self.name = str(path)

    def _open(self) -> BinaryIO:
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise InputError(f"{self.name}: cannot read ({exc.strerror})") from None

    def identity(self) -> dict[str, Any]:
        # Not the path: a process substitution's /dev/fd/N can differ between a run and its
        # resume. As from stdin, a resume checks the texts themselves (digests per chunk).
        return {"kind": "pipe"}


# -- tables ----------------------------------------------------------------------------------


class _TableSource(Source):
    """Shared by Parquet and Arrow: column checks, and chunks cut from record batches."""

    kind = ""

    def __init__(self, path: Path, columns: Columns, chunk_rows: int) -> None:
        self.path = path
        self.name = str(path)
        self.columns = columns
        self.chunk_rows = chunk_rows
        try:
            self._input_schema = self._open_schema()
            self._check_columns()
        except UnicodeDecodeError:  # pyarrow decodes the footer's names as it reads them
            raise non_utf8_column_name(self.name) from None

    def _open_schema(self) -> Any:
        raise NotImplementedError

    def _check_columns(self) -> None:
        import pyarrow as pa

        names = self._input_schema.names
        for name in self.columns.read:
            check_named_once(names, name, self.name)
            if name not in names and not self.columns.flags:  # as sae.io.read_texts words it
                raise InputError(f"{self.name}: no {name!r} column (columns: {', '.join(names)})")
            if name not in names:
                flag = "--keep-columns" if name != self.columns.text else "--text-column"
                hint = "" if name != "text" or flag != "--text-column" else "; pick one with --text-column"
                raise InputError(f"{self.name}: no {name!r} column ({flag}; columns: {', '.join(names)}){hint}")
        kind = self._input_schema.field(self.columns.text).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type  # dictionary-encoded strings are decoded
        strings = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
        if not (strings or pa.types.is_null(kind)):  # null: an empty file's column (rows are checked)
            raise InputError(f"{self.name}: column {self.columns.text!r} has type {kind}, expected string")

    def schema(self) -> Any:
        import pyarrow as pa

        fields = [pa.field("text", pa.string())]
        fields += [self._input_schema.field(name) for name in self.columns.keep]
        return pa.schema(fields)

    def identity(self) -> dict[str, Any]:
        return _file_identity(self.kind, self.path, columns=str(self.schema()))

    def _batches(self, first_batch: int = 0) -> Iterator[Any]:
        """The input's record batches with the read columns, from one of its row groups
        (Parquet) or record batches (Arrow)."""
        raise NotImplementedError

    def _units(self) -> list[int]:
        """Rows in each unit that :meth:`_batches` can start at."""
        raise NotImplementedError

    def chunks(self) -> Iterator[Any]:
        row = 0
        for table in rechunk(self._batches(), self.chunk_rows):
            yield self._finish(table, row)
            row += table.num_rows

    def read_chunk(self, index: int) -> Any:
        start = index * self.chunk_rows
        unit, before = 0, 0
        units = self._units()
        while unit < len(units) and before + units[unit] <= start:
            before += units[unit]
            unit += 1
        table = take(self._batches(unit), start - before, self.chunk_rows, self.name)
        return self._finish(table, start)

    def _finish(self, table: Any, first_row: int) -> Any:
        """``table`` cut to the output's columns: ``text`` as string without nulls."""
        import pyarrow as pa
        import pyarrow.compute as pc

        text = table.column(self.columns.text)
        if text.null_count:
            row = first_row + pc.index(pc.is_null(text), True).as_py() + 1
            raise InputError(f"{self.name}: column {self.columns.text!r} has a null value in row {row}")
        if text.type != pa.string():
            try:
                text = text.cast(pa.string())
            except (pa.ArrowInvalid, pa.ArrowCapacityError):  # one array of over 2 GiB of text
                raise InputError(f"{self.name}: column {self.columns.text!r}: rows {first_row + 1}-"
                                 f"{first_row + table.num_rows} hold more than 2 GiB of text, more than one "
                                 "chunk can (use a smaller --chunk-rows)") from None
        self._check_valid(self.columns.text, text, first_row)
        kept = [table.column(name) for name in self.columns.keep]
        # Kept columns are copied as they are, so they are checked as the texts are: Parquet
        # would write invalid UTF-8 under its string type without a word, and whoever reads
        # the output would fail on it, with no row number.
        for name, column in zip(self.columns.keep, kept):
            self._check_valid(name, column, first_row)
        return pa.Table.from_arrays([text, *kept], schema=self.schema()).combine_chunks()

    def _check_valid(self, name: str, column: Any, first_row: int) -> None:
        """Refuse invalid UTF-8 in column ``name`` (its strings, or strings nested in lists,
        structs, maps or dictionaries), naming its row. Arrow does not check strings when it
        reads a file, and a bad one would only fail later, in ``to_pylist`` or in a reader of
        the output, with no row number. A full validation of a whole array is cheap (and a
        column of numbers costs it next to nothing); rows are searched only when it fails."""
        import pyarrow as pa

        row, unused = first_row, None
        for array in column.chunks:
            try:
                array.validate(full=True)
            except pa.ArrowInvalid as exc:
                problem = self._invalid_rows(name, array, row, exc)  # called for every array: it may name a row
                unused = unused or problem
            row += len(array)
        if unused:
            # A dictionary is copied whole, values no row uses included: the output would
            # hold it. Said only after the other arrays, one of which may name the row.
            raise InputError(f"{self.name}: column {name!r}: its dictionary in rows {first_row + 1}-{row} holds "
                             f"an invalid value that none of them uses ({unused})")

    def _invalid_rows(self, name: str, array: Any, first_row: int, exc: Exception) -> str | None:
        """Raise for what ``array.validate`` found, naming the row whose strings are not UTF-8.
        Return None when no row of ``array`` holds it and nothing that is written does, and
        the reason when only a dictionary value that no row uses is invalid."""
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        # invalid for another reason than its strings' bytes: a damaged file
        damaged = InputError(f"{self.name}: column {name!r}: cannot read rows {first_row + 1}-"
                             f"{first_row + len(array)} ({reason})")
        try:
            bad = _first_undecodable_row(array)
        except Exception:  # the array is known to be invalid: whatever converting it raised, it is damaged
            raise damaged from None
        if bad is not None:
            raise InputError(f"{self.name}: column {name!r}: invalid UTF-8 in row {first_row + bad + 1}") from None
        if _holds_dictionary(array.type):
            return reason
        if array.type.num_fields:
            # A list or struct cut from a larger record batch keeps the whole batch's values,
            # and validation reads them all; the rows around it are checked with their own
            # chunk, and writers copy only the values a row refers to.
            return None
        raise damaged from None


def _first_undecodable_row(array: Any) -> int | None:
    """The first row of ``array`` whose strings are not UTF-8 (None if none is): halves
    searched by converting them to Python, which decodes every string a row holds, nested
    or through a dictionary, and only those: about two conversions of the array in all."""
    def decodes(first: int, count: int) -> bool:
        try:
            array.slice(first, count).to_pylist()
        except UnicodeDecodeError:
            return False
        return True

    first, count = 0, len(array)
    if decodes(first, count):
        return None
    while count > 1:
        half = count // 2
        if decodes(first, half):
            first, count = first + half, count - half
        else:
            count = half
    return first


def _holds_dictionary(kind: Any) -> bool:
    """Whether values of Arrow type ``kind`` are, or hold, dictionary-encoded ones."""
    import pyarrow as pa

    kind = getattr(kind, "storage_type", kind)  # an extension type: its storage
    if pa.types.is_dictionary(kind):
        return True
    return any(_holds_dictionary(kind.field(i).type) for i in range(kind.num_fields))


class ParquetSource(_TableSource):
    """A Parquet file, read by record batches of its row groups."""

    kind = "parquet"

    def _file(self) -> Any:
        """The file, opened anew: a handle is held only while it is read (a dataset's parts
        are all opened when the job is planned; kept open, a thousand of them ran out of
        file descriptors)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            # Not memory-mapped: mapped pages would count as the process's memory. Not
            # pre-buffered either: pyarrow keeps every pre-buffered row group's bytes until
            # the file is closed (the whole input, by the last chunk); a 1 MiB buffered
            # stream reads a row group's pages as they are decoded, not the group at once.
            return pq.ParquetFile(self.path, pre_buffer=False, buffer_size=1 << 20)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.path}: not a readable .parquet table ({one_line(exc)})") from None

    def _open_schema(self) -> Any:
        with contextlib.closing(self._file()) as file:
            meta = file.metadata
            self.rows = meta.num_rows
            self._groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
            return file.schema_arrow

    def _units(self) -> list[int]:
        return self._groups

    def _batches(self, first_batch: int = 0) -> Iterator[Any]:
        import pyarrow as pa

        groups = list(range(first_batch, len(self._groups)))
        if not groups:
            return
        with contextlib.closing(self._file()) as file:
            try:
                yield from file.iter_batches(
                    batch_size=self.chunk_rows, row_groups=groups, columns=self.columns.read
                )
            except (pa.ArrowException, OSError) as exc:
                raise InputError(f"{self.path}: cannot read its rows ({one_line(exc)})") from None


class ArrowSource(_TableSource):
    """An Arrow IPC file (random access by record batch) or stream (read in order)."""

    kind = "arrow"

    def _reader(self) -> Any:
        import pyarrow as pa

        try:
            source = pa.OSFile(str(self.path))  # not mapped, as for Parquet
            try:
                return pa.ipc.open_file(source), True
            except pa.ArrowInvalid:
                source.seek(0)
                return pa.ipc.open_stream(source), False
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.path}: not a readable {self.path.suffix} table ({one_line(exc)})") from None

    def _open_schema(self) -> Any:
        import pyarrow as pa

        reader, self.random_access = self._reader()
        try:
            if self.random_access:
                self._sizes = [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)]
            else:  # a stream: count its rows, one batch in memory at a time
                self._sizes = [batch.num_rows for batch in reader]
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.path}: not a readable {self.path.suffix} table ({one_line(exc)})") from None
        self.rows = sum(self._sizes)
        return reader.schema

    def _units(self) -> list[int]:
        return self._sizes if self.random_access else [self.rows or 0]

    def _batches(self, first_batch: int = 0) -> Iterator[Any]:
        reader, random_access = self._reader()
        names = self.columns.read
        if random_access:
            for i in range(first_batch, reader.num_record_batches):
                yield reader.get_batch(i).select(names)
        else:
            for batch in reader:
                yield batch.select(names)

    def read_chunk(self, index: int) -> Any:
        if not self.random_access:
            return Source.read_chunk(self, index)
        return super().read_chunk(index)


# -- cutting record batches into chunks ----------------------------------------------------------


def rechunk(batches: Iterable[Any], rows: int) -> Iterator[Any]:
    """Tables of exactly ``rows`` rows (the last one shorter) from record batches of any size."""
    import pyarrow as pa

    pending: list[Any] = []
    count = 0
    for batch in batches:
        while batch.num_rows:
            take_rows = min(rows - count, batch.num_rows)
            pending.append(batch.slice(0, take_rows))
            count += take_rows
            batch = batch.slice(take_rows)
            if count == rows:
                yield pa.Table.from_batches(pending)
                pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending)


def take(batches: Iterable[Any], skip: int, rows: int, name: str) -> Any:
    """``rows`` rows after the first ``skip`` rows of a stream of record batches."""
    for table in rechunk(_skipped(batches, skip), rows):
        return table
    raise InputError(f"{name}: has fewer rows than when it was opened (did it change?)")


def _skipped(batches: Iterable[Any], skip: int) -> Iterator[Any]:
    for batch in batches:
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        yield batch.slice(skip) if skip else batch
        skip = 0
