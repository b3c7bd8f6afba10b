"""An engine in a process of its own, so inference does not share the server's interpreter lock.

The numpy path holds Python's GIL for most of a batch, and so do the event loop's
HTTP and gRPC handlers: in one process they take turns. A :class:`ProcessEngine`
runs ``Engine.embed_tokens`` in a child process (spawned, so no thread state is
forked) and looks to the batcher like any other worker: a blocking call that a
worker thread makes while the GIL is free.

A batch's token ids and its vectors travel through one block of shared memory that
both processes map (:class:`_SharedBatch`); the pipe carries only a few bytes per batch:
which block, how many texts and tokens, and back the engine's running counters. Sent
through the pipe instead, a ~530-text batch cost the engine process ~1.6 ms of its
~22 ms cycle: unpickling the ids, and writing ~0.8 MB of vectors that the server reads
in 64 KiB pieces (docs/SERVE.md).
"""

from __future__ import annotations

import atexit
import multiprocessing
import pickle
import signal
import threading
import time
from collections.abc import Sequence
from itertools import chain, pairwise
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np

from sae.engine import EngineCounters
from sae.layout import DEFAULT_CAPACITIES, Capacities


class _SharedBatch:
    """A block of shared memory holding one batch: ``tokens`` uint32 ids (the texts' ids
    one after another), ``texts`` uint32 lengths, and ``texts`` float32 vectors of ``dim``.

    The server creates blocks and writes the ids; the engine process maps the block it is
    told about and writes the vectors. One batch at a time, so neither side ever reads
    what the other is still writing.
    """

    def __init__(self, tokens: int, texts: int, dim: int, name: str | None = None) -> None:
        self.tokens, self.texts = tokens, texts
        size = 4 * (tokens + texts + texts * dim)
        self.memory = SharedMemory(name=name, create=name is None, size=size if name is None else 0)
        self.name = self.memory.name
        buf = self.memory.buf
        self.ids = np.ndarray((tokens,), dtype=np.uint32, buffer=buf)
        self.lengths = np.ndarray((texts,), dtype=np.uint32, buffer=buf, offset=4 * tokens)
        self.vectors = np.ndarray((texts, dim), dtype=np.float32, buffer=buf, offset=4 * (tokens + texts))

    def fits(self, tokens: int, texts: int) -> bool:
        return tokens <= self.tokens and texts <= self.texts

    def close(self, unlink: bool = False) -> None:
        del self.ids, self.lengths, self.vectors  # views of the mapping: it cannot close under them
        self.memory.close()
        if unlink:
            self.memory.unlink()


def _child(conn: Connection, algorithm: str | None, batch_size: int | None,
           caps: Capacities = DEFAULT_CAPACITIES) -> None:
    # The parent decides when this process ends (it drains first): ignore the signals a
    # terminal sends to the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from sae.blas import limit_to_one_thread
    from sae.engine import Engine

    try:
        # The engine processes are the parallelism: a BLAS thread per core in each of them
        # oversubscribed the cores (sae.blas).
        blas_threads = limit_to_one_thread()
        engine = Engine(algorithm, backend="cpu", batch_size=batch_size, threads=1, caps=caps)
        started = time.perf_counter()
        engine.warm_up()  # ready means fast: the first requests do not compute vector rows
        warm_up_seconds = time.perf_counter() - started
    except Exception as exc:
        conn.send_bytes(pickle.dumps(("error", f"{type(exc).__name__}: {exc}")))
        return
    conn.send_bytes(pickle.dumps(("ready", engine.algorithm.content_hash, engine.dim, blas_threads, warm_up_seconds)))
    block: _SharedBatch | None = None
    while True:
        try:
            message = conn.recv_bytes()
        except EOFError:  # the parent is gone
            break
        if not message:
            break
        name, tokens, texts, n, total, check = pickle.loads(message)
        try:
            if block is None or block.name != name:
                if block is not None:
                    block.close()
                block = _SharedBatch(tokens, texts, engine.dim, name)
            ids, bounds = block.ids[:total].copy(), [0, *np.cumsum(block.lengths[:n], dtype=np.int64).tolist()]
            token_ids = [ids[start:end] for start, end in pairwise(bounds)]
            block.vectors[:n] = engine.embed_tokens(token_ids, check=check)
        except Exception as exc:
            conn.send_bytes(pickle.dumps(("error", f"{type(exc).__name__}: {exc}")))
            continue
        conn.send_bytes(pickle.dumps(("ok", engine.counters_snapshot())))
    if block is not None:
        block.close()


class WorkerProcessError(RuntimeError):
    """The worker process failed a batch or died."""


