"""Sinks: the .npy header keeps its size, damaged resume material is refused in one line."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest

from sae.corpus.sinks import (
    NpySink,
    ParquetSink,
    embeddings_of,
    npy_header,
    output_schema,
    output_table,
    readable_parts,
)
from sae.corpus.state import ResumeRefusedError
from sae.errors import InputError

CHUNK = pa.table({"text": pa.array(["a", "b", "c"], pa.string())})


def schema(dtype="float32"):
    return output_schema(CHUNK.schema, 4, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_the_npy_header_does_not_grow_with_the_rows(dtype):
    sizes = {len(npy_header(np.dtype(dtype), rows, 384)) for rows in (0, 7, 10**9, 10**15)}
    assert sizes == {128}


def test_output_tables_round_trip_the_embeddings():
    emb = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    for dtype in ("float32", "float16"):
        table = output_table(CHUNK, emb, schema(dtype))
        assert table.schema.names == ["text", "embedding"]
        assert np.array_equal(embeddings_of(table), emb.astype(dtype))


def test_a_shortened_npy_file_is_not_resumed(tmp_path):
    sink = NpySink(tmp_path / "o.npy", tmp_path, schema(), 0)
    sink.write(0, output_table(CHUNK, np.ones((3, 4), np.float32), schema()))
    sink.abort()
    with pytest.raises(InputError, match="shorter than its state says"):
        NpySink(tmp_path / "o.npy", tmp_path, schema(), 5)
    resumed = NpySink(tmp_path / "o.npy", tmp_path, schema(), 2)  # a third row written, not recorded
    resumed.write(1, output_table(CHUNK, np.zeros((3, 4), np.float32), schema()))
    resumed.finish()
    assert np.load(tmp_path / "o.npy").tolist() == [[1.0] * 4] * 2 + [[0.0] * 4] * 3


def test_a_damaged_part_is_not_resumed(tmp_path):
    sink = ParquetSink(tmp_path / "o.parquet", tmp_path, schema())
    sink.write(0, output_table(CHUNK, np.ones((3, 4), np.float32), schema()))
    sink.abort()
    (tmp_path / "parts" / "00000000.arrow").write_bytes(b"garbage")
    assert readable_parts(tmp_path, schema(), 1) == (0, "File is too small: 7")
    with pytest.raises(ResumeRefusedError, match="saved chunk 0 is unreadable"):  # refused: the state is kept
        ParquetSink(tmp_path / "o.parquet", tmp_path, schema()).replay(0)
    other = ParquetSink(tmp_path / "o.parquet", tmp_path, schema("float16"))
    other.write(1, output_table(CHUNK, np.ones((3, 4), np.float32), schema("float16")))
    with pytest.raises(ResumeRefusedError, match="saved chunk 1 has another schema"):
        ParquetSink(tmp_path / "o.parquet", tmp_path, schema()).replay(1)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names synced files through /proc")
@pytest.mark.parametrize("name", ["o.parquet", "o.npy"])
def test_what_the_state_names_is_on_disk_first(tmp_path, monkeypatch, name):
    from sae.corpus.state import ResumeState, state_dir

    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / name
    state = ResumeState.open(out, {"test": 1}, False)
    work = state_dir(out)
    sink = (NpySink(out, work, schema(), 0) if name.endswith(".npy") else ParquetSink(out, work, schema()))
    synced.clear()
    sink.write(0, output_table(CHUNK, np.ones((3, 4), np.float32), schema()))
    state.commit(3, "digest")
    sink.finish()
    written = [str(work / "output.npy.tmp")] if name.endswith(".npy") else [str(work / "parts" / "00000000.tmp"),
                                                                            str(work / "parts")]
    tmp = str(work / ("output.npy.tmp" if name.endswith(".npy") else "output.parquet.tmp"))
    assert synced == [*written, str(work / "state.json.tmp"), str(work), tmp, str(tmp_path)]
    state.remove()
