"""The gRPC front end (grpc.aio): ``sae.v1.Embedder`` (unary and streaming Embed, Info)
and the standard ``grpc.health.v1.Health`` service.

Status codes: bad input INVALID_ARGUMENT, a full queue RESOURCE_EXHAUSTED (as does a
message over the size limit, from gRPC itself), shutting down UNAVAILABLE, a server
fault INTERNAL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import numpy as np
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sae.service import access_log
from sae.service.auth import OPEN_GRPC_PREFIX, UNAUTHORIZED
from sae.service.batcher import QueueFullError, ShuttingDownError
from sae.service.credentials import Credentials
from sae.service.proto import embed_pb2
from sae.service.schema import RequestError
from sae.service.service import EmbeddingService
from sae.service.tls import TlsFiles

log = logging.getLogger(__name__)

SERVICE_NAME = embed_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name  # "sae.v1.Embedder"
#: Seconds between the health service's looks at the service's health (a worker process
#: dead, restarting, given up; a shutdown begun).
HEALTH_POLL = 0.5

_CODES = {
    "bad_request": grpc.StatusCode.INVALID_ARGUMENT,
    "too_large": grpc.StatusCode.INVALID_ARGUMENT,
    "queue_full": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "shutting_down": grpc.StatusCode.UNAVAILABLE,
    "unauthorized": grpc.StatusCode.UNAUTHENTICATED,
    "internal": grpc.StatusCode.INTERNAL,
}


class _Malformed:
    """A request message that did not parse (invalid UTF-8 in a string, bad wire format)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parser(message: type) -> Callable[[bytes], object]:
    """A deserializer of ``message`` that hands a bad message to the servicer as :class:`_Malformed`."""
    def parse(data: bytes):
        # gRPC answers UNKNOWN or INTERNAL, with a traceback in the log, when a
        # deserializer raises; a bad message is the client's fault.
        try:
            return message.FromString(data)
        except DecodeError as exc:
            return _Malformed(str(exc) or "cannot parse")

    return parse


def _check_parsed(request: object, message: type) -> None:
    if isinstance(request, _Malformed):
        raise RequestError(f"the request is not a valid {message.DESCRIPTOR.full_name}: {request.reason}")


def _failure(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, RequestError):
        return exc.kind, exc.message
    if isinstance(exc, QueueFullError):
        return "queue_full", str(exc)
    if isinstance(exc, ShuttingDownError):
        return "shutting_down", str(exc)
    log.error("internal error", exc_info=exc)
    return "internal", f"internal error ({type(exc).__name__}); see the server log"


def _log_call(context: grpc.aio.ServicerContext, method: str, code: grpc.StatusCode, started: float,
              answer: embed_pb2.EmbedResponse | None = None, holder: str | None = None) -> None:
    """The access log's line of one call (or stream message) of ``method``; ``holder`` as
    :func:`sae.service.access_log.record` takes it."""
    texts, tokens = (len(answer.embeddings), answer.prompt_tokens) if answer is not None else (None, None)
    access_log.record(access_log.client_of_peer(context.peer()), f"gRPC {method}", code.name,
                      time.perf_counter() - started, texts, tokens, holder)


def _authorization(metadata) -> str | None:
    return next((value for name, value in metadata or () if name == "authorization"), None)


