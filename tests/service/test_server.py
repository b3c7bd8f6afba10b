"""Shutdown of a real server: past --drain-seconds, or at a second signal, the requests in
flight are answered 503 / UNAVAILABLE at once, in the documented shapes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time

import grpc
import httpx
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serve_shutdown import answer_of, send_embed_request  # tools/: the shutdown tool's raw HTTP client
from service_helpers import running_server

from sae import Engine
from sae.service import EmbeddingService, ServiceConfig, serve
from sae.service import server as server_module
from sae.service.proto import embed_pb2, embed_pb2_grpc


class HeldWorker:
    """The engine, holding every batch until ``gate`` opens: requests stay in flight."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.gate = threading.Event()
        self.batches: list[int] = []  #: texts per batch, as each arrived

    def embed_tokens(self, token_ids, *, check=True):
        self.batches.append(len(token_ids))
        self.gate.wait(30)
        return self.engine.embed_tokens(token_ids, check=check)

    def counters_snapshot(self):
        return self.engine.counters_snapshot()


def held_service(tiny_dir, **limits) -> tuple[EmbeddingService, HeldWorker]:
    engine = Engine(tiny_dir, backend="cpu", threads=1)
    worker = HeldWorker(engine)
    return EmbeddingService(engine, ServiceConfig(port=0, grpc_port=0, **limits), [worker]), worker


