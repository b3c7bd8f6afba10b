"""The rules of the distilled default, in the readable text form (:mod:`sae.rules_text`).

Structure is written here; the continuous parts are fitted: the weight scales are
tuned on a train holdout, the transforms (``mod=N``) are fitted to the teacher by
:func:`sae.distill.fit.fit_transforms`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sae.algorithm import Rule
from sae.rules_text import parse_rules

#: Transforms the default rules apply (``mod`` values).
NEGATION_SCOPE, SUBJECT, OBJECT, NEGATED_CLAUSE, NEGATED_HEAD, NUMBER = 1, 2, 3, 4, 5, 6
TRANSFORM_NAMES = {NEGATION_SCOPE: "negation scope", SUBJECT: "subject", OBJECT: "object",
                   NEGATED_CLAUSE: "words before a negation", NEGATED_HEAD: "the word a negation governs",
                   NUMBER: "numbers"}

MERGES = """
rule merge4 score 400: [op=ACC] [] [] [] => merge
rule merge3 score 300: [op=ACC] [] [] => merge
rule merge2 score 200: [op=ACC] [] => merge
"""


@dataclass(frozen=True)
class RuleSettings:
    """The tunable numbers of the default rules (weight factors; 1.0 drops the rule)."""

    merges: bool = True  #: multi-piece words merged into lexicon phrases
    subject: bool = True  #: the subject transform (with roles)
    num_scale: float = 3.0  #: any item with a digit
    stop_scale: float = 0.25  #: a stopword right before a content word
    punct_scale: float = 0.5  #: punctuation right after a content word
    negation: bool = True  #: the negation-scope transform
    negated_clause: bool = False  #: a transform of the words before a negation
    negation_to_ends: bool = False  #: both reach the ends of the text, not the clause
    negated_head: bool = False  #: the word right after a negation gets a transform of its own
    roles: bool = True  #: the subject and object transforms
    role_heads: bool = False  #: roles on the head words only (no runs)
    soften_aux: bool = False  #: whether auxiliaries are stopwords the softening applies to
    number_mod: int = 0  #: the transform numbers get (0 none)
    object_aux_scale: float = 1.0  #: the object rule also scales the auxiliary it starts at
    prep_scale: float = 1.0  #: prepositions
    punct_everywhere: bool = False  #: punctuation softened wherever it is, not only after a word


def default_rules(s: RuleSettings = RuleSettings()) -> tuple[Rule, ...]:
    """Merges, context-dependent reweighting, and the transforms of negation scope and roles."""
    text = MERGES if s.merges else ""
    if s.num_scale != 1.0 or s.number_mod:
        mod = f" mod={s.number_mod}" if s.number_mod else ""
        text += f"rule boost_number score 50: [op=ACC num] => set 0 scale={s.num_scale}{mod}\n"
    if s.stop_scale != 1.0:
        stop = "stop" if s.soften_aux else "stop !aux"
        text += f"rule soften_stop_before_word score 50: [op=ACC {stop}] [word] => set 0 scale={s.stop_scale}\n"
    if s.punct_scale != 1.0 and s.punct_everywhere:
        text += f"rule soften_punct score 50: [op=ACC punct] => set 0 scale={s.punct_scale}\n"
    elif s.punct_scale != 1.0:
        text += f"rule soften_punct_after_word score 50: [word] [op=ACC punct] => set 1 scale={s.punct_scale}\n"
    if s.prep_scale != 1.0:
        text += f"rule soften_prep score 50: [op=ACC prep] => set 0 scale={s.prep_scale}\n"
    if s.negation and s.negated_head:
        # The word a negation governs, then the rest of its scope.
        text += (f"rule negation_scope score 61: [neg] [!punct !conj] [!punct !conj]+7 "
                 f"=> set 1 mod={NEGATED_HEAD}; set 2 mod={NEGATION_SCOPE}\n")
        text += f"rule negation_head score 60: [neg] [!punct !conj] => set 1 mod={NEGATED_HEAD}\n"
    elif s.negation and not s.negation_to_ends:
        # Everything after a negation up to punctuation or a conjunction.
        text += f"rule negation_scope score 60: [neg] [!punct !conj]+8 => set 1 mod={NEGATION_SCOPE}\n"
    if s.negated_clause and not s.negation_to_ends:
        text += f"rule negated_clause score 55: [!punct !conj !neg mod=0]+8 [neg] => set 0 mod={NEGATED_CLAUSE}\n"
    if s.negation_to_ends:
        # Every item after a negation, and every item before it: runs of 8, extended step by step.
        text += f"rule negation_scope score 60: [neg] [!neg mod=0]+8 => set 1 mod={NEGATION_SCOPE}\n"
        text += f"rule negation_scope_on score 59: [mod={NEGATION_SCOPE}] [mod=0]+8 => set 1 mod={NEGATION_SCOPE}\n"
        if s.negated_clause:
            text += f"rule negated_clause score 58: [!neg mod=0]+8 [neg] => set 0 mod={NEGATED_CLAUSE}\n"
            text += (f"rule negated_clause_on score 57: [mod=0]+8 [mod={NEGATED_CLAUSE}] "
                     f"=> set 0 mod={NEGATED_CLAUSE}\n")
    if s.roles:
        # The words before an auxiliary (the leftmost run wins), and those after
        # "auxiliary verb" up to punctuation.
        if s.role_heads:
            text += f"rule subject score 40: [word mod=0] [aux] => set 0 mod={SUBJECT}\n"
            text += f"rule object score 40: [aux] [word] ~2 [word mod=0] => set 2 mod={OBJECT}\n"
        else:
            if s.subject:
                text += f"rule subject score 40: [!aux !punct !neg !conj mod=0]+6 [aux] => set 0 mod={SUBJECT}\n"
            aux = f"set 0 scale={s.object_aux_scale}; " if s.object_aux_scale != 1.0 else ""
            text += f"rule object score 40: [aux] [word] [!punct !conj !neg mod=0]+6 => {aux}set 2 mod={OBJECT}\n"
    return parse_rules(text, source="sae.distill.rules")


def merge_rules() -> tuple[Rule, ...]:
    return parse_rules(MERGES, source="sae.distill.rules")


def transforms_used(rules: tuple[Rule, ...]) -> int:
    """The largest transform index the rules set (the number of transforms to fit)."""
    return max((up.mod or 0 for rule in rules for up in rule.updates), default=0)
