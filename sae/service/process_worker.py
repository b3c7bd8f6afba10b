"""An engine in a process of its own, so inference does not share the server's interpreter lock.

The numpy path holds Python's GIL for most of a batch, and so do the event loop's
HTTP and gRPC handlers: in one process they take turns. A :class:`ProcessEngine`
runs ``Engine.embed_tokens`` in a child process (spawned, so no thread state is
forked) and looks to the batcher like any other worker: a blocking call that a
worker thread makes while the GIL is free. Token ids go to the child pickled, vectors
come back as raw float32 bytes, with the engine's running counters.
"""

from __future__ import annotations

import atexit
import multiprocessing
import pickle
import signal
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from sae.engine import EngineCounters


def _child(conn: Connection, algorithm: str | None, batch_size: int) -> None:
    # The parent decides when this process ends (it drains first): ignore the signals a
    # terminal sends to the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from sae.engine import Engine

    try:
        engine = Engine(algorithm, backend="cpu", batch_size=batch_size, threads=1)
    except Exception as exc:
        conn.send_bytes(pickle.dumps(("error", f"{type(exc).__name__}: {exc}")))
        return
    conn.send_bytes(pickle.dumps(("ready", engine.algorithm.content_hash)))
    while True:
        try:
            message = conn.recv_bytes()
        except EOFError:  # the parent is gone
            return
        if not message:
            return
        token_ids = pickle.loads(message)
        try:
            vectors = engine.embed_tokens(token_ids)
        except Exception as exc:
            conn.send_bytes(pickle.dumps(("error", f"{type(exc).__name__}: {exc}")))
            continue
        counters = engine.counters_snapshot()
        header = pickle.dumps(("ok", vectors.shape, counters))
        conn.send_bytes(header)
        conn.send_bytes(np.ascontiguousarray(vectors, dtype=np.float32).data)


class WorkerProcessError(RuntimeError):
    """The worker process failed a batch or died."""


class ProcessEngine:
    """``embed_tokens`` and ``counters_snapshot`` of an Engine living in a child process.

    Not thread-safe: one batch at a time, as the batcher uses a worker.
    """

    def __init__(self, algorithm: str | Path | None, content_hash: str | None = None, batch_size: int = 1024) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_child, args=(child_conn, None if algorithm is None else str(algorithm), batch_size),
            name="sae-engine", daemon=True,
        )
        self._process.start()
        child_conn.close()
        # The child ignores SIGTERM (the parent drains first), so multiprocessing's own exit
        # handler could not stop it: close it before that handler runs, whatever the exit path.
        atexit.register(self.close)
        self._counters = EngineCounters()
        self._lock = threading.Lock()
        kind, value = self._receive()
        if kind != "ready":
            self.close()
            raise WorkerProcessError(f"the engine process could not start: {value}")
        if content_hash is not None and value != content_hash:
            self.close()
            raise WorkerProcessError(f"the engine process loaded another Algorithm ({value[:12]}, "
                                     f"not {content_hash[:12]}): did {algorithm} change?")
        self.content_hash = value

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def _receive(self):
        # Only this process's own child writes to the pipe.
        try:
            return pickle.loads(self._conn.recv_bytes())
        except (EOFError, OSError):
            raise WorkerProcessError(f"the engine process died (exit code {self._process.exitcode})") from None

    def embed_tokens(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        """What ``Engine.embed_tokens`` gives, computed in the child process."""
        try:
            self._conn.send_bytes(pickle.dumps([list(ids) for ids in token_ids], protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            raise WorkerProcessError(f"the engine process died (exit code {self._process.exitcode})") from None
        kind, *rest = self._receive()
        if kind == "error":
            raise WorkerProcessError(f"the engine process failed a batch: {rest[0]}")
        shape, counters = rest
        try:
            data = self._conn.recv_bytes()
        except (EOFError, OSError):
            raise WorkerProcessError("the engine process died while answering") from None
        with self._lock:
            self._counters = counters
        return np.frombuffer(data, dtype=np.float32).reshape(shape).copy()

    def counters_snapshot(self) -> EngineCounters:
        """The child engine's running totals, as of its last batch."""
        with self._lock:
            return self._counters

    def close(self) -> None:
        """Ask the child to exit; kill it if it has not within 10 s. Idempotent."""
        if self._conn.closed:
            return
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
