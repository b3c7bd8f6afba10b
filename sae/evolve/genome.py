"""The genome: what evolution changes in an Algorithm, and how it becomes one.

A :class:`Genome` holds the rules (patterns, actions, scores, marks), the loop
parameters and one lexicon choice (``min_bonus``: lexicon phrases whose merge bonus
is below it are left out). Everything else — tokenizer, vectors, weights, token
classes, the lexicon table, transforms — comes from a **base** Algorithm, so
:func:`materialize` is cheap: ``dataclasses.replace`` of the base.

Genomes are kept in a **canonical form** (:func:`normalized`): identical rules are
dropped, rules are ordered by score then content, and each rule is named after its
content. Two genomes that describe the same rule set are then the same bytes of
canonical JSON and the same :attr:`Genome.key`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sae.algorithm import (
    Algorithm,
    ItemUpdate,
    LoopParams,
    PatternElement,
    Rule,
    canonical_json,
    rule_to_json,
)
from sae.layout import ANY, Op

#: Prefix of a rule's content name, per kind.
KIND_PREFIX = {"merge": "mg", "rewrite": "rw", "guard": "gd"}


@dataclass(frozen=True)
class Genome:
    """Rules, loop parameters and the lexicon threshold of one individual."""

    rules: tuple[Rule, ...]
    params: LoopParams
    min_bonus: int = 0  #: lexicon phrases with ``phrase_bonus < min_bonus`` are left out

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": [rule_to_json(r) for r in self.rules],
            "params": {"max_steps": self.params.max_steps, "tolerance": self.params.tolerance,
                       "inhibit_steps": self.params.inhibit_steps},
            "lexicon": {"min_bonus": self.min_bonus},
        }

    def canonical(self) -> str:
        """Canonical JSON (sorted keys, no whitespace): what the run store keeps."""
        return canonical_json(self.to_json())

    @property
    def key(self) -> str:
        """SHA-256 of the canonical JSON: the genome's identity in a run."""
        return hashlib.sha256(self.canonical().encode()).hexdigest()

    @staticmethod
    def from_json(doc: dict[str, Any]) -> Genome:
        p = doc["params"]
        return Genome(
            rules=tuple(rule_from_json(r) for r in doc["rules"]),
            params=LoopParams(int(p["max_steps"]), int(p["tolerance"]), int(p["inhibit_steps"])),
            min_bonus=int(doc.get("lexicon", {}).get("min_bonus", 0)),
        )


# -- rules as JSON (the shape of algorithm.json's rules) -------------------------------------


def rule_from_json(doc: dict[str, Any]) -> Rule:
    """The inverse of :func:`rule_to_json` (for genomes this package wrote; the loader
    validates the Algorithm a genome becomes)."""
    pattern = tuple(
        PatternElement(
            gap=int(e.get("gap", 0)),
            opcode=int(Op[e["opcode"]]) if "opcode" in e else ANY,
            symbol=int(e["symbol"]) if "symbol" in e else ANY,
            classes=tuple(e.get("classes", ())),
            not_symbol=bool(e.get("not_symbol", False)),
            all_classes=tuple(e.get("all_classes", ())),
            none_classes=tuple(e.get("none_classes", ())),
            mod=int(e["mod"]) if "mod" in e else ANY,
            at_start=bool(e.get("at_start", False)),
            at_end=bool(e.get("at_end", False)),
            run=int(e.get("run", 0)),
        )
        for e in doc["pattern"]
    )
    action = doc["action"]
    updates = tuple(
        ItemUpdate(
            opcode=int(Op[s["opcode"]]) if "opcode" in s else None,
            arg0=s.get("arg0"),
            arg1=s.get("arg1"),
            scale=s.get("scale"),
            mod=s.get("mod"),
        )
        for s in action.get("set", [])
    )
    return Rule(doc["name"], int(doc["score"]), pattern, action["kind"], tuple(action.get("perm", ())),
                updates, doc.get("mark"))


def rule_key(rule: Rule) -> str:
    """A rule's identity apart from its name: 16 hex digits of its content's SHA-256."""
    body = rule_to_json(rule)
    del body["name"]
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()[:16]


def _trim_updates(rule: Rule) -> Rule:
    """Drop trailing no-op updates and an identity permutation (same rule, one spelling)."""
    updates = list(rule.updates)
    while updates and not updates[-1].changes:
        updates.pop()
    perm = rule.perm if rule.perm and list(rule.perm) != list(range(len(rule.pattern))) else ()
    return replace(rule, updates=tuple(updates), perm=perm)


