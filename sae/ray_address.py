"""Reaching a Ray cluster by address: a bounded check before ``ray.init``.

``ray.init(address="host:port")`` against an address nothing answers on does not fail:
it retries the cluster's control service for minutes, logging warnings. ``sae embed
--ray ADDRESS`` and ``sae evolve --ray-address ADDRESS`` first open a TCP connection to
the address with a timeout, so a typo or a stopped cluster is one line and exit 2.
"""

from __future__ import annotations

import socket

from sae.errors import InputError

#: Seconds to wait for the cluster's address to accept a connection.
CONNECT_TIMEOUT_S = 10.0
#: Addresses Ray resolves itself (a running local cluster, a new local instance).
_SYMBOLIC = ("", "auto", "local")


def check_ray_address(address: str | None, flag: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`InputError` (naming ``flag``) unless ``address`` is symbolic or a
    ``[ray://]host:port`` that accepts a TCP connection within ``timeout`` seconds."""
    if address is None or address.strip().lower() in _SYMBOLIC:
        return
    hostport = address.strip()
    if "://" in hostport:
        hostport = hostport.split("://", 1)[1]
    host, sep, port = hostport.rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{flag} {address}: expected HOST:PORT (or ray://HOST:PORT, auto, local)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise InputError(f"{flag} {address}: cannot reach a Ray cluster there ({reason})") from None
