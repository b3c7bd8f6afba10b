"""Streaming jobs: the same table as embedding everything at once, resumable, over datasets."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import resource
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sae.corpus import EmbedOptions, embed_corpus, embed_in_memory
from sae.corpus.job import Job
from sae.corpus.sources import StdinSource
from sae.corpus.state import resumable_rows, state_dir
from sae.engine import Engine
from sae.errors import InputError

WORDS = "the a cat dog new york city not very big small house red man woman eats food happy sad , .".split()


def corpus(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(0, 9))) for _ in range(n)]


@pytest.fixture(scope="module")
def engine(tiny_dir):
    return Engine(tiny_dir, backend="cpu", batch_size=16, threads=2)


@pytest.fixture
def txt(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("\n".join(corpus(300)) + "\n")
    return path


class InterruptError(Exception):
    """Stands for a crash after some rows."""


class StopAfter:
    def __init__(self, rows: int) -> None:
        self.rows = rows

    def start(self, total, done):
        self.total, self.done = total, done

    def advance(self, rows):
        self.rows -= rows
        if self.rows <= 0:
            raise InterruptError


def options(**kw) -> EmbedOptions:
    return EmbedOptions(**{"chunk_rows": 40, **kw})


def test_stream_gives_the_in_memory_table(txt, tmp_path, engine):
    embed_in_memory(str(txt), str(tmp_path / "m.parquet"), engine)
    summary = embed_corpus(str(txt), str(tmp_path / "s.parquet"), engine, options())
    assert summary.rows == summary.embedded == 300
    streamed, whole = pq.read_table(tmp_path / "s.parquet"), pq.read_table(tmp_path / "m.parquet")
    assert streamed.column("text").equals(whole.column("text"))
    assert streamed.column("embedding").combine_chunks().equals(whole.column("embedding").combine_chunks())
    assert streamed.schema.metadata[b"sae.algorithm"] == engine.algorithm.content_hash.encode()
    meta = pq.ParquetFile(tmp_path / "s.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [40] * 7 + [20]
    assert not state_dir(tmp_path / "s.parquet").exists()


def test_same_bytes_whatever_the_batches_and_threads(txt, tmp_path, tiny_dir):
    outs = []
    for k, (batch, threads) in enumerate([(16, 2), (7, 1), (1000, 3)]):
        out = tmp_path / f"{k}.parquet"
        embed_corpus(str(txt), str(out), Engine(tiny_dir, backend="cpu", batch_size=batch, threads=threads),
                     options())
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] == outs[2]


def test_npy_and_float16(txt, tmp_path, engine):
    embed_corpus(str(txt), str(tmp_path / "a.parquet"), engine, options())
    reference = np.asarray(pq.read_table(tmp_path / "a.parquet").column("embedding").to_pylist(), np.float32)
    embed_corpus(str(txt), str(tmp_path / "a.npy"), engine, options())
    embed_corpus(str(txt), str(tmp_path / "h.npy"), engine, options(dtype="float16"))
    embed_corpus(str(txt), str(tmp_path / "h.parquet"), engine, options(dtype="float16"))
    assert np.array_equal(np.load(tmp_path / "a.npy"), reference)
    half = np.load(tmp_path / "h.npy")
    assert half.dtype == np.float16 and np.array_equal(half, reference.astype(np.float16))
    column = pq.read_table(tmp_path / "h.parquet").column("embedding").combine_chunks()
    assert column.type == pa.list_(pa.float16(), 8)
    assert np.array_equal(column.flatten().to_numpy().reshape(-1, 8), half)


def test_empty_input(tmp_path, engine):
    (tmp_path / "e.txt").write_bytes(b"")
    embed_corpus(str(tmp_path / "e.txt"), str(tmp_path / "e.parquet"), engine, options())
    embed_corpus(str(tmp_path / "e.txt"), str(tmp_path / "e.npy"), engine, options())
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 0
    assert np.load(tmp_path / "e.npy").shape == (0, 8)


def test_table_input_with_text_and_kept_columns(tmp_path, engine):
    texts = corpus(100, seed=1)
    table = pa.table({"body": texts, "id": list(range(100)), "score": np.linspace(0, 1, 100)})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=33)
    embed_corpus(str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet"), engine,
                 options(text_column="body", keep_columns=("score", "id")))
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.schema.names == ["text", "embedding", "score", "id"]
    assert out.column("text").to_pylist() == texts and out.column("id").to_pylist() == list(range(100))
    assert np.allclose(np.asarray(out.column("embedding").to_pylist()), engine.embed(texts))


def test_an_interrupted_run_resumes_to_the_same_bytes(txt, tmp_path, engine):
    for name in ("whole.parquet", "whole.npy"):
        embed_corpus(str(txt), str(tmp_path / name), engine, options())
    for name in ("part.parquet", "part.npy"):
        out = tmp_path / name
        for stop in (50, 130):  # interrupted twice, the second time while resuming
            with pytest.raises(InterruptError):
                embed_corpus(str(txt), str(out), engine, options(resume=True), progress=StopAfter(stop))
            assert not out.exists() and state_dir(out).is_dir()
        progress = StopAfter(10**9)
        summary = embed_corpus(str(txt), str(out), engine, options(resume=True), progress=progress)
        assert progress.total == 300 and progress.done == summary.rows - summary.embedded > 0
        assert out.read_bytes() == (tmp_path / name.replace("part", "whole")).read_bytes()
        assert not state_dir(out).exists()


def test_an_existing_output_survives_a_failure(txt, tmp_path, engine):
    out = tmp_path / "out.parquet"
    out.write_bytes(b"precious")
    with pytest.raises(InterruptError):
        embed_corpus(str(txt), str(out), engine, options(), progress=StopAfter(100))
    assert out.read_bytes() == b"precious"


def test_bad_rows_midway_keep_the_old_output_and_leave_no_state(tmp_path, engine, monkeypatch):
    out = tmp_path / "out.parquet"
    out.write_bytes(b"precious")
    data = ("ok\n" * 100).encode() + b"\xff\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    with pytest.raises(InputError, match="<stdin>: line 101: invalid UTF-8"):
        embed_corpus("-", str(out), engine, options())
    assert out.read_bytes() == b"precious" and not state_dir(out).exists()


def test_invalid_utf8_in_a_table_keeps_the_old_output_and_leaves_no_state(tmp_path, engine):
    from test_sources import invalid_utf8_strings  # tests/corpus/test_sources.py

    pq.write_table(pa.table({"text": invalid_utf8_strings(100, 90)}), tmp_path / "in.parquet", row_group_size=30)
    out = tmp_path / "out.parquet"
    out.write_bytes(b"precious")
    with pytest.raises(InputError, match=r"in\.parquet: column 'text': invalid UTF-8 in row 91"):
        embed_corpus(str(tmp_path / "in.parquet"), str(out), engine, options())
    assert out.read_bytes() == b"precious" and not state_dir(out).exists()


@contextlib.contextmanager
def file_size_limit(size: int):
    """Writes beyond ``size`` bytes fail with EFBIG, as a full disk fails them with ENOSPC
    (Python ignores SIGXFSZ, so the process is not killed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.mark.parametrize("name", ["out.parquet", "out.npy"])
def test_a_failed_write_is_one_line_and_resumes(tmp_path, tiny_dir, capsys, name):
    from sae.cli import main

    txt = tmp_path / "in.txt"
    txt.write_text("\n".join(corpus(2000, seed=4)) + "\n")
    args = ["--algorithm", str(tiny_dir), "--backend", "cpu", "--chunk-rows", "400"]
    assert main(["embed", str(txt), "-o", str(tmp_path / ("whole" + name[3:])), *args]) == 0
    out = tmp_path / name
    out.write_bytes(b"precious")
    capsys.readouterr()
    with file_size_limit(40_000):
        code = main(["embed", str(txt), "-o", str(out), *args])
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 1 and err == [f"sae embed: error: {out}: writing failed: File too large"]
    assert out.read_bytes() == b"precious" and resumable_rows(out) > 0
    assert main(["embed", str(txt), "-o", str(out), *args, "--resume"]) == 0
    assert out.read_bytes() == (tmp_path / ("whole" + name[3:])).read_bytes()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p, o: o | {"dtype": "float16"}, "dtype was 'float32', now 'float16'"),
        (lambda p, o: o | {"chunk_rows": 30}, "chunk_rows was 40, now 30"),
        (lambda p, o: (p.write_text(p.read_text() + "one more\n"), o)[1], ".*in.txt changed since"),
    ],
)
def test_a_resume_of_another_job_is_refused(txt, tmp_path, engine, change, message):
    out = tmp_path / "out.parquet"
    with pytest.raises(InterruptError):
        embed_corpus(str(txt), str(out), engine, options(), progress=StopAfter(100))
    kw = change(txt, {"resume": True})
    with pytest.raises(InputError, match="cannot resume, the interrupted run differs: " + message):
        embed_corpus(str(txt), str(out), engine, options(**kw))
    assert state_dir(out).is_dir()  # still there for the right command
    embed_corpus(str(txt), str(out), engine, options(**{**kw, "resume": False}))  # starts over
    assert pq.read_table(out).num_rows > 0


