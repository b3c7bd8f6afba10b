"""``--access-log``: one line a request, on the ``sae.access`` logger, from both front ends.

    127.0.0.1:51234 POST /v1/embeddings 200 3 texts 41 tokens 12.3 ms
    127.0.0.1:51240 gRPC Embed OK 1 text 9 tokens 4.1 ms
    127.0.0.1:51243 POST /embed 401 0.2 ms

The client's address and port, what it asked, how it was answered (the HTTP status or
the gRPC code), the texts and tokens embedded when it got that far, and the time from
arrival to answer. A server that asks for an API key writes, after the address, the name
the key file gives the key the request carried (``-``: a key without a name, or none):

    127.0.0.1:51234 alice POST /v1/embeddings 200 3 texts 41 tokens 12.3 ms

A stream logs each of its messages. Neither the body nor a key is written. Off by
default: a line costs the server CPU per request (docs/SERVE.md).
"""

from __future__ import annotations

import logging

log = logging.getLogger("sae.access")


def client_of_peer(peer: str) -> str:
    """gRPC's ``ipv4:127.0.0.1:51234`` / ``ipv6:[::1]:51234`` as HTTP's ``127.0.0.1:51234``."""
    kind, _, address = peer.partition(":")
    return address if kind in ("ipv4", "ipv6") else peer


def record(client: str, what: str, answer: str | int, seconds: float, texts: int | None = None,
           tokens: int | None = None, holder: str | None = None) -> None:
    """Log one request: ``what`` it asked (``POST /embed``, ``gRPC Embed``), its ``answer``;
    ``holder``, on a server that asks for a key, is the key's name or ``-``."""
    if holder is not None:
        client = f"{client} {holder}"
    counts = ""
    if texts is not None:
        counts = f" {texts} text{'' if texts == 1 else 's'}"
        if tokens is not None:
            counts += f" {tokens} token{'' if tokens == 1 else 's'}"
    log.info("%s %s %s%s %.1f ms", client, what, answer, counts, seconds * 1e3)


def holder_field(requires_key: bool, name: str | None) -> str | None:
    """What :func:`record` writes for the key a request carried: nothing on a server without
    keys, else the key's name or ``-``."""
    return (name or "-") if requires_key else None
