"""What each item of a final program adds to the embedding (docs/ENGINE.md §5).

:func:`vm_contributions` re-runs the Semantic Forth VM on one program in float64,
keeping apart what each item puts into the accumulator, so that the parts add up
to the VM's result exactly. It is the one place the viewer restates the VM: when
the VM gains an operation, this function gains the same case (a test checks that
the parts still sum to the engine's embedding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sae.algorithm import Algorithm
from sae.layout import Op

#: What an opcode did with the item's vector, as the viewer names it.
EFFECTS = {
    Op.NOP: "nop",
    Op.ACC: "acc += v",
    Op.PUSH: "push v",
    Op.ADD: "top += v",
    Op.MUL: "top *= v",
    Op.EMIT: "acc += pop + v",
}


@dataclass(frozen=True)
class Contributions:
    """Per item of one program: its weighted vector and its share of the result.

    ``part[i]`` is what item ``i`` added to the accumulator: its own vector when it
    accumulates, and for a ``MUL`` the change it made to the stack top
    (``top * v - top``). The parts sum to ``acc``, so ``share`` (each part's projection
    on the embedding, over ``‖acc‖``) sums to 1, and projecting on another text's
    embedding instead gives each item's share of the cosine of the two.
    """

    weight: np.ndarray  # (n,) w = weights[arg0] * arg1 / 65536
    vector: np.ndarray  # (n, dim) v = w * x, x = vectors[arg0] through the item's transform
    effect: list[str]  # what the opcode did, given the stack at that point
    depth: np.ndarray  # (n,) stack depth after the item
    stack_norms: list[list[float]]  # ‖slot‖ of every stack slot after the item, bottom first
    part: np.ndarray  # (n, dim) what the item added to acc
    acc: np.ndarray  # (dim,) the VM's accumulator at the end

    @property
    def norm(self) -> np.ndarray:
        """‖v‖ per item."""
        return np.linalg.norm(self.vector, axis=1)

    @property
    def acc_norm(self) -> float:
        return float(np.linalg.norm(self.acc))

    @property
    def embedding(self) -> np.ndarray:
        """``acc / ‖acc‖`` (zeros when ``acc`` is 0), as the engine computes it."""
        n = self.acc_norm
        return self.acc / n if n > 0 else np.zeros_like(self.acc)

    def cosine(self, target: np.ndarray) -> np.ndarray:
        """Cosine of each item's vector with ``target`` (0 where either is 0)."""
        norms = self.norm * float(np.linalg.norm(target))
        dots = self.vector @ target.astype(np.float64)
        return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)

    def share(self, target: np.ndarray) -> np.ndarray:
        """Each part's projection on ``target`` over ``‖acc‖``.

        With ``target`` this program's own embedding the shares sum to 1; with another
        text's embedding they sum to the cosine of the two embeddings.
        """
        n = self.acc_norm
        if n == 0:
            return np.zeros(self.part.shape[0])
        return self.part @ target.astype(np.float64) / n


def vm_contributions(items: np.ndarray, alg: Algorithm, stack_depth: int) -> Contributions:
    """Run the VM on ``items`` (ProgramItem records) and split ``acc`` by item."""
    n, dim = items.size, alg.dim
    rows = items["arg0"].astype(np.int64)
    weight = alg.weights[rows].astype(np.float64) * (items["arg1"].astype(np.float64) / 65536.0)
    x = alg.vectors[rows].astype(np.float64)
    for i, mod in enumerate(items["mod"].astype(np.int64)):
        if mod:  # a rule's transform: x = T x + t
            tr = alg.transforms[mod - 1].astype(np.float64)
            x[i] = tr[:, :-1] @ x[i] + tr[:, -1]
    vector = weight[:, None] * x
    part = np.zeros((n, dim))
    acc = np.zeros(dim)
    # Each stack slot is kept as its value and the per-item parts that sum to it.
    stack: list[tuple[np.ndarray, dict[int, np.ndarray]]] = []
    effect: list[str] = []
    depth = np.zeros(n, dtype=np.int64)
    stack_norms: list[list[float]] = []
    for i in range(n):
        op, v = int(items["opcode"][i]), vector[i]
        name = EFFECTS[Op(op)] if op in EFFECTS else f"op {op}"
        if op == Op.NOP:
            pass
        elif op == Op.PUSH and len(stack) < stack_depth:
            stack.append((v.copy(), {i: v.copy()}))
        elif op == Op.ADD and stack:
            top, parts = stack[-1]
            top += v
            parts[i] = parts.get(i, 0) + v
        elif op == Op.MUL and stack:
            top, parts = stack[-1]
            new = top * v
            parts[i] = parts.get(i, 0) + (new - top)
            top[:] = new
        elif op == Op.EMIT and stack:
            _, parts = stack.pop()
            for j, p in parts.items():
                part[j] += p
            part[i] += v
        else:  # ACC, and every stack opcode the stack cannot serve, accumulate
            if op != Op.ACC:
                name = "acc += v (stack " + ("full" if op == Op.PUSH else "empty") + ")"
            part[i] += v
        effect.append(name)
        depth[i] = len(stack)
        stack_norms.append([float(np.linalg.norm(top)) for top, _ in stack])
    for _, parts in stack:  # what is left on the stack joins acc, bottom first
        for j, p in parts.items():
            part[j] += p
    acc = part.sum(axis=0) if n else acc
    return Contributions(weight, vector, effect, depth, stack_norms, part, acc)
