"""The one definition of every byte layout, opcode and capacity the engine uses.

The numpy structured dtypes below are the ground truth. The GPU backend never
retypes them: :func:`wgsl_prelude` generates the WGSL structs and constants from
these definitions, and a test checks that the generated text agrees with them.

All fields are 4-byte scalars, so a WGSL ``struct`` with the same member order
has the same offsets and the same array stride (no implicit padding).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
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


#: Pattern wildcard for opcode and symbol fields.
ANY = 0xFFFFFFFF
#: Action field value meaning "leave this operand as it is".
KEEP = -1
#: Fixed-point scale of the item weight operand ``arg1``: 65536 means 1.0.
Q16_ONE = 1 << 16
#: Largest bid score; scores are 15-bit so a packed bid key fits in 31 bits.
SCORE_MAX = (1 << 15) - 1
#: Largest health tolerance; keeps ``score + tolerance`` inside int32.
TOLERANCE_MAX = 1 << 30
#: Embeddings of the two backends agree within this, per component (docs/ENGINE.md §5).
EMBEDDING_TOLERANCE = 1e-5
#: Journal outcomes.
COMMITTED = 1
REVERTED = 2

# -- Capacities -------------------------------------------------------------------------


@dataclass(frozen=True)
class Capacities:
    """Fixed per engine; every Algorithm is validated against them at load.

    They bound every loop in every pass, so no Algorithm can make a GPU dispatch
    run unboundedly.
    """

    stream: int = 128  #: items per document (longer texts are truncated, with a warning)
    rules: int = 32  #: rules per Algorithm (the width of the ``fired`` bitmask)
    pattern: int = 4  #: elements per rule pattern
    gap: int = 3  #: items a pattern element may skip
    phrase: int = 4  #: tokens per lexicon phrase
    stack: int = 8  #: VM data stack depth (vectors)
    steps: int = 64  #: annealing steps
    journal: int = 256  #: journal entries per document (rewrites attempted)
    dim: int = 1024  #: embedding dimensions

    def __post_init__(self) -> None:
        # Hard limits that come from the packed bid key and the fired bitmask.
        if not 1 <= self.rules <= 32:
            raise ValueError(f"Capacities.rules must be in 1..32, got {self.rules}")
        if not 1 <= self.stream <= 2048:
            raise ValueError(f"Capacities.stream must be in 1..2048, got {self.stream}")
        if not 1 <= self.pattern <= self.phrase:
            raise ValueError("Capacities.pattern must be in 1..phrase")
        if not 1 <= self.journal <= 65536:
            raise ValueError(f"Capacities.journal must be in 1..65536, got {self.journal}")
        # The potential (sum of every bid score of a document) must fit in int32.
        if self.stream * self.rules * SCORE_MAX >= 2**31:
            raise ValueError("Capacities.stream * rules * SCORE_MAX must stay below 2**31")

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


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
    ("fired", "<u4", "u32", 1, "bitmask of rules that rewrote this item"),
)

JOURNAL_ENTRY_FIELDS: tuple[Field, ...] = (
    ("step", "<u4", "u32", 1, "annealing step"),
    ("rank", "<u4", "u32", 1, "the winner's place among its step's winners, by anchor"),
    ("rule", "<u4", "u32", 1, "rule index"),
    ("pos", "<u4", "u32", 1, "anchor position in the stream"),
    ("score", "<u4", "u32", 1, "bid score"),
    ("potential_before", "<i4", "i32", 1, "P0: sum of all bid scores at the start of the step"),
    ("potential_after", "<i4", "i32", 1, "P0 minus the change of the bid scores within reach"),
    ("outcome", "<u4", "u32", 1, "COMMITTED or REVERTED"),
)

#: Rule kinds in a compiled rule record.
RULE_REWRITE = 0
RULE_MERGE = 1


def rule_record_fields(caps: Capacities = DEFAULT_CAPACITIES) -> tuple[Field, ...]:
    """Fields of one compiled rule: the flat table both backends match and apply from."""
    n = caps.pattern
    return (
        ("score", "<u4", "u32", 1, "base bid score"),
        ("kind", "<u4", "u32", 1, "RULE_REWRITE or RULE_MERGE"),
        ("length", "<u4", "u32", 1, "pattern elements in use"),
        ("reserved", "<u4", "u32", 1, "zero"),
        ("gap", "<u4", "u32", n, "items element e may skip"),
        ("opcode", "<u4", "u32", n, "opcode to match, or ANY"),
        ("symbol", "<u4", "u32", n, "symbol to match, or ANY"),
        ("classes", "<u4", "u32", n, "class bitmask to match, 0 = any"),
        ("perm", "<u4", "u32", n, "rewrite: new[q[e]] = old[q[perm[e]]]"),
        ("set_opcode", "<i4", "i32", n, "opcode to set, or KEEP"),
        ("set_arg0", "<i4", "i32", n, "arg0 to set, or KEEP"),
        ("set_arg1", "<i4", "i32", n, "arg1 to set, or KEEP"),
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


def _wgsl_struct(name: str, fields: tuple[Field, ...]) -> str:
    members = []
    for fname, _, wgsl, count, doc in fields:
        wtype = wgsl if count == 1 else f"array<{wgsl}, {count}>"
        members.append(f"    {fname}: {wtype},  // {doc}")
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
    lines.append(f"const KEEP: i32 = {KEEP};")
    lines.append(f"const Q16_ONE: i32 = {Q16_ONE};")
    lines.append(f"const SCORE_MAX: u32 = {SCORE_MAX}u;")
    lines.append(f"const COMMITTED: u32 = {COMMITTED}u;")
    lines.append(f"const RULE_REWRITE: u32 = {RULE_REWRITE}u;")
    lines.append(f"const RULE_MERGE: u32 = {RULE_MERGE}u;")
    lines.append(f"const REVERTED: u32 = {REVERTED}u;")
    for key, value in caps.as_dict().items():
        lines.append(f"const CAP_{key.upper()}: u32 = {value}u;")
    # Records of the GPU backend (defined at the end of this module).
    lines.append("")
    lines.append(_wgsl_struct("Params", GPU_PARAMS_FIELDS))
    lines.append(_wgsl_struct("DocState", doc_state_fields(caps)))
    return "\n".join(lines) + "\n"


# -- GPU backend records (sae/gpu, shaders/) --------------------------------------------

#: Uniform parameters of every GPU pass: sizes of the Algorithm and of the chunk of
#: documents now on the device, and where each table starts in its shared buffer.
GPU_PARAMS_FIELDS: tuple[Field, ...] = (
    ("n_docs", "<u4", "u32", 1, "documents in this chunk"),
    ("n_rules", "<u4", "u32", 1, "rules of the Algorithm (bid key stride per position)"),
    ("vocab_size", "<u4", "u32", 1, "tokens; symbols at and above are lexicon phrases"),
    ("n_phrases", "<u4", "u32", 1, "lexicon phrases"),
    ("dim", "<u4", "u32", 1, "embedding dimensions"),
    ("scratch_base", "<u4", "u32", 1, "word index of document 0's scratch in the keys buffer"),
    ("tolerance", "<u4", "u32", 1, "health tolerance"),
    ("inhibit_steps", "<u4", "u32", 1, "steps a reverted rule stays inhibited"),
    ("backup_base", "<u4", "u32", 1, "item index of document 0's backup in the stream buffer"),
    ("off_lexicon", "<u4", "u32", 1, "word offset of the lexicon keys in the table buffer"),
    ("off_bonus", "<u4", "u32", 1, "word offset of phrase_bonus in the table buffer"),
    ("off_classes", "<u4", "u32", 1, "word offset of symbol_classes in the table buffer"),
    ("off_rows", "<u4", "u32", 1, "word offset of symbol_rows in the table buffer"),
    ("off_vectors", "<u4", "u32", 1, "float offset of the vectors (weights start at 0)"),
    ("reach", "<u4", "u32", 1, "how far past its anchor any rule's match can look"),
    ("reserved", "<u4", "u32", 1, "zero: a uniform buffer's size is a multiple of 16 bytes"),
)


def doc_state_fields(caps: Capacities = DEFAULT_CAPACITIES) -> tuple[Field, ...]:
    """Per-document annealing state the GPU passes hand to each other."""
    return (
        ("length", "<u4", "u32", 1, "items in the stream"),
        ("backup_len", "<u4", "u32", 1, "length saved with the backup"),
        ("live", "<u4", "u32", 1, "0 once the document has no bid (finished)"),
        ("dirty", "<u4", "u32", 1, "1 when the bid keys and potential must be recomputed"),
        ("step", "<u4", "u32", 1, "annealing step now running"),
        ("next_step", "<u4", "u32", 1, "steps begun so far"),
        ("potential", "<i4", "i32", 1, "sum of the bid scores of the current stream"),
        ("p0", "<i4", "i32", 1, "potential at the start of the step"),
        ("journal_len", "<u4", "u32", 1, "journal entries written"),
        ("n_win", "<u4", "u32", 1, "winners attempted this step (scratch records 0..n_win-1)"),
        ("n_apply", "<u4", "u32", 1, "winner records the next apply applies"),
        ("apply", "<u4", "u32", 1, "next apply: 0 none, 1 back up and apply all, 2 restore and apply"),
        ("inhibit", "<u4", "u32", caps.rules, "per-rule inhibition counters"),
    )


GPU_PARAMS = _dtype(GPU_PARAMS_FIELDS)


def doc_state(caps: Capacities = DEFAULT_CAPACITIES) -> np.dtype:
    """The per-document GPU state dtype for these capacities."""
    return _dtype(doc_state_fields(caps))

