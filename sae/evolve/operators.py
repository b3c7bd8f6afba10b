"""Variation: mutation operators for every part of a genome, and crossover.

Every operator is a small function ``op(genome, rng, space) -> Genome | None`` (None:
not applicable to this genome, the caller draws another). Randomness comes only from
the numpy ``Generator`` passed in, so a run's offspring depend on its seed and on
nothing else. Operators build valid rules by construction and :func:`repair` enforces
the loader's constraints (docs/ENGINE.md §2) after every edit, so each genome
materializes as an Algorithm ``load_algorithm`` accepts (a test checks thousands).

:func:`crossover` keeps interacting rules together: the rules of both parents are
grouped into the connected components of the **rule-interaction graph** (rules that
fired in the same texts at overlapping places, or a guard and the rules the health
check reverted; measured on the corpus when the parents were evaluated), and the
child takes each component whole from one parent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from sae.algorithm import Algorithm, ItemUpdate, LoopParams, PatternElement, Rule
from sae.evolve.genome import Genome, normalized, rule_key
from sae.layout import ANY, DEFAULT_CAPACITIES, MARK_BITS, Q16_ONE, SCALE_LIMIT, SCORE_MAX, Op


@dataclass(frozen=True)
class SearchSpace:
    """What operators may write: the base's classes, transforms, tokens and limits."""

    classes: tuple[str, ...]
    n_transforms: int
    tokens: tuple[int, ...]  #: token ids a symbol test may name (frequent in the corpus)
    lexicon_width: int
    max_bonus: int  #: largest phrase bonus (a merge's score + it must stay within SCORE_MAX)
    bonus_levels: tuple[int, ...]  #: distinct phrase bonuses (lexicon thresholds)
    max_rules: int = 32
    max_score: int = 2000
    products: bool = True  #: whether rules may write MUL (False: every program is a sum; an output map fits)

    @staticmethod
    def of(base: Algorithm, token_counts: np.ndarray, n_transforms: int, max_rules: int = 32,
           products: bool = True) -> SearchSpace:
        top = np.argsort(-token_counts, kind="stable")[:300]
        tokens = tuple(int(t) for t in sorted(top[token_counts[top] > 0].tolist()))
        width = int(base.phrases.shape[1]) if base.n_phrases else 0
        bonus = int(base.phrase_bonus.max()) if base.n_phrases else 0
        levels = tuple(int(b) for b in np.unique(base.phrase_bonus)) if base.n_phrases else ()
        return SearchSpace(base.classes, n_transforms, tokens, min(width, DEFAULT_CAPACITIES.pattern), bonus,
                           levels, max_rules, min(2000, SCORE_MAX - bonus), products)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


# -- random parts ---------------------------------------------------------------------------


def random_element(rng: np.random.Generator, space: SearchSpace, e: int) -> PatternElement:
    """An element testing a class (usually), sometimes a token, sometimes excluding a class."""
    fields: dict = {}
    if space.tokens and rng.random() < 0.12:
        fields["symbol"] = int(_pick(rng, space.tokens))
    elif space.classes:
        fields["classes"] = (str(_pick(rng, space.classes)),)
    if space.classes and rng.random() < 0.25:
        none = str(_pick(rng, space.classes))
        if none not in fields.get("classes", ()):
            fields["none_classes"] = (none,)
    if e > 0 and rng.random() < 0.3:
        fields["gap"] = int(rng.integers(1, DEFAULT_CAPACITIES.gap + 1))
    return PatternElement(**fields)


def random_scale(rng: np.random.Generator) -> int:
    """A weight factor in Q16: mostly 0.05..4, sometimes 0 (silence) or negative."""
    r = rng.random()
    if r < 0.08:
        return 0
    factor = _log_uniform(rng, 0.05, 4.0)
    if r < 0.12:
        factor = -factor
    return round(factor * Q16_ONE)


