"""The HTTP front end on a real server (uvicorn on loopback): shapes, errors, limits, metrics."""

from __future__ import annotations

import base64
import gzip
import threading
import time

import httpx
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import running_server, tiny_service

from sae import Engine
from sae.service.service import LOOP_CHARS

TEXTS = ["the cat runs", "a new york city dog", "", "not happy , very sad !", "the " * 300]


@pytest.fixture(scope="module")
def tiny_server(tiny_dir):
    """One server for the module: the tiny Algorithm, small limits so tests can exceed them."""
    service = tiny_service(tiny_dir, max_texts=64, max_body_bytes=64 * 1024, max_wait_ms=1)
    with running_server(service) as addresses:
        yield addresses, service


@pytest.fixture(scope="module")
def engine(tiny_dir) -> Engine:
    return Engine(tiny_dir, backend="cpu")


@pytest.fixture(scope="module")
def http(tiny_server):
    addresses, _ = tiny_server
    with httpx.Client(base_url=addresses.http_url, timeout=30) as client:
        yield client


def one_line_json(response: httpx.Response) -> dict:
    text = response.text
    assert "\n" not in text.strip(), text
    assert response.headers["content-type"].startswith("application/json")
    return orjson.loads(text)


def test_openai_float_and_base64_are_the_engines_bytes(http, engine):
    expected = engine.embed(TEXTS)
    for encoding in ("float", "base64"):
        r = http.post("/v1/embeddings", json={"input": TEXTS, "model": "tiny", "encoding_format": encoding})
        assert r.status_code == 200
        doc = one_line_json(r)
        assert doc["object"] == "list" and doc["model"] == "tiny"
        assert [d["index"] for d in doc["data"]] == list(range(len(TEXTS)))
        assert all(d["object"] == "embedding" for d in doc["data"])
        if encoding == "float":
            got = np.array([d["embedding"] for d in doc["data"]], dtype=np.float32)
        else:
            got = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in doc["data"]])
        assert got.tobytes() == expected.tobytes()
        tokens = sum(len(t) for t in engine.tokenize(TEXTS))
        assert doc["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_a_single_string_input(http, engine):
    doc = http.post("/v1/embeddings", json={"input": "the cat"}).json()
    assert len(doc["data"]) == 1
    assert np.array(doc["data"][0]["embedding"], dtype=np.float32).tobytes() == engine.embed(["the cat"]).tobytes()


def test_openai_client(tiny_server, engine):
    openai = pytest.importorskip("openai", reason="pip install -e '.[serve-test]'")
    addresses, _ = tiny_server
    client = openai.OpenAI(base_url=addresses.http_url + "/v1", api_key="unused", max_retries=0)
    result = client.embeddings.create(input=TEXTS[:3], model="tiny")  # the client asks for base64
    got = np.array([d.embedding for d in result.data], dtype=np.float32)
    assert got.tobytes() == engine.embed(TEXTS[:3]).tobytes()
    with pytest.raises(openai.BadRequestError, match="dimensions"):
        client.embeddings.create(input="x", model="tiny", dimensions=4)
    name = engine.algorithm.name  # clients that list the models first find the Algorithm
    assert [m.id for m in client.models.list()] == [name]
    assert client.models.retrieve(name).owned_by == "sae"
    with pytest.raises(openai.NotFoundError, match="this server embeds with"):
        client.models.retrieve("gpt-nothing")


def test_tei_embed(http, engine):
    r = http.post("/embed", json={"inputs": TEXTS})
    assert r.status_code == 200
    assert np.array(r.json(), dtype=np.float32).tobytes() == engine.embed(TEXTS).tobytes()
    assert np.array(http.post("/embed", json={"inputs": "the cat"}).json()).shape == (1, engine.dim)


def test_a_long_text_is_embedded_whole_unless_tei_asks_to_truncate(http, engine, tiny_dir):
    long = "the new york city players , not very big cat dog runs " * 30  # over 128 tokens
    whole = http.post("/v1/embeddings", json={"input": [long, "a dog"]}).json()
    assert np.array([d["embedding"] for d in whole["data"]], dtype=np.float32).tobytes() == \
        engine.embed([long, "a dog"]).tobytes()
    assert whole["usage"]["prompt_tokens"] == sum(map(len, engine.tokenize([long, "a dog"])))
    tei = np.array(http.post("/embed", json={"inputs": [long]}).json(), dtype=np.float32)
    assert tei.tobytes() == engine.embed([long]).tobytes()
    cut = np.array(http.post("/embed", json={"inputs": [long], "truncate": True}).json(), dtype=np.float32)
    assert cut.tobytes() == Engine(tiny_dir, backend="cpu", long_texts="truncate").embed([long]).tobytes()
    assert cut.tobytes() != tei.tobytes()


def test_health_and_info(http, tiny_server, engine):
    assert http.get("/health").json() == {"status": "ok"}
    info = http.get("/info").json()
    assert info["algorithm"] == "tiny" and info["content_hash"] == engine.algorithm.content_hash
    assert info["dim"] == engine.dim and info["backend"] == "cpu" and info["stream_capacity"] == 128
    assert info["max_texts"] == 64 and info["max_body_bytes"] == 64 * 1024 and info["workers"] == 2
    assert info["drain_seconds"] == 30.0


BAD = [
    ("/v1/embeddings", b"{", 400, "not valid JSON"),
    ("/v1/embeddings", b'{"input": "caf\xe9"}', 400, "not valid UTF-8"),
    ("/v1/embeddings", b'{"input": []}', 400, "empty list"),
    ("/v1/embeddings", b'{"input": [1, 2]}', 400, "token array"),
    ("/v1/embeddings", b'{"input": {"a": 1}}', 400, "must be a string or a list"),
    ("/v1/embeddings", b'{"input": "x", "dimensions": 4}', 400, "'dimensions' is not supported"),
    ("/v1/embeddings", b"", 400, "body is empty"),
    ("/v1/embeddings", orjson.dumps({"input": ["a"] * 65}), 413, "limit of 64"),
    ("/embed", b'{"inputs": 7}', 400, "must be a string or a list"),
    ("/embed", b'{"inputs": ["a", 1]}', 400, "'inputs[1]' must be a string"),
    ("/embed", b"\xff\xfe\x00", 400, "not valid UTF-8"),
]


@pytest.mark.parametrize(("path", "raw", "status", "words"), BAD)
def test_bad_requests_get_a_4xx_and_one_line_of_json(http, path, raw, status, words):
    r = http.post(path, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == status
    doc = one_line_json(r)
    message = doc["error"]["message"] if path.startswith("/v1") else doc["error"]
    assert words in message


def test_openai_errors_have_openais_shape(http):
    doc = http.post("/v1/embeddings", json={"input": "x", "dimensions": 8}).json()
    assert doc["error"]["type"] == "invalid_request_error" and doc["error"]["param"] == "dimensions"
    assert doc["error"]["code"] == "bad_request"


def test_oversized_bodies_are_413_declared_or_streamed(http):
    big = orjson.dumps({"input": "x" * (65 * 1024)})
    r = http.post("/v1/embeddings", content=big)
    assert r.status_code == 413 and "limit of 65536" in one_line_json(r)["error"]["message"]

    def chunks():  # no Content-Length: chunked transfer, counted as it arrives
        for _ in range(40):
            yield b"x" * 4096

    r = http.post("/embed", content=chunks())
    assert r.status_code == 413 and "exceeds the limit" in one_line_json(r)["error"]


def test_unknown_paths_and_methods_answer_json(http):
    r = http.get("/nope")
    assert r.status_code == 404 and "Not Found" in one_line_json(r)["error"]
    r = http.get("/embed")
    assert r.status_code == 405 and one_line_json(r)["error_type"] == "Validation"
    r = http.get("/v1/embeddings")  # OpenAI's shape, as every error of this path
    assert r.status_code == 405
    error = one_line_json(r)["error"]
    assert "GET /v1/embeddings: Method Not Allowed" in error["message"]
    assert error["type"] == "invalid_request_error" and error["code"] == "bad_request"


def test_a_compressed_body_is_415_naming_its_encoding(http):
    body = gzip.compress(orjson.dumps({"input": "the cat", "inputs": "the cat"}))
    for path in ("/v1/embeddings", "/embed"):
        r = http.post(path, content=body, headers={"content-encoding": "gzip"})
        assert r.status_code == 415  # was 400 "not valid UTF-8"
        doc = one_line_json(r)
        message = doc["error"]["message"] if path.startswith("/v1") else doc["error"]
        assert "Content-Encoding 'gzip' is not supported" in message
    r = http.post("/embed", json={"inputs": "the cat"}, headers={"content-encoding": "identity"})
    assert r.status_code == 200


def test_metrics(tiny_dir):
    service = tiny_service(tiny_dir, workers=1)
    with running_server(service) as addresses, httpx.Client(base_url=addresses.http_url) as http:
        for _ in range(3):
            assert http.post("/v1/embeddings", json={"input": ["the cat", "a dog runs"]}).status_code == 200
        assert http.post("/embed", json={"inputs": ["the cat", ""]}).status_code == 200
        assert http.post("/embed", json={"inputs": []}).status_code == 400
        assert http.post("/v1/embeddings", content=b"x" * (3 * 1024 * 1024)).status_code == 413
        assert http.get("/v1/embeddings").status_code == 405  # starlette's refusals are counted too
        assert http.get("/nope").status_code == 404
        text = http.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    value = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert value[("sae_request_duration_seconds_count", (("api", "openai"),))] == 4
    assert value[("sae_request_duration_seconds_count", (("api", "tei"),))] == 2
    assert value[("sae_request_texts_sum", (("api", "openai"),))] == 6
    assert value[("sae_request_errors_total", (("api", "tei"), ("kind", "bad_request")))] == 2
    assert value[("sae_request_errors_total", (("api", "openai"), ("kind", "bad_request")))] == 1
    assert value[("sae_request_errors_total", (("api", "openai"), ("kind", "too_large")))] == 1
    assert value[("sae_batch_texts_sum", ())] == 8
    # The batcher's cost: the empty text counts 1 token, as against --max-batch-tokens.
    tokens = sum(len(t) for t in service.engine.tokenize(["the cat", "a dog runs"] * 3 + ["the cat"]))
    assert value[("sae_batch_tokens_sum", ())] == tokens + 1
    assert value[("sae_engine_tokens_total", ())] == tokens
    assert value[("sae_queue_duration_seconds_count", ())] == 4
    assert value[("sae_inference_duration_seconds_count", ())] == value[("sae_batch_texts_count", ())] >= 1
    counters = service.engine.counters_snapshot()
    assert value[("sae_engine_texts_total", ())] == counters.texts == 8
    assert value[("sae_engine_rewrites_committed_total", ())] == counters.committed > 0
    assert value[("sae_engine_rewrites_reverted_total", ())] == counters.reverted
    assert value[("sae_engine_annealing_steps_total", ())] == counters.steps > 0
    assert value[("sae_requests_admitted", ())] == 0
    assert value[("sae_service_info", (("algorithm", "tiny"), ("backend", "cpu"),
                                       ("content_hash", service.engine.algorithm.content_hash),
                                       ("version", "0.1.0")))] == 1
    assert all(name.startswith("sae_") for name in families)


def test_a_full_queue_answers_429_at_once(tiny_dir):
    # One admitted request waits 1.5 s for company, so the queue (1 request) stays full.
    service = tiny_service(tiny_dir, workers=1, max_queue=1, max_wait_ms=1500)
    with running_server(service) as addresses, httpx.Client(base_url=addresses.http_url, timeout=30) as http:
        first: dict = {}
        waiting = threading.Thread(target=lambda: first.setdefault("r", http.post("/embed", json={"inputs": "a"})))
        waiting.start()
        deadline = time.monotonic() + 10
        while service.batcher.admitted < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.perf_counter()
        r = http.post("/v1/embeddings", json={"input": "b"})
        refused_after = time.perf_counter() - started
        waiting.join()
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert one_line_json(r)["error"]["code"] == "queue_full"
    assert refused_after < 1.0
    assert first["r"].status_code == 200


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/v1/embeddings", "/embed"]),
    raw=st.binary(max_size=300)
    | st.dictionaries(st.sampled_from(["input", "inputs", "encoding_format", "dimensions", "model", "normalize"]),
                      st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=30)
                      | st.lists(st.text(max_size=20) | st.integers(-(2**63), 2**63 - 1), max_size=5),
                      max_size=3).map(orjson.dumps),
)
def test_fuzzed_bodies_never_take_the_server_down(http, path, raw):
    r = http.post(path, content=raw)
    assert r.status_code in (200, 400, 413), r.text
    if r.status_code != 200:
        one_line_json(r)


