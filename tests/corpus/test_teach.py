"""Teaching jobs stream a corpus through a teacher: the file one call would write, a chunk in
memory at a time, resumable to the same bytes, refusing a resume that would mix two runs.

The teacher is a fake (tests/teach_fakes.py): these run without the ``sae[teacher]`` extra.
"""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from teach_fakes import DIM, FakeTeacher, TeacherCrashError, embeddings_of, is_cut

from sae.corpus.state import ResumeRefusedError, ResumeState, state_dir
from sae.corpus.teach import TeachJob, TeachOptions, teach_corpus
from sae.errors import InputError
from sae.teacher import read_teacher, write_teacher

ROWS = 250
CHUNK = 64  # four chunks: 64, 64, 64, 58
WORDS = "a man is playing the guitar woman slices an onion dog runs in park".split()


def corpus(n: int = ROWS, seed: int = 0) -> list[str]:
    """Sentences of 1 to 7 words, some of them repeated (a teacher file may hold a text twice)."""
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(1, 8))) for _ in range(n)]
    for i in range(0, n, 37):
        texts[i] = texts[0]
    return texts


def options(**kw) -> TeachOptions:
    return TeachOptions(**{"model": "fake-model", "batch_size": 16, "chunk_rows": CHUNK, **kw})


def write_txt(path, texts):
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def txt(tmp_path):
    return write_txt(tmp_path / "corpus.txt", corpus())


@pytest.fixture
def reference(txt, tmp_path):
    """The teacher file of an uninterrupted run over ``txt``."""
    out = tmp_path / "reference.parquet"
    teach_corpus(txt, out, FakeTeacher(), options())
    return out


def row_groups(path) -> list[int]:
    meta = pq.ParquetFile(path).metadata
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def kept_chunks(out) -> int:
    return len(json.loads((state_dir(out) / "state.json").read_text())["chunks"])


