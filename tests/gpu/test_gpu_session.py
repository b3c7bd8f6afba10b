"""The GPU path as a device-resident session: one submission and one readback per batch,
two batches in flight, counts from the device, a lost device re-created."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from gpu_helpers import skip_without_gpu
from tiny import WORDS, make_tiny

from sae import Engine
from sae.algorithm import LoopParams
from sae.layout import EMBEDDING_TOLERANCE, Capacities

skip_without_gpu()

TEXTS = ["the new york city is big", "not a good dog , the cat is playing !", "", "players run runs new york",
         "a very small red house of the man and the woman eats food .", "not not not happy ! ? sad"] * 9


def _texts(n, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS[2:], size=int(rng.integers(0, 25)))) for _ in range(n)]


def test_one_submission_and_one_readback_per_batch():
    engine = Engine(make_tiny(), backend="gpu", batch_size=16)
    engine.embed(TEXTS[:5])  # warm-up
    before = engine.backend.counters.as_dict()
    engine.embed(_texts(50))  # four batches: 16, 16, 16, 2
    after = engine.backend.counters.as_dict()
    delta = {k: after[k] - before[k] for k in after}
    assert delta["batches"] == 4
    assert delta["submissions"] == 4 and delta["readbacks"] == 4
    # only the embeddings (dim floats padded to whole vec4s) and the batch's totals come back
    state = engine.backend._state_dtype.itemsize
    assert delta["bytes_read"] == 50 * 8 * 4 + 4 * state


def test_the_profiler_reports_traffic_per_batch():
    from sae.profile import Profiler

    engine = Engine(make_tiny(), backend="gpu", batch_size=16)
    engine.profiler = profiler = Profiler()
    engine.embed(_texts(40))
    counters = profiler.batch_counters()
    assert counters["batches"] == 3 and counters["per_batch"]["submissions"] == 1
    assert counters["per_batch"]["readbacks"] == 1 and counters["total"]["documents"] == 40
    assert counters["total"]["dispatches"] >= 3 * 5  # live, anneal, plan, vm, normalize, stats


def test_pipelined_batches_equal_the_numpy_path():
    alg = make_tiny(params=LoopParams(max_steps=12, tolerance=0, inhibit_steps=2))
    texts = _texts(70, seed=1)
    gpu = Engine(alg, backend="gpu", batch_size=16)
    cpu = Engine(alg, backend="cpu", batch_size=16)
    g, c = gpu.embed(texts), cpu.embed(texts)
    assert np.abs(g - c).max() <= EMBEDDING_TOLERANCE
    # counts come from the device (journals stay there); batches differ in composition,
    # so steps (a batch's longest) may differ, the rest may not
    gc, cc = gpu.counters_snapshot(), cpu.counters_snapshot()
    assert (gc.texts, gc.tokens, gc.batches, gc.committed, gc.reverted) == \
           (cc.texts, cc.tokens, cc.batches, cc.committed, cc.reverted)
    assert gc.committed > 0
    ids = gpu.tokenize(texts)
    assert np.array_equal(gpu.embed_tokens(ids), g)


def test_two_batches_in_flight_and_a_third():
    alg = make_tiny()
    gpu = Engine(alg, backend="gpu", batch_size=8).backend
    cpu = Engine(alg, backend="cpu").backend
    batches = [[[int(t) for t in np.random.default_rng(s).integers(0, len(WORDS), 12)] for _ in range(5)]
               for s in range(3)]
    lengths = np.full(5, 12, dtype=np.uint32)
    handles = [gpu.submit_batch(b, lengths) for b in batches]  # the third collects the first
    for b, h in reversed(list(zip(batches, handles))):
        expected = cpu.submit_batch(b, lengths).result().embeddings
        assert np.abs(h.result().embeddings - expected).max() <= EMBEDDING_TOLERANCE


def test_truncation_warns_once_on_the_pipelined_path(caplog):
    engine = Engine(make_tiny(), backend="gpu", batch_size=2, caps=Capacities(stream=8), long_texts="truncate")
    with caplog.at_level(logging.WARNING, logger="sae.engine"):
        engine.embed(["cat dog " * 10] * 5)
    assert caplog.text.count("truncated") == 1 and "5 text(s) longer than 8 tokens" in caplog.text


def test_long_texts_in_windows_agree_with_the_cpu_on_every_path():
    """Windows are cut on the host, before either backend; the GPU's pipelined text path
    cuts them per slice."""
    alg = make_tiny()
    caps = Capacities(stream=8)
    texts = ["the new york city players , not very big cat dog runs", "a dog", "",
             "cat dog " * 20, "not happy at all"] * 3
    cpu = Engine(alg, backend="cpu", caps=caps)
    gpu = Engine(alg, backend="gpu", batch_size=2, caps=caps)
    expected = cpu.embed(texts)
    assert np.abs(gpu.embed(texts) - expected).max() <= 1e-5
    assert np.abs(gpu.embed_tokens(gpu.tokenize(texts)) - expected).max() <= 1e-5
    assert gpu.counters_snapshot().texts == 2 * len(texts)
    done = []
    gpu.embed(texts, progress=done.append)
    assert sum(done) == len(texts)  # texts, not windows


def test_a_lost_device_is_recreated_and_the_batch_run_again():
    from sae.gpu import backend as gpu_backend
    from sae.gpu import device as gpu_device

    alg = make_tiny()
    engine = Engine(alg, backend="gpu", batch_size=16)
    expected = Engine(alg, backend="cpu").embed(TEXTS)
    dead = engine.backend.device
    dead.destroy()
    out = engine.embed(TEXTS)
    assert np.abs(out - expected).max() <= EMBEDDING_TOLERANCE
    if engine.backend.counters.recoveries == 0:
        import wgpu

        # wgpu 0.19 (the oldest pyproject allows) runs on after destroy(): nothing was lost.
        pytest.skip(f"Device.destroy() does not lose the device on wgpu {wgpu.__version__}")
    assert engine.backend.counters.recoveries == 1
    assert engine.backend.device is not dead
    # the process-wide caches never keep the dead device
    assert all(d is not dead for d in gpu_device._devices.values())
    assert all(p.device is not dead for p in gpu_backend._pipeline_cache.values())
    # and a new backend gets the live one
    assert Engine(alg, backend="gpu").backend.device is not dead


def test_a_device_lost_again_is_one_line_and_exit_1(monkeypatch):
    import wgpu

    from sae.gpu.device import GpuError

    engine = Engine(make_tiny(), backend="gpu", batch_size=16)

    def lost(self, part):
        raise wgpu.GPUError("Validation Error\n\nCaused by:\n  In wgpuQueueSubmit\n    Parent device is lost")

    monkeypatch.setattr(type(engine.backend), "_read_part", lost)
    with pytest.raises(GpuError) as info:
        engine.embed(TEXTS)
    assert info.value.exit_code == 1
    assert str(info.value).endswith("failed in submit_batch: Parent device is lost")
    assert "\n" not in str(info.value)
    assert engine.backend.counters.recoveries == 1  # it tried once


def test_without_a_batch_size_the_engine_takes_the_gpus_chunk(monkeypatch):
    engine = Engine(make_tiny(), backend="gpu")
    assert engine.batch_size == engine.backend.chunk == 1024  # sae.gpu.backend.DEFAULT_CHUNK
    monkeypatch.setenv("SAE_GPU_CHUNK", "16")  # read only when no batch size is given
    small = Engine(make_tiny(), backend="gpu")
    assert small.batch_size == small.backend.chunk == 16
    assert Engine(make_tiny(), backend="gpu", batch_size=8).backend.chunk == 8
    assert small.embed(TEXTS).tobytes() == engine.embed(TEXTS).tobytes()


def test_token_ids_outside_the_vocabulary_are_refused_as_on_the_cpu():
    # The GPU would read the vector table out of bounds and return a vector, silently.
    alg = make_tiny()
    symbols = len(alg.symbol_rows)
    for backend in ("cpu", "gpu"):
        with pytest.raises(ValueError, match=f"text 0 has token id {symbols}, outside 0..{symbols - 1}"):
            Engine(alg, backend=backend).embed_tokens([[symbols]])


def test_one_engine_shared_by_threads_gives_each_its_own_result():
    """Two threads embedding (and explaining) on one GPU Engine aborted the process
    (wgpu: "buffer is still mapped") or mixed their results; they now take turns."""
    import threading

    engine = Engine(make_tiny(), backend="gpu", batch_size=16)
    texts = _texts(200)
    reference = engine.embed(texts)
    explained = engine.explain(texts[3]).embedding
    results, errors = [], []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(np.array_equal(engine.embed(texts), reference))
                results.append(np.array_equal(engine.explain(texts[3]).embedding, explained))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results and all(results)


def test_population_token_ids_are_checked_on_both_backends():
    # The GPU read the tables out of bounds and returned a vector, silently.
    from sae.population import PopulationEvaluator

    alg = make_tiny()
    symbols = len(alg.symbol_rows)
    for backend in ("cpu", "gpu"):
        evaluator = PopulationEvaluator(alg, backend=backend)
        for ids, message in (([[symbols]], f"text 0 has token id {symbols}, outside"), ([[-1]], "token id -1"),
                             ([[1.5]], "of type float")):
            with pytest.raises(ValueError, match=message):
                evaluator.evaluate([alg], ids)
            with pytest.raises(ValueError, match=message):
                evaluator.runs([alg], ids)


def test_a_progress_callback_may_call_the_same_engine_with_two_batches_in_flight():
    """A progress callback that embedded or explained with its own GPU Engine waited forever
    for the device turn its caller held (the numpy path had no such lock)."""
    import threading

    from sae import Engine

    engine = Engine(make_tiny(), backend="gpu", batch_size=2)
    texts = [" ".join(WORDS[2 + i : 7 + i]) for i in range(9)]
    alone = engine.embed(texts)
    nested: list = []

    def progress(_: int) -> None:
        nested.append((engine.embed(texts[:3]).tobytes(), engine.explain(texts[4]).embedding.tobytes()))

    got: list = []
    thread = threading.Thread(target=lambda: got.append(engine.embed(texts, progress=progress)), daemon=True)
    thread.start()
    thread.join(120)
    assert got, "the nested call waited for itself"
    assert got[0].tobytes() == alone.tobytes()
    assert len(nested) == 5
    assert all(n == (alone[:3].tobytes(), alone[4].tobytes()) for n in nested)


def test_a_lone_surrogate_is_named_by_its_index_in_the_whole_call():
    """The GPU path tokenizes a batch at a time and named the text by its index in the batch."""
    from sae import Engine

    engine = Engine(make_tiny(), backend="gpu", batch_size=4)
    with pytest.raises(ValueError, match=r"texts\[9\]"):
        engine.embed(["the cat"] * 9 + ["a \ud800 dog"])


def test_a_huge_batch_size_with_many_rules_fits_its_buffers_to_the_binding_limit():
    """The chunk was sized without the scratch buffer's live job list and the DocStates'
    totals: a wgpu validation error (a binding range past the limit) making the Engine."""
    from sae import Engine
    from sae.layout import Capacities

    caps = Capacities(stream=8, rules=4096)
    engine = Engine(make_tiny(), backend="gpu", caps=caps, batch_size=2**31)
    texts = ["the cat is not happy", "a dog", ""]
    assert np.abs(engine.embed(texts) - Engine(make_tiny(), backend="cpu", caps=caps).embed(texts)).max() <= 1e-5
