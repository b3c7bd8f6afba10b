"""An engine process that dies is replaced: on a real server, its requests, health checks and metrics.

The child is killed with SIGKILL, as the OOM killer does. Nothing here is timed: what has
to wait (a restart, the gRPC health service's poll) is polled with a generous deadline.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing.spawn
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from service_helpers import running_server, tiny_service
from tiny import make_tiny

from sae import Engine
from sae.algorithm import save_algorithm
from sae.service import EmbeddingService, ProcessEngine, ServiceConfig, SupervisedEngine, WorkerProcessError

TEXTS = ["the cat runs", "a new york city dog", "", "not happy , very sad !", "the " * 300]
#: Long enough for a spawned interpreter to load the tiny Algorithm on a busy 2-core machine, many times over.
DEADLINE = 120.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"not within {DEADLINE:.0f} s: {what}"
        time.sleep(0.02)


def embed(http: httpx.Client, texts: list[str]) -> np.ndarray:
    r = http.post("/embed", json={"inputs": texts})
    assert r.status_code == 200, r.text
    return np.array(r.json(), dtype=np.float32)


def metric(http: httpx.Client, name: str) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


def grpc_health(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30).status


def restarts_held_by(gate: threading.Event, tiny_dir) -> Callable[[], ProcessEngine]:
    """A worker's ``start``: the first engine process at once, every restart once ``gate`` is set."""
    starts = 0

    def start() -> ProcessEngine:
        nonlocal starts
        starts += 1
        if starts > 1:
            assert gate.wait(DEADLINE)
        return ProcessEngine(tiny_dir)

    return start


def test_a_killed_engine_process_is_replaced_and_serves_the_same_bytes(tiny_dir, caplog):
    caplog.set_level(logging.INFO, logger="sae.service.supervisor")
    service = tiny_service(tiny_dir, workers=1, processes=True)
    worker = service.workers[0]
    expected = Engine(tiny_dir, backend="cpu").embed(TEXTS).tobytes()
    with running_server(service) as addresses, httpx.Client(base_url=addresses.http_url, timeout=60) as http:
        assert embed(http, TEXTS).tobytes() == expected
        assert metric(http, "sae_worker_restarts_total") == 0
        first = worker.pid
        os.kill(first, signal.SIGKILL)
        until(lambda: worker.restarts == 1 and http.get("/health").status_code == 200, "a new engine process")
        assert worker.pid != first and worker.state == "ready"
        for _ in range(3):
            assert embed(http, TEXTS).tobytes() == expected
        assert metric(http, "sae_worker_restarts_total") == 1
        # The dead child's totals are kept: the counters only grow.
        assert metric(http, "sae_engine_texts_total") == 4 * len(TEXTS)
        until(lambda: grpc_health(addresses.grpc_target) == SERVING, "gRPC health SERVING")
    assert len(worker._failures) == 1  # a death while idle: one step towards giving up
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"pid {first}) died, killed by SIGKILL, while idle" in m for m in messages), messages
    assert any(f"in place of pid {first} (killed by SIGKILL); 1 restart(s) so far" in m for m in messages), messages


def test_the_batch_in_a_dying_process_fails_and_the_next_ones_do_not(tiny_dir, caplog):
    caplog.set_level(logging.INFO, logger="sae.service.supervisor")
    service = tiny_service(tiny_dir, workers=1, processes=True)
    worker = service.workers[0]
    expected = Engine(tiny_dir, backend="cpu").embed(TEXTS).tobytes()
    with running_server(service) as addresses, httpx.Client(base_url=addresses.http_url, timeout=60) as http, \
            ThreadPoolExecutor(1) as pool:
        first = worker.pid
        # Stopped, the child holds the batch it is handed until it is killed: a death in a
        # batch, on cue.
        os.kill(first, signal.SIGSTOP)
        in_flight = pool.submit(http.post, "/embed", json={"inputs": TEXTS})
        until(worker._lock.locked, "the batch in the worker")
        os.kill(first, signal.SIGKILL)
        r = in_flight.result(DEADLINE)
        assert r.status_code == 500 and "WorkerProcessError" in r.json()["error"]
        assert embed(http, TEXTS).tobytes() == expected  # waits for the new child if it is still starting
        assert worker.restarts == 1 and worker.pid != first
    assert not worker._failures  # blamed on the batch: no step towards giving up
    messages = [r.getMessage() for r in caplog.records]
    assert any("killed by SIGKILL, with a batch in it (that batch failed)" in m for m in messages), messages
    assert any("the engine process died (killed by SIGKILL)" in str(r.exc_info[1]) for r in caplog.records
               if r.exc_info), "the batch's error names the signal"


