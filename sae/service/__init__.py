"""``sae serve``: embeddings over HTTP (OpenAI- and TEI-shaped) and gRPC, with dynamic
batching, back-pressure and Prometheus metrics. Needs ``pip install 'sae[serve]'``.

One module per part: :mod:`~sae.service.batcher` (dynamic batching),
:mod:`~sae.service.schema` (HTTP request bodies), :mod:`~sae.service.http`,
:mod:`~sae.service.grpc_server`, :mod:`~sae.service.metrics`,
:mod:`~sae.service.service` (what the front ends share), :mod:`~sae.service.process_worker`
(an engine in a process of its own), :mod:`~sae.service.supervisor` (replacing such a
process when it dies), :mod:`~sae.service.auth` (API keys), :mod:`~sae.service.tls`
(certificates), :mod:`~sae.service.credentials` (both, reloaded on SIGHUP),
:mod:`~sae.service.access_log`, :mod:`~sae.service.server`
(HTTP on the main event loop, gRPC on its own in a thread; draining on SIGTERM).
"""

from __future__ import annotations

import importlib

#: module imported -> distribution that provides it, for the install hint
_NEEDS = {
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "orjson": "orjson",
    "pybase64": "pybase64",
    "grpc": "grpcio",
    "grpc_health": "grpcio-health-checking",
    "grpc_reflection": "grpcio-reflection",
    "google.protobuf": "protobuf",
    "prometheus_client": "prometheus-client",
    "cryptography": "cryptography",
}
for _module, _dist in _NEEDS.items():
    try:
        importlib.import_module(_module)
    except ImportError as _exc:
        raise ImportError(f"sae serve needs {_dist} ({_exc}): pip install 'sae[serve]'") from None

from sae.service.batcher import Batcher, QueueFullError, ShuttingDownError  # noqa: E402
from sae.service.config import ServiceConfig  # noqa: E402
from sae.service.credentials import Credentials  # noqa: E402
from sae.service.process_worker import ProcessEngine, WorkerProcessError  # noqa: E402
from sae.service.server import Addresses, run, serve  # noqa: E402
from sae.service.service import EmbeddingService, InferenceWorker, make_workers  # noqa: E402
from sae.service.supervisor import SupervisedEngine  # noqa: E402

__all__ = [
    "Addresses",
    "Batcher",
    "Credentials",
    "EmbeddingService",
    "InferenceWorker",
    "ProcessEngine",
    "QueueFullError",
    "ServiceConfig",
    "ShuttingDownError",
    "SupervisedEngine",
    "WorkerProcessError",
    "make_workers",
    "run",
    "serve",
]
