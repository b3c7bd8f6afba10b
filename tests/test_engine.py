"""The public API: Engine.embed and Engine.explain on the numpy path."""

import logging
import re

import numpy as np
import pytest

from sae import Engine
from sae.errors import BackendUnavailableError
from sae.layout import Capacities
from sae.windows import split, word_starts


@pytest.fixture(scope="module")
def engine(tiny_alg):
    return Engine(tiny_alg, backend="cpu", batch_size=3)


def test_embed_shapes_and_norms(engine):
    texts = ["a cat eats food", "new york city", "the dog , not happy", "big red house", "run ##s"]
    out = engine.embed(texts)
    assert out.shape == (5, engine.dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-6)
    assert engine.embed("a cat eats food").shape == (engine.dim,)
    # Batching does not change results.
    single = np.stack([engine.embed(t) for t in texts])
    assert single.tobytes() == out.tobytes()


def test_empty_and_whitespace_texts_embed_to_zero(engine):
    out = engine.embed(["", "   ", "\t\n", "cat"])
    assert not out[:3].any()
    assert np.linalg.norm(out[3]) > 0.99


def test_long_texts_are_truncated_with_a_warning_when_asked(tiny_alg, caplog):
    engine = Engine(tiny_alg, backend="cpu", caps=Capacities(stream=8), long_texts="truncate")
    with caplog.at_level(logging.WARNING, logger="sae.engine"):
        long, cut = engine.embed(["cat dog " * 10, "cat dog cat dog cat dog cat dog"])
    assert "1 text(s) longer than 8 tokens were truncated" in caplog.text
    assert long.tobytes() == cut.tobytes()
    with pytest.raises(ValueError, match="more than the stream capacity"):
        engine.embed_tokens([[1] * 9])


def test_a_long_text_whose_windows_are_all_silenced_embeds_to_zero(tiny_alg):
    """As a one-document text does (docs/ENGINE.md §5); it was an AttributeError in
    ``Windows.combine`` (found by an adversarial pass)."""
    from dataclasses import replace

    from sae.rules_text import parse_rules

    silenced = replace(tiny_alg, rules=parse_rules("rule nop score 100: [] => set 0 op=NOP"))
    engine = Engine(silenced, backend="cpu", caps=Capacities(stream=8))
    out = engine.embed(["cat dog " * 10, "cat dog", "cat"])
    assert out.dtype == np.float32 and not out.any()


def test_long_texts_are_embedded_in_windows_by_default(tiny_alg, caplog):
    """A text past the stream capacity was cut to its first tokens: the rest was lost."""
    engine = Engine(tiny_alg, backend="cpu", caps=Capacities(stream=8))
    text = "the new york city players , not very big cat dog runs"
    ids = engine.tokenize([text])[0]
    assert len(ids) > 8  # whole: windows are the engine's business
    windows = split(ids, 8, word_starts(engine.algorithm.tokenizer))
    assert len(windows) == 2 and max(map(len, windows)) <= 8 and windows[0] + windows[1] == ids
    vectors = engine.embed_tokens(windows).astype(np.float64)
    expected = (vectors * np.array([[len(w)] for w in windows])).sum(axis=0)
    with caplog.at_level(logging.WARNING, logger="sae.engine"):
        got = engine.embed([text, "a dog"])
    assert not caplog.text
    np.testing.assert_allclose(got[0], expected / np.linalg.norm(expected), atol=1e-7)
    assert got[1].tobytes() == engine.embed(["a dog"]).tobytes()  # whatever it is embedded with
    assert engine.counters_snapshot().texts == 2 + 2 + 1  # texts, not windows
    done = []
    engine.embed([text, "a dog", text], progress=done.append)
    assert sum(done) == 3  # texts, not windows
    with caplog.at_level(logging.WARNING, logger="sae.engine"):
        explained = engine.explain(text)  # one document: the first window's tokens
    assert explained.tokens == [engine.symbol_name(t) for t in ids[:8]]
    assert f"truncated to its first 8 of {len(ids)} tokens for this explanation; embed reads all of them, " \
        "in 2 windows" in caplog.text
    with pytest.raises(ValueError, match="long_texts must be one of window, truncate, got 'cut'"):
        Engine(tiny_alg, backend="cpu", long_texts="cut")