def test_a_resume_from_stdin_checks_the_texts(tmp_path, engine, monkeypatch):
    out = tmp_path / "out.parquet"
    texts = corpus(200, seed=2)

    def feed(lines):
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(("\n".join(lines) + "\n").encode())))

    feed(texts)
    with pytest.raises(InterruptError):
        embed_corpus("-", str(out), engine, options(), progress=StopAfter(120))
    feed(["something else"] + texts[1:])
    with pytest.raises(InputError, match="rows 1-40 of the input differ"):
        embed_corpus("-", str(out), engine, options(resume=True))
    feed(texts[:40])
    with pytest.raises(InputError, match="input now ends before row 41"):
        embed_corpus("-", str(out), engine, options(resume=True))
    feed(texts)
    embed_corpus("-", str(out), engine, options(resume=True))
    assert pq.read_table(out).column("text").to_pylist() == texts


def test_a_resume_whose_stdin_fails_keeps_the_finished_chunks(tmp_path, engine, monkeypatch):
    """A closed or undecodable stdin given to --resume deleted the interrupted run's state
    (found by an adversarial pass): it is no reason to lose the chunks already embedded."""
    out = tmp_path / "out.parquet"
    texts = corpus(200, seed=3)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(("\n".join(texts) + "\n").encode())))
    with pytest.raises(InterruptError):
        embed_corpus("-", str(out), engine, options(), progress=StopAfter(120))
    kept = resumable_rows(out)
    assert kept > 0
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"a\xff\n")))
    with pytest.raises(InputError, match="invalid UTF-8"):
        embed_corpus("-", str(out), engine, options(resume=True))
    assert resumable_rows(out) == kept
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(("\n".join(texts) + "\n").encode())))
    assert embed_corpus("-", str(out), engine, options(resume=True)).embedded == 200 - kept
    assert pq.read_table(out).column("text").to_pylist() == texts


