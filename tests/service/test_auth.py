"""``--api-key``: every request but health checks and metrics scrapes must carry the key,
over HTTP and gRPC; the key is never written anywhere."""

from __future__ import annotations

import subprocess
import sys

import grpc
import httpx
import numpy as np
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from service_helpers import running_server, serve_once, tiny_service

from sae import Engine
from sae.service.auth import bearer_matches, check_api_key
from sae.service.config import ServiceConfig
from sae.service.proto import embed_pb2, embed_pb2_grpc

KEY = "sk-test_0123456789abcdefABCDEF+/="
GOOD = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def keyed_server(tiny_dir):
    service = tiny_service(tiny_dir, workers=1, api_key=KEY)
    with running_server(service) as addresses:
        yield addresses, service


@pytest.fixture(scope="module")
def http(keyed_server):
    addresses, _ = keyed_server
    with httpx.Client(base_url=addresses.http_url, timeout=30) as client:
        yield client


def unauthorized(http: httpx.Client, method: str, path: str, **kwargs) -> dict:
    r = http.request(method, path, **kwargs)
    assert r.status_code == 401, (path, r.text)
    assert r.headers["www-authenticate"] == "Bearer"
    assert KEY not in r.text
    return orjson.loads(r.content)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"},
                                     {"Authorization": KEY}, {"Authorization": f"Bearer {KEY}x"},
                                     {"Authorization": f"Bearer {KEY[:-1]}"}])
def test_http_requests_without_the_key_are_refused_in_their_apis_shape(http, headers):
    body = unauthorized(http, "POST", "/v1/embeddings", json={"input": "a cat"}, headers=headers)
    assert body["error"]["code"] == "unauthorized" and body["error"]["type"] == "invalid_request_error"
    assert "Authorization: Bearer KEY" in body["error"]["message"]
    body = unauthorized(http, "POST", "/embed", json={"inputs": "a cat"}, headers=headers)
    assert body["error_type"] == "Unauthorized"
    for path in ("/info", "/v1/models", "/v1/models/tiny", "/no/such/path"):
        unauthorized(http, "GET", path, headers=headers)


def test_http_requests_with_the_key_are_answered(http, tiny_dir):
    expected = Engine(tiny_dir, backend="cpu").embed(["a cat"])
    r = http.post("/embed", json={"inputs": "a cat"}, headers=GOOD)
    assert r.status_code == 200
    assert np.array(r.json(), dtype=np.float32).tobytes() == expected.tobytes()
    r = http.post("/v1/embeddings", json={"input": "a cat"}, headers={"Authorization": f"bearer  {KEY}"})
    assert r.status_code == 200  # the scheme in any case, more than one space
    info = http.get("/info", headers=GOOD)
    assert info.status_code == 200 and KEY not in info.text


def test_health_and_metrics_are_open_and_refusals_are_counted(http):
    assert http.get("/health").status_code == 200
    http.post("/embed", json={"inputs": "a cat"})
    metrics = http.get("/metrics")
    assert metrics.status_code == 200
    assert 'sae_request_errors_total{api="tei",kind="unauthorized"}' in metrics.text
    assert 'sae_request_errors_total{api="tei",kind="unauthorized"} 0.0' not in metrics.text
    assert KEY not in metrics.text


def test_grpc_calls_without_the_key_are_unauthenticated(keyed_server, tiny_dir):
    addresses, service = keyed_server
    expected = Engine(tiny_dir, backend="cpu").embed(["a dog"])[0].astype("<f4").tobytes()
    request = embed_pb2.EmbedRequest(inputs=["a dog"], encoding=embed_pb2.BYTES)
    with grpc.insecure_channel(addresses.grpc_target) as channel:
        stub = embed_pb2_grpc.EmbedderStub(channel)
        for metadata in (None, [("authorization", "Bearer wrong")]):
            for call in (lambda m: stub.Embed(request, timeout=30, metadata=m),
                         lambda m: list(stub.EmbedStream(iter([request]), timeout=30, metadata=m)),
                         lambda m: stub.Info(embed_pb2.InfoRequest(), timeout=30, metadata=m)):
                with pytest.raises(grpc.RpcError) as refused:
                    call(metadata)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "Authorization: Bearer KEY" in refused.value.details()
        good = [("authorization", f"Bearer {KEY}")]
        assert stub.Embed(request, timeout=30, metadata=good).embeddings[0].data == expected
        assert [r.embeddings[0].data for r in stub.EmbedStream(iter([request] * 2), timeout=30, metadata=good)] \
            == [expected] * 2
        assert stub.Info(embed_pb2.InfoRequest(), timeout=30, metadata=good).algorithm == "tiny"
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert service.metrics.errors.labels("grpc", "unauthorized")._value.get() == 6