def test_explain_reports_the_journal(engine):
    x = engine.explain("the new york city player ##s , not very big")
    assert x.tokens[:3] == ["the", "new", "york"]
    assert len(x.journal) > 0 and set(x.journal["outcome"]) <= {1, 2}
    assert len(x.final) <= len(x.initial)
    np.testing.assert_allclose(np.linalg.norm(x.embedding), 1, atol=1e-6)


def test_explain_stops_after_max_steps_as_a_lower_max_steps_would(tiny_alg):
    from dataclasses import replace

    text = "the new york city player ##s , not very big"
    engine = Engine(tiny_alg, backend="cpu")
    full = engine.explain(text)
    steps = int(full.journal["step"].max()) + 1
    assert steps >= 2
    for s in range(steps + 2):
        lowered = Engine(replace(tiny_alg, params=replace(tiny_alg.params, max_steps=s)), backend="cpu")
        got, want = engine.explain(text, max_steps=s), lowered.explain(text)
        assert got.final.tobytes() == want.final.tobytes() and got.journal.tobytes() == want.journal.tobytes()
        assert got.embedding.tobytes() == want.embedding.tobytes()
    assert engine.explain(text, max_steps=0).final.tobytes() == full.initial.tobytes()
    assert engine.explain(text, max_steps=steps).final.tobytes() == full.final.tobytes()
    assert engine.explain(text, max_steps=1).final.tobytes() != full.final.tobytes()


def test_unknown_backend_is_a_clear_error(tiny_alg):
    with pytest.raises(BackendUnavailableError, match="unknown backend 'tpu'"):
        Engine(tiny_alg, backend="tpu")


def test_auto_prefers_numpy_over_a_software_adapter(tiny_alg, monkeypatch, caplog):
    import sae.gpu
    from sae.engine import make_backend
    from sae.gpu.device import AdapterInfo
    from sae.layout import DEFAULT_CAPACITIES

    software = AdapterInfo(index=0, name="llvmpipe", backend="Vulkan", device_type="CPU", description="",
                           features=set(), limits={}, adapter=None)
    monkeypatch.setattr(sae.gpu, "choose_adapter", lambda name=None: software)
    with caplog.at_level(logging.WARNING, logger="sae.engine"):
        backend = make_backend("auto", tiny_alg, DEFAULT_CAPACITIES)
    assert backend.name == "cpu"
    assert "only a software adapter (llvmpipe, Vulkan)" in caplog.text


def test_batches_side_by_side_give_the_same_bytes_as_one_after_another(tiny_alg):
    texts = [" ".join(["the new york city players runs , not very big !"] * (1 + i % 4)) for i in range(70)]
    alg = tiny_alg
    one = Engine(alg, backend="cpu", batch_size=8, threads=1)
    many = Engine(alg, backend="cpu", batch_size=8, threads=3)
    done: list[int] = []
    assert one.embed(texts).tobytes() == many.embed(texts, progress=done.append).tobytes()
    assert sum(done) == len(texts)
    assert many.embed(texts).tobytes() == one.embed(texts).tobytes()  # spare batches are reused


def test_without_a_batch_size_the_backend_picks_its_own_and_the_bytes_do_not_change(tiny_alg):
    from sae.cpu import CpuBackend

    texts = [" ".join(["the new york city players runs , not very big !"] * (1 + i % 4)) for i in range(2100)]
    default = Engine(tiny_alg, backend="cpu", threads=1)
    assert default.batch_size == CpuBackend.default_batch == 2048  # two batches here, one of them partial
    small = Engine(tiny_alg, backend="cpu", batch_size=1024, threads=1)
    assert default.embed(texts).tobytes() == small.embed(texts).tobytes()
    with pytest.raises(ValueError, match="batch_size"):
        Engine(tiny_alg, backend="cpu", batch_size=0)


