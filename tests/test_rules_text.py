import re

import pytest
from hypothesis import given, settings
from strategies import algorithms
from tiny import default_rules

from sae.algorithm import ItemUpdate
from sae.errors import InputError
from sae.layout import Op
from sae.rules_text import format_rules, parse_rules


def test_default_rules_round_trip():
    assert parse_rules(format_rules(default_rules())) == default_rules()
    assert "[^" not in format_rules(default_rules())


def test_tokens_resolve_through_the_vocabulary():
    vocab = {"not": 7}
    (rule,) = parse_rules('rule n score 5: [sym="not"] ~1 [word] => set 1 op=NOP', vocab.get)
    assert rule.pattern[0].symbol == 7 and rule.pattern[1].gap == 1
    assert rule.updates == (ItemUpdate(), ItemUpdate(opcode=int(Op.NOP)))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("merge everything", "expected 'rule NAME"),
        ("rule a score 1: [op=JUMP] => keep", "unknown opcode"),
        ("rule a score 1: [x] => set 3 op=NOP", "set 3: the pattern has 1 elements"),
        ('rule a score 1: [sym="zzz"] => keep', 'token "zzz" is not in the vocabulary'),
        ("rule a score 1: [x] => explode", "unknown action"),
        ("rule a score 1: junk [x] => keep", "unexpected 'junk'"),
    ],
)
def test_errors_name_the_line(line, reason):
    with pytest.raises(InputError, match=f"rules.txt: line 2: {reason}"):
        parse_rules("# header\n" + line, {"not": 1}.get, source="rules.txt")


@settings(max_examples=150)
@given(algorithms())
def test_text_form_round_trips_every_feature(alg):
    """format → parse keeps every rule's meaning: the compiled tables are identical."""
    from dataclasses import replace

    text = format_rules(alg.rules)
    again = replace(alg, rules=parse_rules(text))
    assert again.compile_rules().tobytes() == alg.compile_rules().tobytes()
    assert format_rules(again.rules) == text


def test_hash_inside_quotes_is_not_a_comment():
    vocab = {"##ing": 33, "#": 3}
    (rule,) = parse_rules('rule r score 5: [sym="##ing"] [sym="#"] => keep  # a comment', vocab.get)
    assert [el.symbol for el in rule.pattern] == [33, 3]
    assert format_rules((rule,), {33: "##ing", 3: "#"}.get).startswith('rule r score 5: [sym="##ing"] [sym="#"]')


def test_version_2_terms_parse():
    (rule,) = parse_rules('rule r score 9 mark 7: [^ word &stop !neg op=ACC] ~2 [!sym=5 mod=1]+4 [$] '
                          "=> set 0 scale=0.25 arg1=3; set 1 mod=2")
    first, second, third = rule.pattern
    assert rule.mark == 7
    assert (first.at_start, first.classes, first.all_classes, first.none_classes) == (True, ("word",), ("stop",),
                                                                                      ("neg",))
    assert (second.gap, second.run, second.symbol, second.not_symbol, second.mod) == (2, 4, 5, True, 1)
    assert third.at_end
    assert rule.updates[0].scale == 16384 and rule.updates[0].arg1 == 3 and rule.updates[1].mod == 2
    (guard,) = parse_rules("rule g score 3: [op=PUSH] [op=PUSH] => guard")
    assert guard.kind == "guard"


@pytest.mark.parametrize(("line", "reason"), [
    ("rule a score 1: [x] => set 0 scale=fast", "scale takes a number"),
    ("rule a score 1: [mod=x] => keep", "mod= takes a number"),
    ('rule a score 1: [sym=1 "y"] => keep', "unknown term"),
])
def test_version_2_errors_name_the_line(line, reason):
    with pytest.raises(InputError, match=f"rules.txt: line 1: {reason}"):
        parse_rules(line, source="rules.txt")


@pytest.mark.parametrize("name", ["^", "$", "&x", "!x", "op=ACC", "a b", "x]", "#c", 'q"'])
def test_a_class_name_the_text_form_cannot_hold_is_refused_not_misread(name):
    """A class named "^" was written as the start anchor and read back as one (a different
    rule, no error); "x]" and "#c" wrote text that did not parse."""
    from dataclasses import replace

    rule = default_rules()[2]  # negate: [neg] ~2 [word]
    renamed = replace(rule, pattern=(replace(rule.pattern[0], classes=(name,)), *rule.pattern[1:]))
    with pytest.raises(ValueError, match=f"names the class {re.escape(repr(name))}, which the text form cannot hold"):
        format_rules((renamed,))