def test_a_pipe_embeds_as_its_file_and_resumes_from_another_pipe(txt, tmp_path, engine):
    """``sae embed <(zcat corpus.gz) -o OUT`` was refused; it reads the pipe as stdin, and a
    resume may come through another pipe (a process substitution's /dev/fd/N changes)."""
    import threading

    def pipe(name: str) -> tuple[Path, threading.Thread]:
        fifo = tmp_path / name
        os.mkfifo(fifo)

        def feed() -> None:
            with open(fifo, "wb") as sink:
                try:
                    sink.write(txt.read_bytes())
                except BrokenPipeError:  # the reader stopped early
                    pass
        thread = threading.Thread(target=feed)
        thread.start()
        return fifo, thread

    whole = tmp_path / "whole.parquet"
    embed_corpus(str(txt), str(whole), engine, options())
    fifo, writer = pipe("first")
    out = tmp_path / "out.parquet"
    with pytest.raises(InterruptError):
        embed_corpus(str(fifo), str(out), engine, options(), progress=StopAfter(130))
    writer.join()
    fifo, writer = pipe("second")
    embed_corpus(str(fifo), str(out), engine, options(resume=True))
    writer.join()
    assert out.read_bytes() == whole.read_bytes()


def test_resume_without_state_starts_over_and_a_fresh_run_discards_state(txt, tmp_path, engine):
    out = tmp_path / "out.parquet"
    embed_corpus(str(txt), str(out), engine, options(resume=True))  # nothing to resume: a plain run
    reference = out.read_bytes()
    with pytest.raises(InterruptError):
        embed_corpus(str(txt), str(out), engine, options(), progress=StopAfter(100))
    summary = embed_corpus(str(txt), str(out), engine, options())
    assert summary.embedded == 300 and out.read_bytes() == reference


def test_a_damaged_state_is_refused(txt, tmp_path, engine):
    out = tmp_path / "out.parquet"
    with pytest.raises(InterruptError):
        embed_corpus(str(txt), str(out), engine, options(), progress=StopAfter(100))
    state = json.loads((state_dir(out) / "state.json").read_text())
    for damaged in ["{not json", "[1, 2]", json.dumps(state | {"identity": None}),
                    json.dumps(state | {"chunks": [None]})]:
        (state_dir(out) / "state.json").write_text(damaged)
        with pytest.raises(InputError, match=r"state .* is unreadable"):
            embed_corpus(str(txt), str(out), engine, options(resume=True))


