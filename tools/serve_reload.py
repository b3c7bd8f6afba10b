"""What clients see while `sae serve` reloads its credentials (SIGHUP) under load.

Starts `sae serve` (the bundled Algorithm unless ``--algorithm``) over TLS with an API key
file, runs ``--clients`` HTTPS threads that each open a new connection for every ``POST
/embed``, as many keeping one connection alive, and ``--clients`` gRPC threads that open a
new channel for every ``Embed``; every ``--interval`` seconds it writes the other of two
certificates (from two test CAs, which the clients both trust) and a key file that drops
one key and adds another (the clients send the one both list), and sends SIGHUP. It
counts how every request ended and reads ``sae_credential_reloads_total`` from
``/metrics``: a reload must drop nothing (docs/SERVE.md, "Reloading the credentials").
Needs trustme (``pip install 'sae[serve-test]'``).

    python tools/serve_reload.py [--reloads 60] [--interval 0.15] [--clients 4] [--algorithm DIR]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import signal
import ssl
import tempfile
import threading
import time
from pathlib import Path

import grpc
import httpx
import trustme
from loadtest import start_server

from sae.service.proto import embed_pb2, embed_pb2_grpc  # tools/: the script's own folder is on the path

KEY = "sk-kept-by-every-file"
EMBED = embed_pb2.EmbedRequest(inputs=["A man is playing the guitar."])
BODY = {"inputs": ["A man is playing the guitar."]}


def replace(path: Path, data: bytes) -> None:
    """Write ``path`` at once, as a deployment tool does (aside, then rename)."""
    aside = path.with_name(path.name + ".new")
    aside.write_bytes(data)
    os.replace(aside, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reloads", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.15, help="seconds between reloads")
    parser.add_argument("--clients", type=int, default=4, help="threads of each kind")
    parser.add_argument("--algorithm", default=None)
    args = parser.parse_args()

    cas = [trustme.CA(), trustme.CA()]
    pairs = []
    for ca in cas:
        issued = ca.issue_cert("127.0.0.1")
        pairs.append((b"".join(blob.bytes() for blob in issued.cert_chain_pems), issued.private_key_pem.bytes()))
    trusting = ssl.create_default_context()
    for ca in cas:
        ca.configure_trust(trusting)
    roots = b"".join(ca.cert_pem.bytes() for ca in cas)

    with tempfile.TemporaryDirectory(prefix="sae-reload-") as folder:
        cert, key, keys = Path(folder, "cert.pem"), Path(folder, "key.pem"), Path(folder, "keys")
        replace(cert, pairs[0][0])
        replace(key, pairs[0][1])
        replace(keys, f"sk-first\n{KEY}\n".encode())
        server = start_server(args.algorithm, ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key),
                                               "--api-key-file", str(keys), "--workers", "1"])
        url = f"https://127.0.0.1:{server.http_port}"
        outcomes: collections.Counter[str] = collections.Counter()
        stop = threading.Event()

        def http_client(kept: bool) -> None:
            kind = "HTTPS, one connection kept" if kept else "HTTPS, a new connection a request"
            with httpx.Client(verify=trusting, timeout=30) as pool:
                while not stop.is_set():
                    try:
                        if kept:
                            status = pool.post(f"{url}/embed", json=BODY, headers={"Authorization": f"Bearer {KEY}"})
                        else:
                            status = httpx.post(f"{url}/embed", json=BODY, headers={"Authorization": f"Bearer {KEY}"},
                                                verify=trusting, timeout=30)
                        outcomes[f"{kind}: {status.status_code}"] += 1
                    except httpx.HTTPError as exc:
                        outcomes[f"{kind}: {type(exc).__name__}"] += 1

        def grpc_client() -> None:
            while not stop.is_set():
                try:
                    with grpc.secure_channel(f"127.0.0.1:{server.grpc_port}",
                                             grpc.ssl_channel_credentials(roots)) as channel:
                        embed_pb2_grpc.EmbedderStub(channel).Embed(
                            EMBED, timeout=30, metadata=[("authorization", f"Bearer {KEY}")])
                    outcomes["gRPC, a new channel a call: OK"] += 1
                except grpc.RpcError as exc:
                    outcomes[f"gRPC, a new channel a call: {exc.code().name}"] += 1

        threads = [threading.Thread(target=http_client, args=(kept,)) for kept in (False, True)
                   for _ in range(args.clients)] + [threading.Thread(target=grpc_client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        for n in range(args.reloads):
            certificate, private_key = pairs[(n + 1) % 2]
            replace(cert, certificate)
            replace(key, private_key)
            replace(keys, f"sk-{'second' if n % 2 == 0 else 'first'}\n{KEY}\n".encode())
            server.process.send_signal(signal.SIGHUP)
            time.sleep(args.interval)
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join()
        metrics = httpx.get(f"{url}/metrics", verify=trusting, timeout=30).text
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(60)

    counted = dict(re.findall(r'^sae_credential_reloads_total\{result="(\w+)"\} ([\d.]+)$', metrics, re.M))
    print(f"{args.reloads} SIGHUPs, {args.interval} s apart; the server counted reloaded "
          f"{float(counted.get('reloaded', 'nan')):.0f}, refused {float(counted.get('refused', 'nan')):.0f}")
    for outcome, count in sorted(outcomes.items()):
        print(f"  {outcome:<48} {count:>7,}")
    failed = sum(count for outcome, count in outcomes.items() if not outcome.endswith((": 200", ": OK")))
    print(f"requests not answered 200 / OK: {failed}")
    print(f"server exit code after SIGTERM: {code}")


if __name__ == "__main__":
    main()