def normalized(genome: Genome) -> Genome:
    """The canonical form: rules deduplicated, ordered by (−score, content), named by content.

    Marks are kept as they are (they are part of what a rule does); a rule without
    one gets ``index % 32`` of its position in the input, as the loader would.
    """
    seen: dict[str, Rule] = {}
    for i, rule in enumerate(genome.rules):
        rule = _trim_updates(rule if rule.mark is not None else replace(rule, mark=i % 32))
        seen.setdefault(rule_key(rule), rule)
    ordered = sorted(seen.items(), key=lambda kv: (-kv[1].score, kv[0]))
    rules = tuple(replace(rule, name=f"{KIND_PREFIX[rule.kind]}_{key[:8]}") for key, rule in ordered)
    return Genome(rules, genome.params, genome.min_bonus)


def genome_of(alg: Algorithm) -> Genome:
    """The genome of an existing Algorithm (its rules, parameters, full lexicon)."""
    return normalized(Genome(alg.rules, alg.params, 0))


def simplifications(genome: Genome, base_params: LoopParams) -> list[tuple[str, Genome]]:
    """Each one-step simplification of ``genome``, in a fixed order, with what it removes:
    every opcode an update sets, left unset; every loop parameter that differs from
    ``base_params``, set back to it. The final pick keeps one only when it changes nothing
    (:meth:`sae.evolve.run.Evolution.final`): a search carries neutral mutations along, and
    a setting that does nothing is one a reader would take for a reason."""
    out = []
    for i, rule in enumerate(genome.rules):
        for j, update in enumerate(rule.updates):
            if update.opcode is None:
                continue
            updates = rule.updates[:j] + (replace(update, opcode=None),) + rule.updates[j + 1 :]
            rules = genome.rules[:i] + (replace(rule, updates=updates),) + genome.rules[i + 1 :]
            out.append((f"{rule.name}: set {j} op={Op(update.opcode).name}",
                        normalized(Genome(rules, genome.params, genome.min_bonus))))
    for name in ("max_steps", "tolerance", "inhibit_steps"):
        value, base_value = getattr(genome.params, name), getattr(base_params, name)
        if value != base_value:
            out.append((f"{name} {value} (the base's {base_value})",
                        Genome(genome.rules, replace(genome.params, **{name: base_value}), genome.min_bonus)))
    return out


def rule_removals(genome: Genome) -> list[tuple[str, Genome]]:
    """``genome`` without each of its rules in turn, in rule order, with the rule's name.
    The final pick drops one only when the genome without it is no worse and cheaper
    (:meth:`sae.evolve.run.Evolution.final`): the search evaluates rules in company, and a
    rule it carried along may add nothing to the pick it ends in."""
    return [(f"rule {rule.name}", normalized(Genome(genome.rules[:i] + genome.rules[i + 1 :], genome.params,
                                                     genome.min_bonus)))
            for i, rule in enumerate(genome.rules)]


# -- materializing ---------------------------------------------------------------------------


def lexicon_subset(base: Algorithm, min_bonus: int) -> Algorithm:
    """``base`` with only the phrases whose bonus is at least ``min_bonus``.

    Phrase symbols are renumbered (``vocab + kept index``); token symbols, vectors and
    weights are unchanged (rows no symbol points to any more are simply unused).
    """
    if min_bonus <= 0 or base.n_phrases == 0:
        return base
    keep = base.phrase_bonus >= min_bonus
    if keep.all():
        return base
    V = base.vocab_size  # noqa: N806
    return replace(
        base,
        phrases=base.phrases[keep],
        phrase_bonus=base.phrase_bonus[keep],
        symbol_rows=np.concatenate([base.symbol_rows[:V], base.symbol_rows[V:][keep]]),
        symbol_classes=np.concatenate([base.symbol_classes[:V], base.symbol_classes[V:][keep]]),
    )


def materialize(base: Algorithm, genome: Genome, transforms: np.ndarray | None = None,
                name: str = "evolved") -> Algorithm:
    """The Algorithm ``genome`` describes on ``base`` (``transforms``: fitted ones, else the base's)."""
    alg = lexicon_subset(base, genome.min_bonus)
    desc = f"Evolved by sae evolve on base {base.content_hash[:16]} (docs/EVOLVE.md)."
    return replace(alg, name=name, description=desc, rules=genome.rules, params=genome.params,
                   transforms=alg.transforms if transforms is None else transforms)


__all__ = [
    "Genome",
    "genome_of",
    "lexicon_subset",
    "materialize",
    "normalized",
    "rule_from_json",
    "rule_key",
    "rule_removals",
    "rule_to_json",
    "simplifications",
]
