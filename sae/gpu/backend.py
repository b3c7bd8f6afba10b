"""The WGSL backend: the annealing loop and the VM as compute passes (docs/GPU.md).

Buffers are created once per backend, sized for ``chunk`` documents; a batch with
more documents is processed chunk by chunk. Pipelines are created once per device
and capacities and shared by every backend on that device. Annealing a chunk is one
dispatch of the ``anneal`` pass: one workgroup per document runs every step of the
loop and stops when its document is finished, so no step costs a host round trip.
Executing is one dispatch of ``vm`` (the VM and the normalization).
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
from sae.gpu.device import AdapterInfo, GpuError, choose_adapter, get_device
from sae.gpu.shaders import ITEM_SLOTS, PASSES, VM_BLOCK, numbered, scratch_layout, shader_source, workgroup_bytes
from sae.layout import (
    ALG_RECORD,
    GPU_MODE_JOURNAL,
    GPU_PARAMS,
    JOURNAL_ENTRY,
    PROGRAM_ITEM,
    Capacities,
    doc_state,
)
from sae.profile import CPU_TIMED, GPU_TIMESTAMPS, Profiler, maybe_scope

log = logging.getLogger(__name__)

#: Documents per chunk unless the adapter's limits ask for fewer.
DEFAULT_CHUNK = 1024
#: Timestamp queries: a begin and an end per pass of the largest submission.
TIMESTAMPS = 2 * 80
#: Mesa's llvmpipe (lavapipe) ends a shader invocation's loops after this many
#: iterations in all (LP_MAX_TGSI_LOOP_ITERATIONS); see anneal_iterations().
LAVAPIPE_LOOP_LIMIT = 65535 - 5535  # with a margin for the counts below

# Bindings of shaders/common.wgsl: (binding, kind).
_BINDINGS = (
    ("params", "uniform"),
    ("rules", "read-only-storage"),
    ("tables", "read-only-storage"),
    ("floats", "read-only-storage"),
    ("items", "storage"),
    ("scratch", "storage"),
    ("state", "storage"),
    ("journal", "storage"),
    ("embeddings", "storage"),
)


@dataclass
class _Pipelines:
    layout: Any  # the bind group layout every pass shares
    passes: dict[str, Any]


_pipeline_cache: dict[tuple[int, Capacities, int], _Pipelines] = {}


def _pipelines(device: Any, caps: Capacities, workgroup: int) -> _Pipelines:
    """Compile every pass once per device, capacities and workgroup size."""
    import wgpu

    key = (id(device), caps, workgroup)
    cached = _pipeline_cache.get(key)
    if cached is not None:
        return cached
    entries = []
    for i, (_, kind) in enumerate(_BINDINGS):
        entries.append({"binding": i, "visibility": wgpu.ShaderStage.COMPUTE, "buffer": {"type": kind}})
    layout = device.create_bind_group_layout(label="sae bindings", entries=entries)
    pipeline_layout = device.create_pipeline_layout(label="sae passes", bind_group_layouts=[layout])
    passes = {}
    for name in PASSES:
        source = shader_source(name, caps, workgroup)
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


def dim4(dim: int) -> int:
    """vec4s per embedding row (rows are padded with zeros to whole vec4s)."""
    return (dim + 3) // 4


def float_table(alg: Algorithm) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The float buffer as ``(n, 4)`` float32 rows, and the vec4 offsets of its parts.

    Weights, four a row; the vectors, each padded to whole vec4s; per transform, the
    rows of ``T`` padded the same way, then ``t`` (shaders/vm.wgsl reads this layout).
    """
    rows, dim = alg.vectors.shape
    n4 = dim4(dim)
    weights = np.zeros(4 * -(-rows // 4), dtype=np.float32)
    weights[:rows] = alg.weights
    vectors = np.zeros((rows, 4 * n4), dtype=np.float32)
    vectors[:, :dim] = alg.vectors
    tr = alg.transforms.astype(np.float32)
    transforms = np.zeros((tr.shape[0], dim + 1, 4 * n4), dtype=np.float32)
    transforms[:, :dim, :dim] = tr[:, :, :dim]
    transforms[:, dim, :dim] = tr[:, :, dim]
    parts = [weights.reshape(-1, 4), vectors.reshape(-1, 4), transforms.reshape(-1, 4)]
    offsets = np.cumsum([0] + [len(p) for p in parts])
    return np.concatenate(parts), (int(offsets[0]), int(offsets[1]), int(offsets[2]))


def match_iterations(alg: Algorithm, caps: Capacities) -> int:
    """Loop iterations one match may take at most (common.wgsl: place, the lexicon search)."""
    worst = 1
    lexicon = (max(alg.n_phrases, 1).bit_length() + 1) * (caps.phrase + 1)
    for rule in alg.rules:
        n = 1 + sum(el.gap + max(el.run, 1) + 1 for el in rule.pattern)
        if rule.kind == "merge":
            n += len(rule.pattern) + lexicon
        worst = max(worst, n)
    return worst


def anneal_iterations(alg: Algorithm, caps: Capacities, width: int, workgroup: int) -> int:
    """A pessimistic count of the loop iterations one thread of the anneal pass runs in one
    step on documents of ``width`` items (shaders/anneal.wgsl, phase by phase)."""
    def per_thread(n: int) -> int:
        return -(-n // workgroup)

    rules, reach = max(len(alg.rules), 1), alg.reach
    match = match_iterations(alg, caps) + 2
    winners = min(width, caps.journal)
    search = winners.bit_length() + 1  # a binary search over the winners
    count = per_thread(width * rules) * match  # bids
    count += per_thread(width) * (match + reach + 3)  # extents, winners
    count += width + per_thread(rules)  # ranks, inhibition
    count += per_thread(winners) * ((reach + 1) * 10 + match * caps.pattern)  # windows
    if any(rule.kind == "guard" for rule in alg.rules):
        triples = (width + winners * reach) * 2 * rules
        count += per_thread(triples) * (match + search)
    count += per_thread(winners) * 2 + winners  # judge, the committed list
    count += per_thread(width) * (search + 10) + per_thread(width * 10)  # apply, the tail
    return count + 8


def cpu_workgroup(alg: Algorithm, caps: Capacities, smallest: int) -> int:
    """Threads per workgroup on a CPU adapter: ``smallest`` (one SIMD group), or more when a
    step on full-length documents could exceed lavapipe's loop limit per thread."""
    workgroup = smallest
    while workgroup < 256 and anneal_iterations(alg, caps, caps.stream, workgroup) > LAVAPIPE_LOOP_LIMIT:
        workgroup *= 2
    return workgroup


def alg_record(alg: Algorithm, rule_base: int = 0) -> np.ndarray:
    """The :data:`~sae.layout.ALG_RECORD` of one Algorithm whose rules start at ``rule_base``."""
    rec = np.zeros((), dtype=ALG_RECORD)
    kinds = [rule.kind for rule in alg.rules]
    rec["rule_base"] = rule_base
    rec["n_rules"] = len(alg.rules)
    rec["max_steps"] = alg.params.max_steps
    rec["tolerance"] = alg.params.tolerance
    rec["inhibit_steps"] = alg.params.inhibit_steps
    rec["reach"] = alg.reach
    rec["guards"] = int("guard" in kinds)
    rec["rewrites"] = int(any(k != "guard" for k in kinds))
    return rec


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
        self.workgroup = self.info.workgroup
        if self.info.is_software:
            self.workgroup = cpu_workgroup(alg, caps, self.workgroup)
        need = workgroup_bytes(caps, self.workgroup)
        have = int(self.info.limits.get("max-compute-workgroup-storage-size", 0))
        if need > have:
            raise BackendUnavailableError(
                f"{self.info.name}: capacities {caps.stream} positions and {caps.rules} rules need {need} bytes "
                f"of workgroup memory, the adapter has {have}"
            )
        self.device = get_device(self.info)
        self.n_rules = len(alg.rules)
        self._rules_np = alg.compile_rules(caps)
        self._state_dtype = doc_state(caps)
        self._scratch_words = scratch_layout(caps)["SCRATCH_WORDS"]
        # The float buffer's contents: built once, uploaded, then dropped (a copy of the vectors).
        self._floats, self._float_offsets = float_table(alg)
        self._check_floats()
        self.chunk = self._chunk_size(chunk)
        self._pipes = _pipelines(self.device, caps, self.workgroup)
        self._create_buffers()
        self._upload_tables()
        self._create_timestamp_queries()
        self._pass_log: list[tuple[str, dict]] = []
        self._open: tuple[Any, Any] | None = None  # (encoder, compute pass) being recorded
        self._epoch = 0  # Params.epoch of the last anneal

    # -- sizes ------------------------------------------------------------------------
    def _binding_limit(self) -> int:
        limits = self.info.limits
        return min(limits["max-storage-buffer-binding-size"], limits["max-buffer-size"])

    def _check_floats(self) -> None:
        need, limit = self._floats.nbytes, self._binding_limit()
        if need > limit:
            alg = self.alg
            raise BackendUnavailableError(
                f"{self.info.name}: the Algorithm's weights, vectors {alg.vectors.shape} and transforms "
                f"{alg.transforms.shape} need {need} bytes in one storage buffer binding, more than the "
                f"adapter's limit of {limit} bytes"
            )

    def _per_doc_bytes(self) -> dict[str, int]:
        caps = self.caps
        return {
            "items": ITEM_SLOTS * caps.stream * PROGRAM_ITEM.itemsize,
            "scratch": self._scratch_words * 4,
            "state": self._state_dtype.itemsize,
            "journal": caps.journal * JOURNAL_ENTRY.itemsize,
            # the embedding, then the VM's sum area (per transform: the sum and its weight)
            "embeddings": (dim4(self.alg.dim) + self._sum_stride()) * 16,
        }

    def _sum_stride(self) -> int:
        return self.alg.n_transforms * (dim4(self.alg.dim) + 1)

    def _chunk_size(self, wanted: int | None) -> int:
        limits = self.info.limits
        binding = self._binding_limit()
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
        if chunk < wanted:
            log.info("GPU chunk reduced from %d to %d documents by the adapter's limits", wanted, chunk)
        return chunk

    def _download_bytes_per_doc(self, per_doc: dict[str, int]) -> int:
        item = per_doc["items"] // ITEM_SLOTS
        anneal = item + per_doc["state"] + per_doc["journal"]
        return max(anneal, per_doc["scratch"], dim4(self.alg.dim) * 16)

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
        # lexicon, bonus, classes, rows, the AlgRecord, token ids and counts of a chunk
        self._table_words = n_phr * caps.phrase + n_phr + 2 * n_sym + ALG_RECORD.itemsize // 4 + c * (caps.stream + 1)
        b = {
            "params": self._buffer("params", GPU_PARAMS.itemsize, U.UNIFORM | U.COPY_DST),
            "rules": self._buffer("rules", max(self._rules_np.nbytes, self._rules_np.dtype.itemsize), storage),
            "tables": self._buffer("tables", 4 * self._table_words, storage),
            "floats": self._buffer("floats", self._floats.nbytes, storage),
        }
        # Backend.bids writes the stream * rules keys of at least one document to scratch.
        sizes = dict((name, c * size) for name, size in per_doc.items())
        sizes["scratch"] = max(sizes["scratch"], 4 * caps.stream * self.n_rules)
        self._scratch_bytes = sizes["scratch"]
        for name, size in sizes.items():
            b[name] = self._buffer(name, size, storage)
        self._staging_size = _nbytes(max(c * self._download_bytes_per_doc(per_doc), self._scratch_bytes))
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
        parts = [
            alg.lexicon_keys(caps).reshape(-1),
            alg.phrase_bonus.astype(np.uint32),
            alg.symbol_classes.astype(np.uint32),
            alg.symbol_rows.astype(np.uint32),
            alg_record(alg).reshape(1).view(np.uint32),
        ]
        offsets = np.cumsum([0] + [len(p) for p in parts])
        q.write_buffer(self.buffers["tables"], 0, np.concatenate(parts).astype(np.uint32))
        q.write_buffer(self.buffers["floats"], 0, self._floats)
        self._floats = np.zeros((0, 4), dtype=np.float32)
        p = self._params
        p["n_algs"] = 1
        p["vocab_size"] = alg.vocab_size
        p["n_phrases"] = alg.n_phrases
        p["dim"] = alg.dim
        p["slot_stride"] = self.chunk * caps.stream
        p["off_lexicon"], p["off_bonus"], p["off_classes"], p["off_rows"], p["off_algs"] = offsets[:5]
        p["off_tokens"] = offsets[5]
        p["off_lengths"] = offsets[5] + self.chunk * caps.stream
        p["off_weights"], p["off_vectors"], p["off_transforms"] = self._float_offsets
        p["sum_base"] = self.chunk * dim4(alg.dim)
        p["sum_stride"] = self._sum_stride()

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

    def _upload(self, batch: ProgramBatch, start: int, n: int, mode: int = 0, journal: bool = False) -> None:
        with maybe_scope(self.profiler, "upload", documents=n):
            q = self.device.queue
            self._params["n_docs"] = n
            self._params["mode"] = mode
            self._params["key_first"] = 0
            q.write_buffer(self.buffers["params"], 0, self._params.reshape(1).view(np.uint8))
            items = batch.items[start : start + n]
            q.write_buffer(self.buffers["items"], 0, items.view(np.uint8).reshape(-1))
            state = self._state[:n]
            state.fill(0)
            state["length"] = batch.lengths[start : start + n]
            if journal:
                state["journal_len"] = batch.journal_len[start : start + n]
                q.write_buffer(
                    self.buffers["journal"], 0, batch.journal[start : start + n].view(np.uint8).reshape(-1)
                )
            q.write_buffer(self.buffers["state"], 0, state.view(np.uint8).reshape(-1))

    def _dispatch(self, encoder: Any, name: str, x: int, y: int = 1, **args: Any) -> None:
        """One dispatch of pass ``name``.

        Without a profiler, consecutive dispatches share one compute pass (WebGPU
        makes each dispatch's writes visible to the next). With a profiler, every
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
        # Wait by mapping the staging buffer after a copy that follows the pass.
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

    def _groups(self, n: int) -> int:
        """Workgroups of a pass with one invocation per job."""
        return max(-(-n // self.workgroup), 1)

    def _steps_per_dispatch(self, width: int) -> int:
        """Annealing steps one dispatch runs: all of them on a GPU. A CPU adapter (Mesa
        lavapipe) ends an invocation after 65535 loop iterations, so there each dispatch
        runs as many steps as a pessimistic count of a step's iterations allows."""
        steps = max(self.alg.params.max_steps, 1)
        if not self.info.is_software:
            return steps
        per_step = anneal_iterations(self.alg, self.caps, width, self.workgroup)
        fits = LAVAPIPE_LOOP_LIMIT // max(per_step, 1)
        if fits < 1:
            raise BackendUnavailableError(
                f"{self.info.name}: one annealing step of {width}-token documents with this Algorithm may take "
                f"{per_step} loop iterations per thread, more than this software adapter runs "
                f"({LAVAPIPE_LOOP_LIMIT}); use the CPU backend or a hardware GPU"
            )
        return min(steps, fits)

    # -- Backend ------------------------------------------------------------------------
    @_device_errors
    def bids(self, batch: ProgramBatch) -> np.ndarray:
        stream, n_rules = self.caps.stream, self.n_rules
        out = np.zeros((batch.n, stream, n_rules), dtype=np.uint32)
        if n_rules == 0:
            return out
        # The keys of a document fill stream * rules words of the scratch buffer.
        per_pass = min(self.chunk, self._scratch_bytes // (4 * stream * n_rules))
        for start, n, max_len in self._chunks(batch):
            if max_len == 0:
                continue
            self._upload(batch, start, n)
            for first in range(0, n, per_pass):
                m = min(per_pass, n - first)
                self._params["key_first"] = first
                self.device.queue.write_buffer(self.buffers["params"], 0, self._params.reshape(1).view(np.uint8))
                enc = self.device.create_command_encoder(label="sae bids")
                self._dispatch(enc, "keys", m)
                (keys,) = self._download(enc, [("scratch", m * stream * n_rules * 4)])
                keys = np.frombuffer(keys, dtype=np.uint32).reshape(m, stream, n_rules)
                # Keys at and after a document's length are never written: no bid there.
                lengths = batch.lengths[start + first : start + first + m, None]
                live = np.arange(max_len)[None, :] < lengths
                out[start + first : start + first + m, :max_len] = np.where(live[..., None], keys[:, :max_len], 0)
        return out

    @_device_errors
    def anneal(self, batch: ProgramBatch) -> None:
        if batch.n == 0 or batch.max_length() == 0 or self.n_rules == 0 or self.alg.params.max_steps == 0:
            return
        item_bytes = self.caps.stream * PROGRAM_ITEM.itemsize
        journal_bytes = self.caps.journal * JOURNAL_ENTRY.itemsize
        state_bytes = self._state_dtype.itemsize
        for start, n, max_len in self._chunks(batch):
            if max_len == 0:
                continue
            per_dispatch = self._steps_per_dispatch(max_len)
            self._params["step_count"] = per_dispatch
            self._epoch += 1
            self._params["epoch"] = self._epoch
            self._upload(batch, start, n, mode=GPU_MODE_JOURNAL, journal=True)
            enc = self.device.create_command_encoder(label="sae anneal")
            for first in range(0, self.alg.params.max_steps, per_dispatch):
                self._dispatch(enc, "anneal", n, step=first)
            items, state, journal = self._download(
                enc, [("items", n * item_bytes), ("state", n * state_bytes), ("journal", n * journal_bytes)]
            )
            sl = slice(start, start + n)
            batch.items[sl] = np.frombuffer(items, dtype=PROGRAM_ITEM).reshape(n, self.caps.stream)
            st = np.frombuffer(state, dtype=self._state_dtype)
            batch.lengths[sl] = st["length"]
            batch.journal_len[sl] = st["journal_len"]
            batch.journal[sl] = np.frombuffer(journal, dtype=JOURNAL_ENTRY).reshape(n, self.caps.journal)
            batch.stats.steps = max(batch.stats.steps, int(st["steps"].max()))
            batch.stats.committed += int(st["committed"].sum())
            batch.stats.reverted += int(st["reverted"].sum())

    def _encode_vm(self, enc: Any, jobs: int) -> None:
        """The VM, the transforms (if the Algorithm has any) and the normalization."""
        n4 = dim4(self.alg.dim)
        self._dispatch(enc, "vm", self._groups(jobs), -(-n4 // VM_BLOCK))
        if self.alg.n_transforms:
            self._dispatch(enc, "transform", self._groups(jobs), n4)
        self._dispatch(enc, "normalize", self._groups(jobs))

    @_device_errors
    def execute(self, batch: ProgramBatch) -> np.ndarray:
        dim = self.alg.dim
        out = np.zeros((batch.n, dim), dtype=np.float32)
        for start, n, max_len in self._chunks(batch):
            if max_len == 0:
                continue  # every document is empty: zero vectors
            self._upload(batch, start, n)
            enc = self.device.create_command_encoder(label="sae execute")
            self._encode_vm(enc, n)
            width = 4 * dim4(dim)
            (emb,) = self._download(enc, [("embeddings", n * width * 4)])
            out[start : start + n] = np.frombuffer(emb, dtype=np.float32).reshape(n, width)[:, :dim]
        return out


__all__ = ["GpuBackend", "alg_record"]
