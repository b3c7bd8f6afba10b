"""Per-pass GPU timings reach the profiler; profiling changes no result."""

from __future__ import annotations

import numpy as np
from gpu_helpers import skip_without_gpu
from tiny import make_tiny

from sae.engine import Engine
from sae.profile import CPU_TIMED, GPU_TIMESTAMPS, Profiler

skip_without_gpu()

TEXTS = ["the new york city is big", "not a good dog , the cat is playing !", "", "players run runs"] * 3


def test_every_pass_is_timed():
    engine = Engine(make_tiny(), backend="gpu")
    plain = engine.embed(TEXTS)
    profiler = Profiler()
    engine.profiler = profiler
    profiled = engine.embed(TEXTS)
    engine.profiler = None
    assert np.array_equal(plain, profiled)
    assert profiler.gpu_clock in (GPU_TIMESTAMPS, CPU_TIMED)
    names = {row["name"] for row in profiler.summary("gpu")}
    assert names == {"live", "anneal", "plan", "vm", "normalize", "stats"}
    trace = profiler.chrome_trace()
    assert any(ev.get("cat") == "gpu" for ev in trace["traceEvents"])


def test_without_timestamp_queries_passes_are_cpu_timed():
    engine = Engine(make_tiny(), backend="gpu")
    plain = engine.embed(TEXTS)
    engine.backend._query_set = None  # as on an adapter without timestamp-query
    profiler = Profiler()
    engine.profiler = profiler
    assert np.array_equal(plain, engine.embed(TEXTS))
    assert profiler.gpu_clock == CPU_TIMED
    gpu_events = [e for e in profiler.events if e.track == "gpu"]
    assert gpu_events and all(e.args.get("clock") == "cpu" for e in gpu_events)