def test_threads_must_be_positive(tiny_alg):
    with pytest.raises(ValueError, match="threads"):
        Engine(tiny_alg, backend="cpu", threads=0)


def test_counters_add_up_texts_tokens_and_rewrites(tiny_alg):
    from dataclasses import replace

    from tiny import phrase_symbol

    from sae.algorithm import LoopParams
    from sae.rules_text import parse_rules

    guard = f"rule no_merge_after_not score 400: [neg] [sym={phrase_symbol('play', '##ing')}] => guard"
    rules = tiny_alg.rules + parse_rules(guard)
    alg = replace(tiny_alg, rules=rules, params=LoopParams(max_steps=16, tolerance=0, inhibit_steps=2))
    engine = Engine(alg, backend="cpu", batch_size=2, threads=1)
    texts = ["new york city players", "the cat , not playing", "", "big red house"]
    engine.embed(texts)
    c = engine.counters_snapshot()
    journals = [engine.explain(t).journal for t in texts]
    assert (c.texts, c.batches) == (4, 2)
    assert c.tokens == sum(len(ids) for ids in engine.tokenize(texts))
    assert c.committed == sum(int((j["outcome"] == 1).sum()) for j in journals)
    assert c.reverted == sum(int((j["outcome"] == 2).sum()) for j in journals) > 0
    assert c.steps >= max(int(j["step"].max()) + 1 for j in journals if len(j))
    engine.embed(texts)
    assert engine.counters_snapshot().texts == 8  # running totals


def test_embed_tokens_is_embed_after_tokenize(tiny_alg):
    engine = Engine(tiny_alg, backend="cpu", batch_size=3)
    texts = ["the cat runs", "", "new york city", "not happy at all", "the " * 200]
    token_ids = engine.tokenize(texts)
    assert engine.embed_tokens(token_ids).tobytes() == engine.embed(texts).tobytes()
    assert max(map(len, token_ids)) > engine.caps.stream  # the last one, in windows


def test_what_is_not_a_text_is_refused_the_same_way_on_every_path(tiny_alg, monkeypatch):
    engine = Engine(tiny_alg, backend="cpu")
    pairs = [("the cat", "a dog")] * 300
    for cores in (2, 64):  # 64: a large batch goes to the tokenizer's batch call, which reads pairs
        monkeypatch.setattr(engine.algorithm.token_ids, "cores", cores)
        with pytest.raises(TypeError, match=r"Engine\.embed: texts\[0\] is tuple, not str"):
            engine.embed(pairs)
    for bad, message in ((None, "got NoneType"), (5, "got int"), (b"the cat", "texts are bytes"),
                         (["the cat", None], r"texts\[1\] is NoneType")):
        with pytest.raises(TypeError, match=message):
            engine.embed(bad)
    with pytest.raises(TypeError, match=r"Engine\.tokenize: texts\[0\] is int"):
        engine.tokenize([3])
    with pytest.raises(TypeError, match=r"Engine\.explain: the text is NoneType"):
        engine.explain(None)


def test_token_ids_outside_the_vocabulary_are_refused(tiny_alg):
    engine = Engine(tiny_alg, backend="cpu")
    symbols = len(tiny_alg.symbol_rows)
    for ids, message in (([[1], [symbols]], f"text 1 has token id {symbols}, outside 0..{symbols - 1}"),
                         ([[-1]], "token id -1, outside"), ([[1.5]], "of type float, not an integer"),
                         ([["a"]], "of type str"), ([[True]], "of type bool")):
        with pytest.raises(ValueError, match=message):
            engine.embed_tokens(ids)
    assert engine.embed_tokens([[1, 2], np.array([3], dtype=np.uint32), []]).shape == (3, engine.dim)


@pytest.mark.parametrize("setting", [{"batch_size": 2.5}, {"batch_size": True}, {"threads": "2"}])
def test_engine_settings_must_be_integers(tiny_alg, setting):
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        Engine(tiny_alg, backend="cpu", **setting)


