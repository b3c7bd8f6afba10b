"""WGSL == numpy (== the reference): hand-written rules for every feature of docs/ENGINE.md
v2, chunked batches, small capacities, full journals, and random Algorithms."""

from __future__ import annotations

import numpy as np
import pytest
from equivalence import RULE_CASES, TEXTS, assert_step_limit_is_the_algorithms
from gpu_helpers import gpu_agrees, skip_without_gpu
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import algorithms, token_streams
from tiny import WORDS, ids, make_tiny, parse

from sae.algorithm import LoopParams
from sae.layout import COMMITTED, DEFAULT_CAPACITIES, REVERTED, TOLERANCE_MAX, Capacities

skip_without_gpu()

CAPS = DEFAULT_CAPACITIES


def _ids(alg, texts, caps=CAPS):
    return [e.ids[: caps.stream] for e in alg.tokenizer.encode_batch(texts, add_special_tokens=False)]


def _step_journal(batch, doc: int, step: int) -> list[tuple[int, int, int, int]]:
    """(rank, rule, pos, outcome) of one document's journal entries of one step."""
    j = batch.journal[doc, : batch.journal_len[doc]]
    j = j[j["step"] == step]
    return [(int(e["rank"]), int(e["rule"]), int(e["pos"]), int(e["outcome"])) for e in j]


def test_tiny_rules_agree():
    alg = make_tiny()
    bc, _ = gpu_agrees(alg, _ids(alg, TEXTS), reference=True)
    # The fixture must actually rewrite: merges and updates happen.
    assert bc.stats.committed > 20
    assert (bc.lengths[: len(TEXTS)] < np.array([len(t) for t in _ids(alg, TEXTS)])).any()


def test_full_length_streams_and_chunks():
    alg = make_tiny(dim=70, transforms=2)  # two workgroups' worth of dimensions in the VM
    rng = np.random.default_rng(1)
    docs = [rng.integers(0, len(WORDS), size=n).tolist() for n in (CAPS.stream, CAPS.stream, 1, 0, CAPS.stream - 1, 37)]
    gpu_agrees(alg, docs, chunk=4)


def test_empty_inputs():
    alg = make_tiny()
    gpu_agrees(alg, [])
    gpu_agrees(alg, [[], []])
    gpu_agrees(alg.without_rules(), _ids(alg, TEXTS))


