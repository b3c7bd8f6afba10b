"""sae.distill.teacher_cache: settled teacher values, and a cache that is read, not recomputed."""

import importlib.util

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sae.distill.teacher_cache import TEXTS_FILE, TOKENS_FILE, TeacherCache
from sae.errors import InputError
from sae.teacher import SETTLE_BITS, settle, write_teacher
from tests.conftest import teacher_tokenizer_json

GRID = 2.0**-SETTLE_BITS
unit_values = arrays(np.float64, st.integers(1, 64), elements=st.floats(-1, 1, allow_nan=False))


@given(unit_values)
def test_settled_values_are_float32_multiples_of_the_grid_within_half_a_step(x):
    s = settle(x)
    assert s.dtype == np.float32
    steps = s.astype(np.float64) / GRID
    assert np.array_equal(steps, np.round(steps))  # exact in float32: no second rounding
    assert np.all(np.abs(s.astype(np.float64) - x) <= GRID / 2)
    assert np.array_equal(settle(s), s)


@given(unit_values, st.floats(-4e-16, 4e-16))
def test_float64_noise_settles_away_unless_it_straddles_a_boundary(x, noise):
    """The float64 teacher differs between CPUs by < 4e-16: settled, the bytes agree
    wherever the value is not within that noise of a rounding boundary."""
    boundary_distance = np.abs(np.abs(x / GRID - np.floor(x / GRID)) - 0.5) * GRID
    safe = boundary_distance > 1e-15
    assert np.array_equal(settle(x)[safe], settle(x + noise)[safe])


@pytest.fixture
def filled_cache(tmp_path):
    """A cache folder as the teacher leaves it: tokenizer, token vectors, two texts."""
    (tmp_path / "tokenizer.json").write_text(teacher_tokenizer_json(), encoding="utf-8")
    rng = np.random.default_rng(0)
    def unit_rows(n: int) -> np.ndarray:
        x = rng.standard_normal((n, 384))
        return settle(x / np.linalg.norm(x, axis=1, keepdims=True))

    tokens = unit_rows(8)
    np.save(tmp_path / TOKENS_FILE, tokens)
    emb = unit_rows(2)
    write_teacher(tmp_path / TEXTS_FILE, ["a dog runs .", "a cat sleeps ."], emb, {"teacher": "test"})
    return tmp_path, tokens, emb


def test_a_filled_cache_is_read_without_the_teacher(filled_cache, monkeypatch):
    folder, tokens, emb = filled_cache
    cache = TeacherCache(folder, teacher_python="/nonexistent/python")
    monkeypatch.setattr(cache, "_run", lambda texts: pytest.fail(f"the teacher ran for {texts}"))
    assert np.array_equal(cache.tokens(), tokens)
    got = cache.embeddings(["a cat sleeps .", "a dog runs .", "a cat sleeps ."])
    assert np.array_equal(got, emb[[1, 0, 1]])
    assert '"WordPiece"' in cache.tokenizer_json()


@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is not None,
                    reason="this interpreter has the teacher; the refusal is for one without it")
def test_a_float32_cache_of_earlier_versions_is_not_mixed_in(filled_cache):
    """Files of the float32 teacher (``tokens.npy``, ``texts.parquet``) are not the cache's:
    a text only they hold must be computed, and without a teacher that fails in one line."""
    folder = filled_cache[0]
    (folder / TEXTS_FILE).rename(folder / "texts.parquet")
    cache = TeacherCache(folder, teacher_python="/nonexistent/python")
    with pytest.raises(InputError, match="no sentence-transformers: pip install 'sae\\[teacher\\]'"):
        cache.embeddings(["a dog runs ."])


@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is not None,
                    reason="this interpreter has the teacher; the interpreter named is for one without it")
def test_a_teacher_interpreter_that_is_not_there_is_named(filled_cache):
    """--teacher-python /no/such/python was answered 'name a teacher interpreter with
    --teacher-python', as if none had been named."""
    cache = TeacherCache(filled_cache[0], teacher_python="/nonexistent/python")
    with pytest.raises(InputError, match=r"^/nonexistent/python: no such teacher interpreter \(--teacher-python or "
                                         r"SAE_TEACHER_PYTHON\)"):
        cache.embeddings(["a text the cache lacks"])