def test_a_bare_string_an_unordered_collection_and_a_lone_surrogate_are_refused(tiny_alg):
    """tokenize("a cat") read one text per character; a set came back in an order that
    changes from one process to the next; a lone surrogate was the tokenizer's TypeError
    naming no text."""
    engine = Engine(tiny_alg, backend="cpu")
    with pytest.raises(TypeError, match=r"Engine\.tokenize: expected a sequence of str, got one str"):
        engine.tokenize("the cat")
    for unordered in ({"the cat", "a dog"}, frozenset({"the cat"}), {"the cat": 1}, {"the cat": 1}.keys()):
        with pytest.raises(TypeError, match="unordered"):
            engine.embed(unordered)
    with pytest.raises(ValueError, match=r"texts\[1\] has a lone surrogate at character 4"):
        engine.embed(["the cat", "the \ud800 dog"])
    assert engine.embed("the cat").shape == (engine.dim,)  # one str is one text, as documented


def test_caps_must_be_capacities(tiny_alg):
    with pytest.raises(TypeError, match=r"caps must be a sae\.layout\.Capacities, got str"):
        Engine(tiny_alg, backend="cpu", caps="x")


CLOSE_TEXTS = ["a cat eats food", "new york city", "", "the dog , not happy"]


def test_close_releases_the_backend_and_refuses_later_calls(tiny_alg):
    import weakref

    engine = Engine(tiny_alg, backend="cpu", batch_size=3, threads=1)
    before = engine.embed(CLOSE_TEXTS)
    kept = before.copy()
    host_batch = weakref.ref(engine.backend._batches.batch(1))  # the numpy path's reused host batch
    engine.close()
    engine.close()  # idempotent
    assert engine.closed and host_batch() is None
    assert before.tobytes() == kept.tobytes()  # what was returned stays the caller's
    assert engine.counters_snapshot().texts == len(CLOSE_TEXTS) and engine.dim == tiny_alg.dim
    calls = {
        "Engine.embed": lambda: engine.embed(CLOSE_TEXTS),
        "Engine.embed_tokens": lambda: engine.embed_tokens([[1, 2]]),
        "Engine.tokenize": lambda: engine.tokenize(["a cat"]),
        "Engine.explain": lambda: engine.explain("a cat"),
        "Engine.profiler": lambda: setattr(engine, "profiler", None),
        "Engine.__enter__": lambda: engine.__enter__(),
    }
    for caller, call in calls.items():
        with pytest.raises(ValueError, match=rf"^{re.escape(caller)}: this Engine is closed$"):
            call()
    with pytest.raises(ValueError, match=r"^Engine\.embed: this Engine is closed$"):
        engine.embed("a cat")  # the single-text path too
    with pytest.raises(ValueError, match=r"^CpuBackend\.submit_batch: the backend is closed$"):
        engine.backend.submit_batch([[1]], np.array([1], dtype=np.uint32))
    # Another engine on the same Algorithm (and the shared vector table) is untouched.
    assert Engine(tiny_alg, backend="cpu").embed(CLOSE_TEXTS).tobytes() == kept.tobytes()


def test_an_engine_is_a_context_manager(tiny_alg):
    with Engine(tiny_alg, backend="cpu") as engine:
        out = engine.embed(CLOSE_TEXTS)
    assert engine.closed and out.shape == (len(CLOSE_TEXTS), tiny_alg.dim)
    with pytest.raises(ValueError, match="closed"):
        engine.embed(CLOSE_TEXTS)


