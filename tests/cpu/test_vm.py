"""The numpy VM against a scalar reference written straight from docs/ENGINE.md §5."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sae.cpu.vm import VectorTable, run_vm
from sae.layout import ITEM_WORDS, F, Op

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


@settings(max_examples=80)
@given(st.lists(st.lists(st.tuples(st.sampled_from(list(Op)), st.integers(0, 5),
                                   st.integers(-131072, 131072), st.integers(0, 2)), max_size=10),
                min_size=1, max_size=5))
def test_vm_matches_the_scalar_reference(programs):
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((6, 4)).astype(np.float32)
    weights = rng.uniform(0.2, 2, 6).astype(np.float32)
    transforms = rng.standard_normal((2, 4, 5)).astype(np.float32)
    length = max(len(p) for p in programs) or 1
    words = np.zeros((len(programs), length, ITEM_WORDS), np.uint32)
    lengths = np.array([len(p) for p in programs], np.uint32)
    for d, prog in enumerate(programs):
        for i, (op, row, a1, mod) in enumerate(prog):
            words[d, i, F.OPCODE] = int(op)
            words[d, i, F.ARG0] = row
            words[d, i, F.ARG1] = np.int32(a1).view(np.uint32)
            words[d, i, F.MOD] = mod
    got = run_vm(words, lengths, VectorTable(vectors, transforms), weights, DEPTH)
    for d, prog in enumerate(programs):
        ops, rows, a1, mods = zip(*prog) if prog else ((), (), (), ())
        want = scalar_vm(ops, rows, a1, mods, vectors, weights, transforms)
        np.testing.assert_allclose(got[d], want, atol=1e-5)


def test_empty_program_is_the_zero_vector():
    out = run_vm(np.zeros((2, 1, ITEM_WORDS), np.uint32), np.array([0, 0], np.uint32),
                 VectorTable(np.ones((1, 3), np.float32), None), np.ones(1, np.float32), 2)
    assert out.tolist() == [[0, 0, 0], [0, 0, 0]]


def test_transformed_rows_do_not_depend_on_what_was_needed_before():
    """A transformed vector is a function of its row and transform alone: filled with many
    rows at once or one at a time (a batch of texts, or a text alone), the same bytes.
    Multiplying exactly the rows a batch needs would not be: BLAS rounds a matrix-vector
    product differently from a matrix-matrix one."""
    from sae.cpu.vm import VectorTable

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((1000, 384)).astype(np.float32)
    transforms = rng.standard_normal((2, 384, 385)).astype(np.float32)
    rows = np.arange(0, 1000, 5)
    mods = (rows % 3).astype(np.int64)
    together, alone = VectorTable(vectors, transforms), VectorTable(vectors, transforms)
    at = together.index(rows, mods)
    for r, m in zip(rows, mods):
        alone.index(np.array([r]), np.array([m]))
    assert together.table[at].tobytes() == alone.table[alone.index(rows, mods)].tobytes()
    plain = mods == 0
    assert together.table[at[plain]].tobytes() == vectors[rows[plain]].tobytes()
    t = transforms[0]
    np.testing.assert_allclose(together.table[at[mods == 1]], vectors[rows[mods == 1]] @ t[:, :-1].T + t[:, -1],
                               rtol=1e-4, atol=1e-3)
