"""Token ids of texts: the Algorithm's tokenizer, with a cache of words in front of it.

The Hugging Face tokenizer spends ~14-23 µs on a sentence (normalizing, splitting,
building an ``Encoding`` with offsets), as much as the whole annealing and VM of the
bundled default. Most texts reuse a small set of words, and for a BERT-style pipeline
(``BertNormalizer``, ``BertPreTokenizer``, ``WordPiece``) every step acts on each
character, or on runs of characters that no space crosses: the normalizer cleans,
pads CJK characters, strips accents and lowercases character by character; the
pre-tokenizer splits at whitespace and isolates punctuation; WordPiece maps each piece
on its own. So a text's token ids are the concatenation of the ids of its
space-separated words, each tokenized alone, provided the space is the text's only
whitespace and no character in it is one the normalizer deletes as a control
character: exactly what ``str.isprintable`` promises (besides the space it excludes
separators, control, format, surrogate, private-use and unassigned characters) once
tabs and line breaks are made the spaces the normalizer makes of them. Literal
``Replace`` normalizers after the BERT normalizer (``sae.distill.contractions``: "n't"
read as " not") keep this true when no pattern holds whitespace (none matches across a
space), and the cache applies them to each word in the same order.

:class:`TokenIds` keeps each word's ids in a dictionary, keyed by the word as written.
A word seen for the first time is tokenized alone:

* plain ASCII by its pieces, which are simple to find exactly: in printable ASCII the
  normalizer changes nothing but the case, and every character that is neither a
  letter nor a digit is punctuation to the pre-tokenizer, so the pieces are the runs of
  letters and digits and the single other characters (after lowercasing), each mapped
  by the tokenizer's own WordPiece model and kept in the same dictionary (a word that
  equals a piece is that one piece, with the same ids);
* anything else (accents, curly quotes, CJK, ...) by the tokenizer itself.

Every other text (another control character, a no-break space, a zero-width space, an
added token such as ``[SEP]`` in it, or any other tokenizer pipeline) goes to the
tokenizer whole. The ids are the same either way (tests/test_word_cache.py checks random texts
and the STS-B corpus against the tokenizer).

The cache runs on one Python thread, the tokenizer on a thread pool of its own: on a
machine with many cores, a large batch is faster there (below).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Sequence

#: pieces and words kept in the cache; past it, new ones are tokenized each time (same ids)
CACHE_LIMIT = 1 << 18
#: longest piece or word kept in the cache, in characters: with :data:`CACHE_LIMIT` this
#: bounds the cache's memory (a word of n characters has at most n ids), where a count of
#: entries alone let words of a million characters each hold megabytes. Longer words are
#: rare in text (3 of the 148,856 STS-B words are over 32) and still tokenized by their
#: cached pieces.
CACHED_CHARS = 32
#: with this many cores or more, a batch of ``PARALLEL_BATCH`` texts or more goes to the
#: tokenizer's thread pool. It costs ~23 µs of CPU per STS-B sentence against ~2.7 µs for
#: a warm cache on one thread (this 2-core machine; ~4.5 µs when it kept only pieces), so
#: it needs well over 8 cores to be faster; the threshold is not measured on such a
#: machine, and keeps what ran before.
PARALLEL_CORES = 8
PARALLEL_BATCH = 256
#: a text longer than this many characters goes to the tokenizer a part at a time, cut at
#: spaces: the tokenizer's ``Encoding`` of a whole text costs about 450 bytes a token (a
#: 50 MB line took 5.3 GB). The same ids for the BERT pipelines the cache serves, where
#: nothing crosses a space (an added token with whitespace in it turns the cutting off).
LONG_TEXT_CHARS = 1 << 16
#: tab, line feed and carriage return: BERT's normalizer makes each a space (every other
#: control character it deletes, so a text holding one goes to the tokenizer)
_LINE_SPACE = str.maketrans("\t\n\r", "   ")


class TokenIds:
    """Token ids of texts (no special tokens added), the same as ``tokenizer``'s.

    ``tokenizer`` is a ``tokenizers.Tokenizer`` without truncation or padding.
    """

    def __init__(self, tokenizer, cache_limit: int = CACHE_LIMIT, cores: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.cache_limit = cache_limit
        self.cores = cores if cores is not None else (os.cpu_count() or 1)
        self._cache: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._ints = list(range(tokenizer.get_vocab_size(with_added_tokens=True)))
        spec = json.loads(tokenizer.to_str())
        normalizer, self._replacements = _bert_and_replacements(spec.get("normalizer") or {})
        self.cached = (
            normalizer.get("type") == "BertNormalizer"
            and self._replacements is not None
            and (spec.get("pre_tokenizer") or {}).get("type") == "BertPreTokenizer"
            and (spec.get("model") or {}).get("type") == "WordPiece"
        )
        self._lowercase = bool(normalizer.get("lowercase", True))
        alnum = "0-9a-z" if self._lowercase else "0-9A-Za-z"
        self._pieces = re.compile(f"[{alnum}]+|[^ {alnum}]")
        # Added tokens (``[SEP]``, ...) are matched in the raw text before the
        # pipeline; a text that holds one goes to the tokenizer. Matching ignores
        # case, so tokens matched after lowercasing are covered as well.
        added = [t["content"] for t in spec.get("added_tokens") or [] if t.get("content")]
        self._added = re.compile("|".join(map(re.escape, added)), re.IGNORECASE) if added else None
        self._cut_long_texts = self.cached and not any(re.search(r"\s", token) for token in added)

    def __call__(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text."""
        texts = texts if isinstance(texts, list) else list(texts)
        if not self._cache_serves(len(texts)):
            return self._tokenizer_ids(texts)
        out: list[list[int] | None] = []
        others: list[int] = []
        for k, text in enumerate(texts):
            cacheable = self._for_cache(text)
            if cacheable is not None:
                out.append(self._text_ids(cacheable))
            else:
                out.append(None)
                others.append(k)
        if others:
            for k, ids in zip(others, self._tokenizer_ids([texts[k] for k in others])):
                out[k] = ids
        return out  # type: ignore[return-value]

    def covers(self, texts: Sequence[str]) -> bool:
        """Whether a call on ``texts`` answers every one through the cache, never running the
        tokenizer on a whole text (a piece or word the cache has not seen yet is still
        tokenized alone: by the WordPiece model for plain ASCII, by the tokenizer otherwise)."""
        return self._cache_serves(len(texts)) and all(self._for_cache(text) is not None for text in texts)

    def _cache_serves(self, count: int) -> bool:
        return self.cached and not (self.cores >= PARALLEL_CORES and count >= PARALLEL_BATCH)

    def _for_cache(self, text: str) -> str | None:
        """``text`` as the cache takes it (tabs and line breaks as the spaces the normalizer
        makes of them), or None when the tokenizer must take it whole."""
        # Added tokens are matched in the raw text, before the normalizer: a text with one
        # goes to the tokenizer.
        if self._added and self._added.search(text):
            return None
        if not text.isprintable():
            text = text.translate(_LINE_SPACE)
            if not text.isprintable():
                return None
        return text

    def _tokenizer_ids(self, texts: list[str]) -> list[list[int]]:
        encode = self.tokenizer.encode_batch_fast
        if not self._cut_long_texts or all(len(text) <= LONG_TEXT_CHARS for text in texts):
            return [e.ids for e in encode(texts, add_special_tokens=False)]
        out: list[list[int]] = []
        for text in texts:
            ids: list[int] = []
            for start in range(0, len(text), LONG_TEXT_CHARS):
                ids += self.tokenizer.encode(_part_at_spaces(text, start, LONG_TEXT_CHARS),
                                             add_special_tokens=False).ids
            out.append(ids)
        return out

    def _text_ids(self, text: str) -> list[int]:
        """A printable text's ids, a space-separated word at a time."""
        cache = self._cache
        ids: list[int] = []
        for word in text.split(" "):
            word_ids = cache.get(word)
            if word_ids is None:
                if word.isascii():
                    word_ids = self._piece_ids(word)
                else:
                    word_ids = self._shared(self.tokenizer.encode(word, add_special_tokens=False).ids)
                self._keep(word, word_ids)
            ids += word_ids
        return ids

    def _piece_ids(self, word: str) -> list[int]:
        """A plain-ASCII word's ids, a piece at a time."""
        cache = self._cache
        ids: list[int] = []
        normalized = word.lower() if self._lowercase else word
        for pattern, content in self._replacements:
            normalized = normalized.replace(pattern, content)
        for piece in self._pieces.findall(normalized):
            piece_ids = cache.get(piece)
            if piece_ids is None:
                piece_ids = self._wordpiece(piece)
            ids += piece_ids
        return ids

    def _wordpiece(self, piece: str) -> list[int]:
        ids = self._shared([token.id for token in self.tokenizer.model.tokenize(piece)])
        self._keep(piece, ids)
        return ids

    def _shared(self, ids: list[int]) -> list[int]:
        # The tokenizer makes a new int object per id (32 bytes, most of a cached word's
        # memory); the cache keeps one per vocabulary entry.
        ints = self._ints
        return [ints[i] if i < len(ints) else i for i in ids]

    def _keep(self, key: str, ids: list[int]) -> None:
        if len(key) > CACHED_CHARS:
            return
        with self._lock:
            if len(self._cache) < self.cache_limit:
                self._cache[key] = ids


