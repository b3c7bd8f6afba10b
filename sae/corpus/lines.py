"""Text files one text per line, read in pieces with the same lines as :func:`sae.io.read_texts`.

A line ends at ``\\n``; a trailing ``\\r`` is dropped, a byte-order mark at the start
of the file is dropped, the newline that ends the last line does not start another.
Invalid UTF-8 is an :class:`~sae.errors.InputError` naming the line and the byte, as
:func:`sae.io.read_texts` names them. A newline byte is
never part of a multi-byte UTF-8 sequence, so text cut after a newline decodes on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from sae.errors import InputError
from sae.io import invalid_utf8, warn_inner_carriage_return

BOM = "\ufeff".encode()
#: Bytes read at a time. A line longer than this is carried into the next read.
BLOCK_BYTES = 1 << 22


def decode_lines(data: bytes, name: str, first_line: int, *, bom: bool = False, first_byte: int = 0) -> list[str]:
    """The lines of ``data``: whole lines, the last one ending with its newline or at the end
    of the input. ``first_line`` (1-based) and ``first_byte`` (0-based) place ``data`` in the
    input for error messages; ``bom`` drops a byte-order mark (only the file's first piece
    can have one)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + data[: exc.start].count(b"\n")
        raise invalid_utf8(name, line, exc, first_byte) from None
    if bom and text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return [line.rstrip("\r") for line in lines]


def _pieces(stream: BinaryIO, block: int) -> Iterator[bytes]:
    """``stream`` cut after its newlines, in reads of about ``block`` bytes; the last
    piece may lack a newline (a last line without one)."""
    carry = b""
    while True:
        data = stream.read(block)
        if not data:
            break
        if carry:
            data = carry + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry = data  # no newline yet: a long line
            continue
        carry = data[cut:]
        yield data[:cut]
    if carry:
        yield carry


def iter_lines(stream: BinaryIO, name: str, chunk_rows: int, block: int = BLOCK_BYTES) -> Iterator[list[str]]:
    """Lines of a stream (stdin) in lists of ``chunk_rows`` (the last one shorter)."""
    pending: list[str] = []
    line = 1
    offset = 0  # bytes before the current piece
    warned = False
    for piece in _pieces(stream, block):
        lines = decode_lines(piece, name, line, bom=line == 1, first_byte=offset)
        warned = warned or warn_inner_carriage_return(piece, name, line)
        line += len(lines)
        offset += len(piece)
        pending.extend(lines)
        while len(pending) >= chunk_rows:
            yield pending[:chunk_rows]
            del pending[:chunk_rows]
    if pending:
        yield pending


@dataclass(frozen=True)
class LineIndex:
    """Where each chunk of ``chunk_rows`` lines of a text file starts: a byte offset per chunk."""

    lines: int
    chunk_rows: int
    starts: tuple[int, ...]  #: byte offset of each chunk's first line
    size: int  #: bytes in the file

    @property
    def chunks(self) -> int:
        return len(self.starts)

    def span(self, chunk: int) -> tuple[int, int]:
        """Byte range ``[start, end)`` of chunk ``chunk``."""
        end = self.starts[chunk + 1] if chunk + 1 < len(self.starts) else self.size
        return self.starts[chunk], end


def index_lines(path: Path, chunk_rows: int, block: int = BLOCK_BYTES) -> LineIndex:
    """One pass over a text file: count its lines, check that it is UTF-8 (naming the
    first bad line), and note where every ``chunk_rows``-th line starts."""
    starts = [0]
    lines = 0  # lines before the current piece
    offset = 0  # bytes before the current piece
    name = str(path)
    warned = False
    try:
        with open(path, "rb") as stream:
            for piece in _pieces(stream, block):
                try:
                    piece.decode("utf-8")
                except UnicodeDecodeError as exc:
                    line = lines + 1 + piece[: exc.start].count(b"\n")
                    raise invalid_utf8(name, line, exc, offset) from None
                warned = warned or warn_inner_carriage_return(piece, name, lines + 1)
                newlines = np.flatnonzero(np.frombuffer(piece, dtype=np.uint8) == 0x0A)
                count = len(newlines) if piece.endswith(b"\n") else len(newlines) + 1
                if offset == 0 and piece == BOM:
                    count = 0  # a file that is only a byte-order mark has no lines
                # Chunk k starts after the newline that ends line k * chunk_rows.
                while len(starts) * chunk_rows < lines + count:
                    after = len(starts) * chunk_rows - lines  # lines of this piece before the start
                    starts.append(offset if after == 0 else offset + int(newlines[after - 1]) + 1)
                lines += count
                offset += len(piece)
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror})") from None
    if lines == 0:
        starts = []
    return LineIndex(lines=lines, chunk_rows=chunk_rows, starts=tuple(starts), size=offset)


def read_chunk(path: Path, index: LineIndex, chunk: int) -> list[str]:
    """The lines of chunk ``chunk`` of an indexed text file."""
    start, end = index.span(chunk)
    try:
        with open(path, "rb") as stream:
            stream.seek(start)
            data = stream.read(end - start)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    lines = decode_lines(data, str(path), chunk * index.chunk_rows + 1, bom=chunk == 0, first_byte=start)
    expected = min(index.chunk_rows, index.lines - chunk * index.chunk_rows)
    if len(lines) != expected or len(data) != end - start:
        raise InputError(f"{path}: the file changed while it was being read")
    return lines