def describe_exit(exitcode: int | None) -> str:
    """How a process ended, for a log line: ``exit code 1``, ``killed by SIGKILL``."""
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class ProcessEngine:
    """``embed_tokens`` and ``counters_snapshot`` of an Engine living in a child process.

    Not thread-safe: one batch at a time, as the batcher uses a worker.
    """

    def __init__(self, algorithm: str | Path | None, content_hash: str | None = None,
                 batch_size: int | None = None, caps: Capacities = DEFAULT_CAPACITIES) -> None:
        self._block: _SharedBatch | None = None
        #: set once close() begins: the child's exit from then on is no death
        self.closing = False
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_child, args=(child_conn, None if algorithm is None else str(algorithm), batch_size, caps),
            name="sae-engine", daemon=True,
        )
        self._process.start()
        child_conn.close()
        # The child ignores SIGTERM (the parent drains first), so multiprocessing's own exit
        # handler could not stop it: close it before that handler runs, whatever the exit path.
        atexit.register(self.close)
        self._counters = EngineCounters()
        self._lock = threading.Lock()
        try:
            kind, value, *ready = self._receive()
        except WorkerProcessError:
            self.close()  # its pipe too: a supervisor that retries would leak one a try
            raise WorkerProcessError(
                f"the engine process could not start: it died ({describe_exit(self.exitcode)})") from None
        if kind != "ready":
            self.close()
            raise WorkerProcessError(f"the engine process could not start: {value}")
        self.dim = ready[0]
        #: BLAS threads of the engine process (1; None where threadpoolctl is missing)
        self.blas_threads = ready[1]
        #: how long the engine process spent in ``Engine.warm_up`` before it was ready
        self.warm_up_seconds = ready[2]
        if content_hash is not None and value != content_hash:
            self.close()
            raise WorkerProcessError(f"the engine process loaded another Algorithm ({value[:12]}, "
                                     f"not {content_hash[:12]}): did {algorithm} change?")
        self.content_hash = value

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def sentinel(self) -> int:
        """A handle that becomes ready when the child ends (``multiprocessing.connection.wait``)."""
        return self._process.sentinel

    @property
    def exitcode(self) -> int | None:
        """The child's exit code, negative for a signal; None while it runs."""
        return self._process.exitcode

    def _died(self) -> WorkerProcessError:
        # The pipe closes as the child exits, a moment before it can be reaped: wait for
        # that moment, so the error (and the log) says how it ended.
        self._process.join(5)
        return WorkerProcessError(f"the engine process died ({describe_exit(self._process.exitcode)})")

    def _receive(self):
        # Only this process's own child writes to the pipe.
        try:
            return pickle.loads(self._conn.recv_bytes())
        except (EOFError, OSError):
            raise self._died() from None

    def _block_for(self, tokens: int, texts: int) -> _SharedBatch:
        """A block that holds the batch: the current one, or a new one twice as large."""
        block = self._block
        if block is None or not block.fits(tokens, texts):
            tokens, texts = max(tokens, 1 << 14), max(texts, 1 << 10)
            if block is not None:
                tokens, texts = max(tokens, 2 * block.tokens), max(texts, 2 * block.texts)
                block.close(unlink=True)  # the child keeps its mapping until the next batch names the new block
            self._block = block = _SharedBatch(tokens, texts, self.dim)
        return block

    def embed_tokens(self, token_ids: Sequence[Sequence[int]], *, check: bool = True) -> np.ndarray:
        """What ``Engine.embed_tokens`` gives, computed in the child process."""
        if self._conn.closed:
            raise WorkerProcessError("the engine process was closed")
        n = len(token_ids)
        lengths = np.fromiter(map(len, token_ids), dtype=np.uint32, count=n)
        total = int(lengths.sum())
        block = self._block_for(total, n)
        block.lengths[:n] = lengths
        block.ids[:total] = np.fromiter(chain.from_iterable(token_ids), dtype=np.uint32, count=total)
        try:
            self._conn.send_bytes(pickle.dumps((block.name, block.tokens, block.texts, n, total, check)))
        except OSError:
            raise self._died() from None
        kind, value = self._receive()
        if kind == "error":
            raise WorkerProcessError(f"the engine process failed a batch: {value}")
        with self._lock:
            self._counters = value
        return block.vectors[:n].copy()

    def counters_snapshot(self) -> EngineCounters:
        """The child engine's running totals, as of its last batch."""
        with self._lock:
            return self._counters

    def close(self) -> None:
        """Ask the child to exit; kill it if it has not within 10 s. Idempotent."""
        if self._conn.closed:
            return
        self.closing = True
        atexit.unregister(self.close)
        try:
            self._conn.send_bytes(b"")
        except OSError:
            pass
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()
        if self._block is not None:
            self._block.close(unlink=True)
            self._block = None