def test_health_is_bad_while_a_new_engine_process_starts_and_its_batches_wait(tiny_dir):
    gate = threading.Event()
    start = restarts_held_by(gate, tiny_dir)
    engine = Engine(tiny_dir, backend="cpu", threads=1)
    worker = SupervisedEngine(start)
    service = EmbeddingService(engine, ServiceConfig(port=0, grpc_port=0), [worker])
    expected = engine.embed(TEXTS).tobytes()
    with running_server(service) as addresses, httpx.Client(base_url=addresses.http_url, timeout=60) as http, \
            ThreadPoolExecutor(1) as pool:
        try:
            os.kill(worker.pid, signal.SIGKILL)
            until(lambda: worker.state == "restarting", "the restart")
            r = http.get("/health")
            assert r.status_code == 503 and r.json()["error"] == "an engine process died; another is starting"
            until(lambda: grpc_health(addresses.grpc_target) == NOT_SERVING, "gRPC health NOT_SERVING")
            waiting = pool.submit(embed, http, TEXTS)
            until(lambda: service.batcher.admitted == 1 and service.batcher.waiting == 0,
                  "the request in a batch, handed to the worker")
            assert not waiting.done()
        finally:
            gate.set()
        assert waiting.result(DEADLINE).tobytes() == expected
        assert http.get("/health").status_code == 200 and worker.restarts == 1
        until(lambda: grpc_health(addresses.grpc_target) == SERVING, "gRPC health SERVING again")


def test_while_one_of_two_engine_processes_restarts_the_other_serves_and_health_stays_good(tiny_dir):
    gate = threading.Event()
    start = restarts_held_by(gate, tiny_dir)
    engine = Engine(tiny_dir, backend="cpu", threads=1)
    restarting, serving = SupervisedEngine(start, name="worker-0"), SupervisedEngine(lambda: ProcessEngine(tiny_dir))
    service = EmbeddingService(engine, ServiceConfig(port=0, grpc_port=0), [restarting, serving])
    expected = engine.embed(TEXTS).tobytes()
    with running_server(service) as addresses, httpx.Client(base_url=addresses.http_url, timeout=60) as http:
        try:
            os.kill(restarting.pid, signal.SIGKILL)
            until(lambda: restarting.state == "restarting", "the restart")
            r = http.get("/health")
            assert r.status_code == 200, r.text
            assert r.json() == {"status": "ok", "degraded": "1 of 2 engine processes died; another is starting"}
            assert metric(http, "sae_workers_ready") == 1
            # Every request is answered by the other worker while the restart is held back.
            for _ in range(5):
                assert embed(http, TEXTS).tobytes() == expected
            assert grpc_health(addresses.grpc_target) == SERVING
            assert restarting.state == "restarting"
        finally:
            gate.set()
        until(lambda: restarting.state == "ready", "the new engine process")
        assert http.get("/health").json() == {"status": "ok"} and metric(http, "sae_workers_ready") == 2
    assert restarting.counters_snapshot().texts == 0 and serving.counters_snapshot().texts == 5 * len(TEXTS)


