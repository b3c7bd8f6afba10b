"""The service on the GPU backend (lavapipe in CI): one worker, the GPU engine's own bytes."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from service_helpers import running_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gpu"))
from gpu_helpers import gpu_skip_reason

from sae import Engine
from sae.errors import InputError
from sae.service import EmbeddingService, ServiceConfig, make_workers

reason = gpu_skip_reason()
pytestmark = pytest.mark.skipif(reason is not None, reason=reason or "")

TEXTS = ["the cat runs", "a new york city dog", "", "not happy , very sad !", "play ##ing the red house"]


def test_the_gpu_service_answers_the_gpu_engines_bytes(tiny_dir):
    engine = Engine(tiny_dir, backend="gpu")
    workers = make_workers(engine, tiny_dir)
    assert workers == [engine]
    service = EmbeddingService(engine, ServiceConfig(port=0, grpc_port=0, max_wait_ms=1), workers)
    expected = Engine(tiny_dir, backend="gpu").embed(TEXTS)
    with running_server(service) as addresses, httpx.Client(base_url=addresses.http_url, timeout=60) as http:
        info = http.get("/info").json()
        assert info["backend"] == "gpu" and info["adapter"] and info["workers"] == 1
        for i in range(len(TEXTS)):  # each text alone and with the others: the same bytes
            alone = np.array(http.post("/embed", json={"inputs": TEXTS[i]}).json(), dtype=np.float32)
            assert alone.tobytes() == expected[i : i + 1].tobytes()
        together = np.array(http.post("/embed", json={"inputs": TEXTS}).json(), dtype=np.float32)
    assert together.tobytes() == expected.tobytes()
    np.testing.assert_allclose(together, Engine(tiny_dir, backend="cpu").embed(TEXTS), atol=1e-5)


def test_the_gpu_takes_one_worker(tiny_dir):
    with pytest.raises(InputError, match="one batch at a time"):
        make_workers(Engine(tiny_dir, backend="gpu"), tiny_dir, 2)
