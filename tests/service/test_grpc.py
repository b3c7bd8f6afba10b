"""The gRPC front end on a real server: Embed (unary, streaming), Info, health, status codes."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from service_helpers import running_server, tiny_service

from sae import Engine
from sae.service.proto import embed_pb2, embed_pb2_grpc

TEXTS = ["the cat runs", "a new york city dog", "", "not happy , very sad !"]


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
def channel(tiny_server):
    addresses, _ = tiny_server
    with grpc.insecure_channel(addresses.grpc_target) as channel:
        yield channel


def vectors(reply: embed_pb2.EmbedResponse, encoding: int) -> np.ndarray:
    if encoding == embed_pb2.BYTES:
        return np.stack([np.frombuffer(e.data, dtype="<f4") for e in reply.embeddings])
    return np.array([list(e.values) for e in reply.embeddings], dtype=np.float32)


@pytest.mark.parametrize("encoding", [embed_pb2.FLOAT, embed_pb2.BYTES])
def test_unary_embed_is_the_engines_bytes(channel, engine, encoding):
    stub = embed_pb2_grpc.EmbedderStub(channel)
    reply = stub.Embed(embed_pb2.EmbedRequest(inputs=TEXTS, encoding=encoding))
    assert vectors(reply, encoding).tobytes() == engine.embed(TEXTS).tobytes()
    assert reply.prompt_tokens == sum(len(t) for t in engine.tokenize(TEXTS))


def test_streaming_embed_answers_each_request_in_order(channel, engine):
    stub = embed_pb2_grpc.EmbedderStub(channel)
    requests = [TEXTS[: i % 4 + 1] for i in range(20)]
    replies = list(stub.EmbedStream(iter(embed_pb2.EmbedRequest(inputs=r, encoding=embed_pb2.BYTES)
                                         for r in requests)))
    assert len(replies) == len(requests)
    for request, reply in zip(requests, replies):
        assert vectors(reply, embed_pb2.BYTES).tobytes() == engine.embed(request).tobytes()


def test_info_and_health(channel, engine):
    info = embed_pb2_grpc.EmbedderStub(channel).Info(embed_pb2.InfoRequest())
    assert info.algorithm == "tiny" and info.content_hash == engine.algorithm.content_hash
    assert info.dim == engine.dim and info.backend == "cpu" and info.max_texts == 64
    assert info.drain_seconds == 30.0
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", "sae.v1.Embedder"):
        status = health.Check(health_pb2.HealthCheckRequest(service=name)).status
        assert status == health_pb2.HealthCheckResponse.SERVING


def code_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_bad_requests_are_invalid_argument(channel):
    stub = embed_pb2_grpc.EmbedderStub(channel)
    code, details = code_of(lambda: stub.Embed(embed_pb2.EmbedRequest(inputs=[])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "at least one text" in details
    code, details = code_of(lambda: stub.Embed(embed_pb2.EmbedRequest(inputs=["a"] * 65)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "limit of 64" in details
    # Field 1 (inputs) holding bytes that are not UTF-8: not a valid EmbedRequest.
    raw = channel.unary_unary("/sae.v1.Embedder/Embed", request_serializer=lambda b: b,
                              response_deserializer=embed_pb2.EmbedResponse.FromString)
    code, details = code_of(lambda: raw(b"\x0a\x02\xff\xfe"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "not a valid sae.v1.EmbedRequest" in details
    code, _ = code_of(lambda: raw(b"\xff\xff\xff"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_malformed_info_request_is_invalid_argument(channel, caplog):
    raw = channel.unary_unary("/sae.v1.Embedder/Info", request_serializer=lambda b: b,
                              response_deserializer=embed_pb2.InfoResponse.FromString)
    code, details = code_of(lambda: raw(b"\xff\xff\xff"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "not a valid sae.v1.InfoRequest" in details
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_an_unknown_encoding_is_invalid_argument(channel):
    # proto3 enums are open: 7 arrives as 7, and was answered as FLOAT.
    stub = embed_pb2_grpc.EmbedderStub(channel)
    code, details = code_of(lambda: stub.Embed(embed_pb2.EmbedRequest(inputs=["a"], encoding=7)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "'encoding'" in details and "got 7" in details


def test_an_oversized_message_is_resource_exhausted(channel):
    stub = embed_pb2_grpc.EmbedderStub(channel)
    code, _ = code_of(lambda: stub.Embed(embed_pb2.EmbedRequest(inputs=["x" * (70 * 1024)])))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_full_queue_is_resource_exhausted_at_once(tiny_dir):
    service = tiny_service(tiny_dir, workers=1, max_queue=1, max_wait_ms=1500)
    with running_server(service) as addresses, grpc.insecure_channel(addresses.grpc_target) as channel:
        stub = embed_pb2_grpc.EmbedderStub(channel)
        first: dict = {}
        waiting = threading.Thread(target=lambda: first.setdefault("r", stub.Embed(
            embed_pb2.EmbedRequest(inputs=["a"]))))
        waiting.start()
        deadline = time.monotonic() + 10
        while service.batcher.admitted < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.perf_counter()
        code, details = code_of(lambda: stub.Embed(embed_pb2.EmbedRequest(inputs=["b"])))
        refused_after = time.perf_counter() - started
        waiting.join()
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "queue is full" in details
    assert refused_after < 1.0
    assert len(first["r"].embeddings) == 1


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200) | st.lists(st.text(max_size=40), max_size=70).map(
    lambda texts: embed_pb2.EmbedRequest(inputs=texts).SerializeToString()))
def test_fuzzed_messages_never_take_the_server_down(channel, raw):
    call = channel.unary_unary("/sae.v1.Embedder/Embed", request_serializer=lambda b: b,
                               response_deserializer=embed_pb2.EmbedResponse.FromString)
    try:
        call(raw, timeout=30)
    except grpc.RpcError as exc:
        assert exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED), exc.details()
        assert "\n" not in exc.details()


def test_still_serving_after_the_fuzzing(channel):
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    assert len(embed_pb2_grpc.EmbedderStub(channel).Embed(embed_pb2.EmbedRequest(inputs=["a"])).embeddings) == 1


def test_the_server_describes_its_api_through_reflection(channel):
    """What ``grpcurl list`` / ``describe`` read: the services and their messages, from the server."""
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    database = ProtoReflectionDescriptorDatabase(channel)
    assert set(database.get_services()) == {"sae.v1.Embedder", "grpc.health.v1.Health",
                                            "grpc.reflection.v1alpha.ServerReflection"}
    embedder = DescriptorPool(database).FindServiceByName("sae.v1.Embedder")
    assert {method.name for method in embedder.methods} == {"Embed", "EmbedStream", "Info"}
    assert embedder.methods_by_name["Embed"].input_type.full_name == "sae.v1.EmbedRequest"
    assert "inputs" in embedder.methods_by_name["Embed"].input_type.fields_by_name
