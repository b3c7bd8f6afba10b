"""Helpers of the service tests: real uvicorn and grpc.aio servers on loopback, free ports.

``running_server`` runs :func:`sae.service.serve` on a thread of this process (fast,
shares fixtures); the SIGTERM and invariance tests start ``sae serve`` as a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from sae import Engine
from sae.service import Addresses, EmbeddingService, ServiceConfig, make_workers, serve


@contextlib.contextmanager
def running_server(service: EmbeddingService, timeout: float = 60) -> Iterator[Addresses]:
    """Serve ``service`` on a thread until the block ends, then drain it as SIGTERM would."""
    ready = threading.Event()
    box: dict = {}

    def main() -> None:
        async def run() -> None:
            box["loop"] = asyncio.get_running_loop()
            box["stop"] = asyncio.Event()

            def on_ready(addresses: Addresses) -> None:
                box["addresses"] = addresses
                ready.set()

            await serve(service, ready=on_ready, stop=box["stop"], handle_signals=False)

        try:
            asyncio.run(run())
        except BaseException as exc:  # reported by the waiting test
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=main, name="test-server", daemon=True)
    thread.start()
    assert ready.wait(timeout), "the server did not start"
    if "error" in box:
        raise box["error"]
    try:
        yield box["addresses"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(timeout)
        assert not thread.is_alive(), "the server did not stop"
        if "error" in box:
            raise box["error"]


def tiny_service(tiny_dir: Path, workers: int = 2, processes: bool = False, **limits) -> EmbeddingService:
    """The tiny Algorithm on the CPU; worker threads unless ``processes`` (they start in ~1 s each)."""
    config = ServiceConfig(port=0, grpc_port=0, **limits)
    engine = Engine(tiny_dir, backend="cpu", threads=1)
    return EmbeddingService(engine, config, make_workers(engine, tiny_dir, workers, processes=processes))


def serve_once(tiny_dir: Path, *args: str) -> tuple[int, str, str]:
    """``sae serve`` on the tiny Algorithm (one worker thread, ports picked by the system)
    with ``args``, stopped by SIGTERM once it listens: its exit code, ready line and log."""
    process = subprocess.Popen([sys.executable, "-m", "sae", "serve", "--algorithm", str(tiny_dir), "--backend", "cpu",
                                "--port", "0", "--grpc-port", "0", "--workers", "1", "--no-worker-processes", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, ready, stderr
