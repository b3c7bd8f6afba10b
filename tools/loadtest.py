"""Load test of ``sae serve`` on loopback, next to in-process ``Engine.embed`` in the same run.

    python tools/loadtest.py [--shared ../shared] [--levels 1,8,64] [--seconds 10] \
        [--requests 10000] [--rounds 3] [--protocol http|grpc] [--encoding base64|float] [--tls] \
        [--server-args "--max-wait-ms 2"] [--json OUT.json]

Starts ``sae serve --backend cpu`` on 127.0.0.1 (free ports) in a subprocess, then for
each level runs that many clients, each on its own keep-alive connection sending one
request after another (closed loop) of 1–32 texts drawn at random from the STS-B dev
sentences (the bundled demo pairs without ``../shared``), until ``--requests`` requests
or ``--seconds`` seconds, whichever comes first, after a warm-up that sends every corpus
text once (the in-process engine is as warm: it embedded the corpus for the reference,
and the numpy path fills transformed rows on first use). Every answer is checked byte for byte
against ``Engine.embed`` of the whole corpus in this process: batch invariance under
real concurrency. Prints texts/s, the ratio to in-process ``Engine.embed`` (all texts
in one call, best of 3, measured before and after each round), p50/p99 latency, errors,
mismatches, and the server's CPU time per text next to in-process ``Engine.embed``'s (a
figure that other work on a shared machine disturbs less than rates) and the load
generator's own; from the server's ``/metrics``, the mean texts per engine batch and the
share of the level's time a batch was in an inference worker; and, for the largest
level, the rate of one engine thread alone on random batches of that mean size (token
ids ready, nothing else running): the ceiling of a server with one inference worker.
``--rounds`` repeats everything and prints each level's spread. ``--tls`` serves over
HTTPS and gRPC over TLS with a certificate from a test CA (trustme: ``pip install
'sae[serve-test]'``), each client shaking hands once for its connection.
Exit 1 on any error or mismatch.

The clients are a minimal HTTP/1.1 writer on asyncio streams rather than httpx: on a
2-core machine the load generator shares the CPU with the server, and httpx spends
~1.4 ms of CPU per request here against ~45 µs for this; they run on uvloop where it is
installed (the serve extra brings it), 5–6 µs of CPU per text at 64 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import shlex
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sae.engine import Engine  # noqa: E402
from sae.errors import run_script  # noqa: E402
from sae.evaluate import read_pairs  # noqa: E402
from sae.service.server import run_coroutine  # noqa: E402

MAX_TEXTS_PER_REQUEST = 32


def corpus(shared: Path) -> tuple[list[str], str]:
    """The texts requests are drawn from, and where they came from."""
    dev = shared / "data" / "stsb" / "sts-dev.csv"
    if dev.exists():
        return read_pairs(dev).unique_texts(), "STS-B dev (unique sentences)"
    return read_pairs(REPO / "sae" / "data" / "demo_pairs.tsv").unique_texts(), "bundled demo pairs"


# -- the server


def child_pids(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux /proc; OSError where there is none)."""
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


@dataclass
class Server:
    process: subprocess.Popen
    http_port: int
    grpc_port: int
    #: with TLS (``start_server``'s ``tls``): a client context that trusts the server, and its CA's PEM
    client_tls: ssl.SSLContext | None = None
    ca_pem: bytes | None = None

    def cpu_seconds(self) -> float:
        """CPU time the server and its worker processes have used (user + system; Linux /proc, else nan)."""
        total = 0.0
        pending = [self.process.pid]
        while pending:
            pid = pending.pop()
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                pending.extend(child_pids(pid))
            except OSError:
                if pid == self.process.pid:
                    return float("nan")
                continue  # a child that just ended
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, wait for the drain; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return -9

    def metrics(self) -> dict[str, float]:
        """The server's running totals of engine batches, their texts and their seconds (GET /metrics)."""
        from prometheus_client.parser import text_string_to_metric_families

        scheme = "https" if self.client_tls is not None else "http"
        with urllib.request.urlopen(f"{scheme}://127.0.0.1:{self.http_port}/metrics", timeout=10,
                                    context=self.client_tls) as answer:
            text = answer.read().decode()
        wanted = {"sae_batch_texts_count": "batches", "sae_batch_texts_sum": "batch_texts",
                  "sae_inference_duration_seconds_sum": "inference_seconds"}
        return {wanted[sample.name]: sample.value for family in text_string_to_metric_families(text)
                for sample in family.samples if sample.name in wanted}


