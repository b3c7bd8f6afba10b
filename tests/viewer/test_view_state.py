"""Keys, clicks and ``--keys`` scripts move the view as documented."""

from __future__ import annotations

import pytest

from sae.errors import InputError
from sae.viewer.state import KEYS, ZOOM_LEVELS, ViewState, parse_keys


def test_parse_keys_accepts_names_aliases_and_pointer_inputs():
    inputs = parse_keys("right Right space ? plus n click:10,20.5 wheel:0,-3")
    assert [i.name for i in inputs if i.kind == "key"] == ["right", "right", "space", "?", "+", "n"]
    assert (inputs[-2].kind, inputs[-2].x, inputs[-2].y) == ("click", 10.0, 20.5)
    assert (inputs[-1].kind, inputs[-1].y) == ("wheel", -3.0)
    assert parse_keys("") == []


@pytest.mark.parametrize(("script", "message"), [("right jump", "unknown key 'jump'"),
                                                 ("click:1", "expected click:X,Y"), ("wheel:a,b", "wheel:X,Y")])
def test_parse_keys_rejects_bad_input(script, message):
    with pytest.raises(InputError, match=message):
        parse_keys(script)


def test_steps_stay_in_bounds():
    s = ViewState(n_steps=3)
    for name, step in [("left", 0), ("right", 1), ("space", 2), ("right", 3), ("right", 3), ("home", 0),
                       ("end", 3), ("backspace", 2)]:
        s.key(name)
        assert s.step == step


def test_item_selection_follows_positions():
    s = ViewState(n_steps=2)
    row = [0, 1, 4, 5]  # original positions: items 1..3 merged into one at position 1
    s.key("n", row)
    assert s.item == 0
    s.key("n", row)
    s.key("n", row)
    assert s.item == 4
    s.item = 2  # a position inside the merged item: n moves on from the covering item
    s.key("n", row)
    assert s.item == 4
    s.key("p", row)
    s.key("p", row)
    assert s.item == 0
    s.key("escape")
    assert s.item is None and not s.quit
    s.key("escape")
    assert s.quit


def test_zoom_help_texts_and_compare():
    s = ViewState(n_texts=3)
    for _ in range(20):
        s.key("+")
    assert s.cell_width == ZOOM_LEVELS[-1]
    for _ in range(20):
        s.key("-")
    assert s.cell_width == ZOOM_LEVELS[0]
    s.key("?")
    assert s.help
    s.key("down")
    s.key("c")
    assert s.partner == 1
    s.key("down")
    s.step = 2
    s.key("tab")
    assert (s.text, s.partner, s.step) == (1, 2, 0)
    s.key("up")
    s.key("up")
    assert s.text == 0
    assert set(KEYS) >= {"right", "left", "home", "end", "?"}