def random_rule(rng: np.random.Generator, space: SearchSpace, used_marks: set[int]) -> Rule:
    """A new rule: mostly a reweighting or transform rewrite, sometimes a guard or a merge."""
    free = [m for m in range(MARK_BITS) if m not in used_marks]
    mark = free[0] if free else int(rng.integers(MARK_BITS))
    score = round(_log_uniform(rng, 10, 500))
    kind_roll = rng.random()
    if kind_roll < 0.08 and space.lexicon_width >= 2:
        k = int(rng.integers(2, space.lexicon_width + 1))
        pattern = (PatternElement(opcode=int(Op.ACC)),) + (PatternElement(),) * (k - 1)
        return Rule("new", min(score + 100, space.max_score), pattern, "merge", mark=mark)
    k = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
    pattern = [random_element(rng, space, e) for e in range(k)]
    if kind_roll < 0.2:
        return Rule("new", score, tuple(pattern), "guard", mark=mark)
    target = int(rng.integers(k))
    el = pattern[target]
    updates = [ItemUpdate() for _ in range(k)]
    action = rng.random()
    # Shares of the action roll: a transform below 0.2 (a reweighting when the base has no
    # transforms), a stack product from 0.2 to 0.28 (given two elements), else a reweighting.
    product = 0.2 <= action < 0.28 and k >= 2 and space.products
    if action < 0.2 and space.n_transforms:
        # A transform over a run: the scope of a negation, a role, ...
        if rng.random() < 0.6:
            el = replace(el, run=int(rng.integers(2, DEFAULT_CAPACITIES.run + 1)))
        el = replace(el, mod=0)
        updates[target] = ItemUpdate(mod=int(rng.integers(1, space.n_transforms + 1)))
        pattern[target] = el
    elif product:
        # A stack expression: an elementwise product of two items' vectors.
        updates[0] = ItemUpdate(opcode=int(Op.PUSH))
        updates[1] = ItemUpdate(opcode=int(Op.MUL))
        pattern[0] = replace(pattern[0], opcode=int(Op.ACC))
        pattern[1] = replace(pattern[1], opcode=int(Op.ACC))
    else:
        updates[target] = ItemUpdate(scale=random_scale(rng))
        pattern[target] = replace(el, opcode=int(Op.ACC))
    return Rule("new", score, tuple(pattern), "rewrite", updates=tuple(updates), mark=mark)


# -- repair: the loader's constraints ---------------------------------------------------------


def repair(rule: Rule, space: SearchSpace) -> Rule:
    """``rule`` made valid for the loader, changing as little as possible."""
    caps = DEFAULT_CAPACITIES
    els = list(rule.pattern[: caps.pattern]) or [PatternElement()]
    fixed = []
    for e, el in enumerate(els):
        symbol = el.symbol if el.symbol == ANY or 0 <= el.symbol < 2**31 else ANY
        mod = el.mod if el.mod == ANY or el.mod <= space.n_transforms else ANY
        el = replace(el, gap=0 if e == 0 else min(max(el.gap, 0), caps.gap), run=min(max(el.run, 0), caps.run),
                     symbol=symbol, not_symbol=el.not_symbol and symbol != ANY, mod=mod,
                     classes=tuple(dict.fromkeys(c for c in el.classes if c in space.classes)),
                     all_classes=tuple(dict.fromkeys(c for c in el.all_classes if c in space.classes)),
                     none_classes=tuple(dict.fromkeys(c for c in el.none_classes if c in space.classes)))
        fixed.append(el)
    k = len(fixed)
    kind = rule.kind
    score = min(max(int(rule.score), 1), space.max_score)
    mark = int(rule.mark) % MARK_BITS if rule.mark is not None else None
    if kind == "merge":
        if not 2 <= k <= max(space.lexicon_width, 0):
            kind = "rewrite"
        else:
            fixed = [replace(el, gap=0, run=0) for el in fixed]
            updates = tuple(_fix_update(u, space) for u in rule.updates[:1])
            return Rule(rule.name, score, tuple(fixed), "merge", (), updates, mark)
    if kind == "guard":
        return Rule(rule.name, score, tuple(fixed), "guard", (), (), mark)
    perm = tuple(rule.perm)
    if perm and (len(perm) != k or sorted(perm) != list(range(k)) or any(el.run for el in fixed)):
        perm = ()
    updates = tuple(_fix_update(u, space) for u in rule.updates[:k])
    return Rule(rule.name, score, tuple(fixed), "rewrite", perm, updates, mark)


