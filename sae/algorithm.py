"""The Algorithm: the engine's DNA, a versioned directory of plain data files.

Layout of an Algorithm directory (format ``sae-algorithm``, version 2)::

    algorithm.json       name, parameters, token classes, rules (canonical JSON)
    tokenizer.json       a Hugging Face ``tokenizers`` file
    vectors.npy          (rows, dim) float16 or float32 vectors
    weights.npy          (rows,) float32 per-row weights
    symbol_rows.npy      (vocab + phrases,) int32: the vector row of each symbol
    symbol_classes.npy   (vocab + phrases,) uint32: token-class bitmask of each symbol
    phrases.npy          (phrases, width) int32: lexicon token sequences, -1 padded
    phrase_bonus.npy     (phrases,) int32: extra bid score of merging into the phrase
    transforms.npy       (transforms, dim, dim + 1) float16 or float32: [T | t] per
                         transform the VM applies to items with ``mod`` (docs/ENGINE.md §5)

Version 1 directories (no transforms, no rule fields added in version 2) load too.

An Algorithm is data: ``.npy`` files are read with ``allow_pickle=False`` and every
field is validated against the engine's :class:`~sae.layout.Capacities`; the first
problem is reported as ``file: field: reason`` (:class:`~sae.errors.AlgorithmError`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from sae.errors import AlgorithmError, InputError, SaeError, short_repr
from sae.layout import (
    ANY,
    ARG1_LIMIT,
    DEFAULT_CAPACITIES,
    FLAG_AT_END,
    FLAG_AT_START,
    FLAG_NOT_SYMBOL,
    FLAG_TARGET,
    KEEP,
    MARK_BITS,
    MAX_CLASSES,
    Q16_ONE,
    RULE_GUARD,
    RULE_MERGE,
    RULE_REWRITE,
    SCALE_LIMIT,
    SCORE_MAX,
    TOLERANCE_MAX,
    Capacities,
    Op,
    rule_record,
)
from sae.windows import word_starts
from sae.word_cache import TokenIds

FORMAT = "sae-algorithm"
VERSION = 2
#: Versions this sae reads (version 1 lacks transforms and the fields added in 2).
READABLE_VERSIONS = (1, 2)
ALGORITHM_JSON = "algorithm.json"
TOKENIZER_JSON = "tokenizer.json"
ARRAY_FILES = (
    "vectors",
    "weights",
    "symbol_rows",
    "symbol_classes",
    "phrases",
    "phrase_bonus",
    "transforms",
)
#: Rule kinds, as written in algorithm.json, and their compiled codes.
RULE_KINDS = {"rewrite": RULE_REWRITE, "merge": RULE_MERGE, "guard": RULE_GUARD}
#: Files larger than this are refused before they are read (a corrupt or hostile
#: directory must not make the loader allocate without bound).
MAX_JSON_BYTES = 16 << 20
MAX_ARRAY_BYTES = 1 << 31


@dataclass(frozen=True)
class PatternElement:
    """One element of a rule pattern (docs/ENGINE.md §2).

    ``classes`` must share a class with the item (any of them), ``all_classes`` must
    all be the item's, ``none_classes`` none of them. ``run > 0`` matches 1..run
    consecutive items.
    """

    gap: int = 0
    opcode: int = ANY
    symbol: int = ANY
    classes: tuple[str, ...] = ()
    not_symbol: bool = False
    all_classes: tuple[str, ...] = ()
    none_classes: tuple[str, ...] = ()
    mod: int = ANY
    at_start: bool = False
    at_end: bool = False
    run: int = 0


@dataclass(frozen=True)
class ItemUpdate:
    """What a rewrite does to the items of one element; ``None`` keeps the field.

    ``scale`` multiplies ``arg1`` (after ``arg1`` is set, when both are given) by a
    Q16 factor, so rules can change a weight relatively.
    """

    opcode: int | None = None
    arg0: int | None = None
    arg1: int | None = None
    scale: int | None = None
    mod: int | None = None

    @property
    def changes(self) -> bool:
        return any(v is not None for v in (self.opcode, self.arg0, self.arg1, self.scale, self.mod))


@dataclass(frozen=True)
class Rule:
    """A rule: a pattern, an action and a score (docs/ENGINE.md §2, §4).

    ``kind`` is ``rewrite`` (permute and update the matched items), ``merge`` (fold
    the span into a lexicon phrase) or ``guard`` (never applied: a pattern the health
    check counts against the rewrites that create it). ``mark`` is the mark bit the
    rule tests and sets on the items it changes; ``None`` means ``index % 32``.
    """

    name: str
    score: int
    pattern: tuple[PatternElement, ...]
    kind: str = "rewrite"  # "rewrite", "merge" or "guard"
    perm: tuple[int, ...] = ()  # empty means identity
    updates: tuple[ItemUpdate, ...] = ()  # empty means no update
    mark: int | None = None

    def targets(self) -> tuple[int, ...]:
        """Elements the action changes, whose items must not carry the rule's mark."""
        k = len(self.pattern)
        if self.kind == "guard":
            return ()
        if self.kind == "merge":
            return tuple(range(k))
        perm = self.perm or tuple(range(k))
        changed = tuple(
            e for e in range(k) if perm[e] != e or (e < len(self.updates) and self.updates[e].changes)
        )
        return changed or (0,)


