"""The HTTP front end (Starlette): OpenAI's ``/v1/embeddings``, text-embeddings-inference's
``/embed``, and ``/health``, ``/info``, ``/metrics``.

Every error is answered with a one-line JSON body in the shape of the API asked
(OpenAI: ``{"error": {"message", "type", "param", "code"}}``; the others:
``{"error": message, "error_type": kind}``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import numpy as np
import orjson
import pybase64
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from sae.service import access_log
from sae.service.auth import OPEN_HTTP_PATHS, UNAUTHORIZED
from sae.service.batcher import QueueFullError, ShuttingDownError
from sae.service.schema import RequestError, parse_openai, parse_tei
from sae.service.service import EmbeddingService

log = logging.getLogger(__name__)

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
OPENAI_PATH = "/v1/embeddings"
#: OpenAI's error "type" by metrics error kind.
_OPENAI_TYPES = {
    "bad_request": "invalid_request_error",
    "too_large": "invalid_request_error",
    "queue_full": "server_overloaded",
    "shutting_down": "server_shutting_down",
    "unauthorized": "invalid_request_error",
    "internal": "server_error",
}
#: text-embeddings-inference's "error_type" by kind.
_TEI_TYPES = {
    "bad_request": "Validation",
    "too_large": "Validation",
    "queue_full": "Overloaded",
    "shutting_down": "Unhealthy",
    "unauthorized": "Unauthorized",
    "internal": "Backend",
}


def _json(value: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(value, option=_NUMPY), status, headers, media_type="application/json")


def _error_body(api: str, kind: str, message: str, param: str | None = None) -> dict:
    """An error answer's body in the shape of ``api`` ("openai", or TEI's for the rest)."""
    if api == "openai":
        return {"error": {"message": message, "type": _OPENAI_TYPES[kind], "param": param, "code": kind}}
    return {"error": message, "error_type": _TEI_TYPES[kind]}


def _api_of(path: str) -> str:
    return "openai" if path.startswith("/v1/") else "tei"


def _failure(exc: Exception) -> tuple[int, str, str, str | None]:
    """(HTTP status, error kind, one-line message, offending parameter) of a failed request."""
    if isinstance(exc, RequestError):
        return exc.status, exc.kind, exc.message, exc.param
    if isinstance(exc, QueueFullError):
        return 429, "queue_full", str(exc), None
    if isinstance(exc, ShuttingDownError):
        return 503, "shutting_down", str(exc), None
    log.error("internal error", exc_info=exc)
    return 500, "internal", f"internal error ({type(exc).__name__}); see the server log", None


async def _client_gone(request: Request) -> None:
    """Returns when the client has closed its connection (the body is read whole by then:
    the server then answers ``receive`` only with ``http.disconnect``, once the client goes
    away or the response is sent)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes,
    and with 415 if it is compressed."""
    encoding = request.headers.get("content-encoding", "identity").strip()
    if encoding.lower() != "identity":
        # Read as it is, a gzip body was answered "not valid UTF-8", which sent clients looking
        # at their text. Not decompressed here: --max-body-bytes bounds what a request can hold.
        raise RequestError(f"Content-Encoding {encoding[:40]!r} is not supported; send the body uncompressed",
                           status=415)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"the request body has {int(declared)} bytes, more than the limit of {limit}",
                           kind="too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"the request body exceeds the limit of {limit} bytes", kind="too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def base64_rows(vectors: np.ndarray) -> list[str]:
    """Each row's little-endian float32 bytes in base64."""
    little = np.ascontiguousarray(vectors, dtype="<f4")
    n, dim = little.shape
    if n and (4 * dim) % 3 == 0:
        # Rows of a multiple of 3 bytes encode to whole base64 quanta: encode once, cut the text.
        # pybase64 (SIMD) takes ~1 µs for a 16-text answer where binascii took ~25 µs.
        text = pybase64.b64encode_as_string(little.data)
        width = (4 * dim) // 3 * 4
        return [text[i * width : (i + 1) * width] for i in range(n)]
    return [pybase64.b64encode_as_string(row.data) for row in little]


def openai_response(vectors: np.ndarray, tokens: int, model: str, as_base64: bool) -> bytes:
    """OpenAI's embeddings response; base64 is the little-endian float32 bytes of each vector."""
    if as_base64:
        rows = base64_rows(vectors)
    else:
        rows = list(vectors)  # float32 rows: orjson writes each value's shortest round-trip form
    data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage}, option=_NUMPY)


