"""EmbeddingService: admission counts a request from its arrival, tokenizing included."""

from __future__ import annotations

import asyncio
import threading

import pytest
from service_helpers import tiny_service

from sae.service.batcher import QueueFullError


def test_requests_waiting_for_the_tokenizer_count_against_the_queue(tiny_dir, monkeypatch):
    # They were admitted only once tokenized: behind a slow tokenizer call, the 429s came
    # seconds late instead of at once.
    service = tiny_service(tiny_dir, workers=1, max_queue=1)
    gate = threading.Event()
    tokenize = service.engine.tokenize

    def held(texts):
        if threading.current_thread().name.startswith("sae-tokenize"):
            gate.wait(10)
        return tokenize(texts)

    monkeypatch.setattr(service.engine, "tokenize", held)

    async def main():
        service.start()
        first = asyncio.ensure_future(service.embed(["no\u00a0break"]))  # the tokenizer thread's
        await asyncio.sleep(0.05)
        assert service.batcher.admitted == 1
        with pytest.raises(QueueFullError):
            await service.embed(["\u200bzero width"])
        gate.set()
        vectors, _ = await first
        await service.close()
        return vectors

    assert asyncio.run(main()).shape == (1, service.engine.dim)


def test_every_worker_has_the_engines_capacities(tiny_dir):
    """make_workers built its copies (threads and processes) with the default capacities,
    so a batch's bytes, or whether a long text was refused, depended on the worker."""
    import numpy as np

    from sae import Engine
    from sae.layout import Capacities
    from sae.service import make_workers

    engine = Engine(tiny_dir, backend="cpu", caps=Capacities(stream=256, rules=64))
    ids = engine.tokenize([" ".join(["the cat sat"] * 60)])  # 180 tokens: past the default 128
    assert len(ids[0]) > 128
    expected = engine.embed_tokens(ids)
    threads = make_workers(engine, tiny_dir, 2)
    processes = make_workers(engine, tiny_dir, 1, processes=True)
    try:
        for worker in [*threads, *processes]:
            assert np.array_equal(worker.embed_tokens(ids), expected)
    finally:
        for worker in processes:
            worker.close()


def test_thread_workers_share_one_warmed_vector_table(tmp_path):
    """The first requests must not compute vector rows: make_workers warms the engine up,
    and its copies read the same table."""
    from tiny import make_tiny

    from sae import Engine
    from sae.algorithm import save_algorithm
    from sae.service import make_workers

    directory = save_algorithm(make_tiny(transforms=2), tmp_path / "tiny", vector_dtype="float32")
    engine = Engine(directory, backend="cpu")
    assert not engine.backend.table.ready.all()
    workers = make_workers(engine, directory, 2)
    assert all(worker.backend.table is engine.backend.table for worker in workers)
    assert engine.backend.table.ready.all()


def test_close_closes_the_workers_it_was_given_but_not_the_callers_engine(tiny_dir):
    service = tiny_service(tiny_dir, workers=2)
    engine, copy = service.workers
    assert engine is service.engine

    async def main():
        service.start()
        vectors, _ = await service.embed(["a cat"])
        await service.close()
        return vectors

    vectors = asyncio.run(main())
    assert copy.closed  # the copy make_workers made: its host batches released with the service
    assert not engine.closed  # the caller's: it made it, it closes it
    assert engine.embed(["a cat"]).tobytes() == vectors.tobytes()
    engine.close()
