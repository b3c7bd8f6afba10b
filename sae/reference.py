"""The plain reference engine: docs/ENGINE.md read one document at a time.

This is the oracle the numpy path (``sae/cpu/``) and the WGSL path (``sae/gpu/``) are
tested against. It is written straight from the specification, one function per
thing the specification defines, in the same order as its sections:

- §1 :func:`widen`;
- §2 :func:`element_passes`, :func:`match_at` (element positions, span, extent,
  lexicon phrase), :func:`bid_key`, :func:`bids_of`, :func:`potential`;
- §3 :func:`candidates`, :func:`winners`, :func:`judge`, :func:`anneal_step`,
  :func:`anneal_document`, :func:`replay`;
- §4 :func:`apply_bid` (rewrite and merge), :func:`scale_weight`;
- §5 :func:`run_vm`;

and :class:`ReferenceBackend`, which implements :class:`sae.backend.Backend` over a
:class:`~sae.batch.ProgramBatch` so that any two backends can be compared with the
same helper (``tests/equivalence.py``).

Plain loops over items, rules and elements; every decision in Python integers. It
reads the Algorithm's :class:`~sae.algorithm.Rule` values, not the compiled rule
table, so comparing another backend with it also checks the compiler. numpy holds
arrays and does the VM's float32 arithmetic, nothing else. It is slow on purpose:
use it in tests and when debugging, never to embed a corpus.

Where docs/ENGINE.md leaves a choice, this module takes the simplest reading:

- a document with rewrite or merge bids but no winner (every rule inhibited, or a
  full journal) is live: its inhibition counters wear off and it counts in
  ``batch.stats.steps``, which is the most steps any document of the batch was live;
- a winner dropped for want of journal room is not judged, applied or inhibited;
- ``bits(x)`` of the key packing is at least 1 (``sae.layout.bits_for``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import lru_cache

import numpy as np

from sae.algorithm import Algorithm, ItemUpdate, Rule, element_fields
from sae.backend import step_limit
from sae.batch import AnnealStats, ProgramBatch
from sae.layout import (
    ANY,
    ARG1_LIMIT,
    COMMITTED,
    JOURNAL_ENTRY,
    PROGRAM_ITEM,
    Q16_ONE,
    REVERTED,
    Capacities,
    Op,
)

# -- §1 Tokenize and widen ------------------------------------------------------------------


@dataclass
class Item:
    """One ProgramItem, as Python integers (field order of ``sae.layout.PROGRAM_ITEM``)."""

    symbol: int
    token: int
    pos: int
    span: int
    opcode: int
    arg0: int
    arg1: int
    mod: int
    marks: int


Stream = list[Item]

if tuple(f.name for f in fields(Item)) != PROGRAM_ITEM.names:  # the spec and the layout changed together
    raise ImportError(f"sae.reference.Item {[f.name for f in fields(Item)]} lags PROGRAM_ITEM {PROGRAM_ITEM.names}")


def widen(token_ids: list[int], alg: Algorithm) -> Stream:
    """Every token ``t`` at position ``i`` becomes one ACC item (§1)."""
    return [
        Item(symbol=t, token=t, pos=i, span=1, opcode=int(Op.ACC), arg0=int(alg.symbol_rows[t]),
             arg1=Q16_ONE, mod=0, marks=0)
        for i, t in enumerate(int(t) for t in token_ids)
    ]


# -- §2 Rules and matching -------------------------------------------------------------------


def update_of(rule: Rule, e: int) -> ItemUpdate:
    """The actions of element ``e`` (all KEEP when the rule gives none)."""
    return rule.updates[e] if e < len(rule.updates) else ItemUpdate()


def perm_of(rule: Rule) -> tuple[int, ...]:
    """``perm`` of a rewrite (identity when the rule gives none)."""
    return rule.perm or tuple(range(len(rule.pattern)))


def target_elements(rule: Rule) -> frozenset[int]:
    """Elements that get ``TARGET`` (§2): those the action changes."""
    k = len(rule.pattern)
    if rule.kind == "guard":
        return frozenset()
    if rule.kind == "merge":
        return frozenset(range(k))
    perm = perm_of(rule)
    changed = set()
    for e in range(k):
        up = update_of(rule, e)
        actions = (up.opcode, up.arg0, up.arg1, up.scale, up.mod)
        if perm[e] != e or any(value is not None for value in actions):
            changed.add(e)
    return frozenset(changed) if changed else frozenset({0})


def element_passes(alg: Algorithm, rule: Rule, e: int, stream: Stream, j: int) -> bool:
    """Whether item ``j`` of ``stream`` passes every test of element ``e`` of ``rule`` (§2)."""
    el = rule.pattern[e]
    x, n = stream[j], len(stream)
    cls = int(alg.symbol_classes[x.symbol])
    if el.opcode != ANY and x.opcode != el.opcode:
        return False
    if el.symbol != ANY:
        if el.not_symbol and x.symbol == el.symbol:
            return False
        if not el.not_symbol and x.symbol != el.symbol:
            return False
    any_mask = alg.class_mask(el.classes)
    all_mask = alg.class_mask(el.all_classes)
    none_mask = alg.class_mask(el.none_classes)
    if any_mask != 0 and cls & any_mask == 0:
        return False
    if cls & all_mask != all_mask:
        return False
    if cls & none_mask != 0:
        return False
    if el.mod != ANY and x.mod != el.mod:
        return False
    if el.at_start and j != 0:
        return False
    if el.at_end and j != n - 1:
        return False
    if e in target_elements(rule) and (x.marks >> rule.mark) & 1:
        return False
    return True


@dataclass(frozen=True)
class Match:
    """Where rule ``rule`` matched at ``anchor``: element ``e`` covers ``first[e] ..= last[e]``."""

    rule: int
    anchor: int
    first: tuple[int, ...]  # f[e]
    last: tuple[int, ...]  # q[e]
    end: int  # z: the extent is [anchor, end]
    phrase: int | None  # the lexicon phrase a merge spells (None for other kinds)

    def items_of(self, e: int) -> range:
        """The items of element ``e``: ``f[e] ..= q[e]`` (one item unless it is a run)."""
        return range(self.first[e], self.last[e] + 1)


@lru_cache(maxsize=8)
def lexicon(alg: Algorithm) -> dict[tuple[int, ...], int]:
    """Each lexicon phrase's tokens (padding dropped) and its row in the table."""
    return {tuple(int(t) for t in row if t >= 0): index for index, row in enumerate(alg.phrases)}


