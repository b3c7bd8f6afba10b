"""The Semantic Forth VM on the numpy path (docs/ENGINE.md §5), vectorized over documents."""

from __future__ import annotations

import numpy as np

from sae.layout import F, Op

_INV_Q16 = np.float32(1.0 / 65536.0)


def run_vm(
    words: np.ndarray, lengths: np.ndarray, vectors: np.ndarray, weights: np.ndarray, stack_depth: int
) -> np.ndarray:
    """Execute ``(D, L, ITEM_WORDS)`` programs; returns ``(D, dim)`` float32, L2-normalized."""
    d, length = words.shape[0], words.shape[1]
    dim = vectors.shape[1]
    acc = np.zeros((d, dim), dtype=np.float32)
    stack = np.zeros((d, stack_depth, dim), dtype=np.float32)
    sp = np.zeros(d, dtype=np.int64)
    rows_d = np.arange(d)
    for p in range(length):
        live = p < lengths
        op = np.where(live, words[:, p, F.OPCODE], Op.NOP)
        row = words[:, p, F.ARG0]
        scale = words[:, p, F.ARG1].view(np.int32).astype(np.float32) * _INV_Q16
        v = (weights[row] * scale)[:, None] * vectors[row]
        has, full = sp > 0, sp >= stack_depth
        to_acc = (op == Op.ACC) | ((op == Op.PUSH) & full)
        to_acc |= np.isin(op, (Op.ADD, Op.MUL, Op.EMIT)) & ~has
        np.add(acc, v, out=acc, where=to_acc[:, None])
        push = np.flatnonzero((op == Op.PUSH) & ~full)
        stack[push, sp[push]] = v[push]
        sp[push] += 1
        top = np.maximum(sp - 1, 0)
        add = np.flatnonzero((op == Op.ADD) & has)
        stack[add, top[add]] += v[add]
        mul = np.flatnonzero((op == Op.MUL) & has)
        stack[mul, top[mul]] *= v[mul]
        emit = np.flatnonzero((op == Op.EMIT) & has)
        acc[emit] += stack[emit, top[emit]] + v[emit]
        sp[emit] -= 1
    for i in range(stack_depth):
        m = i < sp
        np.add(acc, stack[rows_d, i], out=acc, where=m[:, None])
    norm = np.sqrt(np.einsum("ij,ij->i", acc, acc, dtype=np.float32))
    out = np.zeros_like(acc)
    nz = norm > 0
    out[nz] = acc[nz] / norm[nz, None]
    return out