@dataclass(frozen=True)
class LoopParams:
    """Parameters of the annealing loop."""

    max_steps: int = 32
    tolerance: int = 0
    inhibit_steps: int = 4


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Algorithm:
    """A loaded, validated Algorithm. Arrays are read-only."""

    name: str
    tokenizer_json: str
    vectors: np.ndarray  # (rows, dim) float32
    weights: np.ndarray  # (rows,) float32
    symbol_rows: np.ndarray  # (n_symbols,) int32
    symbol_classes: np.ndarray  # (n_symbols,) uint32
    phrases: np.ndarray  # (n_phrases, width) int32, -1 padded, sorted
    phrase_bonus: np.ndarray  # (n_phrases,) int32
    classes: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    params: LoopParams = field(default_factory=LoopParams)
    description: str = ""
    transforms: np.ndarray | None = None  # (n_transforms, dim, dim + 1) float32; None: none
    transform_names: tuple[str, ...] = ()  # what each transform models, for explanations (may be empty)

    def __post_init__(self) -> None:
        # An Algorithm built in Python may hold arrays its caller can still write: copied and
        # made read-only, so that what Engine checked is what it runs (and content_hash stays true).
        for name in ARRAY_FILES:
            value = getattr(self, name)
            if isinstance(value, np.ndarray) and value.flags.writeable:
                object.__setattr__(self, name, _frozen(value.copy()))
        # Every rule's mark is resolved here, so equal Algorithms have equal rules.
        if any(rule.mark is None for rule in self.rules):
            resolved = tuple(rule if rule.mark is not None else replace(rule, mark=r % MARK_BITS)
                             for r, rule in enumerate(self.rules))
            object.__setattr__(self, "rules", resolved)
        if self.transforms is None:
            dim = int(self.vectors.shape[1])
            object.__setattr__(self, "transforms", _frozen(np.zeros((0, dim, dim + 1), dtype=np.float32)))

    def __getstate__(self) -> dict[str, Any]:
        # The cached tokenizer and word cache (a lock) are rebuilt where it is unpickled.
        return {k: v for k, v in self.__dict__.items() if k not in ("tokenizer", "token_ids", "word_starts")}

    # -- derived sizes ---------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def n_phrases(self) -> int:
        return int(self.phrases.shape[0])

    @property
    def n_symbols(self) -> int:
        return int(self.symbol_rows.shape[0])

    @property
    def vocab_size(self) -> int:
        return self.n_symbols - self.n_phrases

    @property
    def n_transforms(self) -> int:
        return int(self.transforms.shape[0])

    def transform_name(self, mod: int) -> str:
        """A readable name of transform ``mod`` (1-based; 0 is none)."""
        if mod == 0:
            return ""
        return self.transform_names[mod - 1] if mod <= len(self.transform_names) else f"transform {mod}"

    @cached_property
    def tokenizer(self):  # -> tokenizers.Tokenizer
        """The tokenizer, without truncation or padding (the engine truncates)."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(self.tokenizer_json)
        tok.no_truncation()
        tok.no_padding()
        return tok

    @cached_property
    def token_ids(self) -> TokenIds:
        """Token ids of texts as :attr:`tokenizer` gives them, faster (``sae.word_cache``)."""
        return TokenIds(self.tokenizer)

    @cached_property
    def word_starts(self) -> np.ndarray:
        """``(vocab,)`` bool: the token ids a window of a long text may start at
        (:func:`sae.windows.word_starts`)."""
        return word_starts(self.tokenizer)

    @property
    def reach(self) -> int:
        """How far past its anchor any rule's match can examine (docs/ENGINE.md §2).

        A bid anchored at ``x`` examines only items ``x ..= x + reach``, so a rewrite of
        items ``[first, last]`` changes only the bids anchored in ``[first - reach, last]``.
        """
        return max((rule_reach(rule) for rule in self.rules), default=0)

    def class_mask(self, names: tuple[str, ...]) -> int:
        """Bitmask of the named token classes."""
        mask = 0
        for name in names:
            mask |= 1 << self.classes.index(name)
        return mask

    def without_rules(self) -> Algorithm:
        """The same Algorithm with no rules: the plain weighted average baseline."""
        return replace(self, rules=())

    # -- compiled tables both backends read -----------------------------------------
    def compile_rules(self, caps: Capacities = DEFAULT_CAPACITIES) -> np.ndarray:
        """Rules as an array of :func:`sae.layout.rule_record` (the GPU reads these bytes)."""
        table = np.zeros(len(self.rules), dtype=rule_record(caps))
        for r, rule in enumerate(self.rules):
            k = len(rule.pattern)
            rec = table[r]
            rec["score"] = rule.score
            rec["kind"] = RULE_KINDS[rule.kind]
            rec["length"] = k
            rec["mark"] = rule.mark
            rec["opcode"][:] = ANY
            rec["symbol"][:] = ANY
            rec["mod"][:] = ANY
            rec["perm"][:] = np.arange(caps.pattern)
            for name in ("set_opcode", "set_arg0", "set_arg1", "scale_arg1", "set_mod"):
                rec[name][:] = KEEP
            targets = rule.targets()
            for e, el in enumerate(rule.pattern):
                rec["gap"][e] = el.gap
                rec["run"][e] = el.run
                rec["opcode"][e] = el.opcode
                rec["symbol"][e] = el.symbol
                rec["any"][e] = self.class_mask(el.classes)
                rec["all"][e] = self.class_mask(el.all_classes)
                rec["none"][e] = self.class_mask(el.none_classes)
                rec["mod"][e] = el.mod
                rec["flags"][e] = (
                    (FLAG_NOT_SYMBOL if el.not_symbol else 0)
                    | (FLAG_AT_START if el.at_start else 0)
                    | (FLAG_AT_END if el.at_end else 0)
                    | (FLAG_TARGET if e in targets else 0)
                )
            if rule.perm:
                rec["perm"][:k] = rule.perm
            for e, up in enumerate(rule.updates):
                for name, value in (("set_opcode", up.opcode), ("set_arg0", up.arg0), ("set_arg1", up.arg1),
                                    ("scale_arg1", up.scale), ("set_mod", up.mod)):
                    if value is not None:
                        rec[name][e] = value
        return table

    def lexicon_keys(self, caps: Capacities = DEFAULT_CAPACITIES) -> np.ndarray:
        """Phrases as sorted ``(n, caps.phrase)`` uint32 keys padded with 0xFFFFFFFF."""
        keys = np.full((self.n_phrases, caps.phrase), ANY, dtype=np.uint32)
        width = self.phrases.shape[1]
        keys[:, :width] = self.phrases.astype(np.int64).astype(np.uint32)
        return keys

    # -- identity ---------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The ``algorithm.json`` object (rules, parameters, classes)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "description": self.description,
            "dim": self.dim,
            "classes": list(self.classes),
            **({"transforms": list(self.transform_names)} if self.transform_names else {}),
            "params": {
                "max_steps": self.params.max_steps,
                "tolerance": self.params.tolerance,
                "inhibit_steps": self.params.inhibit_steps,
            },
            "rules": [rule_to_json(rule) for rule in self.rules],
        }

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 over the canonical JSON, the tokenizer and every array's bytes.

        The same on every machine: arrays are hashed as little-endian bytes with
        their dtype and shape, the tokenizer as re-serialized canonical JSON.
        """
        h = hashlib.sha256()
        h.update(canonical_json(self.to_json()).encode())
        h.update(canonical_json(json.loads(self.tokenizer_json)).encode())
        for name in ARRAY_FILES:
            arr = np.ascontiguousarray(getattr(self, name))
            arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
            h.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
            h.update(arr.tobytes())
        return h.hexdigest()


