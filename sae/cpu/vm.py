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
    stack: np.ndarray | None = None  # allocated by the first stack opcode: most programs have none
    sp = np.zeros(d, dtype=np.int64)
    # Per item, computed for the whole batch at once: opcode, vector row and weight w.
    ops, rows = words[..., F.OPCODE], words[..., F.ARG0]
    weight = weights[rows] * (words[..., F.ARG1].view(np.int32).astype(np.float32) * _INV_Q16)
    stack_ops = (ops > Op.ACC).any(axis=0)  # positions where some program uses the stack
    acc_weight = np.where(ops == Op.ACC, weight, np.float32(0))  # a NOP adds exactly zero
    for p in range(length):
        # Only documents this long do anything at p. The engine batches by length, so
        # they are nearly one run: take the slice that spans them (a shorter document
        # inside it has a zero item here, which adds exactly zero) rather than a gather.
        docs = np.flatnonzero(p < lengths)
        if docs.size == 0:
            break  # no document is this long
        if not stack_ops[p]:  # only ACC and NOP here: no stack work
            run = slice(int(docs[0]), int(docs[-1]) + 1)
            v = vectors[rows[run, p]]
            v *= acc_weight[run, p, None]
            acc[run] += v
            continue
        row = rows[docs, p]
        op, w = ops[docs, p], weight[docs, p]
        v = w[:, None] * vectors[row]
        docs = np.arange(d)[docs]
        if stack is None:
            stack = np.zeros((d, stack_depth, dim), dtype=np.float32)
        s = sp[docs]
        has, full = s > 0, s >= stack_depth
        to_acc = (op == Op.ACC) | ((op == Op.PUSH) & full)
        to_acc |= np.isin(op, (Op.ADD, Op.MUL, Op.EMIT)) & ~has
        acc[docs[to_acc]] += v[to_acc]
        top = np.maximum(s - 1, 0)
        push = (op == Op.PUSH) & ~full
        stack[docs[push], s[push]] = v[push]
        add = (op == Op.ADD) & has
        stack[docs[add], top[add]] += v[add]
        mul = (op == Op.MUL) & has
        stack[docs[mul], top[mul]] *= v[mul]
        emit = (op == Op.EMIT) & has
        acc[docs[emit]] += stack[docs[emit], top[emit]] + v[emit]
        sp[docs[push]] += 1
        sp[docs[emit]] -= 1
    for i in range(int(sp.max(initial=0))):
        assert stack is not None
        np.add(acc, stack[:, i], out=acc, where=(i < sp)[:, None])
    norm = np.sqrt(np.einsum("ij,ij->i", acc, acc, dtype=np.float32))
    return np.divide(acc, norm[:, None], out=np.zeros_like(acc), where=norm[:, None] > 0)
