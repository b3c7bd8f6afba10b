"""Snapshots of ProgramStream states for hand-written rules.

The expected states live in tests/snapshots/*.txt, one line per item. After an
intended change of behaviour, regenerate them with SAE_UPDATE_SNAPSHOTS=1 and
review the diff like code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny import make_tiny, phrase_symbol

from sae.algorithm import LoopParams
from sae.engine import Engine
from sae.layout import Op
from sae.rules_text import parse_rules

SNAPSHOTS = Path(__file__).parent.parent / "snapshots"

# name: (rules in the text form or None for tests/tiny.py's, health tolerance, text)
CASES = {
    "merge_phrases": ("rule m3 score 300: [word] [] [] => merge\nrule m2 score 200: [word] [] => merge",
                      1000, "new york city players runs playing"),
    # The longer merge wins and commits: the shorter one it beat is not lost opportunity.
    "merge_beats_its_alternative": ("rule m3 score 300: [word] [] [] => merge\nrule m2 score 200: [word] [] => merge",
                                    0, "new york city players"),
    # A guard: merging "play ##ing" right after "not" would create the guarded pattern,
    # so that merge is reverted (and its rule inhibited); elsewhere it commits.
    "guard_reverts_a_merge": ("rule m2 score 200: [word] [] => merge\n"
                              f"rule no_merged_after_not score 400: [neg] [sym={phrase_symbol('play', '##ing')}] => guard",
                              0, "not playing , playing"),
    "negation_stack": ("rule neg score 150: [neg] ~2 [word] => set 0 op=PUSH; set 1 op=MUL",
                       0, "the cat is not very happy , not sad"),
    # A run: the words after "not" up to punctuation get transform 1; stopwords keep theirs.
    "negation_scope_run": ("rule scope score 90: [neg] [!punct]+6 => set 1 mod=1\n"
                           "rule soften score 40: [stop] [word] => set 0 scale=0.25",
                           0, "the cat is not very happy , the dog is"),
    "swap_and_silence": ("rule swap score 20: [word] [word] => perm 1 0\n"
                         "rule quiet score 30: [punct] => set 0 op=NOP",
                         100, "big red house ! small blue dog ."),
    # Anchors and composed relative weights: a rule never rewrites an item twice.
    "anchors_and_scales": ("rule first score 60: [^ stop] => set 0 scale=0.5\n"
                           "rule last score 50: [punct $] => set 0 scale=0\n"
                           "rule before_word score 40: [stop] [word !neg] => set 0 scale=0.5",
                           0, "the big dog and the cat ."),
    "tiny_default": (None, 0, "The new york city players runs, not very big!"),
}


def render(engine: Engine, text: str) -> str:
    x = engine.explain(text)
    lines = [f"text: {text}", "journal:"]
    for j in x.journal:
        outcome = "commit" if j["outcome"] == 1 else "revert"
        lines.append(f"  step {j['step']} rank {j['rank']} {x.rule_names[j['rule']]}@{j['pos']} "
                     f"score {j['score']} potential {j['potential_before']}->{j['potential_after']} {outcome}")
    lines.append("final:")
    for item, name in zip(x.final, x.symbols):
        lines.append(f"  {name:<14} pos {item['pos']:>2} span {item['span']} {Op(int(item['opcode'])).name:<4} "
                     f"arg0 {item['arg0']:>3} arg1 {item['arg1']:>6} mod {item['mod']} marks {item['marks']:#x}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("case", sorted(CASES))
def test_stream_snapshot(case):
    rules_text, tolerance, text = CASES[case]
    params = LoopParams(max_steps=16, tolerance=tolerance, inhibit_steps=2)
    rules = None if rules_text is None else parse_rules(rules_text)
    alg = make_tiny(rules=rules, params=params, transforms=1)
    got = render(Engine(alg, backend="cpu"), text)
    path = SNAPSHOTS / f"{case}.txt"
    if os.environ.get("SAE_UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.write_text(got)
        if os.environ.get("CI"):
            pytest.fail(f"snapshot {path.name} was missing in CI")
    assert got == path.read_text()