def test_without_a_key_no_header_is_needed(tiny_dir):
    service = tiny_service(tiny_dir, workers=1)
    with running_server(service) as addresses:
        assert httpx.post(f"{addresses.http_url}/embed", json={"inputs": "a cat"}, timeout=30).status_code == 200


@pytest.mark.parametrize("key", ["", "two words", "tab\there", "clé", "x" * 4097])
def test_a_bad_key_is_refused_without_being_repeated(key):
    with pytest.raises(ValueError, match="api_key must be 1 to 4,096 visible ASCII characters") as refused:
        ServiceConfig(api_key=key)
    assert key not in str(refused.value) or key == ""


def test_the_key_stays_out_of_the_configurations_repr():
    assert KEY not in repr(ServiceConfig(api_key=KEY))
    check_api_key(KEY)


def test_bearer_matches_only_the_key():
    key = (KEY.encode(),)
    assert bearer_matches(f"Bearer {KEY}", key) and bearer_matches(f"BEARER {KEY}".encode(), key)
    assert not bearer_matches(None, key) and not bearer_matches("", key) and not bearer_matches("Bearer", key)
    assert not bearer_matches(f"Token {KEY}", key) and not bearer_matches(f"Bearer {KEY} extra", key)
    assert not bearer_matches("Bearer é", key)


def test_the_cli_refuses_an_empty_key_in_one_line_and_reads_the_environment(tiny_dir):
    result = subprocess.run([sys.executable, "-m", "sae", "serve", "--algorithm", str(tiny_dir), "--backend", "cpu",
                             "--api-key", ""], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "sae serve: error: --api-key must be 1 to 4,096 visible ASCII characters, without spaces; the one given has 0"]
    code = ("import os, sys; os.environ['SAE_API_KEY'] = 'from-env'; from sae.cli import build_parser; "
            "from sae.cli.serve import _api_key; print(_api_key(build_parser().parse_args(['serve'])), "
            "_api_key(build_parser().parse_args(['serve', '--api-key', 'flag'])))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60).stdout.strip() == "from-env flag"


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                                ("localhost", True), ("0.0.0.0", False), ("::", False),
                                                ("192.168.1.7", False), ("sae.example", False)])
def test_which_hosts_are_loopback_only(host, loopback):
    assert ServiceConfig(host=host).loopback_only is loopback


def test_serving_beyond_loopback_without_a_key_is_warned_about(tiny_dir):
    _, ready, stderr = serve_once(tiny_dir, "--host", "0.0.0.0")
    assert "listening on" in ready
    assert "listening on 0.0.0.0 without an API key" in stderr, stderr


def test_grpc_reflection_needs_the_key_too(keyed_server):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    addresses, _ = keyed_server
    with grpc.insecure_channel(addresses.grpc_target) as channel, pytest.raises(grpc.RpcError) as refused:
        ProtoReflectionDescriptorDatabase(channel).get_services()
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    keyed = grpc.intercept_channel(grpc.insecure_channel(addresses.grpc_target), _WithKey())
    with keyed:
        assert "sae.v1.Embedder" in ProtoReflectionDescriptorDatabase(keyed).get_services()


class _WithKey(grpc.StreamStreamClientInterceptor):
    """Adds the key to a stream's metadata (the reflection client sends none of its own)."""

    def intercept_stream_stream(self, continuation, details, requests):
        details = details._replace(metadata=[*(details.metadata or ()), ("authorization", f"Bearer {KEY}")])
        return continuation(details, requests)
