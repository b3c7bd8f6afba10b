"""The Algorithm: the engine's DNA, a versioned directory of plain data files.

Layout of an Algorithm directory (format ``sae-algorithm``, version 1)::

    algorithm.json       name, parameters, token classes, rules (canonical JSON)
    tokenizer.json       a Hugging Face ``tokenizers`` file
    vectors.npy          (rows, dim) float16 or float32 vectors
    weights.npy          (rows,) float32 per-row weights
    symbol_rows.npy      (vocab + phrases,) int32: the vector row of each symbol
    symbol_classes.npy   (vocab + phrases,) uint32: token-class bitmask of each symbol
    phrases.npy          (phrases, width) int32: lexicon token sequences, -1 padded
    phrase_bonus.npy     (phrases,) int32: extra bid score of merging into the phrase

An Algorithm is data: ``.npy`` files are read with ``allow_pickle=False`` and every
field is validated against the engine's :class:`~sae.layout.Capacities`; the first
problem is reported as ``file: field: reason`` (:class:`~sae.errors.AlgorithmError`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from sae.errors import AlgorithmError
from sae.layout import (
    ANY,
    DEFAULT_CAPACITIES,
    KEEP,
    Q16_ONE,
    RULE_MERGE,
    RULE_REWRITE,
    SCORE_MAX,
    TOLERANCE_MAX,
    Capacities,
    Op,
    rule_record,
)

FORMAT = "sae-algorithm"
VERSION = 1
ALGORITHM_JSON = "algorithm.json"
TOKENIZER_JSON = "tokenizer.json"
ARRAY_FILES = (
    "vectors",
    "weights",
    "symbol_rows",
    "symbol_classes",
    "phrases",
    "phrase_bonus",
)
#: |arg1| stays below 2**24 so that f32(arg1) is exact on every backend.
ARG1_LIMIT = 1 << 24
MAX_CLASSES = 32


@dataclass(frozen=True)
class PatternElement:
    """One element of a rule pattern (see docs/ENGINE.md §2)."""

    gap: int = 0
    opcode: int = ANY
    symbol: int = ANY
    classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ItemUpdate:
    """Fields a rewrite sets on one matched item; ``None`` keeps the field."""

    opcode: int | None = None
    arg0: int | None = None
    arg1: int | None = None


@dataclass(frozen=True)
class Rule:
    """A rewrite rule: a pattern, an action and a score."""

    name: str
    score: int
    pattern: tuple[PatternElement, ...]
    kind: str = "rewrite"  # "rewrite" or "merge"
    perm: tuple[int, ...] = ()  # empty means identity
    updates: tuple[ItemUpdate, ...] = ()  # empty means no update


@dataclass(frozen=True)
class LoopParams:
    """Parameters of the annealing loop."""

    max_steps: int = 32
    tolerance: int = 0
    inhibit_steps: int = 4


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

    @cached_property
    def tokenizer(self):  # -> tokenizers.Tokenizer
        """The tokenizer, without truncation or padding (the engine truncates)."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(self.tokenizer_json)
        tok.no_truncation()
        tok.no_padding()
        return tok

    @property
    def reach(self) -> int:
        """How far past its anchor any rule's match can extend (docs/ENGINE.md §3).

        A bid anchored at ``x`` reads only items ``x ..= x + reach``, so a rewrite of
        items ``[first, last]`` changes only the bids anchored in
        ``[first - reach, last]``: the window the health check judges it on.
        """
        return max((sum(el.gap + 1 for el in rule.pattern[1:]) for rule in self.rules), default=0)

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
            rec["kind"] = RULE_MERGE if rule.kind == "merge" else RULE_REWRITE
            rec["length"] = k
            rec["gap"][:] = 0
            rec["opcode"][:] = ANY
            rec["symbol"][:] = ANY
            rec["perm"][:] = np.arange(caps.pattern)
            rec["set_opcode"][:] = KEEP
            rec["set_arg0"][:] = KEEP
            rec["set_arg1"][:] = KEEP
            for e, el in enumerate(rule.pattern):
                rec["gap"][e] = el.gap
                rec["opcode"][e] = el.opcode
                rec["symbol"][e] = el.symbol
                rec["classes"][e] = self.class_mask(el.classes)
            if rule.perm:
                rec["perm"][:k] = rule.perm
            for e, up in enumerate(rule.updates):
                for name in ("opcode", "arg0", "arg1"):
                    value = getattr(up, name)
                    if value is not None:
                        rec[f"set_{name}"][e] = value
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
            "params": {
                "max_steps": self.params.max_steps,
                "tolerance": self.params.tolerance,
                "inhibit_steps": self.params.inhibit_steps,
            },
            "rules": [_rule_to_json(rule) for rule in self.rules],
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


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, ASCII: the same text on every machine."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _rule_to_json(rule: Rule) -> dict[str, Any]:
    pattern = []
    for el in rule.pattern:
        item: dict[str, Any] = {"gap": el.gap}
        if el.opcode != ANY:
            item["opcode"] = Op(el.opcode).name
        if el.symbol != ANY:
            item["symbol"] = el.symbol
        if el.classes:
            item["classes"] = list(el.classes)
        pattern.append(item)
    action: dict[str, Any] = {"kind": rule.kind}
    if rule.perm:
        action["perm"] = list(rule.perm)
    if rule.updates:
        sets = []
        for up in rule.updates:
            entry: dict[str, Any] = {}
            if up.opcode is not None:
                entry["opcode"] = Op(up.opcode).name
            if up.arg0 is not None:
                entry["arg0"] = up.arg0
            if up.arg1 is not None:
                entry["arg1"] = up.arg1
            sets.append(entry)
        action["set"] = sets
    return {"name": rule.name, "score": rule.score, "pattern": pattern, "action": action}


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


