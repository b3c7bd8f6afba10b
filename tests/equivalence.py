"""Two backends agree: the one check numpy ≡ reference and WGSL ≡ reference (or numpy) share.

:func:`assert_backends_agree` runs the same documents through two objects that
implement :class:`sae.backend.Backend` and compares what docs/ENGINE.md says must be
equal: step-0 bid keys, final ProgramStreams (bytes), lengths, journals (bytes),
``batch.stats``, and embeddings within ``EMBEDDING_TOLERANCE``. A failure names the
first document and field that differ, with both values.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sae.algorithm import Algorithm
from sae.batch import ProgramBatch
from sae.layout import DEFAULT_CAPACITIES, EMBEDDING_TOLERANCE, JOURNAL_ENTRY, PROGRAM_ITEM, Capacities


def _record(rec: np.void, names: tuple[str, ...]) -> dict[str, int]:
    return {name: int(rec[name]) for name in names}


def _first_difference(a: np.ndarray, b: np.ndarray, names: tuple[str, ...]) -> str:
    """Where two 1-D structured arrays of one document first differ, as readable records."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x.tobytes() != y.tobytes():
            return f"at {i}: {_record(x, names)} != {_record(y, names)}"
    return "nowhere (same records)"


def widened(alg: Algorithm, token_ids: list[list[int]], caps: Capacities) -> ProgramBatch:
    """A batch holding ``token_ids`` (each cut to the stream capacity, as the engine does)."""
    batch = ProgramBatch(max(len(token_ids), 1), caps)
    batch.widen([list(ids)[: caps.stream] for ids in token_ids], alg.symbol_rows)
    return batch


def assert_backends_agree(
    a, b, alg: Algorithm, token_ids: list[list[int]], caps: Capacities = DEFAULT_CAPACITIES,
    max_steps: int | None = None,
) -> tuple[ProgramBatch, ProgramBatch]:
    """Run ``token_ids`` through backends ``a`` and ``b`` (built for ``alg`` and ``caps``) and
    assert they agree on everything docs/ENGINE.md fixes; returns both annealed batches.
    ``max_steps`` is given to both anneals."""
    n = len(token_ids)
    ba, bb = widened(alg, token_ids, caps), widened(alg, token_ids, caps)
    who = f"{a.name} vs {b.name}"

    ka, kb = a.bids(ba), b.bids(bb)
    assert ka.shape == kb.shape == (n, caps.stream, len(alg.rules)), f"{who}: bid shapes {ka.shape} {kb.shape}"
    for d in range(n):
        if not np.array_equal(ka[d], kb[d]):
            p, r = np.argwhere(ka[d] != kb[d])[0]
            raise AssertionError(f"{who}: step-0 bid keys differ in document {d} at anchor {p}, rule {r}: "
                                 f"{ka[d, p, r]} != {kb[d, p, r]}")

    a.anneal(ba, max_steps)
    b.anneal(bb, max_steps)
    for d in range(n):
        la, lb = int(ba.lengths[d]), int(bb.lengths[d])
        assert la == lb, f"{who}: final length of document {d}: {la} != {lb}"
        if ba.items[d].tobytes() != bb.items[d].tobytes():
            where = _first_difference(ba.items[d], bb.items[d], PROGRAM_ITEM.names)
            raise AssertionError(f"{who}: final ProgramStream of document {d} differs {where}")
        ja, jb = int(ba.journal_len[d]), int(bb.journal_len[d])
        if ja != jb or ba.journal[d].tobytes() != bb.journal[d].tobytes():
            where = _first_difference(ba.journal[d, : max(ja, jb)], bb.journal[d, : max(ja, jb)], JOURNAL_ENTRY.names)
            raise AssertionError(f"{who}: journal of document {d} ({ja} vs {jb} entries) differs {where}")
    assert ba.stats == bb.stats, f"{who}: anneal stats {ba.stats} != {bb.stats}"

    # Products on the stack can underflow (harmless) or, with extreme weights, overflow
    # float32: docs/ENGINE.md does not say what then, so both must at least agree on
    # which components are not finite.
    with np.errstate(under="ignore", over="ignore", invalid="ignore"):
        ea, eb = a.execute(ba), b.execute(bb)
    assert ea.shape == eb.shape == (n, alg.dim), f"{who}: embedding shapes {ea.shape} {eb.shape}"
    assert ea.dtype == eb.dtype == np.float32, f"{who}: embedding dtypes {ea.dtype} {eb.dtype}"
    for d in range(n):
        finite = np.isfinite(ea[d])
        assert np.array_equal(finite, np.isfinite(eb[d])), f"{who}: embedding {d} is not finite in one backend only"
        diff = float(np.abs(ea[d][finite] - eb[d][finite]).max(initial=0))
        assert diff <= EMBEDDING_TOLERANCE, f"{who}: embeddings of document {d} differ by {diff}"
    return ba, bb


