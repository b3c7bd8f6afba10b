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