def fake_teacher(tmp_path, monkeypatch):
    """The teacher's side of the cache (``teacher_cache.run``) without torch or a model: token
    vectors of ones, a text's embedding a unit row picked by its length. Returns the model directory."""
    import sys
    from types import SimpleNamespace

    import sae.distill.teacher_cache as teacher_cache
    import sae.teacher

    model = tmp_path / "model"
    model.mkdir()
    (model / "tokenizer.json").write_text(teacher_tokenizer_json(), encoding="utf-8")
    fake_model = SimpleNamespace(tokenizer=SimpleNamespace(vocab_size=8))
    fake_model.to = lambda dtype: fake_model
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(manual_seed=lambda seed: None, float64="float64"))
    monkeypatch.setattr(sae.teacher, "load_teacher_model", lambda name: fake_model)
    monkeypatch.setattr(teacher_cache, "token_vectors", lambda st, n: np.ones((n, 384), dtype=np.float32))
    monkeypatch.setattr(sae.teacher, "embed_settled",
                        lambda texts, st, batch_size: np.eye(384, dtype=np.float32)[[len(t) for t in texts]])
    return model


def test_an_interrupted_teacher_leaves_no_partial_token_file(tmp_path, monkeypatch):
    """The teacher wrote tokens-f64.npy in place: Ctrl-C or a kill while it was written left a
    truncated file that every later run took as finished (and failed on with a traceback)."""
    import sae.distill.teacher_cache as teacher_cache

    model = fake_teacher(tmp_path, monkeypatch)

    def cut_short(file, array, *args, **kwargs):
        out = open(file, "wb") if isinstance(file, str | type(tmp_path)) else file
        out.write(b"\x93NUMPY\x01\x00")  # the header's start, then the interrupt
        out.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", cut_short)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        teacher_cache.run(["--cache", str(cache), "--model", str(model)])
    assert (cache / "tokenizer.json").read_text(encoding="utf-8") == teacher_tokenizer_json()
    assert sorted(p.name for p in cache.iterdir()) == ["tokenizer.json"]


@pytest.mark.parametrize("damage, message", [
    # (numpy's own reason varies by version: "Failed to read all data", "cannot reshape array")
    (lambda f: f.write_bytes(f.read_bytes()[:200]), "tokens-f64.npy: not a readable .npy file ("),
    (lambda f: f.write_text("hello\n"), "tokens-f64.npy: not an .npy file;"),
    (lambda f: np.save(f, np.zeros((8, 384))), "tokens-f64.npy: holds a float64 array of shape (8, 384), expected"),
    (lambda f: np.save(f, np.full((8, 384), np.nan, dtype=np.float32)), "tokens-f64.npy: contains NaN or infinity;"),
    (lambda f: (f.parent / "tokenizer.json").write_text('{"x":'), "tokenizer.json: not a readable tokenizer ("),
])
def test_a_damaged_cache_file_is_named_in_one_line(filled_cache, damage, message):
    """A cache file cut short or replaced ended distillation in a traceback (numpy's ValueError,
    the tokenizer's bare Exception, an IndexError deep in the fit)."""
    folder = filled_cache[0]
    damage(folder / TOKENS_FILE)
    cache = TeacherCache(folder, teacher_python="/nonexistent/python")
    with pytest.raises(InputError) as info:
        cache.tokenizer_json()
        cache.tokens()
    assert message in str(info.value) and str(info.value).endswith("delete it and the teacher writes it again")
    assert str(folder) in str(info.value)


