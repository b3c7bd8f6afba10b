"""sae.word_cache: the cached token ids are the tokenizer's, for any text."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shared_data import SHARED_DATA, needs_shared
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

from sae.algorithm import load_algorithm
from sae.distill.contractions import with_contractions
from sae.evaluate import read_pairs
from sae.word_cache import CACHED_CHARS, PARALLEL_BATCH, PARALLEL_CORES, TokenIds
from tests.conftest import teacher_tokenizer_json


@pytest.fixture(scope="module")
def bert():
    """The teacher's BERT uncased WordPiece."""
    return Tokenizer.from_str(teacher_tokenizer_json())


@pytest.fixture(scope="module")
def contracted():
    """The bundled default's: the same, reading "n't" as "not" (``sae.distill.contractions``)."""
    default = load_algorithm(None).tokenizer
    assert json.loads(default.to_str()) == json.loads(with_contractions(teacher_tokenizer_json()))
    return default


def reference(tokenizer, texts):
    return [e.ids for e in tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)]


# Printable ASCII is the cached path; the rest checks the hand-over to the tokenizer:
# whitespace other than the space, control characters, accents, CJK, fullwidth and
# other non-ASCII punctuation, and pieces of the added tokens.
PIECES = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
    st.sampled_from(["[SEP]", "[sep]", "[CLS", "MASK]", "[UNK]", "[PAD] x", "\t", "\n", "\r\n", "\x00", "\x7f",
                     "\x0b", "café", "Ünïcödé", "北京", "！", "—", "…", "\u00a0", "\u200b", "\ufffd", "ﬁ"]),
    st.sampled_from(["isn't", "CAN'T", "won’t", "Shan't", "n't", "n", "'t", "’", "can", "'", "t"]),
    st.sampled_from(["Hello", "WORLD", "don't", "3.14", "e-mail", "#1", "playing", "xxxxxxxxxx" * 11,
                     "antidisestablishmentarianism", "a" * 101, "  ", " "]),
)
TEXTS = st.lists(PIECES, max_size=8).map("".join)


@given(st.lists(TEXTS, max_size=6))
def test_random_texts_match_the_tokenizer(bert, texts):
    assert TokenIds(bert, cores=2)(texts) == reference(bert, texts)


@given(st.lists(TEXTS, max_size=6))
def test_random_texts_match_the_contracting_tokenizer(contracted, texts):
    ids = TokenIds(contracted, cores=2)
    assert ids.cached and ids(texts) == reference(contracted, texts)


@given(st.lists(st.lists(PIECES, max_size=24).map("".join), max_size=4), st.integers(1, 40))
def test_long_texts_cut_at_spaces_give_the_tokenizers_ids(contracted, texts, long_chars):
    """A text over LONG_TEXT_CHARS goes to the tokenizer in parts cut at spaces (its whole
    Encoding cost ~450 bytes a token); lowered here so that every text is cut, often."""
    import sae.word_cache

    ids = TokenIds(contracted, cores=2)
    saved = sae.word_cache.LONG_TEXT_CHARS
    sae.word_cache.LONG_TEXT_CHARS = long_chars
    try:
        assert ids._tokenizer_ids(texts) == reference(contracted, texts)
        assert ids(texts) == reference(contracted, texts)
    finally:
        sae.word_cache.LONG_TEXT_CHARS = saved


def test_a_long_text_is_tokenized_in_parts(contracted, monkeypatch):
    import sae.word_cache

    calls: list[int] = []
    encode = contracted.encode
    ids = TokenIds(contracted, cores=2)
    monkeypatch.setattr(ids, "tokenizer", type("Spy", (), {
        "encode": lambda self, text, **kw: calls.append(len(text)) or encode(text, **kw),
        "encode_batch_fast": contracted.encode_batch_fast})())
    text = "the cat\u00a0isn't here . " * 20_000  # not printable: the tokenizer's, 500,000 characters
    assert ids([text]) == reference(contracted, [text])
    assert len(calls) >= len(text) // sae.word_cache.LONG_TEXT_CHARS
    assert max(calls) <= sae.word_cache.LONG_TEXT_CHARS + 32


def test_contractions_are_read_as_not(bert, contracted):
    texts = ["The man isn't playing.", "He CAN'T, won't, don’t; shan't", "The man is not playing."]
    ids = TokenIds(contracted, cores=2)(texts)
    assert ids == reference(contracted, texts)
    assert ids[0] == ids[2] != TokenIds(bert, cores=2)(texts[:1])[0]
    assert contracted.decode(ids[1]) == "he can not, will not, do not ; shall not"


@given(st.lists(TEXTS, max_size=6))
def test_covers_says_when_the_tokenizer_is_not_called(bert, texts):
    ids = TokenIds(bert, cores=2)
    calls = []
    tokenizer_ids = ids._tokenizer_ids
    ids._tokenizer_ids = lambda batch: calls.append(batch) or tokenizer_ids(batch)
    assert ids(texts) == reference(bert, texts)
    assert ids.covers(texts) == (not calls)


