"""The one definition of every byte layout, opcode and capacity the engine uses.

The numpy structured dtypes below are the ground truth. The GPU backend never
retypes them: :func:`wgsl_prelude` generates the WGSL structs and constants from
these definitions, and a test checks that the generated text agrees with them.

All fields are 4-byte scalars, so a WGSL ``struct`` with the same member order
has the same offsets and the same array stride (no implicit padding).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import IntEnum

import numpy as np

# -- Opcodes of the Semantic Forth VM -------------------------------------------------


class Op(IntEnum):
    """VM opcodes. Every item carries its own weighted vector ``v`` (see docs/ENGINE.md)."""

    NOP = 0  #: does nothing (a merged-away or silenced item)
    ACC = 1  #: ACCUMULATE: acc += v
    PUSH = 2  #: push v (acts as ACC when the stack is full)
    ADD = 3  #: top += v (acts as ACC when the stack is empty)
    MUL = 4  #: top *= v elementwise (acts as ACC when the stack is empty)
    EMIT = 5  #: pop top; acc += top + v (acts as ACC when the stack is empty)


#: Pattern wildcard for opcode, symbol and mod fields.
ANY = 0xFFFFFFFF
#: Action field value meaning "leave this operand as it is": int32's minimum, outside
#: every value an action may set (arg1 and scale are bounded well inside int32).
KEEP = -(1 << 31)
#: Fixed-point scale of the item weight operand ``arg1``: 65536 means 1.0.
Q16_ONE = 1 << 16
#: |arg1| stays within this, so that f32(arg1) is exact on every backend.
ARG1_LIMIT = 1 << 24
#: |scale_arg1| stays within this (64.0 in Q16), so ``arg1 * scale >> 16`` fits the
#: 32-bit pieces the WGSL path multiplies (docs/ENGINE.md §4).
SCALE_LIMIT = 1 << 22
#: Largest bid score: 15 bits, so a bid key (score above TIE_BITS <= 17 bits) fits 32.
SCORE_MAX = (1 << 15) - 1
#: Largest health tolerance; keeps ``score + tolerance`` inside int32.
TOLERANCE_MAX = 1 << 30
#: Token classes an Algorithm may declare (one bit each of a uint32 mask).
MAX_CLASSES = 32
#: Mark bits of an item (a rule tests and sets bit ``mark`` of the items it changes).
MARK_BITS = 32
#: Embeddings of the two backends agree within this, per component (docs/ENGINE.md §5).
EMBEDDING_TOLERANCE = 1e-5
#: Journal outcomes.
COMMITTED = 1
REVERTED = 2

#: Rule kinds in a compiled rule record.
RULE_REWRITE = 0
RULE_MERGE = 1
RULE_GUARD = 2

#: Flags of a pattern element in a compiled rule record (docs/ENGINE.md §2).
FLAG_NOT_SYMBOL = 1  #: the symbol test is negated
FLAG_AT_START = 2  #: the item is the first of the stream
FLAG_AT_END = 4  #: the item is the last of the stream
FLAG_TARGET = 8  #: the action changes this element: its items must not carry the rule's mark

#: Fields a bid examines or writes (docs/ENGINE.md §3, interference); PLACE is the
#: item's existence at its position, which merges and moving permutations write.
FIELD_SYMBOL = 1
FIELD_OPCODE = 2
FIELD_ARG0 = 4
FIELD_ARG1 = 8
FIELD_MOD = 16
FIELD_PLACE = 32
FIELD_ALL = 63

# -- Capacities -------------------------------------------------------------------------


def bits_for(count: int) -> int:
    """Bits that index ``count`` values (0 .. count-1); at least 1."""
    return max(1, (count - 1).bit_length())


@dataclass(frozen=True)
class Capacities:
    """Fixed per engine; every Algorithm is validated against them at load.

    They bound every loop in every pass, so no Algorithm can make a GPU dispatch
    run unboundedly.
    """

    stream: int = 128  #: items per document (a longer text is embedded in windows, or truncated with a warning)
    rules: int = 256  #: rules per Algorithm
    pattern: int = 4  #: elements per rule pattern
    gap: int = 3  #: items a pattern element may skip
    run: int = 8  #: items a run element may match
    phrase: int = 4  #: tokens per lexicon phrase
    stack: int = 8  #: VM data stack depth (vectors)
    steps: int = 64  #: annealing steps
    journal: int = 256  #: journal entries per document (rewrites attempted)
    dim: int = 1024  #: embedding dimensions
    transforms: int = 16  #: fitted linear transforms the VM applies (item ``mod`` 1..transforms)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Capacities.{f.name} must be an integer, got {value!r}")
        for name in ("stream", "rules", "pattern", "phrase", "stack", "steps", "journal", "dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"Capacities.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("gap", "run", "transforms"):
            if getattr(self, name) < 0:
                raise ValueError(f"Capacities.{name} must be >= 0, got {getattr(self, name)}")
        if self.stream > 2048:
            raise ValueError(f"Capacities.stream must be in 1..2048, got {self.stream}")
        if self.pattern > self.phrase:
            raise ValueError("Capacities.pattern must be in 1..phrase")
        if self.journal > 65536:
            raise ValueError(f"Capacities.journal must be in 1..65536, got {self.journal}")
        # A bid key holds a 15-bit score above the anchor and the rule (BidKeys).
        if bits_for(self.stream) + bits_for(self.rules) > 17:
            raise ValueError(
                f"Capacities: stream {self.stream} and rules {self.rules} need "
                f"{bits_for(self.stream) + bits_for(self.rules)} key bits, at most 17 fit beside a 15-bit score"
            )
        # The potential (sum of every bid score of a document) and the journal's
        # potential_after (P0 - delta, up to twice that) must fit in int32.
        if 2 * self.stream * self.rules * SCORE_MAX >= 2**31:
            raise ValueError("Capacities: 2 * stream * rules * SCORE_MAX must stay below 2**31")

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def keys(self) -> BidKeys:
        """The bid-key packing for these capacities."""
        return BidKeys(bits_for(self.stream), bits_for(self.rules))


@dataclass(frozen=True)
class BidKeys:
    """How a bid key packs score, anchor and rule (docs/ENGINE.md §2).

    ``key = score << tie_bits | (tie_max - (anchor << rule_bits | rule))``: a larger
    key is a higher score, then a lower anchor, then a lower rule index. This is the
    only definition; the WGSL functions come from :meth:`wgsl`.
    """

    pos_bits: int
    rule_bits: int

    @property
    def tie_bits(self) -> int:
        return self.pos_bits + self.rule_bits

    @property
    def tie_max(self) -> int:
        return (1 << self.tie_bits) - 1

    def pack(self, score, anchor, rule):
        """Keys of ``(score, anchor, rule)`` (ints or numpy integer arrays; uint32 out for arrays)."""
        if isinstance(score, np.ndarray) or isinstance(anchor, np.ndarray) or isinstance(rule, np.ndarray):
            score, anchor, rule = (np.asarray(v, dtype=np.int64) for v in (score, anchor, rule))
            return ((score << self.tie_bits) | (self.tie_max - ((anchor << self.rule_bits) | rule))).astype(np.uint32)
        return (int(score) << self.tie_bits) | (self.tie_max - ((int(anchor) << self.rule_bits) | int(rule)))

    def unpack(self, key):
        """``(score, anchor, rule)`` of keys (int64 arrays for arrays)."""
        if isinstance(key, np.ndarray):
            key = key.astype(np.int64)
            low = self.tie_max - (key & self.tie_max)
            return key >> self.tie_bits, low >> self.rule_bits, low & ((1 << self.rule_bits) - 1)
        key = int(key)
        low = self.tie_max - (key & self.tie_max)
        return key >> self.tie_bits, low >> self.rule_bits, low & ((1 << self.rule_bits) - 1)

    def score(self, key):
        """The score of keys (0 for no bid)."""
        if isinstance(key, np.ndarray):
            return key >> np.uint32(self.tie_bits)
        return int(key) >> self.tie_bits

    def wgsl(self) -> str:
        """The WGSL constants and functions of this packing."""
        return (
            f"const KEY_TIE_BITS: u32 = {self.tie_bits}u;\n"
            f"const KEY_RULE_BITS: u32 = {self.rule_bits}u;\n"
            f"const KEY_TIE_MAX: u32 = {self.tie_max}u;\n"
            "fn bid_key(score: u32, p: u32, r: u32) -> u32 {\n"
            "    return (score << KEY_TIE_BITS) | (KEY_TIE_MAX - ((p << KEY_RULE_BITS) | r));\n"
            "}\n"
            "fn key_score(key: u32) -> u32 {\n    return key >> KEY_TIE_BITS;\n}\n"
            "fn key_anchor(key: u32) -> u32 {\n"
            "    return (KEY_TIE_MAX - (key & KEY_TIE_MAX)) >> KEY_RULE_BITS;\n}\n"
            "fn key_rule(key: u32) -> u32 {\n"
            "    return (KEY_TIE_MAX - (key & KEY_TIE_MAX)) & ((1u << KEY_RULE_BITS) - 1u);\n}\n"
        )


DEFAULT_CAPACITIES = Capacities()

# -- Structured dtypes (the bytes the GPU reads) ----------------------------------------

#: A field: (name, numpy scalar type, WGSL scalar type, count, meaning). Count > 1 is
#: a fixed array (stride 4 in a storage buffer, so numpy and WGSL agree).
Field = tuple[str, str, str, int, str]

PROGRAM_ITEM_FIELDS: tuple[Field, ...] = (
    ("symbol", "<u4", "u32", 1, "token id, or vocab_size + phrase index after a merge"),
    ("token", "<u4", "u32", 1, "original token id (first token of a merged span)"),
    ("pos", "<u4", "u32", 1, "original position of the first token"),
    ("span", "<u4", "u32", 1, "number of original tokens this item covers"),
    ("opcode", "<u4", "u32", 1, "VM opcode (Op)"),
    ("arg0", "<u4", "u32", 1, "operand 0: vector row"),
    ("arg1", "<i4", "i32", 1, "operand 1: weight scale, Q16 fixed point"),
    ("mod", "<u4", "u32", 1, "transform the VM applies to the vector (0 = none)"),
    ("marks", "<u4", "u32", 1, "mark bits of the rules that rewrote this item"),
)

JOURNAL_ENTRY_FIELDS: tuple[Field, ...] = (
    ("step", "<u4", "u32", 1, "annealing step"),
    ("rank", "<u4", "u32", 1, "the winner's place among its step's winners, by anchor"),
    ("rule", "<u4", "u32", 1, "rule index"),
    ("pos", "<u4", "u32", 1, "anchor position in the stream"),
    ("score", "<u4", "u32", 1, "bid score"),
    ("potential_before", "<i4", "i32", 1, "P0: sum of the signed scores of all bids at the start of the step"),
    ("potential_after", "<i4", "i32", 1, "P0 - delta of the winner's health check (P0 without guards)"),
    ("outcome", "<u4", "u32", 1, "COMMITTED or REVERTED"),
)

def rule_record_fields(caps: Capacities = DEFAULT_CAPACITIES) -> tuple[Field, ...]:
    """Fields of one compiled rule: the flat table both backends match and apply from."""
    n = caps.pattern
    return (
        ("score", "<u4", "u32", 1, "base bid score"),
        ("kind", "<u4", "u32", 1, "RULE_REWRITE, RULE_MERGE or RULE_GUARD"),
        ("length", "<u4", "u32", 1, "pattern elements in use"),
        ("mark", "<u4", "u32", 1, "the mark bit (0..31) the rule tests and sets on the items it changes"),
        ("gap", "<u4", "u32", n, "items element e may skip"),
        ("run", "<u4", "u32", n, "0: one item; R > 0: 1..R consecutive items"),
        ("opcode", "<u4", "u32", n, "opcode to match, or ANY"),
        ("symbol", "<u4", "u32", n, "symbol to match (or not, with FLAG_NOT_SYMBOL), or ANY"),
        ("any", "<u4", "u32", n, "class bitmask: some bit must be set (0 = no test)"),
        ("all", "<u4", "u32", n, "class bitmask: every bit must be set"),
        ("none", "<u4", "u32", n, "class bitmask: no bit may be set"),
        ("mod", "<u4", "u32", n, "transform index to match, or ANY"),
        ("flags", "<u4", "u32", n, "FLAG_* bits"),
        ("perm", "<u4", "u32", n, "rewrite: new[q[e]] = old[q[perm[e]]]"),
        ("set_opcode", "<i4", "i32", n, "opcode to set, or KEEP"),
        ("set_arg0", "<i4", "i32", n, "arg0 to set, or KEEP"),
        ("set_arg1", "<i4", "i32", n, "arg1 to set, or KEEP"),
        ("scale_arg1", "<i4", "i32", n, "Q16 factor arg1 is multiplied by (after set_arg1), or KEEP"),
        ("set_mod", "<i4", "i32", n, "transform index to set (0 = none), or KEEP"),
    )


def _dtype(fields: tuple[Field, ...]) -> np.dtype:
    offsets, offset = [], 0
    for _, _, _, count, _ in fields:
        offsets.append(offset)
        offset += 4 * count
    return np.dtype(
        {
            "names": [f[0] for f in fields],
            "formats": [f[1] if f[3] == 1 else (f[1], (f[3],)) for f in fields],
            "offsets": offsets,
            "itemsize": offset,
        }
    )


PROGRAM_ITEM = _dtype(PROGRAM_ITEM_FIELDS)
JOURNAL_ENTRY = _dtype(JOURNAL_ENTRY_FIELDS)
ITEM_WORDS = len(PROGRAM_ITEM_FIELDS)
JOURNAL_WORDS = len(JOURNAL_ENTRY_FIELDS)
#: Word index of each ProgramItem field in a ``(..., ITEM_WORDS)`` uint32 view.
F = IntEnum("F", {f[0].upper(): i for i, f in enumerate(PROGRAM_ITEM_FIELDS)})


def rule_record(caps: Capacities = DEFAULT_CAPACITIES) -> np.dtype:
    """The compiled rule dtype for these capacities."""
    return _dtype(rule_record_fields(caps))


def item_words(items: np.ndarray) -> np.ndarray:
    """View a ProgramItem array as uint32 words, shape ``items.shape + (ITEM_WORDS,)``."""
    return items.view(np.uint32).reshape((*items.shape, ITEM_WORDS))


# -- WGSL generation ------------------------------------------------------------------


#: Field names WGSL reserves, and the member names the generated structs use instead.
WGSL_RESERVED = {"mod": "mod_"}


def wgsl_name(field: str) -> str:
    """The WGSL member name of a record field (``mod`` is a reserved word in WGSL)."""
    return WGSL_RESERVED.get(field, field)


def _wgsl_struct(name: str, fields: tuple[Field, ...]) -> str:
    members = []
    for fname, _, wgsl, count, doc in fields:
        wtype = wgsl if count == 1 else f"array<{wgsl}, {count}>"
        members.append(f"    {wgsl_name(fname)}: {wtype},  // {doc}")
    body = "\n".join(members)
    return f"struct {name} {{\n{body}\n}};\n"


def wgsl_prelude(caps: Capacities = DEFAULT_CAPACITIES) -> str:
    """WGSL text declaring the structs, opcodes and capacities defined in this module.

    Every shader is compiled with this text in front of it, so the layout is written
    once, here.
    """
    lines = ["// Generated by sae.layout.wgsl_prelude(): do not edit.", ""]
    lines.append(_wgsl_struct("ProgramItem", PROGRAM_ITEM_FIELDS))
    lines.append(_wgsl_struct("JournalEntry", JOURNAL_ENTRY_FIELDS))
    lines.append(_wgsl_struct("Rule", rule_record_fields(caps)))
    for op in Op:
        lines.append(f"const OP_{op.name}: u32 = {int(op)}u;")
    lines.append(f"const ANY: u32 = {ANY}u;")
    lines.append(f"const KEEP: i32 = {KEEP + 1} - 1;")  # WGSL has no literal for i32's minimum
    lines.append(f"const Q16_ONE: i32 = {Q16_ONE};")
    lines.append(f"const ARG1_LIMIT: i32 = {ARG1_LIMIT};")
    lines.append(f"const SCORE_MAX: u32 = {SCORE_MAX}u;")
    lines.append(f"const COMMITTED: u32 = {COMMITTED}u;")
    lines.append(f"const REVERTED: u32 = {REVERTED}u;")
    lines.append(f"const RULE_REWRITE: u32 = {RULE_REWRITE}u;")
    lines.append(f"const RULE_MERGE: u32 = {RULE_MERGE}u;")
    lines.append(f"const RULE_GUARD: u32 = {RULE_GUARD}u;")
    lines.append(f"const FLAG_NOT_SYMBOL: u32 = {FLAG_NOT_SYMBOL}u;")
    lines.append(f"const FLAG_AT_START: u32 = {FLAG_AT_START}u;")
    lines.append(f"const FLAG_AT_END: u32 = {FLAG_AT_END}u;")
    lines.append(f"const FLAG_TARGET: u32 = {FLAG_TARGET}u;")
    for name in ("SYMBOL", "OPCODE", "ARG0", "ARG1", "MOD", "PLACE", "ALL"):
        lines.append(f"const FIELD_{name}: u32 = {globals()['FIELD_' + name]}u;")
    for key, value in caps.as_dict().items():
        lines.append(f"const CAP_{key.upper()}: u32 = {value}u;")
    lines.append("")
    lines.append(caps.keys.wgsl())
    # Records of the GPU backend (defined at the end of this module).
    lines.append("")
    lines.append(_wgsl_struct("Params", GPU_PARAMS_FIELDS))
    lines.append(_wgsl_struct("AlgRecord", alg_record_fields()))
    lines.append(_wgsl_struct("DocState", doc_state_fields(caps)))
    lines.append(f"const GPU_MODE_WIDEN: u32 = {GPU_MODE_WIDEN}u;")
    lines.append(f"const GPU_MODE_JOURNAL: u32 = {GPU_MODE_JOURNAL}u;")
    return "\n".join(lines) + "\n"


# -- GPU backend records (sae/gpu, shaders/) --------------------------------------------

#: Uniform parameters of every GPU pass: the documents and Algorithms of the work now on
#: the device, and where each table starts in its shared buffer.
GPU_PARAMS_FIELDS: tuple[Field, ...] = (
    ("n_docs", "<u4", "u32", 1, "documents of the batch (workgroup grid x)"),
    ("n_algs", "<u4", "u32", 1, "Algorithms evaluated on them (workgroup grid y; 1 unless a population)"),
    ("vocab_size", "<u4", "u32", 1, "tokens; symbols at and above are lexicon phrases"),
    ("n_phrases", "<u4", "u32", 1, "lexicon phrases"),
    ("dim", "<u4", "u32", 1, "embedding dimensions"),
    ("slot_stride", "<u4", "u32", 1, "items between one job's stream and its next slot"),
    ("mode", "<u4", "u32", 1, "GPU_MODE_* bits: what the anneal pass of this submission does"),
    ("key_first", "<u4", "u32", 1, "first document whose bid keys the keys pass writes"),
    ("off_lexicon", "<u4", "u32", 1, "word offset of the lexicon keys in the table buffer"),
    ("off_bonus", "<u4", "u32", 1, "word offset of phrase_bonus in the table buffer"),
    ("off_classes", "<u4", "u32", 1, "word offset of symbol_classes in the table buffer"),
    ("off_rows", "<u4", "u32", 1, "word offset of symbol_rows in the table buffer"),
    ("off_algs", "<u4", "u32", 1, "word offset of the AlgRecords in the table buffer"),
    ("off_tokens", "<u4", "u32", 1, "word offset of the batch's token ids, document after document"),
    ("off_starts", "<u4", "u32", 1, "word offset of where each document's tokens start (n_docs + 1 words)"),
    ("off_weights", "<u4", "u32", 1, "vec4 offset of the weights in the float buffer"),
    ("off_vectors", "<u4", "u32", 1, "vec4 offset of the vectors, then their transformed copies, rows padded to whole vec4s"),
    ("vector_rows", "<u4", "u32", 1, "vector rows: transform m's copy of row r is row r + m * vector_rows"),
    ("epoch", "<u4", "u32", 1, "the batch: a job whose DocState.epoch differs starts it (widens, resets)"),
    ("step_count", "<u4", "u32", 1, "steps an anneal dispatch runs at most (a document stops when finished)"),
    ("live_base", "<u4", "u32", 1, "word offset of the live job list in the scratch buffer (pass live)"),
    ("off_elements", "<u4", "u32", 1, "word offset of every rule's element records (slot, packed tests, examined and written fields)"),
    ("off_lexstarts", "<u4", "u32", 1, "word offset of the first phrase of each first token"),
    ("reserved0", "<u4", "u32", 1, "zero: a uniform buffer's size is a multiple of 16 bytes"),
)

#: ``Params.mode`` bits.
GPU_MODE_WIDEN = 1  #: the anneal pass first widens the documents from their token ids (§1)
GPU_MODE_JOURNAL = 2  #: the anneal pass writes journal entries (else only the counters)


def alg_record_fields() -> tuple[Field, ...]:
    """One Algorithm's loop parameters on the GPU (a population holds one per Algorithm)."""
    return (
        ("rule_base", "<u4", "u32", 1, "index of the Algorithm's rule 0 in the rule buffer"),
        ("n_rules", "<u4", "u32", 1, "its rules"),
        ("max_steps", "<u4", "u32", 1, "params.max_steps"),
        ("tolerance", "<u4", "u32", 1, "params.tolerance"),
        ("inhibit_steps", "<u4", "u32", 1, "params.inhibit_steps"),
        ("reach", "<u4", "u32", 1, "Algorithm.reach"),
        ("guards", "<u4", "u32", 1, "1 when some rule is a guard: the health check runs"),
        ("rewrites", "<u4", "u32", 1, "1 when some rule is a rewrite or merge: the loop runs"),
        ("off_symbols", "<u4", "u32", 1, "word offset of its per-symbol element test bits"),
        ("symbol_words", "<u4", "u32", 1, "words of those bits per symbol"),
        ("off_masks", "<u4", "u32", 1, "word offset of its per-symbol rule masks (element 0 passes)"),
        ("mask_words", "<u4", "u32", 1, "words of a rule mask"),
        ("off_guards", "<u4", "u32", 1, "word offset of its guard rules' mask"),
    )


