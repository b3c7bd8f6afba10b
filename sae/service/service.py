"""What the HTTP and gRPC front ends share: the engines, the batcher, the metrics, the limits."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from sae import __version__
from sae.algorithm import Algorithm
from sae.engine import Engine
from sae.errors import InputError
from sae.service.batcher import Batcher
from sae.service.config import ServiceConfig
from sae.service.metrics import ServiceMetrics
from sae.service.schema import RequestError


class EmbeddingService:
    """Embeds texts for both front ends through one :class:`Batcher`.

    ``engines`` all hold the same Algorithm; each becomes one inference worker
    (several only where the backend allows batches side by side: the numpy path).
    Call :meth:`start` and :meth:`close` on the event loop that serves requests.
    """

    def __init__(
        self, engines: Sequence[Engine], config: ServiceConfig, registry: CollectorRegistry | None = None
    ) -> None:
        if not engines:
            raise ValueError("EmbeddingService: at least one engine is needed")
        hashes = {engine.algorithm.content_hash for engine in engines}
        if len(hashes) != 1:
            raise ValueError("EmbeddingService: the engines hold different Algorithms")
        if len(engines) > 1 and not all(engine.backend.concurrent_batches for engine in engines):
            raise ValueError(f"EmbeddingService: the {engines[0].backend.name} backend embeds one batch at a "
                             "time; give it one engine")
        self.engines = list(engines)
        self.engine = self.engines[0]
        self.config = config
        self.metrics = ServiceMetrics(self.engines, registry)
        self.batcher = Batcher(
            [engine.embed_tokens for engine in self.engines],
            self.engine.dim,
            max_batch_tokens=config.max_batch_tokens,
            max_wait=config.max_wait_ms / 1000,
            max_queue=config.max_queue,
            observer=self.metrics,
        )
        self.metrics.track_queue(lambda: self.batcher.admitted, lambda: self.batcher.waiting)
        #: false before start and once a shutdown has begun: health checks fail, load balancers move on
        self.serving = False

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
            "stream_capacity": engine.caps.stream,
            "workers": len(self.engines),
        }

    def start(self) -> None:
        self.batcher.start()
        self.serving = True

    def begin_shutdown(self) -> None:
        """Health turns bad and queued texts stop waiting for company; requests still finish."""
        self.serving = False
        self.batcher.drain()

    async def close(self) -> None:
        """Embed every admitted request, then stop the inference workers."""
        self.serving = False
        await self.batcher.close()

    def check_count(self, texts: Sequence[str], param: str = "inputs") -> None:
        if not texts:
            raise RequestError(f"'{param}' is empty; send at least one text", param=param)
        if len(texts) > self.config.max_texts:
            raise RequestError(f"'{param}' has {len(texts)} texts, more than the limit of "
                               f"{self.config.max_texts} per request", param=param, kind="too_large")

    async def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Vectors of ``texts`` (``(n, dim)`` float32) and the tokens they held after truncation.

        Tokenized here, once, so the batcher knows each text's cost; raises the
        batcher's :class:`~sae.service.batcher.QueueFullError` and
        :class:`~sae.service.batcher.ShuttingDownError`.
        """
        self.batcher.check_open()  # a full queue answers before any work
        token_ids = self.engine.tokenize(texts)
        vectors = await self.batcher.embed(token_ids)
        return vectors, sum(map(len, token_ids))


def default_workers() -> int:
    """Inference workers on the numpy path: one per CPU but one, at most 4.

    The event loop needs a core of its own for HTTP, gRPC and tokenizing; on 2 cores
    one worker, which also gets the larger batches (docs/SERVE.md).
    """
    return max(1, min((os.cpu_count() or 1) - 1, 4))


def make_engines(
    algorithm: str | Path | Algorithm | None = None,
    *,
    backend: str = "auto",
    adapter: str | None = None,
    workers: int | None = None,
    batch_size: int = 1024,
) -> list[Engine]:
    """One engine per inference worker, all holding one loaded Algorithm.

    ``workers`` defaults to :func:`default_workers` where the backend embeds batches
    side by side (the numpy path) and is 1 on the GPU, whose queue takes one batch
    at a time; asking for more there raises :class:`~sae.errors.InputError`.
    Each engine embeds its batch on one thread: the workers are the parallelism.
    """
    first = Engine(algorithm, backend=backend, adapter=adapter, batch_size=batch_size, threads=1)
    if not first.backend.concurrent_batches:
        if workers not in (None, 1):
            raise InputError(f"--workers {workers}: the {first.backend.name} backend embeds one batch at a "
                             "time; use 1")
        return [first]
    count = workers if workers is not None else default_workers()
    others = [Engine(first.algorithm, backend=first.backend.name, batch_size=batch_size, threads=1)
              for _ in range(count - 1)]
    return [first, *others]
