"""Running a service: HTTP (uvicorn) on the main event loop, gRPC on its own in a thread;
SIGTERM drains and stops, SIGHUP reloads the API key file and the TLS files.

On SIGTERM or SIGINT the health checks turn bad, both listeners stop taking
connections and calls (the HTTP one without resetting those its backlog holds),
every request already received is answered, and
:func:`serve` returns. Past ``drain_seconds``, or at a second signal, the requests
still running are answered 503 / UNAVAILABLE at once.

On SIGHUP, when there is something to reload (``--api-key-file``, TLS), the credentials
are read again (``sae.service.credentials``); otherwise SIGHUP keeps its default.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from sae.service.grpc_server import GrpcFrontEnd
from sae.service.http import create_app, create_health_app
from sae.service.service import EmbeddingService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Addresses:
    """Where a running server listens (ports resolved when 0 was asked)."""

    host: str
    http_port: int
    grpc_port: int
    tls: bool = False
    #: the plain HTTP port of ``/health`` and ``/metrics`` (``--health-port``), if any
    health_port: int | None = None

    @property
    def health_url(self) -> str | None:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return None if self.health_port is None else f"http://{host}:{self.health_port}"

    @property
    def http_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.grpc_port}"


class _Uvicorn(uvicorn.Server):
    """uvicorn without signal handlers of its own: :func:`serve` drains both front ends."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int, what: str = "HTTP") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:  # create_server reports a name that does not resolve by the resolver's code as if an errno
        socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot listen on {host}:{port} ({what}): {exc.strerror or exc}") from None
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:  # create_server's strerror repeats the address: the errno's own text instead
        reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
        raise OSError(f"cannot listen on {host}:{port} ({what}): {reason}") from None


#: How long the event loop has to accept what the HTTP listener's backlog holds before it closes.
ACCEPT_BACKLOG_SECONDS = 0.05
#: How long a connection accepted last has for its request to arrive before shutdown closes it.
REQUEST_ARRIVAL_SECONDS = 0.25


async def _stop_listening(http: uvicorn.Server, sock: socket.socket) -> None:
    """Close the HTTP listener without resetting the connections the kernel already took.

    Closing a listening socket resets every connection still in its backlog: the client
    connected and sent its request, and gets no answer (5.1 requests a SIGTERM on average
    under 16 clients that connect for every request: ``tools/serve_shutdown.py``; 0.1 now,
    4.5 without the ``listen(0)``). So the backlog is first cut to nothing (a new
    connection's SYN is then dropped, and the client's retry a second later is refused), the
    event loop accepts what it already holds, and only then the listener closes. uvicorn's
    shutdown closes every connection that has no request yet, so the connections accepted
    last get a moment for theirs to arrive; with it they are answered like any other.
    """
    with contextlib.suppress(OSError):
        sock.listen(0)
    await asyncio.sleep(ACCEPT_BACKLOG_SECONDS)
    for server in http.servers:
        server.close()
    await asyncio.sleep(REQUEST_ARRIVAL_SECONDS)


@contextlib.contextmanager
def _calling_on_signals(loop: asyncio.AbstractEventLoop, callback: Callable[[], None],
                        signals: tuple[signal.Signals, ...]) -> Iterator[None]:
    """Call ``callback`` on ``loop`` at each of ``signals`` within the block: through the
    loop's own signal handlers, or, where it has none (the event loops of Windows, where
    ``sae serve`` stopped at start with NotImplementedError), through ``signal.signal``,
    whose handler runs on the main thread and hands the call to the loop."""
    replaced: dict[signal.Signals, Any] = {}
    added: list[signal.Signals] = []
    try:
        for sig in signals:
            try:
                loop.add_signal_handler(sig, callback)
                added.append(sig)
            except NotImplementedError:
                replaced[sig] = signal.signal(sig, lambda *_: loop.call_soon_threadsafe(callback))
        yield
    finally:
        for sig in added:
            loop.remove_signal_handler(sig)
        for sig, handler in replaced.items():
            signal.signal(sig, handler)


def check_ports(host: str, http_port: int, grpc_port: int, health_port: int | None = None) -> None:
    """Raise ``OSError`` naming the port and why (``Address already in use``) if a port
    cannot be bound now (0, any free port, always can).

    Call it before loading the Algorithm and starting workers: a busy port was found
    only after them (5 s, 23 s with two GPU workers). gRPC itself reports a busy port
    with a line of its C core on stderr that does not say why.
    """
    sockets: list[socket.socket] = []
    try:
        for port, what in ((http_port, "HTTP"), (grpc_port, "gRPC"), (health_port, "health")):
            if port:
                sockets.append(_bind(host, port, what))  # both held: the same port twice is refused
    finally:
        for sock in sockets:
            sock.close()