def _bert_and_replacements(normalizer: dict) -> tuple[dict, list[tuple[str, str]] | None]:
    """The BERT normalizer of a pipeline and the literal replacements after it
    (``sae.distill.contractions``), or None for replacements the cache cannot follow.

    A literal pattern without whitespace never matches across a space, so it acts word by
    word; its replacement must be printable ASCII for the plain-ASCII path to find its
    pieces, and lower case after a lowercasing normalizer (the pieces are lower case).
    """
    if normalizer.get("type") != "Sequence":
        return normalizer, []
    first, *rest = normalizer.get("normalizers") or [{}]
    lowercase = bool(first.get("lowercase", True))
    replacements = []
    for step in rest:
        pattern = (step.get("pattern") or {}).get("String") if step.get("type") == "Replace" else None
        content = step.get("content")
        if not pattern or any(ch.isspace() for ch in pattern) or not isinstance(content, str) \
                or not (content.isascii() and content.isprintable()) or (lowercase and content != content.lower()):
            return first, None
        replacements.append((pattern, content))
    return first, replacements


def _part_at_spaces(text: str, start: int, length: int) -> str:
    """The part of ``text`` cut at the first space at or after ``start`` (at its beginning
    for ``start`` 0) and the first at or after ``start + length`` (at its end when there is
    none), without the spaces: the parts of ``start`` 0, ``length``, ``2·length``, ... cover
    the text once, every cut at a space (an empty part where one word spans the range)."""
    begin = 0 if start == 0 else _space_at_or_after(text, start) + 1
    return text[begin : _space_at_or_after(text, start + length)]


def _space_at_or_after(text: str, i: int) -> int:
    found = text.find(" ", i) if i < len(text) else -1
    return len(text) if found < 0 else found


__all__ = ["CACHED_CHARS", "CACHE_LIMIT", "LONG_TEXT_CHARS", "PARALLEL_BATCH", "PARALLEL_CORES", "TokenIds"]
