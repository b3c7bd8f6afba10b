"""What clients see when `sae serve` gets SIGTERM under load: answered, refused, or reset.

Starts `sae serve` (the bundled Algorithm unless ``--algorithm``) on free ports, runs
``--clients`` threads that each open a new connection for every ``POST /embed`` (with
``--keep-alive``, one connection each, reused as an HTTP client pool does, and a new one
when the server closes it), sends SIGTERM after one second, and counts how each request
made from then on ended: answered (its status), refused (the listener was closed: the
client knows nothing was sent), or reset / closed without an answer (the request was sent
and nobody answered it: the case a graceful shutdown must not have) — docs/SERVE.md,
"Shutdown". ``--grpc`` makes the clients call gRPC's ``Embed`` instead (a new channel for
every call; with ``--keep-alive``, one channel each); a call the server dropped (CANCELLED,
a lost connection, a deadline) counts as never answered. ``--rounds`` repeats it with a new
server each time.

    python tools/serve_shutdown.py [--clients 16] [--rounds 5] [--keep-alive] [--grpc] [--algorithm DIR]
"""

from __future__ import annotations

import argparse
import collections
import signal
import socket
import threading
import time

import grpc
import httpx
from loadtest import start_server

from sae.service.proto import embed_pb2, embed_pb2_grpc  # tools/: the script's own folder is on the path

BODY = b'{"inputs": ["A man is playing the guitar.", "The cat sat on the mat."]}'
_HEAD = b"POST /embed HTTP/1.1\r\nHost: sae\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(BODY)
REQUEST = _HEAD + b"Connection: close\r\n\r\n" + BODY
KEPT_ALIVE_REQUEST = _HEAD + b"\r\n" + BODY
UNANSWERED = ("reset", "reset after part of an answer", "closed without an answer", "timed out", "CANCELLED")
EMBED = embed_pb2.EmbedRequest(inputs=["A man is playing the guitar.", "The cat sat on the mat."])


def unanswered(outcome: str) -> bool:
    """Whether a request so ended was sent and never answered (a gRPC UNAVAILABLE other than
    a refused connection or the server's own "shutting down" is a connection lost)."""
    return outcome in UNANSWERED or outcome.startswith("UNAVAILABLE: ")


def send_embed_request(port: int, connection: socket.socket | None = None, *,
                       keep_alive: bool = False) -> socket.socket | str:
    """A raw ``POST /embed`` on a new connection (or ``connection``): the socket to read
    the answer from (:func:`answer_of`), or how it failed ("refused", "reset")."""
    if connection is None:
        connection = socket.socket()
        connection.settimeout(30)
        try:
            connection.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            connection.close()
            return "refused"
    try:
        connection.sendall(KEPT_ALIVE_REQUEST if keep_alive else REQUEST)
    except (ConnectionResetError, BrokenPipeError):
        connection.close()
        return "reset"
    return connection


def answer_of(connection: socket.socket | str, headers: list[bytes] | None = None) -> str:
    """The HTTP status answered on ``connection`` (read to its end, then closed), or how
    it failed; the answer's header lines (lower case) go to ``headers``."""
    if isinstance(connection, str):
        return connection
    data = b""
    try:
        while chunk := connection.recv(65536):
            data += chunk
    except ConnectionResetError:
        return "reset" if not data else "reset after part of an answer"
    except TimeoutError:
        return "timed out"
    finally:
        connection.close()
    if headers is not None:
        headers.extend(data.split(b"\r\n\r\n", 1)[0].lower().split(b"\r\n")[1:])
    return data.split(b" ", 2)[1].decode() if data else "closed without an answer"


def one_request(port: int) -> str:
    """How one request on a new connection ended: the HTTP status, or how it failed."""
    return answer_of(send_embed_request(port))


def pooled_request(http: httpx.Client) -> str:
    """How one request on the client's kept-alive connection ended."""
    try:
        return str(http.post("/embed", content=BODY, headers={"content-type": "application/json"}).status_code)
    except httpx.ConnectError:
        return "refused"
    except httpx.RemoteProtocolError:  # "Server disconnected without sending a response."
        return "closed without an answer"
    except httpx.ReadError:
        return "reset"
    except httpx.TimeoutException:
        return "timed out"


def grpc_call(channel: grpc.Channel) -> str:
    """How one ``Embed`` call ended: OK, refused, or its status and why."""
    try:
        embed_pb2_grpc.EmbedderStub(channel).Embed(EMBED, timeout=30)
        return "OK"
    except grpc.RpcError as exc:
        code, details = exc.code(), (exc.details() or "").lower()
        if code == grpc.StatusCode.UNAVAILABLE and "refused" in details:
            return "refused"
        if code == grpc.StatusCode.UNAVAILABLE and "shutting down" in details:
            return "UNAVAILABLE (shutting down)"
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return "timed out"
        return code.name if code != grpc.StatusCode.UNAVAILABLE else f"UNAVAILABLE: {details[:40]}"


def one_round(algorithm: str | None, clients: int, keep_alive: bool, use_grpc: bool) -> tuple[collections.Counter, int]:
    """Outcomes of the requests made after SIGTERM, and the server's exit code."""
    server = start_server(algorithm, [])
    before, after = collections.Counter(), collections.Counter()
    signalled, done = threading.Event(), threading.Event()

    def count(outcome: str) -> None:
        (after if signalled.is_set() else before)[outcome] += 1

    def client() -> None:
        if use_grpc:
            target = f"127.0.0.1:{server.grpc_port}"
            with grpc.insecure_channel(target) as kept:
                while not done.is_set():
                    if keep_alive:
                        count(grpc_call(kept))
                    else:
                        with grpc.insecure_channel(target) as channel:
                            count(grpc_call(channel))
            return
        with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", timeout=30) as http:
            while not done.is_set():
                count(pooled_request(http) if keep_alive else one_request(server.http_port))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    signalled.set()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(60)
    time.sleep(0.2)  # a last round of refusals: nothing listens any more
    done.set()
    for t in threads:
        t.join()
    if set(before) - {"200", "OK"}:
        raise RuntimeError(f"requests failed before SIGTERM: {dict(before)}")
    return after, code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keep-alive", action="store_true", help="one kept-alive connection (gRPC: channel) per client")
    ap.add_argument("--grpc", action="store_true", help="call gRPC's Embed instead of POST /embed")
    ap.add_argument("--algorithm", help="an Algorithm directory (default: the bundled one)")
    args = ap.parse_args()
    if args.clients < 1 or args.rounds < 1:
        ap.error("--clients and --rounds must be at least 1")
    lost: list[int] = []
    for r in range(1, args.rounds + 1):
        after, code = one_round(args.algorithm, args.clients, args.keep_alive, args.grpc)
        lost.append(sum(n for outcome, n in after.items() if unanswered(outcome)))
        outcomes = ", ".join(f"{kind} {n}" for kind, n in sorted(after.items()))
        print(f"round {r}: after SIGTERM {outcomes}; sent and never answered {lost[-1]}; exit code {code}")
    print(f"sent and never answered, per round: {' '.join(map(str, lost))} "
          f"(mean {sum(lost) / len(lost):.1f}, {args.clients} {'gRPC' if args.grpc else 'HTTP'} clients"
          f"{', kept-alive connections' if args.keep_alive else ', a connection a request'})")


if __name__ == "__main__":
    main()