def _fix_update(up: ItemUpdate, space: SearchSpace) -> ItemUpdate:
    scale = None if up.scale is None else max(-SCALE_LIMIT, min(SCALE_LIMIT, int(up.scale)))
    mod = None if up.mod is None or space.n_transforms == 0 else max(0, min(space.n_transforms, int(up.mod)))
    return ItemUpdate(opcode=up.opcode, arg0=None, arg1=up.arg1, scale=scale, mod=mod)


# -- mutation operators -----------------------------------------------------------------------

Operator = Callable[[Genome, np.random.Generator, SearchSpace], "Genome | None"]


def _with_rule(genome: Genome, index: int, rule: Rule, space: SearchSpace) -> Genome:
    rules = list(genome.rules)
    rules[index] = repair(rule, space)
    return replace(genome, rules=tuple(rules))


def add_rule(genome: Genome, rng: np.random.Generator, space: SearchSpace) -> Genome | None:
    if len(genome.rules) >= space.max_rules:
        return None
    rule = repair(random_rule(rng, space, {r.mark for r in genome.rules}), space)
    return replace(genome, rules=genome.rules + (rule,))


def delete_rule(genome: Genome, rng: np.random.Generator, space: SearchSpace) -> Genome | None:
    if not genome.rules:
        return None
    i = int(rng.integers(len(genome.rules)))
    return replace(genome, rules=genome.rules[:i] + genome.rules[i + 1 :])


def mutate_element(genome: Genome, rng: np.random.Generator, space: SearchSpace) -> Genome | None:
    """One test of one element: a class in/out of any/all/none, the symbol, gap, run, opcode, anchors."""
    if not genome.rules:
        return None
    i = int(rng.integers(len(genome.rules)))
    rule = genome.rules[i]
    e = int(rng.integers(len(rule.pattern)))
    el = rule.pattern[e]
    what = int(rng.integers(8))
    cls = str(_pick(rng, space.classes)) if space.classes else None
    if what == 0 and cls:
        el = replace(el, classes=_toggle(el.classes, cls))
    elif what == 1 and cls:
        el = replace(el, none_classes=_toggle(el.none_classes, cls))
    elif what == 2 and cls:
        el = replace(el, all_classes=_toggle(el.all_classes, cls))
    elif what == 3:
        if el.symbol != ANY and rng.random() < 0.4:
            el = replace(el, symbol=ANY, not_symbol=False)
        elif space.tokens:
            el = replace(el, symbol=int(_pick(rng, space.tokens)), not_symbol=bool(rng.random() < 0.2))
    elif what == 4:
        el = replace(el, gap=int(rng.integers(0, DEFAULT_CAPACITIES.gap + 1)))
    elif what == 5:
        el = replace(el, run=0 if el.run else int(rng.integers(2, DEFAULT_CAPACITIES.run + 1)))
    elif what == 6:
        el = replace(el, opcode=ANY if el.opcode != ANY else int(Op.ACC))
    else:
        anchor = int(rng.integers(3))
        el = replace(el, at_start=not el.at_start) if anchor == 0 else \
            replace(el, at_end=not el.at_end) if anchor == 1 else \
            replace(el, mod=ANY if el.mod != ANY else int(rng.integers(0, space.n_transforms + 1)))
    pattern = rule.pattern[:e] + (el,) + rule.pattern[e + 1 :]
    return _with_rule(genome, i, replace(rule, pattern=pattern), space)


def _toggle(names: tuple[str, ...], name: str) -> tuple[str, ...]:
    return tuple(n for n in names if n != name) if name in names else names + (name,)


#: Opcodes ``mutate_action`` may write.
_OPCODES = (Op.NOP, Op.ACC, Op.PUSH, Op.ADD, Op.MUL, Op.EMIT)


