"""What the HTTP and gRPC front ends share: the engines, the batcher, the metrics, the limits,
the credentials."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from prometheus_client import CollectorRegistry

from sae import __version__
from sae.engine import Engine, EngineCounters
from sae.errors import InputError
from sae.service.batcher import Batcher, ShuttingDownError
from sae.service.config import ServiceConfig
from sae.service.credentials import Credentials
from sae.service.metrics import ServiceMetrics
from sae.service.process_worker import ProcessEngine
from sae.service.schema import RequestError
from sae.service.supervisor import SupervisedEngine
from sae.service.tokenizer import TokenizerStage
from sae.windows import cut_to_capacity

#: Characters of a request tokenized on the event loop at most (when the word cache answers
#: all its texts): about 1 ms of it here (~60 ns a character). Larger requests go to the
#: tokenizer thread, where the interpreter hands the loop its turn every few ms: 30
#: concurrent requests of 1,000 texts of 120 words (~40 ms each on the loop) stalled /health
#: for up to 3.6 s, and signals were handled late.
LOOP_CHARS = 16_384


class InferenceWorker(Protocol):
    """What the batcher needs of a worker: an :class:`Engine`, a :class:`ProcessEngine`, or a
    :class:`~sae.service.supervisor.SupervisedEngine`."""

    def embed_tokens(self, token_ids: Sequence[Sequence[int]], *, check: bool = True) -> np.ndarray: ...

    def counters_snapshot(self) -> EngineCounters: ...


class EmbeddingService:
    """Embeds texts for both front ends through one :class:`Batcher`.

    ``engine`` tokenizes requests (on the event loop, or on a thread of their own when
    the word cache cannot answer) and describes the service;
    ``workers`` embed the batches, each on a thread of its own: by default the engine
    itself; see :func:`make_workers`. Call :meth:`start` and :meth:`close` on the
    event loop that serves requests. ``credentials`` are read from ``config`` when not given
    (``ValueError`` for files that cannot serve).
    """

    def __init__(
        self,
        engine: Engine,
        config: ServiceConfig,
        workers: Sequence[InferenceWorker] | None = None,
        registry: CollectorRegistry | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.workers = list(workers) if workers is not None else [engine]
        if not self.workers:
            raise ValueError("EmbeddingService: at least one worker is needed")
        if len(self.workers) > 1 and not engine.backend.concurrent_batches:
            raise ValueError(f"EmbeddingService: the {engine.backend.name} backend embeds one batch at a "
                             "time; give it one worker")
        self.engine = engine
        self.config = config
        if credentials is not None and credentials.config != config:
            raise ValueError("EmbeddingService: the credentials were read for another configuration")
        self.credentials = credentials if credentials is not None else Credentials(config)
        self.metrics = ServiceMetrics(engine, self.workers, registry)
        self.batcher = Batcher(
            # The ids come from the tokenizer stage, this Algorithm's own tokenizer: in range.
            [functools.partial(worker.embed_tokens, check=False) for worker in self.workers],
            engine.dim,
            max_batch_tokens=config.max_batch_tokens,
            max_wait=config.max_wait_ms / 1000,
            max_queue=config.max_queue,
            observer=self.metrics,
            retired=lambda worker: getattr(self.workers[worker], "state", None) == "failed",
            ready=self.worker_ready,
        )
        self.metrics.track_queue(lambda: self.batcher.admitted, lambda: self.batcher.waiting)
        self.metrics.track_workers(lambda: self.workers_ready)
        if self.credentials.tls is not None:  # TLS is fixed at start; a reload changes the certificate
            self.metrics.track_certificate(lambda: self.credentials.tls.not_after)
        #: false before start and once a shutdown has begun: health checks fail, load balancers move on
        self.serving = False
        # Looked up per call, so a test can watch the engine's tokenize.
        self._tokenizer = TokenizerStage(lambda texts: self.engine.tokenize(texts))

    @property
    def healthy(self) -> bool:
        """Serving, no worker given up, and some worker able to embed now."""
        return self.health()[0] is None

    def worker_ready(self, worker: int) -> bool:
        """Whether worker ``worker`` can embed a batch now (an engine process being
        restarted, or given up on, cannot; an engine on a thread always can)."""
        return getattr(self.workers[worker], "alive", True)

    @property
    def workers_ready(self) -> int:
        """Workers that can embed a batch now."""
        return sum(self.worker_ready(w) for w in range(len(self.workers)))

    def health(self) -> tuple[str | None, str | None]:
        """``(why the server is unhealthy, why it is degraded)`` in a few words each, from
        one look at the workers; None where it is not.

        A worker whose engine process is being restarted makes the server unhealthy only
        when no other worker can take its batches (degraded otherwise); one that is given
        up makes it unhealthy until the server is restarted."""
        if not self.serving:
            return "the server is starting or shutting down", None
        down = [getattr(worker, "state", "ready") for w, worker in enumerate(self.workers)
                if not self.worker_ready(w)]
        if not down:
            return None, None
        if "failed" in down:
            return "an engine process kept failing and is not restarted any more", None
        if len(down) < len(self.workers):
            return None, (f"{len(down)} of {len(self.workers)} engine processes died; "
                          f"{'another is' if len(down) == 1 else 'others are'} starting")
        if "restarting" in down:
            return "an engine process died; another is starting", None
        return "an engine process died", None

    @property
    def model(self) -> str:
        """The name answered as OpenAI's ``model``: the Algorithm's name."""
        return self.engine.algorithm.name

    def info(self) -> dict[str, Any]:
        """The Algorithm, backend and limits (``GET /info``, gRPC ``Info``)."""
        engine, config = self.engine, self.config
        return {
            "algorithm": engine.algorithm.name,
            "content_hash": engine.algorithm.content_hash,
            "dim": engine.dim,
            "backend": engine.backend.name,
            "backend_description": engine.backend.description,
            "adapter": engine.backend.description if engine.backend.name == "gpu" else "",
            "version": __version__,
            "max_batch_tokens": config.max_batch_tokens,
            "max_wait_ms": config.max_wait_ms,
            "max_queue": config.max_queue,
            "max_texts": config.max_texts,
            "max_body_bytes": config.max_body_bytes,
            "drain_seconds": config.drain_seconds,
            "stream_capacity": engine.caps.stream,
            "workers": len(self.workers),
        }

    def reload_credentials(self) -> str:
        """Read the API key file and the TLS files again (SIGHUP): a few words on what now
        serves. Raises ``ValueError`` in one line, the previous credentials still serving,
        when a file cannot serve; counted either way (``sae_credential_reloads_total``)."""
        try:
            done = self.credentials.reload()
        except ValueError:
            self.metrics.credential_reloads.labels("refused").inc()
            raise
        self.metrics.credential_reloads.labels("reloaded").inc()
        return done

    def start(self) -> None:
        self.batcher.start()
        self.serving = True

    def begin_shutdown(self) -> None:
        """Health turns bad and queued texts stop waiting for company; requests still finish."""
        self.serving = False
        self.batcher.drain()

    def cut(self) -> None:
        """Answer every admitted request :class:`~sae.service.batcher.ShuttingDownError` now
        (a second signal, or the drain's time is up); nothing more is embedded."""
        self.serving = False
        self.batcher.cut()
        self._tokenizer.fail(ShuttingDownError("the server is shutting down; the request was cut"))

    async def close(self) -> None:
        """Embed every admitted request, then stop the inference workers (and their processes).

        ``engine`` stays open, also when it is a worker: it is the caller's to close, as it
        was the caller's to make (and it still describes the service)."""
        self.serving = False
        try:
            await self.batcher.close()
        finally:
            self._tokenizer.close()
            for worker in self.workers:
                close = getattr(worker, "close", None)
                if close is not None and worker is not self.engine:
                    await asyncio.get_running_loop().run_in_executor(None, close)

    def check_count(self, texts: Sequence[str], param: str = "inputs") -> None:
        if not texts:
            raise RequestError(f"'{param}' is empty; send at least one text", param=param)
        if len(texts) > self.config.max_texts:
            raise RequestError(f"'{param}' has {len(texts)} texts, more than the limit of "
                               f"{self.config.max_texts} per request", param=param, kind="too_large")

    async def embed(self, texts: list[str], *, truncate: bool = False) -> tuple[np.ndarray, int]:
        """Vectors of ``texts`` (``(n, dim)`` float32) and the tokens embedded: a text longer
        than the stream capacity whole, in windows (:mod:`sae.windows`), or with ``truncate``
        its first tokens.

        Tokenized here, once, so the batcher knows each text's cost: on the event loop
        when the word cache answers every text and they hold at most :data:`LOOP_CHARS`
        characters (a few µs a text, holding the interpreter lock wherever it runs, so a
        thread would only add hand-offs), else on the tokenizer's thread with the
        requests that wait beside it. Raises the batcher's
        :class:`~sae.service.batcher.QueueFullError` and
        :class:`~sae.service.batcher.ShuttingDownError`.
        """
        # Admitted before any work: a full queue answers at once, and requests that wait for
        # the tokenizer thread count against --max-queue (they were not, and piled up there).
        with self.batcher.admission():
            if sum(map(len, texts)) <= LOOP_CHARS and self.engine.algorithm.token_ids.covers(texts):
                token_ids = self.engine.tokenize(texts)
            else:
                token_ids = await self._tokenizer.tokenize(texts)
            if truncate:
                cut_to_capacity(token_ids, self.engine.caps.stream)
            vectors = await self.batcher.embed(token_ids, admitted=True)
        return vectors, sum(map(len, token_ids))


def default_workers() -> int:
    """Inference workers on the numpy path: one per CPU but one, at most 4.

    The server's own process needs a core for HTTP, gRPC and tokenizing; on 2 cores,
    one worker (docs/SERVE.md).
    """
    return max(1, min((os.cpu_count() or 1) - 1, 4))


def make_workers(
    engine: Engine,
    algorithm: str | Path | None,
    count: int | None = None,
    *,
    processes: bool = False,
) -> list[InferenceWorker]:
    """The inference workers for ``engine``'s backend.

    On the numpy path ``count`` (default :func:`default_workers`) engines: ``engine``
    and copies sharing its Algorithm, run on threads of this process; or with
    ``processes`` each in a process of its own (:class:`ProcessEngine`, loading
    ``algorithm``: a directory, or None for the bundled one), which do not share this
    process's interpreter lock (``sae serve``'s default: faster from 8 clients up even
    on 2 cores, docs/SERVE.md), each replaced when it dies
    (:class:`~sae.service.supervisor.SupervisedEngine`).
    On the GPU, whose queue takes one batch at a time, the engine itself; a ``count``
    above 1 raises :class:`~sae.errors.InputError`. Every engine is warmed up
    (:meth:`Engine.warm_up`) before this returns, so the first requests are as fast as later ones.
    """
    if not engine.backend.concurrent_batches:
        if count not in (None, 1):
            raise InputError(f"--workers {count}: the {engine.backend.name} backend embeds one batch at a "
                             "time; use 1")
        engine.warm_up()
        return [engine]
    count = count if count is not None else default_workers()
    if not processes:
        engine.warm_up()  # the copies share its vector table (each process warms its own)
        # The engine's capacities too: a worker with others would answer other bytes (or refuse
        # a text the first accepts) depending on which worker took the batch.
        others = [Engine(engine.algorithm, backend=engine.backend.name, batch_size=engine.batch_size, threads=1,
                         caps=engine.caps)
                  for _ in range(count - 1)]
        return [engine, *others]
    workers: list[InferenceWorker] = []
    # Each restart loads the same directory and checks the same hash: an Algorithm changed
    # on disk meanwhile fails the restart rather than being served beside the first.
    start = functools.partial(ProcessEngine, algorithm, engine.algorithm.content_hash, engine.batch_size, engine.caps)
    try:
        for i in range(count):
            workers.append(SupervisedEngine(start, name=f"worker {i}"))
    except BaseException:
        for worker in workers:
            worker.close()  # type: ignore[attr-defined]
        raise
    return workers