def doc_state_fields(caps: Capacities = DEFAULT_CAPACITIES) -> tuple[Field, ...]:
    """What the annealing of one document (of one Algorithm) leaves for the host."""
    return (
        ("length", "<u4", "u32", 1, "items in the stream"),
        ("steps", "<u4", "u32", 1, "steps in which the document was not finished"),
        ("journal_len", "<u4", "u32", 1, "journal entries written"),
        ("committed", "<u4", "u32", 1, "rewrites committed"),
        ("reverted", "<u4", "u32", 1, "rewrites reverted by the health check"),
        ("width", "<u4", "u32", 1, "the widened length (positions any of its streams used)"),
        ("finished", "<u4", "u32", 1, "1 once the document has no rewrite or merge bid"),
        ("next_step", "<u4", "u32", 1, "the step the next anneal dispatch starts from"),
        ("epoch", "<u4", "u32", 1, "Params.epoch of the batch this state belongs to"),
    )


GPU_PARAMS = _dtype(GPU_PARAMS_FIELDS)
ALG_RECORD = _dtype(alg_record_fields())


def doc_state(caps: Capacities = DEFAULT_CAPACITIES) -> np.dtype:
    """The per-document GPU state dtype for these capacities."""
    return _dtype(doc_state_fields(caps))
