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
import re

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


#: A key's name in a key file: what the access log writes for the requests that carry it.
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def read_api_key_file(path: str) -> tuple[tuple[str | None, str], ...]:
    """The ``(name, key)`` pairs of a file: ``KEY`` or ``NAME KEY`` a line, blank lines and
    lines starting with ``#`` left out. A name (1 to 64 letters, digits, ``.``, ``_``, ``-``;
    once a file) says whose the key is; a key alone has the name None.

    Raises ``ValueError`` naming the file (and the line) when it cannot be read, is not
    UTF-8, holds no key, more than :data:`MAX_API_KEYS`, a key :func:`check_api_key`
    refuses, a bad or repeated name, or one key twice; no message repeats a key.
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
    keys: list[tuple[str | None, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) > 2:
            raise ValueError(f"{where} line {number}: {len(fields)} words; a line is KEY or NAME KEY")
        name, key = (None, fields[0]) if len(fields) == 1 else fields
        if name is not None and not _NAME.fullmatch(name):
            raise ValueError(f"{where} line {number}: a key's name is 1 to 64 letters, digits, '.', '_' or '-'")
        if name is not None and any(name == other for other, _ in keys):
            raise ValueError(f"{where} line {number}: the name {name!r} is given to two keys")
        try:
            check_api_key(key)
        except ValueError as exc:
            raise ValueError(f"{where} line {number}: {str(exc).replace('api_key', 'a key')}") from None
        if any(hmac.compare_digest(key, other) for _, other in keys):
            raise ValueError(f"{where} line {number}: a key listed twice (its lines would name two clients)")
        keys.append((name, key))
    if not keys:
        raise ValueError(f"{where}: no key in it (one a line; lines starting with # are comments)")
    if len(keys) > MAX_API_KEYS:
        raise ValueError(f"{where}: {len(keys):,} keys, more than the limit of {MAX_API_KEYS}")
    return tuple(keys)


def matching_key(authorization: str | bytes | None, keys: tuple[bytes, ...]) -> int | None:
    """The index in ``keys`` of the key an ``Authorization`` value carries as ``Bearer``
    (any case), or None; in constant time: every key is compared, and how far a wrong one
    matches is not timed."""
    if authorization is None:
        return None
    if isinstance(authorization, str):
        authorization = authorization.encode("latin-1", "replace")
    scheme, _, token = authorization.strip().partition(b" ")
    token = token.strip()
    matched = -1
    for index, key in enumerate(keys):  # no early exit: a key's place in the file is not timed either
        if hmac.compare_digest(token, key):
            matched = index
    return matched if scheme.lower() == b"bearer" and matched >= 0 else None


def bearer_matches(authorization: str | bytes | None, keys: tuple[bytes, ...]) -> bool:
    """Whether an ``Authorization`` value is ``Bearer`` (any case) and one of ``keys``, in
    constant time (:func:`matching_key`)."""
    return matching_key(authorization, keys) is not None
