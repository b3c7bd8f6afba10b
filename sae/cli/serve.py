"""``sae serve``: embeddings over HTTP and gRPC until SIGTERM (needs ``sae[serve]``)."""

from __future__ import annotations

import argparse
import logging
import os
import re

from sae.cli.common import add_engine_options, non_negative_int, port, positive_int
from sae.engine import Engine
from sae.errors import InputError

log = logging.getLogger("sae")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve embeddings over HTTP (OpenAI-compatible) and gRPC",
        description="Serve embeddings: POST /v1/embeddings (OpenAI), POST /embed (text-embeddings-inference), "
        "GET /health, /info, /metrics, and gRPC sae.v1.Embedder with the standard health service. "
        "Requests are batched together by a token budget; SIGTERM answers the requests in flight and "
        "exits 0; SIGHUP reads --api-key-file and the TLS files again. Listens on loopback unless --host says "
        "otherwise. Needs: pip install 'sae[serve]'.",
    )
    add_engine_options(p, batch=False)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: loopback only)")
    p.add_argument("--port", type=port, default=8080, help="HTTP port (default 8080; 0: any free port)")
    p.add_argument("--grpc-port", type=port, default=50051, help="gRPC port (default 50051; 0: any free port)")
    p.add_argument("--health-port", type=port, default=None, metavar="PORT",
                   help="also serve GET /health and /metrics here over plain HTTP, without TLS or a key: for probes "
                   "and scrapes that cannot show a client certificate (--ssl-client-ca) or speak TLS (default: none)")
    p.add_argument("--max-batch-tokens", type=positive_int, default=16384, metavar="N",
                   help="tokens one engine batch may hold (default 16384; 128 to 16,777,216)")
    p.add_argument("--max-wait-ms", type=non_negative_int, default=0, metavar="N",
                   help="how long a batch waits for more texts once a worker is free (default 0: a free "
                   "worker takes what is queued at once; at most 60,000)")
    p.add_argument("--max-queue", type=positive_int, default=512, metavar="N",
                   help="requests admitted at once; more are refused with 429 / RESOURCE_EXHAUSTED (default 512; "
                   "at most 1,000,000)")
    p.add_argument("--max-texts", type=positive_int, default=1024, metavar="N",
                   help="texts per request; more are refused with 413 / INVALID_ARGUMENT (default 1024; at most 1,000,000)")
    p.add_argument("--max-body-bytes", type=positive_int, default=2 * 1024 * 1024, metavar="N",
                   help="bytes per request body or gRPC message; more is refused with 413 (default 2 MiB; at most "
                   "1 GiB)")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="engines embedding batches side by side on the CPU (default: CPU count - 1, at most 4; "
                   "always 1 on the GPU)")
    p.add_argument("--worker-processes", action=argparse.BooleanOptionalAction, default=True,
                   help="run each CPU engine in a process of its own, so that it does not share the server's "
                   "interpreter lock (the default); --no-worker-processes runs them on threads of the server, "
                   "which starts faster and holds one copy of the vectors")
    p.add_argument("--drain-seconds", type=float, default=30.0, metavar="S",
                   help="on SIGTERM, how long requests in flight may take to finish (default 30; at most 86,400)")
    p.add_argument("--api-key", default=None, metavar="KEY",
                   help="require KEY as 'Authorization: Bearer KEY' (gRPC: that metadata) on every request but "
                   "/health, /metrics and gRPC health; answered 401 / UNAUTHENTICATED without it (default: env "
                   "SAE_API_KEY, which keeps the key out of the process list; unset: no key)")
    p.add_argument("--api-key-file", default=None, metavar="FILE",
                   help="in place of --api-key: accept any key in FILE (one a line, KEY or NAME KEY, at most 256; "
                   "lines starting with # are comments; a name is what the access log says); SIGHUP reads it "
                   "again, so a key is rotated without a restart")
    p.add_argument("--ssl-certfile", default=None, metavar="PEM",
                   help="serve HTTPS and gRPC over TLS with this certificate chain (with --ssl-keyfile); SIGHUP "
                   "reads both files again (a renewed certificate) without dropping a connection")
    p.add_argument("--ssl-keyfile", default=None, metavar="PEM", help="the certificate's private key, unencrypted")
    p.add_argument("--ssl-client-ca", default=None, metavar="PEM",
                   help="mutual TLS: every connection must present a client certificate issued by a CA in PEM "
                   "(health checks too); SIGHUP reads it again")
    p.add_argument("--access-log", action="store_true",
                   help="log one line a request: client, what it asked, the answer's status, texts, tokens, time")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        from sae.service import EmbeddingService, ServiceConfig, make_workers
        from sae.service import run as run_server
        from sae.service.credentials import Credentials, listed
        from sae.service.server import check_ports
        from sae.service.tls import expired, validity
    except ImportError as exc:
        raise InputError(str(exc)) from None
    api_key = _api_key(args)
    if api_key is not None and args.api_key_file is not None:
        raise InputError("--api-key (or SAE_API_KEY) and --api-key-file exclude each other: give one")
    try:
        config = ServiceConfig(
            host=args.host, port=args.port, grpc_port=args.grpc_port, max_batch_tokens=args.max_batch_tokens,
            max_wait_ms=args.max_wait_ms, max_queue=args.max_queue, max_texts=args.max_texts,
            max_body_bytes=args.max_body_bytes, drain_seconds=args.drain_seconds, api_key=api_key,
            api_key_file=args.api_key_file, ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
            ssl_client_ca=args.ssl_client_ca, access_log=args.access_log, health_port=args.health_port,
        )
        credentials = Credentials(config)  # the files read and checked before the seconds of loading
    except ValueError as exc:
        raise InputError(_as_flags(str(exc))) from None
    try:
        check_ports(config.host, config.port, config.grpc_port, config.health_port)  # before the seconds of loading
    except OSError as exc:
        raise InputError(str(exc)) from None
    # Requests are tokenized on one thread (sae.service.tokenizer); the tokenizer's own
    # thread pool would only compete with the inference workers for the cores (docs/SERVE.md).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    engine = Engine(args.algorithm, backend=args.backend, adapter=args.adapter, threads=1)
    workers = make_workers(engine, args.algorithm, args.workers, processes=args.worker_processes)
    kind = "process" if engine.backend.concurrent_batches and args.worker_processes else "thread"
    log.info("backend: %s (%s), %d worker %s(es); Algorithm %s (%s)", engine.backend.name,
             engine.backend.description, len(workers), kind, engine.algorithm.name, engine.algorithm.content_hash[:12])
    # Truncation to the stream capacity is documented (GET /info); a warning per request would flood the log.
    logging.getLogger("sae.engine").setLevel(logging.ERROR)
    service = EmbeddingService(engine, config, workers, credentials=credentials)
    if credentials.requires_key:
        log.info("every request needs an API key (Authorization: Bearer KEY) but /health, /metrics and gRPC health")
    elif not config.loopback_only:
        log.warning("listening on %s without an API key: anyone who can reach it can embed (--api-key, "
                    "SAE_API_KEY or --api-key-file)", config.host)
    if credentials.tls is not None:
        said = validity(credentials.tls)
        if expired(credentials.tls):
            log.warning("the certificate %s %s: clients that check it refuse to connect", config.ssl_certfile, said)
        else:
            log.info("the certificate %s is %s", config.ssl_certfile, said)
    if credentials.reloadable:
        log.info("SIGHUP reads %s again", listed(credentials.files))

    def ready(addresses) -> None:
        # One plain line on stdout that scripts (and the tests) read the ports from.
        health = f", health on {addresses.health_url}" if addresses.health_url is not None else ""
        print(f"sae serve: listening on {addresses.http_url} (HTTP) and {addresses.grpc_target} (gRPC){health}",
              flush=True)

    try:
        run_server(service, ready=ready)
    except OSError as exc:
        raise InputError(str(exc)) from None
    log.info("stopped")
    return 0


