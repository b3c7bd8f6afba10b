"""``sae serve`` as a user runs it: a subprocess, SIGTERM drains and exits 0, bad options exit 2."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import httpx
import numpy as np
import pytest

from sae import Engine
from sae.service.proto import embed_pb2, embed_pb2_grpc


def start(args: list[str]) -> tuple[subprocess.Popen, int, int]:
    process = subprocess.Popen([sys.executable, "-m", "sae", "serve", "--port", "0", "--grpc-port", "0", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+) \(HTTP\) and 127\.0\.0\.1:(\d+) \(gRPC\)", line)
    if not match:
        process.kill()
        raise AssertionError(f"no ready line: {line!r}; stderr: {process.stderr.read()}")
    return process, int(match.group(1)), int(match.group(2))


def admitted(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    return float(re.search(r"^sae_requests_admitted (\S+)$", text, re.M).group(1))


@pytest.mark.parametrize("workers", [["--workers", "1", "--no-worker-processes"], ["--workers", "2"]])
def test_sigterm_answers_the_requests_in_flight_and_exits_0(tiny_dir, workers):
    engine = Engine(tiny_dir, backend="cpu")
    # Requests wait up to 2 s for company, so they are still in flight when SIGTERM comes.
    process, http_port, grpc_port = start(["--algorithm", str(tiny_dir), "--backend", "cpu", *workers,
                                           "--max-wait-ms", "2000", "--max-batch-tokens", "100000"])
    texts = [f"the cat {'runs ' * i}" for i in range(8)]
    results: dict[int, object] = {}

    def http_call(i: int) -> None:
        results[i] = httpx.post(f"http://127.0.0.1:{http_port}/embed", json={"inputs": texts[i]}, timeout=60)

    def grpc_call(i: int) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            results[i] = embed_pb2_grpc.EmbedderStub(channel).Embed(
                embed_pb2.EmbedRequest(inputs=[texts[i]], encoding=embed_pb2.BYTES), timeout=60)

    try:
        threads = [threading.Thread(target=http_call if i < 6 else grpc_call, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while admitted(http_port) < 8:
            assert time.monotonic() < deadline, "the requests were not admitted"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while True:  # soon no new connection is taken (until then health may already say 503)
            try:
                assert httpx.get(f"http://127.0.0.1:{http_port}/health", timeout=2).status_code in (200, 503)
            except httpx.TransportError:
                break
            assert time.monotonic() < deadline, "the server still takes connections"
            time.sleep(0.05)
        for t in threads:
            t.join(60)
        code = process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = process.stderr.read()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    expected = engine.embed(texts)
    for i in range(6):
        assert results[i].status_code == 200
        assert np.array(results[i].json(), dtype=np.float32).tobytes() == expected[i : i + 1].tobytes()
    for i in (6, 7):
        assert results[i].embeddings[0].data == expected[i].astype("<f4").tobytes()


def test_sigterm_on_an_idle_server_exits_0_quickly(tiny_dir):
    process, _, _ = start(["--algorithm", str(tiny_dir), "--backend", "cpu"])
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert time.monotonic() - started < 10


def test_access_log_lines_reach_the_log(tiny_dir):
    process, http_port, _ = start(["--algorithm", str(tiny_dir), "--backend", "cpu", "--workers", "1",
                                   "--no-worker-processes", "--access-log"])
    try:
        assert httpx.post(f"http://127.0.0.1:{http_port}/embed", json={"inputs": ["a cat"]}).status_code == 200
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert re.search(r"^INFO +127\.0\.0\.1:\d+ POST /embed 200 1 text \d+ tokens \d+\.\d ms$", stderr, re.M), stderr


def run_cli(args: list[str], code: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "sae", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("sae serve: error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_bad_limits_exit_2(tiny_dir):
    line = one_line_error(run_cli(["serve", "--algorithm", str(tiny_dir), "--backend", "cpu",
                                   "--max-batch-tokens", "10"]))
    assert "--max-batch-tokens must be in 128..16,777,216, got 10" in line  # the flag, not the field
    # argparse's own refusals are one line too (they printed the ten lines of usage first)
    for flag, value, why in (("--port", "70000", "0..65535"), ("--max-queue", "0", "must be >= 1, got 0"),
                             ("--workers", "x", "not an integer")):
        line = one_line_error(run_cli(["serve", flag, value]))
        assert why in line and "sae serve --help" in line and "usage:" not in line, line
    line = one_line_error(run_cli(["serve", "--algorithm", str(tiny_dir), "--backend", "cpu",
                                   "--drain-seconds", "nan"]))
    assert "--drain-seconds must be in 0..86,400, got nan" in line  # was accepted, then crashed on SIGTERM
    line = one_line_error(run_cli(["serve", "--algorithm", str(tiny_dir), "--backend", "cpu", "--max-queue", "2000000"]))
    assert "--max-queue must be in 1..1,000,000" in line


def test_bad_hosts_exit_2_before_loading(tiny_dir):
    result = run_cli(["serve", "--algorithm", str(tiny_dir), "--backend", "cpu", "--host", ""])
    line = one_line_error(result)  # was taken for every address, and gRPC failed once all was loaded
    assert "--host must not be empty" in line and "backend:" not in result.stderr
    result = run_cli(["serve", "--algorithm", str(tiny_dir), "--backend", "cpu", "--host", "999.1.1.1"])
    line = one_line_error(result)
    assert "cannot listen on 999.1.1.1:8080 (HTTP): " in line and "Unknown error" not in line, line


def test_an_empty_api_key_variable_is_refused(tiny_dir, monkeypatch):
    # A secret that expanded to nothing served without a key, and said nothing.
    monkeypatch.setenv("SAE_API_KEY", "")
    line = one_line_error(run_cli(["serve", "--algorithm", str(tiny_dir), "--backend", "cpu"]))
    assert "SAE_API_KEY is set but empty" in line
    monkeypatch.setenv("SAE_API_KEY", "two words")
    line = one_line_error(run_cli(["serve", "--algorithm", str(tiny_dir), "--backend", "cpu"]))
    assert "SAE_API_KEY must be 1 to 4,096 visible ASCII characters" in line and "two words" not in line


def test_a_busy_port_exits_2(tiny_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_line_error(run_cli(["serve", "--algorithm", str(tiny_dir), "--backend", "cpu",
                                       "--port", str(port), "--grpc-port", "0"]))
        assert f"cannot listen on 127.0.0.1:{port} (HTTP)" in line
        result = run_cli(["serve", "--algorithm", str(tiny_dir), "--backend", "cpu",
                          "--port", "0", "--grpc-port", str(port)])
        line = one_line_error(result)
        assert line.endswith(f"cannot listen on 127.0.0.1:{port} (gRPC): Address already in use"), line
        # gRPC's C core printed a line of its own ("E1202 ... add_port.cc ... Failed to add port").
        assert "add_port" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "backend:" not in result.stderr  # found before loading the Algorithm and starting workers
        line = one_line_error(run_cli(["serve", "--algorithm", str(tiny_dir), "--backend", "cpu", "--port", "0",
                                       "--grpc-port", "0", "--health-port", str(port)]))
        assert line.endswith(f"cannot listen on 127.0.0.1:{port} (health): Address already in use"), line


def test_without_the_extra_the_error_names_the_install(tiny_dir):
    code = ("import sys; sys.modules['starlette'] = None; from sae.cli import main; "
            f"sys.exit(main(['serve', '--algorithm', {str(tiny_dir)!r}, '--backend', 'cpu']))")
    line = one_line_error(run_cli([], code))
    assert "pip install 'sae[serve]'" in line and "starlette" in line


def test_cpu_engines_run_in_worker_processes_unless_told_otherwise():
    from sae.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["serve"]).worker_processes is True
    assert parser.parse_args(["serve", "--worker-processes"]).worker_processes is True
    assert parser.parse_args(["serve", "--no-worker-processes"]).worker_processes is False
