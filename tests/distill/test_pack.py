"""sae.distill.pack: the row budget of the packed vectors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sae.algorithm import load_algorithm
from sae.distill.pack import row_budget
from sae.gpu.tables import float_table_bytes


@pytest.mark.parametrize("transforms", [0, 2, 5, 9])
def test_row_budget_keeps_the_gpu_table_in_one_binding(transforms):
    base = load_algorithm()
    limit = 128 * 1024 * 1024
    rows = row_budget(base, base.dim, 16_000_000, transforms, limit)
    table = np.zeros((rows, base.dim), dtype=np.float32)
    shaped = replace(base, vectors=table, weights=np.zeros(rows, np.float32),
                     transforms=np.zeros((transforms, base.dim, base.dim + 1), np.float32),
                     transform_names=tuple(f"t{i}" for i in range(transforms)))
    assert float_table_bytes(shaped) <= limit
    bigger = replace(shaped, vectors=np.zeros((rows + 4, base.dim), np.float32), weights=np.zeros(rows + 4, np.float32))
    # The budget is tight where the binding binds (five transforms and more), else the disk budget rules.
    assert float_table_bytes(bigger) > limit or rows == row_budget(base, base.dim, 16_000_000, transforms, 10**12)
