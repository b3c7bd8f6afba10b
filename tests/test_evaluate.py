"""STS evaluation: the STS-B reader, ranks with ties, Spearman."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sae.errors import InputError
from sae.evaluate import Pairs, cosine_rows, pearson, rankdata, read_pairs, score_embeddings, spearman


def test_rankdata_average_ties():
    np.testing.assert_array_equal(rankdata([10, 20, 20, 5]), [2, 3.5, 3.5, 1])
    np.testing.assert_array_equal(rankdata([1, 1, 1]), [2, 2, 2])


def test_spearman_known_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Textbook example with ties (scipy.stats.spearmanr gives 0.8088235294117648).
    x = [1, 2, 2, 3, 4, 5]
    y = [2, 1, 3, 3, 5, 4]
    assert spearman(x, y) == pytest.approx(0.8088235294117648)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


@given(st.lists(st.integers(-5, 5), min_size=3, max_size=40), st.integers(0, 2**31 - 1))
def test_spearman_is_invariant_under_monotone_maps(xs, seed):
    x = np.asarray(xs, dtype=float)
    y = np.random.default_rng(seed).permutation(x) + np.arange(len(x)) * 0.01
    base = spearman(x, y)
    if np.isnan(base):
        return
    assert spearman(np.exp(x / 3), y * 7 - 3) == pytest.approx(base, abs=1e-12)


def test_read_stsb_layout_with_quotes_and_extra_columns(tmp_path):
    f = tmp_path / "pairs.csv"
    f.write_text(
        'main-news\theadlines\t2015\t0001\t3.800\tHe said "no" today.\tHe said no.\textra1\textra2\n'
        "main-captions\timages\t2014\t0002\t0.5\tA dog runs.\tA cat \"sleeps.\n",
        encoding="utf-8",
    )
    p = read_pairs(f)
    assert p.s1 == ['He said "no" today.', "A dog runs."]
    assert p.s2 == ["He said no.", 'A cat "sleeps.']
    np.testing.assert_array_equal(p.scores, [3.8, 0.5])
    assert p.genres == ["main-news", "main-captions"]
    assert p.unique_texts() == ['He said "no" today.', "A dog runs.", "He said no.", 'A cat "sleeps.']


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a\tb\tc\n", "line 1: 3 tab-separated column(s), expected at least 7"),
        ("g\tf\ty\t1\tfive\ts1\ts2\ng\tf\ty\t1\t1\ts1\ts2\n", "line 1: score 'five' is not a number"),
        ("g\tf\ty\t1\t1_0\ts1\ts2\ng\tf\ty\t1\t1\ts1\ts2\n", "line 1: score '1_0' is not a number"),
        ("g\tf\ty\t1\t1\ts1\ts2\n", "1 pair(s)"),
    ],
)
def test_bad_pairs_files(tmp_path, content, message):
    f = tmp_path / "bad.csv"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=re.escape(message)):
        read_pairs(f)


def test_invalid_utf8_names_the_line(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_bytes(b"g\tf\ty\t1\t1\ta\tb\ng\tf\ty\t1\t1\t\xff\tb\n")
    with pytest.raises(InputError, match="line 2: invalid UTF-8"):
        read_pairs(f)


def test_score_embeddings_perfect_order(tmp_path):
    f = tmp_path / "p.csv"
    lines = [f"g\tf\ty\t{i}\t{i}\ta\tb{i}" for i in range(5)]
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pairs = read_pairs(f)
    texts = pairs.unique_texts()
    emb = np.zeros((len(texts), 2))
    emb[texts.index("a")] = [1, 0]
    for i in range(5):  # higher gold score -> smaller angle to "a"
        angle = (4 - i) * 0.3
        emb[texts.index(f"b{i}")] = [np.cos(angle), np.sin(angle)]
    rho, _, by_genre = score_embeddings(pairs, texts, emb)
    assert rho == pytest.approx(1.0) and by_genre["g"] == pytest.approx(1.0)


def test_cosine_rows_zero_rows():
    c = cosine_rows(np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 0.0], [2.0, 0.0]]))
    np.testing.assert_allclose(c, [0.0, 1.0])


@pytest.mark.parametrize(("args", "error", "message"), [
    ((["a", "b"], ["c"], [1.0, 2.0]), ValueError, "s1, s2 and scores differ in length (2, 1, 2)"),
    ((["a", "b"], ["c", "d"], [1.0, 2.0, 3.0]), ValueError, "s1, s2 and scores differ in length (2, 2, 3)"),
    # Genres of another length gave by_genre={} without a word.
    ((["a", "b"], ["c", "d"], [1.0, 2.0], ["news"]), ValueError, "1 genres for 2 pairs"),
    # No pairs gave NaN and numpy's "Mean of empty slice" warnings.
    (([], [], []), ValueError, "Pairs: no pairs"),
    ((["a", "b"], ["c", "d"], [1.0, float("nan")]), ValueError, "Pairs.scores: score nan of pair 1 is not finite"),
    ((["a", "b"], ["c", "d"], [[1.0, 2.0]]), ValueError, "Pairs.scores must be one-dimensional"),
    (("ab", ["c", "d"], [1.0, 2.0]), TypeError, "Pairs.s1 must be a list of str, got str"),
    ((["a", "b"], ["c", 4], [1.0, 2.0]), TypeError, "Pairs.s2 must be a list of str"),
])
def test_pairs_refuse_what_cannot_be_scored(args, error, message):
    with pytest.raises(error, match=re.escape(message)):
        Pairs("p", *args)


def test_valid_pairs_keep_their_scores():
    scores = np.array([1.0, 2.5])
    pairs = Pairs("p", ["a", "b"], ["c", "d"], scores, ["news", "forum"])
    assert pairs.scores is scores and len(pairs) == 2  # a float64 array is kept as given
    listed = Pairs("p", ["a", "b"], ["c", "d"], [1, 2])  # a list of scores becomes the float64 array
    assert listed.scores.dtype == np.float64 and listed.scores.tolist() == [1.0, 2.0]


@pytest.mark.parametrize(("a", "b"), [([1, 2, 3], [5]), ([1, 2, 3], [1, 2])])
def test_pearson_checks_shapes_as_spearman_does(a, b):
    """[5] broadcast to NaN, [1, 2] failed in numpy."""
    with pytest.raises(ValueError, match=re.escape("pearson: shapes differ (3,) vs")):
        pearson(a, b)
    with pytest.raises(ValueError, match=re.escape("spearman: shapes differ (3,) vs")):
        spearman(a, b)


def test_pearson_gives_the_same_numbers():
    """The mean is still taken of the input as given (float32 in float32): the same bits."""
    rng = np.random.default_rng(3)
    for x, y in [(rng.random(101).astype(np.float32), rng.random(101)), (rng.random((7, 3)), rng.random(21))]:
        xm, ym = np.asarray(x, np.float64).ravel() - np.mean(x), np.asarray(y, np.float64).ravel() - np.mean(y)
        expected = float((xm * ym).sum() / np.sqrt((xm * xm).sum() * (ym * ym).sum()))
        assert pearson(x, y) == expected
    assert np.isnan(pearson([1, 1, 1], [1, 2, 3]))


def test_evaluate_times_a_warmed_engine(tmp_path):
    """The rate `sae eval` prints timed the vector rows a fresh engine computes once (about
    1,000 sentences/s reported for the default on dev, 9,000-10,000 warmed): it warms first."""
    from tiny import make_tiny, parse

    from sae import Engine
    from sae.evaluate import evaluate

    f = tmp_path / "p.csv"
    f.write_text("".join(f"g\tf\ty\t{i}\t{i % 5}\tthe cat is not happy\tdog , not red {i}\n" for i in range(6)),
                 encoding="utf-8")
    engine = Engine(make_tiny(rules=parse("rule scope score 60: [neg] [!punct]+4 => set 1 mod=1"), transforms=2),
                    backend="cpu")
    assert not engine.backend.table.ready.all()
    result = evaluate(engine, read_pairs(f))
    assert engine.backend.table.ready.all() and result.sentences == 7


def test_pearson_of_a_constant_side_is_nan_as_documented():
    """The mean of 0.1, 0.1, 0.1 is not exactly 0.1: the residuals were tiny, not zero, and
    the correlation came out 0.0."""
    assert np.isnan(pearson(np.full(3, 0.1), [1, 2, 3]))
    assert np.isnan(pearson([1, 2, 3], np.full(3, 0.7, dtype=np.float32)))
    assert pearson([1, 2, 3], [2, 4, 7]) > 0.9