def lexicon_phrase(alg: Algorithm, symbols: list[int]) -> int | None:
    """Index of the lexicon phrase spelled exactly by ``symbols``, or None.

    The table is unique, so a lookup by tokens finds what the specification's binary
    search over the padded keys finds.
    """
    return lexicon(alg).get(tuple(symbols))


def match_at(alg: Algorithm, r: int, stream: Stream, p: int) -> Match | None:
    """Place the elements of rule ``r`` left to right from anchor ``p``, greedily (§2)."""
    rule = alg.rules[r]
    n = len(stream)
    first: list[int] = []
    last: list[int] = []
    start = p
    for e, el in enumerate(rule.pattern):
        f = None
        for j in range(start, start + el.gap + 1):
            if j < n and element_passes(alg, rule, e, stream, j):
                f = j
                break
        if f is None:
            return None
        q = f
        if el.run > 0:
            while q + 1 < f + el.run and q + 1 < n and element_passes(alg, rule, e, stream, q + 1):
                q += 1
        first.append(f)
        last.append(q)
        start = q + 1
    # The extent adds the item a final run examined and stopped at.
    end = last[-1]
    final = rule.pattern[-1]
    if final.run > 0 and last[-1] - first[-1] + 1 < final.run and last[-1] + 1 < n:
        end = last[-1] + 1
    phrase = None
    if rule.kind == "merge":
        symbols = [stream[q].symbol for q in last]
        if any(s >= alg.vocab_size for s in symbols):
            return None
        phrase = lexicon_phrase(alg, symbols)
        if phrase is None:
            return None
    return Match(r, p, tuple(first), tuple(last), end, phrase)


def _bits(value: int) -> int:
    """Bits that write ``value`` (at least 1, as ``sae.layout.bits_for``)."""
    return max(1, value.bit_length())


def bid_key(caps: Capacities, score: int, anchor: int, rule: int) -> int:
    """Higher score, then lower anchor, then lower rule index: a larger key (§2)."""
    rule_bits = _bits(caps.rules - 1)
    tie_bits = _bits(caps.stream - 1) + rule_bits
    tie_max = (1 << tie_bits) - 1
    return (score << tie_bits) | (tie_max - ((anchor << rule_bits) | rule))