def test_covers_printable_text_only(bert):
    ids = TokenIds(bert, cores=2)
    assert ids.covers(["The cat sat on the mat.", "", "42 cats!", "Café “Ünïcödé” — 北京", "ﬁne ½ \ufffd",
                       "tab\tand\r\nlines"])
    for other in ("a\x0bb", "a\x85b", "no\u00a0break", "zero\u200bwidth", "x [SEP] y", "\x00", "a\tb\x1fc"):
        assert not ids.covers(["The cat.", other])
    assert not TokenIds(bert, cores=PARALLEL_CORES).covers(["The cat."] * PARALLEL_BATCH)


def test_words_are_cached_whole(bert):
    ids = TokenIds(bert, cores=2)
    texts = ["The café’s crème brûlée, 北京!", "CAFÉ’S  crème", "The cat's mat."]
    assert ids(texts) == reference(bert, texts)
    assert {"The", "café’s", "brûlée,", "北京!", "CAFÉ’S", "crème", "", "cat's", "mat."} <= set(ids._cache)
    assert {"the", "cat", "'", "s", "mat", "."} <= set(ids._cache)  # the pieces of new ASCII words
    assert ids(texts) == reference(bert, texts)


def test_the_cache_is_used_and_bounded(bert):
    ids = TokenIds(bert, cache_limit=3)
    assert ids.cached
    texts = ["The cat sat on the mat.", "THE CAT, the dog; 42 cats!", ""]
    assert ids(texts) == reference(bert, texts)
    assert len(ids._cache) == 3  # full at its limit; later pieces are tokenized each time
    assert ids(texts) == reference(bert, texts)


def test_long_words_are_not_cached(bert):
    # A word of a million characters per request held megabytes per cache entry in a server.
    ids = TokenIds(bert, cores=2)
    long_ascii, long_other = "ab" * 50_000, "é" * (CACHED_CHARS + 1)
    texts = [f"the {long_ascii} cat", long_other, "x" * CACHED_CHARS]
    assert ids(texts) == reference(bert, texts)
    assert max(map(len, ids._cache)) == CACHED_CHARS
    assert {"the", "cat", "x" * CACHED_CHARS} <= set(ids._cache)


def test_cached_ids_share_one_int_per_token(bert):
    # The tokenizer makes a new int per id; kept as they come, they were most of a full cache.
    ids = TokenIds(bert, cores=2)
    texts = [f"word{k} café{k} {'ab' * (k % 9)}" for k in range(300)]
    assert ids(texts) == reference(bert, texts)
    cached = [i for value in ids._cache.values() for i in value]
    assert len({id(i) for i in cached}) == len(set(cached))


def test_large_batches_on_many_cores_go_to_the_tokenizer(bert):
    texts = ["The cat sat on the mat."] * PARALLEL_BATCH
    few, many = TokenIds(bert, cores=2), TokenIds(bert, cores=PARALLEL_CORES)
    assert few(texts) == many(texts) == reference(bert, texts)
    assert few._cache and not many._cache
    assert many(texts[:3]) == reference(bert, texts[:3]) and many._cache


def test_other_pipelines_go_to_the_tokenizer():
    vocab = {"[UNK]": 0, "cat": 1, "Cat": 2, "##s": 3, ",": 4}
    cased = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    cased.normalizer = normalizers.BertNormalizer(lowercase=False)
    cased.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    texts = ["Cats, cat", "CAT cats", "Cat,Cats"]
    ids = TokenIds(cased)
    assert ids.cached and ids(texts) == reference(cased, texts)

    # Replacements the cache cannot follow word by word: a pattern with a space, a regex,
    # a replacement that is not printable ASCII.
    for replace in (normalizers.Replace("s, c", "x"), normalizers.Replace(Regex("s+"), "s"),
                    normalizers.Replace("cat", "c\tat")):
        other = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
        other.normalizer = normalizers.Sequence([normalizers.BertNormalizer(lowercase=False), replace])
        other.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        ids = TokenIds(other)
        assert not ids.cached and ids(texts) == reference(other, texts)

    upper = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    upper.normalizer = normalizers.Sequence([normalizers.BertNormalizer(lowercase=True),
                                             normalizers.Replace("cat", "Cat")])
    upper.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    ids = TokenIds(upper)
    assert not ids.cached and ids(texts) == reference(upper, texts)

    plain = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    plain.pre_tokenizer = pre_tokenizers.Whitespace()
    ids = TokenIds(plain)
    assert not ids.cached and ids(texts) == reference(plain, texts)


@needs_shared
def test_sts_b_sentences_match_the_tokenizer(bert, contracted):
    texts = []
    for name in ("sts-train.csv", "sts-dev.csv"):
        pairs = read_pairs(SHARED_DATA / "stsb" / name)
        texts += pairs.s1 + pairs.s2
    assert len(texts) > 10_000
    assert TokenIds(bert, cores=2)(texts) == reference(bert, texts)
    assert TokenIds(contracted, cores=2)(texts) == reference(contracted, texts)
