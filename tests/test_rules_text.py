import pytest
from hypothesis import given
from hypothesis import strategies as st
from tiny import default_rules

from sae.algorithm import ItemUpdate, PatternElement, Rule
from sae.errors import InputError
from sae.layout import ANY, Op
from sae.rules_text import format_rules, parse_rules


def test_default_rules_round_trip():
    assert parse_rules(format_rules(default_rules())) == default_rules()


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


elements = st.builds(
    PatternElement,
    gap=st.integers(0, 3),
    opcode=st.sampled_from([ANY, *map(int, Op)]),
    symbol=st.sampled_from([ANY, 0, 5, 123]),
    classes=st.lists(st.sampled_from(["a", "b", "c"]), max_size=2, unique=True).map(tuple),
)
updates = st.builds(
    ItemUpdate,
    opcode=st.none() | st.sampled_from(list(map(int, Op))),
    arg0=st.none() | st.integers(0, 99),
    arg1=st.none() | st.integers(-70000, 70000),
).filter(lambda u: u != ItemUpdate())


@st.composite
def rules(draw):
    pattern = tuple(draw(st.lists(elements, min_size=1, max_size=4)))
    pattern = (PatternElement(0, *[getattr(pattern[0], f) for f in ("opcode", "symbol", "classes")]),) + pattern[1:]
    k = len(pattern)
    perm = tuple(draw(st.permutations(range(k)))) if draw(st.booleans()) else ()
    ups = tuple(draw(st.lists(updates, max_size=k)))
    return Rule(draw(st.from_regex(r"[a-z_]{1,8}", fullmatch=True)), draw(st.integers(1, 32767)), pattern,
                "rewrite", perm, ups)


@given(st.lists(rules(), max_size=4))
def test_text_form_round_trips(rs):
    assert parse_rules(format_rules(rs)) == tuple(rs)