#: Texts of the tiny vocabulary (tests/tiny.py) every equivalence check runs.
TEXTS = [
    "the new york city is big",
    "not a good dog , the cat is playing !",
    "",
    "players run runs new york",
    "a very small red house of the man and the woman eats food .",
    "not not not happy ! ? sad",
    "new york new york city new",
    "the the the a an of and is was",
    "1 2 , 1 2 . the man runs",
    "big red dog eats small blue cat",
]

#: Rule sets exercising the rule language, each with the texts it acts on (numpy ≡
#: reference in tests/reference, WGSL ≡ numpy ≡ reference in tests/gpu).
RULE_CASES = {
    "run probe": ('rule a score 50 mark 0: [sym="not"] [word !stop]+3 => set 1 scale=0.5\n'
                  'rule b score 60 mark 1: [sym="."] => set 0 op=NOP', ["not good .", "not good big red ."]),
    "revert and inhibit": ('rule silence score 10 mark 0: [sym="cat"] => set 0 op=NOP\n'
                           'rule no_nop score 50: [op=NOP] => guard\n'
                           'rule halve score 5 mark 1: [sym="cat"] => set 0 scale=0.5', ["cat dog", "cat dog cat", "dog"]),
    "alternatives beaten": ('rule m3 score 300: [word] [] [] => merge\nrule a score 300: [sym="new"] => keep\n'
                            'rule b score 300: [sym="york"] => keep\nrule c score 300: [sym="city"] => keep\n'
                            'rule g score 1: [sym="?"] => guard', ["new york city", "new york city new york"]),
    "other winners": ('rule w1 score 10 mark 1: [sym="cat"] => set 0 op=NOP\n'
                      'rule w2 score 10 mark 2: [sym="dog"] => set 0 op=NOP\n'
                      'rule g score 100: [op=NOP] ~2 [op=NOP] => guard', ["cat the dog", "cat dog cat the dog"]),
    "guard broken up": ('rule swap score 5: [sym="cat"] [sym="dog"] => perm 1 0\n'
                        'rule g score 50: [sym="cat"] [sym="dog"] => guard', ["cat dog", "cat dog cat dog"]),
    "merge judged on its item": ('rule m2 score 200: [word] [] => merge\nrule g score 500: [sym="new"] [word] => guard\n'
                                 'rule lone score 30 mark 3: [word] => set 0 scale=0.5', ["new york city", "run ##s new"]),
    "marks and scale": ("rule halve score 20 mark 1: [word] => set 0 scale=0.5\n"
                        "rule again score 10 mark 2: [word] => set 0 scale=-1.5\n"
                        "rule shared score 15 mark 1: [stop] => set 0 arg1=16777216 scale=64", ["cat the dog , big a"]),
    "anchors and classes": ('rule s score 9: [^ &stop &word] => set 0 mod=1\nrule e score 8: [!word $] => set 0 op=NOP\n'
                            'rule n score 7: [!sym="cat" !stop neg] ~3 [word mod=0]+4 => set 1 mod=2 op=PUSH',
                            ["the not big red cat .", "a cat", "not the a of an dog"]),
    "stack": ("rule neg score 150: [neg] ~2 [word] => set 0 op=PUSH; set 1 op=MUL\n"
              "rule emit score 40: [op=MUL] [word] => set 1 op=EMIT", ["not a good dog eats food", "not not happy"]),
    # No item passes "after"'s first test until "push" commits: the numpy path skips a
    # rule that cannot bid anywhere, and must still bid it (gap, run) once it can.
    "bids only after a rewrite": ('rule push score 50 mark 0: [sym="cat"] => set 0 op=PUSH\n'
                                  'rule after score 40 mark 1: [op=PUSH] ~2 [word]+3 => set 1 scale=0.5',
                                  ["cat big red dog", "the cat a dog", "dog big"]),
}