def test_close_waits_for_a_call_in_progress_on_another_thread(tiny_alg):
    import threading

    texts = CLOSE_TEXTS * 5
    expected = Engine(tiny_alg, backend="cpu", batch_size=4).embed(texts)
    engine = Engine(tiny_alg, backend="cpu", batch_size=4, threads=1)
    inside, go_on = threading.Event(), threading.Event()
    box = {}

    def progress(_done: int) -> None:
        inside.set()
        assert go_on.wait(30)

    embedder = threading.Thread(target=lambda: box.update(out=engine.embed(texts, progress=progress)))
    embedder.start()
    assert inside.wait(30)
    closer = threading.Thread(target=engine.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive()  # waiting for the batches still to embed
    with pytest.raises(ValueError, match="closed"):  # while it waits, new calls are refused
        engine.embed(["a cat"])
    go_on.set()
    embedder.join(30)
    closer.join(30)
    assert not closer.is_alive() and engine.closed
    assert box["out"].tobytes() == expected.tobytes()  # the call in progress finished whole


def test_close_from_inside_a_call_is_refused_not_a_deadlock(tiny_alg):
    engine = Engine(tiny_alg, backend="cpu", batch_size=2, threads=1)
    with pytest.raises(RuntimeError, match=r"^Engine\.close: called from inside a call of this Engine"):
        engine.embed(CLOSE_TEXTS, progress=lambda _done: engine.close())
    assert not engine.closed and engine.embed(CLOSE_TEXTS).shape == (len(CLOSE_TEXTS), tiny_alg.dim)


def test_warm_up_computes_every_vector_row_first_and_changes_no_bytes():
    """The numpy path computes transformed vector rows as batches first need them; warm_up
    computes them all at once (sae serve's engines, before they take requests)."""
    from tiny import make_tiny, parse

    alg = make_tiny(rules=parse("rule scope score 60: [neg] [!punct]+4 => set 1 mod=1\n"
                                "rule s score 50: [stop] => set 0 mod=2 scale=2"), transforms=2)
    texts = ["dog , not happy", "cat eats food", "not big red house"]  # no stopword: transform 2 unused
    cold = Engine(alg, backend="cpu")
    first = cold.embed(texts)
    assert not cold.backend.table.ready.all()  # only the rows (blocks) these texts needed
    warm = Engine(alg, backend="cpu")
    assert warm.backend.table is cold.backend.table  # one Algorithm's frozen arrays: one table
    cold.close()
    warm.warm_up()
    assert warm.backend.table.ready.all()
    assert warm.embed(texts).tobytes() == first.tobytes()
    warm.close()
    with pytest.raises(ValueError, match="closed"):
        warm.warm_up()


def test_the_texts_counter_only_grows_during_a_call_with_long_texts(tiny_alg):
    """A long text's windows were counted as texts and the excess taken off at the end of
    the call: a reader meanwhile (the service's /metrics, a Prometheus counter) saw the
    counter fall, which Prometheus reads as a restart."""
    from tiny import WORDS

    engine = Engine(tiny_alg, backend="cpu", batch_size=2, threads=1)
    long_text = " ".join(WORDS[2:30] * 12)  # several windows
    seen = [engine.counters_snapshot().texts]
    vectors = engine.embed([long_text, "a cat", long_text], progress=lambda _: seen.append(
        engine.counters_snapshot().texts))
    seen.append(engine.counters_snapshot().texts)
    assert vectors.shape[0] == 3 and len(seen) > 3
    assert seen == sorted(seen), seen
    assert seen[-1] - seen[0] == 3


def test_symbol_name_refuses_what_is_not_a_symbol_in_one_line(tiny_alg):
    engine = Engine(tiny_alg, backend="cpu")
    assert engine.symbol_name(2) == "the"
    for bad in (-1, tiny_alg.n_symbols, 10**30, 1.5, True, "2"):
        with pytest.raises(ValueError, match=rf"Engine.symbol_name: symbol must be an integer in 0..{tiny_alg.n_symbols - 1}"):
            engine.symbol_name(bad)


def test_pickling_an_engine_says_what_to_pickle_instead(tiny_alg):
    import pickle

    with pytest.raises(TypeError, match=r"an Engine cannot be pickled .* pickle its Algorithm"):
        pickle.dumps(Engine(tiny_alg, backend="cpu"))
