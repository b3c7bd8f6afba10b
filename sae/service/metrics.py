"""Prometheus metrics of the service, on a registry of its own (one per server).

Durations by stage as text-embeddings-inference names them (request, queue,
inference), batch sizes in texts and tokens, errors by kind, and the engines'
running counters and the engine processes' restarts, read at scrape time. Labels
are few and bounded: ``api`` is one of :data:`APIS`, ``kind`` one of :data:`ERROR_KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from sae import __version__
from sae.engine import Engine

#: Which interface a request came through.
APIS = ("openai", "tei", "grpc")
#: Why a request failed: bad input (4xx / INVALID_ARGUMENT), too large (413),
#: queue full (429 / RESOURCE_EXHAUSTED), shutting down (503 / UNAVAILABLE), a server fault (500 / INTERNAL).
ERROR_KINDS = ("bad_request", "too_large", "queue_full", "shutting_down", "unauthorized", "internal")

_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_TEXTS = tuple(float(2**k) for k in range(13))  # 1 .. 4096
_TOKENS = tuple(float(2**k) for k in range(4, 18))  # 16 .. 131072


class EngineCounters(Collector):
    """The workers' running totals (``counters_snapshot()``), summed at scrape time."""

    #: (metric name without _total, EngineCounters field, help)
    FIELDS = (
        ("sae_engine_texts", "texts", "Texts embedded by the engines"),
        ("sae_engine_tokens", "tokens", "Tokens embedded (a long text's every window; its first tokens when truncated)"),
        ("sae_engine_batches", "batches", "Engine batches run"),
        ("sae_engine_annealing_steps", "steps", "Annealing steps, summed over batches"),
        ("sae_engine_rewrites_committed", "committed", "Rewrites committed by the annealing loop"),
        ("sae_engine_rewrites_reverted", "reverted", "Rewrites reverted by the health check"),
    )

    def __init__(self, workers: Sequence) -> None:
        self._workers = list(workers)  # anything with counters_snapshot(): engines, ProcessEngines

    def collect(self) -> Iterator[CounterMetricFamily]:
        snapshots = [worker.counters_snapshot() for worker in self._workers]
        for name, attr, doc in self.FIELDS:
            family = CounterMetricFamily(name, doc)
            family.add_metric([], sum(getattr(s, attr) for s in snapshots))
            yield family


class WorkerRestarts(Collector):
    """Engine processes started in place of one that died, summed over the workers at scrape time."""

    def __init__(self, workers: Sequence) -> None:
        self._workers = list(workers)  # those without ``restarts`` (engines on threads) count 0

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily("sae_worker_restarts", "Engine processes started in place of one that died",
                                  value=sum(getattr(worker, "restarts", 0) for worker in self._workers))


class ServiceMetrics:
    """Every metric of one server, registered on :attr:`registry` (a batch observer too).

    ``engine`` describes the server; the ``workers``' counters are summed.
    """

    def __init__(self, engine: Engine, workers: Sequence, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        info = Info("sae_service", "The Algorithm and backend this server runs", registry=r)
        info.info({
            "version": __version__,
            "algorithm": engine.algorithm.name,
            "content_hash": engine.algorithm.content_hash,
            "backend": engine.backend.name,
        })
        self.request_duration = Histogram(
            "sae_request_duration_seconds", "Time from a request's arrival to its answer, by API",
            ["api"], buckets=_SECONDS, registry=r)
        self.request_texts = Histogram(
            "sae_request_texts", "Texts per accepted request, by API", ["api"], buckets=_TEXTS, registry=r)
        self.errors = Counter(
            "sae_request_errors", "Requests answered with an error, by API and kind", ["api", "kind"], registry=r)
        for api in APIS:  # every series exists from the start, at 0
            self.request_duration.labels(api)
            self.request_texts.labels(api)
            for kind in ERROR_KINDS:
                self.errors.labels(api, kind)
        self.grpc_cancelled = Counter(
            "sae_grpc_calls_cancelled", "gRPC calls the client cancelled, or whose deadline passed, before "
            "their answer", registry=r)
        self.http_disconnects = Counter(
            "sae_http_client_disconnects", "HTTP requests whose client closed the connection before the "
            "answer, by API (their texts leave the queue)", ["api"], registry=r)
        for api in ("openai", "tei"):
            self.http_disconnects.labels(api)
        self.queue_duration = Histogram(
            "sae_queue_duration_seconds", "Time from a request's arrival until its last text entered a batch",
            buckets=_SECONDS, registry=r)
        self.inference_duration = Histogram(
            "sae_inference_duration_seconds", "Time an engine took to embed one batch", buckets=_SECONDS, registry=r)
        self.batch_texts = Histogram("sae_batch_texts", "Texts per engine batch", buckets=_TEXTS, registry=r)
        self.batch_tokens = Histogram(
            "sae_batch_tokens", "Tokens per engine batch, as --max-batch-tokens counts them (an empty text costs 1)",
            buckets=_TOKENS, registry=r)
        self.requests_admitted = Gauge(
            "sae_requests_admitted", "Requests admitted and not answered yet (bounded by --max-queue)", registry=r)
        self.requests_waiting = Gauge(
            "sae_requests_waiting", "Requests with texts not yet in a batch", registry=r)
        self.workers_ready = Gauge(
            "sae_workers_ready", "Inference workers able to embed a batch now (not restarting an engine "
            "process, not given up)", registry=r)
        self.credential_reloads = Counter(
            "sae_credential_reloads", "Reloads of the API key file and TLS certificate (SIGHUP), by result: "
            "reloaded, or refused (the previous ones kept serving)", ["result"], registry=r)
        for result in ("reloaded", "refused"):
            self.credential_reloads.labels(result)
        r.register(EngineCounters(workers))
        r.register(WorkerRestarts(workers))

    def track_queue(self, admitted: Callable[[], int], waiting: Callable[[], int]) -> None:
        """Read the queue gauges from the batcher at scrape time."""
        self.requests_admitted.set_function(admitted)
        self.requests_waiting.set_function(waiting)

    def track_certificate(self, not_after: Callable[[], float]) -> None:
        """Report the served certificate's end of validity, read at scrape time (so a reload
        shows at once); only a server with TLS has the gauge."""
        Gauge("sae_tls_certificate_expiry_timestamp_seconds", "Unix time at which the TLS certificate served "
              "now stops being valid (its notAfter; read again on SIGHUP)",
              registry=self.registry).set_function(not_after)

    def track_workers(self, ready: Callable[[], int]) -> None:
        """Read the ready workers' gauge from the service at scrape time."""
        self.workers_ready.set_function(ready)

    # BatchObserver
    def queued(self, seconds: float) -> None:
        self.queue_duration.observe(seconds)

    def batch(self, texts: int, tokens: int, seconds: float) -> None:
        self.batch_texts.observe(texts)
        self.batch_tokens.observe(tokens)
        self.inference_duration.observe(seconds)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
