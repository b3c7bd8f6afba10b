"""The batcher alone, with fake workers: budgets, waiting, splitting, back-pressure, draining."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sae.service.batcher import Batcher, QueueFullError, ShuttingDownError

DIM = 3


def fake_vectors(token_ids) -> np.ndarray:
    """A vector that names its text: (sum of ids, length, first id)."""
    return np.array([[sum(t), len(t), t[0] if t else -1] for t in token_ids], dtype=np.float32).reshape(-1, DIM)


class Recorder:
    """A worker that records every batch it got (and an observer that records the reports)."""

    def __init__(self, delay: float = 0.0, fail_on: int | None = None) -> None:
        self.batches: list[list[list[int]]] = []
        self.reports: list[tuple[int, int]] = []
        self.queued: list[float] = []
        self.delay = delay
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def __call__(self, token_ids):
        with self.lock:
            self.batches.append([list(t) for t in token_ids])
        if self.delay:
            time.sleep(self.delay)
        if self.fail_on is not None and any(self.fail_on in t for t in token_ids):
            raise RuntimeError("worker failed")
        return fake_vectors(token_ids)

    def batch(self, texts, tokens, seconds):
        self.reports.append((texts, tokens))

    def queued_(self, seconds):
        self.queued.append(seconds)


def make(recorder: Recorder, workers: int = 1, **kw) -> Batcher:
    kw.setdefault("max_batch_tokens", 100)
    kw.setdefault("max_wait", 0.0)
    kw.setdefault("max_queue", 100)
    observer = type("Obs", (), {"batch": lambda s, *a: recorder.batch(*a), "queued": lambda s, x: recorder.queued_(x)})()
    return Batcher([recorder] * workers, DIM, observer=observer, **kw)


def run(coro):
    return asyncio.run(coro)


def test_results_follow_their_requests_and_batches_share_requests():
    rec = Recorder()

    async def main():
        batcher = make(rec, max_wait=0.05)
        batcher.start()
        requests = [[[1, 2]], [[3], [4, 5, 6]], [[7]]]
        outs = await asyncio.gather(*(batcher.embed(r) for r in requests))
        await batcher.close()
        return requests, outs

    requests, outs = run(main())
    for request, out in zip(requests, outs):
        np.testing.assert_array_equal(out, fake_vectors(request))
    # The three requests arrived within the wait: one batch holds them all.
    assert len(rec.batches) == 1 and len(rec.batches[0]) == 4
    assert rec.reports == [(4, 2 + 1 + 3 + 1)]
    assert len(rec.queued) == 3


def test_token_budget_splits_a_request_across_batches():
    rec = Recorder()

    async def main():
        batcher = make(rec, max_batch_tokens=10)
        batcher.start()
        request = [[i] * 4 for i in range(1, 8)]  # 7 texts of 4 tokens: 2 per batch
        out = await batcher.embed(request)
        await batcher.close()
        return request, out

    request, out = run(main())
    np.testing.assert_array_equal(out, fake_vectors(request))
    assert [len(b) for b in rec.batches] == [2, 2, 2, 1]
    assert all(sum(len(t) for t in b) <= 10 for b in rec.batches)


def test_a_text_over_the_whole_budget_gets_a_batch_of_its_own():
    rec = Recorder()

    async def main():
        batcher = make(rec, max_batch_tokens=3)
        batcher.start()
        out = await batcher.embed([[1] * 5, [2]])
        await batcher.close()
        return out

    out = run(main())
    np.testing.assert_array_equal(out, fake_vectors([[1] * 5, [2]]))
    assert [len(b) for b in rec.batches] == [1, 1]


def test_empty_texts_cost_one_token_and_embed():
    rec = Recorder()

    async def main():
        batcher = make(rec, max_batch_tokens=2)
        batcher.start()
        out = await batcher.embed([[], [], []])
        await batcher.close()
        return out

    out = run(main())
    assert out.shape == (3, DIM)
    assert [len(b) for b in rec.batches] == [2, 1]


def test_the_first_text_waits_at_most_max_wait_for_company():
    rec = Recorder()

    async def main():
        batcher = make(rec, max_wait=0.3)
        batcher.start()
        started = time.perf_counter()
        first = asyncio.ensure_future(batcher.embed([[1]]))
        await asyncio.sleep(0.05)
        await batcher.embed([[2]])  # joins the first one's batch
        await first
        elapsed = time.perf_counter() - started
        await batcher.close()
        return elapsed

    elapsed = run(main())
    assert len(rec.batches) == 1
    assert 0.25 < elapsed < 5


def test_a_free_worker_takes_the_next_batch_before_the_last_one_is_answered():
    rec = Recorder(delay=0.05)

    async def main():
        batcher = make(rec)
        batcher.start()

        async def second():
            await asyncio.sleep(0.01)  # the first batch is in the worker by now
            return await batcher.embed([[3]])

        queued = asyncio.ensure_future(second())
        await batcher.embed([[1, 2]])  # this handler resumes as soon as its batch is answered
        waiting_when_answered = batcher.waiting
        await queued
        await batcher.close()
        return waiting_when_answered

    # The worker already had the second request when the first one's handler ran.
    assert run(main()) == 0
    assert rec.batches == [[[1, 2]], [[3]]]


def test_a_full_budget_does_not_wait():
    rec = Recorder()

    async def main():
        batcher = make(rec, max_wait=30, max_batch_tokens=4)
        batcher.start()
        started = time.perf_counter()
        await batcher.embed([[1, 2], [3, 4]])
        elapsed = time.perf_counter() - started
        await batcher.close()
        return elapsed

    assert run(main()) < 5


def test_a_full_queue_is_refused_at_once_and_the_admitted_requests_finish():
    rec = Recorder()

    async def main():
        batcher = make(rec, max_wait=0.5, max_queue=2, max_batch_tokens=1000)
        batcher.start()
        admitted = [asyncio.ensure_future(batcher.embed([[i]])) for i in (1, 2)]
        await asyncio.sleep(0)
        assert batcher.admitted == 2
        started = time.perf_counter()
        with pytest.raises(QueueFullError):
            await batcher.embed([[3]])
        refused_after = time.perf_counter() - started
        outs = await asyncio.gather(*admitted)
        await batcher.close()
        return refused_after, outs

    refused_after, outs = run(main())
    assert refused_after < 0.1
    assert [o[0, 0] for o in outs] == [1, 2]


def test_close_embeds_what_was_admitted_then_refuses():
    rec = Recorder()

    async def main():
        batcher = make(rec, max_wait=30, max_batch_tokens=1000)  # would wait 30 s without a close
        batcher.start()
        pending = asyncio.ensure_future(batcher.embed([[5, 6]]))
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        await batcher.close()
        out = await pending
        with pytest.raises(ShuttingDownError):
            await batcher.embed([[1]])
        return out, time.perf_counter() - started

    out, elapsed = run(main())
    np.testing.assert_array_equal(out, fake_vectors([[5, 6]]))
    assert elapsed < 5


def test_cut_fails_every_admitted_request_at_once_and_embeds_no_more():
    gate = threading.Event()
    batches = []

    def held(token_ids):  # the first batch stays in its worker until the gate opens
        batches.append(token_ids)
        gate.wait(10)
        return fake_vectors(token_ids)

    async def main():
        batcher = Batcher([held], DIM, max_batch_tokens=2, max_wait=0.0, max_queue=100)
        batcher.start()
        running = asyncio.ensure_future(batcher.embed([[1, 2]]))  # fills the budget: in the worker
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(batcher.embed([[3]]))
        await asyncio.sleep(0.01)
        batcher.cut()
        results = await asyncio.gather(running, queued, return_exceptions=True)
        assert batcher.admitted == 0
        with pytest.raises(ShuttingDownError):
            await batcher.embed([[4]])
        gate.set()
        await batcher.close()  # waits for the batch in the worker; embeds nothing more
        return results

    results = run(main())
    assert all(isinstance(r, ShuttingDownError) for r in results), results
    assert batches == [[[1, 2]]]


def test_a_failing_batch_fails_its_requests_only():
    rec = Recorder(fail_on=99)

    async def main():
        batcher = make(rec)
        batcher.start()
        with pytest.raises(RuntimeError, match="worker failed"):
            await batcher.embed([[99]])
        out = await batcher.embed([[1]])  # the batcher goes on
        await batcher.close()
        return out

    np.testing.assert_array_equal(run(main()), fake_vectors([[1]]))


def test_a_cancelled_request_leaves_the_queue():
    rec = Recorder(delay=0.2)

    async def main():
        batcher = make(rec, max_batch_tokens=1)
        batcher.start()
        first = asyncio.ensure_future(batcher.embed([[1]]))  # occupies the only worker
        await asyncio.sleep(0.05)
        doomed = asyncio.ensure_future(batcher.embed([[2], [3], [4]]))
        await asyncio.sleep(0.01)
        doomed.cancel()
        await first
        out = await batcher.embed([[5]])
        await batcher.close()
        return out

    np.testing.assert_array_equal(run(main()), fake_vectors([[5]]))
    embedded = [t[0] for b in rec.batches for t in b]
    assert 3 not in embedded and 4 not in embedded


def test_workers_embed_side_by_side():
    rec = Recorder(delay=0.3)

    async def main():
        batcher = make(rec, workers=2, max_batch_tokens=1)
        batcher.start()
        started = time.perf_counter()
        await asyncio.gather(batcher.embed([[1]]), batcher.embed([[2]]))
        elapsed = time.perf_counter() - started
        await batcher.close()
        return elapsed

    assert run(main()) < 0.55  # two batches of 0.3 s at once, not one after the other


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="at least one worker"):
        Batcher([], DIM, max_batch_tokens=1, max_wait=0, max_queue=1)
    with pytest.raises(ValueError, match="bad limits"):
        Batcher([fake_vectors], DIM, max_batch_tokens=0, max_wait=0, max_queue=1)


@settings(max_examples=40)
@given(
    requests=st.lists(st.lists(st.lists(st.integers(1, 50), max_size=12), min_size=1, max_size=9), min_size=1,
                      max_size=12),
    budget=st.integers(1, 40),
    workers=st.integers(1, 3),
    wait=st.sampled_from([0.0, 0.002]),
)
def test_any_mix_of_requests_gets_its_own_vectors(requests, budget, workers, wait):
    rec = Recorder()

    async def main():
        batcher = make(rec, workers=workers, max_batch_tokens=budget, max_wait=wait)
        batcher.start()
        outs = await asyncio.gather(*(batcher.embed(r) for r in requests))
        await batcher.close()
        return outs

    outs = run(main())
    for request, out in zip(requests, outs):
        np.testing.assert_array_equal(out, fake_vectors(request))
    texts = sum(len(r) for r in requests)
    assert sum(len(b) for b in rec.batches) == texts  # every text embedded exactly once
    for b in rec.batches:
        cost = sum(max(len(t), 1) for t in b)
        assert cost <= budget or len(b) == 1


class GivenUp:
    """A worker whose engine is not restarted any more: every batch fails at once."""

    def __init__(self) -> None:
        self.calls = self.texts = 0

    def __call__(self, token_ids):
        self.calls += 1
        self.texts += len(token_ids)
        raise RuntimeError("not restarted any more")


def test_a_retired_worker_gets_no_more_batches_while_another_serves():
    dead, alive = GivenUp(), Recorder(delay=0.01)
    batcher = Batcher([dead, alive], DIM, max_batch_tokens=2, max_wait=0.0, max_queue=100,
                      retired=lambda worker: worker == 0)

    async def main():
        batcher.start()
        results = await asyncio.gather(*(batcher.embed([[i + 1]]) for i in range(40)), return_exceptions=True)
        await batcher.close()
        return results

    results = run(main())
    failed = [r for r in results if isinstance(r, Exception)]
    # Without the retirement the failing worker, idle at once after each batch, takes most of them.
    assert dead.calls == 1 and len(failed) == dead.texts == 2  # its one batch: two texts of one token
    assert sum(len(b) for b in alive.batches) == 38


def test_the_last_worker_is_never_retired_so_requests_fail_rather_than_wait():
    dead = GivenUp()
    batcher = Batcher([dead], DIM, max_batch_tokens=2, max_wait=0.0, max_queue=100, retired=lambda worker: True)

    async def main():
        batcher.start()
        results = await asyncio.wait_for(
            asyncio.gather(*(batcher.embed([[i + 1]]) for i in range(5)), return_exceptions=True), 60)
        await batcher.close()
        return results

    assert all(isinstance(r, RuntimeError) for r in run(main()))
    assert dead.texts == 5


class Restarting:
    """A worker whose engine process is being restarted: a batch waits until ``up`` is set."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.texts = 0

    def __call__(self, token_ids):
        assert self.up.wait(60)
        self.texts += len(token_ids)
        return fake_vectors(token_ids)