def test_a_damaged_saved_chunk_is_embedded_again(txt, tmp_path, engine, caplog):
    embed_corpus(str(txt), str(tmp_path / "whole.parquet"), engine, options())
    out = tmp_path / "out.parquet"
    with pytest.raises(InterruptError):
        embed_corpus(str(txt), str(out), engine, options(), progress=StopAfter(130))
    assert resumable_rows(out) == 120
    (state_dir(out) / "parts" / "00000001.arrow").write_bytes(b"garbage")
    summary = embed_corpus(str(txt), str(out), engine, options(resume=True))
    assert summary.embedded == 300 - 40  # chunk 0 kept; chunk 1 and those after it embedded again
    assert "saved chunk 1 is unreadable" in caplog.text and "embedding again from row 41" in caplog.text
    assert out.read_bytes() == (tmp_path / "whole.parquet").read_bytes()


@pytest.mark.parametrize("name", ["out.npy", "out.parquet"])
def test_a_kill_after_the_rename_is_finished_by_resume(txt, tmp_path, engine, monkeypatch, name):
    from sae.corpus.state import ResumeState

    def killed(state):  # the output renamed into place, the state not yet removed
        state.close()  # the lock goes with a killed process
        raise InterruptError

    out = tmp_path / name
    monkeypatch.setattr(ResumeState, "remove", killed)
    with pytest.raises(InterruptError):
        embed_corpus(str(txt), str(out), engine, options())
    monkeypatch.undo()
    reference = out.read_bytes()
    assert state_dir(out).is_dir()
    summary = embed_corpus(str(txt), str(out), engine, options(resume=True))
    assert summary.embedded == 0 and summary.rows == 300
    assert out.read_bytes() == reference and not state_dir(out).exists()


def test_one_writer_per_output(txt, tmp_path, engine):
    out = tmp_path / "out.parquet"
    job = Job(str(txt), str(out), options()).bind(engine.algorithm.content_hash, "cpu", engine.dim)
    with pytest.raises(InterruptError), job.open(job.outputs[0]):
        with pytest.raises(InputError, match="another sae embed is writing this output"):
            embed_corpus(str(txt), str(out), engine, options())
        raise InterruptError
    embed_corpus(str(txt), str(out), engine, options(resume=True))  # the lock went with the first run
    assert pq.read_table(out).num_rows == 300


# -- datasets -------------------------------------------------------------------------------------


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    (root / "2024").mkdir(parents=True)
    (root / "_tmp").mkdir()
    for k, name in enumerate(["a.parquet", "2024/b.parquet", "2024/c.parquet", "_tmp/x.parquet", ".d.parquet"]):
        texts = corpus(60 + 10 * k, seed=k)
        pq.write_table(pa.table({"text": texts, "n": list(range(len(texts)))}), root / name, row_group_size=25)
    (root / "notes.txt").write_text("not a part\n")
    return root


def test_a_dataset_gives_one_output_per_part(dataset, tmp_path, engine):
    out = tmp_path / "out"
    summary = embed_corpus(str(dataset), str(out), engine, options(keep_columns=("n",)))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "2024", "2024/b.parquet", "2024/c.parquet", "a.parquet"]
    assert summary.rows == 60 + 70 + 80
    for name in ("a.parquet", "2024/b.parquet"):
        part = pq.read_table(out / name)
        source = pq.read_table(dataset / name)
        assert part.column("text").equals(source.column("text")) and part.column("n").equals(source.column("n"))
    embed_corpus(str(dataset / "2024" / "*.parquet"), str(tmp_path / "glob"), engine, options(keep_columns=("n",)))
    assert (tmp_path / "glob" / "b.parquet").read_bytes() == (out / "2024" / "b.parquet").read_bytes()


