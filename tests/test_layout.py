import re

import numpy as np

from sae.layout import (
    DEFAULT_CAPACITIES,
    JOURNAL_ENTRY,
    JOURNAL_ENTRY_FIELDS,
    PROGRAM_ITEM,
    PROGRAM_ITEM_FIELDS,
    SCORE_MAX,
    Capacities,
    F,
    Op,
    item_words,
    rule_record,
    rule_record_fields,
    wgsl_name,
    wgsl_prelude,
)


def test_program_item_is_36_bytes_of_4_byte_words():
    assert PROGRAM_ITEM.itemsize == 36
    for i, name in enumerate(PROGRAM_ITEM.names):
        assert PROGRAM_ITEM.fields[name][1] == 4 * i
        assert F[name.upper()] == i


def test_rule_record_offsets_are_contiguous():
    dt = rule_record()
    offset = 0
    for name, _, _, count, _ in rule_record_fields():
        assert dt.fields[name][1] == offset
        offset += 4 * count
    assert dt.itemsize == offset


def _struct_members(prelude: str, name: str) -> list[tuple[str, str]]:
    body = re.search(rf"struct {name} \{{(.*?)\}};", prelude, re.S).group(1)
    return re.findall(r"^\s*(\w+): ([\w<>, ]+),", body, re.M)


def test_prelude_structs_follow_the_numpy_definitions():
    prelude = wgsl_prelude()
    assert _struct_members(prelude, "ProgramItem") == [(wgsl_name(f[0]), f[2]) for f in PROGRAM_ITEM_FIELDS]
    assert _struct_members(prelude, "JournalEntry") == [(wgsl_name(f[0]), f[2]) for f in JOURNAL_ENTRY_FIELDS]
    expected = [(wgsl_name(f[0]), f[2] if f[3] == 1 else f"array<{f[2]}, {f[3]}>") for f in rule_record_fields()]
    assert _struct_members(prelude, "Rule") == expected
    for op in Op:
        assert f"const OP_{op.name}: u32 = {int(op)}u;" in prelude
    assert f"const CAP_STREAM: u32 = {DEFAULT_CAPACITIES.stream}u;" in prelude


def test_item_words_is_a_view():
    items = np.zeros(3, PROGRAM_ITEM)
    words = item_words(items)
    words[1, F.ARG1] = 7
    assert items[1]["arg1"] == 7
    assert JOURNAL_ENTRY.itemsize == 32


def test_capacities_reject_limits_the_key_cannot_hold():
    import pytest

    assert Capacities(rules=256).keys.tie_bits == 15  # the default: 7 anchor bits, 8 rule bits
    with pytest.raises(ValueError, match="key bits"):
        Capacities(stream=2048, rules=256)
    with pytest.raises(ValueError, match="rules"):
        Capacities(rules=1024)  # the potential would overflow int32
    with pytest.raises(ValueError, match="stream"):
        Capacities(stream=4096)


def test_bid_keys_order_score_then_anchor_then_rule():
    keys = Capacities().keys
    assert keys.pack(5, 0, 0) > keys.pack(4, 0, 0)
    assert keys.pack(5, 0, 9) > keys.pack(5, 1, 0)
    assert keys.pack(5, 3, 1) > keys.pack(5, 3, 2)
    assert keys.pack(1, 127, 255) > 0  # no bid is key 0
    score = np.array([1, 300, SCORE_MAX])
    anchor, rule = np.array([0, 64, 127]), np.array([255, 3, 0])
    assert [a.tolist() for a in keys.unpack(keys.pack(score, anchor, rule))] == [
        score.tolist(), anchor.tolist(), rule.tolist()]
    assert keys.pack(SCORE_MAX, 0, 0) < 2**32
