"""TLS for both front ends: ``--ssl-certfile`` and ``--ssl-keyfile`` (PEM), and with
``--ssl-client-ca`` mutual TLS (every client presents a certificate that CA issued); read
and checked at start, before the Algorithm loads, and again on SIGHUP
(``sae.service.credentials``).

A file that cannot be read, that is not a certificate with its private key, whose key is
encrypted (uvicorn would ask for its password on the terminal), or a client CA file
without a certificate is refused in one line. A certificate past its end of validity is
served (a client that checks it refuses the connection), and said: :func:`validity` for the
log, ``TlsFiles.not_after`` for the metric ``sae_tls_certificate_expiry_timestamp_seconds``.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from cryptography import x509


@dataclass(frozen=True)
class TlsFiles:
    """A server certificate chain and its private key, PEM, as read, the client CA
    certificates when clients must present one, and a server context that does both
    (what HTTPS connections switch to: ``Credentials.serve_from``)."""

    certfile: str
    keyfile: str
    certificate: bytes = field(repr=False)
    private_key: bytes = field(repr=False)
    context: ssl.SSLContext = field(repr=False, compare=False)
    client_ca_file: str | None = None
    client_ca: bytes | None = field(default=None, repr=False)
    #: Unix time at which the served certificate (the file's first) stops being valid (notAfter)
    not_after: float = float("inf")


def _no_password() -> bytes:
    raise ValueError("the private key is encrypted")


def load_tls_files(certfile: str, keyfile: str, client_ca_file: str | None = None) -> TlsFiles:
    """Read and check the pair (and the client CA file); raises ``ValueError`` naming the
    file and what is wrong.

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
    client_ca = None
    if client_ca_file is not None:
        client_ca = _read(client_ca_file, "--ssl-client-ca")
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            context.load_verify_locations(cadata=client_ca.decode("ascii"))
        except (ValueError, ssl.SSLError):  # empty, not ASCII, or no certificate in it
            raise ValueError(f"--ssl-client-ca {client_ca_file}: no PEM certificate in it") from None
    return TlsFiles(certfile, keyfile, contents[0], contents[1], context, client_ca_file, client_ca,
                    _not_after(contents[0], certfile))


def _not_after(certificate: bytes, certfile: str) -> float:
    """When the leaf, the first certificate in the file (the one a TLS server presents),
    stops being valid, in Unix seconds."""
    try:
        leaf = x509.load_pem_x509_certificate(certificate)
    except ValueError as exc:  # the ssl module took it; a certificate cryptography cannot parse
        raise ValueError(f"--ssl-certfile {certfile}: its certificate cannot be read ({exc})") from None
    return leaf.not_valid_after_utc.timestamp()


def expired(tls: TlsFiles, now: float | None = None) -> bool:
    """Whether the served certificate's validity has ended (at ``now``, Unix seconds)."""
    return tls.not_after <= (time.time() if now is None else now)


def validity(tls: TlsFiles, now: float | None = None) -> str:
    """``valid until 2027-03-01 12:00 UTC``, or ``EXPIRED on ...`` once past it: what the
    start and a reload log of the certificate served."""
    when = datetime.fromtimestamp(tls.not_after, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"EXPIRED on {when}" if expired(tls, now) else f"valid until {when}"


#: Bytes of a PEM file read at most: a chain of a few certificates is a few kB.
MAX_PEM_BYTES = 1 << 20


def _read(path: str, flag: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(MAX_PEM_BYTES)
    except OSError as exc:
        raise ValueError(f"{flag} {path}: {exc.strerror or exc}") from None


def _read_pair(certfile: str, keyfile: str) -> tuple[bytes, bytes]:
    return _read(certfile, "--ssl-certfile"), _read(keyfile, "--ssl-keyfile")