def test_restarts_that_keep_failing_give_up_and_leave_the_worker_down(tiny_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="sae.service.supervisor")
    directory = shutil.copytree(tiny_dir, tmp_path / "tiny")
    engine = Engine(directory, backend="cpu", threads=1)
    starts = 0

    def start() -> ProcessEngine:
        nonlocal starts
        starts += 1
        return ProcessEngine(directory, engine.algorithm.content_hash)

    worker = SupervisedEngine(start, max_failures=3, retry_delay=0.01)
    service = EmbeddingService(engine, ServiceConfig(port=0, grpc_port=0), [worker])
    with running_server(service) as addresses, httpx.Client(base_url=addresses.http_url, timeout=60) as http:
        # Another Algorithm where the server's was: no restart may serve it.
        save_algorithm(make_tiny(seed=1), directory, vector_dtype="float32")
        os.kill(worker.pid, signal.SIGKILL)
        until(lambda: worker.state == "failed", "giving up")
        worker._watcher.join(DEADLINE)
        assert not worker._watcher.is_alive()  # nothing is left to retry
        assert starts == 3  # the first start, then two that failed: with the death, three failures
        r = http.get("/health")
        assert r.status_code == 503
        assert r.json()["error"] == "an engine process kept failing and is not restarted any more"
        r = http.post("/embed", json={"inputs": TEXTS})
        assert r.status_code == 500 and "WorkerProcessError" in r.json()["error"]
        until(lambda: grpc_health(addresses.grpc_target) == NOT_SERVING, "gRPC health NOT_SERVING")
        assert starts == 3 and worker.restarts == 0 and metric(http, "sae_worker_restarts_total") == 0
    failed = [r.getMessage() for r in caplog.records if "failed: the engine process loaded another Algorithm" in
              r.getMessage()]
    assert len(failed) == 2, failed
    gave_up = [r.getMessage() for r in caplog.records if "not restarting it any more" in r.getMessage()]
    assert len(gave_up) == 1 and "3 engine process failures within 600 s" in gave_up[0], gave_up
    assert f"did {directory} change?" in gave_up[0]


def test_deaths_outside_the_window_are_forgotten(tiny_dir):
    worker = SupervisedEngine(functools.partial(ProcessEngine, tiny_dir), max_failures=2, failure_window=0.0)
    try:
        for restarts in (1, 2):
            first = worker.pid
            os.kill(first, signal.SIGKILL)
            until(lambda first=first: worker.state == "ready" and worker.pid != first, "a new engine process")
            assert worker.restarts == restarts
        assert worker.embed_tokens([[1, 2]]).shape == (1, worker.dim)
    finally:
        worker.close()


def test_a_child_found_dead_by_a_batch_is_replaced_before_it(tiny_dir):
    """Whoever finds the child dead first, the watcher or a batch, replaces it once."""
    worker = SupervisedEngine(functools.partial(ProcessEngine, tiny_dir))
    engine = Engine(tiny_dir, backend="cpu")
    token_ids = engine.tokenize(TEXTS)
    try:
        first = worker.pid
        with worker._lock:  # the watcher waits here, as behind a batch
            os.kill(first, signal.SIGKILL)
            until(lambda: not worker._engine.alive, "the child's death")
        assert worker.embed_tokens(token_ids).tobytes() == engine.embed_tokens(token_ids).tobytes()
        assert worker.restarts == 1 and worker.pid != first
        assert worker.counters_snapshot().texts == len(TEXTS)
    finally:
        worker.close()
    assert worker.state == "closed" and not worker.alive
    with pytest.raises(WorkerProcessError, match="closed"):
        worker.embed_tokens(token_ids)


def test_a_broken_environment_is_given_up_on(tiny_dir, tmp_path, monkeypatch, caplog):
    """Every new child dies as it starts: a few tries, then no more."""
    worker = SupervisedEngine(functools.partial(ProcessEngine, tiny_dir), max_failures=4, retry_delay=0.01)
    try:
        broken = tmp_path / "python"
        broken.write_text("#!/bin/sh\nexit 3\n")
        broken.chmod(0o755)
        monkeypatch.setattr(multiprocessing.spawn, "_python_exe", os.fsencode(broken))
        os.kill(worker.pid, signal.SIGKILL)
        until(lambda: worker.state == "failed", "giving up")
        worker._watcher.join(DEADLINE)
        assert not worker._watcher.is_alive() and not worker.alive and worker.restarts == 0
        tries = [r.getMessage() for r in caplog.records if "starting an engine process" in r.getMessage()]
        assert len(tries) == 3, tries  # the death, then three failed starts: four failures
        assert all(t.endswith("could not start: it died (exit code 3)") for t in tries), tries
        with pytest.raises(WorkerProcessError, match="not restarted any more"):
            worker.embed_tokens([[1, 2]])
    finally:
        worker.close()
