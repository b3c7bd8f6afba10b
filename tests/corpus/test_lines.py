"""Text files read in pieces give exactly the lines of read_texts, errors name the line."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sae.corpus import lines
from sae.errors import InputError
from sae.io import read_texts

PIECES = st.sampled_from(["a", "b c", "", " ", "\r", "\n", "\r\n", "é", "日本", "\ufeff", "😀", "\t"])


def indexed_lines(path, chunk_rows, block):
    index = lines.index_lines(path, chunk_rows, block=block)
    out = []
    for k in range(index.chunks):
        chunk = lines.read_chunk(path, index, k)
        assert len(chunk) == min(chunk_rows, index.lines - k * chunk_rows)
        out.extend(chunk)
    assert index.lines == len(out)
    return out


def streamed_lines(data, chunk_rows, block):
    chunks = list(lines.iter_lines(io.BytesIO(data), "<stdin>", chunk_rows, block=block))
    assert all(len(c) == chunk_rows for c in chunks[:-1])
    return [line for chunk in chunks for line in chunk]


@given(text=st.lists(PIECES, max_size=40).map("".join), chunk_rows=st.integers(1, 5), block=st.integers(1, 9))
def test_pieces_give_the_lines_of_read_texts(tmp_path_factory, text, chunk_rows, block):
    path = tmp_path_factory.mktemp("lines") / "in.txt"
    data = text.encode()
    path.write_bytes(data)
    expected = read_texts(str(path))
    assert indexed_lines(path, chunk_rows, block) == expected
    assert streamed_lines(data, chunk_rows, block) == expected


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\n", b"\xef\xbb\xbf\n", b"a", b"a\n\n", b"\r\n"])
def test_edge_files(tmp_path, data):
    path = tmp_path / "in.txt"
    path.write_bytes(data)
    expected = read_texts(str(path))
    assert indexed_lines(path, 2, 4) == expected
    assert streamed_lines(data, 2, 4) == expected


@pytest.mark.parametrize("block", [1, 3, 64])
def test_invalid_utf8_names_its_line_whatever_the_pieces(tmp_path, block):
    data = b"one\ntwo\n\xe6\x97\xa5 three\nfour \xff\nfive\n"
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    with pytest.raises(InputError, match=r"bad.txt: line 4: invalid UTF-8"):
        lines.index_lines(path, 2, block=block)
    with pytest.raises(InputError, match=r"<stdin>: line 4: invalid UTF-8"):
        streamed_lines(data, 2, block)


@pytest.mark.parametrize("block", [1, 3, 64])
def test_invalid_utf8_is_worded_as_read_texts_words_it(tmp_path, block):
    """``sae teach`` read its corpus with read_texts and now streams it: the same message,
    the byte counted from the start of the input (a byte-order mark included)."""
    data = b"\xef\xbb\xbfone\ntwo\n\xe6\x97\xa5 three\nfour \xff\nfive\n"
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    with pytest.raises(InputError) as whole:
        read_texts(str(path))
    assert str(whole.value).endswith("bad.txt: line 4: invalid UTF-8 (invalid start byte at byte 26)")
    with pytest.raises(InputError) as indexed:
        lines.index_lines(path, 2, block=block)
    assert str(indexed.value) == str(whole.value)
    with pytest.raises(InputError) as streamed:
        streamed_lines(data, 2, block)
    assert str(streamed.value) == str(whole.value).replace(str(path), "<stdin>")


def test_a_chunk_starts_where_its_line_starts(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"aa\nbbb\n\nc\nd")
    index = lines.index_lines(path, 2, block=2)
    assert index.starts == (0, 7, 10)
    assert index.span(2) == (10, 11)
    assert lines.read_chunk(path, index, 1) == ["", "c"]


def test_a_file_that_changed_is_an_error(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"a\nb\nc\n")
    index = lines.index_lines(path, 2)
    path.write_bytes(b"a\n")
    with pytest.raises(InputError, match="changed while"):
        lines.read_chunk(path, index, 1)