def start_server(algorithm: str | None, extra: list[str], timeout: float = 120, tls: str | None = None) -> Server:
    """``sae serve`` on 127.0.0.1 with free ports; returns once it listens. With ``tls`` (a
    folder), over TLS with a certificate from a test CA written there."""
    client_tls = ca_pem = None
    if tls is not None:
        import trustme

        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1")
        cert, key = Path(tls, "cert.pem"), Path(tls, "key.pem")
        cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        key.write_bytes(issued.private_key_pem.bytes())
        extra = [*extra, "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
        client_tls = ssl.create_default_context()
        ca.configure_trust(client_tls)
        ca_pem = ca.cert_pem.bytes()
    cmd = [sys.executable, "-m", "sae", "serve", "--host", "127.0.0.1", "--port", "0", "--grpc-port", "0",
           "--backend", "cpu", *(["--algorithm", algorithm] if algorithm else []), *extra]
    env = {name: value for name, value in os.environ.items() if name != "SAE_API_KEY"}  # its clients send none
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    line = process.stdout.readline()  # "sae serve: listening on http://127.0.0.1:PORT (HTTP) and 127.0.0.1:PORT (gRPC)"
    if "listening on" not in line or time.monotonic() > deadline:
        process.kill()
        raise RuntimeError(f"sae serve did not start (exit {process.wait()}): {line!r}")
    words = line.split()
    http_port = int(words[4].rsplit(":", 1)[1])
    grpc_port = int(words[7].rsplit(":", 1)[1])
    return Server(process, http_port, grpc_port, client_tls, ca_pem)


# -- the clients


@dataclass
class LevelResult:
    clients: int
    requests: int = 0
    texts: int = 0
    seconds: float = 0.0
    errors: int = 0
    mismatches: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)
    first_error: str = ""
    server_cpu: float = float("nan")  #: CPU seconds the server used during the level
    client_cpu: float = float("nan")  #: CPU seconds this load generator used during the level
    batches: int = 0  #: engine batches the server ran during the level
    batch_texts: int = 0  #: texts in those batches
    inference_seconds: float = 0.0  #: their summed time in an inference worker

    @property
    def texts_per_batch(self) -> float:
        return self.batch_texts / self.batches if self.batches else float("nan")

    @property
    def worker_busy(self) -> float:
        """Share of the level's time a batch was in an inference worker (summed over workers)."""
        return self.inference_seconds / self.seconds if self.seconds else float("nan")

    @property
    def cpu_us_per_text(self) -> float:
        return self.server_cpu / self.texts * 1e6 if self.texts else float("nan")

    @property
    def client_us_per_text(self) -> float:
        return self.client_cpu / self.texts * 1e6 if self.texts else float("nan")

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


class Reference:
    """The in-process embeddings every answer must equal, in each wire form."""

    def __init__(self, vectors: np.ndarray) -> None:
        little = np.ascontiguousarray(vectors, dtype="<f4")
        self.rows = [row.tobytes() for row in little]
        self.base64 = [base64.b64encode(row).decode("ascii") for row in self.rows]


def _request_plan(seed: int, n_texts: int, count: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(n_texts) for _ in range(rng.randint(1, MAX_TEXTS_PER_REQUEST))] for _ in range(count)]