def save_algorithm(alg: Algorithm, directory: str | Path, *, vector_dtype: str = "float16") -> Path:
    """Write ``alg`` as an Algorithm directory; vectors are stored as ``vector_dtype``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
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
    }
    for name, arr in arrays.items():
        np.save(out / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
    return out


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
    root = Path(path) if path is not None else default_algorithm_path()
    if root.is_file() and root.name == ALGORITHM_JSON:
        root = root.parent
    if not root.is_dir():
        raise AlgorithmError(str(root), "path", "no such Algorithm directory")
    json_path = root / ALGORITHM_JSON
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AlgorithmError(str(json_path), "file", "missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AlgorithmError(str(json_path), "file", f"not valid JSON ({exc})") from None
    return _Loader(root, caps).build(doc)


class _Loader:
    """Validates one Algorithm directory; every check names file and field."""

    def __init__(self, root: Path, caps: Capacities) -> None:
        self.root, self.caps = root, caps
        self.json_file = str(root / ALGORITHM_JSON)

    def fail(self, field_name: str, reason: str, file: str | None = None) -> AlgorithmError:
        return AlgorithmError(file or self.json_file, field_name, reason)

    # JSON helpers: each returns the typed value or raises naming the field.
    def obj(self, doc: Any, name: str, keys: set[str], required: set[str]) -> dict[str, Any]:
        if not isinstance(doc, dict):
            raise self.fail(name, "must be an object")
        unknown = sorted(set(doc) - keys)
        if unknown:
            raise self.fail(f"{name}.{unknown[0]}" if name else unknown[0], "unknown field")
        missing = sorted(required - set(doc))
        if missing:
            raise self.fail(f"{name}.{missing[0]}" if name else missing[0], "missing")
        return doc

    def int_in(self, value: Any, name: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, f"must be an integer, got {value!r}")
        if not lo <= value <= hi:
            raise self.fail(name, f"{value} is out of range {lo}..{hi}")
        return value

    def opcode(self, value: Any, name: str) -> int:
        if not isinstance(value, str) or value not in Op.__members__:
            raise self.fail(name, f"unknown opcode {value!r} (known: {', '.join(Op.__members__)})")
        return int(Op[value])

    def array(self, name: str, dtypes: tuple[str, ...], ndim: int) -> np.ndarray:
        file = self.root / f"{name}.npy"
        try:
            arr = np.load(file, allow_pickle=False)
        except FileNotFoundError:
            raise self.fail("file", "missing", str(file)) from None
        except (ValueError, OSError) as exc:
            raise self.fail("file", f"not a readable .npy array ({exc})", str(file)) from None
        if arr.dtype.kind + str(arr.dtype.itemsize) not in dtypes:
            raise self.fail("dtype", f"is {arr.dtype}, expected one of {dtypes}", str(file))
        if arr.ndim != ndim:
            raise self.fail("shape", f"{arr.shape} must have {ndim} dimension(s)", str(file))
        return arr

    def build(self, doc: Any) -> Algorithm:
        caps = self.caps
        top_keys = {"format", "version", "name", "description", "dim", "classes", "params", "rules"}
        self.obj(doc, "", top_keys, top_keys - {"description"})
        if doc["format"] != FORMAT:
            raise self.fail("format", f"must be {FORMAT!r}, got {doc['format']!r}")
        if doc["version"] != VERSION:
            raise self.fail("version", f"unsupported version {doc['version']!r} (this sae reads {VERSION})")
        if not isinstance(doc["name"], str) or not doc["name"]:
            raise self.fail("name", "must be a non-empty string")
        description = doc.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", "must be a string")
        dim = self.int_in(doc["dim"], "dim", 1, caps.dim)

        classes = doc["classes"]
        if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
            raise self.fail("classes", "must be a list of non-empty strings")
        if len(classes) > MAX_CLASSES:
            raise self.fail("classes", f"{len(classes)} classes exceed the limit of {MAX_CLASSES}")
        if len(set(classes)) != len(classes):
            raise self.fail("classes", "names must be unique")

        pkeys = {"max_steps", "tolerance", "inhibit_steps"}
        params = self.obj(doc["params"], "params", pkeys, pkeys)
        loop = LoopParams(
            max_steps=self.int_in(params["max_steps"], "params.max_steps", 0, caps.steps),
            tolerance=self.int_in(params["tolerance"], "params.tolerance", 0, TOLERANCE_MAX),
            inhibit_steps=self.int_in(params["inhibit_steps"], "params.inhibit_steps", 0, caps.steps),
        )

        # Arrays, then the cross-checks between them.
        tok_file = self.root / TOKENIZER_JSON
        try:
            tokenizer_json = tok_file.read_text(encoding="utf-8")
            from tokenizers import Tokenizer

            vocab_size = Tokenizer.from_str(tokenizer_json).get_vocab_size(with_added_tokens=True)
        except FileNotFoundError:
            raise self.fail("file", "missing", str(tok_file)) from None
        except Exception as exc:  # tokenizers raises its own exception types
            raise self.fail("file", f"not a valid tokenizer ({exc})", str(tok_file)) from None

        vectors = self.array("vectors", ("f2", "f4"), 2)
        vfile = str(self.root / "vectors.npy")
        if vectors.shape[1] != dim:
            raise self.fail("shape", f"{vectors.shape} has dim {vectors.shape[1]}, algorithm.json says {dim}", vfile)
        if vectors.shape[0] < 1:
            raise self.fail("shape", "needs at least one row", vfile)
        vectors = vectors.astype(np.float32)
        if not np.isfinite(vectors).all():
            raise self.fail("values", "contain NaN or infinity", vfile)
        rows = vectors.shape[0]

        weights = self.array("weights", ("f4",), 1)
        wfile = str(self.root / "weights.npy")
        if weights.shape[0] != rows:
            raise self.fail("shape", f"{weights.shape} must be ({rows},), one weight per vector row", wfile)
        if not np.isfinite(weights).all():
            raise self.fail("values", "contain NaN or infinity", wfile)

        phrases = self.array("phrases", ("i4",), 2)
        pfile = str(self.root / "phrases.npy")
        n_phrases, width = phrases.shape
        if width > caps.phrase or (n_phrases and width < 2):
            raise self.fail("shape", f"width {width} must be in 2..{caps.phrase}", pfile)
        self._check_phrases(phrases, vocab_size, pfile)
        bonus = self.array("phrase_bonus", ("i4",), 1)
        bfile = str(self.root / "phrase_bonus.npy")
        if bonus.shape[0] != n_phrases:
            raise self.fail("shape", f"{bonus.shape} must be ({n_phrases},)", bfile)
        if n_phrases and (bonus.min() < 0 or bonus.max() > SCORE_MAX):
            raise self.fail("values", f"must be in 0..{SCORE_MAX}", bfile)

        n_symbols = vocab_size + n_phrases
        symbol_rows = self.array("symbol_rows", ("i4",), 1)
        sfile = str(self.root / "symbol_rows.npy")
        if symbol_rows.shape[0] != n_symbols:
            raise self.fail(
                "shape",
                f"{symbol_rows.shape} must be ({n_symbols},): vocab {vocab_size} + phrases {n_phrases}",
                sfile,
            )
        if symbol_rows.min() < 0 or symbol_rows.max() >= rows:
            bad = int(np.flatnonzero((symbol_rows < 0) | (symbol_rows >= rows))[0])
            raise self.fail(f"[{bad}]", f"row {symbol_rows[bad]} is out of range 0..{rows - 1}", sfile)
        symbol_classes = self.array("symbol_classes", ("u4",), 1)
        cfile = str(self.root / "symbol_classes.npy")
        if symbol_classes.shape[0] != n_symbols:
            raise self.fail("shape", f"{symbol_classes.shape} must be ({n_symbols},)", cfile)
        if len(classes) < 32 and (symbol_classes >> np.uint32(len(classes))).any():
            raise self.fail("values", f"use class bits beyond the {len(classes)} declared classes", cfile)

        rules_doc = doc["rules"]
        if not isinstance(rules_doc, list):
            raise self.fail("rules", "must be a list")
        if len(rules_doc) > caps.rules:
            raise self.fail("rules", f"{len(rules_doc)} rules exceed the capacity of {caps.rules}")
        max_bonus = int(bonus.max()) if n_phrases else 0
        rules = tuple(
            self._rule(r, i, classes, n_symbols, rows, width, max_bonus) for i, r in enumerate(rules_doc)
        )
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise self.fail("rules", f"rule name {dup!r} is used twice")

        def frozen(a: np.ndarray) -> np.ndarray:
            a = np.ascontiguousarray(a)
            a.setflags(write=False)
            return a

        return Algorithm(
            name=doc["name"],
            description=description,
            tokenizer_json=tokenizer_json,
            vectors=frozen(vectors),
            weights=frozen(weights.astype(np.float32)),
            symbol_rows=frozen(symbol_rows.astype(np.int32)),
            symbol_classes=frozen(symbol_classes.astype(np.uint32)),
            phrases=frozen(phrases.astype(np.int32)),
            phrase_bonus=frozen(bonus.astype(np.int32)),
            classes=tuple(classes),
            rules=rules,
            params=loop,
        )

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

    def _rule(
        self, doc: Any, i: int, classes: list[str], n_symbols: int, rows: int, width: int, max_bonus: int
    ) -> Rule:
        caps = self.caps
        name = f"rules[{i}]"
        self.obj(doc, name, {"name", "score", "pattern", "action"}, {"name", "score", "pattern", "action"})
        if not isinstance(doc["name"], str) or not doc["name"]:
            raise self.fail(f"{name}.name", "must be a non-empty string")
        score = self.int_in(doc["score"], f"{name}.score", 1, SCORE_MAX)
        pattern_doc = doc["pattern"]
        if not isinstance(pattern_doc, list) or not 1 <= len(pattern_doc) <= caps.pattern:
            raise self.fail(f"{name}.pattern", f"must be a list of 1..{caps.pattern} elements")
        pattern = []
        for e, el in enumerate(pattern_doc):
            ename = f"{name}.pattern[{e}]"
            self.obj(el, ename, {"gap", "opcode", "symbol", "classes"}, set())
            gap = self.int_in(el.get("gap", 0), f"{ename}.gap", 0, 0 if e == 0 else caps.gap)
            opcode = self.opcode(el["opcode"], f"{ename}.opcode") if "opcode" in el else ANY
            symbol = self.int_in(el["symbol"], f"{ename}.symbol", 0, n_symbols - 1) if "symbol" in el else ANY
            cls = el.get("classes", [])
            if not isinstance(cls, list):
                raise self.fail(f"{ename}.classes", "must be a list of class names")
            for c in cls:
                if c not in classes:
                    raise self.fail(f"{ename}.classes", f"unknown class {c!r}")
            pattern.append(PatternElement(gap, opcode, symbol, tuple(cls)))
        k = len(pattern)

        action = self.obj(doc["action"], f"{name}.action", {"kind", "perm", "set"}, {"kind"})
        kind = action["kind"]
        if kind not in ("rewrite", "merge"):
            raise self.fail(f"{name}.action.kind", f"unknown action {kind!r} (known: rewrite, merge)")
        if kind == "merge":
            if k < 2 or k > width:
                raise self.fail(f"{name}.pattern", f"a merge needs 2..{width} elements (the lexicon width)")
            if any(el.gap for el in pattern):
                raise self.fail(f"{name}.pattern", "a merge pattern cannot have gaps")
            if "perm" in action:
                raise self.fail(f"{name}.action.perm", "a merge does not reorder")
            if score + max_bonus > SCORE_MAX:
                raise self.fail(f"{name}.score", f"score + largest phrase bonus exceeds {SCORE_MAX}")
        perm: tuple[int, ...] = ()
        if "perm" in action:
            p = action["perm"]
            if not isinstance(p, list) or sorted(p) != list(range(k)) or any(isinstance(x, bool) for x in p):
                raise self.fail(f"{name}.action.perm", f"must be a permutation of 0..{k - 1}")
            perm = tuple(p)
        updates: list[ItemUpdate] = []
        sets = action.get("set", [])
        if not isinstance(sets, list) or len(sets) > (1 if kind == "merge" else k):
            raise self.fail(f"{name}.action.set", f"must be a list of at most {1 if kind == 'merge' else k} objects")
        for e, s in enumerate(sets):
            sname = f"{name}.action.set[{e}]"
            self.obj(s, sname, {"opcode", "arg0", "arg1"}, set())
            updates.append(
                ItemUpdate(
                    opcode=self.opcode(s["opcode"], f"{sname}.opcode") if "opcode" in s else None,
                    arg0=self.int_in(s["arg0"], f"{sname}.arg0", 0, rows - 1) if "arg0" in s else None,
                    arg1=self.int_in(s["arg1"], f"{sname}.arg1", -ARG1_LIMIT, ARG1_LIMIT) if "arg1" in s else None,
                )
            )
        return Rule(doc["name"], score, tuple(pattern), kind, perm, tuple(updates))


__all__ = [
    "Q16_ONE",
    "Algorithm",
    "ItemUpdate",
    "LoopParams",
    "PatternElement",
    "Rule",
    "canonical_json",
    "default_algorithm_path",
    "load_algorithm",
    "phrase_table",
    "save_algorithm",
]
