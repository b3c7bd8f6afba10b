"""Population evaluation: many Algorithms that differ only in rules and loop parameters,
embedding one token batch (what an evolutionary search, ``sae evolve``, needs per
generation).

>>> evaluator = PopulationEvaluator(base, backend="gpu")
>>> embeddings = evaluator.evaluate(candidates, token_ids)   # one (n, dim) array each
>>> runs = evaluator.runs(candidates, token_ids)   # the same, with each document's journal
>>> evaluator.close()                              # its device buffers, now (or use ``with``)

Every Algorithm must share ``base``'s tokenizer, vectors, weights, symbol rows and
classes, lexicon and transforms (``sae.gpu.tables.SHARED_TABLES``): those are uploaded
once. On a GPU, the documents of a submission are annealed by several Algorithms in
one grid (jobs = documents x Algorithms, ``jobs`` a submission), so a population of A
Algorithms on n documents takes about ``A * n / jobs`` submissions, and each job's
embedding equals what its Algorithm alone gives (the equivalence tests check it). On
the CPU the Algorithms run one after another on the numpy path.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sae.algorithm import Algorithm, check_algorithm, check_rules
from sae.batch import as_documents, check_token_ids, token_lengths
from sae.engine import Closable, make_backend
from sae.layout import DEFAULT_CAPACITIES, JOURNAL_ENTRY, Capacities

#: Jobs (document x Algorithm) per GPU submission unless given.
DEFAULT_JOBS = 4096


@dataclass
class PopulationRun:
    """What one Algorithm of a population did to a token batch."""

    embeddings: np.ndarray  #: (n, dim) float32
    journal: np.ndarray  #: (n, Capacities.journal) JOURNAL_ENTRY: each document's journal
    journal_len: np.ndarray  #: (n,) uint32: the entries each journal holds


class PopulationEvaluator(Closable):
    """Embeds token batches with populations of Algorithms sharing ``base``'s tables.

    Args:
        base (Algorithm): the tables every member shares.
        backend (str): ``auto``, ``cpu`` or ``gpu`` (as :class:`sae.Engine`).
        caps (Capacities): capacities (compiled into the GPU passes).
        adapter (str | None): a GPU adapter name.
        jobs (int | None): jobs per GPU submission (default 4096, fewer when the
            adapter's buffer limits require it).

    :meth:`close` (or the end of a ``with`` block) releases the backend's device buffers.
    """

    def __init__(
        self,
        base: Algorithm,
        *,
        backend: str = "auto",
        caps: Capacities = DEFAULT_CAPACITIES,
        adapter: str | None = None,
        jobs: int | None = None,
    ) -> None:
        if not isinstance(base, Algorithm):
            raise TypeError(f"PopulationEvaluator: base must be an Algorithm (sae.algorithm.load_algorithm(PATH)), "
                            f"got {type(base).__name__}")
        if not isinstance(caps, Capacities):
            raise TypeError(f"PopulationEvaluator: caps must be a sae.layout.Capacities, got {type(caps).__name__}")
        if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int | np.integer) or jobs < 1):
            raise ValueError(f"PopulationEvaluator: jobs must be an integer >= 1, got {jobs!r}")
        check_algorithm(base, caps)  # built in Python: the loader's checks were skipped
        self.base, self.caps = base, caps
        self.backend = make_backend(backend, base, caps, adapter, jobs or DEFAULT_JOBS)
        # One call at a time (the GPU backend has one set of device buffers), and close()
        # waits for the call in progress, as Engine.close does.
        self._turn = threading.Lock()

    def close(self) -> None:
        """Release the backend's device buffers (idempotent); :meth:`evaluate` and
        :meth:`runs` then raise ``ValueError``."""
        with self._turn:
            self._closed = True
            self.backend.close()

    def evaluate(self, algorithms: Sequence[Algorithm], token_ids: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """``(n, dim)`` float32 embeddings of ``token_ids`` per Algorithm, in order. Raises
        ``ValueError`` for a token id outside the shared tables, as ``Engine.embed_tokens``
        does (the GPU would read out of bounds)."""
        with self._turn:
            return self._evaluate(algorithms, token_ids)

    def _evaluate(self, algorithms: Sequence[Algorithm], token_ids: Sequence[Sequence[int]]) -> list[np.ndarray]:
        self._check_open("PopulationEvaluator.evaluate")
        algorithms = list(algorithms)
        for i, alg in enumerate(algorithms):
            if not isinstance(alg, Algorithm):
                raise TypeError(f"PopulationEvaluator.evaluate: member {i} is a {type(alg).__name__}, not an Algorithm")
            check_rules(alg, self.caps)  # members built in Python skipped the loader's checks
        token_ids = as_documents(token_ids, "PopulationEvaluator.evaluate")
        lengths = token_lengths(token_ids, self.caps, "PopulationEvaluator.evaluate")
        check_token_ids(token_ids, len(self.base.symbol_rows), "PopulationEvaluator.evaluate")
        if hasattr(self.backend, "evaluate_population"):
            return self.backend.evaluate_population(algorithms, token_ids)
        from sae.cpu import CpuBackend
        out = []
        for i, alg in enumerate(algorithms):
            self._check_member(i, alg)
            backend = CpuBackend(alg, self.caps)
            rows = np.zeros((len(token_ids), alg.dim), dtype=np.float32)
            for start in range(0, len(token_ids), 1024):
                part = slice(start, start + 1024)
                rows[part] = backend.submit_batch(token_ids[part], lengths[part]).result().embeddings
            out.append(rows)
        return out

    def _check_member(self, i: int, alg: Algorithm) -> None:
        from sae.gpu.tables import shared_table_difference

        difference = shared_table_difference(self.base, alg)
        if difference:
            raise ValueError(f"population member {i} ({alg.name!r}) has other {difference} than the base "
                             "Algorithm; a population shares everything but rules and parameters")

    def runs(self, algorithms: Sequence[Algorithm], token_ids: Sequence[Sequence[int]]) -> list[PopulationRun]:
        """What :meth:`evaluate` gives, with each document's journal (which rules committed
        or were reverted where, in which step): what an evolutionary search reads besides
        the embeddings. The journals cost a readback of ``Capacities.journal`` entries per
        job on a GPU."""
        with self._turn:
            return self._runs(algorithms, token_ids)

    def _runs(self, algorithms: Sequence[Algorithm], token_ids: Sequence[Sequence[int]]) -> list[PopulationRun]:
        self._check_open("PopulationEvaluator.runs")
        algorithms = list(algorithms)
        for i, alg in enumerate(algorithms):
            if not isinstance(alg, Algorithm):
                raise TypeError(f"PopulationEvaluator.runs: member {i} is a {type(alg).__name__}, not an Algorithm")
            check_rules(alg, self.caps)  # members built in Python skipped the loader's checks
        token_ids = as_documents(token_ids, "PopulationEvaluator.runs")
        lengths = token_lengths(token_ids, self.caps, "PopulationEvaluator.runs")
        check_token_ids(token_ids, len(self.base.symbol_rows), "PopulationEvaluator.runs")
        if hasattr(self.backend, "population_runs"):
            return [PopulationRun(*run) for run in self.backend.population_runs(algorithms, token_ids)]
        from sae.batch import ProgramBatch
        from sae.cpu import CpuBackend
        out = []
        for i, alg in enumerate(algorithms):
            self._check_member(i, alg)
            backend = CpuBackend(alg, self.caps)
            n = len(token_ids)
            run = PopulationRun(np.zeros((n, alg.dim), dtype=np.float32),
                                np.zeros((n, self.caps.journal), dtype=JOURNAL_ENTRY), np.zeros(n, dtype=np.uint32))
            batch = ProgramBatch(1024, self.caps)
            for start in range(0, n, 1024):
                part = slice(start, start + 1024)
                batch.widen(token_ids[part], alg.symbol_rows, lengths[part])
                m = batch.n
                backend.anneal(batch)
                run.embeddings[part] = backend.execute(batch)[:m]
                run.journal[part] = batch.journal[:m]
                run.journal_len[part] = batch.journal_len[:m]
            out.append(run)
        return out


def evaluate_population(
    algorithms: Sequence[Algorithm],
    token_ids: Sequence[Sequence[int]],
    *,
    backend: str = "auto",
    caps: Capacities = DEFAULT_CAPACITIES,
    adapter: str | None = None,
) -> list[np.ndarray]:
    """Embed ``token_ids`` with each of ``algorithms`` (sharing the first one's tables):
    one ``(n, dim)`` float32 array per Algorithm. See :class:`PopulationEvaluator`."""
    algorithms = list(algorithms)  # a generator too
    if not algorithms:
        return []
    with PopulationEvaluator(algorithms[0], backend=backend, caps=caps, adapter=adapter) as evaluator:
        return evaluator.evaluate(algorithms, token_ids)


__all__ = ["DEFAULT_JOBS", "PopulationEvaluator", "PopulationRun", "evaluate_population"]