def mutate_action(genome: Genome, rng: np.random.Generator, space: SearchSpace) -> Genome | None:
    """A rewrite's action: scale (multiplied by a log-normal factor, or redrawn), transform, opcode."""
    rewrites = [i for i, r in enumerate(genome.rules) if r.kind == "rewrite"]
    if not rewrites:
        return None
    i = int(_pick(rng, rewrites))
    rule = genome.rules[i]
    k = len(rule.pattern)
    updates = list(rule.updates) + [ItemUpdate()] * (k - len(rule.updates))
    e = int(rng.integers(k))
    up = updates[e]
    what = rng.random()
    if what < 0.55:
        if up.scale is not None and rng.random() < 0.8:
            scale = round(up.scale * math.exp(rng.normal(0.0, 0.35)))
        else:
            scale = random_scale(rng)
        up = replace(up, scale=scale if scale != Q16_ONE else None)
    elif what < 0.7 and space.n_transforms:
        mod = int(rng.integers(0, space.n_transforms + 1))
        up = replace(up, mod=None if mod == (up.mod or 0) and up.mod is not None else mod)
    elif what < 0.85:
        opcodes = _OPCODES if space.products else tuple(op for op in _OPCODES if op != Op.MUL)
        up = replace(up, opcode=None if up.opcode is not None and rng.random() < 0.5 else int(_pick(rng, opcodes)))
    else:
        up = ItemUpdate()  # the element keeps its items as they are
    updates[e] = up
    return _with_rule(genome, i, replace(rule, updates=tuple(updates)), space)


def mutate_score(genome: Genome, rng: np.random.Generator, space: SearchSpace) -> Genome | None:
    if not genome.rules:
        return None
    i = int(rng.integers(len(genome.rules)))
    rule = genome.rules[i]
    score = round(rule.score * math.exp(rng.normal(0.0, 0.4))) + int(rng.integers(-5, 6))
    return _with_rule(genome, i, replace(rule, score=score), space)


def mutate_shape(genome: Genome, rng: np.random.Generator, space: SearchSpace) -> Genome | None:
    """Add an element at a random place, or remove one (keeping the action's alignment)."""
    if not genome.rules:
        return None
    i = int(rng.integers(len(genome.rules)))
    rule = genome.rules[i]
    k = len(rule.pattern)
    updates = list(rule.updates) + [ItemUpdate()] * (k - len(rule.updates))
    if (rng.random() < 0.5 and k < DEFAULT_CAPACITIES.pattern) or k == 1:
        if k >= DEFAULT_CAPACITIES.pattern:
            return None
        e = int(rng.integers(k + 1))
        el = random_element(rng, space, e) if rule.kind != "merge" else PatternElement()
        pattern = rule.pattern[:e] + (el,) + rule.pattern[e:]
        updates.insert(e, ItemUpdate())
    else:
        e = int(rng.integers(k))
        pattern = rule.pattern[:e] + rule.pattern[e + 1 :]
        updates.pop(e)
    pattern = (replace(pattern[0], gap=0),) + pattern[1:]
    if rule.kind == "rewrite" and not any(u.changes for u in updates):
        return None  # the element that carried the action was removed
    return _with_rule(genome, i, replace(rule, pattern=pattern, updates=tuple(updates), perm=()), space)


def mutate_mark(genome: Genome, rng: np.random.Generator, space: SearchSpace) -> Genome | None:
    """Share a mark bit with another rule (they no longer rewrite each other's items) or take a free one."""
    if not genome.rules:
        return None
    i = int(rng.integers(len(genome.rules)))
    marks = [r.mark for r in genome.rules]
    mark = int(_pick(rng, marks)) if rng.random() < 0.5 and len(marks) > 1 else int(rng.integers(MARK_BITS))
    return _with_rule(genome, i, replace(genome.rules[i], mark=mark), space)


def mutate_params(genome: Genome, rng: np.random.Generator, space: SearchSpace) -> Genome | None:
    p = genome.params
    what = int(rng.integers(3))
    steps = DEFAULT_CAPACITIES.steps
    if what == 0:
        params = LoopParams(int(np.clip(p.max_steps + rng.integers(-8, 9), 1, steps)), p.tolerance, p.inhibit_steps)
    elif what == 1:
        tol = 0 if p.tolerance and rng.random() < 0.3 else round(_log_uniform(rng, 1, 1 << 20))
        params = LoopParams(p.max_steps, tol, p.inhibit_steps)
    else:
        params = LoopParams(p.max_steps, p.tolerance, int(rng.integers(0, 9)))
    return replace(genome, params=params)


