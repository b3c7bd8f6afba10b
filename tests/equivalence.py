"""Two backends agree: the one check numpy ≡ reference and WGSL ≡ reference (or numpy) share.

:func:`assert_backends_agree` runs the same documents through two objects that
implement :class:`sae.backend.Backend` and compares what docs/ENGINE.md says must be
equal: step-0 bid keys, final ProgramStreams (bytes), lengths, journals (bytes),
``batch.stats``, and embeddings within ``EMBEDDING_TOLERANCE``. A failure names the
first document and field that differ, with both values.
"""

from __future__ import annotations

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
    a, b, alg: Algorithm, token_ids: list[list[int]], caps: Capacities = DEFAULT_CAPACITIES
) -> tuple[ProgramBatch, ProgramBatch]:
    """Run ``token_ids`` through backends ``a`` and ``b`` (built for ``alg`` and ``caps``) and
    assert they agree on everything docs/ENGINE.md fixes; returns both annealed batches."""
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

    a.anneal(ba)
    b.anneal(bb)
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
