"""Reading inputs and writing outputs: every bad input is one clear message."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sae.errors import InputError
from sae.io import read_texts, write_embeddings


def test_txt_lines_keep_empty_lines_and_order(tmp_path):
    f = tmp_path / "in.txt"
    f.write_bytes("\ufefffirst\r\n\nthird  \nlast".encode())
    assert read_texts(str(f)) == ["first", "", "third  ", "last"]


def test_invalid_utf8_names_the_line(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_bytes(b"fine\nalso fine\nbroken \xff here\n")
    with pytest.raises(InputError, match=r"bad.txt: line 3: invalid UTF-8"):
        read_texts(str(f))


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_texts(str(tmp_path / "nope.txt"))


def test_parquet_and_arrow_text_columns(tmp_path):
    table = pa.table({"id": [1, 2], "text": ["a cat", "a dog"]})
    pq.write_table(table, tmp_path / "t.parquet")
    with pa.OSFile(str(tmp_path / "t.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    assert read_texts(str(tmp_path / "t.parquet")) == ["a cat", "a dog"]
    assert read_texts(str(tmp_path / "t.arrow")) == ["a cat", "a dog"]


def test_table_without_text_column(tmp_path):
    pq.write_table(pa.table({"sentence": ["x"]}), tmp_path / "t.parquet")
    with pytest.raises(InputError, match="no 'text' column"):
        read_texts(str(tmp_path / "t.parquet"))


def test_corrupt_parquet(tmp_path):
    (tmp_path / "t.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(InputError, match=r"not a readable \.parquet table"):
        read_texts(str(tmp_path / "t.parquet"))


def test_output_is_written_whole_or_not_at_all(tmp_path):
    import numpy as np

    out = tmp_path / "out.parquet"
    write_embeddings(str(out), ["a", "b"], np.eye(2, 3, dtype=np.float32))
    table = pq.read_table(out)
    assert table.column("text").to_pylist() == ["a", "b"]
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 3)
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]  # no temporary left
    with pytest.raises(InputError, match="does not exist"):
        write_embeddings(str(tmp_path / "missing" / "x.parquet"), ["a"], np.ones((1, 3), np.float32))


def test_outputs_get_ordinary_permissions(tmp_path):
    import os

    import numpy as np

    out = tmp_path / "out.parquet"
    umask = os.umask(0o022)
    try:
        write_embeddings(str(out), ["a"], np.ones((1, 2), np.float32))
    finally:
        os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o644


def test_a_device_or_pipe_output_is_refused_not_replaced(tmp_path):
    import os

    from sae.io import check_writable

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="pipe: is not a regular file"):
        write_embeddings(str(fifo), ["a"], np.ones((1, 2), np.float32))
    assert fifo.is_fifo()
    with pytest.raises(InputError, match="is not a regular file"):
        check_writable("/dev/null")
    with pytest.raises(InputError, match="not to standard output"):
        check_writable("-")


def test_an_output_that_is_an_input_is_refused(tmp_path):
    from sae.io import check_writable

    f = tmp_path / "in.txt"
    f.write_text("a\n")
    (tmp_path / "link.txt").symlink_to(f)
    for same in (f, tmp_path / "link.txt", tmp_path / "." / "in.txt"):
        with pytest.raises(InputError, match="is also an input of this command"):
            check_writable(same, inputs=(str(f),))
    check_writable(tmp_path / "other.txt", inputs=(str(f), None, "-"))


def test_a_symlinked_output_is_written_through(tmp_path):
    target = tmp_path / "real.parquet"
    link = tmp_path / "link.parquet"
    write_embeddings(str(target), ["old"], np.ones((1, 2), np.float32))
    link.symlink_to(target)
    write_embeddings(str(link), ["new"], np.ones((1, 2), np.float32))
    assert link.is_symlink() and pq.read_table(target).column("text").to_pylist() == ["new"]


def test_the_system_refusing_the_file_is_one_line(tmp_path, monkeypatch):
    import tempfile

    from sae.errors import SaeError
    from sae.io import write_atomically

    out = tmp_path / "out.txt"
    out.write_text("kept")

    def no_room(tmp):
        raise OSError(28, "No space left on device")

    with pytest.raises(SaeError, match=r"out\.txt: writing failed: No space left on device") as info:
        write_atomically(out, no_room)
    assert info.value.exit_code == 1 and out.read_text() == "kept"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]

    def refused(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(InputError, match=r"out\.txt: cannot create a file in"):
        write_atomically(out, lambda tmp: None)


def test_a_command_line_text_must_be_utf8():
    from sae.io import argument_text

    assert argument_text("café") == "café"
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")  # how Python hands over such argv bytes
    with pytest.raises(InputError) as raised:
        argument_text(bad)
    assert str(raised.value) == r"TEXT: invalid UTF-8 at byte 3 of 'caf\xe9'"  # the byte given, once escaped
    with pytest.raises(InputError) as raised:
        argument_text("a\ud800b")  # a lone surrogate from Python, not from a byte
    assert str(raised.value) == r"TEXT: invalid UTF-8 at byte 1 of 'a\ud800b'"


def test_a_carriage_return_inside_a_line_is_warned_of_once(tmp_path, caplog):
    """A file with classic Mac line ends (CR alone) was read as one text without a word."""
    import io
    import logging

    from sae.corpus.lines import index_lines, iter_lines
    from sae.io import read_texts

    caplog.set_level(logging.WARNING)
    path = tmp_path / "mac.txt"
    path.write_bytes(b"the cat\rthe dog\ra bird\r")
    assert read_texts(str(path)) == ["the cat\rthe dog\ra bird"]  # kept as it is: one text
    data = b"a\r\nb\r\r\nc\n" + b"x\n" * 50 + b"d\re\n" + b"y\n" * 50 + b"f\rg\n"
    (tmp_path / "mixed.txt").write_bytes(data)
    index_lines(tmp_path / "mixed.txt", chunk_rows=8, block=64)  # many pieces, one warning
    assert [line for chunk in iter_lines(io.BytesIO(data), "<stdin>", 8, block=64) for line in chunk][53] == "d\re"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w.split(" holds")[0] for w in warnings] == [f"{path}: line 1", f"{tmp_path / 'mixed.txt'}: line 54",
                                                        "<stdin>: line 54"], warnings
    assert warnings[0].endswith("lines end at \\n only, so a file with CR line ends is read as one text")
    caplog.clear()
    (tmp_path / "dos.txt").write_bytes(b"a\r\nb\r\r\nc\r")  # CRLF, a doubled CR before LF, a last CR
    assert read_texts(str(tmp_path / "dos.txt")) == ["a", "b", "c"] and not caplog.records