class EmbedderServicer:
    """Answers ``sae.v1.Embedder`` from an :class:`EmbeddingService`."""

    def __init__(
        self, service: EmbeddingService, embed: Callable[[list[str]], Awaitable[tuple[np.ndarray, int]]]
    ) -> None:
        self.service = service
        self.embed = embed  # service.embed, run on the service's loop
        self.duration = service.metrics.request_duration.labels("grpc")
        self.texts = service.metrics.request_texts.labels("grpc")
        self.errors = service.metrics.errors
        self.cancelled = service.metrics.grpc_cancelled
        self.access_log = service.config.access_log
        #: the answer queue of every open EmbedStream, and when it opened
        self._streams: dict[asyncio.Queue, float] = {}

    def _log(self, context: grpc.aio.ServicerContext, method: str, code: grpc.StatusCode, started: float,
             answer: embed_pb2.EmbedResponse | None = None) -> None:
        if self.access_log:
            credentials = self.service.credentials
            name = credentials.holder(_authorization(context.invocation_metadata()))[1] \
                if credentials.requires_key else None
            _log_call(context, method, code, started, answer, access_log.holder_field(credentials.requires_key, name))

    async def _embed(self, request: embed_pb2.EmbedRequest | _Malformed) -> embed_pb2.EmbedResponse:
        _check_parsed(request, embed_pb2.EmbedRequest)
        # proto3 enums are open: an unknown number arrives as itself.
        if request.encoding not in (embed_pb2.FLOAT, embed_pb2.BYTES):
            raise RequestError(f"'encoding' must be FLOAT (0) or BYTES (1), got {request.encoding}",
                               param="encoding")
        texts = list(request.inputs)
        self.service.check_count(texts)
        vectors, tokens = await self.embed(texts)
        self.texts.observe(len(texts))
        if request.encoding == embed_pb2.BYTES:
            little = vectors.astype("<f4", copy=False)
            embeddings = [embed_pb2.Embedding(data=row.tobytes()) for row in little]
        else:
            embeddings = [embed_pb2.Embedding(values=row) for row in vectors.tolist()]
        return embed_pb2.EmbedResponse(embeddings=embeddings, prompt_tokens=tokens)

    async def _abort(self, context: grpc.aio.ServicerContext, exc: Exception, method: str, started: float) -> None:
        kind, message = _failure(exc)
        self.errors.labels("grpc", kind).inc()
        self._log(context, method, _CODES[kind], started)
        await context.abort(_CODES[kind], message)

    async def Embed(self, request, context: grpc.aio.ServicerContext) -> embed_pb2.EmbedResponse:
        started = time.perf_counter()
        try:
            answer = await self._embed(request)
        except asyncio.CancelledError:
            self._count_cancelled()
            self._log(context, "Embed", grpc.StatusCode.CANCELLED, started)
            raise
        except Exception as exc:
            await self._abort(context, exc, "Embed", started)
            raise  # not reached: abort raises
        finally:
            self.duration.observe(time.perf_counter() - started)
        self._log(context, "Embed", grpc.StatusCode.OK, started, answer)
        return answer

    def _count_cancelled(self) -> None:
        # grpc.aio cancels the handler when the client cancels or its deadline passes; a
        # shutdown's own cancellations are not the clients'.
        if self.service.serving:
            self.cancelled.inc()

    async def EmbedStream(self, requests: AsyncIterator, context: grpc.aio.ServicerContext):
        """Each request is answered in order; requests are embedded concurrently as they arrive."""
        #: (when the request arrived, its answer) in the order they arrived
        answers: asyncio.Queue[tuple[float, asyncio.Future] | None] = asyncio.Queue(maxsize=64)
        self._streams[answers] = time.perf_counter()

        async def read() -> None:
            try:
                async for request in requests:
                    await answers.put((time.perf_counter(), asyncio.ensure_future(self._timed(request, context))))
            finally:
                await answers.put(None)

        reader = asyncio.ensure_future(read())
        try:
            while (item := await answers.get()) is not None:
                started, task = item
                try:
                    yield await task
                except Exception as exc:
                    await self._abort(context, exc, "EmbedStream", started)
            await reader  # a reading error surfaces here
        except asyncio.CancelledError:
            self._count_cancelled()
            raise
        finally:
            self._streams.pop(answers, None)
            reader.cancel()
            while not answers.empty():
                pending = answers.get_nowait()
                if pending is not None:
                    pending[1].cancel()

    def cut_streams(self) -> None:
        """End every open stream UNAVAILABLE (a cut: the drain may not wait any longer).

        A stream waiting for its client's next request would otherwise hold the shutdown
        open; one with requests queued ends as the service fails them (``service.cut()``).
        The access log times a cut from the stream's opening: no request of it was cut."""
        for answers, opened in self._streams.items():
            cut = asyncio.get_running_loop().create_future()
            cut.set_exception(ShuttingDownError("the server is shutting down; the request was cut"))
            with contextlib.suppress(asyncio.QueueFull):
                answers.put_nowait((opened, cut))

    async def _timed(self, request, context: grpc.aio.ServicerContext) -> embed_pb2.EmbedResponse:
        """One message of a stream; a failure is logged where the stream answers it."""
        started = time.perf_counter()
        try:
            answer = await self._embed(request)
        finally:
            self.duration.observe(time.perf_counter() - started)
        self._log(context, "EmbedStream", grpc.StatusCode.OK, started, answer)
        return answer

    async def Info(self, request, context: grpc.aio.ServicerContext) -> embed_pb2.InfoResponse:
        started = time.perf_counter()
        try:
            _check_parsed(request, embed_pb2.InfoRequest)
        except RequestError as exc:
            await self._abort(context, exc, "Info", started)
        self._log(context, "Info", grpc.StatusCode.OK, started)
        return embed_pb2.InfoResponse(**self.service.info())


