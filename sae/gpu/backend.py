"""The WGSL backend: the annealing loop and the VM as compute passes (docs/GPU.md).

Buffers are created once per backend, sized for ``chunk`` documents; a batch with
more documents is processed chunk by chunk. Pipelines are created once per device
and capacities and shared by every backend on that device. One annealing run of a
chunk is: upload, ``bids`` and ``potential`` of the initial streams, then per step

    select, apply, bids, potential, health, apply, bids, potential

(``select`` finds every winner, the first ``apply`` applies them all, ``health``
judges each on the tentative stream's bids; the second ``apply`` rebuilds, from the
backup, the documents where a winner was reverted, with the committed winners only),
then one download. Passes skip documents with nothing to do, so a finished document
costs almost nothing.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from sae.algorithm import Algorithm
from sae.batch import ProgramBatch
from sae.errors import BackendUnavailableError
from sae.gpu.device import WORKGROUP, AdapterInfo, GpuError, choose_adapter, get_device
from sae.gpu.shaders import PASSES, numbered, scratch_layout, shader_source
from sae.profile import CPU_TIMED, GPU_TIMESTAMPS, Profiler, maybe_scope
from sae.layout import (
    COMMITTED,
    GPU_PARAMS,
    JOURNAL_ENTRY,
    PROGRAM_ITEM,
    REVERTED,
    Capacities,
    doc_state,
)

log = logging.getLogger(__name__)

#: Documents per chunk unless the adapter's limits ask for fewer.
DEFAULT_CHUNK = 1024
#: Annealing steps encoded per submission; between submissions the backend reads
#: back whether any document is still active and stops early when none is. A step
#: rewrites every place it can, so most documents finish within four (the default
#: Algorithm commits everything in steps 0-2 of the STS-B dev sentences and finds
#: nothing left in step 3); eight steps a submission spent half their time on
#: finished documents.
STEPS_PER_SUBMIT = 4
#: Compute passes of one annealing step (see ``_encode_step``).
PASSES_PER_STEP = 8
#: Timestamp queries: a begin and an end per pass of the largest submission.
TIMESTAMPS = 2 * (STEPS_PER_SUBMIT * PASSES_PER_STEP + 2)

# Bindings of shaders/common.wgsl: (binding, kind).
_BINDINGS = (
    ("params", "uniform"),
    ("rules", "read-only-storage"),
    ("tables", "read-only-storage"),
    ("floats", "read-only-storage"),
    ("items", "storage"),
    ("keys", "storage"),
    ("state", "storage"),
    ("journal", "storage"),
    ("embeddings", "storage"),
)


@dataclass
class _Pipelines:
    layout: Any  # the bind group layout every pass shares
    passes: dict[str, Any]


_pipeline_cache: dict[tuple[int, Capacities], _Pipelines] = {}


def _pipelines(device: Any, caps: Capacities) -> _Pipelines:
    """Compile every pass once per device and capacities."""
    import wgpu

    key = (id(device), caps)
    cached = _pipeline_cache.get(key)
    if cached is not None:
        return cached
    entries = []
    for i, (_, kind) in enumerate(_BINDINGS):
        entries.append(
            {"binding": i, "visibility": wgpu.ShaderStage.COMPUTE, "buffer": {"type": kind}}
        )
    layout = device.create_bind_group_layout(label="sae bindings", entries=entries)
    pipeline_layout = device.create_pipeline_layout(label="sae passes", bind_group_layouts=[layout])
    passes = {}
    for name in PASSES:
        source = shader_source(name, caps)
        try:
            module = device.create_shader_module(label=f"sae {name}.wgsl", code=source)
            passes[name] = device.create_compute_pipeline(
                label=f"sae {name}",
                layout=pipeline_layout,
                compute={"module": module, "entry_point": "main"},
            )
        except Exception as exc:
            if os.environ.get("SAE_SHADER_DEBUG"):
                log.error("shader %s failed to compile:\n%s", name, numbered(source))
            raise RuntimeError(
                f"shader {name}.wgsl failed to compile (set SAE_SHADER_DEBUG=1 to log its source): {exc}"
            ) from exc
    cached = _Pipelines(layout, passes)
    _pipeline_cache[key] = cached
    return cached


def _device_errors(method):
    """Turn wgpu's errors while running into one-line :class:`GpuError` errors."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        import wgpu

        try:
            return method(self, *args, **kwargs)
        except (wgpu.GPUError, RuntimeError) as exc:
            self._open = None
            self._pass_log.clear()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise GpuError(f"the GPU ({self.description}) failed in {method.__name__}: {first}") from exc

    return wrapper


