"""``--access-log``: one line a request from both front ends — client, what it asked, the
answer, texts and tokens, time — and nothing without the flag."""

from __future__ import annotations

import logging
import re

import grpc
import httpx
import pytest
from service_helpers import running_server, tiny_service

from sae import Engine
from sae.service.access_log import client_of_peer
from sae.service.proto import embed_pb2, embed_pb2_grpc

KEY = "sk-access-log-test"
LINE = re.compile(r"^127\.0\.0\.1:\d+ (?:(?P<holder>[\w.-]+) )?(?P<what>(?:POST|GET|gRPC) .+?) (?P<answer>\S+)"
                  r"(?P<counts>( \d+ texts?)( \d+ tokens?)?)? \d+\.\d ms$")


def access_lines(caplog, holders: bool = False) -> list[tuple[str, ...]]:
    """(what, answer, counts) of every access log line, in order; (holder, what, answer) with
    ``holders``."""
    lines = []
    for record in caplog.records:
        if record.name == "sae.access":
            match = LINE.match(record.getMessage())
            assert match, record.getMessage()
            if holders:
                lines.append((match["holder"], match["what"], match["answer"]))
            else:
                lines.append((match["what"], match["answer"], (match["counts"] or "").strip()))
    return lines


def test_every_request_is_one_line_on_both_front_ends(tiny_dir, caplog):
    caplog.set_level(logging.INFO, logger="sae.access")
    tokens = sum(map(len, Engine(tiny_dir, backend="cpu").tokenize(["a cat", "the dog"])))
    service = tiny_service(tiny_dir, workers=1, api_key=KEY, access_log=True)
    good = {"Authorization": f"Bearer {KEY}"}
    with running_server(service) as addresses:
        url = addresses.http_url
        assert httpx.post(f"{url}/v1/embeddings", json={"input": ["a cat", "the dog"]}, headers=good,
                          timeout=30).status_code == 200
        assert httpx.post(f"{url}/embed", json={"inputs": "a cat"}, timeout=30).status_code == 401
        assert httpx.post(f"{url}/embed", json={"inputs": []}, headers=good, timeout=30).status_code == 400
        assert httpx.get(f"{url}/health", timeout=30).status_code == 200
        with grpc.insecure_channel(addresses.grpc_target) as channel:
            stub = embed_pb2_grpc.EmbedderStub(channel)
            metadata = [("authorization", f"Bearer {KEY}")]
            stub.Embed(embed_pb2.EmbedRequest(inputs=["a cat", "the dog"]), timeout=30, metadata=metadata)
            with pytest.raises(grpc.RpcError):
                stub.Embed(embed_pb2.EmbedRequest(inputs=["a cat"]), timeout=30)
            with pytest.raises(grpc.RpcError):
                stub.Embed(embed_pb2.EmbedRequest(inputs=[]), timeout=30, metadata=metadata)
            answers = list(stub.EmbedStream(iter([embed_pb2.EmbedRequest(inputs=["a cat"])] * 2), timeout=30,
                                            metadata=metadata))
            assert len(answers) == 2
            stub.Info(embed_pb2.InfoRequest(), timeout=30, metadata=metadata)
    # Sorted: the front ends log on threads of their own, a line once its answer is sent.
    assert sorted(access_lines(caplog)) == sorted([
        ("POST /v1/embeddings", "200", f"2 texts {tokens} tokens"),
        ("POST /embed", "401", ""),
        ("POST /embed", "400", ""),
        ("GET /health", "200", ""),
        ("gRPC Embed", "OK", f"2 texts {tokens} tokens"),
        ("gRPC Embed", "UNAUTHENTICATED", ""),
        ("gRPC Embed", "INVALID_ARGUMENT", ""),
        ("gRPC EmbedStream", "OK", f"1 text {answers[0].prompt_tokens} tokens"),
        ("gRPC EmbedStream", "OK", f"1 text {answers[0].prompt_tokens} tokens"),
        ("gRPC Info", "OK", ""),
    ])
    assert not any(KEY in record.getMessage() for record in caplog.records)


def test_a_named_key_names_its_requests(tiny_dir, tmp_path, caplog):
    """A key file's names say who sent each request (keys alone, none given: '-'); a server
    without keys writes no such field."""
    caplog.set_level(logging.INFO, logger="sae.access")
    keys = tmp_path / "keys"
    keys.write_text("alice sk-alice-0123456789\nsk-unnamed-0123456789\n")
    service = tiny_service(tiny_dir, workers=1, api_key_file=str(keys), access_log=True)
    with running_server(service) as addresses:
        for key in ("sk-alice-0123456789", "sk-unnamed-0123456789", "sk-wrong"):
            httpx.post(f"{addresses.http_url}/embed", json={"inputs": "a cat"}, headers={"Authorization": f"Bearer {key}"},
                       timeout=30)
        with grpc.insecure_channel(addresses.grpc_target) as channel:
            stub = embed_pb2_grpc.EmbedderStub(channel)
            stub.Embed(embed_pb2.EmbedRequest(inputs=["a cat"]), timeout=30,
                       metadata=[("authorization", "Bearer sk-alice-0123456789")])
            list(stub.EmbedStream(iter([embed_pb2.EmbedRequest(inputs=["a cat"])]), timeout=30,
                                  metadata=[("authorization", "Bearer sk-unnamed-0123456789")]))
            with pytest.raises(grpc.RpcError):
                stub.Embed(embed_pb2.EmbedRequest(inputs=["a cat"]), timeout=30)
    assert sorted(access_lines(caplog, holders=True)) == sorted([
        ("alice", "POST /embed", "200"), ("-", "POST /embed", "200"), ("-", "POST /embed", "401"),
        ("alice", "gRPC Embed", "OK"), ("-", "gRPC EmbedStream", "OK"), ("-", "gRPC Embed", "UNAUTHENTICATED")])
    assert not any("sk-" in record.getMessage() for record in caplog.records)


def test_without_the_flag_nothing_is_logged(tiny_dir, caplog):
    caplog.set_level(logging.INFO, logger="sae.access")
    service = tiny_service(tiny_dir, workers=1)
    with running_server(service) as addresses:
        assert httpx.post(f"{addresses.http_url}/embed", json={"inputs": "a cat"}, timeout=30).status_code == 200
        with grpc.insecure_channel(addresses.grpc_target) as channel:
            embed_pb2_grpc.EmbedderStub(channel).Embed(embed_pb2.EmbedRequest(inputs=["a cat"]), timeout=30)
    # Sorted: the front ends log on threads of their own, a line once its answer is sent.
    assert access_lines(caplog) == []


@pytest.mark.parametrize(("peer", "client"), [("ipv4:127.0.0.1:5123", "127.0.0.1:5123"),
                                               ("ipv6:[::1]:5123", "[::1]:5123"), ("unix:/tmp/s", "unix:/tmp/s")])
def test_grpc_peers_read_like_http_clients(peer, client):
    assert client_of_peer(peer) == client
