"""The numpy VM against a scalar reference written straight from docs/ENGINE.md §5."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sae.cpu.vm import run_vm
from sae.layout import ITEM_WORDS, F, Op
from sae.vector_table import VectorTable

DEPTH = 3


def scalar_vm(ops, rows, arg1, mods, vectors, weights, transforms):
    acc = np.zeros(vectors.shape[1], np.float32)
    stack = []
    for op, row, a1, mod in zip(ops, rows, arg1, mods):
        w = np.float32(weights[row] * np.float32(np.float32(a1) * np.float32(1 / 65536)))
        x = vectors[row]
        if mod:
            x = (transforms[mod - 1, :, :-1] @ x + transforms[mod - 1, :, -1]).astype(np.float32)
        v = (w * x).astype(np.float32)
        if op == Op.NOP:
            continue
        if op == Op.PUSH and len(stack) < DEPTH:
            stack.append(v)
        elif op == Op.ADD and stack:
            stack[-1] = stack[-1] + v
        elif op == Op.MUL and stack:
            stack[-1] = stack[-1] * v
        elif op == Op.EMIT and stack:
            acc = acc + (stack.pop() + v)
        else:
            acc = acc + v
    for s in stack:
        acc = acc + s
    norm = np.sqrt(np.float32((acc * acc).sum()))
    return acc / norm if norm > 0 else np.zeros_like(acc)


def _words(programs):
    """``(D, L, ITEM_WORDS)`` items and lengths of programs of (opcode, row, arg1, mod)."""
    length = max(len(p) for p in programs) or 1
    words = np.zeros((len(programs), length, ITEM_WORDS), np.uint32)
    for d, prog in enumerate(programs):
        for i, (op, row, a1, mod) in enumerate(prog):
            words[d, i, F.OPCODE] = int(op)
            words[d, i, F.ARG0] = row
            words[d, i, F.ARG1] = np.int32(a1).view(np.uint32)
            words[d, i, F.MOD] = mod
    return words, np.array([len(p) for p in programs], np.uint32)


@settings(max_examples=80)
@given(st.lists(st.lists(st.tuples(st.sampled_from(list(Op)), st.integers(0, 5),
                                   st.integers(-131072, 131072), st.integers(0, 2)), max_size=10),
                min_size=1, max_size=5))
def test_vm_matches_the_scalar_reference(programs):
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((6, 4)).astype(np.float32)
    weights = rng.uniform(0.2, 2, 6).astype(np.float32)
    transforms = rng.standard_normal((2, 4, 5)).astype(np.float32)
    got = run_vm(*_words(programs), VectorTable(vectors, transforms), weights, DEPTH)
    for d, prog in enumerate(programs):
        ops, rows, a1, mods = zip(*prog) if prog else ((), (), (), ())
        want = scalar_vm(ops, rows, a1, mods, vectors, weights, transforms)
        np.testing.assert_allclose(got[d], want, atol=1e-5)


@settings(max_examples=60)
@given(st.lists(st.lists(st.tuples(st.sampled_from([Op.ACC, Op.ACC, Op.NOP, Op.PUSH, Op.ADD, Op.MUL, Op.EMIT]),
                                   st.integers(0, 5), st.integers(-131072, 131072), st.integers(0, 2)),
                         max_size=30),
                min_size=2, max_size=6))
def test_a_program_embeds_to_the_same_bytes_alone_and_in_any_batch(programs):
    """Programs that push and programs that only accumulate take different paths (the
    latter a block of positions at a time), and shorter ones sit inside longer ones'
    runs: none of it may change a document's bytes."""
    rng = np.random.default_rng(2)
    table = VectorTable(rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal((2, 5, 6)).astype(np.float32))
    weights = rng.uniform(0.2, 2, 6).astype(np.float32)
    together = run_vm(*_words(programs), table, weights, DEPTH)
    for d, prog in enumerate(programs):
        alone = run_vm(*_words([prog]), table, weights, DEPTH)
        assert alone[0].tobytes() == together[d].tobytes()


def test_empty_program_is_the_zero_vector():
    out = run_vm(np.zeros((2, 1, ITEM_WORDS), np.uint32), np.array([0, 0], np.uint32),
                 VectorTable(np.ones((1, 3), np.float32), None), np.ones(1, np.float32), 2)
    assert out.tolist() == [[0, 0, 0], [0, 0, 0]]


def test_stack_opcodes_without_a_push_add_exactly_what_acc_adds():
    """Only a PUSH fills the stack, so the VM sends a program without one down its ACC
    path: the same bytes as the program with every ADD, MUL and EMIT written as ACC."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((6, 8)).astype(np.float32)
    weights = rng.uniform(0.2, 2, 6).astype(np.float32)
    ops = [Op.ACC, Op.EMIT, Op.ADD, Op.ACC, Op.MUL, Op.EMIT]
    words = np.zeros((2, len(ops), ITEM_WORDS), np.uint32)
    words[..., F.ARG0] = np.arange(len(ops)) % 6
    words[..., F.ARG1] = np.int32(70000).view(np.uint32)
    words[0, :, F.OPCODE] = [int(op) for op in ops]
    words[1, :, F.OPCODE] = int(Op.ACC)
    table = VectorTable(vectors, None)
    out = run_vm(words, np.array([len(ops)] * 2, np.uint32), table, weights, DEPTH)
    assert out[0].tobytes() == out[1].tobytes()
    # with a PUSH in front the same opcodes work the stack, and the result differs
    pushed = np.concatenate([words[:1, :1], words[:1]], axis=1)
    pushed[0, 0, F.OPCODE] = int(Op.PUSH)
    got = run_vm(pushed, np.array([len(ops) + 1], np.uint32), table, weights, DEPTH)[0]
    want = scalar_vm([Op.PUSH, *ops], [0, *range(len(ops))], [70000] * (len(ops) + 1), [0] * (len(ops) + 1),
                     vectors, weights, None)
    np.testing.assert_allclose(got, want, atol=1e-6)
