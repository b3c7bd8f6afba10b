"""Dynamic batching: texts of concurrent requests share engine batches under a token budget.

A request's texts wait in one queue. When an inference worker is free, the batcher
waits until the queued texts fill the token budget or the oldest of them has waited
``max_wait`` seconds, then hands the worker the texts at the head of the queue, up to
the budget (a request may be split across batches). Each worker owns one engine, so
an engine never embeds two batches at once. Texts are embedded independently of
their batch, so batching changes no result.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

#: Seconds between looks at the workers while only restarting ones are idle (a restart
#: takes seconds; a batch, milliseconds).
READY_POLL = 0.05

#: One inference worker: token ids of a batch in, ``(n, dim)`` float32 vectors out.
EmbedTokens = Callable[[list[Sequence[int]]], np.ndarray]


class QueueFullError(Exception):
    """``max_queue`` requests are admitted already: answer 429 / RESOURCE_EXHAUSTED at once."""


class ShuttingDownError(Exception):
    """The batcher is closed and takes no new request: answer 503 / UNAVAILABLE."""


class BatchObserver(Protocol):
    """What the batcher reports (the service's metrics implement it)."""

    def queued(self, seconds: float) -> None:
        """A request's last text entered a batch ``seconds`` after the request arrived."""

    def batch(self, texts: int, tokens: int, seconds: float) -> None:
        """A batch of ``texts`` texts and ``tokens`` tokens was embedded in ``seconds``."""


@dataclass(eq=False)
class _Request:
    token_ids: Sequence[Sequence[int]]
    cost: list[int]  # running sum of the texts' token costs
    future: asyncio.Future
    arrived: float  # loop time
    out: np.ndarray
    taken: int = 0  # texts put into batches so far
    running: int = 0  # batches holding some of its texts that have not finished

    def remaining_cost(self) -> int:
        return self.cost[-1] - (self.cost[self.taken - 1] if self.taken else 0)


@dataclass(eq=False)
class _Batch:
    parts: list[tuple[_Request, int, int]] = field(default_factory=list)  # request, first text, end
    tokens: int = 0

    def token_ids(self) -> list[Sequence[int]]:
        return [ids for request, start, stop in self.parts for ids in request.token_ids[start:stop]]


#: What a worker reports when a batch is done: its vectors, or what it raised.
BatchDone = Callable[[np.ndarray | None, Exception | None], None]


class _WorkerThread:
    """One worker on a thread of its own, always the same (a GPU queue is not thread-safe)."""

    def __init__(self, embed: EmbedTokens, name: str) -> None:
        self.embed = embed
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    def submit(self, token_ids: list[Sequence[int]], done: BatchDone) -> None:
        """Embed on the worker's thread, which starts at once; ``done`` runs on the caller's loop."""
        self.jobs.put((asyncio.get_running_loop(), done, token_ids))

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join()

    def _serve(self) -> None:
        while (job := self.jobs.get()) is not None:
            loop, done, token_ids = job
            try:
                result = self.embed(token_ids)
            except Exception as exc:
                loop.call_soon_threadsafe(done, None, exc)
            else:
                loop.call_soon_threadsafe(done, result, None)


class Batcher:
    """Embeds the texts of concurrent requests in shared batches on ``workers``.

    ``workers`` are callables (one per engine; one for a GPU, whose queue is not
    thread-safe), each run on a thread of its own. Use from one event loop:
    :meth:`start` it there, ``await`` :meth:`embed` from request handlers, and
    :meth:`close` it to embed what is queued and stop. ``retired(i)`` says whether worker
    ``i``, whose batch just failed, fails for good (then it gets no more batches while
    another is left). ``ready(i)`` says whether worker ``i`` can start a batch now (an
    engine process being restarted cannot): a batch goes to a worker that is not ready
    only when none is.
    """

    def __init__(
        self,
        workers: Sequence[EmbedTokens],
        dim: int,
        *,
        max_batch_tokens: int,
        max_wait: float,
        max_queue: int,
        observer: BatchObserver | None = None,
        retired: Callable[[int], bool] | None = None,
        ready: Callable[[int], bool] | None = None,
    ) -> None:
        if not workers:
            raise ValueError("Batcher: at least one worker is needed")
        if max_batch_tokens < 1 or max_queue < 1 or max_wait < 0:
            raise ValueError(f"Batcher: bad limits (max_batch_tokens={max_batch_tokens}, "
                             f"max_queue={max_queue}, max_wait={max_wait})")
        self._workers = list(workers)
        self.dim = dim
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait
        self.max_queue = max_queue
        self._observer = observer
        self._retired = retired
        self._ready = ready
        self._waiting: collections.deque[_Request] = collections.deque()
        self._waiting_cost = 0
        self._admitted = 0
        self._idle = list(range(len(self._workers)))
        self._out: set[int] = set()  # retired workers, given no batches
        self._running: set[asyncio.Future] = set()  # one per batch in a worker, resolved when it is done
        self._changed: asyncio.Event | None = None
        self._dispatcher: asyncio.Task | None = None
        self._threads: list[_WorkerThread] = []
        self._draining = False  # dispatch without waiting for batches to fill
        self._closed = False  # take no new request
        self._live: set[_Request] = set()  # admitted, not answered: what cut() fails

    # -- state, for metrics and health

    @property
    def admitted(self) -> int:
        """Requests admitted and not answered yet (being tokenized, waiting for a batch or in one)."""
        return self._admitted

    @property
    def waiting(self) -> int:
        """Requests with texts not yet in a batch."""
        return len(self._waiting)

    # -- lifecycle

    def start(self) -> None:
        """Start dispatching; call from the event loop that will call :meth:`embed`."""
        if self._dispatcher is not None:
            raise RuntimeError("Batcher.start: already started")
        self._changed = asyncio.Event()
        self._threads = [_WorkerThread(w, f"sae-inference-{i}") for i, w in enumerate(self._workers)]
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch(), name="sae-batcher")

    def drain(self) -> None:
        """Stop waiting for batches to fill: a shutdown has begun and few requests will come."""
        self._draining = True
        self._wake()

    def cut(self) -> None:
        """Refuse new requests and fail every admitted one with :class:`ShuttingDownError` now
        (a shutdown that may not wait any longer); batches already in a worker run to their end."""
        self._closed = self._draining = True
        for request in self._live:
            if not request.future.done():
                request.future.set_exception(ShuttingDownError("the server is shutting down; the request was cut"))
                # Marked as retrieved: a handler cancelled meanwhile never reads it, and
                # asyncio would log it with a traceback.
                request.future.exception()
        self._wake()

    async def close(self) -> None:
        """Refuse new requests, embed every admitted one, and stop the workers."""
        self._closed = self._draining = True
        if self._dispatcher is None:
            return
        self._wake()
        await self._dispatcher
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        for thread in self._threads:
            thread.stop()  # idle by now: returns at once

    # -- requests

    def check_open(self) -> None:
        """Raise what :meth:`embed` would raise at once: before the work of preparing a request."""
        if self._closed or self._dispatcher is None:
            raise ShuttingDownError("the server is shutting down")
        if self._admitted >= self.max_queue:
            raise QueueFullError(f"the queue is full ({self.max_queue} requests); retry later")

    @contextlib.contextmanager
    def admission(self) -> Iterator[None]:
        """Count a request as admitted for the block: from its arrival, before the work of
        tokenizing it, to its answer. Raises what :meth:`check_open` raises."""
        self.check_open()
        self._admitted += 1
        try:
            yield
        finally:
            self._admitted -= 1

    async def embed(self, token_ids: Sequence[Sequence[int]], *, admitted: bool = False) -> np.ndarray:
        """``(len(token_ids), dim)`` float32 vectors of texts tokenized by ``Engine.tokenize``.

        Raises :class:`QueueFullError` at once when ``max_queue`` requests are admitted,
        :class:`ShuttingDownError` after :meth:`close`, and what the engine raised if
        its batch failed. ``admitted``: the caller holds the request's :meth:`admission`.
        """
        if not admitted:
            with self.admission():
                return await self.embed(token_ids, admitted=True)
        if self._closed:
            raise ShuttingDownError("the server is shutting down")
        out = np.empty((len(token_ids), self.dim), dtype=np.float32)
        if not token_ids:
            return out
        loop = asyncio.get_running_loop()
        # An empty text costs 1 so that a budget always bounds the texts of a batch.
        cost = list(itertools.accumulate(max(len(ids), 1) for ids in token_ids))
        request = _Request(token_ids, cost, loop.create_future(), loop.time(), out)
        self._live.add(request)
        try:
            self._waiting.append(request)
            self._waiting_cost += cost[-1]
            self._wake()
            # A cancelled await (the client went away) cancels the future; the
            # dispatcher then drops what of the request is still queued.
            return await request.future
        finally:
            self._live.discard(request)

    # -- dispatching

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def _wait_for_change(self, timeout: float | None = None) -> None:
        assert self._changed is not None
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        self._changed.clear()

    async def _dispatch(self) -> None:
        try:
            while True:
                self._drop_abandoned()
                if not self._waiting:
                    if self._closed:
                        return
                    await self._wait_for_change()
                    continue
                if not self._idle:
                    await self._wait_for_change()
                    continue
                worker = self._next_worker()
                if worker is None:
                    # Only restarting workers are idle: a busy one that serves wakes the loop
                    # when it is done; the poll notices a restart that finishes first.
                    await self._wait_for_change(READY_POLL)
                    continue
                delay = self._fill_delay()
                if delay > 0:
                    await self._wait_for_change(delay)
                    continue
                self._start(worker, self._take())
        except Exception as exc:  # a bug here would leave every request waiting forever
            log.exception("batcher stopped")
            self._closed = True
            for request in self._waiting:
                if not request.future.done():
                    request.future.set_exception(exc)
            raise

    def _fill_delay(self) -> float:
        """Seconds the next batch may still wait to fill: until the queued texts fill the
        budget or the oldest of them has waited ``max_wait`` (0 or less: start it now)."""
        if self._waiting_cost >= self.max_batch_tokens or self._draining:
            return 0.0
        return self._waiting[0].arrived + self.max_wait - asyncio.get_running_loop().time()

    def _drop_abandoned(self) -> None:
        """Forget queued requests that were cancelled or have failed already."""
        while self._waiting and self._waiting[0].future.done():
            self._waiting_cost -= self._waiting.popleft().remaining_cost()
        if any(r.future.done() for r in self._waiting):
            kept = [r for r in self._waiting if not r.future.done()]
            self._waiting_cost = sum(r.remaining_cost() for r in kept)
            self._waiting = collections.deque(kept)

    def _take(self) -> _Batch:
        """Texts from the head of the queue up to the token budget (at least one text)."""
        batch = _Batch()
        now = asyncio.get_running_loop().time()
        while self._waiting:
            request = self._waiting[0]
            start = request.taken
            before = request.cost[start - 1] if start else 0
            stop = bisect.bisect_right(request.cost, before + self.max_batch_tokens - batch.tokens, lo=start)
            if stop == start:
                if batch.parts:
                    break  # the budget is full
                stop = start + 1  # one text over the whole budget still gets a batch
            cost = request.cost[stop - 1] - before
            batch.parts.append((request, start, stop))
            batch.tokens += cost
            self._waiting_cost -= cost
            request.taken = stop
            request.running += 1
            if stop < len(request.token_ids):
                break  # the rest of this request goes into the next batch
            self._waiting.popleft()
            if self._observer is not None:
                self._observer.queued(now - request.arrived)
        return batch

    def _next_worker(self) -> int | None:
        """The idle worker to hand the next batch to, None to wait for one.

        A ready idle worker, the one that became idle last first (the order without
        ``ready``). A worker being restarted would hold the batch until its new
        engine process is up (seconds), so it gets one only when no worker, busy or idle,
        is ready; while a busy one is, the batch waits for it instead (milliseconds)."""
        if not self._idle:
            return None
        if self._ready is None:
            return self._idle[-1]
        for worker in reversed(self._idle):
            if self._ready(worker):
                return worker
        if any(self._ready(w) for w in range(len(self._workers)) if w not in self._out):
            return None
        return self._idle[-1]

    def _start(self, worker: int, batch: _Batch) -> None:
        """Hand ``batch`` to idle ``worker`` (:meth:`_next_worker`'s pick) now: its thread starts at once."""
        self._idle.remove(worker)
        token_ids = batch.token_ids()
        running = asyncio.get_running_loop().create_future()
        self._running.add(running)
        started = time.perf_counter()

        def done(vectors: np.ndarray | None, exc: Exception | None) -> None:
            try:
                self._finish(worker, batch, len(token_ids), started, vectors, exc)
            except Exception as bug:  # a bug here would leave this batch's requests waiting forever
                log.exception("batcher failed to finish a batch")
                for request, _, _ in batch.parts:
                    if not request.future.done():
                        request.future.set_exception(bug)
            finally:
                self._running.discard(running)
                running.set_result(None)

        self._threads[worker].submit(token_ids, done)

    def _return(self, worker: int, failed: bool) -> None:
        """Make ``worker`` idle again, unless its batch failed and it is retired for good.

        A retired worker (an engine process that is not restarted any more) fails every
        batch at once, so it would be idle first and take most of the batches; it is kept
        out while another worker is left, and the last one stays so that requests get its
        error rather than waiting for ever."""
        if failed and self._retired is not None and self._retired(worker) and self._serving_workers() > 1:
            self._out.add(worker)
            log.error("inference worker %d is retired: no batches are given to it any more", worker)
            return
        self._idle.append(worker)

    def _serving_workers(self) -> int:
        return len(self._workers) - len(self._out)

    def _finish(self, worker: int, batch: _Batch, texts: int, started: float, vectors: np.ndarray | None,
                exc: Exception | None) -> None:
        """A worker is done with ``batch`` (called on the loop): keep it busy, then answer.

        The freed worker takes the next batch before the requests of this one are
        answered: answering wakes their handlers, which would otherwise all run before
        the dispatcher does (at 64 clients the worker waited ~8 ms a batch for it).
        """
        seconds = time.perf_counter() - started
        self._return(worker, failed=exc is not None)
        self._drop_abandoned()
        if self._waiting and self._fill_delay() <= 0 and (free := self._next_worker()) is not None:
            self._start(free, self._take())
        if exc is not None:
            log.error("inference failed on a batch of %d texts", texts, exc_info=exc)
            for request, _, _ in batch.parts:
                request.running -= 1
                if not request.future.done():
                    request.future.set_exception(exc)
        else:
            assert vectors is not None
            row = 0
            for request, start, stop in batch.parts:
                request.out[start:stop] = vectors[row : row + stop - start]
                row += stop - start
                request.running -= 1
                finished = request.taken == len(request.token_ids) and request.running == 0
                if finished and not request.future.done():
                    request.future.set_result(request.out)
        if self._observer is not None:
            self._observer.batch(texts, batch.tokens, seconds)
        self._wake()
