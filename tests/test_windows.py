"""Texts longer than the stream: windows at word starts (sae.windows)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sae.windows import Windows, split

#: ids 0..9 start words, 10..19 continue one (WordPiece ``##``)
STARTS = np.arange(20) < 10
token_lists = st.lists(st.integers(0, 19), max_size=120)


@given(token_lists, st.integers(1, 40))
def test_windows_cover_the_text_in_order_within_the_capacity(ids, capacity):
    windows = split(ids, capacity, STARTS)
    assert [t for w in windows for t in w] == ids
    assert all(len(w) <= capacity for w in windows)
    assert all(windows) or windows == [ids]  # no empty window, unless the text is empty
    fewest = max(1, -(-len(ids) // capacity))
    assert fewest <= len(windows) <= 2 * fewest  # a cut moved back to a word start costs at most half a window


@given(token_lists, st.integers(2, 40))
def test_a_window_starts_inside_a_word_only_when_the_word_is_long(ids, capacity):
    windows = split(ids, capacity, STARTS)
    begin = 0
    for window in windows[:-1]:
        begin += len(window)
        if not STARTS[ids[begin]]:  # a cut inside a word: no word start in the window's second half
            assert not any(STARTS[t] for t in ids[begin - len(window) // 2 : begin])


def test_windows_are_near_equal_rather_than_full_then_a_remainder():
    assert [len(w) for w in split(list(range(10)) * 13, 128, STARTS)] == [65, 65]


@given(st.lists(st.integers(1, 70), min_size=1, max_size=12), st.integers(0, 2**32 - 1))
def test_combine_sums_by_tokens_and_keeps_single_documents_bytes(lengths, seed):
    rng = np.random.default_rng(seed)
    texts = [list(rng.integers(0, 10, n)) for n in lengths]
    windows = Windows.of(texts, 16, STARTS)
    vectors = rng.standard_normal((len(windows.documents), 5)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    out = windows.combine(vectors)
    assert out.shape == (len(texts), 5) and out.dtype == np.float32
    d = 0
    for k, ids in enumerate(texts):
        parts = split(ids, 16, STARTS)
        if len(parts) == 1:
            assert out[k].tobytes() == vectors[d].tobytes()
        else:
            total = sum(len(p) * vectors[d + j].astype(np.float64) for j, p in enumerate(parts))
            np.testing.assert_allclose(out[k], total / np.linalg.norm(total), atol=1e-6)
        d += len(parts)
    assert d == len(windows.documents)


@given(st.lists(st.integers(0, 70), min_size=1, max_size=12))
def test_owners_and_starts_place_each_document_in_its_text(lengths):
    texts = [list(np.arange(n) % 10) for n in lengths]
    windows = Windows.of(texts, 16, STARTS)
    owners, starts = windows.owners(), windows.starts()
    assert len(owners) == len(starts) == len(windows.documents)
    for document, text, start in zip(windows.documents, owners, starts):
        assert list(document) == texts[text][start : start + len(document)]
    assert sorted(set(owners.tolist())) == list(range(len(texts)))


def test_combine_gives_the_zero_vector_where_the_windows_sum_to_zero():
    windows = Windows.of([list(range(10)) * 3, [1, 2]], 16, STARTS)
    vectors = np.zeros((len(windows.documents), 5), dtype=np.float32)
    vectors[-1] = 1  # the short text's one document
    out = windows.combine(vectors)
    assert out.dtype == np.float32 and not out[0].any() and out[1].tobytes() == vectors[-1].tobytes()
