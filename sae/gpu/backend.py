"""The WGSL backend: a device-resident session of compute passes (docs/GPU.md).

Embedding a batch (:meth:`GpuBackend.submit_batch`) is one submission: the token ids
are uploaded, then the ``anneal`` pass widens every document and runs the annealing
loop (each workgroup stops when its document is finished: no host round trip), then
``plan``, ``vm``, ``normalize`` and ``stats``; one
readback brings the embeddings and the batch's counts. Journals and streams stay on
the device. Two batches can be in flight: the caller tokenizes and submits batch k + 1
before it collects batch k.

Inspection (``bids``, ``anneal``, ``execute`` on a host :class:`ProgramBatch`) uploads
the streams and downloads streams, journals and states, for ``sae compare``,
``explain`` and the viewer.

Buffers are created once per backend, sized for ``chunk`` documents; a batch with
more documents is processed chunk by chunk, one submission each. Pipelines are
compiled once per device, capacities and workgroup size. A lost device is re-created
and the batch run again; a second failure is one :class:`GpuError` line (exit 1).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sae.algorithm import Algorithm
from sae.backend import BatchResult, DoneBatch, step_limit
from sae.batch import AnnealStats, ProgramBatch, token_lengths
from sae.errors import BackendUnavailableError, InputError
from sae.gpu import device as gpu_device
from sae.gpu.budget import LAVAPIPE_LOOP_LIMIT, anneal_iterations, cpu_workgroup, steps_per_dispatch
from sae.gpu.device import (
    AdapterInfo,
    GpuError,
    choose_adapter,
    error_line,
    forget_device,
    get_device,
    is_device_lost,
)
from sae.gpu.shaders import (
    ITEM_SLOTS,
    PASSES,
    VM_BLOCK,
    numbered,
    scratch_layout,
    shader_source,
    workgroup_bytes,
)
from sae.gpu.tables import (
    TableBuilder,
    add_algorithm_tables,
    alg_record,
    dim4,
    float_table,
    float_table_bytes,
    lexicon_starts,
    pack_tokens,
    shared_table_difference,
)
from sae.layout import (
    ALG_RECORD,
    GPU_MODE_JOURNAL,
    GPU_MODE_WIDEN,
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
#: Batches in flight at once (each has its own readback buffer).
IN_FLIGHT = 2

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
    device: Any  # the device they were compiled on (the cache never keeps a dead one)
    layout: Any  # the bind group layout every pass shares
    passes: dict[str, Any]


_pipeline_cache: dict[tuple[int, Capacities, int], _Pipelines] = {}


def _pipelines(device: Any, caps: Capacities, workgroup: int) -> _Pipelines:
    """Compile every pass once per device, capacities and workgroup size."""
    import wgpu

    key = (id(device), caps, workgroup)
    cached = _pipeline_cache.get(key)
    if cached is not None and cached.device is device:
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
    cached = _Pipelines(device, layout, passes)
    _pipeline_cache[key] = cached
    return cached


def _forget_pipelines(device: Any) -> None:
    for key, cached in list(_pipeline_cache.items()):
        if cached.device is device:
            del _pipeline_cache[key]


gpu_device._forget_hooks.append(_forget_pipelines)


@dataclass
class GpuCounters:
    """What crossed between host and device, since the backend was made (``GpuBackend.counters``)."""

    batches: int = 0  #: embed batches collected (a batch larger than the chunk counts once per chunk)
    submissions: int = 0  #: queue submissions
    dispatches: int = 0  #: compute dispatches encoded
    readbacks: int = 0  #: buffers mapped for reading
    bytes_read: int = 0  #: bytes read back
    recoveries: int = 0  #: lost devices re-created

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _device_errors(method):
    """Turn wgpu's errors while running into one-line :class:`GpuError` errors; a lost device
    leaves the process-wide caches."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        import wgpu

        try:
            return method(self, *args, **kwargs)
        except (wgpu.GPUError, RuntimeError) as exc:
            self._open = None
            self._pass_log.clear()
            if is_device_lost(exc):
                forget_device(self.device)
            raise GpuError(f"the GPU ({self.description}) failed in {method.__name__}: {error_line(exc)}") from exc

    return wrapper


#: Bytes :meth:`GpuBackend._download` may add between its regions (items, state, journal;
#: or embeddings): each starts at a multiple of 8.
DOWNLOAD_PADDING = 3 * 7


