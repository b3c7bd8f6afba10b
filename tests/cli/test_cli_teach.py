"""``sae teach`` end to end with a fake teacher (tests/teach_fakes.py): interrupted and
resumed to the same bytes, its refusals one line and exit 2, its warnings as they were.
The real teacher's runs are in tests/test_teacher.py (they need ``sae[teacher]``)."""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from teach_fakes import FakeTeacher, is_cut

import sae.teacher
from sae.cli import main
from sae.corpus.state import state_dir

WORDS = "a man is playing the guitar woman slices an onion".split()
TEXTS = [" ".join(WORDS[i % 7: i % 7 + 1 + i % 6]) for i in range(150)]  # 1 to 6 words: some are cut


class Teachers:
    """What ``sae teach`` loads: a fake teacher per run, the next one failing as told."""

    def __init__(self) -> None:
        self.loaded: list[tuple[FakeTeacher, dict]] = []
        self.fail_at: int | None = None
        self.fail: BaseException | None = None

    def load(self, model, *, precision, batch_size):
        teacher = FakeTeacher(self.fail_at, self.fail)
        self.loaded.append((teacher, {"model": model, "precision": precision, "batch_size": batch_size}))
        self.fail_at = self.fail = None
        return teacher


@pytest.fixture
def teachers(monkeypatch):
    fakes = Teachers()
    monkeypatch.setattr(sae.teacher, "load_sentence_teacher", fakes.load)
    return fakes


@pytest.fixture
def txt(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(TEXTS) + "\n")
    return path


def teach(corpus, out, *extra) -> int:
    return main(["teach", str(corpus), "-o", str(out), "--batch-size", "16", "--chunk-rows", "32", *map(str, extra)])


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def reference(txt, tmp_path, teachers):
    out = tmp_path / "reference.parquet"
    assert teach(txt, out) == 0
    return out


def test_ctrl_c_then_resume_gives_the_bytes_of_an_uninterrupted_run(txt, tmp_path, teachers, reference, capsys,
                                                                     caplog):
    out = tmp_path / "teacher.parquet"
    teachers.fail_at, teachers.fail = 2, KeyboardInterrupt()
    with caplog.at_level(logging.INFO, logger="sae"):
        assert teach(txt, out) == 130
    assert capsys.readouterr().err.strip() == "sae teach: interrupted"
    assert (f"interrupted; 64 embedded texts are kept in {state_dir(out)}, and the same command with --resume "
            "continues after them") in caplog.messages
    assert not out.exists()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sae"):
        assert teach(txt, out, "--resume") == 0
    assert out.read_bytes() == reference.read_bytes() and not state_dir(out).exists()
    assert teachers.loaded[-1][0].chunks == [32, 32, 22]  # only what the interrupted run had not finished
    assert f"wrote 150 teacher embeddings (dim 8) to {out}" in caplog.text and "(64 resumed)" in caplog.text


def test_the_cut_warning_keeps_its_words_and_numbers(txt, tmp_path, teachers, caplog):
    cut = [i for i, t in enumerate(TEXTS) if is_cut(t)]
    expected = (f"{len(cut)} text(s) are longer than the teacher's 6 tokens and are embedded cut to them "
                f"(the first: text {cut[0] + 1})")
    with caplog.at_level(logging.WARNING, logger="sae"):
        assert teach(txt, tmp_path / "whole.parquet") == 0
    assert caplog.messages == [expected]
    out = tmp_path / "resumed.parquet"
    teachers.fail_at = 3
    with pytest.raises(Exception, match="crashed"):
        teach(txt, out)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sae"):
        assert teach(txt, out, "--resume") == 0
    assert caplog.messages == [expected]  # the chunks of the interrupted run counted too


def test_the_options_reach_the_teacher_and_the_file(txt, tmp_path, teachers):
    out = tmp_path / "t.parquet"
    assert main(["teach", str(txt), "-o", str(out), "--model", "some/model", "--precision", "float32",
                 "--batch-size", "20"]) == 0
    assert teachers.loaded[-1][1] == {"model": "some/model", "precision": "float32", "batch_size": 20}
    assert teachers.loaded[-1][0].chunks == [150]  # the default chunk: 2048 rounded up to 2060
    assert pq.read_schema(out).metadata[b"teacher"] == b"some/model"