class _Reloads:
    """SIGHUP's reloads, each on a thread of its own: a credential file that blocks when read
    (a FIFO without a writer, a hung network mount) must not stop the event loop, which
    answers every request. One reload reads at a time; SIGHUPs that arrive meanwhile make
    one more reload follow it, so the last signal always sees the files as they are then."""

    def __init__(self, reload: Callable[[], str]) -> None:
        self._reload = reload
        self._lock = threading.Lock()
        self._running = False
        self._again = False

    def request(self) -> None:
        with self._lock:
            if self._running:
                if not self._again:
                    log.info("SIGHUP: a reload is still reading its files; another follows it")
                self._again = True
                return
            self._running = True
        # A daemon thread, not the loop's executor: one stuck in open() must not hold up
        # the interpreter's exit after the drain.
        threading.Thread(target=self._run, name="sae-reload", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                log.info("SIGHUP: reloaded %s", self._reload())
            except ValueError as exc:
                log.error("SIGHUP: reload refused, the previous credentials still serve: %s", exc)
            except Exception:  # a reload must never end the thread silently with _running set
                log.exception("SIGHUP: reload failed, the previous credentials still serve")
            with self._lock:
                if not self._again:
                    self._running = False
                    return
                self._again = False


async def serve(
    service: EmbeddingService,
    *,
    ready: Callable[[Addresses], None] | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
) -> None:
    """Serve until SIGTERM/SIGINT (``handle_signals``) or ``stop`` is set, then drain.

    ``ready`` is called with the bound addresses once both front ends listen.
    Raises ``OSError`` when a port cannot be bound.
    """
    config = service.config
    loop = asyncio.get_running_loop()
    stop = stop if stop is not None else asyncio.Event()
    try:
        # No drain timeout of uvicorn's own: it cancels the requests, which answered a plain-text
        # 500 and logged a traceback each. cut() ends the drain instead.
        http = _Uvicorn(uvicorn.Config(
            create_app(service), lifespan="off", log_config=None, log_level="warning", access_log=False,
            ssl_certfile=config.ssl_certfile, ssl_keyfile=config.ssl_keyfile,
            ssl_cert_reqs=ssl.CERT_REQUIRED if config.ssl_client_ca is not None else ssl.CERT_NONE,
            ssl_ca_certs=config.ssl_client_ca,
        ))
        http.config.load()  # its SSL context, which then serves the certificate of the moment
        if http.config.ssl is not None:
            service.credentials.serve_from(http.config.ssl)
        http_socket = _bind(config.host, config.port)
        health: _Uvicorn | None = None
        health_socket: socket.socket | None = None
        if config.health_port is not None:
            health = _Uvicorn(uvicorn.Config(create_health_app(service), lifespan="off", log_config=None,
                                             log_level="warning", access_log=False))
            health.config.load()
            try:
                health_socket = _bind(config.host, config.health_port, "health")
            except BaseException:
                http_socket.close()
                raise
        sockets = [s for s in (http_socket, health_socket) if s is not None]
        try:
            if config.grpc_port:  # why it is busy, in one line, before gRPC tries (see check_ports)
                _bind(config.host, config.grpc_port, "gRPC").close()
            grpc_front = GrpcFrontEnd(service)
            grpc_port = grpc_front.listen(config.host, config.grpc_port)
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
    except BaseException:
        await service.close()  # its worker processes, which started with it
        raise
    cut_timer: asyncio.TimerHandle | None = None

    def cut() -> None:
        """Answer every request still running 503 / UNAVAILABLE now."""
        service.cut()  # requests in the batcher or the tokenizer stage
        grpc_front.cut()  # and every call, idle streams too
        # Requests still reading their body or writing their answer: the endpoints answer a
        # cancellation at shutdown with 503. force_exit: connections without a request are
        # not waited for.
        for task in list(http.server_state.tasks):
            task.cancel()
        http.force_exit = True

    def on_signal() -> None:
        if stop.is_set():
            log.warning("second signal: answering the requests in flight 503 / UNAVAILABLE now")
            cut()
        stop.set()

    reloads = _Reloads(service.reload_credentials)

    def drain_ended() -> None:
        log.warning("--drain-seconds %g is up: answering the requests in flight 503 / UNAVAILABLE",
                    config.drain_seconds)
        cut()

    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    reload_signals = (signal.SIGHUP,) if handle_signals and hasattr(signal, "SIGHUP") \
        and service.credentials.reloadable else ()
    with _calling_on_signals(loop, on_signal, signals), _calling_on_signals(loop, reloads.request, reload_signals):
        try:
            service.start()
            await grpc_front.start()
            http_task = await _started(loop, http, http_socket, "HTTP")
            health_task = await _started(loop, health, health_socket, "health") if health is not None else None
            addresses = Addresses(config.host, http_socket.getsockname()[1], grpc_port, config.tls,
                                  health_socket.getsockname()[1] if health_socket is not None else None)
            if ready is not None:
                ready(addresses)
            stopping = loop.create_task(stop.wait())
            await asyncio.wait({http_task, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            log.info("shutting down: answering the requests in flight (up to %.0f s)", config.drain_seconds)
            service.begin_shutdown()
            cut_timer = loop.call_later(config.drain_seconds, drain_ended)
            grpc_stopped = loop.create_task(grpc_front.stop(config.drain_seconds))
            if not http_task.done():
                await _stop_listening(http, http_socket)
            http.should_exit = True
            await asyncio.gather(http_task, grpc_stopped)
            if health is not None:  # last: probes see the drain's 503 until it ends
                health.should_exit = True
                await health_task
        finally:
            if cut_timer is not None:
                cut_timer.cancel()
            await service.close()


async def _started(loop: asyncio.AbstractEventLoop, server: _Uvicorn, sock: socket.socket, what: str) -> asyncio.Task:
    """``server`` serving on ``sock`` in a task, once it has started."""
    task = loop.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.005)
    if task.done():
        task.result()  # uvicorn failed to start: its error
        raise RuntimeError(f"the {what} server stopped while starting")
    return task


def run_coroutine(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run ``coroutine`` to the end on a new event loop: uvloop's where installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


def run(service: EmbeddingService, ready: Callable[[Addresses], None] | None = None) -> None:
    """Block in :func:`serve` on a new event loop (uvloop's where installed)."""
    run_coroutine(serve(service, ready=ready))
