"""API keys: when ``sae serve`` has one (``--api-key``) or a file of them
(``--api-key-file``), every request but a health check or a metrics scrape must carry one
as ``Authorization: Bearer KEY`` (HTTP) or the same ``authorization`` metadata (gRPC), as
OpenAI's clients send their ``api_key``.

Keys are compared in constant time and never written anywhere: not in a message, a log
line, ``/info`` or the configuration's ``repr``. A file holds several so that a key can be
rotated without a restart: add the new one, reload (SIGHUP), move the clients, remove the
old one, reload (``sae.service.credentials``).
"""

from __future__ import annotations

import hmac

#: An HTTP header value's visible characters: a key that fits in ``Authorization`` as it is.
_KEY_CHARACTERS = frozenset(chr(c) for c in range(0x21, 0x7F))
MAX_API_KEY_LENGTH = 4096
#: Keys one file may hold: every request is compared with each of them.
MAX_API_KEYS = 256
#: Bytes of a key file read at most: 256 keys of 4,096 characters and their line ends.
MAX_API_KEY_FILE_BYTES = MAX_API_KEYS * (MAX_API_KEY_LENGTH + 2)
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


def read_api_key_file(path: str) -> tuple[str, ...]:
    """The keys of a file: one a line, blank lines and lines starting with ``#`` left out.

    Raises ``ValueError`` naming the file (and the line) when it cannot be read, is not
    UTF-8, holds no key, more than :data:`MAX_API_KEYS`, or a key :func:`check_api_key`
    refuses; no message repeats a key.
    """
    where = f"--api-key-file {path}"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_API_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"{where}: {exc.strerror or exc}") from None
    if len(data) > MAX_API_KEY_FILE_BYTES:
        raise ValueError(f"{where}: larger than {MAX_API_KEY_FILE_BYTES:,} bytes; it holds at most "
                         f"{MAX_API_KEYS} keys of {MAX_API_KEY_LENGTH:,} characters")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: not UTF-8 text (byte {exc.start:,})") from None
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        key = line.strip()
        if not key or key.startswith("#"):
            continue
        try:
            check_api_key(key)
        except ValueError as exc:
            raise ValueError(f"{where} line {number}: {str(exc).replace('api_key', 'a key')}") from None
        keys.append(key)
    if not keys:
        raise ValueError(f"{where}: no key in it (one a line; lines starting with # are comments)")
    if len(keys) > MAX_API_KEYS:
        raise ValueError(f"{where}: {len(keys):,} keys, more than the limit of {MAX_API_KEYS}")
    return tuple(keys)


def bearer_matches(authorization: str | bytes | None, keys: tuple[bytes, ...]) -> bool:
    """Whether an ``Authorization`` value is ``Bearer`` (any case) and one of ``keys``, in
    constant time: every key is compared, and how far a wrong one matches is not timed."""
    if authorization is None:
        return False
    if isinstance(authorization, str):
        authorization = authorization.encode("latin-1", "replace")
    scheme, _, token = authorization.strip().partition(b" ")
    token = token.strip()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token, key)
    return scheme.lower() == b"bearer" and matched
