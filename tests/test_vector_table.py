"""The table of every vector an item can gather, plain and transformed."""

from __future__ import annotations

import dataclasses

import numpy as np

from sae.vector_table import VectorTable


def test_transformed_rows_do_not_depend_on_what_was_needed_before():
    """A transformed vector is a function of its row and transform alone: filled with many
    rows at once or one at a time (a batch of texts, or a text alone), the same bytes.
    Multiplying exactly the rows a batch needs would not be: BLAS rounds a matrix-vector
    product differently from a matrix-matrix one."""
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


def test_the_complete_table_holds_the_rows_computed_on_demand():
    """The GPU uploads the complete table and the numpy VM fills it as batches need rows:
    both must gather the same floats."""
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((300, 16)).astype(np.float32)
    transforms = rng.standard_normal((2, 16, 17)).astype(np.float32)
    on_demand = VectorTable(vectors, transforms)
    rows = np.array([0, 63, 64, 299, 150])
    at = on_demand.index(rows, np.array([1, 2, 1, 2, 0]))
    full = VectorTable(vectors, transforms).complete()
    assert full.shape == (3 * 300, 16)
    assert full[at].tobytes() == on_demand.table[at].tobytes()
    assert full[:300].tobytes() == vectors.tobytes()
    assert VectorTable(vectors, None).complete().tobytes() == vectors.tobytes()


def test_transformed_rows_are_float64_products_rounded_once():
    """``T · x + t`` is summed in float64 and rounded once to float32, so the table does not
    depend on the order a CPU's BLAS kernel sums in (a float32 product's last bit does).
    A float64 product of float16-exact inputs is itself within 1e-16 of the exact sum,
    so every row matches an order-independent reference to the bit."""
    rng = np.random.default_rng(1)
    with np.errstate(under="ignore"):  # a few draws are below float16's range: they become 0
        vectors = rng.standard_normal((200, 64)).astype(np.float16).astype(np.float32)
        transforms = (rng.standard_normal((3, 64, 65)) / 8).astype(np.float16).astype(np.float32)
    table = VectorTable(vectors, transforms).complete()
    for k, tr in enumerate(transforms.astype(np.float64), start=1):
        exact = np.array([[np.float64(sum(map(float, tr[i, :-1] * v))) for i in range(64)] for v in
                          vectors.astype(np.float64)])  # Python's left-to-right sum, no BLAS
        want = (exact + tr[:, -1]).astype(np.float32)
        got = table[k * 200 : (k + 1) * 200]
        assert np.count_nonzero(got != want) <= 1, k  # a value within 1e-16 of a rounding boundary


def test_read_only_arrays_share_one_table_and_writable_ones_do_not():
    """Backends of Algorithms with the same read-only arrays (an evolution's genomes on one
    base) share one table, so a block is computed once; the bytes are those of a table of
    their own. Writable arrays could change under a shared table: they get their own."""
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((300, 32)).astype(np.float32)
    transforms = rng.standard_normal((2, 32, 33)).astype(np.float32)
    assert VectorTable.shared(vectors, transforms) is not VectorTable.shared(vectors, transforms)
    vectors.flags.writeable = transforms.flags.writeable = False
    first = VectorTable.shared(vectors, transforms)
    assert VectorTable.shared(vectors, transforms) is first
    assert VectorTable.shared(vectors.copy(), transforms) is not first  # another array, another table
    rows, mods = np.arange(0, 300, 7), np.arange(0, 300, 7) % 3
    at = first.index(rows, mods)
    own = VectorTable(vectors, transforms)
    assert first.table[at].tobytes() == own.table[own.index(rows, mods)].tobytes()


def test_the_cpu_backends_of_a_genome_and_its_base_share_the_table():
    from sae.algorithm import load_algorithm
    from sae.cpu import CpuBackend
    from sae.layout import DEFAULT_CAPACITIES

    base = load_algorithm(None)
    genome = dataclasses.replace(base, rules=base.rules[:1])
    assert CpuBackend(genome, DEFAULT_CAPACITIES).table is CpuBackend(base, DEFAULT_CAPACITIES).table


def test_the_gpu_float_table_completes_the_table_the_cpu_backend_gathers_from():
    """One process that runs both backends of an Algorithm (``sae demo``, ``sae compare``)
    computes the transformed rows once."""
    from sae.algorithm import load_algorithm
    from sae.cpu import CpuBackend
    from sae.gpu.tables import float_table
    from sae.layout import DEFAULT_CAPACITIES

    alg = load_algorithm(None)
    cpu_table = CpuBackend(alg, DEFAULT_CAPACITIES).table
    floats, (_, weight_rows) = float_table(alg)
    assert cpu_table.ready.all()
    assert np.array_equal(floats[weight_rows:].reshape(len(cpu_table.table), -1)[:, : alg.dim], cpu_table.table)
