"""The Semantic Forth VM on the numpy path (docs/ENGINE.md §5), vectorized over documents."""

from __future__ import annotations

import numpy as np

from sae.layout import F, Op
from sae.vector_table import VectorTable

_INV_Q16 = np.float32(1.0 / 65536.0)


def run_vm(words: np.ndarray, lengths: np.ndarray, table: VectorTable, weights: np.ndarray, stack_depth: int
           ) -> np.ndarray:
    """Execute ``(D, L, ITEM_WORDS)`` programs; returns ``(D, dim)`` float32, L2-normalized."""
    d, length = words.shape[0], words.shape[1]
    dim = table.dim
    acc = np.zeros((d, dim), dtype=np.float32)
    stack: np.ndarray | None = None  # allocated by the first stack opcode: most programs have none
    sp = np.zeros(d, dtype=np.int64)
    # Per item, computed for the whole batch at once: opcode, table row and weight w.
    ops, rows = words[..., F.OPCODE], words[..., F.ARG0]
    weight = weights[rows] * (words[..., F.ARG1].view(np.int32).astype(np.float32) * _INV_Q16)
    x_rows = table.index(rows, words[..., F.MOD])
    vectors = table.table
    # Only a PUSH fills the stack. In a program without one, ADD, MUL and EMIT meet an
    # empty stack and add w·x to the accumulator exactly as an ACC does (the same
    # product, added at the same position), so only programs that push take the stack path.
    pushes = (ops == Op.PUSH).any(axis=1)
    on_stack = (ops > Op.ACC) & pushes[:, None]
    stack_ops = on_stack.any(axis=0)  # positions where some program uses the stack
    acc_weight = np.where((ops >= Op.ACC) & ~on_stack, weight, np.float32(0))  # a NOP adds exactly zero
    for p in range(length):
        # Only documents this long do anything at p. The engine batches by length, so
        # they are nearly one run: take the slice that spans them (a shorter document
        # inside it has a zero item here, which adds exactly zero) rather than a gather.
        docs = np.flatnonzero(p < lengths)
        if docs.size == 0:
            break  # no document is this long
        run = slice(int(docs[0]), int(docs[-1]) + 1)
        v = vectors[x_rows[run, p]]
        v *= acc_weight[run, p, None]  # zero for every item that is not an ACC
        acc[run] += v
        if not stack_ops[p]:
            continue
        in_stack = docs[on_stack[docs, p]]
        if in_stack.size == 0:
            continue
        op, w = ops[in_stack, p], weight[in_stack, p]
        v = w[:, None] * vectors[x_rows[in_stack, p]]
        if stack is None:
            stack = np.zeros((d, stack_depth, dim), dtype=np.float32)
        s = sp[in_stack]
        has, full = s > 0, s >= stack_depth
        to_acc = ((op == Op.PUSH) & full) | (np.isin(op, (Op.ADD, Op.MUL, Op.EMIT)) & ~has)
        acc[in_stack[to_acc]] += v[to_acc]
        top = np.maximum(s - 1, 0)
        push = (op == Op.PUSH) & ~full
        stack[in_stack[push], s[push]] = v[push]
        add = (op == Op.ADD) & has
        stack[in_stack[add], top[add]] += v[add]
        mul = (op == Op.MUL) & has
        stack[in_stack[mul], top[mul]] *= v[mul]
        emit = (op == Op.EMIT) & has
        acc[in_stack[emit]] += stack[in_stack[emit], top[emit]] + v[emit]
        sp[in_stack[push]] += 1
        sp[in_stack[emit]] -= 1
    for i in range(int(sp.max(initial=0))):
        assert stack is not None
        np.add(acc, stack[:, i], out=acc, where=(i < sp)[:, None])
    # The squared norm summed in float64 and rounded once: a float32 sum's last bit depends
    # on the order the CPU's vector unit adds in; this one's on any CPU alike (VectorTable).
    norm = np.sqrt(np.einsum("ij,ij->i", acc, acc, dtype=np.float64)).astype(np.float32)
    return np.divide(acc, norm[:, None], out=np.zeros_like(acc), where=norm[:, None] > 0)