async def _http_client(server: Server, texts: list[str], ref: Reference, plan: list[list[int]], encoding: str,
                       stop_at: float, budget: list[int], result: LevelResult) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port, ssl=server.client_tls)
    try:
        for picks in plan:
            if budget[0] <= 0 or time.perf_counter() > stop_at:
                break
            budget[0] -= 1
            body = orjson.dumps({"input": [texts[i] for i in picks], "model": "sae", "encoding_format": encoding})
            head = (f"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            started = time.perf_counter()
            writer.write(head + body)
            header = await reader.readuntil(b"\r\n\r\n")
            length = int(header.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            payload = await reader.readexactly(length)
            result.latencies.append(time.perf_counter() - started)
            result.requests += 1
            status = int(header.split(b" ", 2)[1])
            if status != 200:
                result.errors += 1
                result.first_error = result.first_error or f"HTTP {status}: {payload[:200]!r}"
                continue
            data = orjson.loads(payload)["data"]
            result.texts += len(data)
            if encoding == "base64":
                same = all(item["embedding"] == ref.base64[i] for item, i in zip(data, picks))
            else:
                same = all(np.array(item["embedding"], dtype="<f4").tobytes() == ref.rows[i]
                           for item, i in zip(data, picks))
            if not same or len(data) != len(picks):
                result.mismatches += 1
    finally:
        writer.close()


async def _grpc_client(server: Server, texts: list[str], ref: Reference, plan: list[list[int]], encoding: str,
                       stop_at: float, budget: list[int], result: LevelResult) -> None:
    import grpc

    from sae.service.proto import embed_pb2, embed_pb2_grpc

    target = f"127.0.0.1:{server.grpc_port}"
    channel = (grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(server.ca_pem))
               if server.ca_pem is not None else grpc.aio.insecure_channel(target))
    async with channel:
        stub = embed_pb2_grpc.EmbedderStub(channel)
        for picks in plan:
            if budget[0] <= 0 or time.perf_counter() > stop_at:
                break
            budget[0] -= 1
            started = time.perf_counter()
            try:
                encoding_enum = embed_pb2.BYTES if encoding == "base64" else embed_pb2.FLOAT
                reply = await stub.Embed(embed_pb2.EmbedRequest(inputs=[texts[i] for i in picks],
                                                                encoding=encoding_enum))
            except grpc.aio.AioRpcError as exc:
                result.requests += 1
                result.errors += 1
                result.first_error = result.first_error or f"gRPC {exc.code().name}: {exc.details()}"
                continue
            result.latencies.append(time.perf_counter() - started)
            result.requests += 1
            result.texts += len(reply.embeddings)
            if encoding == "base64":
                same = all(e.data == ref.rows[i] for e, i in zip(reply.embeddings, picks))
            else:
                same = all(np.array(e.values, dtype="<f4").tobytes() == ref.rows[i]
                           for e, i in zip(reply.embeddings, picks))
            same = same and len(reply.embeddings) == len(picks)
            if not same:
                result.mismatches += 1


def run_level(server: Server, texts: list[str], ref: Reference, clients: int, *, requests: int, seconds: float,
              protocol: str = "http", encoding: str = "base64", seed: int = 0,
              plans: list[list[list[int]]] | None = None) -> LevelResult:
    """``clients`` closed-loop clients until ``requests`` requests or ``seconds`` seconds.

    Each client sends random requests of 1–32 texts, or the requests of its ``plans`` entry.
    """
    result = LevelResult(clients)
    client = _http_client if protocol == "http" else _grpc_client
    per_client = requests // clients + 1
    if plans is None:
        plans = [_request_plan(seed * 1000 + c, len(texts), per_client) for c in range(clients)]

    async def main() -> None:
        budget = [requests]
        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(*(
            client(server, texts, ref, plans[c], encoding, stop_at, budget, result) for c in range(clients)))
        result.seconds = time.perf_counter() - started

    totals_before = server.metrics()
    cpu_before, client_before = server.cpu_seconds(), time.process_time()
    # uvloop where installed: the clients share the server's 2 cores here, so their own
    # CPU per request is taken from the server's.
    run_coroutine(main())
    result.server_cpu = server.cpu_seconds() - cpu_before
    result.client_cpu = time.process_time() - client_before
    totals = server.metrics()
    result.batches = int(totals["batches"] - totals_before["batches"])
    result.batch_texts = int(totals["batch_texts"] - totals_before["batch_texts"])
    result.inference_seconds = totals["inference_seconds"] - totals_before["inference_seconds"]
    return result


# -- in process


def in_process_rate(engine: Engine, texts: list[str], repeats: int = 3) -> tuple[float, float]:
    """Texts per second of ``Engine.embed(texts)`` in one call (best of ``repeats``), and CPU µs per text."""
    best = float("inf")
    cpu = float("inf")
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        engine.embed(texts)
        best = min(best, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - cpu_started)
    return len(texts) / best, cpu / len(texts) * 1e6


def one_engine_rate(engine: Engine, token_ids: list[list[int]], batch: int, repeats: int = 3) -> float:
    """Texts per second of ``engine`` (one thread) embedding the corpus's token ids in random
    batches of ``batch`` texts, best of ``repeats``: what one inference worker can do alone."""
    order = list(range(len(token_ids)))
    random.Random(7).shuffle(order)
    batches = [[token_ids[i] for i in order[start : start + batch]] for start in range(0, len(order), batch)]
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for ids in batches:
            engine.embed_tokens(ids)
        best = min(best, time.perf_counter() - started)
    return len(token_ids) / best


def per_request_rate(engine: Engine, texts: list[str], count: int, seconds: float) -> float:
    """Texts per second of ``Engine.embed`` called once per request of 1–32 texts (no batching)."""
    done = 0
    started = time.perf_counter()
    for picks in _request_plan(12345, len(texts), count):
        engine.embed([texts[i] for i in picks])
        done += len(picks)
        if time.perf_counter() - started > seconds:
            break
    return done / (time.perf_counter() - started)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--algorithm", default=None, help="Algorithm directory (default: the bundled one)")
    ap.add_argument("--levels", default="1,8,64", help="concurrent clients per level (default 1,8,64)")
    ap.add_argument("--seconds", type=float, default=10.0, help="time limit per level (default 10)")
    ap.add_argument("--requests", type=int, default=10000, help="request limit per level (default 10000)")
    ap.add_argument("--rounds", type=int, default=1, help="repeat all levels; best and spread per level")
    ap.add_argument("--protocol", choices=("http", "grpc"), default="http")
    ap.add_argument("--encoding", choices=("base64", "float"), default="base64",
                    help="OpenAI encoding_format (base64: what the OpenAI client asks by default); "
                    "for gRPC base64 means Encoding BYTES, float FLOAT")
    ap.add_argument("--tls", action="store_true", help="serve over TLS (a certificate from a test CA; needs trustme)")
    ap.add_argument("--server-args", default="", help="more options for sae serve, e.g. '--max-wait-ms 2' "
                    "(one flag alone with '=': --server-args=--access-log)")
    ap.add_argument("--json", default=None, help="write every figure to this file")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    if args.seconds <= 0 or args.requests < 1 or args.rounds < 1 or min(levels) < 1:
        ap.error("--seconds, --requests, --rounds and --levels must be positive")

    texts, source = corpus(Path(args.shared))
    engine = Engine(args.algorithm, backend="cpu")
    ref = Reference(engine.embed(texts))
    single = Engine(engine.algorithm, backend="cpu", threads=1)
    token_ids = single.tokenize(texts)
    print(f"corpus: {len(texts)} texts from {source}; requests of 1–{MAX_TEXTS_PER_REQUEST} texts; "
          f"{args.protocol}{' over TLS' if args.tls else ''} ({args.encoding})"
          + f"; {os.cpu_count()} CPUs; engine threads {engine.threads}", flush=True)
    tls_folder = tempfile.TemporaryDirectory(prefix="sae-loadtest-") if args.tls else None
    server = start_server(args.algorithm, shlex.split(args.server_args),
                          tls=tls_folder.name if tls_folder is not None else None)
    print(f"server: pid {server.process.pid}, http {server.http_port}, grpc {server.grpc_port}, "
          f"args {args.server_args or '(defaults)'}", flush=True)
    rounds: list[dict] = []
    try:
        # Warm-up, not reported: every corpus text once, so the server is as warm as the
        # in-process engine, which embedded the corpus for the reference (the numpy
        # path computes transformed rows on first use).
        chunks = [list(range(i, min(i + MAX_TEXTS_PER_REQUEST, len(texts))))
                  for i in range(0, len(texts), MAX_TEXTS_PER_REQUEST)]
        warm = run_level(server, texts, ref, 8, requests=len(chunks), seconds=120, protocol=args.protocol,
                         encoding=args.encoding, plans=[chunks[c::8] for c in range(8)])
        if warm.errors or warm.mismatches:
            print(f"warm-up: {warm.errors} errors, {warm.mismatches} mismatches; first error: {warm.first_error}")
        for r in range(args.rounds):
            anchor, anchor_cpu = in_process_rate(engine, texts)
            one_by_one = per_request_rate(engine, texts, 2000, 3.0)
            results = [run_level(server, texts, ref, c, requests=args.requests, seconds=args.seconds,
                                 protocol=args.protocol, encoding=args.encoding, seed=r * 100 + c)
                       for c in levels]
            after, after_cpu = in_process_rate(engine, texts)
            anchor, anchor_cpu = max(anchor, after), min(anchor_cpu, after_cpu)
            top = results[-1]
            ceiling_batch = max(1, round(top.texts_per_batch)) if top.batches else 0
            ceiling = one_engine_rate(single, token_ids, ceiling_batch) if ceiling_batch else float("nan")
            rounds.append({"anchor": anchor, "anchor_cpu": anchor_cpu, "one_by_one": one_by_one, "levels": results,
                           "ceiling_batch": ceiling_batch, "ceiling": ceiling})
            print(f"\nround {r + 1}: in-process Engine.embed {anchor:,.0f} texts/s (one call, "
                  f"{anchor_cpu:.0f} µs CPU per text); {one_by_one:,.0f} texts/s called once per request")
            print(f"{'clients':>7} {'requests':>8} {'texts/s':>9} {'vs in-process':>13} {'p50 ms':>7} "
                  f"{'p99 ms':>7} {'errors':>6} {'mismatches':>10} {'server µs CPU/text':>18} {'client µs CPU/text':>18} "
                  f"{'texts/batch':>11} {'worker busy':>11}")
            for res in results:
                print(f"{res.clients:>7} {res.requests:>8} {res.texts_per_s:>9,.0f} "
                      f"{res.texts_per_s / anchor:>12.0%} {res.percentile(50) * 1e3:>7.1f} "
                      f"{res.percentile(99) * 1e3:>7.1f} {res.errors:>6} {res.mismatches:>10} "
                      f"{res.cpu_us_per_text:>18.0f} {res.client_us_per_text:>18.0f} "
                      f"{res.texts_per_batch:>11.0f} {res.worker_busy:>10.0%}", flush=True)
                if res.first_error:
                    print(f"        first error: {res.first_error}")
            if ceiling_batch:
                print(f"one engine thread alone on random {ceiling_batch}-text batches (the {top.clients}-client "
                      f"level's mean): {ceiling:,.0f} texts/s = {ceiling / anchor:.0%} of in-process")
    finally:
        code = server.stop()
        if tls_folder is not None:
            tls_folder.cleanup()
    print(f"\nserver exit code after SIGTERM: {code}")
    if args.rounds > 1:
        print("\nover rounds: ratio to in-process (min / median / max)")
        for i, c in enumerate(levels):
            ratios = [rd["levels"][i].texts_per_s / rd["anchor"] for rd in rounds]
            p99 = [rd["levels"][i].percentile(99) * 1e3 for rd in rounds]
            cpu = [rd["anchor_cpu"] / rd["levels"][i].cpu_us_per_text for rd in rounds]
            print(f"{c:>7} clients: {min(ratios):.0%} / {statistics.median(ratios):.0%} / {max(ratios):.0%}; "
                  f"p99 {min(p99):.1f}–{max(p99):.1f} ms; in-process CPU per text / server's "
                  f"{min(cpu):.0%} / {statistics.median(cpu):.0%} / {max(cpu):.0%}")
        ceilings = [rd["ceiling"] / rd["anchor"] for rd in rounds if rd["ceiling_batch"]]
        if ceilings:
            print(f"one engine thread alone at the {levels[-1]}-client batch size: {min(ceilings):.0%} / "
                  f"{statistics.median(ceilings):.0%} / {max(ceilings):.0%} of in-process")
    failures = warm.errors + warm.mismatches + sum(res.errors + res.mismatches for rd in rounds for res in rd["levels"])
    if args.json:
        out = {"corpus": source, "texts": len(texts), "protocol": args.protocol, "tls": args.tls,
               "encoding": args.encoding,
               "server_args": args.server_args, "server_exit": code, "rounds": [
                   {"anchor_texts_per_s": rd["anchor"], "anchor_cpu_us_per_text": rd["anchor_cpu"],
                    "one_by_one_texts_per_s": rd["one_by_one"], "one_engine_batch": rd["ceiling_batch"],
                    "one_engine_texts_per_s": rd["ceiling"], "levels": [
                       {**{k: v for k, v in asdict(res).items() if k != "latencies"},
                        "texts_per_s": res.texts_per_s, "cpu_us_per_text": res.cpu_us_per_text,
                        "texts_per_batch": res.texts_per_batch, "worker_busy": res.worker_busy,
                        "p50_ms": res.percentile(50) * 1e3,
                        "p99_ms": res.percentile(99) * 1e3} for res in rd["levels"]]} for rd in rounds]}
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 1 if failures or code != 0 else 0


if __name__ == "__main__":
    sys.exit(run_script(main))