@dataclass(frozen=True)
class Bid:
    """A match, its kind, its score and its key."""

    match: Match
    kind: str  # "rewrite", "merge" or "guard"
    score: int
    key: int

    @property
    def rule(self) -> int:
        return self.match.rule

    @property
    def anchor(self) -> int:
        return self.match.anchor

    @property
    def end(self) -> int:
        return self.match.end

    @property
    def signed(self) -> int:
        """The score, negated for a guard."""
        return -self.score if self.kind == "guard" else self.score


def make_bid(alg: Algorithm, caps: Capacities, match: Match) -> Bid:
    rule = alg.rules[match.rule]
    score = rule.score
    if rule.kind == "merge":
        score += int(alg.phrase_bonus[match.phrase])
    return Bid(match, rule.kind, score, bid_key(caps, score, match.anchor, match.rule))


def bids_of(alg: Algorithm, caps: Capacities, stream: Stream) -> list[Bid]:
    """Every match of every rule at every anchor, by anchor then rule."""
    out = []
    for p in range(len(stream)):
        for r in range(len(alg.rules)):
            match = match_at(alg, r, stream, p)
            if match is not None:
                out.append(make_bid(alg, caps, match))
    return out


def potential(bids: list[Bid]) -> int:
    """The sum of the signed scores of all bids."""
    return sum(b.signed for b in bids)


def overlaps(lo_a: int, hi_a: int, lo_b: int, hi_b: int) -> bool:
    """Whether the item ranges ``[lo_a, hi_a]`` and ``[lo_b, hi_b]`` share an item."""
    return lo_a <= hi_b and lo_b <= hi_a


# -- §4 Actions --------------------------------------------------------------------------------


def scale_weight(arg1: int, scale: int) -> int:
    """``clamp(trunc(arg1 * scale / 65536), -ARG1_LIMIT, ARG1_LIMIT)``, exactly."""
    product = arg1 * scale
    quotient = abs(product) // Q16_ONE
    if product < 0:
        quotient = -quotient
    return max(-ARG1_LIMIT, min(ARG1_LIMIT, quotient))


def update_item(x: Item, up: ItemUpdate) -> None:
    """Step 2 of a rewrite on one item, in the specified order."""
    if up.opcode is not None:
        x.opcode = up.opcode
    if up.arg0 is not None:
        x.arg0 = up.arg0
    if up.mod is not None:
        x.mod = up.mod
    if up.arg1 is not None:
        x.arg1 = up.arg1
    if up.scale is not None:
        x.arg1 = scale_weight(x.arg1, up.scale)


def apply_bid(alg: Algorithm, stream: Stream, match: Match) -> Stream:
    """The stream with one match's rule applied (§4); ``stream`` is left as it is."""
    rule = alg.rules[match.rule]
    mark = 1 << rule.mark
    k = len(rule.pattern)
    q = match.last
    if rule.kind == "rewrite":
        new = [replace(x) for x in stream]
        perm = perm_of(rule)
        for e in range(k):
            new[q[e]] = replace(stream[q[perm[e]]])
        for e in range(k):
            for j in match.items_of(e):
                update_item(new[j], update_of(rule, e))
        for e in sorted(target_elements(rule)):
            for j in match.items_of(e):
                new[j].marks |= mark
        return new
    if rule.kind == "merge":
        old = [stream[j] for j in q]
        symbol = alg.vocab_size + match.phrase
        marks = 0
        for x in old:
            marks |= x.marks
        merged = Item(symbol=symbol, token=old[0].token, pos=old[0].pos, span=sum(x.span for x in old),
                      opcode=int(Op.ACC), arg0=int(alg.symbol_rows[symbol]), arg1=Q16_ONE, mod=0,
                      marks=marks | mark)
        update_item(merged, update_of(rule, 0))
        return [replace(x) for x in stream[: q[0]]] + [merged] + [replace(x) for x in stream[q[-1] + 1:]]
    raise ValueError(f"rule {match.rule} ({rule.name!r}) is a guard: guards are never applied")


# -- §3 The annealing loop ---------------------------------------------------------------------


