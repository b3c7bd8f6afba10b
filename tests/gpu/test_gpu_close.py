"""Engine.close on the GPU: every buffer the backend made is destroyed at once, the shared
device and pipelines stay for the other engines, and later calls fail in one line."""

from __future__ import annotations

import numpy as np
import pytest
from gpu_helpers import skip_without_gpu, watch_buffer_creation
from tiny import WORDS, make_tiny

from sae import Engine
from sae.population import PopulationEvaluator

skip_without_gpu()

TEXTS = ["the new york city is big", "not a good dog , the cat is playing !", "", "players run runs new york",
         "a very small red house of the man and the woman eats food ."]


@pytest.fixture
def buffers(monkeypatch):
    """Every buffer created on the device from now on, and every one destroyed."""
    made: list = []
    destroyed: list = []

    def created(buffer, args, kwargs):
        if not made:
            real_destroy = type(buffer).destroy

            def destroying(b):
                destroyed.append(b)
                real_destroy(b)

            monkeypatch.setattr(type(buffer), "destroy", destroying)
        made.append(buffer)

    watch_buffer_creation(monkeypatch, created)
    return made, destroyed


def _not_destroyed(made: list, destroyed: list) -> list[str]:
    gone = {id(b) for b in destroyed}
    return [b.label for b in made if id(b) not in gone]


def test_close_destroys_every_buffer_and_leaves_other_engines_working(buffers):
    made, destroyed = buffers
    alg = make_tiny()
    other = Engine(alg, backend="gpu", batch_size=4)  # on the same (shared) device
    expected = other.embed(TEXTS)
    made.clear()
    engine = Engine(alg, backend="gpu", batch_size=4)
    assert made and engine.backend.buffer_bytes > 0
    out = engine.embed(TEXTS)
    kept = out.copy()
    assert out.tobytes() == expected.tobytes()
    engine.close()
    engine.close()  # idempotent
    assert _not_destroyed(made, destroyed) == []
    assert engine.closed and engine.backend.buffer_bytes == 0
    assert out.tobytes() == kept.tobytes()  # embeddings read back before close are host copies
    with pytest.raises(ValueError, match=r"^Engine\.embed: this Engine is closed$"):
        engine.embed(TEXTS)
    with pytest.raises(ValueError, match=r"^Engine\.explain: this Engine is closed$"):
        engine.explain("a cat")
    with pytest.raises(ValueError, match=r"^GpuBackend\.submit_batch: the backend is closed$"):
        engine.backend.submit_batch([[1]], np.array([1], dtype=np.uint32))
    assert other.embed(TEXTS).tobytes() == expected.tobytes()  # the device and pipelines are still there
    assert other.explain(TEXTS[1]).embedding.tobytes() == expected[1].tobytes()


def test_engines_made_and_closed_in_a_loop_leave_no_buffers(buffers):
    made, destroyed = buffers
    alg = make_tiny()
    first = None
    for _ in range(3):
        with Engine(alg, backend="gpu", batch_size=4) as engine:
            out = engine.embed(TEXTS)
        first = out if first is None else first
        assert out.tobytes() == first.tobytes()
    assert len(made) > 0 and _not_destroyed(made, destroyed) == []


def test_a_batch_submitted_and_not_collected_fails_clearly_after_close():
    engine = Engine(make_tiny(), backend="gpu", batch_size=4)
    ids = engine.tokenize(TEXTS)
    pending = engine.backend.submit_batch(ids, np.array([len(t) for t in ids], dtype=np.uint32))
    engine.close()
    with pytest.raises(ValueError, match=r"^GpuBackend\.result: the backend is closed$"):
        pending.result()


def test_a_population_evaluator_closes_its_backend(buffers):
    made, destroyed = buffers
    base = make_tiny()
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, len(WORDS), size=int(rng.integers(1, 20))).tolist() for _ in range(6)]
    with PopulationEvaluator(base, backend="gpu", jobs=16) as evaluator:
        rows = evaluator.evaluate([base, base], docs)
    assert len(rows) == 2 and rows[0].tobytes() == rows[1].tobytes()
    assert evaluator.closed and _not_destroyed(made, destroyed) == []
    with pytest.raises(ValueError, match=r"^PopulationEvaluator\.runs: this PopulationEvaluator is closed$"):
        evaluator.runs([base], docs)
