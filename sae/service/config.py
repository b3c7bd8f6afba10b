"""What a server listens on and the limits it enforces, checked once at start."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from sae.layout import DEFAULT_CAPACITIES
from sae.service.auth import check_api_key


@dataclass(frozen=True)
class ServiceConfig:
    """Addresses and limits of ``sae serve``; the defaults listen on loopback only.

    ``port`` and ``grpc_port`` 0 take a free port (the server reports which).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    grpc_port: int = 50051
    #: tokens (an empty text counts 1) that one engine batch may hold; a longer text gets a batch of its own
    max_batch_tokens: int = 16384
    #: how long the first text of a batch may wait for others to join it while a worker is
    #: free; 0: a free worker takes what is queued at once (batches still form while it is busy)
    max_wait_ms: int = 0
    #: requests admitted at once (being tokenized, waiting for a batch or in one); one more gets 429 /
    #: RESOURCE_EXHAUSTED
    max_queue: int = 512
    #: texts in one request; more gets 413 (HTTP) / INVALID_ARGUMENT (gRPC)
    max_texts: int = 1024
    #: bytes of one request body or gRPC message; more gets 413 / RESOURCE_EXHAUSTED
    max_body_bytes: int = 2 * 1024 * 1024
    #: on SIGTERM, how long in-flight requests may take to finish before they are cut
    drain_seconds: float = 30.0
    #: when set, every request but a health check or a metrics scrape must carry it
    #: (``sae.service.auth``); kept out of the ``repr``
    api_key: str | None = field(default=None, repr=False)
    #: in place of ``api_key``: a file of keys, one a line, any of which a request may carry;
    #: read at start and on SIGHUP (``sae.service.credentials``)
    api_key_file: str | None = None
    #: TLS for both front ends when set (``sae.service.tls``): the certificate chain's and
    #: the private key's PEM files, read at start and on SIGHUP
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    #: with TLS, mutual TLS: every client presents a certificate that a CA in this PEM file
    #: issued (HTTP and gRPC alike, health checks too); read at start and on SIGHUP
    ssl_client_ca: str | None = None
    #: one line a request on the ``sae.access`` logger (``sae.service.access_log``)
    access_log: bool = False
    #: when set, ``GET /health`` and ``/metrics`` are served on this port too, over plain
    #: HTTP without a key: for probes and scrapes that cannot show a client certificate
    #: (mutual TLS) or speak TLS at all (0: a free port)
    health_port: int | None = None

    def __post_init__(self) -> None:
        if not self.host.strip():
            # gRPC refuses an empty host only once the Algorithm is loaded, and Python's
            # sockets read it as every address: neither is what was meant.
            raise ValueError("host must not be empty (0.0.0.0 or :: listens on every address)")
        for name in ("port", "grpc_port", "health_port"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 65535:
                raise ValueError(f"{name} must be in 0..65535, got {value}")
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} must be in {low:,}..{high:,}, got {value}")
        # NaN compares false with everything
        if not 0 <= self.drain_seconds <= MAX_DRAIN_SECONDS:
            raise ValueError(f"drain_seconds must be in 0..{MAX_DRAIN_SECONDS:,}, got {self.drain_seconds}")
        if self.api_key is not None:
            check_api_key(self.api_key)
            if self.api_key_file is not None:
                raise ValueError("api_key and api_key_file exclude each other: give one")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together: give both or neither")
        if self.ssl_client_ca is not None and self.ssl_certfile is None:
            raise ValueError("ssl_client_ca needs ssl_certfile and ssl_keyfile: clients are checked over TLS")

    @property
    def tls(self) -> bool:
        return self.ssl_certfile is not None

    @property
    def loopback_only(self) -> bool:
        """Whether ``host`` is reachable from this machine alone (``localhost`` or a loopback address)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a name: it may resolve to anything
            return False


#: A day: longer than any orchestrator waits after its SIGTERM.
MAX_DRAIN_SECONDS = 86_400


#: The range of each limit. gRPC's Info answers them as uint32, and takes its message size
#: limit as a C int: past these a server failed at start or answered Info with UNKNOWN.
#: A batch must hold one text of full length (the stream capacity); a longer wait than a
#: minute would leave a lone request waiting past any client's patience.
LIMITS = {
    "max_batch_tokens": (DEFAULT_CAPACITIES.stream, 1 << 24),
    "max_wait_ms": (0, 60_000),
    "max_queue": (1, 1_000_000),
    "max_texts": (1, 1_000_000),
    "max_body_bytes": (1, 1 << 30),
}
