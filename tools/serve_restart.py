"""What clients see when an engine process of `sae serve` dies under load.

Starts `sae serve --workers N` (engine processes; the bundled Algorithm unless
``--algorithm``) on free ports, runs
``--clients`` threads that post 16 texts to ``/embed`` in a loop, kills one engine process
with SIGKILL after one second, and prints what the clients saw from then on: failed
requests (the batch in the dying process fails), latency, and how long ``/health``
was not 200 (looked at every 50 ms) — docs/SERVE.md, "When an engine process dies".

    python tools/serve_restart.py [--workers 2] [--clients 4] [--seconds 6] [--algorithm DIR]
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from pathlib import Path

import httpx
from loadtest import child_pids, start_server  # tools/: the script's own folder is on the path

TEXTS = ["A man is playing the guitar while 3 dogs bark at a cat in the yard."] * 16
HEALTH_EVERY = 0.05


def engine_processes(server: int) -> list[int]:
    """The server's engine processes: its children but multiprocessing's resource tracker (Linux /proc)."""
    return [pid for pid in child_pids(server) if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--algorithm", help="an Algorithm directory (default: the bundled one)")
    args = ap.parse_args()
    if args.seconds < 2 or args.workers < 1 or args.clients < 1:
        ap.error("--seconds must be at least 2 (the kill comes after 1), --workers and --clients at least 1")
    server = start_server(args.algorithm, ["--workers", str(args.workers), "--worker-processes"])
    url = f"http://127.0.0.1:{server.http_port}"
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            for _ in range(50):  # warm: every worker has embedded
                http.post("/embed", json={"inputs": TEXTS})
        latencies: list[tuple[float, float]] = []  # (when, seconds)
        errors, unhealthy, done = [0], [0], threading.Event()
        start = time.monotonic()

        def client() -> None:
            with httpx.Client(base_url=url, timeout=60) as http:
                while time.monotonic() - start < args.seconds:
                    sent = time.perf_counter()
                    if http.post("/embed", json={"inputs": TEXTS}).status_code != 200:
                        errors[0] += 1
                    latencies.append((time.monotonic() - start, time.perf_counter() - sent))

        def health() -> None:
            with httpx.Client(base_url=url, timeout=60) as http:
                while not done.is_set():
                    unhealthy[0] += http.get("/health").status_code != 200
                    time.sleep(HEALTH_EVERY)

        threads = [threading.Thread(target=client) for _ in range(args.clients)] + [threading.Thread(target=health)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        killed = time.monotonic() - start
        os.kill(engine_processes(server.process.pid)[0], signal.SIGKILL)
        for t in threads[:-1]:
            t.join()
        done.set()
        threads[-1].join()
        with httpx.Client(base_url=url, timeout=60) as http:
            restarts = [line for line in http.get("/metrics").text.splitlines()
                        if line.startswith("sae_worker_restarts_total")]
        after = sorted(seconds for when, seconds in latencies if when > killed)
        print(f"workers {args.workers}, clients {args.clients}: {len(latencies)} requests, {errors[0]} failed; "
              f"{restarts[0] if restarts else 'no restart counted'}")
        print(f"/health not 200 in {unhealthy[0]} looks (every {HEALTH_EVERY * 1000:.0f} ms)")
        print(f"after the kill: {len(after)} requests, median {after[len(after) // 2] * 1000:.1f} ms, "
              f"p99 {after[int(len(after) * 0.99)] * 1000:.1f} ms, max {after[-1] * 1000:.0f} ms")
    finally:
        print(f"server exit code after SIGTERM: {server.stop()}")


if __name__ == "__main__":
    main()