def executed(backend, alg: Algorithm, docs: list[list[int]], caps: Capacities = DEFAULT_CAPACITIES) -> np.ndarray:
    """The embeddings ``backend`` gives ``docs`` (annealed, then executed)."""
    batch = widened(alg, docs, caps)
    backend.anneal(batch)
    return backend.execute(batch)


def extreme_accumulators() -> list[tuple[str, Algorithm, list[list[int]]]]:
    """(name, Algorithm, documents) whose ``acc`` is finite but so small or so large that its
    float32 squares under- or overflow: a PUSH, then every other item MULs its vector into
    it with weight ``arg1`` (found by fuzzing; docs/ENGINE.md §5)."""
    from tiny import ids, make_tiny, parse

    from sae.algorithm import LoopParams

    cases = []
    for name, arg1, text in (("tiny", 1, "cat dog red big house man food"),
                             ("mid", 64, "cat dog red big house man food"),
                             ("huge", 1 << 24, "cat dog red big house man food eats good")):
        rules = parse(f"rule push score 90 mark 0: [^] => set 0 op=PUSH arg1={arg1}\n"
                      f"rule mul score 80 mark 1: [op=ACC] => set 0 op=MUL arg1={arg1}")
        alg = make_tiny(rules=rules, params=LoopParams(max_steps=4, tolerance=0, inhibit_steps=0), dim=8)
        cases.append((name, alg, [ids(text)]))
    return cases


def cancelled_overflow() -> tuple[Algorithm, list[list[int]]]:
    """An Algorithm and documents whose ``acc`` overflows to +inf in one component and
    to -inf in it again ("cat dog": NaN there, so ``‖acc‖₂`` is NaN: the zero vector,
    docs/ENGINE.md §5), or only once ("cat cat": inf, compared by which components are
    not finite)."""
    from tiny import ids, make_tiny, token_id

    alg = make_tiny(rules=())
    vectors, weights = alg.vectors.copy(), alg.weights.copy()
    for word, sign in (("cat", 1), ("dog", -1)):
        vectors[token_id(word), 0] = sign * 3e38
        weights[token_id(word)] = 1.5
    return replace(alg, vectors=vectors, weights=weights), [ids("cat dog"), ids("cat cat"), ids("red big")]


def assert_step_limit_is_the_algorithms(make_backend, alg: Algorithm, token_ids: list[list[int]], max_steps: int,
                                        caps: Capacities = DEFAULT_CAPACITIES) -> None:
    """``anneal(batch, max_steps)`` on a backend ``make_backend(alg, caps)`` gives the bytes
    (streams, lengths, journals, stats) of the same Algorithm with ``params.max_steps``
    lowered to it; then a plain anneal on the same backend runs the Algorithm's own steps."""
    limited = make_backend(alg, caps)
    as_algorithm = replace(alg, params=replace(alg.params, max_steps=min(max_steps, alg.params.max_steps)))
    for check in ("limit", "then the Algorithm's own"):
        got, want = widened(alg, token_ids, caps), widened(alg, token_ids, caps)
        if check == "limit":
            limited.anneal(got, max_steps)
            make_backend(as_algorithm, caps).anneal(want)
        else:
            limited.anneal(got)
            make_backend(alg, caps).anneal(want)
        for field in ("items", "lengths", "journal", "journal_len"):
            assert getattr(got, field).tobytes() == getattr(want, field).tobytes(), f"{check}: {field} differ"
        assert got.stats == want.stats, f"{check}: stats {got.stats} != {want.stats}"