def test_a_token_file_shorter_than_the_vocabulary_is_named(filled_cache, tmp_path, capsys):
    """8 token vectors for a 30,522-token tokenizer failed in the fit (IndexError)."""
    from sae.cli import main
    from tests.distill.test_recipe_inputs import fake_shared

    folder = filled_cache[0]
    shared = fake_shared(tmp_path / "data")
    rows = settle(np.eye(384)[:2])
    for split in ("train", "dev"):
        (shared / f"data/teacher/teacher-minilm-{split}.parquet").unlink()
        write_teacher(shared / f"data/teacher/teacher-minilm-{split}.parquet", ["A cat 0.", "A dog 0."], rows, {})
    code = main(["distill", "--shared", str(shared), "--cache", str(folder), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0] == (f"sae distill: error: {folder / TOKENS_FILE}: 8 token vectors for the 30522 tokens of "
                      f"{folder / 'tokenizer.json'}; delete it and the teacher writes it again")


def test_any_text_reaches_the_teacher_and_back(tmp_path, monkeypatch):
    """The request was one text per line, read back without empty lines and with universal
    newlines: an empty sentence (or one holding a carriage return) never reached the teacher, and
    'sae distill' ended in a traceback (KeyError: '')."""
    import importlib.util

    import sae.distill.teacher_cache as teacher_cache

    model = fake_teacher(tmp_path, monkeypatch)
    real_run = teacher_cache.run
    monkeypatch.setattr(teacher_cache, "run", lambda argv: real_run([*argv, "--model", str(model)]))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "sentence_transformers" else real_find_spec(name, *a))
    texts = ["", "a\rb", "two\nlines", "   ", "plain"]
    got = TeacherCache(tmp_path / "cache").embeddings(texts)
    assert np.array_equal(got, np.eye(384, dtype=np.float32)[[len(t) for t in texts]])


def test_a_cache_that_cannot_take_a_request_is_one_line(filled_cache, monkeypatch):
    """A read-only cache lacking a text: the request's OSError was a traceback."""
    import errno
    from pathlib import Path

    real_write_text = Path.write_text

    def read_only(self, *args, **kwargs):
        if self.parent == folder:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_write_text(self, *args, **kwargs)

    folder = filled_cache[0]
    monkeypatch.setattr(Path, "write_text", read_only)
    with pytest.raises(InputError, match=r"cannot write the teacher's request \(Read-only file system\); the teacher "
                                         r"cache .* must be writable while it lacks embeddings"):
        TeacherCache(folder, teacher_python="/nonexistent/python").embeddings(["a new text"])


def test_a_teacher_that_returns_without_the_texts_is_one_line(filled_cache, tmp_path):
    """A teacher interpreter that exits 0 without embedding what was asked: a KeyError traceback."""
    import os

    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(python, 0o755)
    with pytest.raises(InputError, match=r"texts-f64.parquet: the teacher ran but returned no embedding for 1 of "
                                         r"the 1 requested text\(s\), e.g. 'a text the cache lacks'"):
        TeacherCache(filled_cache[0], teacher_python=str(python)).embeddings(["a text the cache lacks"])


def test_the_teacher_process_ends_quietly_on_ctrl_c(tmp_path, monkeypatch, capsys):
    """Ctrl-C reaches the teacher's interpreter with the command: it printed a KeyboardInterrupt
    traceback some 40 frames deep in torch before the command's 'interrupted'."""
    import sae.distill.teacher_cache as teacher_cache

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(teacher_cache, "run", interrupted)
    assert teacher_cache.main(["--cache", str(tmp_path)]) == 130
    assert capsys.readouterr().err == ""

    def bad(argv):
        raise InputError("texts.txt: line 3: invalid UTF-8")

    monkeypatch.setattr(teacher_cache, "run", bad)
    assert teacher_cache.main([]) == 2
    assert capsys.readouterr().err == "teacher: error: texts.txt: line 3: invalid UTF-8\n"


def test_the_teacher_interpreter_runs_main(filled_cache, tmp_path):
    """The command line a teacher interpreter is given goes through main (quiet on Ctrl-C)."""
    import os

    folder = filled_cache[0]
    seen = tmp_path / "argv.txt"
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {seen}\n')
    os.chmod(python, 0o755)
    with pytest.raises(InputError, match="the teacher ran but returned no embedding"):
        TeacherCache(folder, teacher_python=str(python)).embeddings(["a text the cache lacks"])
    assert "from sae.distill.teacher_cache import main; sys.exit(main(sys.argv[1:]))" in seen.read_text()
