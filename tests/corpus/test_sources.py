"""Sources cut any input layout into the same chunks, in order or one at a time."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sae.corpus.sources import Columns, open_source, rechunk
from sae.errors import InputError

ROWS = 23
TABLE = pa.table({
    "id": pa.array(range(ROWS), pa.int64()),
    "body": pa.array([f"text {i} é" for i in range(ROWS)], pa.large_string()),
    "tags": pa.array([[i, i + 1] for i in range(ROWS)], pa.list_(pa.int32())),
})


def write_parquet(path, table=TABLE, row_group_size=5):
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def write_arrow(path, table=TABLE, batch=4, stream=False):
    with pa.OSFile(str(path), "wb") as sink:
        open_writer = pa.ipc.new_stream if stream else pa.ipc.new_file
        with open_writer(sink, table.schema) as writer:
            for b in table.to_batches(max_chunksize=batch):
                writer.write_batch(b)
    return path


@pytest.fixture(params=["parquet", "arrow"])
def table_file(request, tmp_path):
    if request.param == "parquet":
        return write_parquet(tmp_path / "t.parquet")
    return write_arrow(tmp_path / "t.arrow")


@pytest.mark.parametrize("chunk_rows", [1, 4, 5, 7, 23, 100])
def test_chunks_in_order_and_one_at_a_time_agree(table_file, chunk_rows):
    source = open_source(table_file, Columns("body", ("tags", "id")), chunk_rows)
    assert source.rows == ROWS and source.random_access
    chunks = list(source.chunks())
    assert len(chunks) == source.n_chunks == -(-ROWS // chunk_rows)
    assert [c.num_rows for c in chunks[:-1]] == [chunk_rows] * (len(chunks) - 1)
    assert chunks[0].schema.names == ["text", "tags", "id"]
    assert chunks[0].schema.field("text").type == pa.string()
    whole = pa.concat_tables(chunks)
    assert whole.column("text").to_pylist() == TABLE.column("body").to_pylist()
    assert whole.column("tags").to_pylist() == TABLE.column("tags").to_pylist()
    again = pickle.loads(pickle.dumps(source))  # what a Ray worker gets
    for k, chunk in enumerate(chunks):
        assert again.read_chunk(k).equals(chunk)


def test_an_arrow_stream_is_read_in_order_only(tmp_path):
    source = open_source(write_arrow(tmp_path / "t.arrow", stream=True), Columns("body"), 6)
    assert not source.random_access and source.rows == ROWS
    assert pa.concat_tables(source.chunks()).column("text").to_pylist() == TABLE.column("body").to_pylist()
    with pytest.raises(InputError, match="only in order"):
        source.read_chunk(0)


def test_text_files_by_index(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("".join(f"line {i}\n" for i in range(10)))
    source = open_source(path, Columns(), 4)
    assert source.rows == 10 and source.n_chunks == 3
    assert [c.column("text").to_pylist() for c in source.chunks()][2] == ["line 8", "line 9"]
    assert pickle.loads(pickle.dumps(source)).read_chunk(1).column("text").to_pylist()[0] == "line 4"


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (Columns(), "no 'text' column (--text-column; columns: id, body, tags); pick one with --text-column"),
        (Columns("id"), "column 'id' has type int64, expected string"),
        (Columns("body", ("nope",)), "no 'nope' column (--keep-columns"),
    ],
)
def test_column_problems_are_found_when_opening(table_file, columns, message):
    with pytest.raises(InputError) as info:
        open_source(table_file, columns, 4)
    assert message in str(info.value) and str(table_file) in str(info.value)


@pytest.mark.parametrize(("keep", "message"), [(("text",), "clash"), (("embedding",), "clash"),
                                                (("id", "id"), "listed twice")])
def test_kept_columns_must_not_clash(keep, message):
    with pytest.raises(InputError, match=message):
        Columns("body", keep)


def test_kept_columns_need_a_table(tmp_path):
    (tmp_path / "in.txt").write_text("a\n")
    with pytest.raises(InputError, match="--keep-columns needs a Parquet or Arrow input"):
        open_source(tmp_path / "in.txt", Columns(keep=("id",)))
    with pytest.raises(InputError, match="--text-column needs a Parquet or Arrow input"):
        open_source("-", Columns("body"))


def test_a_null_text_names_its_row(tmp_path):
    table = pa.table({"text": ["a", "b", None, "d"]})
    source = open_source(write_parquet(tmp_path / "t.parquet", table, 2), Columns(), 2)
    with pytest.raises(InputError, match=r"t.parquet: column 'text' has a null value in row 3"):
        list(source.chunks())
    with pytest.raises(InputError, match="in row 3"):
        source.read_chunk(1)


def test_unreadable_tables(tmp_path):
    (tmp_path / "t.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "t.arrow").write_bytes(b"nope")
    with pytest.raises(InputError, match=r"not a readable \.parquet table"):
        open_source(tmp_path / "t.parquet")
    with pytest.raises(InputError, match=r"not a readable \.arrow table"):
        open_source(tmp_path / "t.arrow")
    with pytest.raises(InputError, match="no such file"):
        open_source(tmp_path / "missing.txt")


def test_rechunk_cuts_exactly():
    batches = TABLE.to_batches(max_chunksize=3)
    assert [t.num_rows for t in rechunk(batches, 10)] == [10, 10, 3]


def test_dictionary_encoded_texts_are_decoded(tmp_path):
    table = pa.table({"text": pa.array(["a cat", "a dog", "a cat"]).dictionary_encode()})
    source = open_source(write_arrow(tmp_path / "d.arrow", table, batch=2), Columns(), 2)
    assert [c.column("text").type for c in source.chunks()] == [pa.string(), pa.string()]
    assert pa.concat_tables(source.chunks()).column("text").to_pylist() == ["a cat", "a dog", "a cat"]


def invalid_utf8_strings(n: int, bad_row: int) -> pa.Array:
    """Strings whose row ``bad_row`` (0-based) starts with a 0xff byte: Arrow builds
    them without complaint, as a Parquet or Arrow file written by another tool can hold."""
    import numpy as np

    binary = pa.array([f"good text {i}".encode() for i in range(n)], pa.binary())
    _, offsets, data = binary.buffers()
    raw = bytearray(data.to_pybytes())
    raw[np.frombuffer(offsets, dtype=np.int32)[bad_row]] = 0xFF
    return pa.Array.from_buffers(pa.string(), n, [None, offsets, pa.py_buffer(bytes(raw))])


@pytest.mark.parametrize("kind", ["parquet", "arrow", "large_string"])
def test_invalid_utf8_in_a_table_names_its_row(tmp_path, kind):
    column = invalid_utf8_strings(30, 25)
    if kind == "large_string":
        column = column.cast(pa.large_string())
    table = pa.table({"text": column})
    path = write_arrow(tmp_path / "t.arrow", table, 7) if kind == "arrow" else write_parquet(tmp_path / "t.parquet",
                                                                                           table, 7)
    source = open_source(path, Columns(), 10)
    with pytest.raises(InputError, match=rf"t\.{path.suffix[1:]}: column 'text': invalid UTF-8 in row 26$"):
        list(source.chunks())
    with pytest.raises(InputError, match="invalid UTF-8 in row 26"):
        source.read_chunk(2)
    assert source.read_chunk(1).column("text").to_pylist()[0] == "good text 10"


def _kept(kind: str, strings: pa.Array) -> pa.Array:
    """``strings`` as a kept column of ``kind``: plain or nested, one row per string."""
    n = len(strings)
    if kind == "large_string":
        return strings.cast(pa.large_string())
    if kind == "list":
        return pa.ListArray.from_arrays(pa.array(range(n + 1), pa.int32()), strings)
    if kind == "struct":
        return pa.StructArray.from_arrays([strings, pa.array(range(n), pa.int64())], ["s", "i"])
    if kind == "dictionary":  # every row its own entry, as a dictionary-encoded file stores them
        return pa.DictionaryArray.from_arrays(pa.array(range(n), pa.int32()), strings)
    return strings


def _kept_source(tmp_path, kind: str, fmt: str):
    table = pa.table({"text": [f"text {i}" for i in range(30)], "meta": _kept(kind, invalid_utf8_strings(30, 25))})
    path = write_arrow(tmp_path / "t.arrow", table, 7) if fmt == "arrow" else write_parquet(tmp_path / "t.parquet",
                                                                                          table, 7)
    return path, open_source(path, Columns(keep=("meta",)), 10)


@pytest.mark.parametrize("kind", ["string", "large_string", "list", "struct"])
@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_invalid_utf8_in_a_kept_column_names_the_column_and_row(tmp_path, kind, fmt):
    """Kept columns were copied unchecked: the output then held invalid UTF-8 under a
    string type, which its readers fail on with no row number."""
    path, source = _kept_source(tmp_path, kind, fmt)
    with pytest.raises(InputError, match=rf"t\.{fmt}: column 'meta': invalid UTF-8 in row 26$"):
        list(source.chunks())
    with pytest.raises(InputError, match=r"column 'meta': invalid UTF-8 in row 26$"):
        source.read_chunk(2)
    # The chunks before it are read, though a list's or struct's record batch holds the bad
    # string too (outside their rows: their output does not).
    assert len(source.read_chunk(1).column("meta").to_pylist()) == 10
    assert len(list(open_source(path, Columns(), 10).chunks())) == 3  # not kept: not read


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_an_invalid_dictionary_value_is_refused_where_the_dictionary_is(tmp_path, fmt):
    """A dictionary is copied whole, so the first chunk that holds it is refused, whichever
    row uses the bad value; the chunk of that row names it."""
    _, source = _kept_source(tmp_path, "dictionary", fmt)
    with pytest.raises(InputError, match=r"column 'meta': its dictionary in rows 1-10 holds an invalid value that "
                                         r"none of them uses \(.*UTF8.*\)$"):
        list(source.chunks())
    with pytest.raises(InputError, match=r"column 'meta': invalid UTF-8 in row 26$"):
        source.read_chunk(2)


def test_kept_binary_is_copied_byte_for_byte(tmp_path):
    """Binary is not text: bytes that are not UTF-8 are data there, copied as they are."""
    raw = [bytes([255, i]) for i in range(5)]
    path = write_parquet(tmp_path / "t.parquet", pa.table({"text": ["a"] * 5, "blob": pa.array(raw, pa.binary())}))
    chunks = list(open_source(path, Columns(keep=("blob",)), 2).chunks())
    assert [b for c in chunks for b in c.column("blob").to_pylist()] == raw


@pytest.mark.parametrize("name", ["t.parquet", "in.txt"])
def test_workers_read_a_relative_input_from_anywhere(tmp_path, monkeypatch, name):
    (tmp_path / "data").mkdir()
    (tmp_path / "elsewhere").mkdir()
    if name == "in.txt":
        (tmp_path / "data" / name).write_text("".join(f"line {i}\n" for i in range(10)))
    else:
        write_parquet(tmp_path / "data" / name, pa.table({"text": [f"line {i}" for i in range(10)]}))
    monkeypatch.chdir(tmp_path)
    source = open_source(f"data/{name}", Columns(), 4)
    shipped = pickle.dumps(source.for_workers())
    monkeypatch.chdir(tmp_path / "elsewhere")  # where a worker on another node runs
    worker = pickle.loads(shipped)
    assert worker.read_chunk(1).column("text").to_pylist() == ["line 4", "line 5", "line 6", "line 7"]
    assert worker.name == f"data/{name}"  # messages name the input as given


def test_pipes_and_devices_are_read_once_in_order(tmp_path):
    """``sae embed <(zcat corpus.txt.gz)``, ``sae teach <(cut -f6 data.tsv)``: a pipe cannot be
    indexed first as a text file is, so it is read as stdin is, in order, with its lines
    numbered from the start in messages."""
    import os
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def write(data: bytes) -> threading.Thread:
        def run() -> None:
            with open(fifo, "wb") as sink:
                sink.write(data)
        thread = threading.Thread(target=run)
        thread.start()
        return thread

    writer = write("\ufeffone\ntwo\r\nthree\nfour\nfive".encode())
    source = open_source(fifo, Columns(flags=False), 2)
    assert source.rows is None and not source.random_access and source.name == str(fifo)
    assert [c.column("text").to_pylist() for c in source.chunks()] == [["one", "two"], ["three", "four"], ["five"]]
    writer.join()
    writer = write(b"fine\nbad \xff\n")
    with pytest.raises(InputError, match=r"fifo: line 2: invalid UTF-8 \(invalid start byte at byte 9\)$"):
        list(source.chunks())
    writer.join()
    assert [c.num_rows for c in open_source("/dev/null").chunks()] == []
    with pytest.raises(InputError, match=r"fifo: --text-column needs a Parquet or Arrow input"):
        open_source(fifo, Columns(text="body"))  # refused before it is opened: no writer needed


def test_a_missing_text_column_without_the_flags_is_worded_as_read_texts_words_it(table_file):
    """``sae teach`` has no --text-column: its message names the columns, not a flag."""
    with pytest.raises(InputError) as info:
        open_source(table_file, Columns(flags=False), 4)
    assert str(info.value) == f"{table_file}: no 'text' column (columns: id, body, tags)"