class _RequireApiKey(grpc.aio.ServerInterceptor):
    """Every call but the health service's without the API key in its ``authorization``
    metadata is answered UNAUTHENTICATED (its request is not read)."""

    def __init__(self, credentials: Credentials, errors, access_log: bool = False) -> None:
        self.credentials = credentials  # the keys of the moment: a reload replaces them
        self.errors = errors
        self.access_log = access_log

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        arrived = time.perf_counter()
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_GRPC_PREFIX):
            return handler
        if self.credentials.key_matches(_authorization(details.invocation_metadata)):
            return handler

        async def refuse(request, context: grpc.aio.ServicerContext) -> None:
            self.errors.labels("grpc", "unauthorized").inc()
            if self.access_log:
                _log_call(context, details.method.rsplit("/", 1)[-1], _CODES["unauthorized"], arrived, holder="-")
            await context.abort(_CODES["unauthorized"], UNAUTHORIZED)

        make = (grpc.stream_stream_rpc_method_handler if handler.request_streaming and handler.response_streaming
                else grpc.unary_unary_rpc_method_handler)
        return make(refuse, request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer)


def _current_certificate(credentials: Credentials) -> grpc.ServerCredentials:
    """TLS credentials that serve each new connection the certificate (and check its
    client's against the client CA) of the moment: gRPC asks at every handshake, and is
    told of a change once per reload."""
    served = credentials.tls_and_generation()[1]

    def certificate(tls: TlsFiles) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(tls.private_key, tls.certificate)], tls.client_ca)

    def fetch() -> grpc.ServerCertificateConfiguration | None:  # on gRPC's own threads
        nonlocal served
        tls, generation = credentials.tls_and_generation()
        if generation == served or tls is None:
            return None  # no change
        served = generation
        return certificate(tls)

    assert credentials.tls is not None
    return grpc.dynamic_ssl_server_credentials(certificate(credentials.tls), fetch,
                                               require_client_authentication=credentials.tls.client_ca is not None)


def _handlers(servicer: EmbedderServicer) -> grpc.GenericRpcHandler:
    # As the generated add_EmbedderServicer_to_server, but with a deserializer that lets a
    # malformed request reach the servicer (INVALID_ARGUMENT) instead of failing as INTERNAL.
    respond = embed_pb2.EmbedResponse.SerializeToString
    parse = _parser(embed_pb2.EmbedRequest)
    return grpc.method_handlers_generic_handler(SERVICE_NAME, {
        "Embed": grpc.unary_unary_rpc_method_handler(
            servicer.Embed, request_deserializer=parse, response_serializer=respond),
        "EmbedStream": grpc.stream_stream_rpc_method_handler(
            servicer.EmbedStream, request_deserializer=parse, response_serializer=respond),
        "Info": grpc.unary_unary_rpc_method_handler(
            servicer.Info, request_deserializer=_parser(embed_pb2.InfoRequest),
            response_serializer=embed_pb2.InfoResponse.SerializeToString),
    })