def _api_key(args: argparse.Namespace) -> str | None:
    """``--api-key``, else ``SAE_API_KEY``. A variable that is set but empty is refused: a
    secret that expanded to nothing would otherwise start a server that asks for no key."""
    if args.api_key is not None:
        return args.api_key
    key = os.environ.get("SAE_API_KEY")
    if key is None:
        return None
    if not key:
        raise InputError("SAE_API_KEY is set but empty: give it a key, or unset it to serve without one")
    from sae.service.auth import check_api_key  # sae[serve], checked by run() before this

    try:
        check_api_key(key)
    except ValueError as exc:
        raise InputError(str(exc).replace("api_key", "SAE_API_KEY", 1)) from None
    return key


#: ServiceConfig's fields as ``sae serve`` spells them, for its messages.
_FLAGS = {"max_batch_tokens": "--max-batch-tokens", "max_wait_ms": "--max-wait-ms", "max_queue": "--max-queue",
          "max_texts": "--max-texts", "max_body_bytes": "--max-body-bytes", "drain_seconds": "--drain-seconds",
          "api_key_file": "--api-key-file", "api_key": "--api-key", "ssl_certfile": "--ssl-certfile",
          "ssl_keyfile": "--ssl-keyfile", "ssl_client_ca": "--ssl-client-ca", "grpc_port": "--grpc-port",
          "health_port": "--health-port"}


def _as_flags(message: str) -> str:
    """A ServiceConfig message (which names its fields, for Python callers) in the flags'
    names the user typed: ``max_queue must be ...`` -> ``--max-queue must be ...``."""
    message = re.sub(r"\b(" + "|".join(_FLAGS) + r")\b", lambda m: _FLAGS[m.group(1)], message)
    return re.sub(r"^(host|port)\b", r"--\1", message)
