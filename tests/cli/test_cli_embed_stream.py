"""``sae embed`` options for large corpora, end to end: one line and exit 2 for every misuse."""

from __future__ import annotations

import io
import logging
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sae.cli import main
from sae.cli.embed import PROGRESS_MIN, ProgressBar
from sae.corpus.state import state_dir


@pytest.fixture
def txt(tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("".join(f"the cat {i % 7} is not happy\n" for i in range(500)))
    return f


def embed(*args, tiny_dir=None):
    return main(["embed", *map(str, args), "--algorithm", str(tiny_dir), "--backend", "cpu"])


def one_line_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "error:" in line]
    assert len(err) == 1, err
    return err[0]


def test_npy_float16_and_chunks(txt, tmp_path, tiny_dir):
    assert embed(txt, "-o", tmp_path / "a.npy", "--dtype", "float16", "--chunk-rows", "64", tiny_dir=tiny_dir) == 0
    assert embed(txt, "-o", tmp_path / "a.parquet", "--chunk-rows", "64", tiny_dir=tiny_dir) == 0
    half = np.load(tmp_path / "a.npy")
    table = pq.read_table(tmp_path / "a.parquet")
    assert half.dtype == np.float16 and half.shape == (500, 8)
    assert np.array_equal(half, np.asarray(table.column("embedding").to_pylist(), np.float32).astype(np.float16))
    assert pq.ParquetFile(tmp_path / "a.parquet").metadata.num_row_groups == 8


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--keep-columns", "id"], "--keep-columns needs a Parquet or Arrow input"),
        (["--text-column", "body"], "--text-column needs a Parquet or Arrow input"),
        (["-o", "OUT.npy", "--keep-columns", "id", "--text-column", "body", "--input", "table"],
         "a .npy output holds only embeddings"),
        (["--keep-columns", "nope", "--text-column", "body", "--input", "table"], "no 'nope' column"),
    ],
)
def test_misused_options_are_one_line(txt, tmp_path, tiny_dir, capsys, extra, message):
    pq.write_table(pa.table({"body": ["a", "b"], "id": [1, 2]}), tmp_path / "t.parquet")
    source = tmp_path / "t.parquet" if "--input" in extra else txt
    extra = [e for e in extra if e not in ("--input", "table")]
    out = [] if "-o" in extra else ["-o", tmp_path / "out.parquet"]
    extra = [tmp_path / e if e == "OUT.npy" else e for e in extra]
    assert embed(source, *out, *extra, tiny_dir=tiny_dir) == 2
    assert message in one_line_error(capsys)


@pytest.mark.parametrize("name", ["out.txt", "out.CSV", "out.jsonl", "out.arrow"])
def test_an_output_named_for_another_format_is_refused(txt, tmp_path, tiny_dir, capsys, name):
    out = tmp_path / name
    out.write_text("kept\n")
    assert embed(txt, "-o", out, tiny_dir=tiny_dir) == 2
    assert "is not an output format here; name the output .parquet or .npy" in one_line_error(capsys)
    assert out.read_text() == "kept\n"


def test_a_resume_with_other_options_is_refused(txt, tmp_path, tiny_dir, capsys, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="sae")
    out = tmp_path / "out.parquet"
    out.write_bytes(b"precious")
    import sae.corpus.job as job

    calls = []

    def interrupt_on_third(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    real = job.output_table
    monkeypatch.setattr(job, "output_table", interrupt_on_third)
    assert embed(txt, "-o", out, "--chunk-rows", "100", tiny_dir=tiny_dir) == 130
    assert "interrupted" in capsys.readouterr().err and "--resume` continues" in caplog.text
    monkeypatch.setattr(job, "output_table", real)
    assert out.read_bytes() == b"precious" and state_dir(out).is_dir()
    assert embed(txt, "-o", out, "--chunk-rows", "100", "--dtype", "float16", "--resume", tiny_dir=tiny_dir) == 2
    assert "cannot resume, the interrupted run differs: dtype was 'float32', now 'float16'" in one_line_error(capsys)
    other = tmp_path / "other.txt"
    other.write_text(txt.read_text())
    assert embed(other, "-o", out, "--chunk-rows", "100", "--resume", tiny_dir=tiny_dir) == 2
    assert f"the interrupted run differs: it read {txt}, this run reads {other}" in one_line_error(capsys)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(txt.read_bytes())))
    assert embed("-", "-o", out, "--chunk-rows", "100", "--resume", tiny_dir=tiny_dir) == 2
    assert f"the interrupted run differs: it read {txt}, this run reads stdin" in one_line_error(capsys)
    assert embed(txt, "-o", out, "--chunk-rows", "100", "--resume", tiny_dir=tiny_dir) == 0
    assert "200 resumed" in caplog.text
    assert embed(txt, "-o", tmp_path / "whole.parquet", "--chunk-rows", "100", tiny_dir=tiny_dir) == 0
    assert out.read_bytes() == (tmp_path / "whole.parquet").read_bytes()


