"""The Semantic Forth VM on the numpy path (docs/ENGINE.md §5), vectorized over documents."""

from __future__ import annotations

import numpy as np

from sae.layout import F, Op

_INV_Q16 = np.float32(1.0 / 65536.0)


def run_vm(
    words: np.ndarray,
    lengths: np.ndarray,
    vectors: np.ndarray,
    weights: np.ndarray,
    stack_depth: int,
    transforms: np.ndarray | None = None,
) -> np.ndarray:
    """Execute ``(D, L, ITEM_WORDS)`` programs; returns ``(D, dim)`` float32, L2-normalized.

    ``transforms`` is ``(n, dim, dim + 1)`` float32 (``[T | t]`` per transform).
    An ``ACC`` item with a transform is linear in its vector, so those are summed per
    document and transform first and the transform is applied once to the sum (§5
    allows the reassociation); stack items apply theirs one by one.
    """
    d, length = words.shape[0], words.shape[1]
    dim = vectors.shape[1]
    acc = np.zeros((d, dim), dtype=np.float32)
    stack: np.ndarray | None = None  # allocated by the first stack opcode: most programs have none
    sp = np.zeros(d, dtype=np.int64)
    # Per item, computed for the whole batch at once: opcode, vector row, transform and weight w.
    ops, rows, mods = words[..., F.OPCODE], words[..., F.ARG0], words[..., F.MOD]
    weight = weights[rows] * (words[..., F.ARG1].view(np.int32).astype(np.float32) * _INV_Q16)
    transformed = mods > 0
    has_transforms = bool(transformed.any())
    stack_ops = (ops > Op.ACC).any(axis=0)  # positions where some program uses the stack
    plain_acc = ops == Op.ACC
    if has_transforms:
        plain_acc &= ~transformed
    acc_weight = np.where(plain_acc, weight, np.float32(0))  # a NOP adds exactly zero
    for p in range(length):
        # Only documents this long do anything at p. The engine batches by length, so
        # they are nearly one run: take the slice that spans them (a shorter document
        # inside it has a zero item here, which adds exactly zero) rather than a gather.
        docs = np.flatnonzero(p < lengths)
        if docs.size == 0:
            break  # no document is this long
        run = slice(int(docs[0]), int(docs[-1]) + 1)
        v = vectors[rows[run, p]]
        v *= acc_weight[run, p, None]  # zero for every item that is not a plain ACC
        acc[run] += v
        if not stack_ops[p]:
            continue
        in_stack = docs[ops[docs, p] > Op.ACC]
        if in_stack.size == 0:
            continue
        op, w = ops[in_stack, p], weight[in_stack, p]
        v = w[:, None] * _item_vectors(vectors, rows[in_stack, p], mods[in_stack, p], transforms)
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
    if has_transforms:
        _transformed_acc(acc, ops, rows, mods, weight, vectors, transforms)
    for i in range(int(sp.max(initial=0))):
        assert stack is not None
        np.add(acc, stack[:, i], out=acc, where=(i < sp)[:, None])
    norm = np.sqrt(np.einsum("ij,ij->i", acc, acc, dtype=np.float32))
    return np.divide(acc, norm[:, None], out=np.zeros_like(acc), where=norm[:, None] > 0)


def _item_vectors(vectors: np.ndarray, rows: np.ndarray, mods: np.ndarray, transforms: np.ndarray | None
                  ) -> np.ndarray:
    """``x`` of §5 for each item: its vector, through its transform when it has one."""
    x = vectors[rows]
    for t in np.unique(mods[mods > 0]):
        sel = mods == t
        tr = transforms[int(t) - 1]
        x[sel] = x[sel] @ tr[:, :-1].T + tr[:, -1]
    return x


def _transformed_acc(acc: np.ndarray, ops: np.ndarray, rows: np.ndarray, mods: np.ndarray, weight: np.ndarray,
                     vectors: np.ndarray, transforms: np.ndarray) -> None:
    """Adds ``Σ w (T x + t)`` of every ACC item with a transform, one transform at a time."""
    sel = (ops == Op.ACC) & (mods > 0)
    doc, pos = np.nonzero(sel)
    mod = mods[doc, pos]
    for t in np.unique(mod):
        here = mod == t
        dd, pp = doc[here], pos[here]
        w = weight[dd, pp]
        tr = transforms[int(t) - 1]
        summed = np.zeros((acc.shape[0], vectors.shape[1]), dtype=np.float32)
        np.add.at(summed, dd, w[:, None] * vectors[rows[dd, pp]])
        total_w = np.bincount(dd, weights=w, minlength=acc.shape[0]).astype(np.float32)
        users = np.unique(dd)
        acc[users] += summed[users] @ tr[:, :-1].T + total_w[users, None] * tr[:, -1]
