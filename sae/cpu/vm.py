"""The Semantic Forth VM on the numpy path (docs/ENGINE.md §5), vectorized over documents."""

from __future__ import annotations

import threading

import numpy as np

from sae.layout import F, Op

_INV_Q16 = np.float32(1.0 / 65536.0)


class VectorTable:
    """Every ``x`` of §5 an item can have: ``vectors[row]``, or ``T[mod-1] · vectors[row] + t[mod-1]``.

    One ``((transforms + 1) * rows, dim)`` float32 table, so the VM gathers a
    transformed item exactly like a plain one (``row + mod * rows``). Transformed
    rows are computed the first time a batch needs them (a transform applied to all
    rows up front would cost seconds at start-up) and kept. They are computed a whole
    block of ``BLOCK`` rows at a time, always the same block: a matrix product's
    rounding can depend on how many rows it multiplies together (BLAS picks its kernel
    by shape), so computing exactly the rows a batch happens to need would make a
    text's embedding depend on what was embedded before it. Safe to share between threads.
    """

    BLOCK = 64

    def __init__(self, vectors: np.ndarray, transforms: np.ndarray | None) -> None:
        self.rows, self.dim = vectors.shape
        n = 0 if transforms is None else len(transforms)
        self.transforms = transforms
        self.table = np.empty(((n + 1) * self.rows, self.dim), dtype=np.float32)
        self.table[: self.rows] = vectors
        self.ready = np.zeros((n + 1) * self.rows, dtype=bool)
        self.ready[: self.rows] = True
        self._lock = threading.Lock()

    def index(self, rows: np.ndarray, mods: np.ndarray) -> np.ndarray:
        """Table rows of items ``(rows, mods)``, computing the transformed ones not there yet."""
        at = rows.astype(np.int64) + mods.astype(np.int64) * self.rows
        if self.transforms is None or not len(self.transforms):
            return at
        missing = ~self.ready[at]
        if missing.any():
            self._fill(np.unique(at[missing]))
        return at

    def _fill(self, at: np.ndarray) -> None:
        with self._lock:
            at = at[~self.ready[at]]  # another thread may have filled some meanwhile
            mod, row = np.divmod(at, self.rows)
            for t, block in np.unique(np.stack([mod, row // self.BLOCK], axis=1), axis=0):
                lo, hi = block * self.BLOCK, min((block + 1) * self.BLOCK, self.rows)
                tr = self.transforms[int(t) - 1]
                self.table[t * self.rows + lo : t * self.rows + hi] = self.table[lo:hi] @ tr[:, :-1].T + tr[:, -1]
                self.ready[t * self.rows + lo : t * self.rows + hi] = True


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
    stack_ops = (ops > Op.ACC).any(axis=0)  # positions where some program uses the stack
    acc_weight = np.where(ops == Op.ACC, weight, np.float32(0))  # a NOP adds exactly zero
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
        in_stack = docs[ops[docs, p] > Op.ACC]
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
    norm = np.sqrt(np.einsum("ij,ij->i", acc, acc, dtype=np.float32))
    return np.divide(acc, norm[:, None], out=np.zeros_like(acc), where=norm[:, None] > 0)