def test_the_server_is_still_healthy_after_the_fuzzing(http):
    assert http.get("/health").status_code == 200
    assert http.post("/embed", json={"inputs": "the cat"}).status_code == 200


def test_requests_are_tokenized_on_the_loop_unless_the_tokenizer_is_needed(tiny_dir, monkeypatch):
    """Texts the word cache answers are tokenized on the event loop (a thread would only add
    hand-offs); a request with a text the tokenizer must take goes to the service's
    tokenizer thread, which lets go of the interpreter lock while it works (docs/SERVE.md)."""
    service = tiny_service(tiny_dir, workers=1, max_wait_ms=1)
    threads: list[str] = []
    tokenize = service.engine.tokenize

    def recording(texts):
        threads.append(threading.current_thread().name)
        return tokenize(texts)

    monkeypatch.setattr(service.engine, "tokenize", recording)
    with running_server(service) as addresses, httpx.Client(base_url=addresses.http_url, timeout=30) as client:
        for _ in range(2):
            assert client.post("/embed", json={"inputs": TEXTS[:2]}).status_code == 200
        assert client.post("/embed", json={"inputs": [TEXTS[0], "le café “crème”"]}).status_code == 200
        assert client.post("/embed", json={"inputs": [TEXTS[0], "no\u00a0break"]}).status_code == 200
        # A large request the cache could answer: on the thread, so the loop keeps answering.
        large = ["the cat " * 64] * (LOOP_CHARS // 512 + 1)
        assert client.post("/embed", json={"inputs": large}).status_code == 200
        assert client.post("/embed", json={"inputs": large[1:]}).status_code == 200
    assert len(threads) == 6
    assert not any(name.startswith("sae-tokenize") for name in threads[:3])
    assert threads[3].startswith("sae-tokenize") and threads[4].startswith("sae-tokenize")
    assert not threads[5].startswith("sae-tokenize")


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 5), st.integers(1, 400), st.integers(0, 2**32 - 1))
def test_base64_rows_are_each_rows_little_endian_bytes(rows, dim, seed):
    # Both paths: rows of a multiple of 3 bytes (encoded at once, then cut) and the rest.
    from sae.service.http import base64_rows

    vectors = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    encoded = base64_rows(vectors)
    assert [base64.b64decode(text) for text in encoded] == [row.astype("<f4").tobytes() for row in vectors]