def candidates(bids: list[Bid], inhibit: list[int]) -> dict[int, Bid]:
    """Per anchor, the bid with the largest key of a rewrite or merge rule not inhibited."""
    cand: dict[int, Bid] = {}
    for b in bids:
        if b.kind == "guard" or inhibit[b.rule] != 0:
            continue
        if b.anchor not in cand or b.key > cand[b.anchor].key:
            cand[b.anchor] = b
    return cand


def footprint(alg: Algorithm, match: Match, n: int) -> dict[int, tuple[int, int, int | None]]:
    """Per item: the fields the match examines, the fields its action writes, and the mark
    bit it sets there (None if it sets none), for a stream of ``n`` items (§3, interference)."""
    rule = alg.rules[match.rule]
    targets = target_elements(rule)
    out: dict[int, tuple[int, int, int | None]] = {}

    def add(j: int, read: int, write: int, mark: int | None) -> None:
        r, w, m = out.get(j, (0, 0, None))
        out[j] = (r | read, w | write, mark if mark is not None else m)

    start = match.anchor
    for e, el in enumerate(rule.pattern):
        read, write = element_fields(rule, e)
        for j in range(start, match.first[e]):  # the gap's probes
            add(j, read, 0, None)
        for j in match.items_of(e):
            add(j, read, write, rule.mark if e in targets else None)
        last = match.last[e]
        if el.run > 0 and last - match.first[e] + 1 < el.run and last + 1 < n:
            add(last + 1, read, 0, None)  # the probe that ended the run
        start = last + 1
    return out


def interfere(alg: Algorithm, a: Match, b: Match, n: int) -> bool:
    """Whether one match writes a field the other examines or writes, or both set the same mark bit on an item."""
    fa, fb = footprint(alg, a, n), footprint(alg, b, n)
    for j in fa.keys() & fb.keys():
        (ra, wa, ma), (rb, wb, mb) = fa[j], fb[j]
        if wa & (rb | wb) or wb & ra or (ma is not None and ma == mb):
            return True
    return False


def winners(alg: Algorithm, cand: dict[int, Bid], n: int) -> list[Bid]:
    """Candidates no interfering candidate beats, by anchor (their rank)."""
    out = []
    for p in sorted(cand):
        c = cand[p]
        beaten = any(o.key > c.key and interfere(alg, o.match, c.match, n) for o in cand.values() if o is not c)
        if not beaten:
            out.append(c)
    return out


def judge(alg: Algorithm, caps: Capacities, stream: Stream, bids: list[Bid], w: Bid) -> int:
    """δ(w): the harm ``w``'s own rewrite creates minus the harm it removes and what it offers (§3 step 5)."""
    m = len(alg.rules[w.rule].pattern) - 1 if w.kind == "merge" else 0
    after = bids_of(alg, caps, apply_bid(alg, stream, w.match))
    guards_before = sum(b.signed for b in bids if b.kind == "guard" and overlaps(b.anchor, b.end, w.anchor, w.end))
    all_after = sum(b.signed for b in after if overlaps(b.anchor, b.end, w.anchor, w.end - m))
    return guards_before - all_after


@dataclass
class DocumentState:
    """What the loop carries for one document from step to step."""

    stream: Stream
    inhibit: list[int]  # per rule
    journal_len: int  # entries the journal holds (those before this run included)
    entries: list[dict[str, int]]  # entries this run wrote
    finished: bool = False


def anneal_step(alg: Algorithm, caps: Capacities, doc: DocumentState, step: int) -> None:
    """Step ``step`` of §3 for one document not yet finished."""
    params = alg.params
    stream = doc.stream
    # 1. Bids and potential; no rewrite or merge bid: finished.
    bids = bids_of(alg, caps, stream)
    p0 = potential(bids)
    if not any(b.kind != "guard" for b in bids):
        doc.finished = True
        return
    # 2, 3. Candidates and winners; the journal's free room bounds the winners' ranks.
    room = caps.journal - doc.journal_len
    chosen = winners(alg, candidates(bids, doc.inhibit), len(stream))[:room]
    # 4. Inhibition wears off, in every step the document is live, even one in which
    # it has no winner and idles (every candidate's rule inhibited, or a full journal).
    for r in range(len(doc.inhibit)):
        if doc.inhibit[r] > 0:
            doc.inhibit[r] -= 1
    # 5, 6. Judge each winner on its own rewrite; journal it.
    check = any(rule.kind == "guard" for rule in alg.rules)
    committed, reverted = [], []
    for rank, w in enumerate(chosen):
        delta = judge(alg, caps, stream, bids, w) if check else 0
        commit = delta <= w.score + params.tolerance
        (committed if commit else reverted).append(w)
        doc.journal_len += 1
        doc.entries.append({
            "step": step, "rank": rank, "rule": w.rule, "pos": w.anchor, "score": w.score,
            "potential_before": p0, "potential_after": p0 - delta,
            "outcome": COMMITTED if commit else REVERTED,
        })
    # 7. Apply the committed winners (right to left, so no merge moves an anchor still
    # to come); inhibit the rules of the reverted ones.
    for w in reversed(committed):
        stream = apply_bid(alg, stream, w.match)
    for w in reverted:
        doc.inhibit[w.rule] = params.inhibit_steps
    doc.stream = stream


