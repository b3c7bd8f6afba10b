"""What a server listens on and the limits it enforces, checked once at start."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sae.layout import DEFAULT_CAPACITIES


@dataclass(frozen=True)
class ServiceConfig:
    """Addresses and limits of ``sae serve``; the defaults listen on loopback only.

    ``port`` and ``grpc_port`` 0 take a free port (the server reports which).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    grpc_port: int = 50051
    #: tokens (after truncation; an empty text counts 1) that one engine batch may hold
    max_batch_tokens: int = 16384
    #: how long the first text of a batch may wait for others to join it while a worker is
    #: free; 0: a free worker takes what is queued at once (batches still form while it is busy)
    max_wait_ms: int = 0
    #: requests admitted at once (waiting for a batch or in one); one more gets 429 / RESOURCE_EXHAUSTED
    max_queue: int = 512
    #: texts in one request; more gets 413 (HTTP) / INVALID_ARGUMENT (gRPC)
    max_texts: int = 1024
    #: bytes of one request body or gRPC message; more gets 413 / RESOURCE_EXHAUSTED
    max_body_bytes: int = 2 * 1024 * 1024
    #: on SIGTERM, how long in-flight requests may take to finish before they are cut
    drain_seconds: float = 30.0

    def __post_init__(self) -> None:
        for name in ("port", "grpc_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ValueError(f"{name} must be in 0..65535, got {value}")
        if self.max_batch_tokens < DEFAULT_CAPACITIES.stream:
            # A batch must hold at least one text of full length.
            raise ValueError(f"max_batch_tokens must be >= {DEFAULT_CAPACITIES.stream} (the stream capacity), "
                             f"got {self.max_batch_tokens}")
        for name in ("max_queue", "max_texts", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_wait_ms", "drain_seconds"):  # NaN compares false with everything
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