def _nbytes(n: int) -> int:
    """A buffer size: at least 16 bytes, a multiple of 16."""
    return max(16, (n + 15) // 16 * 16)


class _Part:
    """One submitted chunk of an embed batch: where its results will be, and what it was,
    so that it can run again on a re-created device."""

    def __init__(self, token_ids: Sequence[Sequence[int]], lengths: np.ndarray, alg_first: int = 0,
                 n_algs: int = 1) -> None:
        self.token_ids, self.lengths = token_ids, lengths
        self.alg_first, self.n_algs = alg_first, n_algs  # Algorithms of the population it runs
        self.slot = -1
        self.generation = -1  # the backend's device generation it was submitted on
        self.dispatches = 0
        self.result: BatchResult | None = None


class _Pending:
    """The chunks of one :meth:`GpuBackend.submit_batch` call."""

    def __init__(self, backend: GpuBackend, parts: list[_Part]) -> None:
        self._backend, self._parts = backend, parts

    def result(self) -> BatchResult:
        results = [self._backend._collect(part) for part in self._parts]
        stats = AnnealStats()
        for r in results:
            stats.steps = max(stats.steps, r.stats.steps)
            stats.committed += r.stats.committed
            stats.reverted += r.stats.reverted
        return BatchResult(np.concatenate([r.embeddings for r in results]), stats)


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
    concurrent_batches = False  # one queue and one set of device buffers: batches are pipelined
    #: set by the engine (``engine.profiler``); passes and counters are then reported into it
    profiler: Profiler | None = None

    def __init__(
        self,
        alg: Algorithm,
        caps: Capacities,
        adapter: str | None = None,
        chunk: int | None = None,
        workgroup: int | None = None,
    ) -> None:
        if chunk is not None and chunk < 1:
            raise ValueError(f"GpuBackend: chunk must be >= 1, got {chunk}")
        if workgroup is not None and (workgroup < 1 or workgroup & (workgroup - 1)):
            raise ValueError(f"GpuBackend: workgroup must be a power of two, got {workgroup}")
        #: threads per workgroup instead of the adapter's (tools/bench_gpu.py measures a CPU
        #: adapter with a GPU's workgroup for the cost model)
        self._workgroup_override = workgroup
        self.alg, self.caps = alg, caps
        #: the Algorithms whose rules are on the device: [alg], or a population being evaluated
        self.population: list[Algorithm] = [alg]
        self._adapter_name = adapter
        self._wanted_chunk = chunk
        self.n_rules = len(alg.rules)
        self._rules_np = self._population_rules()
        self._state_dtype = doc_state(caps)
        self._scratch_words = scratch_layout(caps)["SCRATCH_WORDS"]
        self.counters = GpuCounters()
        self._generation = 0
        self._epoch = 0  # Params.epoch of the last batch
        self._pass_log: list[tuple[str, dict]] = []
        self._open: tuple[Any, Any] | None = None  # (encoder, compute pass) being recorded
        self._closed = False
        self._build(choose_adapter(adapter))

    def prepare(self) -> None:
        """Nothing: every table, the complete vector table included, was uploaded when made."""

    def close(self) -> None:
        """Destroy this backend's device buffers and timestamp queries now, rather than when
        the garbage collector gets to their wgpu objects; idempotent. The device and the
        compiled pipelines are shared by every backend on the adapter and stay. A batch
        submitted and not yet collected cannot be collected afterwards."""
        if self._closed:
            return
        self._closed = True
        owned = [*self.buffers.values(), self._staging, self._indirect, *self._readback, self._ts_resolve,
                 self._ts_read, self._query_set]
        self.buffers, self._readback = {}, []
        self._staging = self._indirect = self._ts_resolve = self._ts_read = self._query_set = None
        self._bind_group = None
        self._in_flight = [None] * IN_FLIGHT
        self._open = None
        self._pass_log.clear()
        for resource in owned:
            if resource is not None:
                resource.destroy()

    def _check_open(self, caller: str) -> None:
        # Before any device call: wgpu's error for a destroyed buffer says "destroyed", which
        # is_device_lost would take for a lost device and re-create everything.
        if self._closed:
            raise ValueError(f"GpuBackend.{caller}: the backend is closed")
        if os.getpid() != self._pid:
            raise GpuError(f"GpuBackend.{caller}: this GPU backend was made in process {self._pid}, and a forked "
                           "child cannot use its device; start child processes with the 'spawn' method to use "
                           "the GPU in them")

    def _population_rules(self) -> np.ndarray:
        """The compiled rules of every Algorithm of the population, one after another."""
        return np.concatenate([a.compile_rules(self.caps) for a in self.population])

    def _workgroup_for(self, info: AdapterInfo) -> int:
        workgroup = self._workgroup_override or info.workgroup
        if info.is_software:
            workgroup = max(cpu_workgroup(a, self.caps, workgroup) for a in self.population)
        return workgroup

    def _build(self, info: AdapterInfo) -> None:
        """Device, pipelines, buffers and tables: at construction, and again after a lost device."""
        alg, caps = self.alg, self.caps
        self.info = info
        self._pid = os.getpid()  # a forked child cannot use this device (_check_open)
        self.description = f"{info.name} ({info.backend}, {info.device_type})"
        self.workgroup = self._workgroup_for(info)
        need = workgroup_bytes(caps, self.workgroup)
        have = int(info.limits.get("max-compute-workgroup-storage-size", 0))
        if need > have:
            raise BackendUnavailableError(
                f"{info.name}: capacities {caps.stream} positions and {caps.rules} rules need {need} bytes "
                f"of workgroup memory, the adapter has {have}"
            )
        self._check_floats()
        # The float buffer's contents: built, uploaded, then dropped (a copy of the vectors
        # and their transformed copies).
        self._floats, self._float_offsets = float_table(alg)
        self.chunk = self._chunk_size(self._wanted_chunk)
        self.device = get_device(info)
        self._pipes = _pipelines(self.device, caps, self.workgroup)
        self._create_buffers()
        self._upload_tables()
        self._create_timestamp_queries()
        self._in_flight: list[_Part | None] = [None] * IN_FLIGHT
        self._turn = 0

    def _recover(self) -> None:
        """Re-create the device (and everything on it) after it was lost."""
        log.warning("the GPU device (%s) was lost; re-creating it", self.description)
        forget_device(self.device)
        self._open = None
        self._pass_log.clear()
        self._generation += 1
        self.counters.recoveries += 1
        self._build(choose_adapter(self._adapter_name))

    # -- sizes ------------------------------------------------------------------------
    def _binding_limit(self) -> int:
        limits = self.info.limits
        return min(limits["max-storage-buffer-binding-size"], limits["max-buffer-size"])

    def _check_floats(self) -> None:
        alg = self.alg
        need, limit = float_table_bytes(alg), self._binding_limit()
        if need > limit:
            raise BackendUnavailableError(
                f"{self.info.name}: the Algorithm's weights and vectors {alg.vectors.shape} with their "
                f"{alg.n_transforms} transformed copies need {need} bytes in one storage buffer binding, more "
                f"than the adapter's limit of {limit} bytes"
            )

    def _per_doc_bytes(self) -> dict[str, int]:
        caps = self.caps
        return {
            "items": ITEM_SLOTS * caps.stream * PROGRAM_ITEM.itemsize,
            "scratch": self._scratch_words * 4,
            "state": self._state_dtype.itemsize,
            "journal": caps.journal * JOURNAL_ENTRY.itemsize,
            "embeddings": dim4(self.alg.dim) * 16,
        }

    def _download_bytes_per_doc(self, per_doc: dict[str, int]) -> int:
        item = per_doc["items"] // ITEM_SLOTS
        return max(item + per_doc["state"] + per_doc["journal"], per_doc["scratch"], dim4(self.alg.dim) * 16)

    @property
    def default_batch(self) -> int:
        """The engine's batches when it is given no ``batch_size``: one chunk each."""
        return self.chunk

    def _chunk_size(self, wanted: int | None) -> int:
        limits = self.info.limits
        binding = self._binding_limit()
        per_doc = self._per_doc_bytes()
        # As _create_buffers sizes them: the scratch buffer holds the live job list after the
        # jobs' areas (3 words, and one a job), the state buffer the batch's totals after the
        # DocStates.
        fixed = {"scratch": 4 * 3, "state": self._state_dtype.itemsize}
        per_job = {"scratch": 4}
        fits = min((binding - fixed.get(name, 0)) // (b + per_job.get(name, 0)) for name, b in per_doc.items())
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
                raise InputError(f"SAE_GPU_CHUNK must be a positive integer, got {env!r}") from None
            if wanted < 1:
                raise InputError(f"SAE_GPU_CHUNK must be a positive integer, got {env!r}")
        chunk = min(wanted, fits)
        if chunk < wanted:
            log.info("GPU chunk reduced from %d to %d documents by the adapter's limits", wanted, chunk)
        return chunk

    # -- buffers (created once) -------------------------------------------------------
    def _buffer(self, name: str, size: int, usage: int) -> Any:
        return self.device.create_buffer(label=f"sae {name}", size=_nbytes(size), usage=usage)

    def _create_buffers(self) -> None:
        import wgpu

        alg, caps, c = self.alg, self.caps, self.chunk
        U = wgpu.BufferUsage  # noqa: N806
        storage = U.STORAGE | U.COPY_DST | U.COPY_SRC
        per_doc = self._per_doc_bytes()
        self._tables = self._table_words()
        b = {
            "params": self._buffer("params", GPU_PARAMS.itemsize, U.UNIFORM | U.COPY_DST),
            "rules": self._buffer("rules", max(self._rules_np.nbytes, self._rules_np.dtype.itemsize), storage),
            "tables": self._buffer("tables", 4 * self._table_size(), storage),
            "floats": self._buffer("floats", self._floats.nbytes, storage),
        }
        sizes = {name: c * size for name, size in per_doc.items()}
        # Backend.bids writes the stream * rules keys of at least one document to scratch;
        # after the jobs' areas, the live job list (its first words are an indirect
        # dispatch's size); the stats pass writes the batch's totals after the jobs' DocStates.
        self._live_base = c * self._scratch_words
        sizes["scratch"] = max(sizes["scratch"] + 4 * (3 + c), 4 * caps.stream * self.n_rules)
        sizes["state"] += self._state_dtype.itemsize
        self._scratch_bytes = sizes["scratch"]
        for name, size in sizes.items():
            b[name] = self.device.create_buffer(label=f"sae {name}", size=size + (-size) % 16, usage=storage)
        # The anneal dispatches' size: copied from the live list (a buffer an indirect
        # dispatch reads cannot be bound for writing in it).
        self._indirect = self._buffer("indirect", 16, U.INDIRECT | U.COPY_DST)
        # _download places each region at a multiple of 8 bytes: room for that padding too (a
        # chunk of one 3-item document overran the buffer by 8 bytes).
        self._staging_size = _nbytes(max(c * self._download_bytes_per_doc(per_doc) + DOWNLOAD_PADDING,
                                         self._scratch_bytes))
        self._staging = self._buffer("staging", self._staging_size, U.MAP_READ | U.COPY_DST)
        # One readback buffer per batch in flight: the embeddings, then the totals.
        self._embedding_bytes = dim4(alg.dim) * 16
        self._readback_size = _nbytes(c * self._embedding_bytes + self._state_dtype.itemsize)
        self._readback = [self._buffer(f"readback {i}", self._readback_size, U.MAP_READ | U.COPY_DST)
                          for i in range(IN_FLIGHT)]
        self.buffers = b
        self._bind()
        # Host-side staging arrays, also sized once.
        self._params = np.zeros((), dtype=GPU_PARAMS)
        self._state = np.zeros(c, dtype=self._state_dtype)

    def _bind(self) -> None:
        b = self.buffers
        self._bind_group = self.device.create_bind_group(
            label="sae bindings",
            layout=self._pipes.layout,
            entries=[
                {"binding": i, "resource": {"buffer": b[name], "offset": 0, "size": b[name].size}}
                for i, (name, _) in enumerate(_BINDINGS)
            ],
        )

    def _table_words(self) -> TableBuilder:
        """The u32 tables: lexicon, phrase bonus, symbol classes and rows, the first phrase
        per first token; then the population's element tests (every rule's, then per
        Algorithm the per-symbol test bits and rule masks) and AlgRecords. The offsets go
        to Params and the AlgRecords; a batch's token ids follow (``_token_base``)."""
        alg, caps = self.alg, self.caps
        t = TableBuilder()
        self._offsets = {
            "off_lexicon": t.add(alg.lexicon_keys(caps)),
            "off_bonus": t.add(alg.phrase_bonus.astype(np.uint32)),
            "off_classes": t.add(alg.symbol_classes),
            "off_rows": t.add(alg.symbol_rows.astype(np.uint32)),
            "off_lexstarts": t.add(lexicon_starts(alg, caps)),
        }
        elements, records, rule_base = [], [], 0
        for member in self.population:
            member_elements, where = add_algorithm_tables(t, member, caps)
            elements.append(member_elements)
            records.append(alg_record(member, rule_base, where))
            rule_base += len(member.rules)
        self._offsets["off_elements"] = t.add(np.concatenate(elements))
        self._offsets["off_algs"] = t.add(np.stack(records).view(np.uint32))
        self._alg_base = self._offsets["off_algs"]
        self._token_base = t.size
        return t

    def _table_size(self) -> int:
        """Words of the table buffer: the tables, then a chunk's token starts and tokens."""
        return self._token_base + self.chunk + 1 + self.chunk * self.caps.stream

    def _upload_tables(self) -> None:
        alg, caps = self.alg, self.caps
        q = self.device.queue
        if len(self._rules_np):
            q.write_buffer(self.buffers["rules"], 0, self._rules_np.view(np.uint8))
        q.write_buffer(self.buffers["tables"], 0, self._tables.words())
        self._tables = None  # uploaded
        if len(self._floats):
            q.write_buffer(self.buffers["floats"], 0, self._floats)
        self._floats = np.zeros((0, 4), dtype=np.float32)
        p = self._params
        p["n_algs"] = 1
        p["vocab_size"] = alg.vocab_size
        p["n_phrases"] = alg.n_phrases
        p["dim"] = alg.dim
        p["slot_stride"] = self.chunk * caps.stream
        for name, offset in self._offsets.items():
            p[name] = offset
        p["off_starts"] = self._token_base
        p["off_weights"], p["off_vectors"] = self._float_offsets
        p["vector_rows"] = alg.vectors.shape[0]
        p["live_base"] = self._live_base

    def set_population(self, algorithms: Sequence[Algorithm]) -> None:
        """Put the rules of ``algorithms`` on the device (for :meth:`evaluate_population`).

        They must share this backend's Algorithm's tables (tokenizer, vectors, weights,
        symbol rows and classes, lexicon, transforms): only rules and loop parameters
        differ. The rule and table buffers grow when the population needs more room.
        """
        import wgpu

        self._check_open("set_population")
        algorithms = list(algorithms)
        for i, member in enumerate(algorithms):
            difference = shared_table_difference(self.alg, member)
            if difference:
                raise ValueError(f"population member {i} ({member.name!r}) has other {difference} than the "
                                 f"backend's Algorithm; a population shares everything but rules and parameters")
        self.population = algorithms or [self.alg]
        workgroup = self._workgroup_for(self.info)
        if workgroup != self.workgroup:
            self.workgroup = workgroup
            self._pipes = _pipelines(self.device, self.caps, workgroup)
        self._rules_np = self._population_rules()
        self._tables = self._table_words()
        U = wgpu.BufferUsage  # noqa: N806
        storage = U.STORAGE | U.COPY_DST | U.COPY_SRC
        outgrown = []
        if self._rules_np.nbytes > self.buffers["rules"].size:
            outgrown.append(self.buffers["rules"])
            self.buffers["rules"] = self._buffer("rules", self._rules_np.nbytes, storage)
        if 4 * self._table_size() > self.buffers["tables"].size:
            outgrown.append(self.buffers["tables"])
            self.buffers["tables"] = self._buffer("tables", 4 * self._table_size(), storage)
        self._bind()
        # Destroyed now, as close() does, rather than when the collector gets to them; work
        # already submitted with them keeps them alive on the device until it is done.
        for buffer in outgrown:
            buffer.destroy()
        self._upload_tables()

    def _single(self) -> None:
        """Back to the backend's own Algorithm after a population (embedding, inspection)."""
        if len(self.population) != 1 or self.population[0] is not self.alg:
            self._drain()
            self.set_population([self.alg])
        self._params["n_algs"] = 1
        self._params["off_algs"] = self._alg_base

    def evaluate_population(self, algorithms: Sequence[Algorithm],
                            token_ids: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Embed one token batch with every Algorithm of a population: ``(n, dim)`` per
        Algorithm, each equal to what that Algorithm alone gives.

        Jobs (document x Algorithm) run side by side, ``chunk`` a submission: the
        documents of a submission are annealed by several Algorithms in one grid (y over
        Algorithms), so a population of A Algorithms on n documents takes about
        ``A * n / chunk`` submissions.
        """
        self._check_open("evaluate_population")
        self._drain()
        self.set_population(algorithms)
        n, dim = len(token_ids), self.alg.dim
        out = [np.zeros((n, dim), dtype=np.float32) for _ in self.population]
        if n == 0 or not algorithms:
            return out[: len(algorithms)]
        pending = list(self._population_parts(token_ids, token_lengths(token_ids, self.caps, "evaluate_population")))
        for _, _, part in pending:
            self._submit_part(part)
        for start, first, part in pending:
            result = self._collect(part).embeddings
            m, docs_here = part.n_algs, len(part.token_ids)
            for a in range(m):
                out[first + a][start : start + docs_here] = result[a * docs_here : (a + 1) * docs_here]
        return out

    @_device_errors
    def population_runs(self, algorithms: Sequence[Algorithm], token_ids: Sequence[Sequence[int]]
                        ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """What :meth:`evaluate_population` gives, with each job's journal: per Algorithm
        ``(embeddings (n, dim), journal (n, Capacities.journal) JOURNAL_ENTRY,
        journal_len (n,))``, each equal to what that Algorithm alone gives (an
        evolutionary search reads which rules committed where). One submission and one
        readback (embeddings, states and journals) per chunk of jobs."""
        self._check_open("population_runs")
        self._drain()
        self.set_population(algorithms)
        n, dim, caps = len(token_ids), self.alg.dim, self.caps
        out = [(np.zeros((n, dim), dtype=np.float32), np.zeros((n, caps.journal), dtype=JOURNAL_ENTRY),
                np.zeros(n, dtype=np.uint32)) for _ in self.population]
        if n == 0 or not algorithms:
            return out[: len(algorithms)]
        lengths = token_lengths(token_ids, self.caps, "population_runs")
        width = 4 * dim4(dim)
        journal_bytes = caps.journal * JOURNAL_ENTRY.itemsize
        state_bytes = self._state_dtype.itemsize
        for start, first, part in self._population_parts(token_ids, lengths):
            here, jobs = len(part.token_ids), len(part.token_ids) * part.n_algs
            self._upload_tokens(part)
            enc = self.device.create_command_encoder(label="sae population runs")
            self._encode_anneal(enc, here, int(part.lengths.max()), GPU_MODE_WIDEN | GPU_MODE_JOURNAL)
            self._encode_vm(enc, jobs)
            emb, state, journal = self._download(
                enc, [("embeddings", jobs * width * 4), ("state", jobs * state_bytes),
                      ("journal", jobs * journal_bytes)])
            emb = np.frombuffer(emb, dtype=np.float32).reshape(jobs, width)[:, :dim]
            st = np.frombuffer(state, dtype=self._state_dtype)
            jr = np.frombuffer(journal, dtype=JOURNAL_ENTRY).reshape(jobs, caps.journal).copy()
            # past a job's entries the buffer holds an earlier job's: cleared here
            jr[np.arange(caps.journal)[None, :] >= st["journal_len"][:, None]] = np.zeros((), JOURNAL_ENTRY)
            for a in range(part.n_algs):
                rows, target = slice(a * here, (a + 1) * here), out[first + a]
                target[0][start : start + here] = emb[rows]
                target[1][start : start + here] = jr[rows]
                target[2][start : start + here] = st["journal_len"][rows]
        return out

    def _population_parts(self, token_ids: Sequence[Sequence[int]], lengths: np.ndarray
                          ) -> Iterator[tuple[int, int, _Part]]:
        """The submissions of a population on ``token_ids``: ``(first document, first
        Algorithm, part)``, as many documents as fit a chunk, then as many Algorithms of
        the population as fit beside them."""
        n = len(token_ids)
        docs = min(n, self.chunk)
        per_submission = max(1, self.chunk // docs)
        for start in range(0, n, docs):
            ids, lens = token_ids[start : start + docs], lengths[start : start + docs]
            for first in range(0, len(self.population), per_submission):
                yield start, first, _Part(ids, lens, first, min(per_submission, len(self.population) - first))

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
        """Bytes of every GPU buffer this backend holds (all created at construction; none
        after :meth:`close`)."""
        extra = [self._staging, self._indirect, *self._readback, self._ts_resolve, self._ts_read]
        return sum(int(b.size) for b in [*self.buffers.values(), *extra] if b is not None)

    # -- encoding, submitting, reading back ---------------------------------------------
    def _write_params(self, n: int, mode: int, step_count: int = 0, epoch: int = 0, key_first: int = 0) -> None:
        p = self._params
        p["n_docs"], p["mode"], p["step_count"], p["epoch"], p["key_first"] = n, mode, step_count, epoch, key_first
        self.device.queue.write_buffer(self.buffers["params"], 0, p.reshape(1).view(np.uint8))

    def _dispatch(self, encoder: Any, name: str, x: int | None, y: int = 1, **args: Any) -> None:
        """One dispatch of pass ``name``; ``x`` None: indirect, sized by the live pass.

        Without a profiler, consecutive dispatches share one compute pass (WebGPU
        makes each dispatch's writes visible to the next). With a profiler, every
        dispatch gets its own compute pass and timestamps.
        """
        self.counters.dispatches += 1
        prof = self.profiler
        if prof is None:
            if self._open is None or self._open[0] is not encoder:
                self._end_pass()
                cp = encoder.begin_compute_pass(label="sae passes")
                cp.set_bind_group(0, self._bind_group)
                self._open = (encoder, cp)
            cp = self._open[1]
            cp.set_pipeline(self._pipes.passes[name])
            self._workgroups(cp, x, y)
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
        self._workgroups(cp, x, y)
        cp.end()

    def _workgroups(self, cp: Any, x: int | None, y: int) -> None:
        if x is None:
            cp.dispatch_workgroups_indirect(self._indirect, 0)
        else:
            cp.dispatch_workgroups(x, y, 1)

    def _dispatch_cpu_timed(self, prof: Profiler, name: str, x: int, y: int, args: dict) -> None:
        """Without timestamp-query: submit the pass alone and wait for it."""
        prof.gpu_clock = CPU_TIMED
        enc = self.device.create_command_encoder(label=f"sae {name} (timed)")
        cp = enc.begin_compute_pass(label=f"sae {name}")
        cp.set_pipeline(self._pipes.passes[name])
        cp.set_bind_group(0, self._bind_group)
        self._workgroups(cp, x, y)
        cp.end()
        # Wait by mapping the staging buffer after a copy that follows the pass.
        enc.copy_buffer_to_buffer(self.buffers["state"], 0, self._staging, 0, 16)
        start = time.perf_counter_ns()
        self.device.queue.submit([enc.finish()])
        self.counters.submissions += 1
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
        self.counters.submissions += 1
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

    def _map(self, buffer: Any, size: int) -> bytes:
        """Map ``size`` bytes of a readback buffer, copy them out, unmap (one readback)."""
        with maybe_scope(self.profiler, "wait + readback", bytes=size):
            buffer.map_sync("read", 0, size)
            try:
                data = bytes(buffer.read_mapped(0, size))
            finally:
                buffer.unmap()
        self.counters.readbacks += 1
        self.counters.bytes_read += size
        return data

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
        data = memoryview(self._map(self._staging, max(offset, 8)))
        self._report_passes(submitted)
        return [data[o : o + s] for o, s in spans]

    def _steps_per_dispatch(self, width: int) -> int:
        """Annealing steps one dispatch runs: all of them on a GPU; on a CPU adapter as many
        as lavapipe's loop limit allows (sae.gpu.budget)."""
        if not self.info.is_software:
            return max(self._max_steps(), 1)
        steps = min(steps_per_dispatch(a, self.caps, width, self.workgroup) for a in self.population)
        if steps < 1:
            worst = max(anneal_iterations(a, self.caps, width, self.workgroup) for a in self.population)
            raise BackendUnavailableError(
                f"{self.info.name}: one annealing step of {width}-token documents with this Algorithm may take "
                f"{worst} loop iterations per thread, more than this software adapter runs "
                f"({LAVAPIPE_LOOP_LIMIT}); use the CPU backend or a hardware GPU"
            )
        return steps

    def _max_steps(self) -> int:
        return max(a.params.max_steps for a in self.population)

    def _encode_anneal(self, enc: Any, n: int, width: int, mode: int) -> int:
        """Write the params of an anneal and encode its dispatches; returns how many."""
        per_dispatch = self._steps_per_dispatch(width)
        self._epoch += 1
        self._write_params(n, mode, step_count=per_dispatch, epoch=self._epoch)
        dispatches = max(-(-self._max_steps() // per_dispatch), 1)
        for i in range(dispatches):
            # the jobs still to anneal, then a workgroup each (an indirect dispatch)
            self._dispatch(enc, "live", 1, step=i * per_dispatch)
            self._end_pass()
            enc.copy_buffer_to_buffer(self.buffers["scratch"], 4 * self._live_base, self._indirect, 0, 12)
            self._dispatch(enc, "anneal", None, step=i * per_dispatch)
        return 2 * dispatches

    def _groups(self, n: int) -> int:
        """Workgroups of a pass with one invocation per job."""
        return max(-(-n // self.workgroup), 1)

    def _encode_vm(self, enc: Any, jobs: int) -> int:
        """The VM (its plan, then the VM) and the normalization."""
        n4 = dim4(self.alg.dim)
        self._dispatch(enc, "plan", self._groups(jobs))
        self._dispatch(enc, "vm", self._groups(jobs), -(-n4 // VM_BLOCK))
        self._dispatch(enc, "normalize", self._groups(jobs))
        return 3

    # -- the session: token ids in, embeddings out ------------------------------------------
    def submit_batch(self, token_ids: Sequence[Sequence[int]], lengths: np.ndarray) -> _Pending | DoneBatch:
        """Embed documents given as token ids: one submission per chunk, one readback when
        the result is collected (``result()``)."""
        self._check_open("submit_batch")
        n = len(token_ids)
        if n == 0:
            return DoneBatch(BatchResult(np.zeros((0, self.alg.dim), dtype=np.float32), AnnealStats()))
        self._single()
        lengths = np.asarray(lengths, dtype=np.uint32)
        parts = []
        for start in range(0, n, self.chunk):
            part = _Part(token_ids[start : start + self.chunk], lengths[start : start + self.chunk])
            self._submit_part(part)
            parts.append(part)
        return _Pending(self, parts)

    def _submit_part(self, part: _Part) -> None:
        """Upload a chunk's token ids and encode and submit its whole run: widen, anneal,
        execute, normalize, count, copy the embeddings and totals to its readback buffer."""
        import wgpu

        slot = self._turn
        if self._in_flight[slot] is not None:
            self._collect(self._in_flight[slot])  # its caller has not collected it yet
        try:
            self._encode_part(part, slot)
        except (wgpu.GPUError, RuntimeError) as exc:
            if not is_device_lost(exc):
                self._open = None
                raise GpuError(f"the GPU ({self.description}) failed in submit_batch: {error_line(exc)}") from exc
            self._recover()
            self._encode_part(part, self._turn)
        self._turn = (self._turn + 1) % IN_FLIGHT

    def _upload_tokens(self, part: _Part) -> None:
        """A chunk's token ids into the table buffer; which Algorithms of the population run it."""
        n = len(part.token_ids)
        with maybe_scope(self.profiler, "upload", documents=n):
            words = pack_tokens(part.token_ids, part.lengths)
            self.device.queue.write_buffer(self.buffers["tables"], 4 * self._token_base, words)
            self._params["off_tokens"] = self._token_base + n + 1
            self._params["n_algs"] = part.n_algs
            self._params["off_algs"] = self._alg_base + part.alg_first * (ALG_RECORD.itemsize // 4)

    def _encode_part(self, part: _Part, slot: int) -> None:
        n = len(part.token_ids)
        jobs = n * part.n_algs
        self._upload_tokens(part)
        dispatches_before = self.counters.dispatches
        with maybe_scope(self.profiler, "encode", documents=n):
            enc = self.device.create_command_encoder(label="sae embed")
            self._encode_anneal(enc, n, int(part.lengths.max()), GPU_MODE_WIDEN)
            self._encode_vm(enc, jobs)
            self._dispatch(enc, "stats", 1)
            self._end_pass()
            emb_bytes = jobs * self._embedding_bytes
            enc.copy_buffer_to_buffer(self.buffers["embeddings"], 0, self._readback[slot], 0, emb_bytes)
            totals = self.chunk * self._state_dtype.itemsize
            enc.copy_buffer_to_buffer(self.buffers["state"], totals, self._readback[slot], emb_bytes,
                                      self._state_dtype.itemsize)
            part.submitted_ns = self._submit(enc)
        part.slot, part.generation = slot, self._generation
        part.dispatches = self.counters.dispatches - dispatches_before
        self._in_flight[slot] = part

    def _collect(self, part: _Part) -> BatchResult:
        """Read a submitted chunk back (once), re-running it if its device was lost."""
        import wgpu

        if part.result is not None:
            return part.result
        self._check_open("result")
        for attempt in range(2):
            if part.generation != self._generation:  # submitted on a device since lost
                self._encode_part(part, self._turn)
                self._turn = (self._turn + 1) % IN_FLIGHT
            try:
                part.result = self._read_part(part)
                break
            except (wgpu.GPUError, RuntimeError) as exc:
                if attempt or not is_device_lost(exc):
                    self._open = None
                    if is_device_lost(exc):
                        forget_device(self.device)
                    raise GpuError(f"the GPU ({self.description}) failed in submit_batch: {error_line(exc)}") \
                        from exc
                self._in_flight = [None] * IN_FLIGHT
                self._recover()
        return part.result

    def _read_part(self, part: _Part) -> BatchResult:
        n = len(part.token_ids) * part.n_algs  # jobs
        emb_bytes = n * self._embedding_bytes
        data = self._map(self._readback[part.slot], emb_bytes + self._state_dtype.itemsize)
        if self._in_flight[part.slot] is part:
            self._in_flight[part.slot] = None
        self._report_passes(part.submitted_ns)
        width = 4 * dim4(self.alg.dim)
        embeddings = np.frombuffer(data, dtype=np.float32, count=n * width).reshape(n, width)[:, : self.alg.dim]
        totals = np.frombuffer(data, dtype=self._state_dtype, count=1, offset=emb_bytes)[0]
        stats = AnnealStats(steps=int(totals["steps"]), committed=int(totals["committed"]),
                            reverted=int(totals["reverted"]))
        self.counters.batches += 1
        if self.profiler is not None:
            self.profiler.count_batch(documents=n, submissions=1, dispatches=part.dispatches, readbacks=1,
                                      bytes_read=emb_bytes + self._state_dtype.itemsize)
        return BatchResult(embeddings.copy(), stats)

    # -- inspection: a host batch in place -------------------------------------------------
    def _chunks(self, batch: ProgramBatch):
        for start in range(0, batch.n, self.chunk):
            n = min(self.chunk, batch.n - start)
            lengths = batch.lengths[start : start + n]
            yield start, n, int(lengths.max()) if n else 0

    def _upload(self, batch: ProgramBatch, start: int, n: int, journal: bool = False) -> None:
        """A host batch's streams (and journals) to the device, with fresh DocStates."""
        self._drain()
        self._single()
        with maybe_scope(self.profiler, "upload", documents=n):
            q = self.device.queue
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

    def _drain(self) -> None:
        """Collect the batches in flight: the inspection path reuses their device buffers."""
        for part in self._in_flight:
            if part is not None:
                self._collect(part)

    @_device_errors
    def bids(self, batch: ProgramBatch) -> np.ndarray:
        self._check_open("bids")
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
                self._write_params(n, 0, key_first=first)
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
    def anneal(self, batch: ProgramBatch, max_steps: int | None = None) -> None:
        self._check_open("anneal")
        steps = step_limit(self.alg.params.max_steps, max_steps)
        if batch.n == 0 or batch.max_length() == 0 or self.n_rules == 0 or steps == 0:
            return
        # A step limit is the Algorithm record's max_steps, the shader's loop bound,
        # lowered for this call (all its chunks) and put back after it.
        limited = steps != self.alg.params.max_steps
        if limited:
            self._write_max_steps(steps)
        try:
            self._anneal_chunks(batch)
        finally:
            if limited:
                self._write_max_steps(self.alg.params.max_steps)

    def _anneal_chunks(self, batch: ProgramBatch) -> None:
        item_bytes = self.caps.stream * PROGRAM_ITEM.itemsize
        journal_bytes = self.caps.journal * JOURNAL_ENTRY.itemsize
        state_bytes = self._state_dtype.itemsize
        for start, n, max_len in self._chunks(batch):
            if max_len == 0:
                continue
            self._upload(batch, start, n, journal=True)
            enc = self.device.create_command_encoder(label="sae anneal")
            self._encode_anneal(enc, n, max_len, GPU_MODE_JOURNAL)
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

    def _write_max_steps(self, steps: int) -> None:
        """Set the max_steps of the one Algorithm record on the device (``_single``'s)."""
        offset = 4 * self._alg_base + ALG_RECORD.fields["max_steps"][1]
        self.device.queue.write_buffer(self.buffers["tables"], offset, np.array([steps], dtype=np.uint32))

    @_device_errors
    def execute(self, batch: ProgramBatch) -> np.ndarray:
        self._check_open("execute")
        dim = self.alg.dim
        out = np.zeros((batch.n, dim), dtype=np.float32)
        for start, n, max_len in self._chunks(batch):
            if max_len == 0:
                continue  # every document is empty: zero vectors
            self._upload(batch, start, n)
            self._write_params(n, 0)
            enc = self.device.create_command_encoder(label="sae execute")
            self._encode_vm(enc, n)
            width = 4 * dim4(dim)
            (emb,) = self._download(enc, [("embeddings", n * width * 4)])
            out[start : start + n] = np.frombuffer(emb, dtype=np.float32).reshape(n, width)[:, :dim]
        return out


__all__ = ["DEFAULT_CHUNK", "GpuBackend", "GpuCounters"]
