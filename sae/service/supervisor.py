"""An engine process that is replaced when it dies: :class:`SupervisedEngine`.

The child of a :class:`~sae.service.process_worker.ProcessEngine` can die under the
server: the OOM killer, ``kill -9``, a crash in native code. A SupervisedEngine watches
it on a thread of its own and, when it dies, starts another at once, loading the same
Algorithm and checked against the same content hash (an Algorithm directory changed on
disk meanwhile fails the start with ProcessEngine's own error, it is not served). The
watcher does not wait for the next batch, so that a server which health checks took out
of rotation recovers without traffic. The batch that was in the child when it died fails
(its requests get the error); a batch handed to the worker while the new child starts
waits for it.

Restarts are bounded, so that a child that cannot live (a broken environment, a changed
Algorithm directory, too little memory to load it) does not spawn interpreters forever,
a second or more of CPU each. A *failure* is a start that did not come up, or a death
with no batch in flight. After :data:`MAX_FAILURES` failures within
:data:`FAILURE_WINDOW` seconds the worker gives up: it stays down, the health checks stay
bad, and one log line says so. A death with a batch in flight is not a failure: blamed on
the batch, it costs one restart, so a request that crashes the engine cannot take a
worker down for good by being retried.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from typing import Literal

import numpy as np

from sae.engine import EngineCounters
from sae.service.process_worker import ProcessEngine, WorkerProcessError, describe_exit

log = logging.getLogger(__name__)

#: Failures (starts that did not come up, deaths with no batch in flight) within
#: :data:`FAILURE_WINDOW` seconds after which a worker gives up.
MAX_FAILURES = 5
#: Ten minutes: wide enough that five failed starts fit in it even when each loads a large
#: Algorithm for tens of seconds before its hash check fails, and retries are spaced out.
FAILURE_WINDOW = 600.0
#: Seconds before the first retry of a failed start; each further retry waits twice as
#: long (1, 2, 4, 8 s). A death is followed by a start at once.
RETRY_DELAY = 1.0

#: ``ready``: a child serves; ``restarting``: one died and another is starting;
#: ``failed``: the restarts gave up; ``closed``: :meth:`SupervisedEngine.close` was called.
State = Literal["ready", "restarting", "failed", "closed"]


def _add(a: EngineCounters, b: EngineCounters) -> EngineCounters:
    return EngineCounters(*(getattr(a, f.name) + getattr(b, f.name) for f in dataclasses.fields(EngineCounters)))


class SupervisedEngine:
    """A :class:`ProcessEngine` whose child is replaced when it dies; a batcher worker like it.

    ``start`` makes a ProcessEngine (and raises
    :class:`~sae.service.process_worker.WorkerProcessError` when the child does not come
    up); it is called once here, where a failure is the caller's, and again for every
    restart. ``name`` names the worker in the log. The limits default to
    :data:`MAX_FAILURES`, :data:`FAILURE_WINDOW` and :data:`RETRY_DELAY`.

    Batches, restarts and :meth:`close` take turns on one lock.
    """

    def __init__(
        self,
        start: Callable[[], ProcessEngine],
        *,
        name: str = "worker",
        max_failures: int = MAX_FAILURES,
        failure_window: float = FAILURE_WINDOW,
        retry_delay: float = RETRY_DELAY,
    ) -> None:
        self._start = start
        self.name = name
        self.max_failures = max_failures
        self.failure_window = failure_window
        self.retry_delay = retry_delay
        engine = start()
        self.dim = engine.dim
        self.content_hash = engine.content_hash
        #: children started in place of one that died
        self.restarts = 0
        self.state: State = "ready"
        self._engine: ProcessEngine | None = engine  # None once the restarts gave up, or closed
        self._lock = threading.Lock()  # a batch, a restart or close: one at a time
        self._closed = threading.Event()
        self._failures: collections.deque[float] = collections.deque()  # monotonic times, in the window
        self._blamed: ProcessEngine | None = None  # a child that died with a batch in it
        # The totals of the children that died, and the child whose totals count on top of them:
        # switched together, so that a scrape during a restart never counts one child twice.
        self._counters_lock = threading.Lock()
        self._past = EngineCounters()
        self._counting: ProcessEngine | None = engine
        self._watcher = threading.Thread(target=self._watch, name=f"sae-engine-watch-{name}", daemon=True)
        self._watcher.start()

    @property
    def alive(self) -> bool:
        """A child is serving: not dead, not being replaced, not given up."""
        engine = self._engine
        return self.state == "ready" and engine is not None and engine.alive

    @property
    def pid(self) -> int | None:
        """The current child's process id (None once given up or closed)."""
        engine = self._engine
        return None if engine is None else engine.pid

    def embed_tokens(self, token_ids: Sequence[Sequence[int]], *, check: bool = True) -> np.ndarray:
        """What ``Engine.embed_tokens`` gives, computed by the current child.

        A child found dead is replaced first (the batch waits). Raises
        :class:`~sae.service.process_worker.WorkerProcessError` when the child fails the
        batch or dies in it, and when the restarts gave up.
        """
        with self._lock:
            engine = self._engine
            if engine is not None and not engine.alive and not self._closed.is_set():
                self._replace(engine)
                engine = self._engine
            if engine is None or self._closed.is_set():
                if self.state == "failed":
                    raise WorkerProcessError(f"{self.name}: the engine process kept failing and is not restarted "
                                             "any more; see the server log")
                raise WorkerProcessError("the engine process was closed")
            try:
                return engine.embed_tokens(token_ids, check=check)
            except WorkerProcessError:
                if engine.exitcode is not None:  # it died in this batch (ProcessEngine waited to reap it)
                    self._blamed = engine
                raise

    def counters_snapshot(self) -> EngineCounters:
        """The running totals of every child this worker has had, as of their last batches."""
        with self._counters_lock:
            current = self._counting
            return self._past if current is None else _add(self._past, current.counters_snapshot())

    def close(self) -> None:
        """Stop restarting and close the current child (waiting for a batch or a start in
        progress). Idempotent."""
        self._closed.set()  # first: a retry waiting out its delay gives up the lock at once
        with self._lock:
            engine, self._engine = self._engine, None
            self.state = "closed"
            if engine is not None:
                engine.close()  # its exit wakes the watcher, which sees the closed flag
        self._watcher.join()

    # -- the watcher

    def _watch(self) -> None:
        try:
            while (engine := self._engine) is not None:
                wait([engine.sentinel])
                with self._lock:
                    if self._closed.is_set():
                        return
                    if self._engine is not engine:
                        continue  # a batch found it dead first and replaced it
                    if engine.closing:
                        return  # closed by its own exit handler: the interpreter is exiting
                    self._replace(engine)
        except Exception:  # a bug here would leave the worker restarting for ever, silently
            log.exception("%s: the engine process watcher failed; the worker stays down", self.name)
            self.state = "failed"

    def _replace(self, dead: ProcessEngine) -> None:
        """Start a child in place of ``dead``, retrying failed starts; give up at the limit.
        Called with the lock held, so a batch given meanwhile waits for the new child."""
        in_batch = self._blamed is dead
        self._blamed = None
        dead.close()  # reaps it (its exit code), closes the pipe, unlinks the shared block
        with self._counters_lock:
            self._past = _add(self._past, dead.counters_snapshot())
            self._counting = None
        self.state = "restarting"
        how = describe_exit(dead.exitcode)
        log.warning("%s: the engine process (pid %s) died, %s, %s; starting another", self.name, dead.pid, how,
                    "with a batch in it (that batch failed)" if in_batch else "while idle")
        last_failure = f"the engine process died ({how})"
        if not in_batch:
            self._failures.append(time.monotonic())
        retries = 0
        while True:
            horizon = time.monotonic() - self.failure_window
            while self._failures and self._failures[0] <= horizon:
                self._failures.popleft()
            if len(self._failures) >= self.max_failures:
                self._engine, self.state = None, "failed"
                log.error("%s: %d engine process failures within %g s (the last: %s); not restarting it any more: "
                          "this worker stays down and the health checks fail until the server is restarted",
                          self.name, len(self._failures), self.failure_window, last_failure)
                return
            if retries and self._closed.wait(self.retry_delay * 2 ** (retries - 1)):
                return
            if self._closed.is_set():
                return
            started = time.monotonic()
            try:
                engine = self._start()
            except Exception as exc:  # an OSError of spawning as much as a child that did not come up
                self._failures.append(time.monotonic())
                retries += 1
                last_failure = str(exc)
                log.error("%s: starting an engine process in place of pid %s failed: %s", self.name, dead.pid, exc)
                continue
            self._engine = engine
            with self._counters_lock:
                self._counting = engine
            self.restarts += 1
            self.state = "ready"
            log.warning("%s: engine process pid %s started in %.1f s in place of pid %s (%s); %d restart(s) so far",
                        self.name, engine.pid, time.monotonic() - started, dead.pid, how, self.restarts)
            return
