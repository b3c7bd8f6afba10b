"""TLS for both front ends: ``--ssl-certfile`` and ``--ssl-keyfile`` (PEM), read and
checked once at start, before the Algorithm loads.

HTTP gets them through uvicorn, gRPC through ``grpc.ssl_server_credentials``; a file that
cannot be read, that is not a certificate with its private key, or whose key is encrypted
(uvicorn would ask for its password on the terminal) is refused in one line.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass


@dataclass(frozen=True)
class TlsFiles:
    """A server certificate chain and its private key, PEM, as read at start."""

    certfile: str
    keyfile: str
    certificate: bytes
    private_key: bytes


def _no_password() -> bytes:
    raise ValueError("the private key is encrypted")


def load_tls_files(certfile: str, keyfile: str) -> TlsFiles:
    """Read and check the pair; raises ``ValueError`` naming the file and what is wrong."""
    contents = []
    for path, flag in ((certfile, "--ssl-certfile"), (keyfile, "--ssl-keyfile")):
        try:
            with open(path, "rb") as f:
                contents.append(f.read(1 << 20))
        except OSError as exc:
            raise ValueError(f"{flag} {path}: {exc.strerror or exc}") from None
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
    return TlsFiles(certfile, keyfile, contents[0], contents[1])
