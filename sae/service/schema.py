"""The request bodies of the HTTP APIs, parsed and checked, with one-line errors.

``POST /v1/embeddings`` takes OpenAI's shape, ``POST /embed`` text-embeddings-inference's.
Everything here is pure (bytes in, texts out) so it can be fuzzed without a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import orjson


class RequestError(Exception):
    """A request the server refuses: ``kind`` is a metrics error kind, ``status`` the HTTP code."""

    STATUS: ClassVar[dict[str, int]] = {"bad_request": 400, "too_large": 413}

    def __init__(self, message: str, *, param: str | None = None, kind: str = "bad_request",
                 status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.kind = kind
        self.status = status if status is not None else self.STATUS[kind]


@dataclass(frozen=True)
class OpenAIRequest:
    texts: list[str]
    base64: bool  #: encoding_format "base64": little-endian float32 bytes, as the OpenAI client asks by default


@dataclass(frozen=True)
class TEIRequest:
    texts: list[str]
    #: "truncate": true: a text longer than the stream capacity keeps its first tokens
    #: (otherwise, as in every other request, it is embedded whole, in windows)
    truncate: bool


OPENAI_FIELDS = ("input", "model", "encoding_format", "dimensions", "user")
TEI_FIELDS = ("inputs", "normalize", "truncate", "truncation_direction", "prompt_name", "dimensions")


def decode_json(body: bytes) -> Any:
    """The JSON value of ``body``; invalid UTF-8 and malformed JSON name the byte where it fails."""
    if not body.strip():
        raise RequestError("the request body is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise RequestError(f"the request body is not valid UTF-8 ({bad.reason} at byte {bad.start})") from None
        reason = str(exc).splitlines()[0] if str(exc) else "malformed"
        raise RequestError(f"the request body is not valid JSON: {reason}") from None


def _object(value: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError(f"the request body must be a JSON object, got {_kind(value)}")
    unknown = [key for key in value if key not in fields]
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r} (accepted: {', '.join(fields)})", param=unknown[0])
    return value


def _texts(value: Any, param: str, max_texts: int) -> list[str]:
    """A string or a non-empty list of strings, at most ``max_texts`` of them."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise RequestError(f"'{param}' must be a string or a list of strings, got {_kind(value)}", param=param)
    if not value:
        raise RequestError(f"'{param}' is an empty list; send at least one text", param=param)
    if len(value) > max_texts:
        raise RequestError(f"'{param}' has {len(value)} texts, more than the limit of {max_texts} per request",
                           param=param, kind="too_large")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            if _token_array(value):
                raise RequestError(f"'{param}' is a token array; sae takes texts only (its tokenizer is "
                                   "part of the Algorithm)", param=param)
            raise RequestError(f"'{param}[{i}]' must be a string, got {_kind(item)}", param=param)
    return value


def _token_array(value: list) -> bool:
    """OpenAI's other input forms: a list of token ids, or a list of such lists."""
    def ids(items: list) -> bool:
        return all(isinstance(x, int) and not isinstance(x, bool) for x in items)

    return ids(value) or all(isinstance(x, list) and ids(x) for x in value)


def parse_openai(body: bytes, max_texts: int) -> OpenAIRequest:
    """An OpenAI embeddings request: ``input``, optional ``model``, ``encoding_format``, ``user``.

    ``dimensions`` is refused: sae's vectors have the Algorithm's dimension and are not
    trained to be cut short.
    """
    request = _object(decode_json(body), OPENAI_FIELDS)
    if "input" not in request:
        raise RequestError("missing field 'input' (a string or a list of strings)", param="input")
    if request.get("dimensions") is not None:
        raise RequestError("'dimensions' is not supported: sae embeddings have the fixed dimension of the "
                           "Algorithm (see GET /info); omit the field", param="dimensions")
    for name in ("model", "user"):
        if request.get(name) is not None and not isinstance(request[name], str):
            raise RequestError(f"'{name}' must be a string, got {_kind(request[name])}", param=name)
    encoding = request.get("encoding_format")
    if encoding is None:
        encoding = "float"
    if encoding not in ("float", "base64"):
        raise RequestError(f"'encoding_format' must be \"float\" or \"base64\", got {_short(encoding)}",
                           param="encoding_format")
    return OpenAIRequest(_texts(request["input"], "input", max_texts), encoding == "base64")


def parse_tei(body: bytes, max_texts: int) -> TEIRequest:
    """A text-embeddings-inference ``/embed`` request: ``inputs`` and options sae can honour.

    ``normalize`` may be true or absent (sae always L2-normalizes); ``truncate`` true
    keeps a long text's first tokens, false or absent embeds it whole, in windows (where
    text-embeddings-inference refuses it); ``dimensions`` and prompt names are refused.
    """
    request = _object(decode_json(body), TEI_FIELDS)
    if "inputs" not in request:
        raise RequestError("missing field 'inputs' (a string or a list of strings)", param="inputs")
    if request.get("normalize") not in (None, True):
        raise RequestError("'normalize' must be true: sae embeddings are always L2-normalized", param="normalize")
    if request.get("truncate") is not None and not isinstance(request["truncate"], bool):  # nor are 1 and 0
        raise RequestError(f"'truncate' must be true or false, got {_kind(request['truncate'])}", param="truncate")
    if request.get("truncation_direction") not in (None, "Right", "right"):
        raise RequestError("'truncation_direction' must be \"Right\": sae keeps the first tokens",
                           param="truncation_direction")
    for name in ("prompt_name", "dimensions"):
        if request.get(name) is not None:
            raise RequestError(f"'{name}' is not supported by sae; omit the field", param=name)
    return TEIRequest(_texts(request["inputs"], "inputs", max_texts), request.get("truncate") is True)


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
             int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    if isinstance(value, str):
        text = orjson.dumps(value).decode()
    elif isinstance(value, bool) or value is None:
        text = {True: "true", False: "false", None: "null"}[value]
    elif isinstance(value, (int, float)):
        text = repr(value)
    else:
        text = _kind(value)
    return text if len(text) <= 40 else text[:37] + "..."
