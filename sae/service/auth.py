"""The API key: when ``sae serve`` has one, every request but a health check or a metrics
scrape must carry it as ``Authorization: Bearer KEY`` (HTTP) or the same ``authorization``
metadata (gRPC), as OpenAI's clients send their ``api_key``.

The key is compared in constant time and never written anywhere: not in a message, a log
line, ``/info`` or the configuration's ``repr``.
"""

from __future__ import annotations

import hmac

#: An HTTP header value's visible characters: a key that fits in ``Authorization`` as it is.
_KEY_CHARACTERS = frozenset(chr(c) for c in range(0x21, 0x7F))
MAX_API_KEY_LENGTH = 4096
#: What a request without the key, or with another, is told (401 / UNAUTHENTICATED).
UNAUTHORIZED = "a valid API key is required: send it as 'Authorization: Bearer KEY'"
#: HTTP paths open without the key: orchestrators' probes and Prometheus' scrapes.
OPEN_HTTP_PATHS = frozenset({"/health", "/metrics"})
#: gRPC's standard health service is open without the key, as ``/health`` is.
OPEN_GRPC_PREFIX = "/grpc.health.v1.Health/"


def check_api_key(key: str) -> None:
    """Raise ``ValueError`` unless ``key`` is 1 to 4,096 visible ASCII characters (no spaces);
    the message does not repeat the key."""
    rule = f"api_key must be 1 to {MAX_API_KEY_LENGTH:,} visible ASCII characters, without spaces"
    if not 1 <= len(key) <= MAX_API_KEY_LENGTH:
        raise ValueError(f"{rule}; the one given has {len(key):,}")
    if not set(key) <= _KEY_CHARACTERS:
        raise ValueError(f"{rule}; the one given has a space, a control character or one outside ASCII")


def bearer_matches(authorization: str | bytes | None, key: bytes) -> bool:
    """Whether an ``Authorization`` value is ``Bearer`` (any case) and ``key``, in constant time."""
    if authorization is None:
        return False
    if isinstance(authorization, str):
        authorization = authorization.encode("latin-1", "replace")
    scheme, _, token = authorization.strip().partition(b" ")
    # compare_digest on both parts: how far a wrong key matches is not timed.
    return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), key)
