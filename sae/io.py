"""Reading texts and writing embeddings, with one-line errors for bad input."""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sae.errors import InputError, SaeError, one_line

log = logging.getLogger(__name__)


def existing_file(source: str | Path, expected: str, kind: str = "file") -> Path:
    """``source`` as a Path when it is an existing file; else an InputError naming it."""
    if str(source) == "":  # Path("") is the current directory
        raise InputError(f"an empty name where {expected} was expected; name the {kind}")
    path = Path(source)
    try:  # exists() raises for a directory that cannot be entered, or a name too long
        if not path.exists():
            raise InputError(f"{source}: no such {kind}")
        if path.is_dir():
            raise InputError(f"{source}: is a directory, expected {expected}")
    except OSError as exc:
        raise InputError(f"{source}: cannot read ({exc.strerror or exc})") from None
    return path


def stdin_bytes():  # -> BinaryIO
    """Standard input's byte stream, for an input named ``-``; an :class:`InputError` when
    the process has none (started with it closed, ``<&-``)."""
    if sys.stdin is None:
        raise InputError("-: standard input is closed; give a file, or pipe the input in")
    return sys.stdin.buffer


def invalid_utf8(name: str, line: int, exc: UnicodeDecodeError, first_byte: int = 0) -> InputError:
    """The error for invalid UTF-8 at ``exc.start`` of a piece that starts at byte
    ``first_byte`` of input ``name``, on its line ``line``: the one wording of every reader
    of text (:func:`decode_utf8`, and :mod:`sae.corpus.lines`, which reads in pieces)."""
    return InputError(f"{name}: line {line}: invalid UTF-8 ({exc.reason} at byte {first_byte + exc.start})")


