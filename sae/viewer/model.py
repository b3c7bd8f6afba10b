"""What the viewer shows, built from the public engine API only.

A :class:`Timeline` is one text annealed on one backend: one :class:`Step` per
annealing step with the stream at its start, every bid on that stream and the
journal entries the step wrote, then one last row for the final program. Nothing
here knows how a backend works inside:

* the stream after ``s`` steps is the final stream of the same engine stopped after
  ``s`` steps (``Engine.explain(text, max_steps=s)``; the loop is deterministic, so
  fewer steps give a prefix of the same history);
* the bids of a stream come from ``backend.bids`` on a one-document
  :class:`~sae.batch.ProgramBatch` holding it;
* item and journal fields are read by name from :mod:`sae.layout`, so new fields
  show up in the viewer without a change here.

The rules that interpret the engine (the bid key, the health test, inhibition and
the VM contributions in :mod:`sae.viewer.vm`) are each one small function below,
named for what they restate from docs/ENGINE.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from sae.batch import ProgramBatch
from sae.engine import Engine, Explanation
from sae.layout import COMMITTED, JOURNAL_ENTRY_FIELDS, PROGRAM_ITEM_FIELDS, BidKeys

ITEM_FIELD_NAMES = tuple(f[0] for f in PROGRAM_ITEM_FIELDS)
JOURNAL_FIELD_NAMES = tuple(f[0] for f in JOURNAL_ENTRY_FIELDS)


# -- the engine's rules, restated ------------------------------------------------------------


@dataclass(frozen=True)
class Bids:
    """Every bid on one stream: parallel arrays, sorted by anchor then rule."""

    anchor: np.ndarray  # int64: the item the bid is anchored at
    rule: np.ndarray  # int64: rule index
    score: np.ndarray  # int64: bid score
    key: np.ndarray  # uint32: the packed key; the largest wins
    guard: np.ndarray  # bool: the bid is a guard's (its score counts against the potential)

    @property
    def potential(self) -> int:
        """The sum of every bid's signed score (guards negative): the stream's potential (docs/ENGINE.md §2)."""
        return int(np.where(self.guard, -self.score, self.score).sum())

    def __len__(self) -> int:
        return int(self.anchor.size)

    def at(self, anchor: int) -> np.ndarray:
        """Indices of the bids anchored at ``anchor``, best key first."""
        idx = np.flatnonzero(self.anchor == anchor)
        return idx[np.argsort(-self.key[idx].astype(np.int64), kind="stable")]


def decode_bids(keys: np.ndarray, bid_keys: BidKeys, guards: frozenset[int] = frozenset()) -> Bids:
    """Bids from a ``(stream, rules)`` array of keys, 0 meaning no bid.

    A key packs score, anchor and rule (``sae.layout.BidKeys``, docs/ENGINE.md §2);
    the anchor and rule are the array indices, the score its high bits. ``guards``
    are the indices of the guard rules.
    """
    anchor, rule = np.nonzero(keys)
    key = keys[anchor, rule].astype(np.uint32)
    guard = np.isin(rule, list(guards)) if guards else np.zeros(rule.size, dtype=bool)
    return Bids(anchor.astype(np.int64), rule.astype(np.int64), bid_keys.score(key).astype(np.int64), key, guard)


@dataclass(frozen=True)
class Attempt:
    """One journal entry (a winner attempted) with the health figures that decided it."""

    fields: dict[str, int]  # every JOURNAL_ENTRY field by name
    rule_name: str
    delta: int  # guards created - guards removed - opportunities offered: P0 - potential_after
    score: int
    tolerance: int
    committed: bool  # as the journal records it

    @property
    def threshold(self) -> int:
        return self.score + self.tolerance

    @property
    def predicted(self) -> bool:
        """Whether the health test as the viewer knows it commits (see :func:`health_commits`)."""
        return health_commits(self.delta, self.score, self.tolerance)

    @property
    def anchor(self) -> int:
        return self.fields["pos"]

    @property
    def rule(self) -> int:
        return self.fields["rule"]


def health_commits(delta: int, score: int, tolerance: int) -> bool:
    """The health test (docs/ENGINE.md §3): a rewrite commits iff ``δ ≤ score + tolerance``."""
    return delta <= score + tolerance


def attempt_of(entry: np.void, rule_names: list[str], tolerance: int) -> Attempt:
    """The :class:`Attempt` a journal record describes."""
    fields = {name: int(entry[name]) for name in JOURNAL_FIELD_NAMES}
    rule = fields["rule"]
    return Attempt(
        fields=fields,
        rule_name=rule_names[rule] if rule < len(rule_names) else f"rule{rule}",
        delta=fields["potential_before"] - fields["potential_after"],
        score=fields["score"],
        tolerance=tolerance,
        committed=fields["outcome"] == COMMITTED,
    )


def inhibited_rules(attempts_before: list[Attempt], step: int, inhibit_steps: int) -> frozenset[int]:
    """Rules that may not win at ``step``: reverted at ``r < step`` with ``step - r ≤ inhibit_steps``.

    A revert at step ``r`` sets the rule's counter to ``inhibit_steps``; candidates are
    chosen before each step decrements it (docs/ENGINE.md §3).
    """
    return frozenset(
        a.rule for a in attempts_before if not a.committed and 0 < step - a.fields["step"] <= inhibit_steps
    )


#: What happened to a bid in its step (see :attr:`Step.bid_status`).
BID_PLAIN, BID_COMMITTED, BID_REVERTED, BID_INHIBITED = 0, 1, 2, 3


# -- the timeline ----------------------------------------------------------------------------


@dataclass
class Step:
    """One row of the timeline: the stream at the start of step ``index`` and what happened."""

    index: int
    stream: np.ndarray  # PROGRAM_ITEM records
    labels: list[str]  # readable symbol of each item
    bids: Bids
    attempts: list[Attempt]  # the journal entries of this step, in rank order
    inhibited: frozenset[int]
    changed: np.ndarray  # bool per item: differs from (or moved since) the previous row

    @property
    def length(self) -> int:
        return int(self.stream.size)

    def attempt_at(self, anchor: int) -> Attempt | None:
        return next((a for a in self.attempts if a.anchor == anchor), None)

    @cached_property
    def attempt_anchors(self) -> np.ndarray:
        return np.array([a.anchor for a in self.attempts], dtype=np.int64)

    @cached_property
    def attempt_committed(self) -> np.ndarray:
        return np.array([a.committed for a in self.attempts], dtype=bool)

    @cached_property
    def bid_status(self) -> np.ndarray:
        """Per bid: :data:`BID_PLAIN`, :data:`BID_COMMITTED`, :data:`BID_REVERTED` or :data:`BID_INHIBITED`."""
        status = np.full(len(self.bids), BID_PLAIN, dtype=np.int64)
        status[np.isin(self.bids.rule, sorted(self.inhibited))] = BID_INHIBITED
        for a in self.attempts:
            won = (self.bids.anchor == a.anchor) & (self.bids.rule == a.rule)
            status[won] = BID_COMMITTED if a.committed else BID_REVERTED
        return status

    @cached_property
    def bid_rank(self) -> np.ndarray:
        """Per bid: its place among the bids of its anchor, best key first."""
        order = np.lexsort((-self.bids.key.astype(np.int64), self.bids.anchor))
        rank = np.empty(len(self.bids), dtype=np.int64)
        anchors = self.bids.anchor[order]
        starts = np.r_[0, np.flatnonzero(np.diff(anchors)) + 1] if anchors.size else np.zeros(0, dtype=np.int64)
        first = np.repeat(starts, np.diff(np.r_[starts, anchors.size]))
        rank[order] = np.arange(anchors.size) - first
        return rank

    @cached_property
    def bids_per_anchor(self) -> np.ndarray:
        """Bids anchored at each item."""
        return np.bincount(self.bids.anchor, minlength=self.length)


@dataclass
class Timeline:
    """One text annealed on one backend, step by step.

    ``steps[s]`` is the stream at the start of step ``s``; the last row is the final
    program (it has no attempts). ``steps[-1].stream`` equals ``explanation.final``.
    """

    text: str
    backend: str  # "cpu" or "gpu"
    backend_description: str
    explanation: Explanation
    steps: list[Step]
    tolerance: int
    inhibit_steps: int
    rule_names: list[str]
    truncated: bool = False  # the text had more tokens than the stream holds

    @property
    def n_steps(self) -> int:
        """Annealing steps shown (rows minus the final one)."""
        return len(self.steps) - 1

    @property
    def embedding(self) -> np.ndarray:
        return self.explanation.embedding

    @property
    def final(self) -> np.ndarray:
        return self.explanation.final

    def counts(self) -> tuple[int, int]:
        """Committed and reverted rewrites."""
        done = [a.committed for s in self.steps for a in s.attempts]
        return sum(done), len(done) - sum(done)


def steps_taken(journal: np.ndarray) -> int:
    """Steps up to the last one that attempted a rewrite; later steps change nothing."""
    return int(journal["step"].max()) + 1 if journal.size else 0


def batch_holding(stream: np.ndarray, engine: Engine) -> ProgramBatch:
    """A one-document batch whose stream is ``stream`` (for ``backend.bids``)."""
    batch = ProgramBatch(1, engine.caps)
    batch.items[0, : stream.size] = stream
    batch.lengths[0] = stream.size
    batch.n = 1
    return batch


def changed_items(stream: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """Per item: new, moved or rewritten since ``previous``, matched by original position.

    ``pos`` is the original position of an item's first token; merges keep the first
    item's and permutations carry it along, so it names an item through the history.
    """
    if previous is None:
        return np.zeros(stream.size, dtype=bool)
    pos, prev_pos = stream["pos"].astype(np.int64), previous["pos"].astype(np.int64)
    index_of = np.full(int(max(pos.max(initial=0), prev_pos.max(initial=0))) + 1, -1, dtype=np.int64)
    index_of[prev_pos] = np.arange(prev_pos.size)
    before = index_of[pos]
    present = before >= 0
    same = np.zeros(stream.size, dtype=bool)
    same[present] = (stream[present] == previous[before[present]]) & (before[present] == np.flatnonzero(present))
    return ~same


@contextmanager
def _quiet_truncation() -> Iterator[None]:
    """The engine warns about a too-long text on every run; the viewer warns once itself."""
    logger = logging.getLogger("sae.engine")

    def drop(record: logging.LogRecord) -> bool:
        return "truncated" not in record.getMessage()

    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def build_timeline(engine: Engine, text: str) -> Timeline:
    """Anneal ``text`` with ``engine`` and rebuild the stream at the start of every step.

    Costs one run of the engine per step (each stopped after that step: ``Engine.explain``'s
    ``max_steps``), on the engine's own backend.
    """
    alg = engine.algorithm
    truncated = len(engine.algorithm.tokenizer.encode(text, add_special_tokens=False).ids) > engine.caps.stream
    with _quiet_truncation():
        full = engine.explain(text)
        n_steps = steps_taken(full.journal)
        streams = [full.initial]
        streams += [engine.explain(text, max_steps=s).final for s in range(1, n_steps + 1)]
    if streams[-1].tobytes() != full.final.tobytes():
        raise RuntimeError(
            f"build_timeline: the stream after {n_steps} steps differs from the final one on the "
            f"{engine.backend.name} backend: the annealing loop is not a prefix of itself"
        )
    attempts = [attempt_of(e, full.rule_names, alg.params.tolerance) for e in full.journal]
    guards = frozenset(r for r, rule in enumerate(alg.rules) if rule.kind == "guard")
    steps: list[Step] = []
    for s, stream in enumerate(streams):
        keys = engine.backend.bids(batch_holding(stream, engine))[0, : stream.size]
        steps.append(
            Step(
                index=s,
                stream=stream,
                labels=[engine.symbol_name(int(sym)) for sym in stream["symbol"]],
                bids=decode_bids(keys, engine.caps.keys, guards),
                attempts=[a for a in attempts if a.fields["step"] == s],
                inhibited=inhibited_rules([a for a in attempts if a.fields["step"] < s], s, alg.params.inhibit_steps),
                changed=changed_items(stream, streams[s - 1] if s else None),
            )
        )
    return Timeline(
        text=text,
        backend=engine.backend.name,
        backend_description=engine.backend.description,
        explanation=full,
        steps=steps,
        tolerance=alg.params.tolerance,
        inhibit_steps=alg.params.inhibit_steps,
        rule_names=list(full.rule_names),
        truncated=truncated,
    )


# -- CPU against GPU -------------------------------------------------------------------------


@dataclass
class StepMismatch:
    """Where two timelines' rows differ."""

    items: np.ndarray  # bool per item index up to the longer stream: differs or missing on one side
    bids: np.ndarray  # bool per item index: the bids anchored there differ
    attempts: bool  # the journal entries of the step differ

    @property
    def any(self) -> bool:
        return bool(self.items.any() or self.bids.any() or self.attempts)