def mutate_lexicon(genome: Genome, rng: np.random.Generator, space: SearchSpace) -> Genome | None:
    """Move the lexicon threshold: phrases with a bonus below it are left out."""
    if not space.bonus_levels:
        return None
    levels = (0,) + space.bonus_levels
    cur = max((j for j, b in enumerate(levels) if b <= genome.min_bonus), default=0)
    step = int(rng.choice([-2, -1, 1, 2]))
    return replace(genome, min_bonus=int(levels[int(np.clip(cur + step, 0, len(levels) - 1))]))


#: Mutation operators and how often each is drawn.
MUTATIONS: tuple[tuple[str, Operator, float], ...] = (
    ("add_rule", add_rule, 0.16),
    ("delete_rule", delete_rule, 0.12),
    ("mutate_element", mutate_element, 0.2),
    ("mutate_action", mutate_action, 0.2),
    ("mutate_score", mutate_score, 0.1),
    ("mutate_shape", mutate_shape, 0.08),
    ("mutate_mark", mutate_mark, 0.04),
    ("mutate_params", mutate_params, 0.05),
    ("mutate_lexicon", mutate_lexicon, 0.05),
)


def mutate(genome: Genome, rng: np.random.Generator, space: SearchSpace, tries: int = 10) -> tuple[Genome, str] | None:
    """One mutation drawn by weight; a different, normalized genome and the operator's name."""
    names = [m[0] for m in MUTATIONS]
    p = np.array([m[2] for m in MUTATIONS])
    p /= p.sum()
    base_key = normalized(genome).key
    for _ in range(tries):
        j = int(rng.choice(len(names), p=p))
        child = MUTATIONS[j][1](genome, rng, space)
        if child is None:
            continue
        child = normalized(child)
        if child.key != base_key:
            return child, names[j]
    return None


# -- crossover ---------------------------------------------------------------------------------


def interaction_components(keys: list[str], records: list[dict]) -> list[list[str]]:
    """Connected components of the rule-interaction graph over ``keys``.

    Two rules are linked when, in some parent's evaluation, committed rewrites of both
    fell within reach of each other in at least ``max(3, 5 %)`` of the texts the rarer
    of them fired in, or when one is a guard that the health check applied to the other.
    """
    parent = {k: k for k in keys}

    def find(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for rec in records:
        stats = rec.get("rule_stats", {})
        for ka, kb, _co, ov in rec.get("edges", []):
            if ka not in parent or kb not in parent:
                continue
            fires = min(stats.get(ka, [0, 0, 0])[2], stats.get(kb, [0, 0, 0])[2])
            if ov >= max(3, 0.05 * fires) or (ov and fires == 0):
                ra, rb = find(ka), find(kb)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = {}
    for k in sorted(keys):
        groups.setdefault(find(k), []).append(k)
    return [groups[r] for r in sorted(groups)]


def crossover(a: Genome, b: Genome, rec_a: dict, rec_b: dict, rng: np.random.Generator,
              space: SearchSpace, tries: int = 4) -> Genome | None:
    """A child taking each interaction component whole from one parent (loop parameters and
    lexicon threshold from either); None when every draw reproduces a parent."""
    rules_a = {rule_key(r): r for r in a.rules}
    rules_b = {rule_key(r): r for r in b.rules}
    keys = sorted(set(rules_a) | set(rules_b))
    comps = interaction_components(keys, [rec_a, rec_b])
    keys_a, keys_b = normalized(a).key, normalized(b).key
    for _ in range(tries):
        chosen: list[Rule] = []
        for comp in comps:
            side = rules_a if rng.random() < 0.5 else rules_b
            chosen += [side[k] for k in comp if k in side]
        params = a.params if rng.random() < 0.5 else b.params
        min_bonus = a.min_bonus if rng.random() < 0.5 else b.min_bonus
        child = normalized(Genome(tuple(chosen[: space.max_rules]), params, min_bonus))
        if child.key not in (keys_a, keys_b):
            return child
    return None


__all__ = [
    "MUTATIONS",
    "SearchSpace",
    "crossover",
    "interaction_components",
    "mutate",
    "random_rule",
    "repair",
]
