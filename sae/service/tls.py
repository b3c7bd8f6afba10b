"""TLS for both front ends: ``--ssl-certfile`` and ``--ssl-keyfile`` (PEM), read and
checked at start, before the Algorithm loads, and again on SIGHUP
(``sae.service.credentials``).

A file that cannot be read, that is not a certificate with its private key, or whose key
is encrypted (uvicorn would ask for its password on the terminal) is refused in one line.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TlsFiles:
    """A server certificate chain and its private key, PEM, as read, and a server context
    that serves them (what HTTPS connections switch to: ``Credentials.serve_from``)."""

    certfile: str
    keyfile: str
    certificate: bytes = field(repr=False)
    private_key: bytes = field(repr=False)
    context: ssl.SSLContext = field(repr=False, compare=False)


def _no_password() -> bytes:
    raise ValueError("the private key is encrypted")


def load_tls_files(certfile: str, keyfile: str) -> TlsFiles:
    """Read and check the pair; raises ``ValueError`` naming the file and what is wrong.

    The bytes (what gRPC serves) and the context (what HTTPS serves) are the same files:
    a pair replaced while it was read (a renewal being written) is refused, not mixed.
    """
    contents = _read_pair(certfile, keyfile)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile, keyfile, password=_no_password)
    except ValueError:
        raise ValueError(f"--ssl-keyfile {keyfile}: the private key is encrypted; give it unencrypted "
                         "(file permissions protect it)") from None
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        raise ValueError(f"--ssl-certfile {certfile} and --ssl-keyfile {keyfile}: not a PEM certificate and its "
                         f"private key ({reason})") from None
    if _read_pair(certfile, keyfile) != contents:
        raise ValueError(f"--ssl-certfile {certfile} and --ssl-keyfile {keyfile}: changed while being read; "
                         "try again once they are written")
    return TlsFiles(certfile, keyfile, contents[0], contents[1], context)


#: Bytes of a PEM file read at most: a chain of a few certificates is a few kB.
MAX_PEM_BYTES = 1 << 20


def _read_pair(certfile: str, keyfile: str) -> tuple[bytes, bytes]:
    contents = []
    for path, flag in ((certfile, "--ssl-certfile"), (keyfile, "--ssl-keyfile")):
        try:
            with open(path, "rb") as f:
                contents.append(f.read(MAX_PEM_BYTES))
        except OSError as exc:
            raise ValueError(f"{flag} {path}: {exc.strerror or exc}") from None
    return contents[0], contents[1]
