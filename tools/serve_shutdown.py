"""What clients see when `sae serve` gets SIGTERM under load: answered, refused, or reset.

Starts `sae serve` (the bundled Algorithm unless ``--algorithm``) on free ports, runs
``--clients`` threads that each open a new connection for every ``POST /embed`` (with
``--keep-alive``, one connection each, reused as an HTTP client pool does, and a new one
when the server closes it), sends SIGTERM after one second, and counts how each request
made from then on ended: answered (its status), refused (the listener was closed: the
client knows nothing was sent), or reset / closed without an answer (the request was sent
and nobody answered it: the case a graceful shutdown must not have) — docs/SERVE.md,
"Shutdown". ``--rounds`` repeats it with a new server each time.

    python tools/serve_shutdown.py [--clients 16] [--rounds 5] [--keep-alive] [--algorithm DIR]
"""

from __future__ import annotations

import argparse
import collections
import signal
import socket
import threading
import time

import httpx
from loadtest import start_server  # tools/: the script's own folder is on the path

BODY = b'{"inputs": ["A man is playing the guitar.", "The cat sat on the mat."]}'
REQUEST = (b"POST /embed HTTP/1.1\r\nHost: sae\r\nContent-Type: application/json\r\nConnection: close\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY))
UNANSWERED = ("reset", "closed without an answer")


def one_request(port: int) -> str:
    """How one request on a new connection ended: the HTTP status, or how it failed."""
    with socket.socket() as connection:
        connection.settimeout(30)
        try:
            connection.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return "refused"
        data = b""
        try:
            connection.sendall(REQUEST)
            while chunk := connection.recv(65536):
                data += chunk
        except (ConnectionResetError, BrokenPipeError):
            return "reset"
        except TimeoutError:
            return "timed out"
    return data.split(b" ", 2)[1].decode() if data else "closed without an answer"


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


def one_round(algorithm: str | None, clients: int, keep_alive: bool) -> tuple[collections.Counter, int]:
    """Outcomes of the requests made after SIGTERM, and the server's exit code."""
    server = start_server(algorithm, [])
    before, after = collections.Counter(), collections.Counter()
    signalled, done = threading.Event(), threading.Event()

    def client() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", timeout=30) as http:
            while not done.is_set():
                outcome = pooled_request(http) if keep_alive else one_request(server.http_port)
                (after if signalled.is_set() else before)[outcome] += 1

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
    if set(before) != {"200"}:
        raise RuntimeError(f"requests failed before SIGTERM: {dict(before)}")
    return after, code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keep-alive", action="store_true", help="one kept-alive connection per client")
    ap.add_argument("--algorithm", help="an Algorithm directory (default: the bundled one)")
    args = ap.parse_args()
    if args.clients < 1 or args.rounds < 1:
        ap.error("--clients and --rounds must be at least 1")
    unanswered = []
    for r in range(1, args.rounds + 1):
        after, code = one_round(args.algorithm, args.clients, args.keep_alive)
        unanswered.append(sum(after[kind] for kind in UNANSWERED))
        outcomes = ", ".join(f"{kind} {n}" for kind, n in sorted(after.items()))
        print(f"round {r}: after SIGTERM {outcomes}; sent and never answered {unanswered[-1]}; exit code {code}")
    print(f"sent and never answered, per round: {' '.join(map(str, unanswered))} "
          f"(mean {sum(unanswered) / len(unanswered):.1f}, {args.clients} clients"
          f"{', kept-alive connections' if args.keep_alive else ', a connection a request'})")


if __name__ == "__main__":
    main()
