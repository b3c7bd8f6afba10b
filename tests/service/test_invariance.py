"""Batch invariance: what the service answers for a text is byte for byte what ``sae embed``
writes for it, whatever the text was batched with, under real concurrency.

The server is ``sae serve`` in a subprocess with the bundled default Algorithm; requests
of 1–32 texts drawn at random come from many clients at once (``tools/loadtest.py``'s
clients), and a small token budget splits requests across batches.
"""

from __future__ import annotations

import base64
import random
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import loadtest  # tools/loadtest.py: its clients and checks
import numpy as np
import pyarrow.parquet as pq
import pytest

from sae import Engine
from sae.cli import main as sae_main
from sae.evaluate import read_pairs
from sae.service.proto import embed_pb2, embed_pb2_grpc


def corpus() -> list[str]:
    """The bundled demo sentences and word salads made of them: empty, short, and over 128 tokens."""
    texts = read_pairs(loadtest.REPO / "sae" / "data" / "demo_pairs.tsv").unique_texts()
    words = " ".join(texts).split()
    rng = random.Random(7)
    salads = [" ".join(rng.choice(words) for _ in range(rng.choice([1, 3, 8, 12, 20, 40]))) for _ in range(220)]
    too_long = [" ".join(rng.choice(words) for _ in range(200)) for _ in range(8)]  # truncated to 128 tokens
    return texts + salads + too_long + ["", "   "]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return corpus()


@pytest.fixture(scope="module")
def parquet_rows(texts, tmp_path_factory) -> np.ndarray:
    """``sae embed`` of the corpus, read back from its Parquet file."""
    folder = tmp_path_factory.mktemp("embed")
    source = folder / "texts.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = folder / "out.parquet"
    assert sae_main(["embed", str(source), "-o", str(out), "--backend", "cpu"]) == 0
    table = pq.read_table(out)
    assert table.column("text").to_pylist() == texts
    return np.stack(table.column("embedding").to_numpy(zero_copy_only=False)).astype(np.float32)


@pytest.fixture(scope="module")
def server():
    # A small budget splits requests across batches; a short wait mixes clients in each batch.
    server = loadtest.start_server(None, ["--max-batch-tokens", "4096", "--max-wait-ms", "2"])
    yield server
    assert server.stop() == 0


def test_sae_embed_and_engine_embed_agree(texts, parquet_rows):
    assert Engine(backend="cpu").embed(texts).tobytes() == parquet_rows.tobytes()


def test_every_api_answers_sae_embeds_bytes_under_concurrency(texts, parquet_rows, server):
    url = f"http://127.0.0.1:{server.http_port}"
    rng = random.Random(3)
    plans = [rng.sample(range(len(texts)), rng.randint(1, 32)) for _ in range(96)]

    def check(k: int) -> None:
        picks = plans[k]
        batch = [texts[i] for i in picks]
        expected = parquet_rows[picks]
        kind = k % 4
        if kind == 0:
            doc = httpx.post(f"{url}/v1/embeddings", json={"input": batch}, timeout=60).json()
            got = np.array([d["embedding"] for d in doc["data"]], dtype=np.float32)
        elif kind == 1:
            doc = httpx.post(f"{url}/v1/embeddings", json={"input": batch, "encoding_format": "base64"},
                             timeout=60).json()
            rows = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in doc["data"]]
            got = np.stack(rows)
        elif kind == 2:
            got = np.array(httpx.post(f"{url}/embed", json={"inputs": batch}, timeout=60).json(), dtype=np.float32)
        else:
            with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
                reply = embed_pb2_grpc.EmbedderStub(channel).Embed(embed_pb2.EmbedRequest(inputs=batch), timeout=60)
            got = np.array([list(e.values) for e in reply.embeddings], dtype=np.float32)
        assert got.tobytes() == expected.tobytes(), f"request {k} ({['float', 'base64', 'tei', 'grpc'][kind]})"

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(check, range(len(plans))))


def test_ten_thousand_requests_from_64_clients(texts, parquet_rows, server):
    """The issue's figure: 10,000 requests, every answer checked byte for byte, no error."""
    reference = loadtest.Reference(parquet_rows)
    result = loadtest.run_level(server, texts, reference, 64, requests=10_000, seconds=600, seed=11)
    assert result.requests == 10_000
    assert result.errors == 0, result.first_error
    assert result.mismatches == 0
    # The load test's reading of the server's /metrics: every text of the level went
    # through an engine batch, and the small token budget split them into many batches.
    assert result.batch_texts == result.texts
    assert result.batches > 10 and 0 < result.inference_seconds