def test_batches_go_to_a_ready_worker_while_another_restarts():
    restarting, serving = Restarting(), Recorder(delay=0.005)
    batcher = Batcher([restarting, serving], DIM, max_batch_tokens=2, max_wait=0.0, max_queue=100,
                      ready=lambda worker: worker == 1 or restarting.up.is_set())

    async def main():
        batcher.start()
        # Without ``ready`` the restarting worker, idle, takes a batch and holds it until it is up.
        results = await asyncio.wait_for(asyncio.gather(*(batcher.embed([[i + 1]]) for i in range(30))), 60)
        restarting.up.set()
        await batcher.close()
        return results

    results = run(main())
    assert [r[0, 0] for r in results] == [i + 1 for i in range(30)]
    assert restarting.texts == 0 and sum(len(b) for b in serving.batches) == 30


def test_a_restarting_worker_gets_the_batch_when_no_worker_is_ready():
    restarting = Restarting()
    batcher = Batcher([restarting], DIM, max_batch_tokens=2, max_wait=0.0, max_queue=100,
                      ready=lambda worker: restarting.up.is_set())

    async def main():
        batcher.start()
        pending = asyncio.ensure_future(batcher.embed([[7]]))
        while batcher.waiting:  # handed to the worker, not held back
            await asyncio.sleep(0.01)
        assert not pending.done()
        restarting.up.set()
        result = await asyncio.wait_for(pending, 60)
        await batcher.close()
        return result

    assert run(main())[0, 0] == 7 and restarting.texts == 1