def decode_utf8(data: bytes, name: str) -> str:
    """``data`` as text without a byte-order mark; invalid UTF-8 names its line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid_utf8(name, data[: exc.start].count(b"\n") + 1, exc) from None
    return text[1:] if text.startswith("\ufeff") else text


def text_column(table, name: str) -> list[str]:  # table: pyarrow.Table
    """The table's ``text`` column as Python strings: string, large or view strings, or
    dictionary-encoded ones (as ``sae embed`` reads them), without nulls; invalid UTF-8
    is refused naming its row."""
    import pyarrow as pa

    names = column_names(table, name)
    if "text" not in names:
        raise InputError(f"{name}: no 'text' column (columns: {', '.join(names)})")
    check_named_once(names, "text", name)
    column = table.column("text")
    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
        raise InputError(f"{name}: column 'text' has type {column.type}, expected string")
    if column.null_count:
        raise InputError(f"{name}: column 'text' has {column.null_count} null value(s)")
    try:  # offsets past the data would be read as they are (sae embed's reader validates too)
        column.validate(full=True)
    except pa.ArrowInvalid as exc:
        if "UTF8" not in str(exc):
            raise InputError(f"{name}: column 'text' is damaged ({one_line(exc)})") from None
        # pyarrow does not check UTF-8 when it reads a file: the row is named
        row = next(i for i, value in enumerate(column) if not _decodes(value))
        raise InputError(f"{name}: column 'text': invalid UTF-8 in row {row + 1}") from None
    return column.to_pylist()


def column_names(table, name: str) -> list[str]:  # table: pyarrow.Table
    """The table's column names; an :class:`InputError` naming the file when one is not
    UTF-8 (pyarrow decodes them as they are asked for, with a ``UnicodeDecodeError``)."""
    try:
        return list(table.column_names)
    except UnicodeDecodeError:
        raise non_utf8_column_name(name) from None


def non_utf8_column_name(name: str) -> InputError:
    """The error for a table whose schema names a column in bytes that are not UTF-8."""
    return InputError(f"{name}: its schema names a column in bytes that are not UTF-8")


def check_named_once(names: list[str], column: str, name: str) -> None:
    """An :class:`InputError` when more than one of a table's columns is named ``column``
    (pyarrow answers "does not exist", picks one, or fails in many lines)."""
    if names.count(column) > 1:
        raise InputError(f"{name}: {names.count(column)} columns are named {column!r}; the column read must have "
                         "a name of its own")


def _decodes(value) -> bool:  # value: a pyarrow scalar
    try:
        value.as_py()
    except UnicodeDecodeError:
        return False
    return True


def read_texts(source: str) -> list[str]:
    """Texts from a ``.txt`` file (one per line), a ``.parquet``/``.arrow`` file with a
    ``text`` column, or ``-`` for stdin (one per line).

    Raises :class:`InputError` for a missing file, invalid UTF-8 (naming the line),
    or a table without a string ``text`` column.
    """
    if source == "-":
        return _lines(stdin_bytes().read(), "<stdin>")
    path = existing_file(source, "a .txt, .parquet or .arrow file")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".arrow", ".feather", ".ipc"):
        return _table_texts(path, suffix)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{source}: cannot read ({exc.strerror})") from None
    return _lines(data, source)


def _lines(data: bytes, name: str) -> list[str]:
    lines = decode_utf8(data, name).split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    warn_inner_carriage_return(data, name)
    return [line.rstrip("\r") for line in lines]


#: A carriage return that ends no line: neither a line's trailing ones nor the file's last.
_INNER_CR = re.compile(rb"\r(?!\r*(?:\n|\Z))")


def warn_inner_carriage_return(data: bytes, name: str, first_line: int = 1) -> bool:
    """Warn when ``data`` (whose first line is ``first_line``) holds a carriage return that
    ends no line, and say whether it did: lines end at ``\\n``, so a file written with CR
    line ends (classic Mac OS) would be read as one text, silently. The text is kept."""
    found = _INNER_CR.search(data) if b"\r" in data else None
    if found is None:
        return False
    log.warning("%s: line %d holds a carriage return inside it; lines end at \\n only, so a file with CR "
                "line ends is read as one text", name, first_line + data.count(b"\n", 0, found.start()))
    return True


def _table_texts(path: Path, suffix: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if suffix == ".parquet":
            check_named_once(pq.read_schema(path).names, "text", str(path))  # before read_table fails on it
            table = pq.read_table(path, columns=None, memory_map=True)
        else:
            with pa.memory_map(str(path)) as source:
                try:
                    table = pa.ipc.open_file(source).read_all()
                except pa.ArrowInvalid:
                    source.seek(0)
                    table = pa.ipc.open_stream(source).read_all()
    except UnicodeDecodeError:  # pyarrow decodes the schema's names as it reads them
        raise non_utf8_column_name(str(path)) from None
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable {suffix} table ({one_line(exc)})") from None
    return text_column(table, str(path))


def check_writable(out: str | Path, inputs: tuple[str | Path | None, ...] = ()) -> Path:
    """Fail early, before any work, when ``out`` cannot be written: its directory is missing
    or not writable, it is a directory, a device or a pipe (the output is renamed into place,
    which would replace such a file), or it is the same file as one of ``inputs``."""
    if str(out) == "-":  # stdin's name as an input; as an output it would be a file named "-"
        raise InputError("-: sae writes files, not to standard output; name the output file")
    if str(out) == "":  # Path("") is the current directory
        raise InputError("an empty name where an output file was expected; name the file to write")
    path = Path(out)
    parent = path.parent if str(path.parent) else Path(".")
    try:  # is_dir() and exists() raise for a directory that cannot be entered, or a name too long
        if path.is_dir():
            raise InputError(f"{out}: is a directory")
        if path.exists() and not path.is_file():
            raise InputError(f"{out}: is not a regular file (a device or a pipe); name a file to write")
        for source in inputs:
            if source is not None and path.exists() and Path(source).exists() and os.path.samefile(path, source):
                raise InputError(f"{out}: is also an input of this command; name another output")
        if not parent.is_dir():
            raise InputError(f"{out}: directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise InputError(f"{out}: directory {parent} is not writable")
        if path.exists() and not os.access(path, os.W_OK):
            raise InputError(f"{out}: file is not writable")
        longest = _longest_name(parent) - SIBLING_NAME_EXTRA
        if len(os.fsencode(path.name)) > longest:
            raise InputError(f"{out}: the file name has {len(os.fsencode(path.name))} bytes, at most {longest} "
                             "here (sae writes beside it under a longer name first)")
        return Path(os.path.realpath(path)) if path.is_symlink() else path  # written through
    except OSError as exc:
        raise InputError(f"{out}: cannot write ({exc.strerror or exc})") from None


#: Bytes the longest name sae writes beside an output adds to the output's own: the
#: temporary file ``.NAME.XXXXXXXX.tmp`` and the resume state ``.NAME.resume``.
SIBLING_NAME_EXTRA = 16


def _longest_name(directory: Path) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not on this system (Windows): the common limit
        return 255


def check_png_output(out: str | Path, flag: str, inputs: tuple[str | Path | None, ...] = ()) -> Path:
    """:func:`check_writable`, and the name must end in ``.png``: what ``flag`` writes is a PNG
    image, which a file named ``.txt`` or ``.jpg`` would misname."""
    path = check_writable(out, inputs)
    if Path(out).suffix.lower() != ".png":
        raise InputError(f"{out}: {flag} writes a PNG image; name the file .png")
    return path


#: Output suffixes of formats sae does not write: a Parquet file named ``.csv`` would be
#: opened as text by whatever reads it next, so such a name is refused before any work.
FOREIGN_OUTPUT_SUFFIXES = (".txt", ".csv", ".tsv", ".json", ".jsonl", ".arrow", ".feather", ".npz")


def output_format(out: str | Path, allowed: tuple[str, ...] = ("parquet", "npy")) -> str:
    """``"npy"`` when ``out`` ends in ``.npy``, else ``"parquet"``; an InputError when the
    suffix names another format, or a format not in ``allowed``."""
    suffix = Path(out).suffix.lower()
    fmt = "npy" if suffix == ".npy" else "parquet"
    if suffix in FOREIGN_OUTPUT_SUFFIXES or fmt not in allowed:
        names = " or ".join(f".{a}" for a in allowed)
        raise InputError(f"{out}: {suffix} is not an output format here; name the output {names}")
    return fmt


def write_atomically(out: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``out``, then rename it into place.

    A failure never leaves a partial file and never destroys an existing one. The file
    gets the permissions a plain ``open()`` would give it (the umask), not mkstemp's 0600.
    A symbolic link is written through (its target is replaced, the link kept). The
    operating system refusing the file is one line: :class:`InputError` when the temporary
    file cannot be created, :class:`SaeError` (exit 1) when writing it fails (a full disk).
    """
    path = check_writable(str(out))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise InputError(f"{out}: cannot create a file in {path.parent}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise SaeError(f"{out}: writing failed: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def argument_text(text: str, name: str = "TEXT") -> str:
    """A text given on the command line, refused in one line when it is not valid UTF-8
    (Python hands such bytes over as lone surrogates, which no tokenizer takes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        try:  # the bytes as they were given (argv's undecodable bytes are kept as surrogates)
            given = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate that was no byte
            given = text.encode("utf-8", "backslashreplace")
        shown = given.decode("utf-8", "backslashreplace")[:60]
        at = len(text[: exc.start].encode("utf-8"))
        raise InputError(f"{name}: invalid UTF-8 at byte {at} of '{shown}'") from None
    return text


def write_embeddings(
    out: str | Path, texts: list[str], embeddings: np.ndarray, metadata: dict[str, str] | None = None
) -> None:
    """Write Parquet with ``text`` (string) and ``embedding`` (fixed-size list of float32),
    atomically (:func:`write_atomically`); ``metadata`` goes into the schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    values = pa.array(emb.reshape(-1), type=pa.float32())
    column = pa.FixedSizeListArray.from_arrays(values, emb.shape[1])
    table = pa.table({"text": pa.array(texts, type=pa.string()), "embedding": column})
    if metadata:
        table = table.replace_schema_metadata({k: str(v) for k, v in metadata.items()})
    write_atomically(out, lambda tmp: pq.write_table(table, tmp))