def element_fields(rule: Rule, e: int) -> tuple[int, int]:
    """``(examined, written)`` field masks of element ``e`` (docs/ENGINE.md §3, interference).

    Examined: what the element's tests read of every item its placement examines;
    written: what the action writes on every item of the element.
    """
    from sae.layout import (
        FIELD_ALL,
        FIELD_ARG0,
        FIELD_ARG1,
        FIELD_MOD,
        FIELD_OPCODE,
        FIELD_PLACE,
        FIELD_SYMBOL,
    )

    el = rule.pattern[e]
    read = FIELD_PLACE
    if el.symbol != ANY or el.classes or el.all_classes or el.none_classes or rule.kind == "merge":
        read |= FIELD_SYMBOL
    if el.opcode != ANY:
        read |= FIELD_OPCODE
    if el.mod != ANY:
        read |= FIELD_MOD
    if rule.kind == "guard":
        return read, 0
    perm = rule.perm or tuple(range(len(rule.pattern)))
    if rule.kind == "merge" or perm[e] != e:
        return read, FIELD_ALL
    up = rule.updates[e] if e < len(rule.updates) else ItemUpdate()
    write = (FIELD_OPCODE if up.opcode is not None else 0) | (FIELD_ARG0 if up.arg0 is not None else 0)
    write |= (FIELD_ARG1 if up.arg1 is not None or up.scale is not None else 0) | (FIELD_MOD if up.mod is not None else 0)
    return read, write


def rule_reach(rule: Rule) -> int:
    """How far past its anchor one rule's match can examine (docs/ENGINE.md §2)."""
    els = rule.pattern
    reach = max(els[0].run, 1) - 1 + sum(el.gap + max(el.run, 1) for el in els[1:])
    return reach + (1 if els[-1].run else 0)


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, ASCII: the same text on every machine."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _element_to_json(el: PatternElement) -> dict[str, Any]:
    item: dict[str, Any] = {"gap": el.gap}
    if el.run:
        item["run"] = el.run
    if el.opcode != ANY:
        item["opcode"] = Op(el.opcode).name
    if el.symbol != ANY:
        item["symbol"] = el.symbol
        if el.not_symbol:
            item["not_symbol"] = True
    for key in ("classes", "all_classes", "none_classes"):
        if getattr(el, key):
            item[key] = list(getattr(el, key))
    if el.mod != ANY:
        item["mod"] = el.mod
    if el.at_start:
        item["at_start"] = True
    if el.at_end:
        item["at_end"] = True
    return item


def rule_to_json(rule: Rule) -> dict[str, Any]:
    """A rule as ``algorithm.json`` holds it (the loader reads it back; genomes store it)."""
    action: dict[str, Any] = {"kind": rule.kind}
    if rule.perm:
        action["perm"] = list(rule.perm)
    if rule.updates:
        sets = []
        for up in rule.updates:
            entry: dict[str, Any] = {}
            if up.opcode is not None:
                entry["opcode"] = Op(up.opcode).name
            for key in ("arg0", "arg1", "scale", "mod"):
                if getattr(up, key) is not None:
                    entry[key] = getattr(up, key)
            sets.append(entry)
        action["set"] = sets
    return {"name": rule.name, "score": rule.score, "mark": rule.mark,
            "pattern": [_element_to_json(el) for el in rule.pattern], "action": action}


def check_rules(alg: Algorithm, caps: Capacities = DEFAULT_CAPACITIES) -> None:
    """Raise :class:`AlgorithmError` naming the rule, the field and the reason unless
    ``alg``'s rules and loop parameters are what :func:`load_algorithm` accepts.

    An Algorithm built in Python (``dataclasses.replace(base, rules=parse_rules(...))``)
    skips the loader; :class:`~sae.engine.Engine` and :func:`save_algorithm` call this so
    that such rules are checked as a loaded Algorithm's are (a gap past the capacity was
    run, and saved into a directory the loader then refused).
    """
    loader = _Loader(Path("."), caps, json_file=f"Algorithm {short_repr(alg.name)}")
    loader.loop_params(asdict(alg.params))
    docs = []
    for i, rule in enumerate(alg.rules):
        if not isinstance(rule, Rule):
            raise loader.fail(f"rules[{i}]", f"must be a sae.algorithm.Rule, got {type(rule).__name__}")
        try:
            docs.append(rule_to_json(rule))
        except (TypeError, ValueError) as exc:  # an opcode that is not one
            raise loader.fail(f"rules[{i}]", _one_line(exc)) from None
    limits = _RuleLimits(list(alg.classes), alg.n_symbols, int(alg.vectors.shape[0]), int(alg.phrases.shape[1]),
                         int(alg.phrase_bonus.max()) if alg.phrases.shape[0] else 0, alg.n_transforms)
    loader.rules(docs, limits)  # the loader's own checks, on the rules as algorithm.json holds them


@dataclass(frozen=True)
class _Tables:
    """An Algorithm's arrays, in the dtypes :class:`Algorithm` holds them in."""

    vectors: np.ndarray
    weights: np.ndarray
    transforms: np.ndarray
    phrases: np.ndarray
    phrase_bonus: np.ndarray
    symbol_rows: np.ndarray
    symbol_classes: np.ndarray


#: Each array field of :class:`Algorithm`: the dtype and dimensions the backends read it as.
_TABLE_FIELDS = {"vectors": (np.float32, 2), "weights": (np.float32, 1), "transforms": (np.float32, 3),
                 "phrases": (np.int32, 2), "phrase_bonus": (np.int32, 1), "symbol_rows": (np.int32, 1),
                 "symbol_classes": (np.uint32, 1)}