def stdin_of(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


# -- streaming -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["txt", "parquet", "arrow", "stdin"])
def test_the_streamed_file_holds_what_one_call_writes(tmp_path, monkeypatch, kind):
    """Texts, embedding bytes, schema and metadata of the file written in one go before
    streaming (write_teacher of every text); only the row groups differ: one per chunk."""
    texts = corpus()
    table = pa.table({"id": pa.array(range(ROWS)), "text": pa.array(texts, pa.large_string())})
    if kind == "parquet":
        source = tmp_path / "corpus.parquet"
        pq.write_table(table, source, row_group_size=7)  # its own row groups do not matter
    elif kind == "arrow":
        source = tmp_path / "corpus.arrow"
        with pa.OSFile(str(source), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=30):
                writer.write_batch(batch)
    elif kind == "stdin":
        source = "-"
        stdin_of(monkeypatch, ("\n".join(texts) + "\n").encode())
    else:
        source = write_txt(tmp_path / "corpus.txt", texts)
    out = tmp_path / "teacher.parquet"
    teacher = FakeTeacher()
    summary = teach_corpus(source, out, teacher, options())

    assert (summary.rows, summary.embedded, summary.dim) == (ROWS, ROWS, DIM)
    assert teacher.chunks == [64, 64, 64, 58]  # never more than a chunk in memory
    assert row_groups(out) == [64, 64, 64, 58]
    one_shot = tmp_path / "one-shot.parquet"
    write_teacher(one_shot, texts, embeddings_of(texts), {"teacher": "fake-model", "normalized": "true",
                                                          "source": str(source), "precision": "fake float32"})
    streamed, whole = pq.read_table(out), pq.read_table(one_shot)
    assert streamed.schema.equals(whole.schema, check_metadata=True)
    assert streamed.column("text").to_pylist() == texts
    assert streamed.column("embedding").combine_chunks().equals(whole.column("embedding").combine_chunks())
    codecs = [[pq.ParquetFile(f).metadata.row_group(0).column(i).compression for i in range(2)] for f in (out, one_shot)]
    assert codecs[0] == codecs[1] == ["SNAPPY", "SNAPPY"]  # written as write_teacher writes, not sae embed's plain
    table = read_teacher(out, dim=DIM)  # the reader of every teacher file, unchanged; repeats agree
    assert table.embeddings.tobytes() == embeddings_of(texts).tobytes()
    assert table.metadata == {"teacher": "fake-model", "normalized": "true", "source": str(source),
                              "precision": "fake float32"}
    assert not state_dir(out).exists()


def test_an_empty_corpus_writes_an_empty_teacher_file(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    out = tmp_path / "teacher.parquet"
    summary = teach_corpus(tmp_path / "empty.txt", out, FakeTeacher(), options())
    assert summary.rows == 0 and read_teacher(out).embeddings.shape == (0, DIM)


def test_chunks_are_whole_teacher_batches(txt, tmp_path):
    assert TeachOptions(batch_size=100).chunk == 2100 and TeachOptions(batch_size=64).chunk == 2048
    teacher = FakeTeacher()
    teach_corpus(txt, tmp_path / "t.parquet", teacher, options(batch_size=30, chunk_rows=50))
    assert teacher.chunks == [60, 60, 60, 60, 10]


def test_progress_counts_the_texts_and_starts_after_the_resumed_ones(txt, tmp_path):
    class Recorder:
        def start(self, total, done):
            self.total, self.done, self.advanced = total, done, 0

        def advance(self, rows):
            self.advanced += rows

    progress = Recorder()
    out = tmp_path / "t.parquet"
    with pytest.raises(TeacherCrashError):
        teach_corpus(txt, out, FakeTeacher(fail_at=2), options(), progress)
    assert (progress.total, progress.done, progress.advanced) == (ROWS, 0, 128)
    teach_corpus(txt, out, FakeTeacher(), options(resume=True), progress)
    assert (progress.total, progress.done, progress.advanced) == (ROWS, 128, ROWS - 128)


# -- resuming --------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_at", [0, 1, 3])
@pytest.mark.parametrize("failure", [TeacherCrashError("crash"), KeyboardInterrupt()])
def test_interrupted_at_a_chunk_then_resumed_gives_the_same_bytes(txt, reference, tmp_path, fail_at, failure):
    out = tmp_path / "teacher.parquet"
    with pytest.raises(type(failure)):
        teach_corpus(txt, out, FakeTeacher(fail_at=fail_at, fail=failure), options())
    assert not out.exists()  # nothing that looks finished
    assert kept_chunks(out) == fail_at
    teacher = FakeTeacher()
    summary = teach_corpus(txt, out, teacher, options(resume=True))
    assert out.read_bytes() == reference.read_bytes()
    assert teacher.embedded == summary.embedded == ROWS - CHUNK * fail_at and summary.rows == ROWS
    assert not state_dir(out).exists()


def test_interrupted_twice_and_from_stdin(tmp_path, reference, monkeypatch):
    data = ("\n".join(corpus()) + "\n").encode()
    out = tmp_path / "teacher.parquet"
    for _ in range(2):  # a chunk further each time
        stdin_of(monkeypatch, data)
        with pytest.raises(TeacherCrashError):
            teach_corpus("-", out, FakeTeacher(fail_at=1), options(resume=True))
    assert kept_chunks(out) == 2
    stdin_of(monkeypatch, data)
    teach_corpus("-", out, FakeTeacher(), options(resume=True))
    # the same bytes as from the file but for the metadata's source: "-"
    streamed, whole = pq.read_table(out), pq.read_table(reference)
    assert streamed.schema.metadata[b"source"] == b"-"
    assert streamed.replace_schema_metadata(None).equals(whole.replace_schema_metadata(None))
    assert row_groups(out) == row_groups(reference)


@pytest.mark.parametrize("long_rows", [[70, 71, 200], [3, 200]])
def test_the_texts_cut_are_counted_over_the_whole_file(tmp_path, long_rows):
    """A resumed run reports the cut texts of the chunks the interrupted one finished too."""
    short = [t for t in corpus(4 * ROWS) if not is_cut(t)]
    texts = short[:ROWS]
    for row in long_rows:
        texts[row] = "a man is playing the guitar in the park"
    txt = write_txt(tmp_path / "corpus.txt", texts)
    whole = teach_corpus(txt, tmp_path / "whole.parquet", FakeTeacher(), options())
    assert (whole.cut, whole.first_cut, whole.limit) == (len(long_rows), long_rows[0], 6)
    out = tmp_path / "t.parquet"
    with pytest.raises(TeacherCrashError):
        teach_corpus(txt, out, FakeTeacher(fail_at=2), options())
    resumed = teach_corpus(txt, out, FakeTeacher(), options(resume=True))
    assert (resumed.cut, resumed.first_cut) == (len(long_rows), long_rows[0])


@pytest.fixture
def interrupted(txt, tmp_path):
    """An output whose run stopped after two chunks, and its state.json as it was."""
    out = tmp_path / "teacher.parquet"
    with pytest.raises(TeacherCrashError):
        teach_corpus(txt, out, FakeTeacher(fail_at=2), options())
    return out, (state_dir(out) / "state.json").read_bytes()


def resumes_to_the_reference(txt, out, reference) -> None:
    teacher = FakeTeacher()
    teach_corpus(txt, out, teacher, options(resume=True))
    assert out.read_bytes() == reference.read_bytes() and teacher.embedded == ROWS - 2 * CHUNK


def test_an_interrupted_run_is_never_started_over_without_resume(txt, interrupted, reference):
    out, state = interrupted
    with pytest.raises(InputError) as info:
        TeachJob(txt, out, options())
    where = state_dir(out)
    assert str(info.value) == (f"{out}: an interrupted run kept 128 embedded text(s) in {where}; "
                               f"pass --resume to continue it, or delete {where} to start over")
    assert (where / "state.json").read_bytes() == state
    resumes_to_the_reference(txt, out, reference)


@pytest.mark.parametrize(("change", "difference"), [
    ({"precision": "float32"}, "precision was 'settled', now 'float32'"),
    ({"batch_size": 32}, "batch_size was 16, now 32"),
    ({"model": "another-model"}, "model was 'fake-model', now 'another-model'"),
    ({"chunk_rows": 128}, "chunk_rows was 64, now 128"),
])
def test_a_resume_with_other_options_is_refused_before_any_work(txt, interrupted, reference, change, difference):
    out, state = interrupted
    with pytest.raises(InputError) as info:
        TeachJob(txt, out, options(resume=True, **change))
    assert str(info.value) == (f"{out}: cannot resume, the interrupted run differs: {difference} "
                               f"(delete {state_dir(out)} to start over)")
    assert (state_dir(out) / "state.json").read_bytes() == state
    resumes_to_the_reference(txt, out, reference)


def test_a_model_directory_changed_under_the_same_path_is_refused(txt, tmp_path):
    """A model replaced under the same name would mix two teachers in one file: its files
    (configs, vocabulary, weights) are part of the run's identity; its README is not."""
    from sae.teacher import model_fingerprint

    model = tmp_path / "model"
    (model / "1_Pooling").mkdir(parents=True)
    (model / "config.json").write_text('{"hidden_size": 4}')
    (model / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (model / "model.safetensors").write_bytes(b"weights " * 100)
    (model / "README.md").write_text("a model")
    first = model_fingerprint(model)
    out = tmp_path / "teacher.parquet"
    with pytest.raises(TeacherCrashError):
        teach_corpus(txt, out, FakeTeacher(fail_at=2), options(model=str(model)))
    (model / "README.md").write_text("a model, described better")
    assert model_fingerprint(model) == first
    (model / "model.safetensors").write_bytes(b"retrained " * 100)
    second = model_fingerprint(model)
    with pytest.raises(InputError) as info:
        TeachJob(txt, out, options(model=str(model), resume=True))
    assert str(info.value) == (f"{out}: cannot resume, the interrupted run differs: model_files was {first!r}, "
                               f"now {second!r} (delete {state_dir(out)} to start over)")
    assert model_fingerprint("fake-model") is None  # a hub name: its files are not sae's to find


def test_a_resume_over_another_corpus_is_refused(txt, interrupted, reference, tmp_path):
    out, state = interrupted
    other = write_txt(tmp_path / "other.txt", corpus(seed=1))
    teacher = FakeTeacher()
    with pytest.raises(ResumeRefusedError) as info:
        teach_corpus(other, out, teacher, options(resume=True))
    assert str(info.value) == (f"{out}: cannot resume, rows 1-64 of the input differ from the interrupted "
                               f"run's (delete {state_dir(out)} to start over)")
    short = write_txt(tmp_path / "short.txt", corpus()[:CHUNK])
    with pytest.raises(ResumeRefusedError, match="the input now ends before row 65, where the interrupted run"):
        teach_corpus(short, out, teacher, options(resume=True))
    assert teacher.chunks == [] and not out.exists()
    assert (state_dir(out) / "state.json").read_bytes() == state
    resumes_to_the_reference(txt, out, reference)


def test_a_corpus_extended_after_the_interruption_resumes(txt, interrupted, tmp_path):
    """The corpus is known by its texts: lines added (or a file touched) after the finished
    chunks do not undo them, and the file is the one an uninterrupted run over it writes."""
    out, _ = interrupted
    longer = corpus() + corpus(40, seed=2)
    write_txt(txt, longer)
    teacher = FakeTeacher()
    teach_corpus(txt, out, teacher, options(resume=True))
    reference = tmp_path / "longer.parquet"
    teach_corpus(txt, reference, FakeTeacher(), options())
    assert out.read_bytes() == reference.read_bytes() and teacher.embedded == len(longer) - 2 * CHUNK


def test_bad_input_mid_run_keeps_the_finished_chunks(tmp_path):
    """A null text in chunk 3 of a table: refused naming its row, and the two chunks before it
    are kept (sae embed drops them); the corrected table resumes after them."""
    texts = corpus()
    broken = pa.array(texts[:150] + [None] + texts[151:], pa.string())
    source = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"text": broken}), source)
    out = tmp_path / "teacher.parquet"
    with pytest.raises(InputError, match=r"corpus\.parquet: column 'text' has a null value in row 151$"):
        teach_corpus(source, out, FakeTeacher(), options())
    assert kept_chunks(out) == 2 and not out.exists()
    pq.write_table(pa.table({"text": pa.array(texts, pa.string())}), source)
    teacher = FakeTeacher()
    teach_corpus(source, out, teacher, options(resume=True))
    reference = tmp_path / "reference.parquet"
    teach_corpus(source, reference, FakeTeacher(), options())
    assert out.read_bytes() == reference.read_bytes() and teacher.embedded == ROWS - 2 * CHUNK


def test_an_output_being_written_is_refused_as_such(txt, interrupted):
    out, _ = interrupted
    job = TeachJob(txt, out, options(resume=True))
    running = ResumeState.open(out, job.identity(), True, job.policy)  # holds the lock, as a running teach does
    try:
        for resume in (False, True):
            with pytest.raises(InputError, match=rf"^{out}: another sae teach is writing this output$"):
                TeachJob(txt, out, options(resume=resume))
    finally:
        running.close()


def test_the_output_must_be_parquet_and_not_the_corpus(tmp_path, txt):
    with pytest.raises(InputError, match=r"t\.npy: \.npy is not an output format here; name the output \.parquet"):
        TeachJob(txt, tmp_path / "t.npy", options())
    with pytest.raises(InputError, match="is also an input"):
        TeachJob(txt, txt, options())