@dataclass
class Mismatch:
    """Row-by-row differences of two timelines of the same text (CPU and GPU)."""

    steps: list[StepMismatch] = field(default_factory=list)
    rows: bool = False  # the timelines have different numbers of steps
    embedding_max_abs: float = 0.0

    @property
    def count(self) -> int:
        """Cells (items and bid anchors) that differ, over every step."""
        return int(sum(int(m.items.sum()) + int(m.bids.sum()) + int(m.attempts) for m in self.steps)) + int(self.rows)


def compare_timelines(a: Timeline, b: Timeline) -> Mismatch:
    """Every cell where ``a`` and ``b`` disagree: item bytes, bids by anchor, journal entries."""
    out = Mismatch(rows=len(a.steps) != len(b.steps))
    for sa, sb in zip(a.steps, b.steps):
        n = max(sa.length, sb.length)
        common = min(sa.length, sb.length)
        items = np.ones(n, dtype=bool)
        items[:common] = sa.stream[:common] != sb.stream[:common]
        bids = np.zeros(n, dtype=bool)
        for side, other in ((sa.bids, sb.bids), (sb.bids, sa.bids)):
            mine = set(zip(side.anchor.tolist(), side.key.tolist()))
            theirs = set(zip(other.anchor.tolist(), other.key.tolist()))
            for anchor, _ in mine - theirs:
                bids[anchor] = True
        attempts = [x.fields for x in sa.attempts] != [x.fields for x in sb.attempts]
        out.steps.append(StepMismatch(items=items, bids=bids, attempts=attempts))
    if a.embedding.shape == b.embedding.shape and a.embedding.size:
        out.embedding_max_abs = float(np.abs(a.embedding - b.embedding).max())
    return out
