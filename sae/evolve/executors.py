"""Where evaluations run: this process, local worker processes, or a Ray cluster.

Every executor takes a list of genomes (canonical JSON) and returns their
:class:`~sae.evolve.fitness.Evaluation` in the same order, so the search never sees
which worker did what. Each worker builds one :class:`~sae.evolve.fitness.Evaluator`
from the same :class:`Payload` (the base Algorithm's arrays and the evaluation data,
shipped once) and evaluates with one BLAS thread, so a fitness value is the same bytes
in any process: ``--workers 1`` and ``2`` and Ray give the same run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from sae.algorithm import Algorithm
from sae.blas import one_thread, one_thread_env
from sae.errors import InputError, SaeError
from sae.evolve.data import EvalData
from sae.evolve.fitness import Evaluation, Evaluator, FitnessSettings
from sae.ray_address import check_ray_address

log = logging.getLogger(__name__)
RAY_HINT = "pip install 'sae[ray]'"


@dataclass(frozen=True)
class Payload:
    """Everything a worker needs to evaluate: plain arrays and settings (picklable)."""

    base: Algorithm
    data: EvalData
    settings: FitnessSettings

    @staticmethod
    def of(base: Algorithm, data: EvalData, settings: FitnessSettings) -> Payload:
        # replace() drops cached properties (the tokenizer object, the hash): workers
        # only need the arrays, and recompute the hash themselves.
        return Payload(replace(base), data, settings)


_WORKER: Evaluator | None = None


def _init_worker(payload: Payload) -> None:
    global _WORKER
    import threading

    threading.Thread(target=_exit_with_parent, name="sae-exit-with-parent", daemon=True).start()
    _WORKER = Evaluator(payload.base, payload.data, payload.settings)


def _exit_with_parent() -> None:
    """End this worker when the process that spawned it ends, however it ended: after a
    ``kill -9`` of ``sae evolve`` the pool's workers would otherwise wait for work forever,
    each holding the evaluation data."""
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()  # returns once the parent's sentinel closes
        os._exit(1)


def _evaluate_in_worker(genome_json: str, stage: str) -> Evaluation:
    assert _WORKER is not None
    with one_thread():
        return _WORKER.evaluate(genome_json, stage)


class LocalExecutor:
    """``workers == 1``: evaluate in this process; more: a pool of spawned processes."""

    name = "local"

    def __init__(self, payload: Payload, workers: int) -> None:
        self.workers = workers
        self.pool = None
        if workers <= 1:
            self.evaluator = Evaluator(payload.base, payload.data, payload.settings)
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        for var, value in one_thread_env().items():
            os.environ.setdefault(var, value)  # inherited by the spawned workers
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_init_worker, initargs=(payload,))

    def evaluate(self, genomes: list[str], stage: str,
                 done: Callable[[Evaluation], None] | None = None) -> list[Evaluation]:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self._evaluate(genomes, stage, done)
        except BrokenProcessPool:
            # A worker was killed (by hand, or for memory): nothing of this generation was
            # stored, every finished one was, so the same command with --resume goes on.
            raise SaeError("an evaluation worker process ended abruptly (killed, or out of memory); "
                           "the run store holds every finished generation: run the same command "
                           "with --resume") from None

    def _evaluate(self, genomes: list[str], stage: str,
                  done: Callable[[Evaluation], None] | None) -> list[Evaluation]:
        if self.pool is not None:
            evaluations: Iterable[Evaluation] = self.pool.map(_evaluate_in_worker, genomes, [stage] * len(genomes))
        elif self.evaluator.batches_genomes:
            # the GPU path: the whole list as one population, few submissions
            with one_thread():
                evaluations = self.evaluator.evaluate_many(genomes, stage)
        else:
            evaluations = (self._evaluate_here(g, stage) for g in genomes)  # each reported as it ends
        out = []
        for ev in evaluations:
            out.append(ev)
            if done:
                done(ev)
        return out

    def _evaluate_here(self, genome: str, stage: str) -> Evaluation:
        with one_thread():
            return self.evaluator.evaluate(genome, stage)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        else:
            self.evaluator.close()


class RayExecutor:
    """Evaluator actors on a Ray cluster (``address``) or a local Ray instance (None)."""

    name = "ray"

    def __init__(self, payload: Payload, workers: int, address: str | None) -> None:
        try:
            import ray
            from ray.util import ActorPool
        except ImportError:
            raise InputError(f"--executor ray needs Ray: {RAY_HINT}") from None
        self.ray = ray
        if not ray.is_initialized():
            env = one_thread_env()
            kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                          runtime_env={"env_vars": env})
            check_ray_address(address, "--ray-address")
            try:
                if address:
                    ray.init(address=address, **kwargs)
                else:  # "local": a new instance of this run's size, even where `ray start` left a cluster
                    ray.init(address="local", num_cpus=max(workers, 1), **kwargs)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = f"--ray-address {address}: cannot reach a Ray cluster" if address else \
                    "--executor ray: cannot start a local Ray instance"
                raise InputError(f"{where} ({exc})") from None
            self._owns = True
        else:
            self._owns = False
        ref = ray.put(payload)

        @ray.remote(num_cpus=1)
        class _Actor:
            def __init__(self, payload_ref) -> None:
                self.evaluator = Evaluator(payload_ref.base, payload_ref.data, payload_ref.settings)

            def evaluate(self, genome_json: str, stage: str) -> Evaluation:
                with one_thread():
                    return self.evaluator.evaluate(genome_json, stage)

        self.actors = [_Actor.remote(ref) for _ in range(max(workers, 1))]
        self.pool = ActorPool(self.actors)

    def evaluate(self, genomes: list[str], stage: str,
                 done: Callable[[Evaluation], None] | None = None) -> list[Evaluation]:
        out = []
        # ActorPool.map yields results in submission order, whichever actor finished first.
        for ev in self.pool.map(lambda actor, g: actor.evaluate.remote(g, stage), genomes):
            out.append(ev)
            if done:
                done(ev)
        return out

    def close(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(actor)
        if self._owns:
            self.ray.shutdown()


def check_executor(kind: str, address: str | None) -> None:
    """Refuse executor settings that cannot work, before any work or file is touched."""
    if kind not in ("local", "ray"):
        raise InputError(f"--executor {kind}: expected local or ray")
    if kind == "local" and address:
        raise InputError("--ray-address needs --executor ray")
    if kind == "ray" and importlib.util.find_spec("ray") is None:
        raise InputError(f"--executor ray needs Ray: {RAY_HINT}")


def make_executor(payload: Payload, kind: str, workers: int, address: str | None):
    check_executor(kind, address)
    if kind == "ray":
        return RayExecutor(payload, workers, address)
    return LocalExecutor(payload, workers)


__all__ = ["LocalExecutor", "Payload", "RayExecutor", "check_executor", "make_executor"]