def check_algorithm(alg: Algorithm, caps: Capacities = DEFAULT_CAPACITIES) -> None:
    """Raise :class:`AlgorithmError` naming the field and the reason unless ``alg`` is
    what :func:`load_algorithm` accepts: its arrays (dtypes, shapes, finite values, rows and
    token ids in range), its tokenizer, classes and sizes, then :func:`check_rules`.

    An Algorithm built in Python skips the loader; :class:`~sae.engine.Engine` calls this,
    so that a table of the wrong shape or with NaN in it is refused with one line instead
    of an ``IndexError`` deep in a backend or, for NaN vectors, zero vectors."""
    label = f"Algorithm {short_repr(alg.name)}"
    loader = _Loader(Path("."), caps, json_file=label)
    if not isinstance(alg.name, str) or not alg.name:
        raise loader.fail("name", "must be a non-empty string")
    for name, (dtype, ndim) in _TABLE_FIELDS.items():
        value = getattr(alg, name)
        if not isinstance(value, np.ndarray):
            raise loader.fail(name, f"must be a numpy array, got {type(value).__name__}")
        if value.dtype != dtype or value.ndim != ndim:
            raise loader.fail(name, f"must be a {ndim}-dimensional {np.dtype(dtype)} array, got {value.ndim} "
                                    f"dimension(s) of {value.dtype}")
    dim = int(alg.vectors.shape[1])
    if not 1 <= dim <= caps.dim:
        raise loader.fail("vectors", f"dim {dim} is out of range 1..{caps.dim}")
    classes = loader.class_names(alg.classes, tuple)
    if not isinstance(alg.transform_names, tuple) or not all(isinstance(n, str) for n in alg.transform_names):
        raise loader.fail("transform_names", "must be a tuple of strings")
    try:
        vocab_size = alg.tokenizer.get_vocab_size(with_added_tokens=True)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # tokenizers raises its own types, a Rust panic included
        raise loader.fail("tokenizer_json", f"not a valid tokenizer ({_one_line(exc)})") from None
    tables = _Tables(*(getattr(alg, f.name) for f in fields(_Tables)))
    loader.tables(tables, dim, vocab_size, classes, alg.transform_names, lambda array: f"{label}: {array}")
    check_rules(alg, caps)


def phrase_table(sequences: list[tuple[int, ...]], width: int) -> np.ndarray:
    """Lexicon phrases as the sorted, -1 padded ``(n, width)`` int32 table the engine reads.

    Order is that of uint32 keys padded with 0xFFFFFFFF (so a phrase sorts after
    its own extensions), which is what both backends binary-search.
    """
    keys = sorted({tuple(int(t) for t in s) for s in sequences}, key=lambda s: s + (ANY,) * (width - len(s)))
    table = np.full((len(keys), width), -1, dtype=np.int32)
    for i, key in enumerate(keys):
        table[i, : len(key)] = key
    return table


# -- saving ---------------------------------------------------------------------------


#: How :func:`save_algorithm` may store vectors and transforms (the loader reads both).
VECTOR_DTYPES = ("float16", "float32")


def save_algorithm(alg: Algorithm, directory: str | Path, *, vector_dtype: str = "float16") -> Path:
    """Write ``alg`` as an Algorithm directory; vectors and transforms are stored as
    ``vector_dtype`` (``float16``, which rounds them, or ``float32``).

    Written whole: into a temporary sibling, then renamed into place, so a failure leaves
    ``directory`` as it was. A directory holding anything but an Algorithm's files is
    refused with :class:`~sae.errors.InputError` (it is replaced whole); missing parents
    are created. A bad argument raises ``TypeError`` / ``ValueError`` before anything is
    replaced: the files are loaded back first, and what :func:`load_algorithm` refuses (a
    value float16 cannot hold, an empty name, a row out of range) is a ``ValueError``.
    """
    if not isinstance(alg, Algorithm):
        raise TypeError(f"save_algorithm: expected an Algorithm, got {type(alg).__name__}")
    if vector_dtype not in VECTOR_DTYPES:
        raise ValueError(f"save_algorithm: vector_dtype must be one of {VECTOR_DTYPES}, got {vector_dtype!r}")
    if str(directory) in ("", "."):  # the current directory, replaced whole
        raise ValueError(f"save_algorithm: name a directory to write, got {str(directory)!r}")
    check_rules(alg)  # what the loader would refuse is not written
    Path(directory).parent.mkdir(parents=True, exist_ok=True)
    out = check_algorithm_output(directory, "save_algorithm")

    def write(tmp: Path) -> None:
        with np.errstate(over="ignore"):  # a value float16 cannot hold is the loader's to name
            _write_files(alg, tmp, vector_dtype)
        try:  # what the loader refuses never replaces a directory (an Algorithm built in Python)
            load_algorithm(tmp)
        except AlgorithmError as exc:
            file = Path(exc.file).name
            raise ValueError(f"save_algorithm: the Algorithm would not load back: {file}: {exc.field}: "
                             f"{exc.reason}") from None

    return _replace_whole(out, write)


def _write_files(alg: Algorithm, out: Path, vector_dtype: str) -> None:
    out.mkdir()
    (out / ALGORITHM_JSON).write_text(
        json.dumps(alg.to_json(), sort_keys=True, indent=1, ensure_ascii=True) + "\n"
    )
    (out / TOKENIZER_JSON).write_text(alg.tokenizer_json)
    arrays = {
        "vectors": alg.vectors.astype(vector_dtype),
        "weights": alg.weights.astype(np.float32),
        "symbol_rows": alg.symbol_rows.astype(np.int32),
        "symbol_classes": alg.symbol_classes.astype(np.uint32),
        "phrases": alg.phrases.astype(np.int32),
        "phrase_bonus": alg.phrase_bonus.astype(np.int32),
        "transforms": alg.transforms.astype(vector_dtype),
    }
    for name, arr in arrays.items():
        np.save(out / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)


