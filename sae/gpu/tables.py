"""What the host uploads, packed the way the shaders read it (shaders/common.wgsl).

The float table (weights, and the vectors with their transformed copies, as vec4
rows), an Algorithm's loop parameters (:data:`~sae.layout.ALG_RECORD`), and a batch's
token ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np

from sae.algorithm import Algorithm, element_fields
from sae.layout import (
    ALG_RECORD,
    ANY,
    FLAG_AT_END,
    FLAG_AT_START,
    FLAG_NOT_SYMBOL,
    FLAG_TARGET,
    RULE_GUARD,
    RULE_MERGE,
    Capacities,
)
from sae.vector_table import VectorTable

#: Words of one element record (:func:`element_tests`): slot, packed tests, fields.
ELEMENT_WORDS = 3


def dim4(dim: int) -> int:
    """vec4s per embedding row (rows are padded with zeros to whole vec4s)."""
    return (dim + 3) // 4


def float_table_bytes(alg: Algorithm) -> int:
    """Bytes of :func:`float_table`'s buffer, known before building it."""
    rows = alg.vectors.shape[0]
    return 16 * (-(-rows // 4) + (alg.n_transforms + 1) * rows * dim4(alg.dim))


def float_table(alg: Algorithm) -> tuple[np.ndarray, tuple[int, int]]:
    """The float buffer as ``(n, 4)`` float32 rows, and the vec4 offsets of its parts.

    Weights, four a row; then every ``x`` an item can have (:class:`~sae.vector_table.VectorTable`:
    the vectors, then per transform their transformed copies, the same floats the numpy
    VM gathers), each row padded to whole vec4s. Transform ``m``'s copy of row ``r`` is
    row ``r + m * rows``, so the VM gathers a transformed item like a plain one.
    """
    rows, dim = alg.vectors.shape
    n4, weight_rows = dim4(dim), -(-rows // 4)
    xs = VectorTable.shared(alg.vectors, alg.transforms).complete()
    out = np.zeros((weight_rows + len(xs) * n4, 4), dtype=np.float32)  # written in place: the table is large
    out[:weight_rows].reshape(-1)[:rows] = alg.weights
    out[weight_rows:].reshape(len(xs), 4 * n4)[:, :dim] = xs
    return out, (0, weight_rows)


#: What the Algorithms of a population share (only rules and loop parameters differ).
SHARED_TABLES = ("vectors", "weights", "symbol_rows", "symbol_classes", "phrases", "phrase_bonus", "transforms")


def shared_table_difference(base: Algorithm, other: Algorithm) -> str | None:
    """The first table ``other`` does not share with ``base`` (None when all are equal)."""
    if other is base:
        return None
    if other.tokenizer_json != base.tokenizer_json:
        return "tokenizer"
    for name in SHARED_TABLES:
        a, b = getattr(base, name), getattr(other, name)
        if a is not b and (a.shape != b.shape or not np.array_equal(a, b)):
            return name
    return None


def alg_record(alg: Algorithm, rule_base: int = 0, tests: dict[str, int] | None = None) -> np.ndarray:
    """The :data:`~sae.layout.ALG_RECORD` of one Algorithm whose rules start at ``rule_base``;
    ``tests`` gives where its element tests are (``off_symbols``, ``symbol_words``,
    ``off_masks``, ``mask_words``, ``off_guards``)."""
    rec = np.zeros((), dtype=ALG_RECORD)
    for name, value in (tests or {}).items():
        rec[name] = value
    kinds = [rule.kind for rule in alg.rules]
    rec["rule_base"] = rule_base
    rec["n_rules"] = len(alg.rules)
    rec["max_steps"] = alg.params.max_steps
    rec["tolerance"] = alg.params.tolerance
    rec["inhibit_steps"] = alg.params.inhibit_steps
    rec["reach"] = alg.reach
    rec["guards"] = int("guard" in kinds)
    rec["rewrites"] = int(any(k != "guard" for k in kinds))
    return rec


def element_tests(alg: Algorithm, caps: Capacities) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What the shaders test an item against, precomputed per symbol (as the numpy path does).

    Returns ``(elements, symbols, masks, guards)``:

    * ``elements``: ``(rules, pattern, ELEMENT_WORDS)`` uint32: the element's *slot* (its
      distinct symbol-and-class test), then ``opcode | mod << 8 | flags << 16 | mark << 24``
      (``0xFF`` for an opcode or mod that is not tested), then ``examined | written << 8``:
      the fields (``FIELD_*``) the element examines and writes (docs/ENGINE.md §3,
      interference; :func:`sae.algorithm.element_fields`);
    * ``symbols``: ``(n_symbols, words)`` uint32, bit ``slot`` set when the symbol passes
      that slot's symbol test (``NOT_SYMBOL`` included) and class masks, and for a merge's
      element ``e``, when it is token ``e`` of some phrase of the merge's length;
    * ``masks``: ``(n_symbols, rule words)`` uint32, bit ``r`` set when the symbol passes
      element 0 of rule ``r``'s slot: the rules worth matching at an anchor;
    * ``guards``: ``(rule words,)`` uint32, bit ``r`` set for a guard rule.
    """
    rules = alg.compile_rules(caps)
    classes = alg.symbol_classes.astype(np.uint32)
    symbols = np.arange(alg.n_symbols, dtype=np.int64)
    # A merge's element e can only match token e of some lexicon phrase of its length:
    # folded into its slot, most anchors never try a merge (the numpy path does the same).
    in_phrase: dict[tuple[int, int], np.ndarray] = {}
    for row in alg.phrases:
        k = int((row >= 0).sum())
        for e in range(k):
            in_phrase.setdefault((k, e), np.zeros(alg.n_symbols, dtype=bool))[int(row[e])] = True
    slots: dict[tuple[int, ...], int] = {}
    passing: list[np.ndarray] = []
    elements = np.zeros((len(rules), caps.pattern, ELEMENT_WORDS), dtype=np.uint32)
    for r, rec in enumerate(rules):
        k = int(rec["length"])
        merge = rec["kind"] == RULE_MERGE
        for e in range(k):
            flags = int(rec["flags"][e])
            key = (int(rec["symbol"][e]), flags & FLAG_NOT_SYMBOL, int(rec["any"][e]), int(rec["all"][e]),
                   int(rec["none"][e]), k if merge else 0, e if merge else 0)
            if key not in slots:
                sym, negated, any_cls, all_cls, none_cls, _, _ = key
                ok = np.ones(alg.n_symbols, dtype=bool)
                if sym != ANY:
                    ok &= (symbols == sym) != bool(negated)
                if any_cls:
                    ok &= (classes & np.uint32(any_cls)) != 0
                ok &= (classes & np.uint32(all_cls)) == all_cls
                ok &= (classes & np.uint32(none_cls)) == 0
                if merge:
                    ok &= in_phrase.get((k, e), np.zeros(alg.n_symbols, dtype=bool))
                slots[key] = len(passing)
                passing.append(ok)
            opcode = 0xFF if int(rec["opcode"][e]) == ANY else int(rec["opcode"][e])
            mod = 0xFF if int(rec["mod"][e]) == ANY else int(rec["mod"][e])
            read, write = element_fields(alg.rules[r], e)
            elements[r, e] = (slots[key], opcode | mod << 8 | (flags & (FLAG_AT_START | FLAG_AT_END | FLAG_TARGET)) << 16
                              | int(rec["mark"]) << 24, read | write << 8)
    table = np.zeros((alg.n_symbols, max(1, -(-len(passing) // 32))), dtype=np.uint32)
    for slot, ok in enumerate(passing):
        table[ok, slot // 32] |= np.uint32(1 << (slot % 32))
    rule_words = max(1, -(-len(rules) // 32))
    masks = np.zeros((alg.n_symbols, rule_words), dtype=np.uint32)
    guards = np.zeros(rule_words, dtype=np.uint32)
    for r, rec in enumerate(rules):
        masks[passing[int(elements[r, 0, 0])], r // 32] |= np.uint32(1 << (r % 32))
        if rec["kind"] == RULE_GUARD:
            guards[r // 32] |= np.uint32(1 << (r % 32))
    return elements, table, masks, guards


def lexicon_starts(alg: Algorithm, caps: Capacities) -> np.ndarray:
    """``(vocab + 1,)`` uint32: the first lexicon phrase whose first token is ``t`` or more,
    so the phrases starting with ``t`` are ``starts[t] .. starts[t + 1]`` (the lexicon is
    sorted): a merge searches those, usually none or a handful, not the whole lexicon."""
    first = alg.lexicon_keys(caps)[:, 0] if alg.n_phrases else np.zeros(0, dtype=np.uint32)
    return np.searchsorted(first, np.arange(alg.vocab_size + 1, dtype=np.uint32), side="left").astype(np.uint32)


class TableBuilder:
    """The u32 table buffer's contents, part by part, with the word offset of each."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.size = 0

    def add(self, words: np.ndarray) -> int:
        offset = self.size
        words = np.ascontiguousarray(words, dtype=np.uint32).reshape(-1)
        self.parts.append(words)
        self.size += len(words)
        return offset

    def words(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, dtype=np.uint32)


def add_algorithm_tables(builder: TableBuilder, alg: Algorithm, caps: Capacities) -> tuple[np.ndarray, dict[str, int]]:
    """Add one Algorithm's per-symbol element tests to ``builder``; returns its element
    records (for the global element table) and the AlgRecord fields locating the rest."""
    elements, symbols, masks, guards = element_tests(alg, caps)
    where = {
        "off_symbols": builder.add(symbols),
        "symbol_words": symbols.shape[1],
        "off_masks": builder.add(masks),
        "mask_words": masks.shape[1],
        "off_guards": builder.add(guards),
    }
    return elements, where


def pack_tokens(token_ids: Sequence[Sequence[int]], lengths: np.ndarray) -> np.ndarray:
    """Where each document's tokens start (``n + 1`` words), then the tokens, one document
    after another: the uint32 words the anneal pass widens from (``GPU_MODE_WIDEN``)."""
    n = len(token_ids)
    total = int(lengths.sum()) if n else 0
    words = np.empty(n + 1 + total, dtype=np.uint32)
    words[0] = 0
    np.cumsum(lengths, out=words[1 : n + 1])
    if total:
        words[n + 1 :] = np.fromiter(chain.from_iterable(token_ids), dtype=np.uint32, count=total)
    return words


__all__ = [
    "ELEMENT_WORDS",
    "SHARED_TABLES",
    "TableBuilder",
    "add_algorithm_tables",
    "alg_record",
    "dim4",
    "element_tests",
    "float_table",
    "float_table_bytes",
    "lexicon_starts",
    "pack_tokens",
    "shared_table_difference",
]
