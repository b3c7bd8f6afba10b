"""The reference's Semantic Forth VM (docs/ENGINE.md §5), against sums written out in float64."""

from __future__ import annotations

import numpy as np
import pytest
from tiny import ids, make_tiny

from sae import reference as ref
from sae.layout import DEFAULT_CAPACITIES, Capacities, Op

CAPS = DEFAULT_CAPACITIES
ALG = make_tiny(rules=(), dim=8, transforms=2)


def v(x: ref.Item) -> np.ndarray:
    """``w * x`` of one item in float64."""
    w = float(ALG.weights[x.arg0]) * x.arg1 / 65536
    vec = ALG.vectors[x.arg0].astype(np.float64)
    if x.mod:
        t = ALG.transforms[x.mod - 1].astype(np.float64)
        vec = t[:, :-1] @ vec + t[:, -1]
    return w * vec


def unit(acc: np.ndarray) -> np.ndarray:
    return acc / np.linalg.norm(acc)


def program(words: str, ops: list[Op], **fields) -> list[ref.Item]:
    stream = ref.widen(ids(words), ALG)
    for x, op in zip(stream, ops):
        x.opcode = int(op)
    for name, values in fields.items():
        for x, value in zip(stream, values):
            setattr(x, name, value)
    return stream


def vm(stream, caps: Capacities = CAPS) -> np.ndarray:
    out = ref.run_vm(ALG, caps, stream)
    assert out.dtype == np.float32 and out.shape == (ALG.dim,)
    return out


def close(got: np.ndarray, want: np.ndarray) -> bool:
    return np.abs(got - want).max() <= 1e-6


def test_acc_is_the_normalized_weighted_sum():
    s = program("cat dog big", [Op.ACC] * 3, arg1=[65536, 32768, -98304])
    assert close(vm(s), unit(v(s[0]) + v(s[1]) + v(s[2])))


def test_nop_is_silent_and_silence_is_the_zero_vector():
    s = program("cat dog big", [Op.ACC, Op.NOP, Op.ACC])
    assert close(vm(s), unit(v(s[0]) + v(s[2])))
    assert not vm(program("cat dog", [Op.NOP, Op.NOP])).any()
    assert not vm([]).any()
    assert not vm(program("cat", [Op.ACC], arg1=[0])).any()


def test_a_transform_maps_the_vector_before_the_weight():
    s = program("cat dog big", [Op.ACC] * 3, mod=[1, 0, 2], arg1=[65536, 65536, 16384])
    assert close(vm(s), unit(v(s[0]) + v(s[1]) + v(s[2])))
    t = ALG.transforms[0].astype(np.float64)
    by_hand = float(ALG.weights[s[0].arg0]) * (t[:, :8] @ ALG.vectors[s[0].arg0] + t[:, 8])
    assert close(vm(s[:1]), unit(by_hand))


def test_arg0_picks_the_row():
    s = program("cat", [Op.ACC], arg0=[ids("dog")[0]])
    assert close(vm(s), unit(v(s[0])))
    assert close(vm(s), vm(program("dog", [Op.ACC])))


def test_push_mul_emit():
    s = program("cat dog big red", [Op.PUSH, Op.MUL, Op.EMIT, Op.ACC])
    a, b, c, d = (v(x) for x in s)
    assert close(vm(s), unit(a * b + c + d))


def test_push_add_and_what_is_left_on_the_stack():
    s = program("cat dog big red", [Op.PUSH, Op.ADD, Op.PUSH, Op.MUL])
    a, b, c, d = (v(x) for x in s)
    assert close(vm(s), unit((a + b) + c * d))  # the stack is added bottom to top at the end


def test_stack_opcodes_act_as_acc_on_an_empty_stack():
    for op in (Op.ADD, Op.MUL, Op.EMIT):
        s = program("cat dog", [op, Op.ACC])
        assert close(vm(s), unit(v(s[0]) + v(s[1])))


def test_push_acts_as_acc_on_a_full_stack():
    s = program("cat dog big red", [Op.PUSH, Op.PUSH, Op.PUSH, Op.MUL])
    a, b, c, d = (v(x) for x in s)
    assert close(vm(s, Capacities(stack=2)), unit(a + b * d + c))
    assert close(vm(s, CAPS), unit(a + b + c * d))


def test_emit_pops_only_the_top():
    s = program("cat dog big red", [Op.PUSH, Op.PUSH, Op.EMIT, Op.MUL])
    a, b, c, d = (v(x) for x in s)
    assert close(vm(s), unit(b + c + a * d))


def test_an_unknown_opcode_is_refused():
    s = program("cat", [Op.ACC])
    s[0].opcode = 9
    with pytest.raises(ValueError, match="opcode"):
        vm(s)


def test_execute_runs_the_vm_per_document():
    from sae.batch import ProgramBatch

    batch = ProgramBatch(3, CAPS)
    batch.widen([ids("cat dog"), [], ids("big")], ALG.symbol_rows)
    out = ref.ReferenceBackend(ALG, CAPS).execute(batch)
    assert out.shape == (3, ALG.dim) and out.dtype == np.float32
    assert close(out[0], unit(v(ref.widen(ids("cat"), ALG)[0]) + v(ref.widen(ids("dog"), ALG)[0])))
    assert not out[1].any()
    assert abs(np.linalg.norm(out[2]) - 1) < 1e-6