def _replace_whole(out: Path, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` into a temporary sibling of ``out``, then rename it into place (an
    Algorithm already there is replaced only then). A failure leaves ``out`` as it was."""
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    _clear_dead_siblings(out)
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        write(tmp)
        if out.exists():
            out.rename(old)
        try:
            tmp.rename(out)
        except OSError:
            if old.exists():
                old.rename(out)
            raise
    except OSError as exc:
        raise SaeError(f"{out}: writing the Algorithm failed: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return out


def _clear_dead_siblings(out: Path) -> None:
    """Remove what a killed writer of ``out`` left beside it (its process is gone): a
    temporary Algorithm (13 MB for the default) that no later run would otherwise touch, and
    an old one set aside, which is put back first when ``out`` itself is missing (killed
    between the two renames)."""
    if os.name == "nt":  # os.kill(pid, 0) would end the process there
        return
    for kind in ("old", "tmp"):
        for sibling in out.parent.glob(f".{glob.escape(out.name)}.{kind}-*"):
            pid = sibling.name.rsplit("-", 1)[1]
            if not pid.isdigit() or _alive(int(pid)):
                continue
            if kind == "old" and not out.exists():
                sibling.rename(out)
            else:
                shutil.rmtree(sibling, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def check_algorithm_output(out: str | Path, flag: str, inputs: tuple[str | Path | None, ...] = ()) -> Path:
    """Fail early, before any work, when ``out`` cannot take an Algorithm directory:
    it is a file, a directory holding anything but an Algorithm's files (it is replaced
    whole, so such a file would be lost), its parent is missing or not writable, or one of
    ``inputs`` (files the command reads or writes, such as a run database) lies inside it.
    ``flag`` names the option in the messages. ``out`` may not be one of ``inputs`` either
    (an Algorithm read as the base would be replaced by the result)."""
    if str(out) == "-":  # stdin's name as an input; as an output it would be a directory named "-"
        raise InputError(f"-: {flag} names the Algorithm directory to write, not standard output")
    path = Path(out)
    if path.name in ("", ".", ".."):  # "", ".", "..", "/": a directory replaced whole cannot be renamed away
        raise InputError(f"{out or repr(out)}: {flag} names the Algorithm directory to write by a path that ends "
                         "in its name, not the current directory, its parent or the root")
    if path.exists() and not path.is_dir():
        raise InputError(f"{out}: exists and is not a directory ({flag} names the Algorithm directory to write)")
    if path.is_dir():
        ours = {ALGORITHM_JSON, TOKENIZER_JSON, *(f"{name}.npy" for name in ARRAY_FILES)}
        foreign = sorted(p.name for p in path.iterdir() if p.name not in ours)
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise InputError(f"{out}: holds {foreign[0]!r}{more}, not only an Algorithm's files; {flag} replaces "
                             "the directory whole, so name a new or an Algorithm directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{parent}: no such directory (for {flag})")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{parent}: directory is not writable (for {flag})")
    where = path.resolve()
    for source in inputs:
        if source is None:
            continue
        read = Path(source).resolve()
        if where == read:
            raise InputError(f"{out}: is also an input of this command; name another {flag}")
        if where in read.parents:
            raise InputError(f"{out}: holds {source}, which this command needs; name another {flag}")
    return path


def save_algorithm_atomically(alg: Algorithm, out: str | Path, flag: str, *, vector_dtype: str = "float16") -> Path:
    """:func:`save_algorithm` for a command's output ``flag``: refuses what
    :func:`check_algorithm_output` refuses (in messages naming ``flag``), and the written
    Algorithm must load back with the same content hash before it replaces ``out``."""
    out = check_algorithm_output(out, flag)

    def write(tmp: Path) -> None:
        _write_files(alg, tmp, vector_dtype)
        if load_algorithm(tmp).content_hash != alg.content_hash:
            raise InputError(f"{out}: the saved Algorithm does not load back identically (content hash differs)")

    return _replace_whole(out, write)


# -- loading and validation -------------------------------------------------------------


def default_algorithm_path() -> Path:
    """The Algorithm bundled with the package."""
    return Path(__file__).parent / "data" / "default"


def load_algorithm(
    path: str | Path | None = None, caps: Capacities = DEFAULT_CAPACITIES
) -> Algorithm:
    """Load and validate an Algorithm directory (or its ``algorithm.json``).

    ``None`` loads the bundled default. Raises :class:`AlgorithmError` naming the
    file, the field and the reason of the first problem found.
    """
    if path is not None and str(path) == "":  # Path("") is the current directory
        raise AlgorithmError("''", "path", "an empty name; name an Algorithm directory")
    root = Path(path) if path is not None else default_algorithm_path()
    if root.is_file() and root.name == ALGORITHM_JSON:
        root = root.parent
    if root.exists() and not root.is_dir():
        raise AlgorithmError(str(root), "path", "is a file, not an Algorithm directory")
    if not root.is_dir():
        raise AlgorithmError(str(root), "path", "no such Algorithm directory")
    json_path = root / ALGORITHM_JSON
    text = _read_text(json_path, "algorithm.json")
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise AlgorithmError(str(json_path), "file", f"not valid JSON ({reason})") from None
    return _Loader(root, caps).build(doc)


def _read_text(path: Path, what: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise AlgorithmError(str(path), "file", f"{size} bytes is more than the {MAX_JSON_BYTES} a {what} may have")
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise AlgorithmError(str(path), "file", "missing") from None
    except IsADirectoryError:
        raise AlgorithmError(str(path), "file", "is a directory") from None
    except UnicodeDecodeError as exc:
        raise AlgorithmError(str(path), "file", f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise AlgorithmError(str(path), "file", f"cannot be read ({exc.strerror or exc})") from None


class _Loader:
    """Validates one Algorithm directory; every check names file and field."""

    def __init__(self, root: Path, caps: Capacities, json_file: str | None = None) -> None:
        self.root, self.caps = root, caps
        self.json_file = json_file or str(root / ALGORITHM_JSON)  # what a message names

    def fail(self, field_name: str, reason: str, file: str | None = None) -> AlgorithmError:
        return AlgorithmError(file or self.json_file, field_name, reason)

    # JSON helpers: each returns the typed value or raises naming the field.
    def obj(self, doc: Any, name: str, keys: set[str], required: set[str]) -> dict[str, Any]:
        if not isinstance(doc, dict):
            raise self.fail(name or "document", "must be an object")
        unknown = sorted(set(doc) - keys)
        if unknown:
            key = unknown[0][:40]
            key = key if key.isprintable() and key else repr(key)  # a message stays one readable line
            raise self.fail(f"{name}.{key}" if name else key, "unknown field")
        missing = sorted(required - set(doc))
        if missing:
            raise self.fail(f"{name}.{missing[0]}" if name else missing[0], "missing")
        return doc

    def int_in(self, value: Any, name: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, f"must be an integer, got {short_repr(value)}")
        if not lo <= value <= hi:
            raise self.fail(name, f"{value} is out of range {lo}..{hi}")
        return value

    def flag(self, value: Any, name: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(name, f"must be true or false, got {short_repr(value)}")
        return value

    def opcode(self, value: Any, name: str) -> int:
        if not isinstance(value, str) or value not in Op.__members__:
            raise self.fail(name, f"unknown opcode {short_repr(value)} (known: {', '.join(Op.__members__)})")
        return int(Op[value])

    def class_names(self, classes: Any, container: type) -> Any:
        """An Algorithm's class names (a ``list`` in algorithm.json, a ``tuple`` on an Algorithm)."""
        if not isinstance(classes, container) or not all(isinstance(c, str) and c for c in classes):
            raise self.fail("classes", f"must be a {container.__name__} of non-empty strings")
        if len(classes) > MAX_CLASSES:
            raise self.fail("classes", f"{len(classes)} classes exceed the limit of {MAX_CLASSES}")
        if len(set(classes)) != len(classes):
            raise self.fail("classes", "names must be unique")
        return classes

    def class_list(self, value: Any, name: str, classes: list[str]) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(name, "must be a list of class names")
        for c in value:
            if not isinstance(c, str) or c not in classes:
                raise self.fail(name, f"unknown class {short_repr(c)}")
        if len(set(value)) != len(value):
            raise self.fail(name, "names a class twice")
        return tuple(value)

    def array(self, name: str, dtypes: tuple[str, ...], ndim: int, required: bool = True) -> np.ndarray | None:
        """A ``.npy`` array, its header checked before any data is read."""
        file = self.root / f"{name}.npy"
        try:
            with open(file, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise ValueError(f"unsupported .npy version {version}")
                shape, _, dtype = read_header(fh, max_header_size=10000)
                data_start = fh.tell()
            size = file.stat().st_size
        except FileNotFoundError:
            if not required:
                return None
            raise self.fail("file", "missing", str(file)) from None
        except Exception as exc:  # numpy's header parser raises what its tokenizer raises
            raise self.fail("file", f"not a readable .npy array ({_one_line(exc)})", str(file)) from None
        if dtype.hasobject or dtype.kind + str(dtype.itemsize) not in dtypes:
            raise self.fail("dtype", f"is {dtype}, expected one of {dtypes}", str(file))
        if len(shape) != ndim:
            raise self.fail("shape", f"{shape} must have {ndim} dimension(s)", str(file))
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if nbytes > MAX_ARRAY_BYTES or size - data_start != nbytes:
            raise self.fail("shape", f"{shape} of {dtype} needs {nbytes} bytes of data, the file holds "
                                     f"{size - data_start}", str(file))
        try:
            arr = np.load(file, allow_pickle=False)
        except Exception as exc:
            raise self.fail("file", f"not a readable .npy array ({_one_line(exc)})", str(file)) from None
        return arr

    def build(self, doc: Any) -> Algorithm:
        caps = self.caps
        top_keys = {"format", "version", "name", "description", "dim", "classes", "transforms", "params", "rules"}
        self.obj(doc, "", top_keys, top_keys - {"description", "transforms"})
        if doc["format"] != FORMAT:
            raise self.fail("format", f"must be {FORMAT!r}, got {short_repr(doc['format'])}")
        if doc["version"] not in READABLE_VERSIONS or isinstance(doc["version"], bool):
            raise self.fail("version", f"unsupported version {short_repr(doc['version'])} (this sae reads "
                                       f"{', '.join(map(str, READABLE_VERSIONS))})")
        if not isinstance(doc["name"], str) or not doc["name"]:
            raise self.fail("name", "must be a non-empty string")
        description = doc.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", "must be a string")
        dim = self.int_in(doc["dim"], "dim", 1, caps.dim)

        classes = self.class_names(doc["classes"], list)

        loop = self.loop_params(doc["params"])

        # Arrays, then the cross-checks between them.
        tok_file = self.root / TOKENIZER_JSON
        tokenizer_json = _read_text(tok_file, "tokenizer.json")
        try:
            from tokenizers import Tokenizer

            vocab_size = Tokenizer.from_str(tokenizer_json).get_vocab_size(with_added_tokens=True)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # tokenizers raises its own types, a Rust panic included
            raise self.fail("file", f"not a valid tokenizer ({_one_line(exc)})", str(tok_file)) from None
        if vocab_size < 1:
            raise self.fail("file", "the tokenizer has an empty vocabulary", str(tok_file))

        vectors = self.array("vectors", ("f2", "f4"), 2).astype(np.float32)
        weights = self.array("weights", ("f4",), 1)
        transforms = self.array("transforms", ("f2", "f4"), 3, required=doc["version"] >= 2)
        if transforms is None:
            transforms = np.zeros((0, dim, dim + 1), dtype=np.float32)
        transform_names = doc.get("transforms", [])
        if not isinstance(transform_names, list) or not all(isinstance(n, str) for n in transform_names):
            raise self.fail("transforms", "must be a list of names")
        tables = _Tables(vectors, weights, transforms.astype(np.float32), self.array("phrases", ("i4",), 2),
                         self.array("phrase_bonus", ("i4",), 1), self.array("symbol_rows", ("i4",), 1),
                         self.array("symbol_classes", ("u4",), 1))
        self.tables(tables, dim, vocab_size, classes, transform_names, lambda array: str(self.root / f"{array}.npy"))
        rows, (n_phrases, width) = vectors.shape[0], tables.phrases.shape
        bonus = tables.phrase_bonus
        limits = _RuleLimits(classes, vocab_size + n_phrases, rows, width, int(bonus.max()) if n_phrases else 0,
                             tables.transforms.shape[0])
        rules = self.rules(doc["rules"], limits)

        return Algorithm(
            name=doc["name"],
            description=description,
            tokenizer_json=tokenizer_json,
            vectors=_frozen(vectors),
            weights=_frozen(weights.astype(np.float32)),
            symbol_rows=_frozen(tables.symbol_rows.astype(np.int32)),
            symbol_classes=_frozen(tables.symbol_classes.astype(np.uint32)),
            phrases=_frozen(tables.phrases.astype(np.int32)),
            phrase_bonus=_frozen(bonus.astype(np.int32)),
            classes=tuple(classes),
            rules=rules,
            params=loop,
            transforms=_frozen(tables.transforms),
            transform_names=tuple(transform_names),
        )

    def tables(self, t: _Tables, dim: int, vocab_size: int, classes: list[str] | tuple[str, ...],
               transform_names: list[str] | tuple[str, ...], where: Callable[[str], str]) -> None:
        """The checks within and between an Algorithm's arrays, each failure naming
        ``where(array)``: the loader's ``.npy`` file, or a field of an Algorithm built in Python."""
        caps, vectors = self.caps, t.vectors
        if vectors.shape[1] != dim:
            raise self.fail("shape", f"{vectors.shape} has dim {vectors.shape[1]}, algorithm.json says {dim}",
                            where("vectors"))
        if vectors.shape[0] < 1:
            raise self.fail("shape", "needs at least one row", where("vectors"))
        if not np.isfinite(vectors).all():
            raise self.fail("values", "contain NaN or infinity", where("vectors"))
        rows = vectors.shape[0]
        if t.weights.shape[0] != rows:
            raise self.fail("shape", f"{t.weights.shape} must be ({rows},), one weight per vector row",
                            where("weights"))
        if not np.isfinite(t.weights).all():
            raise self.fail("values", "contain NaN or infinity", where("weights"))

        transforms = t.transforms
        if transforms.shape[1:] != (dim, dim + 1):
            raise self.fail("shape", f"{transforms.shape} must be (transforms, {dim}, {dim + 1})",
                            where("transforms"))
        if transforms.shape[0] > caps.transforms:
            raise self.fail("shape", f"{transforms.shape[0]} transforms exceed the capacity of {caps.transforms}",
                            where("transforms"))
        if not np.isfinite(transforms).all():
            raise self.fail("values", "contain NaN or infinity", where("transforms"))
        if transform_names and len(transform_names) != transforms.shape[0]:
            raise self.fail("transforms", f"names {len(transform_names)} transforms, there are "
                                          f"{transforms.shape[0]} ({where('transforms')})")

        phrases, bonus = t.phrases, t.phrase_bonus
        n_phrases, width = phrases.shape
        if width > caps.phrase or (n_phrases and width < 2):
            raise self.fail("shape", f"width {width} must be in 2..{caps.phrase}", where("phrases"))
        self._check_phrases(phrases, vocab_size, where("phrases"))
        if bonus.shape[0] != n_phrases:
            raise self.fail("shape", f"{bonus.shape} must be ({n_phrases},)", where("phrase_bonus"))
        if n_phrases and (bonus.min() < 0 or bonus.max() > SCORE_MAX):
            raise self.fail("values", f"must be in 0..{SCORE_MAX}", where("phrase_bonus"))

        n_symbols, symbol_rows = vocab_size + n_phrases, t.symbol_rows
        if symbol_rows.shape[0] != n_symbols:
            raise self.fail("shape", f"{symbol_rows.shape} must be ({n_symbols},): vocab {vocab_size} + phrases "
                                     f"{n_phrases}", where("symbol_rows"))
        if symbol_rows.min() < 0 or symbol_rows.max() >= rows:
            bad = int(np.flatnonzero((symbol_rows < 0) | (symbol_rows >= rows))[0])
            raise self.fail(f"[{bad}]", f"row {symbol_rows[bad]} is out of range 0..{rows - 1}", where("symbol_rows"))
        if t.symbol_classes.shape[0] != n_symbols:
            raise self.fail("shape", f"{t.symbol_classes.shape} must be ({n_symbols},)", where("symbol_classes"))
        if len(classes) < 32 and (t.symbol_classes >> np.uint32(len(classes))).any():
            raise self.fail("values", f"use class bits beyond the {len(classes)} declared classes",
                            where("symbol_classes"))

    def loop_params(self, doc: Any) -> LoopParams:
        keys = {"max_steps", "tolerance", "inhibit_steps"}
        params = self.obj(doc, "params", keys, keys)
        return LoopParams(
            max_steps=self.int_in(params["max_steps"], "params.max_steps", 0, self.caps.steps),
            tolerance=self.int_in(params["tolerance"], "params.tolerance", 0, TOLERANCE_MAX),
            inhibit_steps=self.int_in(params["inhibit_steps"], "params.inhibit_steps", 0, self.caps.steps),
        )

    def rules(self, rules_doc: Any, limits: _RuleLimits) -> tuple[Rule, ...]:
        if not isinstance(rules_doc, list):
            raise self.fail("rules", "must be a list")
        if len(rules_doc) > self.caps.rules:
            raise self.fail("rules", f"{len(rules_doc)} rules exceed the capacity of {self.caps.rules}")
        rules = tuple(self._rule(r, i, limits) for i, r in enumerate(rules_doc))
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise self.fail("rules", f"rule name {dup!r} is used twice")
        return rules

    def _check_phrases(self, phrases: np.ndarray, vocab_size: int, pfile: str) -> None:
        if phrases.shape[0] == 0:
            return
        used = phrases >= 0
        lengths = used.sum(axis=1)
        # Tokens first, then -1 padding; at least two tokens; ids in the vocabulary.
        prefix = np.arange(phrases.shape[1])[None, :] < lengths[:, None]
        bad = (used != prefix) | (lengths[:, None] < 2) | (phrases < -1) | (phrases >= vocab_size)
        if bad.any():
            row = int(np.flatnonzero(bad.any(axis=1))[0])
            raise self.fail(
                f"[{row}]",
                f"{phrases[row].tolist()} must be 2+ token ids below {vocab_size}, then -1 padding",
                pfile,
            )
        keys = phrases.astype(np.int64).astype(np.uint32)
        order = np.lexsort(keys.T[::-1])
        if not (order == np.arange(len(order))).all():
            raise self.fail("order", "phrases must be sorted (as uint32 keys, -1 padding last)", pfile)
        if (keys[1:] == keys[:-1]).all(axis=1).any():
            raise self.fail("order", "phrases must be unique", pfile)

    def _element(self, el: Any, ename: str, e: int, kind: str, lim: _RuleLimits) -> PatternElement:
        caps = self.caps
        self.obj(el, ename, {"gap", "run", "opcode", "symbol", "not_symbol", "classes", "all_classes",
                             "none_classes", "mod", "at_start", "at_end"}, set())
        gap = self.int_in(el.get("gap", 0), f"{ename}.gap", 0, 0 if e == 0 else caps.gap)
        run = self.int_in(el.get("run", 0), f"{ename}.run", 0, caps.run)
        opcode = self.opcode(el["opcode"], f"{ename}.opcode") if "opcode" in el else ANY
        symbol = self.int_in(el["symbol"], f"{ename}.symbol", 0, lim.n_symbols - 1) if "symbol" in el else ANY
        not_symbol = self.flag(el.get("not_symbol", False), f"{ename}.not_symbol")
        if not_symbol and symbol == ANY:
            raise self.fail(f"{ename}.not_symbol", "needs a symbol to negate")
        mod = self.int_in(el["mod"], f"{ename}.mod", 0, lim.n_transforms) if "mod" in el else ANY
        if kind == "merge" and (gap or run):
            raise self.fail(f"{ename}", "a merge pattern cannot have gaps or runs")
        return PatternElement(
            gap=gap,
            opcode=opcode,
            symbol=symbol,
            classes=self.class_list(el.get("classes", []), f"{ename}.classes", lim.classes),
            not_symbol=not_symbol,
            all_classes=self.class_list(el.get("all_classes", []), f"{ename}.all_classes", lim.classes),
            none_classes=self.class_list(el.get("none_classes", []), f"{ename}.none_classes", lim.classes),
            mod=mod,
            at_start=self.flag(el.get("at_start", False), f"{ename}.at_start"),
            at_end=self.flag(el.get("at_end", False), f"{ename}.at_end"),
            run=run,
        )

    def _update(self, s: Any, sname: str, lim: _RuleLimits) -> ItemUpdate:
        self.obj(s, sname, {"opcode", "arg0", "arg1", "scale", "mod"}, set())
        return ItemUpdate(
            opcode=self.opcode(s["opcode"], f"{sname}.opcode") if "opcode" in s else None,
            arg0=self.int_in(s["arg0"], f"{sname}.arg0", 0, lim.rows - 1) if "arg0" in s else None,
            arg1=self.int_in(s["arg1"], f"{sname}.arg1", -ARG1_LIMIT, ARG1_LIMIT) if "arg1" in s else None,
            scale=self.int_in(s["scale"], f"{sname}.scale", -SCALE_LIMIT, SCALE_LIMIT) if "scale" in s else None,
            mod=self.int_in(s["mod"], f"{sname}.mod", 0, lim.n_transforms) if "mod" in s else None,
        )

    def _rule(self, doc: Any, i: int, lim: _RuleLimits) -> Rule:
        caps = self.caps
        name = f"rules[{i}]"
        self.obj(doc, name, {"name", "score", "mark", "pattern", "action"}, {"name", "score", "pattern", "action"})
        if not isinstance(doc["name"], str) or not doc["name"]:
            raise self.fail(f"{name}.name", "must be a non-empty string")
        score = self.int_in(doc["score"], f"{name}.score", 1, SCORE_MAX)
        mark = self.int_in(doc["mark"], f"{name}.mark", 0, MARK_BITS - 1) if "mark" in doc else i % MARK_BITS
        action = self.obj(doc["action"], f"{name}.action", {"kind", "perm", "set"}, {"kind"})
        kind = action["kind"]
        if not isinstance(kind, str) or kind not in RULE_KINDS:
            raise self.fail(f"{name}.action.kind", f"unknown action {short_repr(kind)} (known: {', '.join(RULE_KINDS)})")
        pattern_doc = doc["pattern"]
        if not isinstance(pattern_doc, list) or not 1 <= len(pattern_doc) <= caps.pattern:
            raise self.fail(f"{name}.pattern", f"must be a list of 1..{caps.pattern} elements")
        pattern = tuple(self._element(el, f"{name}.pattern[{e}]", e, kind, lim) for e, el in enumerate(pattern_doc))
        k = len(pattern)
        has_run = any(el.run for el in pattern)
        if kind == "merge":
            if k < 2 or k > lim.width:
                raise self.fail(f"{name}.pattern", f"a merge needs 2..{lim.width} elements (the lexicon width)")
            if "perm" in action:
                raise self.fail(f"{name}.action.perm", "a merge does not reorder")
            if score + lim.max_bonus > SCORE_MAX:
                raise self.fail(f"{name}.score", f"score + largest phrase bonus exceeds {SCORE_MAX}")
        if kind == "guard" and ("perm" in action or "set" in action):
            raise self.fail(f"{name}.action", "a guard has no perm or set: it never rewrites")
        perm: tuple[int, ...] = ()
        if "perm" in action:
            p = action["perm"]
            if not isinstance(p, list) or any(isinstance(x, bool) or not isinstance(x, int) for x in p) \
                    or sorted(p) != list(range(k)):
                raise self.fail(f"{name}.action.perm", f"must be a permutation of 0..{k - 1}")
            if has_run and p != list(range(k)):
                raise self.fail(f"{name}.action.perm", "a pattern with runs cannot reorder")
            perm = tuple(p)
        sets = action.get("set", [])
        limit = 1 if kind == "merge" else k
        if not isinstance(sets, list) or len(sets) > limit:
            raise self.fail(f"{name}.action.set", f"must be a list of at most {limit} objects")
        updates = tuple(self._update(s, f"{name}.action.set[{e}]", lim) for e, s in enumerate(sets))
        return Rule(doc["name"], score, pattern, kind, perm, updates, mark)


@dataclass(frozen=True)
class _RuleLimits:
    """What a rule's values are checked against: the Algorithm's own sizes."""

    classes: list[str]
    n_symbols: int
    rows: int
    width: int
    max_bonus: int
    n_transforms: int


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return short_repr(text[0], 200).strip("'\"") if text else type(exc).__name__


__all__ = [
    "Q16_ONE",
    "Algorithm",
    "ItemUpdate",
    "LoopParams",
    "PatternElement",
    "Rule",
    "canonical_json",
    "check_algorithm",
    "check_rules",
    "default_algorithm_path",
    "element_fields",
    "load_algorithm",
    "phrase_table",
    "rule_reach",
    "rule_to_json",
    "save_algorithm",
]
