"""What a client must show and what the server shows it: the API keys (``sae.service.auth``)
and the TLS certificate (``sae.service.tls``), read at start and again on SIGHUP.

A reload reads and checks everything first and then replaces it all at once; a file that
cannot serve (a key file left empty, a certificate without its key) leaves the previous
credentials serving and says why in one line. Connections already open keep what they
were accepted with: a reload drops nothing. New HTTPS connections are switched to the
current certificate while they shake hands (the server context's SNI callback, which runs
with or without a server name); gRPC asks for it at each handshake
(``grpc.dynamic_ssl_server_credentials``, see ``sae.service.grpc_server``).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from sae.service.auth import matching_key, read_api_key_file
from sae.service.config import ServiceConfig
from sae.service.tls import TlsFiles, load_tls_files, validity


@dataclass(frozen=True)
class _Loaded:
    """One reading of every credential; replaced whole, so that a reader on another thread
    (gRPC's) sees one reading or the next, never half of each."""

    keys: tuple[bytes, ...] | None  # None: no key is asked for
    names: tuple[str | None, ...]  # each key's name in the key file (None: none given)
    tls: TlsFiles | None
    #: counts readings: 0 at start, then one more for each reload that took
    generation: int


class Credentials:
    """The API keys a request must carry and the certificate both front ends serve.

    Built from a :class:`~sae.service.config.ServiceConfig` (``api_key``, ``api_key_file``,
    ``ssl_certfile`` / ``ssl_keyfile`` / ``ssl_client_ca``); raises ``ValueError`` for a file that
    cannot serve.
    """

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self._loaded = self._read(0)

    def _read(self, generation: int) -> _Loaded:
        config = self.config
        names: tuple[str | None, ...] = ()
        if config.api_key_file is not None:
            named = read_api_key_file(config.api_key_file)
            keys: tuple[bytes, ...] | None = tuple(key.encode("ascii") for _, key in named)
            names = tuple(name for name, _ in named)
        elif config.api_key is not None:
            keys, names = (config.api_key.encode("ascii"),), (None,)
        else:
            keys = None
        tls = None
        if config.ssl_certfile is not None and config.ssl_keyfile is not None:
            tls = load_tls_files(config.ssl_certfile, config.ssl_keyfile, config.ssl_client_ca)
        return _Loaded(keys, names, tls, generation)

    @property
    def files(self) -> list[str]:
        """The files a reload reads."""
        config = self.config
        return [path for path in (config.api_key_file, config.ssl_certfile, config.ssl_keyfile, config.ssl_client_ca)
                if path is not None]

    @property
    def reloadable(self) -> bool:
        """Whether anything is read from a file, and so can change on a reload."""
        return bool(self.files)

    @property
    def requires_key(self) -> bool:
        """Whether requests need an API key (fixed at start: a reload changes which keys)."""
        return self._loaded.keys is not None

    @property
    def key_count(self) -> int:
        return len(self._loaded.keys or ())

    @property
    def tls(self) -> TlsFiles | None:
        """The certificate and key served now."""
        return self._loaded.tls

    def tls_and_generation(self) -> tuple[TlsFiles | None, int]:
        """The certificate served now and the reload that read it, from one reading (what
        gRPC's certificate fetcher compares, on a thread of its own)."""
        loaded = self._loaded
        return loaded.tls, loaded.generation

    def key_matches(self, authorization: str | bytes | None) -> bool:
        """Whether an ``Authorization`` value carries one of the keys (always, without keys)."""
        return self.holder(authorization)[0]

    def holder(self, authorization: str | bytes | None) -> tuple[bool, str | None]:
        """Whether an ``Authorization`` value carries one of the keys, and the key's name
        in the key file (None: a key without one, or none carried): who the access log
        says sent a request."""
        loaded = self._loaded  # keys and names of one reading
        if loaded.keys is None:
            return True, None
        index = matching_key(authorization, loaded.keys)
        return (False, None) if index is None else (True, loaded.names[index])

    def reload(self) -> str:
        """Read every file again and serve what it holds now; a few words on what was read.

        Raises ``ValueError`` (one line, naming the file) and keeps the previous
        credentials when any file cannot serve.
        """
        loaded = self._read(self._loaded.generation + 1)
        self._loaded = loaded
        parts = []
        if self.config.api_key_file is not None:
            count, named = self.key_count, sum(name is not None for name in loaded.names)
            parts.append(f"{count} API key{'s' if count != 1 else ''}{f' ({named} named)' if named else ''} "
                         f"from {self.config.api_key_file}")
        if loaded.tls is not None:
            parts.append(f"the certificate {loaded.tls.certfile} ({validity(loaded.tls)})")
            if loaded.tls.client_ca_file is not None:
                parts.append(f"the client CA {loaded.tls.client_ca_file}")
        return listed(parts) if parts else "nothing (no key file, no TLS)"

    def serve_from(self, context: ssl.SSLContext) -> None:
        """Make the HTTPS server ``context`` hand each new connection the current certificate
        (and check its client's against the current client CA: the connection verifies with
        the context it switched to)."""

        def current_certificate(connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
            tls = self._loaded.tls
            if tls is not None:
                connection.context = tls.context

        context.sni_callback = current_certificate


def listed(parts: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``: what a log line names."""
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)