def test_a_glob_dataset(tmp_path, tiny_dir):
    for k in range(3):
        pq.write_table(pa.table({"text": [f"cat {i}" for i in range(k * 10)], "k": [k] * (k * 10)}),
                       tmp_path / f"part-{k}.parquet")
    assert embed(tmp_path / "part-*.parquet", "-o", tmp_path / "out", "--keep-columns", "k", tiny_dir=tiny_dir) == 0
    assert [pq.read_table(tmp_path / "out" / f"part-{k}.parquet").num_rows for k in range(3)] == [0, 10, 20]


def test_invalid_utf8_in_a_kept_column_exits_2_naming_column_and_row(tmp_path, tiny_dir, capsys):
    """Kept columns were copied unchecked: exit 0 and an output whose string column
    its readers fail on. Now refused as the text column is, the earlier output kept."""
    texts = [f"cat {i}" for i in range(100)]
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"text": texts, "meta": [f"m {i}" for i in range(100)]}), good)
    meta = pa.array([b"m \xff" if i == 90 else b"m" for i in range(100)], pa.binary()).view(pa.string())  # unchecked
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"text": texts, "meta": meta}), bad, row_group_size=30)
    out = tmp_path / "out.parquet"
    assert embed(good, "-o", out, "--keep-columns", "meta", tiny_dir=tiny_dir) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert embed(bad, "-o", out, "--keep-columns", "meta", "--chunk-rows", "30", tiny_dir=tiny_dir) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].endswith("bad.parquet: column 'meta': invalid UTF-8 in row 91")
    assert out.read_bytes() == before and not state_dir(out).exists()  # three chunks embedded, none kept


def test_ray_without_its_extra_names_the_install(txt, tmp_path, tiny_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert embed(txt, "-o", tmp_path / "out.parquet", "--ray", tiny_dir=tiny_dir) == 2
    assert "pip install 'sae[ray]'" in one_line_error(capsys)


def test_the_progress_bar_shows_rate_and_time_left(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = ProgressBar(min_rows=PROGRESS_MIN)
    bar.start(total=10_000, done=1_000)
    for _ in range(3):
        bar.advance(1_000)
    task = bar._bar.tasks[0]
    assert task.completed == 4_000 and task.total == 10_000 and task.fields["rate"].endswith("texts/s")
    bar.stop()
    quiet = ProgressBar(min_rows=PROGRESS_MIN)
    quiet.start(total=10_000, done=9_000)  # little left: no bar
    assert quiet._bar is None
    teaching = ProgressBar("teaching")  # sae teach: a bar at a terminal, however few texts are left
    teaching.start(total=3, done=0)
    assert teaching._bar is not None and teaching._bar.tasks[0].description == "teaching"
    teaching.stop()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    logged = ProgressBar("teaching")  # none in logs
    logged.start(total=None, done=0)
    assert logged._bar is None


def test_chunk_rows_beyond_what_pyarrow_takes_is_one_line(tmp_path, tiny_dir, capsys):
    """--chunk-rows 2**63 on a Parquet input was an OverflowError traceback from pyarrow."""
    table = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["the cat", "a dog"]}), table)
    assert embed(table, "-o", tmp_path / "a.npy", "--chunk-rows", str(2**63), tiny_dir=tiny_dir) == 2
    assert one_line_error(capsys).endswith(f"--chunk-rows: must be at most 2,147,483,647, got {2**63}")
    assert not (tmp_path / "a.npy").exists()


def test_a_dataset_of_more_parts_than_open_files_allowed(tmp_path, tiny_dir):
    """Every part was opened when the job was planned and kept open: past the process's
    file limit a good part was reported 'not a readable .parquet table (Too many open files)'."""
    import subprocess

    parts = tmp_path / "ds"
    parts.mkdir()
    for i in range(120):
        pq.write_table(pa.table({"text": [f"the cat {i}", "a dog"]}), parts / f"part-{i:04d}.parquet")
    script = ("import resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)); "
              "from sae.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", script, "embed", str(parts), "-o", str(tmp_path / "out"),
                           "--algorithm", str(tiny_dir), "--backend", "cpu"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list((tmp_path / "out").glob("*.parquet"))) == 120
