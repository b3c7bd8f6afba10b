"""What the host uploads, packed the way the shaders read it (shaders/common.wgsl).

The float table (weights, vectors, transforms as vec4 rows), an Algorithm's loop
parameters (:data:`~sae.layout.ALG_RECORD`), and a batch's token ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np

from sae.algorithm import Algorithm
from sae.layout import ALG_RECORD


def dim4(dim: int) -> int:
    """vec4s per embedding row (rows are padded with zeros to whole vec4s)."""
    return (dim + 3) // 4


def float_table(alg: Algorithm) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The float buffer as ``(n, 4)`` float32 rows, and the vec4 offsets of its parts.

    Weights, four a row; the vectors, each padded to whole vec4s; per transform, the
    rows of ``T`` padded the same way, then ``t`` (shaders/common.wgsl reads this layout).
    """
    rows, dim = alg.vectors.shape
    n4 = dim4(dim)
    weights = np.zeros(4 * -(-rows // 4), dtype=np.float32)
    weights[:rows] = alg.weights
    vectors = np.zeros((rows, 4 * n4), dtype=np.float32)
    vectors[:, :dim] = alg.vectors
    tr = alg.transforms.astype(np.float32)
    transforms = np.zeros((tr.shape[0], dim + 1, 4 * n4), dtype=np.float32)
    transforms[:, :dim, :dim] = tr[:, :, :dim]
    transforms[:, dim, :dim] = tr[:, :, dim]
    parts = [weights.reshape(-1, 4), vectors.reshape(-1, 4), transforms.reshape(-1, 4)]
    offsets = np.cumsum([0] + [len(p) for p in parts])
    return np.concatenate(parts), (int(offsets[0]), int(offsets[1]), int(offsets[2]))


def alg_record(alg: Algorithm, rule_base: int = 0) -> np.ndarray:
    """The :data:`~sae.layout.ALG_RECORD` of one Algorithm whose rules start at ``rule_base``."""
    rec = np.zeros((), dtype=ALG_RECORD)
    kinds = [rule.kind for rule in alg.rules]
    rec["rule_base"] = rule_base
    rec["n_rules"] = len(alg.rules)
    rec["max_steps"] = alg.params.max_steps
    rec["tolerance"] = alg.params.tolerance
    rec["inhibit_steps"] = alg.params.inhibit_steps
    rec["reach"] = alg.reach
    rec["guards"] = int("guard" in kinds)
    rec["rewrites"] = int(any(k != "guard" for k in kinds))
    return rec


def pack_tokens(token_ids: Sequence[Sequence[int]], lengths: np.ndarray) -> np.ndarray:
    """Where each document's tokens start (``n + 1`` words), then the tokens, one document
    after another: the uint32 words the anneal pass widens from (``GPU_MODE_WIDEN``)."""
    n = len(token_ids)
    total = int(lengths.sum()) if n else 0
    words = np.empty(n + 1 + total, dtype=np.uint32)
    words[0] = 0
    np.cumsum(lengths, out=words[1 : n + 1])
    if total:
        words[n + 1 :] = np.fromiter(chain.from_iterable(token_ids), dtype=np.uint32, count=total)
    return words


__all__ = ["alg_record", "dim4", "float_table", "pack_tokens"]