def test_a_dataset_resumes_part_by_part(dataset, tmp_path, engine):
    embed_corpus(str(dataset), str(tmp_path / "whole"), engine, options())
    out = tmp_path / "out"
    with pytest.raises(InterruptError):
        embed_corpus(str(dataset), str(out), engine, options(), progress=StopAfter(70 + 50))
    assert json.loads((out / ".dataset.resume.json").read_text())["done"] == ["2024/b.parquet"]
    summary = embed_corpus(str(dataset), str(out), engine, options(resume=True))
    assert summary.rows == 210 and summary.embedded == 210 - 70 - 40
    for name in ("a.parquet", "2024/b.parquet", "2024/c.parquet"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    assert not (out / ".dataset.resume.json").exists()
    assert not list(out.rglob(".*.resume"))


def test_a_dataset_resumes_after_an_unfinished_part_is_fixed(dataset, tmp_path, engine):
    out = tmp_path / "out"
    with pytest.raises(InterruptError):
        embed_corpus(str(dataset), str(out), engine, options(), progress=StopAfter(70 + 50))
    finished = (out / "2024" / "b.parquet").read_bytes()
    texts = corpus(60, seed=9)  # a.parquet, not started, is replaced
    pq.write_table(pa.table({"text": texts, "n": list(range(60))}), dataset / "a.parquet")
    summary = embed_corpus(str(dataset), str(out), engine, options(resume=True))
    assert summary.embedded == 60 + 80 - 40  # a, and c after its 40 finished rows; not b
    assert (out / "2024" / "b.parquet").read_bytes() == finished
    assert pq.read_table(out / "a.parquet").column("text").to_pylist() == texts
    with pytest.raises(InterruptError):
        embed_corpus(str(dataset), str(out), engine, options(), progress=StopAfter(70 + 50))
    pq.write_table(pa.table({"text": texts, "n": list(range(60))}), dataset / "2024" / "b.parquet")
    with pytest.raises(InputError, match=r"cannot resume, the interrupted run differs: \S*b\.parquet changed since "
                                         r"\(its size or modification time\) \(run without --resume"):
        embed_corpus(str(dataset), str(out), engine, options(resume=True))
    # A finished part gone from the dataset: its output would stay in OUT beside the others.
    (dataset / "2024" / "b.parquet").unlink()
    with pytest.raises(InputError, match=r"finished 2024/b\.parquet, which the input no longer holds"):
        embed_corpus(str(dataset), str(out), engine, options(resume=True))


def test_dataset_problems(dataset, tmp_path, engine):
    with pytest.raises(InputError, match="no Parquet files found"):
        embed_corpus(str(tmp_path / "nothing-*.parquet"), str(tmp_path / "o"), engine)
    with pytest.raises(InputError, match=r"not a \.npy file"):
        embed_corpus(str(dataset), str(tmp_path / "o.npy"), engine)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        embed_corpus(str(dataset), str(tmp_path / "file"), engine)
    with pytest.raises(InputError, match="no 'body' column"):
        embed_corpus(str(dataset), str(tmp_path / "o"), engine, options(text_column="body"))
    if hasattr(os, "mkfifo"):  # a pipe named as a part was skipped without a word
        os.mkfifo(dataset / "pipe.parquet")
        with pytest.raises(InputError, match=r"pipe\.parquet: not a regular file \(a pipe or a device\) in the dataset"):
            embed_corpus(str(dataset), str(tmp_path / "o"), engine)


def test_a_dataset_checks_every_parts_output_before_any_work(dataset, tmp_path, engine):
    """Found by an adversarial pass: a pipe or a link where a part's output goes was replaced
    by a file, a directory or file in the way failed after earlier parts were written."""
    out = tmp_path / "out"
    (out / "2024" / "b.parquet").mkdir(parents=True)
    with pytest.raises(InputError, match=r"out/2024/b\.parquet: is a directory"):
        embed_corpus(str(dataset), str(out), engine)
    assert sorted(p.name for p in out.rglob("*")) == ["2024", "b.parquet"]  # nothing written
    (out / "2024" / "b.parquet").rmdir()
    (out / "2024").rmdir()
    (out / "2024").write_text("a file")
    with pytest.raises(InputError, match=r"out/2024: is a file, where the output of the part 2024/b\.parquet needs "
                                         r"a directory"):
        embed_corpus(str(dataset), str(out), engine)
    assert not (out / "a.parquet").exists()
    (out / "2024").unlink()
    if hasattr(os, "mkfifo"):
        os.mkfifo(out / "a.parquet")
        with pytest.raises(InputError, match=r"a\.parquet: is not a regular file \(a device or a pipe\)"):
            embed_corpus(str(dataset), str(out), engine)
        (out / "a.parquet").unlink()
    target = tmp_path / "elsewhere.parquet"
    target.write_text("old")
    (out / "a.parquet").symlink_to(target)
    embed_corpus(str(dataset), str(out), engine)
    assert (out / "a.parquet").is_symlink()  # written through, as a single OUT is
    assert pq.read_table(target).num_rows == 60


def test_an_empty_input_name_is_refused(tmp_path, engine, monkeypatch):
    monkeypatch.chdir(tmp_path)  # it named the current directory: every Parquet file below was embedded
    pq.write_table(pa.table({"text": ["a cat"]}), tmp_path / "x.parquet")
    with pytest.raises(InputError, match="INPUT is empty"):
        embed_corpus("", "out", engine)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.parquet"]


def test_a_dataset_inside_its_output_is_named_so(dataset, tmp_path, engine):
    out = dataset.parent
    with pytest.raises(InputError, match=re.escape(f"data: lies inside OUT {out}, whose files are outputs, not "
                                                   "parts; name an OUT that does not contain the input")):
        embed_corpus(str(dataset), str(out), engine)


def test_an_output_inside_the_dataset_is_not_read_back(dataset, engine):
    embed_corpus(str(dataset), str(dataset / "out"), engine, options())
    summary = embed_corpus(str(dataset), str(dataset / "out"), engine, options())
    assert len(summary.outputs) == 3


def test_stdin_source_reads_a_given_stream():
    source = StdinSource(2, io.BytesIO(b"a\nb\nc"))
    assert [c.column("text").to_pylist() for c in source.chunks()] == [["a", "b"], ["c"]]


def test_truncated_texts_are_reported_once(tmp_path, engine, caplog):
    long = " ".join(["cat"] * 200)
    (tmp_path / "in.txt").write_text("\n".join([long, "dog"] * 50) + "\n")
    with caplog.at_level("WARNING"):
        embed_corpus(str(tmp_path / "in.txt"), str(tmp_path / "o.parquet"),
                     Engine(engine.algorithm, backend="cpu", long_texts="truncate"), options(chunk_rows=10))
    warnings = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert warnings == ["50 text(s) longer than 128 tokens were truncated to 128 tokens"]


def test_a_resume_that_would_treat_long_texts_otherwise_is_refused(txt, tmp_path, engine):
    out = tmp_path / "out.parquet"
    with pytest.raises(InterruptError):
        embed_corpus(str(txt), str(out), engine, options(), progress=StopAfter(100))
    job = Job(str(txt), str(out), options(resume=True)).bind(engine.algorithm.content_hash, "cpu", engine.dim,
                                                             "truncate")
    with pytest.raises(InputError, match="long_texts was 'window', now 'truncate'"):
        job.resumable_chunks(job.outputs[0])


def test_a_resume_on_another_backend_is_refused(txt, tmp_path, engine):
    out = tmp_path / "out.parquet"
    with pytest.raises(InterruptError):
        embed_corpus(str(txt), str(out), engine, options(), progress=StopAfter(100))
    job = Job(str(txt), str(out), options(resume=True)).bind(engine.algorithm.content_hash, "gpu", engine.dim)
    with pytest.raises(InputError, match="backend was 'cpu', now 'gpu'"):
        job.resumable_chunks(job.outputs[0])
    other = Job(str(txt), str(out), options(resume=True)).bind("another algorithm", "cpu", engine.dim)
    with pytest.raises(InputError, match=r"algorithm was '[0-9a-f]+', now 'another algorithm'"):
        other.open(other.outputs[0])
    assert Job(str(txt), str(out), options(resume=True)).bind(
        engine.algorithm.content_hash, "cpu", engine.dim).resumable_chunks(job.outputs[0]) == 2


def test_a_directory_and_its_glob_find_the_same_parts(tmp_path):
    from sae.corpus.dataset import find_parts

    root, other = tmp_path / "data", tmp_path / "other"
    (root / "sub").mkdir(parents=True)
    other.mkdir()
    for path in (root / "a.parquet", root / "sub" / "B.PARQUET", other / "x.parquet"):
        pq.write_table(pa.table({"text": ["a"]}), path)
    (root / "linked").symlink_to(other, target_is_directory=True)
    (other / "back").symlink_to(root, target_is_directory=True)  # a loop: each file once
    expected = ["a.parquet", "linked/x.parquet", "sub/B.PARQUET"]
    assert [p.relative for p in find_parts(str(root))] == expected
    assert [p.relative for p in find_parts(str(root / "**" / "*"))] == expected