def anneal_document(
    alg: Algorithm, caps: Capacities, stream: Stream, journal_len: int = 0, max_steps: int | None = None
) -> tuple[Stream, list[dict[str, int]], int]:
    """Run the loop on one document (for at most ``max_steps`` steps, when given).

    Returns the final stream, the journal entries written (after ``journal_len``
    entries already there) and the number of steps in which the document was live.
    """
    doc = DocumentState(stream=stream, inhibit=[0] * len(alg.rules), journal_len=journal_len, entries=[])
    live_steps = 0
    for step in range(step_limit(alg.params.max_steps, max_steps)):
        anneal_step(alg, caps, doc, step)
        if doc.finished:
            break
        live_steps += 1
    return doc.stream, doc.entries, live_steps


def replay(alg: Algorithm, caps: Capacities, initial: Stream, journal: list[dict[str, int]]) -> Stream:
    """Rebuild the final stream from the committed journal entries (§3, "Replaying")."""
    stream = initial
    committed = [e for e in journal if e["outcome"] == COMMITTED]
    for step in sorted({e["step"] for e in committed}):
        for entry in sorted((e for e in committed if e["step"] == step), key=lambda e: -e["pos"]):
            match = match_at(alg, entry["rule"], stream, entry["pos"])
            if match is None:
                raise ValueError(f"journal entry {entry} does not match the stream it is replayed on")
            stream = apply_bid(alg, stream, match)
    return stream


# -- §5 The Semantic Forth VM ------------------------------------------------------------------


def weighted_vector(alg: Algorithm, x: Item) -> np.ndarray:
    """``v = w * x`` of one item, in float32."""
    row = x.arg0
    w = np.float32(alg.weights[row]) * (np.float32(x.arg1) / np.float32(Q16_ONE))
    vector = alg.vectors[row].astype(np.float32)
    if x.mod >= 1:
        transform = alg.transforms[x.mod - 1].astype(np.float32)
        vector = transform[:, :-1] @ vector + transform[:, -1]
    return (w * vector).astype(np.float32)


def run_vm(alg: Algorithm, caps: Capacities, stream: Stream) -> np.ndarray:
    """The L2-normalized embedding of one stream (zero when ``‖acc‖₂`` is zero or not a number)."""
    acc = np.zeros(alg.dim, dtype=np.float32)
    stack: list[np.ndarray] = []  # sp = len(stack)
    for x in stream:
        if x.opcode == Op.NOP:
            continue
        if x.opcode not in (Op.ACC, Op.PUSH, Op.ADD, Op.MUL, Op.EMIT):
            raise ValueError(f"item {x} has unknown opcode {x.opcode}")
        v = weighted_vector(alg, x)
        if x.opcode == Op.PUSH and len(stack) < caps.stack:
            stack.append(v)
        elif x.opcode == Op.ADD and stack:
            stack[-1] = stack[-1] + v
        elif x.opcode == Op.MUL and stack:
            stack[-1] = stack[-1] * v
        elif x.opcode == Op.EMIT and stack:
            acc = acc + (stack.pop() + v)
        else:  # ACC, or a stack opcode the stack cannot serve
            acc = acc + v
    for s in stack:
        acc = acc + s
    # Divided by its largest component first, so that the float32 squares neither under- nor
    # overflow (docs/ENGINE.md §5); an acc that overflowed is normalized as its sums give it.
    peak = np.max(np.abs(acc))
    if np.isfinite(peak) and peak > 0:
        acc = acc / peak
    norm = np.sqrt(np.sum(acc * acc, dtype=np.float32))
    if not norm > 0:  # zero, or NaN: an overflow that cancelled (+inf + -inf)
        return np.zeros(alg.dim, dtype=np.float32)
    return (acc / norm).astype(np.float32)