class GrpcFrontEnd:
    """A grpc.aio server with the Embedder and the health service, on an event loop of its own.

    gRPC runs in a thread with its own asyncio loop: grpc.aio and uvicorn on one loop
    slowed each other down several times over (docs/SERVE.md). Its calls reach the
    service on the caller's loop (where the batcher lives) through thread-safe futures.
    """

    def __init__(self, service: EmbeddingService) -> None:
        self.service = service
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sae-grpc", daemon=True)
        self._thread.start()
        self._service_loop: asyncio.AbstractEventLoop | None = None
        self._server: grpc.aio.Server | None = None
        self._servicer: EmbedderServicer | None = None
        self._health: health.aio.HealthServicer | None = None
        self._health_follower: asyncio.Future | None = None

    def _in_thread(self, coroutine) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def _embed_on_service_loop(self, texts: list[str]):
        assert self._service_loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.service.embed(texts),
                                                                           self._service_loop))

    async def _create(self, host: str, port: int) -> int:
        credentials = self.service.credentials
        interceptors = ([_RequireApiKey(credentials, self.service.metrics.errors, self.service.config.access_log)]
                        if credentials.requires_key else [])
        self._server = grpc.aio.server(interceptors=interceptors, options=[
            ("grpc.max_receive_message_length", self.service.config.max_body_bytes),
            ("grpc.so_reuseport", 0),  # a busy port is an error, not a second listener
        ])
        self._servicer = EmbedderServicer(self.service, self._embed_on_service_loop)
        self._server.add_generic_rpc_handlers((_handlers(self._servicer),))
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        # Server reflection, for clients that read the API from the server (grpcurl list / describe).
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME),
                                            self._server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if credentials.tls is None:
                return self._server.add_insecure_port(address)
            return self._server.add_secure_port(address, _current_certificate(credentials))
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {address} (gRPC): {exc}") from None

    def listen(self, host: str, port: int) -> int:
        """Bind ``host:port`` (0: a free port); the port bound. Raises ``OSError``."""
        try:
            return self._in_thread(self._create(host, port)).result()
        except BaseException:
            self._close_loop()
            raise

    async def _start(self) -> None:
        assert self._server is not None and self._health is not None
        await self._server.start()
        for name in ("", SERVICE_NAME):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._health_follower = asyncio.ensure_future(self._follow_health())

    async def _follow_health(self) -> None:
        """Keep the health service's status that of :attr:`EmbeddingService.healthy`.

        Polled: a worker process dies, is restarted or is given up on threads of the
        service's, and a check every :data:`HEALTH_POLL` seconds costs nothing.
        """
        assert self._health is not None
        serving = True
        while True:
            await asyncio.sleep(HEALTH_POLL)
            if self.service.healthy != serving:
                serving = not serving
                status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
                for name in ("", SERVICE_NAME):
                    await self._health.set(name, status)  # ignored once the graceful shutdown began

    async def start(self) -> None:
        """Start serving; call from the loop the service runs on."""
        self._service_loop = asyncio.get_running_loop()
        await asyncio.wrap_future(self._in_thread(self._start()))

    async def _stop(self, grace: float) -> None:
        assert self._server is not None and self._health is not None
        if self._health_follower is not None:
            self._health_follower.cancel()
        await self._health.enter_graceful_shutdown()
        # The one stop, at once: the listener closes and new calls are refused UNAVAILABLE by
        # gRPC itself; the running ones end as the service answers them, or as cut() answers
        # them for it, and what still runs after ``grace`` is cancelled. (Served during the
        # drain and stopped once idle, new calls kept the listener open under load and one
        # arriving as it closed was CANCELLED; a second stop() while one runs crashed the
        # process, so a cut does not call it.)
        await self._server.stop(grace)
        # grpc's task around each call can still be one loop turn from done when stop()
        # returns; closing the loop then destroys it pending (a traceback in the log).
        calls = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if calls:
            await asyncio.wait(calls, timeout=grace)

    async def stop(self, grace: float) -> None:
        """Health NOT_SERVING, refuse new calls, let running ones finish within ``grace`` seconds."""
        if self._server is not None:
            await asyncio.wrap_future(self._in_thread(self._stop(grace)))
        await asyncio.get_running_loop().run_in_executor(None, self._close_loop)

    def cut(self) -> None:
        """End the calls that :meth:`stop` waits for now: the service has answered its requests
        UNAVAILABLE; open streams end UNAVAILABLE too. Callable from any thread."""
        if self._thread.is_alive() and self._servicer is not None:
            self._loop.call_soon_threadsafe(self._servicer.cut_streams)

    def _close_loop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()