def calls_in_flight(service, addresses, worker) -> tuple[list[threading.Thread], dict]:
    """One HTTP and one gRPC request, admitted and held in the worker; each opens the gate
    once answered, so that the server can finish."""
    results: dict = {}

    def http_call() -> None:
        results["http"] = httpx.post(f"{addresses.http_url}/v1/embeddings", json={"input": "the cat"}, timeout=60)
        worker.gate.set()

    def grpc_call() -> None:
        with grpc.insecure_channel(addresses.grpc_target) as channel:
            try:
                embed_pb2_grpc.EmbedderStub(channel).Embed(embed_pb2.EmbedRequest(inputs=["a dog"]), timeout=60)
            except grpc.RpcError as exc:
                results["grpc"] = exc.code()

    threads = [threading.Thread(target=http_call), threading.Thread(target=grpc_call)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while service.batcher.admitted < 2:
        assert time.monotonic() < deadline, "the requests were not admitted"
        time.sleep(0.01)
    return threads, results


def assert_cut(results: dict) -> None:
    r = results["http"]
    # uvicorn's own drain timeout answered a plain-text 500 and logged a traceback.
    assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
    assert r.headers["content-type"] == "application/json"
    assert orjson.loads(r.content)["error"]["code"] == "shutting_down"
    assert results["grpc"] == grpc.StatusCode.UNAVAILABLE


def test_requests_past_the_drain_seconds_get_503_and_unavailable(tiny_dir, caplog):
    service, worker = held_service(tiny_dir, drain_seconds=0.2)
    with running_server(service) as addresses:
        threads, results = calls_in_flight(service, addresses, worker)
    for thread in threads:
        thread.join(30)
    assert_cut(results)
    assert not [record for record in caplog.records if record.exc_info], "a traceback was logged"


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_a_second_signal_cuts_the_drain_at_once(tiny_dir, caplog):
    # The drain would wait 20 s; the second SIGTERM ends it at once (it used to embed every
    # admitted request, and gRPC waited its whole grace).
    service, worker = held_service(tiny_dir, drain_seconds=20)
    ready = threading.Event()
    box: dict = {}

    def client() -> None:
        ready.wait(30)
        threads, box["results"] = calls_in_flight(service, box["addresses"], worker)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        box["cut"] = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        for thread in threads:
            thread.join(30)

    def on_ready(addresses) -> None:
        box["addresses"] = addresses
        ready.set()

    thread = threading.Thread(target=client)
    thread.start()
    with caplog.at_level(logging.INFO):
        asyncio.run(asyncio.wait_for(serve(service, ready=on_ready), 60))
    stopped = time.monotonic() - box["cut"]
    thread.join(30)
    assert_cut(box["results"])
    assert stopped < 5
    assert "second signal" in caplog.text


def test_a_grpc_call_the_client_cancels_is_counted(tiny_dir):
    """Cancelled calls answered nothing and counted nowhere: /metrics had no trace of them."""
    service, worker = held_service(tiny_dir)
    with running_server(service) as addresses, grpc.insecure_channel(addresses.grpc_target) as channel:
        stub = embed_pb2_grpc.EmbedderStub(channel)
        call = stub.Embed.future(embed_pb2.EmbedRequest(inputs=["a dog"]), timeout=60)
        deadline = time.monotonic() + 20
        while service.batcher.admitted < 1:
            assert time.monotonic() < deadline, "the call was not admitted"
            time.sleep(0.01)
        call.cancel()
        with pytest.raises(grpc.FutureCancelledError):
            call.result()
        while service.metrics.grpc_cancelled._value.get() < 1:
            assert time.monotonic() < deadline + 20, "the cancelled call was not counted"
            time.sleep(0.01)
        worker.gate.set()
        # A call answered afterwards is not counted.
        stub.Embed(embed_pb2.EmbedRequest(inputs=["a cat"]), timeout=60)
        text = httpx.get(f"{addresses.http_url}/metrics").text
    assert "sae_grpc_calls_cancelled_total 1.0" in text


def test_an_http_client_that_goes_away_is_counted_and_its_texts_leave_the_queue(tiny_dir):
    """A client that timed out left its request queued, to be embedded later for nobody (its
    retry queued behind it), and nothing counted it."""
    service, worker = held_service(tiny_dir)
    disconnects = service.metrics.http_disconnects

    def wait_for(condition, what: str) -> None:
        deadline = time.monotonic() + 20
        while not condition():
            assert time.monotonic() < deadline, what
            time.sleep(0.01)

    with running_server(service) as addresses:
        url = addresses.http_url
        held = threading.Thread(target=lambda: httpx.post(f"{url}/embed", json={"inputs": "the cat"}, timeout=60))
        held.start()
        wait_for(lambda: worker.batches == [1], "the first request did not reach the worker")
        with pytest.raises(httpx.ReadTimeout):  # queued behind it, and given up
            httpx.post(f"{url}/v1/embeddings", json={"input": ["a dog", "a cow"]}, timeout=httpx.Timeout(60, read=0.5))
        wait_for(lambda: disconnects.labels("openai")._value.get() == 1, "the disconnect was not counted")
        wait_for(lambda: service.batcher.admitted == 1, "the abandoned request stayed admitted")
        worker.gate.set()
        held.join(30)
        httpx.post(f"{url}/embed", json={"inputs": "a bird"}, timeout=60)  # answered after it: not counted
        text = httpx.get(f"{url}/metrics").text
    assert worker.batches == [1, 1]  # the abandoned texts never reached the engine
    assert 'sae_http_client_disconnects_total{api="openai"} 1.0' in text
    assert 'sae_http_client_disconnects_total{api="tei"} 0.0' in text


# -- connections at the moment the listener closes: answered or refused, never reset


class RequestsSentMeanwhile:
    """``send`` opens ``n`` connections and sends a request on each; the server's event loop
    calls it, so it accepts none of them meanwhile and they wait in the listener's backlog."""

    def __init__(self, port: int, n: int = 6) -> None:
        self.port, self.n = port, n
        self._readers: list[threading.Thread] = []
        self._outcomes: list[str] = []

    def send(self) -> None:
        for _ in range(self.n):
            connection = send_embed_request(self.port)
            reader = threading.Thread(target=lambda c=connection: self._outcomes.append(answer_of(c)))
            reader.start()
            self._readers.append(reader)

    def outcomes(self) -> list[str]:
        for reader in self._readers:
            reader.join(30)
        return self._outcomes


def test_requests_in_the_backlog_when_shutdown_begins_are_answered(tiny_dir, monkeypatch):
    """Connections the kernel accepted while the server was busy are served before the
    listener closes (closing it resets them: the client sent its request and gets no answer)."""
    service, worker = held_service(tiny_dir)
    worker.gate.set()
    with running_server(service) as addresses:
        clients = RequestsSentMeanwhile(addresses.http_port)
        begin_shutdown = service.begin_shutdown

        def busy_then_begin_shutdown() -> None:
            clients.send()
            begin_shutdown()

        monkeypatch.setattr(service, "begin_shutdown", busy_then_begin_shutdown)
    assert clients.outcomes() == ["200"] * 6


def test_connections_after_the_listener_closed_are_refused_not_reset(tiny_dir, monkeypatch):
    """By the time uvicorn shuts down, the listener is closed: a connection made then is
    refused (the client knows nothing was sent), where it used to wait in the backlog and be
    reset with its request unanswered."""
    service, worker = held_service(tiny_dir)
    worker.gate.set()
    shutdown = server_module._Uvicorn.shutdown
    with running_server(service) as addresses:
        clients = RequestsSentMeanwhile(addresses.http_port)

        async def send_then_shut_down(self, sockets=None) -> None:
            clients.send()
            await shutdown(self, sockets)

        monkeypatch.setattr(server_module._Uvicorn, "shutdown", send_then_shut_down)
    assert clients.outcomes() == ["refused"] * 6


def test_a_request_arriving_on_a_connection_made_before_shutdown_is_answered(tiny_dir):
    """uvicorn's shutdown closes every connection without a request; one that was opened
    before the signal and whose request arrives just after the listener closed is answered,
    with ``Connection: close``: its client must not send another request on it, which the
    shutdown would close unanswered."""
    service, worker = held_service(tiny_dir)
    worker.gate.set()
    result: list[str] = []
    headers: list[bytes] = []
    with running_server(service) as addresses:
        early = socket.create_connection(("127.0.0.1", addresses.http_port), timeout=30)
        time.sleep(0.1)  # accepted by the server, no request yet

        def send_once_the_listener_closed() -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                probe = socket.socket()
                probe.settimeout(0.2)  # a SYN the shrunk backlog drops is retried only after 1 s
                try:
                    probe.connect(("127.0.0.1", addresses.http_port))
                except ConnectionRefusedError:
                    break
                except OSError:  # timed out: not refused yet
                    pass
                finally:
                    probe.close()
                time.sleep(0.005)
            result.append(answer_of(send_embed_request(addresses.http_port, early, keep_alive=True), headers))

        sender = threading.Thread(target=send_once_the_listener_closed)
        sender.start()
    sender.join(30)
    assert result == ["200"]
    assert b"connection: close" in headers, headers


# -- gRPC at shutdown


def test_grpc_calls_after_the_signal_are_refused_while_the_running_ones_finish(tiny_dir):
    """The gRPC listener closes at the signal, as the HTTP one does: a call made then is
    UNAVAILABLE (it used to be served for as long as calls kept coming, and the drain only
    ended when none ran), and the call already running is answered."""
    service, worker = held_service(tiny_dir)
    expected = Engine(tiny_dir, backend="cpu").embed(["a dog"])[0].astype("<f4").tobytes()
    box: dict = {}
    with running_server(service) as addresses:
        def held_call() -> None:
            with grpc.insecure_channel(addresses.grpc_target) as channel:
                box["held"] = embed_pb2_grpc.EmbedderStub(channel).Embed(
                    embed_pb2.EmbedRequest(inputs=["a dog"], encoding=embed_pb2.BYTES), timeout=60)

        def call_once_the_listener_closed() -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with grpc.insecure_channel(addresses.grpc_target) as channel:
                    try:
                        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
                    except grpc.RpcError as exc:
                        if exc.code() == grpc.StatusCode.UNAVAILABLE:
                            break
                time.sleep(0.02)
            with grpc.insecure_channel(addresses.grpc_target) as channel:
                try:
                    embed_pb2_grpc.EmbedderStub(channel).Embed(embed_pb2.EmbedRequest(inputs=["a cat"]), timeout=5)
                    box["late"] = grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    box["late"] = exc.code()
            worker.gate.set()

        held = threading.Thread(target=held_call)
        held.start()
        deadline = time.monotonic() + 20
        while service.batcher.admitted < 1:
            assert time.monotonic() < deadline, "the call was not admitted"
            time.sleep(0.01)
        late = threading.Thread(target=call_once_the_listener_closed)
        late.start()
    late.join(30)
    held.join(30)
    assert box["late"] == grpc.StatusCode.UNAVAILABLE
    assert box["held"].embeddings[0].data == expected
    assert worker.batches == [1]  # the late call never reached the engine


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_a_second_signal_ends_an_idle_grpc_stream_unavailable(tiny_dir):
    """A stream waiting for its client's next request held the shutdown for the whole drain
    (20 s here) once the listener closed at the first signal; the second signal ends it."""
    service, worker = held_service(tiny_dir, drain_seconds=20)
    worker.gate.set()
    ready, more = threading.Event(), threading.Event()
    box: dict = {}

    def requests():
        yield embed_pb2.EmbedRequest(inputs=["a dog"])
        more.wait(30)  # idle: no next request

    def client() -> None:
        ready.wait(30)
        with grpc.insecure_channel(box["addresses"].grpc_target) as channel:
            stream = embed_pb2_grpc.EmbedderStub(channel).EmbedStream(requests(), timeout=60)
            next(stream)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.3)
            box["cut"] = time.monotonic()
            os.kill(os.getpid(), signal.SIGTERM)
            try:
                next(stream)
            except grpc.RpcError as exc:
                box["code"] = exc.code()
            more.set()

    def on_ready(addresses) -> None:
        box["addresses"] = addresses
        ready.set()

    thread = threading.Thread(target=client)
    thread.start()
    asyncio.run(asyncio.wait_for(serve(service, ready=on_ready), 60))
    stopped = time.monotonic() - box["cut"]
    thread.join(30)
    assert box["code"] == grpc.StatusCode.UNAVAILABLE
    assert stopped < 5


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals need the main thread")
def test_signals_reach_the_server_on_an_event_loop_without_signal_handlers(tiny_dir, monkeypatch):
    """Windows' event loops have no add_signal_handler: sae serve stopped at start with
    NotImplementedError. It takes the signals through signal.signal there, and puts the
    process's own handlers back when it returns."""
    def no_signal_handlers(self, sig, callback, *args):
        raise NotImplementedError

    monkeypatch.setattr(asyncio.SelectorEventLoop, "add_signal_handler", no_signal_handlers)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    service, worker = held_service(tiny_dir, drain_seconds=20)
    worker.gate.set()
    box: dict = {}

    def client(addresses) -> None:  # not on the server's loop, which calls on_ready
        box["answer"] = httpx.post(f"{addresses.http_url}/embed", json={"inputs": "a cat"}, timeout=30)
        os.kill(os.getpid(), signal.SIGTERM)

    def on_ready(addresses) -> None:
        box["client"] = threading.Thread(target=client, args=(addresses,))
        box["client"].start()

    asyncio.run(asyncio.wait_for(serve(service, ready=on_ready), 60))
    box["client"].join(30)
    assert box["answer"].status_code == 200
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