# -- The Backend over a ProgramBatch -----------------------------------------------------------


def read_stream(batch: ProgramBatch, d: int) -> Stream:
    """Document ``d`` of ``batch`` as Items."""
    return [Item(*(int(rec[name]) for name in PROGRAM_ITEM.names)) for rec in batch.items[d, : batch.lengths[d]]]


def write_stream(batch: ProgramBatch, d: int, stream: Stream) -> None:
    """Store ``stream`` as document ``d``; the items after it become all-zero words."""
    batch.items[d] = np.zeros((), dtype=PROGRAM_ITEM)
    for j, x in enumerate(stream):
        batch.items[d, j] = tuple(getattr(x, name) for name in PROGRAM_ITEM.names)
    batch.lengths[d] = len(stream)


class ReferenceBackend:
    """Implements :class:`sae.backend.Backend` with the plain reference, one document at a time."""

    name = "reference"
    description = "plain Python reference (docs/ENGINE.md)"
    profiler = None
    concurrent_batches = True  # nothing is kept between calls
    default_batch = 1024  # any: one document at a time whatever the batch

    def __init__(self, alg: Algorithm, caps: Capacities) -> None:
        if len(alg.rules) > caps.rules:
            raise ValueError(f"ReferenceBackend: {len(alg.rules)} rules exceed the capacity of {caps.rules}")
        self.alg, self.caps = alg, caps

    def prepare(self) -> None:
        """Nothing to do ahead: the reference computes each vector as it needs it."""

    def close(self) -> None:
        """Nothing to release: the reference keeps nothing between calls."""

    def bids(self, batch: ProgramBatch) -> np.ndarray:
        """Bid keys ``(n, stream capacity, rules)`` uint32, 0 = no bid."""
        out = np.zeros((batch.n, self.caps.stream, len(self.alg.rules)), dtype=np.uint32)
        for d in range(batch.n):
            for b in bids_of(self.alg, self.caps, read_stream(batch, d)):
                out[d, b.anchor, b.rule] = b.key
        return out

    def anneal(self, batch: ProgramBatch, max_steps: int | None = None) -> None:
        """Anneal every document (for at most ``max_steps`` steps, when given); journals
        are appended after ``batch.journal_len``."""
        stats = AnnealStats()
        limit = step_limit(self.alg.params.max_steps, max_steps)
        for d in range(batch.n):
            start = int(batch.journal_len[d])
            stream, entries, live_steps = anneal_document(self.alg, self.caps, read_stream(batch, d), start, limit)
            write_stream(batch, d, stream)
            for i, entry in enumerate(entries):
                batch.journal[d, start + i] = tuple(entry[name] for name in JOURNAL_ENTRY.names)
            batch.journal_len[d] = start + len(entries)
            stats.steps = max(stats.steps, live_steps)
            stats.committed += sum(e["outcome"] == COMMITTED for e in entries)
            stats.reverted += sum(e["outcome"] == REVERTED for e in entries)
        batch.stats = stats

    def execute(self, batch: ProgramBatch) -> np.ndarray:
        """One embedding per document, ``(n, dim)`` float32."""
        out = np.zeros((batch.n, self.alg.dim), dtype=np.float32)
        for d in range(batch.n):
            out[d] = run_vm(self.alg, self.caps, read_stream(batch, d))
        return out


def journal_entries(batch: ProgramBatch, d: int) -> list[dict[str, int]]:
    """Document ``d``'s journal as dicts of Python ints (what :func:`replay` reads)."""
    return [{name: int(e[name]) for name in JOURNAL_ENTRY.names} for e in batch.journal[d, : batch.journal_len[d]]]


__all__ = [
    "Bid",
    "Item",
    "Match",
    "ReferenceBackend",
    "anneal_document",
    "apply_bid",
    "bid_key",
    "bids_of",
    "candidates",
    "element_passes",
    "journal_entries",
    "judge",
    "match_at",
    "potential",
    "read_stream",
    "replay",
    "run_vm",
    "scale_weight",
    "widen",
    "winners",
]