#: The shared rule sets, and more that exercise winners, windows and merges on the GPU.
CASES = {
    **RULE_CASES,
    "runs, gaps and a guard on the merge's result": (
        'rule scope score 90 mark 4: [neg] ~1 [!punct]+8 => set 1 mod=1 scale=0.75\n'
        'rule m2 score 120: [word] [] => merge; set 0 scale=1.5 mod=2\n'
        'rule m3 score 130: [word] [] [] => merge\n'
        'rule g score 400: [mod=2] [word] => guard\n'
        'rule mid score 20 mark 5: [word]+2 ~2 [stop] ~3 [word] => set 0 op=PUSH; set 2 op=EMIT',
        ["not the new york city is play ##ing !", "new york city run ##s , not play ##er ##s run", "not"]),
    # Winners by interference (§3): overlapping extents that write different fields win together
    "different fields": ('rule role score 40 mark 1: [sym="big"] [word] => set 1 mod=1\n'
                         'rule soft score 30 mark 2: [word] => set 0 scale=0.5', ["big red dog", "big big red"]),
    "same mark bit": ('rule role score 40 mark 1: [sym="big"] [word] => set 1 mod=1\n'
                      'rule soft score 30 mark 1: [word] => set 0 scale=0.5', ["big red dog", "big big red"]),
    "written field examined": ('rule role score 40 mark 1: [sym="big"] [op=ACC] => set 1 mod=1\n'
                               'rule quiet score 30 mark 2: [word] => set 0 op=NOP\n'
                               'rule moded score 35 mark 3: [sym="big"] [mod=0] => set 0 scale=2', ["big red dog"]),
    "windows in rounds": ('rule role score 40 mark 1: [word] [word] [word] => set 2 mod=1\n'
                          'rule g score 1: [mod=1] [mod=1] => guard', ["big red dog eats small blue cat food"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("tolerance", [0, 45, TOLERANCE_MAX])
def test_hand_written_cases(name, tolerance):
    rules, texts = CASES[name]
    alg = make_tiny(rules=parse(rules), params=LoopParams(max_steps=6, tolerance=tolerance, inhibit_steps=2),
                    transforms=2)
    gpu_agrees(alg, [ids(t) for t in texts], reference=True)


def test_guard_reverts_and_inhibits():
    rules = CASES["revert and inhibit"][0]
    alg = make_tiny(rules=parse(rules), params=LoopParams(max_steps=6, tolerance=0, inhibit_steps=2), transforms=2)
    _, bg = gpu_agrees(alg, [ids("cat dog")])
    # step 0: silencing "cat" creates a no_nop guard match (50 > 10): reverted; halve wins
    # the next step (silence inhibited), then silence's turn comes back and is reverted again.
    assert _step_journal(bg, 0, 0) == [(0, 0, 0, REVERTED)]
    assert _step_journal(bg, 0, 1) == [(0, 2, 0, COMMITTED)]
    assert bg.stats.reverted >= 1 and bg.stats.committed >= 1


def test_several_winners_commit_in_one_step():
    alg = make_tiny(params=LoopParams(max_steps=16, tolerance=1000, inhibit_steps=2))
    _, bg = gpu_agrees(alg, _ids(alg, ["new york city , the dog is playing !"]))
    first = _step_journal(bg, 0, 0)
    assert len(first) >= 4 and [rank for rank, *_ in first] == list(range(len(first)))
    assert [pos for _, _, pos, _ in first] == sorted(pos for _, _, pos, _ in first)
    assert all(outcome == COMMITTED for *_, outcome in first)


def test_winners_that_do_not_interfere_commit_together():
    rules, texts = CASES["different fields"]
    alg = make_tiny(rules=parse(rules), params=LoopParams(max_steps=6, tolerance=0, inhibit_steps=2), transforms=2)
    _, bg = gpu_agrees(alg, [ids(texts[0])], reference=True)
    # role at "big" (extent 0..1) writes mod of "red"; soft at "red" and "dog" write arg1
    assert _step_journal(bg, 0, 0) == [(0, 0, 0, COMMITTED), (1, 1, 1, COMMITTED), (2, 1, 2, COMMITTED)]
    rules, texts = CASES["same mark bit"]
    alg = make_tiny(rules=parse(rules), params=LoopParams(max_steps=6, tolerance=0, inhibit_steps=2), transforms=2)
    _, bg = gpu_agrees(alg, [ids(texts[0])], reference=True)
    assert [pos for _, _, pos, _ in _step_journal(bg, 0, 0)] == [0, 2]  # soft at "red" loses to role


def test_windows_take_turns_in_the_window_slot():
    # Six winners of three items each on eight items of a stream of eight: the health
    # check's windows do not fit the window slot at once.
    rules, texts = CASES["windows in rounds"]
    caps = Capacities(stream=8)
    alg = make_tiny(rules=parse(rules), params=LoopParams(max_steps=6, tolerance=0, inhibit_steps=2), transforms=2)
    _, bg = gpu_agrees(alg, [ids(texts[0])], caps=caps, reference=True)
    assert len(_step_journal(bg, 0, 0)) == 6


@pytest.mark.parametrize("journal", [1, 5, 12])
def test_full_journal_drops_the_last_winners(journal):
    caps = Capacities(journal=journal)
    alg = make_tiny(params=LoopParams(max_steps=16, tolerance=1000, inhibit_steps=2))
    stops = "the the the a an of and is was"  # nine winners of soften_stop in step 0
    _, bg = gpu_agrees(alg, _ids(alg, [stops, *TEXTS], caps), caps=caps)
    assert [rank for rank, *_ in _step_journal(bg, 0, 0)] == list(range(min(journal, 9)))
    assert bg.journal_len[: len(TEXTS) + 1].max() == journal


def test_small_capacities():
    caps = Capacities(stream=16, rules=8, pattern=3, gap=2, run=3, phrase=3, stack=2, steps=8, dim=16, journal=9)
    rules = parse('rule merge2 score 200: [word] [] => merge\n'
                  'rule push score 50: [op=ACC word] ~2 [word]+3 => set 0 op=PUSH; set 1 op=EMIT scale=0.5\n'
                  'rule g score 60: [op=PUSH] [op=EMIT] => guard')
    alg = make_tiny(rules=rules, params=LoopParams(max_steps=8, tolerance=5, inhibit_steps=1))
    gpu_agrees(alg, _ids(alg, TEXTS, caps), caps=caps, reference=True)


def test_many_rules_use_every_key_bit():
    """256 rules (the default capacity): rule indices above 31 in keys, inhibition and marks."""
    text = "\n".join(f'rule r{i} score {1 + (i * 37) % 300} mark {i % 32}: [sym="{WORDS[2 + i % 38]}"] '
                     f"=> set 0 scale={0.5 + (i % 5) / 4}" for i in range(254))
    text += '\nrule m score 200: [word] [] => merge\nrule g score 150: [op=ACC] [op=ACC] => guard'
    alg = make_tiny(rules=parse(text), params=LoopParams(max_steps=12, tolerance=20, inhibit_steps=3))
    bc, _ = gpu_agrees(alg, _ids(alg, TEXTS))
    assert (bc.journal["rule"][: len(TEXTS)] > 200).any()


# -- random Algorithms and token streams ---------------------------------------------------------

capacities = st.sampled_from([CAPS, CAPS, Capacities(journal=3), Capacities(stream=16, rules=8, journal=5)])


@settings(max_examples=40)
@given(algorithms(), st.lists(token_streams(24), max_size=6), capacities, st.sampled_from([None, 2]))
def test_random_algorithms_agree(alg, docs, caps, chunk):
    gpu_agrees(alg, docs, caps, chunk=chunk)


@settings(max_examples=10)
@given(algorithms(), st.lists(token_streams(24), max_size=4))
def test_random_algorithms_agree_with_the_reference(alg, docs):
    gpu_agrees(alg, docs, reference=True)


@settings(max_examples=15)
@given(algorithms(), st.lists(token_streams(24), max_size=4), st.integers(0, 6))
def test_a_step_limit_stops_the_loop_as_a_lower_max_steps_would(alg, docs, max_steps):
    from sae.gpu import GpuBackend

    gpu_agrees(alg, docs, reference=True, max_steps=max_steps)
    assert_step_limit_is_the_algorithms(GpuBackend, alg, docs, max_steps)


@pytest.mark.parametrize("per_dispatch", [1, 2, 32])
def test_a_step_limit_across_dispatches(monkeypatch, per_dispatch):
    """The limit is the loop bound the shader reads, whatever the steps per dispatch; the
    Algorithm's own bound is back for the next anneal."""
    from sae.gpu import GpuBackend

    alg = make_tiny(params=LoopParams(max_steps=8, tolerance=0, inhibit_steps=2))
    monkeypatch.setattr(GpuBackend, "_steps_per_dispatch", lambda self, width: per_dispatch)
    docs = _ids(alg, TEXTS)
    for max_steps in range(4):
        bc, _ = gpu_agrees(alg, docs, max_steps=max_steps)
        assert bc.stats.steps == max_steps  # the tiny rules still bid after three steps
        assert_step_limit_is_the_algorithms(GpuBackend, alg, docs, max_steps)


@settings(max_examples=10)
@given(st.lists(st.lists(st.sampled_from(WORDS[2:]), max_size=30), min_size=1, max_size=12))
def test_random_texts_agree(words):
    alg = make_tiny()
    gpu_agrees(alg, _ids(alg, [" ".join(w) for w in words]))


@pytest.mark.parametrize("per_dispatch", [1, 2, 5])
def test_steps_split_across_dispatches(monkeypatch, per_dispatch):
    """A CPU adapter runs a few steps a dispatch (lavapipe's loop limit); the state that
    carries over (DocState, inhibition, the stream) gives the same bytes as one dispatch."""
    from sae.gpu import GpuBackend

    rules, texts = CASES["revert and inhibit"]
    alg = make_tiny(rules=parse(rules + '\nrule m2 score 200: [word] [] => merge'),
                    params=LoopParams(max_steps=9, tolerance=0, inhibit_steps=2), transforms=2)
    monkeypatch.setattr(GpuBackend, "_steps_per_dispatch", lambda self, width: per_dispatch)
    _, bg = gpu_agrees(alg, [ids(t) for t in [*texts, "new york cat dog cat"]])
    assert bg.stats.reverted > 0 and bg.stats.steps > per_dispatch


def test_lavapipe_loop_limit_is_respected():
    """The pessimistic count of a step's loop iterations per thread stays under lavapipe's
    limit with the workgroup a CPU adapter gets; past any workgroup, a clear error."""
    from sae.gpu.budget import LAVAPIPE_LOOP_LIMIT, anneal_iterations, cpu_workgroup

    assert cpu_workgroup(make_tiny(), CAPS, 8) == 8
    many = "\n".join(f'rule r{i} score {1 + i}: [sym="{WORDS[2 + i % 38]}"] => set 0 scale=0.5' for i in range(250))
    alg = make_tiny(rules=parse(many + '\nrule m score 20: [word] [] => merge\nrule g score 9: [op=NOP] => guard'))
    wg = cpu_workgroup(alg, CAPS, 8)
    assert wg > 8  # more threads share the work
    assert anneal_iterations(alg, CAPS, CAPS.stream, wg) <= LAVAPIPE_LOOP_LIMIT


def test_beyond_lavapipe_loop_limit_is_a_clear_error(monkeypatch):
    from sae.errors import BackendUnavailableError
    from sae.gpu import GpuBackend
    from sae.gpu.budget import LAVAPIPE_LOOP_LIMIT

    gpu = GpuBackend(make_tiny(), CAPS)
    if not gpu.info.is_software:
        pytest.skip("the limit is lavapipe's")
    monkeypatch.setattr("sae.gpu.budget.anneal_iterations", lambda *a: LAVAPIPE_LOOP_LIMIT + 1)
    monkeypatch.setattr("sae.gpu.backend.anneal_iterations", lambda *a: LAVAPIPE_LOOP_LIMIT + 1)
    with pytest.raises(BackendUnavailableError, match="loop iterations per thread, more than this software adapter"):
        gpu._steps_per_dispatch(CAPS.stream)


def test_extreme_accumulators_normalize_as_on_the_numpy_path():
    """Found by fuzzing: the normalize pass summed the squares of an acc of largest component
    ~1e-34 (or ~1e21) in f32, which under- or overflowed: the zero vector or a norm of 1.001."""
    from equivalence import executed, extreme_accumulators

    from sae.cpu import CpuBackend
    from sae.gpu import GpuBackend
    from sae.layout import EMBEDDING_TOLERANCE

    for name, alg, docs in extreme_accumulators():
        gpu = executed(GpuBackend(alg, DEFAULT_CAPACITIES), alg, docs)[0]
        numpy_path = executed(CpuBackend(alg, DEFAULT_CAPACITIES), alg, docs)[0]
        assert np.abs(gpu - numpy_path).max() <= EMBEDDING_TOLERANCE, name


def test_an_overflow_that_cancels_is_the_zero_vector_on_every_path():
    """+inf and -inf in one component of acc: WGSL, numpy and the reference all give the
    zero vector (docs/ENGINE.md §5)."""
    from equivalence import cancelled_overflow

    alg, docs = cancelled_overflow()
    with np.errstate(over="ignore", invalid="ignore"):
        gpu_agrees(alg, docs, reference=True)


def test_embedding_after_a_step_limited_explanation_is_the_algorithms():
    """The record's max_steps is put back after a limited anneal: the embedding path, which
    reads the same record, runs the Algorithm's own steps."""
    from sae import Engine

    alg = make_tiny(params=LoopParams(max_steps=8, tolerance=0, inhibit_steps=2))
    engine = Engine(alg, backend="gpu")
    assert engine.explain(TEXTS[0], max_steps=1).final.size > 0
    assert engine.embed(TEXTS).tobytes() == Engine(alg, backend="gpu").embed(TEXTS).tobytes()
    assert engine.embed(TEXTS).tobytes() != Engine(
        make_tiny(params=LoopParams(max_steps=1, tolerance=0, inhibit_steps=2)), backend="gpu").embed(TEXTS).tobytes()
