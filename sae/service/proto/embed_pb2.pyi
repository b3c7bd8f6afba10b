from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FLOAT: _ClassVar[Encoding]
    BYTES: _ClassVar[Encoding]
FLOAT: Encoding
BYTES: Encoding

class EmbedRequest(_message.Message):
    __slots__ = ("inputs", "encoding")
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    inputs: _containers.RepeatedScalarFieldContainer[str]
    encoding: Encoding
    def __init__(self, inputs: _Optional[_Iterable[str]] = ..., encoding: _Optional[_Union[Encoding, str]] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values", "data")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    data: bytes
    def __init__(self, values: _Optional[_Iterable[float]] = ..., data: _Optional[bytes] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("embeddings", "prompt_tokens")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    prompt_tokens: int
    def __init__(self, embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., prompt_tokens: _Optional[int] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("algorithm", "content_hash", "dim", "backend", "backend_description", "version", "max_batch_tokens", "max_wait_ms", "max_queue", "max_texts", "max_body_bytes", "stream_capacity", "workers", "adapter", "drain_seconds")
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    BACKEND_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXTS_FIELD_NUMBER: _ClassVar[int]
    MAX_BODY_BYTES_FIELD_NUMBER: _ClassVar[int]
    STREAM_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    DRAIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    algorithm: str
    content_hash: str
    dim: int
    backend: str
    backend_description: str
    version: str
    max_batch_tokens: int
    max_wait_ms: int
    max_queue: int
    max_texts: int
    max_body_bytes: int
    stream_capacity: int
    workers: int
    adapter: str
    drain_seconds: float
    def __init__(self, algorithm: _Optional[str] = ..., content_hash: _Optional[str] = ..., dim: _Optional[int] = ..., backend: _Optional[str] = ..., backend_description: _Optional[str] = ..., version: _Optional[str] = ..., max_batch_tokens: _Optional[int] = ..., max_wait_ms: _Optional[int] = ..., max_queue: _Optional[int] = ..., max_texts: _Optional[int] = ..., max_body_bytes: _Optional[int] = ..., stream_capacity: _Optional[int] = ..., workers: _Optional[int] = ..., adapter: _Optional[str] = ..., drain_seconds: _Optional[float] = ...) -> None: ...
