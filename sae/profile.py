"""A tracing profiler: CPU scopes and per-pass GPU timings, a summary and a Chrome trace.

Backends report into a :class:`Profiler` when one is attached (``engine.profiler``):
the engine and backends open CPU scopes (tokenize, upload, submit, readback, ...),
and the GPU backend adds one event per compute pass per annealing step, timed by
timestamp queries. Where an adapter has no timestamp-query, the GPU backend times
each pass from the CPU instead and says so in :attr:`Profiler.gpu_clock`; such
figures are never presented as GPU timestamps.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: Values of :attr:`Profiler.gpu_clock`.
GPU_TIMESTAMPS = "gpu timestamp queries"
CPU_TIMED = "cpu-timed passes (this adapter has no timestamp-query)"


@dataclass
class Event:
    """One timed span on a track ("cpu" or "gpu"), in nanoseconds of the CPU clock."""

    name: str
    track: str
    start_ns: int
    dur_ns: int
    args: dict[str, Any] = field(default_factory=dict)


class Profiler:
    """Collects timed events; see the module docstring."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.gpu_clock: str | None = None  # set by a GPU backend that reports passes
        self.device: str | None = None
        #: per batch a device backend ran: documents, submissions, dispatches, readbacks, bytes_read
        self.batches: list[dict[str, int]] = []

    @contextmanager
    def scope(self, name: str, **args: Any) -> Iterator[None]:
        """Time a CPU-side span (nested scopes nest in the trace)."""
        start = time.perf_counter_ns()
        try:
            yield
        finally:
            self.events.append(Event(name, "cpu", start, time.perf_counter_ns() - start, args))

    def gpu_passes(self, passes: list[tuple[str, dict[str, Any]]], ticks_ns: list[tuple[int, int]],
                   submitted_ns: int) -> None:
        """Add GPU pass events measured on the GPU clock (``(begin, end)`` in ns each).

        GPU and CPU clocks differ; the batch is placed so that its first pass begins
        at ``submitted_ns`` on the CPU clock, which keeps the tracks side by side.
        """
        if not passes:
            return
        origin = min(begin for begin, _ in ticks_ns)
        for (name, args), (begin, end) in zip(passes, ticks_ns, strict=True):
            self.events.append(Event(name, "gpu", submitted_ns + begin - origin, max(end - begin, 0), args))

    def gpu_pass_cpu_timed(self, name: str, start_ns: int, dur_ns: int, **args: Any) -> None:
        """A pass timed from the CPU (submit and wait), for adapters without timestamps."""
        self.events.append(Event(name, "gpu", start_ns, dur_ns, {**args, "clock": "cpu"}))

    def count_batch(self, **counts: int) -> None:
        """What one batch cost in host-device traffic (a device backend reports it)."""
        self.batches.append(dict(counts))

    def batch_counters(self) -> dict[str, Any]:
        """Totals of :attr:`batches` and their means per batch (empty without device batches)."""
        if not self.batches:
            return {}
        names = sorted({k for b in self.batches for k in b})
        totals = {k: sum(b.get(k, 0) for b in self.batches) for k in names}
        return {"batches": len(self.batches), "total": totals,
                "per_batch": {k: v / len(self.batches) for k, v in totals.items()}}

    # -- reports -----------------------------------------------------------------------
    def summary(self, track: str = "gpu") -> list[dict[str, Any]]:
        """Per name on ``track``: calls, total and mean (ms / µs), share of the track's time."""
        totals: dict[str, list[int]] = {}
        for e in self.events:
            if e.track == track:
                totals.setdefault(e.name, []).append(e.dur_ns)
        # CPU scopes nest, so their shares are of the outermost scopes' time.
        grand = sum(sum(v) for v in totals.values()) if track == "gpu" else self._outer_cpu_ns()
        rows = []
        for name, durs in sorted(totals.items(), key=lambda kv: -sum(kv[1])):
            total = sum(durs)
            rows.append({"name": name, "calls": len(durs), "total_ms": total / 1e6,
                         "mean_us": total / len(durs) / 1e3, "share": total / grand if grand else 0.0})
        return rows

    def _outer_cpu_ns(self) -> int:
        spans = sorted((e.start_ns, e.start_ns + e.dur_ns) for e in self.events if e.track == "cpu")
        total, end = 0, -1
        for s, t in spans:
            if s >= end:
                total += t - s
                end = t
            elif t > end:
                total += t - end
                end = t
        return total

    def chrome_trace(self) -> dict[str, Any]:
        """The Trace Event Format (JSON object form) that Perfetto and chrome://tracing load."""
        origin = min((e.start_ns for e in self.events), default=0)
        tids = {"cpu": 1, "gpu": 2}
        gpu_name = f"GPU ({self.gpu_clock})" if self.gpu_clock else "GPU"
        events: list[dict[str, Any]] = [
            {"name": "process_name", "ph": "M", "pid": 1, "tid": 0, "args": {"name": "sae"}},
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "CPU"}},
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": 2, "args": {"name": gpu_name}},
        ]
        # Longer spans first at equal start, so nesting reads naturally.
        for e in sorted(self.events, key=lambda e: (e.start_ns, -e.dur_ns)):
            events.append({
                "name": e.name, "cat": e.track, "ph": "X", "pid": 1, "tid": tids[e.track],
                "ts": (e.start_ns - origin) / 1e3, "dur": e.dur_ns / 1e3, "args": e.args,
            })
        return {"traceEvents": events, "displayTimeUnit": "ms",
                "otherData": {"gpu_clock": self.gpu_clock or "none", "device": self.device or "none"}}


def mean_cpu_ms(engine: Any, texts: list[str], passes: int) -> dict[str, float]:
    """Milliseconds per pass of every CPU scope of ``engine.embed(texts)`` (stages, and on the
    numpy path each rule's ``match NAME`` and ``footprint NAME``), the mean of ``passes``
    profiled passes after one unprofiled warm-up (which fills the transformed vector rows).
    With a profiler attached the engine runs its batches one after another."""
    engine.embed(texts)
    engine.profiler = profiler = Profiler()
    try:
        for _ in range(passes):
            engine.embed(texts)
    finally:
        engine.profiler = None
    return {row["name"]: row["total_ms"] / passes for row in profiler.summary("cpu")}


@contextmanager
def maybe_scope(profiler: Profiler | None, name: str, **args: Any) -> Iterator[None]:
    """``profiler.scope(...)`` when a profiler is attached, otherwise nothing."""
    if profiler is None:
        yield
    else:
        with profiler.scope(name, **args):
            yield
