"""The per-item VM contributions add up to the engine's embedding (docs/ENGINE.md §5)."""

from __future__ import annotations

import numpy as np
import pytest
from viewer_helpers import TEXT

from sae import Engine
from sae.layout import PROGRAM_ITEM, Q16_ONE, Op
from sae.viewer.vm import vm_contributions


@pytest.mark.parametrize("text", [TEXT, "the dog is not happy !", "not not not happy , not big cat", "a"])
def test_parts_sum_to_the_embedding(view_alg, text):
    engine = Engine(view_alg, backend="cpu", batch_size=1)
    x = engine.explain(text)
    c = vm_contributions(x.final, view_alg, engine.caps.stack)
    np.testing.assert_allclose(c.embedding, x.embedding, atol=1e-5)
    np.testing.assert_allclose(c.part.sum(axis=0), c.acc, atol=1e-9)
    assert c.share(x.embedding).sum() == pytest.approx(1.0, abs=1e-5)
    other = engine.explain("a cat eats food").embedding
    assert c.share(other).sum() == pytest.approx(float(x.embedding @ other), abs=1e-5)


def _program(ops: list[int]) -> np.ndarray:
    items = np.zeros(len(ops), dtype=PROGRAM_ITEM)
    items["symbol"] = items["arg0"] = np.arange(len(ops)) + 4
    items["arg1"] = Q16_ONE
    items["opcode"] = ops
    return items


def test_stack_opcodes_and_their_fallbacks(view_alg):
    ops = [Op.MUL, Op.PUSH, Op.ADD, Op.MUL, Op.EMIT, Op.EMIT, Op.PUSH, Op.NOP]
    c = vm_contributions(_program([int(o) for o in ops]), view_alg, stack_depth=8)
    assert c.effect == ["acc += v (stack empty)", "push v", "top += v", "top *= v", "acc += pop + v",
                        "acc += v (stack empty)", "push v", "nop"]
    assert c.depth.tolist() == [0, 1, 1, 1, 0, 0, 1, 1]
    assert not c.part[7].any()  # a NOP adds nothing
    v = c.vector
    top = (v[1] + v[2]) * v[3]
    expected = v[0] + top + v[4] + v[5] + v[6]
    np.testing.assert_allclose(c.acc, expected, atol=1e-12)
    full = vm_contributions(_program([int(Op.PUSH)] * 3), view_alg, stack_depth=2)
    assert full.effect[2] == "acc += v (stack full)"