@pytest.fixture
def interrupted(txt, tmp_path, teachers):
    out = tmp_path / "teacher.parquet"
    teachers.fail_at = 2
    with pytest.raises(Exception, match="crashed"):
        teach(txt, out)
    return out


@pytest.mark.parametrize(("extra", "message"), [
    ((), "an interrupted run kept 64 embedded text(s) in {state}; pass --resume to continue it, "
         "or delete {state} to start over"),
    (("--resume", "--precision", "float32"), "cannot resume, the interrupted run differs: precision was "
                                             "'settled', now 'float32' (delete {state} to start over)"),
    (("--resume", "--model", "other"), "cannot resume, the interrupted run differs: model was "
                                       "'all-MiniLM-L6-v2', now 'other' (delete {state} to start over)"),
    (("--resume", "--batch-size", "8"), "cannot resume, the interrupted run differs: batch_size was 16, now 8 "
                                        "(delete {state} to start over)"),
])
def test_refusals_before_the_teacher_loads(txt, interrupted, reference, teachers, capsys, extra, message):
    out = interrupted
    loaded = len(teachers.loaded)
    assert teach(txt, out, *extra) == 2
    assert one_line_error(capsys) == f"sae teach: error: {out}: " + message.format(state=state_dir(out))
    assert len(teachers.loaded) == loaded and state_dir(out).exists() and not out.exists()
    assert teach(txt, out, "--resume") == 0 and out.read_bytes() == reference.read_bytes()


def test_a_resume_over_another_corpus_is_refused(txt, interrupted, reference, tmp_path, teachers, capsys):
    out = interrupted
    other = tmp_path / "other.txt"
    other.write_text("\n".join(reversed(TEXTS)) + "\n")
    assert teach(other, out, "--resume") == 2
    assert one_line_error(capsys) == (f"sae teach: error: {out}: cannot resume, rows 1-32 of the input differ "
                                      f"from the interrupted run's (delete {state_dir(out)} to start over)")
    assert teachers.loaded[-1][0].chunks == [] and state_dir(out).exists()
    assert teach(txt, out, "--resume") == 0 and out.read_bytes() == reference.read_bytes()


def test_bad_corpora_are_one_line_as_before(tmp_path, teachers, capsys):
    table = tmp_path / "t.parquet"
    pq.write_table(pa.table({"sentence": ["a cat"], "id": [1]}), table)
    assert teach(table, tmp_path / "out.parquet") == 2
    assert one_line_error(capsys) == f"sae teach: error: {table}: no 'text' column (columns: sentence, id)"
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nalso fine\nbroken \xff here\n")
    assert teach(bad, tmp_path / "out.parquet") == 2
    assert one_line_error(capsys) == f"sae teach: error: {bad}: line 3: invalid UTF-8 (invalid start byte at byte 22)"
    assert teach(tmp_path / "missing.txt", tmp_path / "out.parquet") == 2
    assert one_line_error(capsys).endswith("missing.txt: no such file")
    assert teachers.loaded == [] and not (tmp_path / "out.parquet").exists()


def test_ctrl_c_in_the_first_chunk_keeps_nothing_and_blocks_nothing(txt, tmp_path, teachers, reference, caplog,
                                                                    capsys):
    """Nothing was finished, so nothing is lost by starting over: no --resume needed."""
    out = tmp_path / "teacher.parquet"
    teachers.fail_at, teachers.fail = 0, KeyboardInterrupt()
    with caplog.at_level(logging.WARNING, logger="sae"):
        assert teach(txt, out) == 130
    assert caplog.messages == ["interrupted before the first chunk was finished; nothing is kept"]
    capsys.readouterr()
    assert teach(txt, out) == 0 and out.read_bytes() == reference.read_bytes()