class _Endpoints:
    def __init__(self, service: EmbeddingService) -> None:
        self.service = service
        self.limit = service.config.max_body_bytes
        metrics = service.metrics
        self.duration = {api: metrics.request_duration.labels(api) for api in ("openai", "tei")}
        self.texts = {api: metrics.request_texts.labels(api) for api in ("openai", "tei")}
        self.errors = metrics.errors
        self.disconnects = {api: metrics.http_disconnects.labels(api) for api in ("openai", "tei")}

    async def _embed(self, request: Request, texts: list[str], truncate: bool = False) -> tuple[np.ndarray, int]:
        """The service's embedding of ``texts``, given up when the client goes away first:
        its texts leave the queue rather than be embedded for nobody (a client that timed out
        and retried queued behind its own abandoned request). What was embedded is noted for
        the access log (``request.state.embedded``: texts, tokens)."""
        embedding = asyncio.ensure_future(self.service.embed(texts, truncate=truncate))
        gone = asyncio.ensure_future(_client_gone(request))
        try:
            done, _ = await asyncio.wait((embedding, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            embedding.cancel()  # nothing, once it is done
        if embedding in done:
            vectors, tokens = embedding.result()
            request.state.embedded = (len(texts), tokens)
            return vectors, tokens
        gone.result()  # what receiving raised, if it did
        raise ClientDisconnect()

    def _gone(self, api: str) -> Response:
        self.disconnects[api].inc()
        return Response(status_code=400)  # nobody is listening

    def _error(self, api: str, exc: Exception) -> Response:
        status, kind, message, param = _failure(exc)
        self.errors.labels(api, kind).inc()
        headers = {"Retry-After": "1"} if status in (429, 503) else None
        return _json(_error_body(api, kind, message, param), status, headers)

    def _cut(self, api: str) -> Response:
        """The answer of a request cancelled at shutdown (sae.service.server cancels what still
        runs when the drain's time is up or a second signal comes)."""
        # Documented 503 and Retry-After, where uvicorn answered a plain-text 500 and logged a traceback.
        return self._error(api, ShuttingDownError("the server is shutting down; the request was cut"))

    async def openai(self, request: Request) -> Response:
        async def answer() -> Response:
            parsed = parse_openai(await read_body(request, self.limit), self.service.config.max_texts)
            vectors, tokens = await self._embed(request, parsed.texts)
            self.texts["openai"].observe(len(parsed.texts))
            return Response(openai_response(vectors, tokens, self.service.model, parsed.base64),
                            media_type="application/json")

        return await self._answer("openai", answer)

    async def tei(self, request: Request) -> Response:
        async def answer() -> Response:
            parsed = parse_tei(await read_body(request, self.limit), self.service.config.max_texts)
            vectors, _ = await self._embed(request, parsed.texts, parsed.truncate)
            self.texts["tei"].observe(len(parsed.texts))
            return Response(orjson.dumps(vectors, option=_NUMPY), media_type="application/json")

        return await self._answer("tei", answer)

    async def _answer(self, api: str, answer: Callable[[], Awaitable[Response]]) -> Response:
        """``answer()``, or the ``api``'s answer when the client went away, the request was
        cut at shutdown or failed; timed either way."""
        started = time.perf_counter()
        try:
            return await answer()
        except ClientDisconnect:
            return self._gone(api)
        except asyncio.CancelledError:
            if self.service.serving:
                raise  # not a shutdown's
            return self._cut(api)
        except Exception as exc:
            return self._error(api, exc)
        finally:
            self.duration[api].observe(time.perf_counter() - started)

    async def health(self, request: Request) -> Response:
        reason, degraded = self.service.health()
        if reason is None:
            return _json({"status": "ok"} if degraded is None else {"status": "ok", "degraded": degraded})
        return _json({"status": "unavailable", "error": reason}, 503)

    async def info(self, request: Request) -> Response:
        return _json(self.service.info())

    def _model(self) -> dict:
        return {"id": self.service.model, "object": "model", "created": 0, "owned_by": "sae"}

    async def models(self, request: Request) -> Response:
        """OpenAI's model list: the one Algorithm this server embeds with (for clients that
        list models before they embed, or check the name they were configured with)."""
        return _json({"object": "list", "data": [self._model()]})

    async def model(self, request: Request) -> Response:
        name = request.path_params["model"]
        if name != self.service.model:
            message = f"The model '{name}' does not exist; this server embeds with '{self.service.model}'"
            return _json({"error": {"message": message, "type": "invalid_request_error", "param": "model",
                                    "code": "model_not_found"}}, 404)
        return _json(self._model())

    async def metrics(self, request: Request) -> Response:
        return Response(self.service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def refused(self, request: Request, exc: Exception) -> Response:
        """Starlette's own refusals (unknown path, wrong method) as one-line JSON too, in the
        shape of the API asked, and counted as a bad request of it (as a request without the
        key to such a path is counted unauthorized)."""
        assert isinstance(exc, HTTPException)
        api = _api_of(request.url.path)
        self.errors.labels(api, "bad_request").inc()
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return _json(_error_body(api, "bad_request", message), exc.status_code, exc.headers)




async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s", request.url.path, exc_info=exc)
    return _json({"error": f"internal error ({type(exc).__name__})", "error_type": "Backend"}, 500)


class _CloseOnceShuttingDown:
    """ASGI middleware: an answer that starts once a shutdown has begun says
    ``Connection: close``, so that its client opens a new connection for its next request
    (refused: the listener is closed) instead of sending it on one that the shutdown is about
    to close, where it got no answer (1.75 requests a SIGTERM on average under 16 kept-alive
    clients, 0 with it: ``tools/serve_shutdown.py --keep-alive``)."""

    def __init__(self, app: Callable, service: EmbeddingService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: dict) -> None:
            if message["type"] == "http.response.start" and not self.service.serving:
                message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing)


class _AccessLog:
    """ASGI middleware, outermost: one line a request (``sae.service.access_log``), with the
    texts and tokens an endpoint embedded (``request.state.embedded``)."""

    def __init__(self, app: Callable, requires_key: bool) -> None:
        self.app = app
        self.requires_key = requires_key

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: list[int] = []

        async def send_noting_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except Exception:
            status.append(500)  # what the server's error handler answers, outside this middleware
            raise
        finally:
            host, port = scope.get("client") or ("-", 0)
            state = scope.get("state", {})
            texts, tokens = state.get("embedded", (None, None))
            access_log.record(f"{host}:{port}", f"{scope['method']} {scope['path']}",
                              status[0] if status else "-", time.perf_counter() - started, texts, tokens,
                              access_log.holder_field(self.requires_key, state.get("key_name")))


class _RequireApiKey:
    """ASGI middleware: a request to anything but :data:`~sae.service.auth.OPEN_HTTP_PATHS`
    without an API key is answered 401 in its API's shape, before its body is read."""

    def __init__(self, app: Callable, service: EmbeddingService) -> None:
        self.app = app
        self.credentials = service.credentials  # the keys of the moment: a reload replaces them
        self.errors = service.metrics.errors

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_HTTP_PATHS:
            await self.app(scope, receive, send)
            return
        authorization = next((value for name, value in scope["headers"] if name == b"authorization"), None)
        matched, key_name = self.credentials.holder(authorization)
        if matched:
            scope.setdefault("state", {})["key_name"] = key_name  # for the access log
            await self.app(scope, receive, send)
            return
        api = _api_of(scope["path"])
        self.errors.labels(api, "unauthorized").inc()
        refusal = _json(_error_body(api, "unauthorized", UNAUTHORIZED), 401, {"WWW-Authenticate": "Bearer"})
        await refusal(scope, receive, send)


def create_health_app(service: EmbeddingService) -> Starlette:
    """``GET /health`` and ``/metrics`` alone, without a key: what ``--health-port`` serves
    over plain HTTP beside the API."""
    ep = _Endpoints(service)
    routes = [Route("/health", ep.health, methods=["GET"]), Route("/metrics", ep.metrics, methods=["GET"])]

    async def refused(request: Request, exc: Exception) -> Response:  # not an API's request: not counted
        assert isinstance(exc, HTTPException)
        message = f"{request.method} {request.url.path}: {exc.detail} (this port serves GET /health and /metrics)"
        return _json({"error": message}, exc.status_code, exc.headers)

    return Starlette(routes=routes, exception_handlers={HTTPException: refused, Exception: _server_error})


def create_app(service: EmbeddingService) -> Starlette:
    """The ASGI application of ``service`` (its batcher is started and closed by the caller)."""
    ep = _Endpoints(service)
    routes = [
        Route(OPENAI_PATH, ep.openai, methods=["POST"]),
        Route("/v1/models", ep.models, methods=["GET"]),
        Route("/v1/models/{model:path}", ep.model, methods=["GET"]),
        Route("/embed", ep.tei, methods=["POST"]),
        Route("/health", ep.health, methods=["GET"]),
        Route("/info", ep.info, methods=["GET"]),
        Route("/metrics", ep.metrics, methods=["GET"]),
    ]
    middleware = [Middleware(_CloseOnceShuttingDown, service=service)]
    if service.credentials.requires_key:
        middleware.append(Middleware(_RequireApiKey, service=service))
    if service.config.access_log:
        middleware.insert(0, Middleware(_AccessLog, requires_key=service.credentials.requires_key))
    return Starlette(routes=routes, exception_handlers={HTTPException: ep.refused, Exception: _server_error},
                     middleware=middleware)
