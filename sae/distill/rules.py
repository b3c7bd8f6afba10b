"""The rules of the distilled default, in the readable text form (:mod:`sae.rules_text`).

Structure is written here; the continuous parts are fitted: the weight scales are
tuned on a train holdout, the transforms (``mod=N``) are fitted to the teacher by
:func:`sae.distill.fit.fit_transforms`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sae.algorithm import Rule
from sae.rules_text import parse_rules

MERGES = """
rule merge4 score 400: [op=ACC] [] [] [] => merge
rule merge3 score 300: [op=ACC] [] [] => merge
rule merge2 score 200: [op=ACC] [] => merge
"""

#: The names of the transforms (``Algorithm.transform_names``).
NEGATION_SCOPE, SUBJECT, OBJECT, PREPOSITION, CLAUSE = (
    "negation scope", "subject", "object", "prepositional phrase", "second clause")


@dataclass(frozen=True)
class RuleSettings:
    """The choices and tunable numbers of the default rules (a scale of 1.0 drops its rule).

    The defaults are the shipped recipe's; docs/DISTILLATION.md has the ablation of each.
    """

    merges: bool = False  #: multi-piece words merged into lexicon phrases (dropped: no gain, 30 % of anneal)
    num_scale: float = 3.0  #: any item with a digit
    stop_scale: float = 0.25  #: a stopword (not an auxiliary) right before a content word
    punct_scale: float = 0.5  #: punctuation right after a content word
    negation: bool = True  #: the negation-scope transform
    negation_span: int = 8  #: the most items after the negation that its scope takes
    object: bool = True  #: the object transform (the words after "auxiliary verb")
    subject: bool = True  #: the subject transform (the words from the start up to an auxiliary)
    plain_roles: bool = True  #: subject and object transforms in "DET words DET words" (no auxiliary)
    preposition: bool = True  #: the prepositional-phrase transform (the words after a preposition)
    clause: bool = True  #: the second-clause transform (the words after a conjunction)

    def transform_names(self) -> tuple[str, ...]:
        """The transforms :func:`default_rules` applies, by index from 1 (an Algorithm
        carries exactly the transforms its rules use)."""
        on = ((NEGATION_SCOPE, self.negation), (SUBJECT, self.subject), (OBJECT, self.object),
              (PREPOSITION, self.preposition), (CLAUSE, self.clause))
        return tuple(name for name, used in on if used)


def default_rules(s: RuleSettings = RuleSettings()) -> tuple[Rule, ...]:
    """Merges, context-dependent reweighting, and the transforms of negation scope and roles."""
    text = MERGES if s.merges else ""
    if s.num_scale != 1.0:
        text += f"rule boost_number score 50: [op=ACC num] => set 0 scale={s.num_scale}\n"
    if s.stop_scale != 1.0:
        text += f"rule soften_stop_before_word score 50: [op=ACC stop !aux] [word] => set 0 scale={s.stop_scale}\n"
    if s.punct_scale != 1.0:
        text += f"rule soften_punct_after_word score 50: [word] [op=ACC punct] => set 1 scale={s.punct_scale}\n"
    mod = {name: i + 1 for i, name in enumerate(s.transform_names())}
    if s.negation:
        # Everything after a negation up to punctuation or a conjunction.
        text += f"rule negation_scope score 60: [neg] [!punct !conj]+{s.negation_span} => set 1 mod={mod[NEGATION_SCOPE]}\n"
    if s.subject:
        # The words from the start of the text up to an auxiliary. Anchored at the start,
        # the rule is matched at one position per text, not at every one.
        subj = "!aux !punct !neg !conj mod=0"
        text += (f"rule subject score 40: [^ {subj}] [{subj}]+5 [aux] => set 0 mod={mod[SUBJECT]}; "
                 f"set 1 mod={mod[SUBJECT]}\n")
        text += f"rule subject_word score 40: [^ {subj}] [aux] => set 0 mod={mod[SUBJECT]}\n"
    if s.object:
        # The words after "auxiliary verb", up to punctuation.
        text += f"rule object score 40: [aux] [word] [!punct !conj !neg mod=0]+6 => set 2 mod={mod[OBJECT]}\n"
    if s.plain_roles and s.subject and s.object:
        # "A woman peels a potato.": no auxiliary ends the subject; the object's determiner
        # does. The subject (the verb among its words) and the object go through the
        # transforms they take after an auxiliary; anchored at the start.
        text += (f"rule plain_roles score 40: [^ det] [word cont mod=0]+4 [det] [word cont mod=0]+5 => "
                 f"set 0 mod={mod[SUBJECT]}; set 1 mod={mod[SUBJECT]}; set 2 mod={mod[OBJECT]}; "
                 f"set 3 mod={mod[OBJECT]}\n")
    if s.preposition:
        # The words after a preposition, up to punctuation.
        text += (f"rule preposition score 35: [prep] [!punct !conj !neg !prep mod=0]+4 => "
                 f"set 1 mod={mod[PREPOSITION]}\n")
    if s.clause:
        # The words after a conjunction, up to punctuation.
        text += f"rule clause score 30: [conj] [!punct !conj !neg mod=0]+6 => set 1 mod={mod[CLAUSE]}\n"
    return parse_rules(text, source="sae.distill.rules")


def finishing_rules(not_scale: float, token_to_id: Callable[[str], int | None]) -> tuple[Rule, ...]:
    """The rules the recipe appends after the search, before the output map.

    ``soften_not``: "not" after an auxiliary other than "does" and before anything but a
    verb ("is not ready", "is not all his fault") weighs ``not_scale``. Such sentences are
    mostly opinions, which the teacher barely moves when negated. Measured on the train
    holdout the rule helps, but by about 2e-4 of the search's quality, below what its
    selection resolves, so the search is not asked to keep it (docs/DISTILLATION.md,
    "The finishing rule (after the search)"). Empty when ``not_scale`` is 1 or the tokenizer lacks the words.
    """
    if not_scale == 1.0 or token_to_id("not") is None or token_to_id("does") is None:
        return ()
    # Last, after the search's rules, so that their mark bits stay as they are.
    text = (f'rule soften_not score 70: [aux !sym="does"] [sym="not" op=ACC] [!ing !ed !aux !punct !conj] '
            f"=> set 1 scale={not_scale}\n")
    return parse_rules(text, token_to_id, source="sae.distill.rules")


def merge_rules() -> tuple[Rule, ...]:
    return parse_rules(MERGES, source="sae.distill.rules")


def transforms_used(rules: tuple[Rule, ...]) -> int:
    """The largest transform index the rules set (the number of transforms to fit)."""
    return max((up.mod or 0 for rule in rules for up in rule.updates), default=0)