def _nbytes(n: int) -> int:
    """A buffer size: at least 16 bytes, a multiple of 16."""
    return max(16, (n + 15) // 16 * 16)


class GpuBackend:
    """Implements :class:`sae.backend.Backend` with WGSL compute passes through wgpu.

    Args:
        alg (Algorithm): the Algorithm to run.
        caps (Capacities): the engine's capacities (compiled into the shaders).
        adapter (str | None): part of the adapter's name; default ``SAE_ADAPTER`` or
            the best-ranked adapter (see :mod:`sae.gpu.device`).
        chunk (int | None): documents per chunk on the device (default
            ``SAE_GPU_CHUNK`` or 1024; fewer when the adapter's buffer limits require it).
    """

    name = "gpu"
    concurrent_batches = False  # one queue and one set of device buffers
    #: set by the engine (``engine.profiler``); passes are then reported into it
    profiler: Profiler | None = None

    def __init__(
        self, alg: Algorithm, caps: Capacities, adapter: str | None = None, chunk: int | None = None
    ) -> None:
        if chunk is not None and chunk < 1:
            raise ValueError(f"GpuBackend: chunk must be >= 1, got {chunk}")
        self.alg, self.caps = alg, caps
        self.info: AdapterInfo = choose_adapter(adapter)
        self.description = f"{self.info.name} ({self.info.backend}, {self.info.device_type})"
        self.device = get_device(self.info)
        self.n_rules = len(alg.rules)
        self._rules_np = alg.compile_rules(caps)
        self._state_dtype = doc_state(caps)
        self.chunk = self._chunk_size(chunk)
        self._pipes = _pipelines(self.device, caps)
        self._create_buffers()
        self._upload_tables()
        self._create_timestamp_queries()
        self._pass_log: list[tuple[str, dict]] = []
        self._open: tuple[Any, Any] | None = None  # (encoder, compute pass) being recorded

    # -- sizes ------------------------------------------------------------------------
    def _per_doc_bytes(self) -> dict[str, int]:
        caps = self.caps
        return {
            "items": 2 * caps.stream * PROGRAM_ITEM.itemsize,  # stream + backup
            # bid keys, then the scratch area (sae.gpu.shaders.scratch_layout)
            "keys": (caps.stream * max(self.n_rules, 1) + scratch_layout(caps)["SCRATCH_WORDS"]) * 4,
            "state": self._state_dtype.itemsize,
            "journal": caps.journal * JOURNAL_ENTRY.itemsize,
            "embeddings": self.alg.dim * 4,
        }

    def _chunk_size(self, wanted: int | None) -> int:
        limits = self.info.limits
        binding = min(limits["max-storage-buffer-binding-size"], limits["max-buffer-size"])
        per_doc = self._per_doc_bytes()
        fits = min(binding // b for b in per_doc.values())
        # The staging buffer holds the largest download of a chunk.
        fits = min(fits, limits["max-buffer-size"] // max(self._download_bytes_per_doc(per_doc), 1))
        fits = min(fits, limits["max-compute-workgroups-per-dimension"])
        if fits < 1:
            raise BackendUnavailableError(
                f"{self.info.name}: a storage buffer of {binding} bytes cannot hold one document"
            )
        if wanted is None:
            env = os.environ.get("SAE_GPU_CHUNK")
            try:
                wanted = int(env) if env else DEFAULT_CHUNK
            except ValueError:
                raise ValueError(f"SAE_GPU_CHUNK must be a positive integer, got {env!r}") from None
            if wanted < 1:
                raise ValueError(f"SAE_GPU_CHUNK must be a positive integer, got {env!r}")
        chunk = min(wanted, fits)
        if wanted and chunk < wanted:
            log.info("GPU chunk reduced from %d to %d documents by the adapter's limits", wanted, chunk)
        return chunk

    @staticmethod
    def _download_bytes_per_doc(per_doc: dict[str, int]) -> int:
        anneal = per_doc["items"] // 2 + per_doc["state"] + per_doc["journal"]  # keys: bids()
        return max(anneal, per_doc["keys"], per_doc["embeddings"])

    # -- buffers (created once) -------------------------------------------------------
    def _buffer(self, name: str, size: int, usage: int) -> Any:
        return self.device.create_buffer(label=f"sae {name}", size=_nbytes(size), usage=usage)

    def _create_buffers(self) -> None:
        import wgpu

        alg, caps, c = self.alg, self.caps, self.chunk
        U = wgpu.BufferUsage  # noqa: N806
        storage = U.STORAGE | U.COPY_DST | U.COPY_SRC
        per_doc = self._per_doc_bytes()
        n_sym, n_phr = alg.n_symbols, alg.n_phrases
        self._table_words = n_phr * caps.phrase + n_phr + 2 * n_sym
        rows, dim = alg.vectors.shape
        float_bytes = 4 * (rows + rows * dim)
        limit = min(self.info.limits["max-storage-buffer-binding-size"], self.info.limits["max-buffer-size"])
        if float_bytes > limit:
            raise BackendUnavailableError(
                f"{self.info.name}: the Algorithm's vectors need {float_bytes} bytes, "
                f"more than the adapter's storage buffer limit of {limit} bytes"
            )
        b = {
            "params": self._buffer("params", GPU_PARAMS.itemsize, U.UNIFORM | U.COPY_DST),
            "rules": self._buffer("rules", max(self._rules_np.nbytes, self._rules_np.dtype.itemsize), storage),
            "tables": self._buffer("tables", 4 * self._table_words, storage),
            "floats": self._buffer("floats", float_bytes, storage),
        }
        for name, size in per_doc.items():
            b[name] = self._buffer(name, c * size, storage)
        self._staging_size = _nbytes(c * self._download_bytes_per_doc(per_doc))
        self._staging = self.device.create_buffer(
            label="sae staging", size=self._staging_size, usage=U.MAP_READ | U.COPY_DST
        )
        self.buffers = b
        self._bind_group = self.device.create_bind_group(
            label="sae bindings",
            layout=self._pipes.layout,
            entries=[
                {"binding": i, "resource": {"buffer": b[name], "offset": 0, "size": b[name].size}}
                for i, (name, _) in enumerate(_BINDINGS)
            ],
        )
        # Host-side staging arrays, also sized once.
        self._params = np.zeros((), dtype=GPU_PARAMS)
        self._state = np.zeros(c, dtype=self._state_dtype)

    def _upload_tables(self) -> None:
        alg, caps = self.alg, self.caps
        q = self.device.queue
        if len(self._rules_np):
            q.write_buffer(self.buffers["rules"], 0, self._rules_np.view(np.uint8))
        lexicon = alg.lexicon_keys(caps).reshape(-1)
        parts = [
            lexicon,
            alg.phrase_bonus.astype(np.uint32),
            alg.symbol_classes.astype(np.uint32),
            alg.symbol_rows.astype(np.uint32),
        ]
        offsets = np.cumsum([0] + [len(p) for p in parts])
        tables = np.concatenate(parts).astype(np.uint32)
        if tables.size:
            q.write_buffer(self.buffers["tables"], 0, tables)
        floats = np.concatenate([alg.weights.astype(np.float32), alg.vectors.astype(np.float32).reshape(-1)])
        q.write_buffer(self.buffers["floats"], 0, floats)
        p = self._params
        p["n_rules"] = max(self.n_rules, 1)
        p["vocab_size"] = alg.vocab_size
        p["n_phrases"] = alg.n_phrases
        p["dim"] = alg.dim
        p["tolerance"] = alg.params.tolerance
        p["inhibit_steps"] = alg.params.inhibit_steps
        p["backup_base"] = self.chunk * caps.stream
        p["scratch_base"] = self.chunk * caps.stream * p["n_rules"]
        p["off_lexicon"], p["off_bonus"], p["off_classes"], p["off_rows"] = offsets[:4]
        p["off_vectors"] = alg.weights.shape[0]
        p["reach"] = alg.reach

    def _create_timestamp_queries(self) -> None:
        """A query set and its two buffers, once, where the device has timestamp-query."""
        import wgpu

        self._query_set = self._ts_resolve = self._ts_read = None
        if "timestamp-query" not in self.device.features:
            return
        U = wgpu.BufferUsage  # noqa: N806
        self._query_set = self.device.create_query_set(label="sae pass timestamps", type="timestamp",
                                                       count=TIMESTAMPS)
        self._ts_resolve = self._buffer("timestamps", 8 * TIMESTAMPS, U.QUERY_RESOLVE | U.COPY_SRC)
        self._ts_read = self._buffer("timestamps readback", 8 * TIMESTAMPS, U.MAP_READ | U.COPY_DST)

    @property
    def buffer_bytes(self) -> int:
        """Bytes of every GPU buffer this backend holds (all created at construction)."""
        extra = [self._staging, self._ts_resolve, self._ts_read]
        return sum(int(b.size) for b in [*self.buffers.values(), *extra] if b is not None)

    # -- per chunk ----------------------------------------------------------------------
    def _chunks(self, batch: ProgramBatch):
        for start in range(0, batch.n, self.chunk):
            n = min(self.chunk, batch.n - start)
            lengths = batch.lengths[start : start + n]
            yield start, n, int(lengths.max()) if n else 0

    def _upload(self, batch: ProgramBatch, start: int, n: int, journal: bool) -> None:
        with maybe_scope(self.profiler, "upload", documents=n):
            self._upload_chunk(batch, start, n, journal)

    def _upload_chunk(self, batch: ProgramBatch, start: int, n: int, journal: bool) -> None:
        q = self.device.queue
        self._params["n_docs"] = n
        q.write_buffer(self.buffers["params"], 0, self._params.reshape(1).view(np.uint8))
        items = batch.items[start : start + n]
        q.write_buffer(self.buffers["items"], 0, items.view(np.uint8).reshape(-1))
        state = self._state[:n]
        state.fill(0)
        state["length"] = batch.lengths[start : start + n]
        state["live"] = 1
        state["dirty"] = 1
        if journal:
            state["journal_len"] = batch.journal_len[start : start + n]
            q.write_buffer(
                self.buffers["journal"], 0, batch.journal[start : start + n].view(np.uint8).reshape(-1)
            )
        q.write_buffer(self.buffers["state"], 0, state.view(np.uint8).reshape(-1))

    def _dispatch(self, encoder: Any, name: str, x: int, y: int = 1, **args: Any) -> None:
        """One dispatch of pass ``name``.

        Without a profiler, consecutive dispatches share one compute pass (WebGPU
        makes each dispatch's writes visible to the next), which costs the CPU ten
        times less to encode than a compute pass each. With a profiler, every
        dispatch gets its own compute pass and timestamps.
        """
        prof = self.profiler
        if prof is None:
            if self._open is None or self._open[0] is not encoder:
                self._end_pass()
                cp = encoder.begin_compute_pass(label="sae passes")
                cp.set_bind_group(0, self._bind_group)
                self._open = (encoder, cp)
            cp = self._open[1]
            cp.set_pipeline(self._pipes.passes[name])
            cp.dispatch_workgroups(x, y, 1)
            return
        self._end_pass()
        if self._query_set is None:
            self._dispatch_cpu_timed(prof, name, x, y, args)
            return
        writes = None
        if 2 * len(self._pass_log) + 2 <= TIMESTAMPS:
            i = 2 * len(self._pass_log)
            writes = {"query_set": self._query_set, "beginning_of_pass_write_index": i,
                      "end_of_pass_write_index": i + 1}
            self._pass_log.append((name, args))
        cp = encoder.begin_compute_pass(label=f"sae {name}", timestamp_writes=writes)
        cp.set_pipeline(self._pipes.passes[name])
        cp.set_bind_group(0, self._bind_group)
        cp.dispatch_workgroups(x, y, 1)
        cp.end()

    def _dispatch_cpu_timed(self, prof: Profiler, name: str, x: int, y: int, args: dict) -> None:
        """Without timestamp-query: submit the pass alone and wait for it."""
        prof.gpu_clock = CPU_TIMED
        enc = self.device.create_command_encoder(label=f"sae {name} (timed)")
        cp = enc.begin_compute_pass(label=f"sae {name}")
        cp.set_pipeline(self._pipes.passes[name])
        cp.set_bind_group(0, self._bind_group)
        cp.dispatch_workgroups(x, y, 1)
        cp.end()
        # Wait by mapping the staging buffer after a copy that follows the pass
        # (queue.on_submitted_work_done_sync fails in wgpu-py 0.32).
        enc.copy_buffer_to_buffer(self.buffers["state"], 0, self._staging, 0, 16)
        start = time.perf_counter_ns()
        self.device.queue.submit([enc.finish()])
        self._staging.map_sync("read", 0, 16)
        self._staging.unmap()
        prof.gpu_pass_cpu_timed(name, start, time.perf_counter_ns() - start, **args)

    def _end_pass(self) -> None:
        """End the shared compute pass, if one is being recorded."""
        if self._open is not None:
            self._open[1].end()
            self._open = None

    def _submit(self, encoder: Any) -> int:
        """Submit ``encoder`` (resolving its pass timestamps); returns the CPU time of submission."""
        self._end_pass()
        n = len(self._pass_log)
        if n:
            encoder.resolve_query_set(self._query_set, 0, 2 * n, self._ts_resolve, 0)
            encoder.copy_buffer_to_buffer(self._ts_resolve, 0, self._ts_read, 0, 16 * n)
        submitted = time.perf_counter_ns()
        self.device.queue.submit([encoder.finish()])
        return submitted

    def _report_passes(self, submitted_ns: int) -> None:
        """Read the timestamps of the last submission into the profiler."""
        n = len(self._pass_log)
        if not n or self.profiler is None:
            self._pass_log.clear()
            return
        self._ts_read.map_sync("read", 0, 16 * n)
        try:
            ticks = np.frombuffer(self._ts_read.read_mapped(0, 16 * n), dtype=np.uint64).reshape(n, 2)
        finally:
            self._ts_read.unmap()
        self.profiler.gpu_clock = GPU_TIMESTAMPS
        self.profiler.device = self.description
        # WebGPU timestamps are nanoseconds.
        self.profiler.gpu_passes(list(self._pass_log), [(int(b), int(e)) for b, e in ticks], submitted_ns)
        self._pass_log.clear()

    def _download(self, encoder: Any, regions: list[tuple[str, int]]) -> list[memoryview]:
        """Copy ``(buffer, bytes)`` prefixes into the staging buffer, submit, read them."""
        self._end_pass()
        offset, spans = 0, []
        for name, size in regions:
            if size:
                encoder.copy_buffer_to_buffer(self.buffers[name], 0, self._staging, offset, size)
            spans.append((offset, size))
            offset += (size + 7) // 8 * 8
        submitted = self._submit(encoder)
        total = max(offset, 8)
        with maybe_scope(self.profiler, "wait + readback", bytes=total):
            self._staging.map_sync("read", 0, total)
            try:
                data = self._staging.read_mapped(0, total)
            finally:
                self._staging.unmap()
        self._report_passes(submitted)
        return [data[o : o + s] for o, s in spans]

    # -- Backend ------------------------------------------------------------------------
    @_device_errors
    def bids(self, batch: ProgramBatch) -> np.ndarray:
        stream, n_rules = self.caps.stream, self.n_rules
        out = np.zeros((batch.n, stream, n_rules), dtype=np.uint32)
        if n_rules == 0:
            return out
        for start, n, max_len in self._chunks(batch):
            if max_len == 0:
                continue
            self._upload(batch, start, n, journal=False)
            enc = self.device.create_command_encoder(label="sae bids")
            self._dispatch(enc, "bids", n)
            (keys,) = self._download(enc, [("keys", n * stream * n_rules * 4)])
            keys = np.frombuffer(keys, dtype=np.uint32).reshape(n, stream, n_rules)
            # Keys at and after a document's length are never written: no bid there.
            live = np.arange(max_len)[None, :] < batch.lengths[start : start + n, None]
            out[start : start + n, :max_len] = np.where(live[..., None], keys[:, :max_len], 0)
        return out

    def _encode_step(self, enc: Any, n: int, step: int) -> None:
        # Keys and potential are current at every step but the first: those of the
        # tentative stream where every winner committed, else those of the rebuilt one.
        if step == 0:
            self._dispatch(enc, "bids", n, step=step)
            self._dispatch(enc, "potential", n, step=step)
        self._dispatch(enc, "select", n, step=step)
        # Every winner at once (the tentative stream), then each one judged.
        self._dispatch(enc, "apply", n, step=step, stream="tentative")
        self._dispatch(enc, "bids", n, step=step, stream="tentative")
        self._dispatch(enc, "potential", n, step=step, stream="tentative")
        self._dispatch(enc, "health", n, step=step)
        # Documents with a reverted winner: the backup with the committed winners only.
        self._dispatch(enc, "apply", n, step=step, stream="committed")
        self._dispatch(enc, "bids", n, step=step, stream="committed")
        self._dispatch(enc, "potential", n, step=step, stream="committed")

    @_device_errors
    def anneal(self, batch: ProgramBatch) -> None:
        steps = self.alg.params.max_steps
        if batch.n == 0 or batch.max_length() == 0 or self.n_rules == 0 or steps == 0:
            return
        item_bytes = self.caps.stream * PROGRAM_ITEM.itemsize
        journal_bytes = self.caps.journal * JOURNAL_ENTRY.itemsize
        state_bytes = self._state_dtype.itemsize
        for start, n, max_len in self._chunks(batch):
            if max_len == 0:
                continue
            self._upload(batch, start, n, journal=True)
            step = 0
            while step < steps:
                enc = self.device.create_command_encoder(label="sae anneal")
                last = min(step + STEPS_PER_SUBMIT, steps)
                for s in range(step, last):
                    self._encode_step(enc, n, s)
                step = last
                if step < steps:
                    (raw,) = self._download(enc, [("state", n * state_bytes)])
                    if not np.frombuffer(raw, dtype=self._state_dtype)["live"].any():
                        break
                else:
                    self._report_passes(self._submit(enc))
            enc = self.device.create_command_encoder(label="sae anneal results")
            items, state, journal = self._download(
                enc, [("items", n * item_bytes), ("state", n * state_bytes), ("journal", n * journal_bytes)]
            )
            sl = slice(start, start + n)
            batch.items[sl] = np.frombuffer(items, dtype=PROGRAM_ITEM).reshape(n, self.caps.stream)
            st = np.frombuffer(state, dtype=self._state_dtype)
            batch.lengths[sl] = st["length"]
            batch.journal_len[sl] = st["journal_len"]
            batch.journal[sl] = np.frombuffer(journal, dtype=JOURNAL_ENTRY).reshape(n, self.caps.journal)
            outcomes = batch.journal[sl]["outcome"]
            batch.stats.steps = max(batch.stats.steps, int(st["next_step"].max()))
            batch.stats.committed += int(np.count_nonzero(outcomes == COMMITTED))
            batch.stats.reverted += int(np.count_nonzero(outcomes == REVERTED))

    @_device_errors
    def execute(self, batch: ProgramBatch) -> np.ndarray:
        dim = self.alg.dim
        out = np.zeros((batch.n, dim), dtype=np.float32)
        for start, n, max_len in self._chunks(batch):
            if max_len == 0:
                continue  # every document is empty: zero vectors
            self._upload(batch, start, n, journal=False)
            enc = self.device.create_command_encoder(label="sae execute")
            self._dispatch(enc, "vm", -(-dim // WORKGROUP), n)
            self._dispatch(enc, "normalize", n)
            (emb,) = self._download(enc, [("embeddings", n * dim * 4)])
            out[start : start + n] = np.frombuffer(emb, dtype=np.float32).reshape(n, dim)
        return out


__all__ = ["GpuBackend"]
