"""An embedding job across machines with Ray Data (``pip install 'sae[ray]'``).

The driver plans the same :class:`~sae.corpus.job.Job` as a local run and hands Ray
Data the numbers of the chunks still to embed. Each worker holds one
:class:`~sae.Engine` (CPU, or one GPU each with ``--backend gpu``), reads its chunks
itself (:meth:`~sae.corpus.sources.Source.read_chunk`: INPUT must be readable at the
same path on every node), embeds them and sends back the output tables. The driver
receives them in chunk order and writes them with the same sinks and resume state as a
local run, so the output has the same rows and bytes, and either kind of run can
resume the other.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sae.corpus.job import (
    EmbedOptions,
    EmbedSummary,
    Job,
    OutputRun,
    Progress,
    SilentProgress,
    TruncationTally,
)
from sae.corpus.sinks import output_table
from sae.engine import check_long_texts
from sae.errors import InputError, SaeError
from sae.ray_address import check_ray_address

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'sae[ray]'"


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or an :class:`InputError` naming the extra to install."""
    try:
        import ray
        import ray.data  # Ray Data is the part sae needs
    except ImportError as exc:
        raise InputError(f"--ray needs Ray Data ({exc}); install it with: {INSTALL_HINT}") from None
    return ray


@dataclass(frozen=True)
class EngineSpec:
    """How each worker builds its engine: the Algorithm's files (None: the bundled one)
    and the :class:`~sae.Engine` options."""

    algorithm_files: dict[str, bytes] | None
    algorithm_hash: str
    backend: str = "cpu"  #: "cpu" or "gpu"
    batch_size: int | None = None  #: None: the backend's own (:attr:`sae.backend.Backend.default_batch`)
    threads: int = 1
    adapter: str | None = None
    long_texts: str = "window"  #: :attr:`sae.Engine.long_texts`

    @classmethod
    def from_options(
        cls, algorithm: str | Path | None, backend: str = "auto", batch_size: int | None = None,
        threads: int | None = None, adapter: str | None = None, long_texts: str = "window",
    ) -> tuple[EngineSpec, Any]:
        """The spec for these engine options, and the Algorithm loaded here (to check it
        and read its hash). ``auto`` means CPU workers: a GPU is used when asked for."""
        from sae.algorithm import load_algorithm

        alg = load_algorithm(algorithm)
        files = None
        if algorithm is not None:
            root = Path(algorithm)
            root = root.parent if root.is_file() else root
            files = {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}
        check_long_texts(long_texts, "EngineSpec")
        spec = cls(files, alg.content_hash, "gpu" if backend == "gpu" else "cpu", batch_size, threads or 1, adapter,
                   long_texts)
        return spec, alg


class ChunkEmbedder:
    """A Ray Data worker: one engine; turns rows ``(output, chunk)`` into output tables."""

    def __init__(self, spec: EngineSpec, sources: list[Any], schemas: list[Any]) -> None:
        from sae.algorithm import load_algorithm
        from sae.engine import Engine

        if spec.algorithm_files is None:
            alg = load_algorithm(None)
        else:
            self._dir = tempfile.TemporaryDirectory(prefix="sae-algorithm-")
            for name, data in spec.algorithm_files.items():
                (Path(self._dir.name) / name).write_bytes(data)
            alg = load_algorithm(self._dir.name)
        if alg.content_hash != spec.algorithm_hash:
            raise RuntimeError(f"worker loaded Algorithm {alg.content_hash[:12]}, the driver {spec.algorithm_hash[:12]}")
        self.engine = Engine(alg, backend=spec.backend, batch_size=spec.batch_size, threads=spec.threads,
                             adapter=spec.adapter, long_texts=spec.long_texts)
        self.sources = sources
        self.schemas = schemas

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        outputs, chunks, errors, bad_input, payloads, truncated = [], [], [], [], [], []
        for output, chunk in zip(batch.column("output").to_pylist(), batch.column("chunk").to_pylist()):
            outputs.append(output)
            chunks.append(chunk)
            with TruncationTally() as tally:  # reported once, by the driver
                try:
                    table = self.sources[output].read_chunk(chunk)
                    embeddings = self.engine.embed(table.column("text").to_pylist())
                    payloads.append(_to_ipc(output_table(table, embeddings, self.schemas[output])))
                    errors.append("")
                    bad_input.append(False)
                except InputError as exc:  # bad input is data for the driver to report, not a crash
                    payloads.append(b"")
                    errors.append(str(exc))
                    bad_input.append(True)
                except Exception as exc:  # as data too: Ray would bury it under its notice about retries
                    payloads.append(b"")
                    errors.append(f"{self.sources[output].name}: chunk {chunk}: {type(exc).__name__}: {exc}")
                    bad_input.append(False)
            truncated.append([tally.texts, tally.cap])
        return pa.table({"output": pa.array(outputs, pa.int64()), "chunk": pa.array(chunks, pa.int64()),
                         "error": pa.array(errors, pa.string()), "bad_input": pa.array(bad_input, pa.bool_()),
                         "payload": pa.array(payloads, pa.large_binary()),
                         "truncated": pa.array(truncated, pa.list_(pa.int64(), 2))})


def _to_ipc(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(payload: Any) -> Any:
    import pyarrow as pa

    return pa.ipc.open_stream(pa.BufferReader(payload)).read_all()


def embed_corpus_ray(
    input: str, output: str, spec: EngineSpec, options: EmbedOptions | None = None,
    *, dim: int, address: str | None = None, workers: int | None = None, progress: Progress | None = None,
) -> EmbedSummary:
    """:func:`~sae.corpus.job.embed_corpus` with Ray Data workers; see :func:`run_job_ray`."""
    check_ray_address(address, "--ray")  # before OUT is touched: a wrong address is one line, not minutes
    job = Job(input, output, options or EmbedOptions())
    return run_job_ray(job, spec, dim=dim, address=address, workers=workers, progress=progress)


def run_job_ray(
    job: Job, spec: EngineSpec, *, dim: int, address: str | None = None, workers: int | None = None,
    progress: Progress | None = None,
) -> EmbedSummary:
    """Run a planned :class:`~sae.corpus.job.Job` with Ray Data workers, each with its own engine.

    ``address``: the Ray cluster (None or "": connect to the one ``ray.init()`` finds
    or start a local one; a Ray already initialized in this process is used as it is).
    ``workers``: engines to run (default: one per ``spec.threads`` CPUs of the cluster,
    or one per GPU with ``--backend gpu``). INPUT must be a file or dataset that every
    worker can read at the same path; stdin, pipes and Arrow streams are refused.
    """
    ray = require_ray()
    check_ray_address(address, "--ray")
    job.bind(spec.algorithm_hash, spec.backend, dim, spec.long_texts)
    for out in job.outputs:
        if not out.source.random_access:
            raise InputError(f"{out.source.name}: --ray needs an input that workers can read in parts "
                             "(a file or a dataset, not stdin, a pipe or an Arrow stream)")
    progress = progress or SilentProgress()
    start = time.perf_counter()
    progress.start(job.rows, job.resumed_rows())
    pending = list(job.pending())
    first = [job.resumable_chunks(out) for out in pending]
    todo = [(k, i) for k, out in enumerate(pending) for i in range(first[k], out.source.n_chunks or 0)]

    results: Any = iter(())
    started_ray = False
    if todo:
        started_ray = _init(ray, address)
        results = _results(ray, job, pending, spec, todo, workers)
    embedded = rows = 0
    run: OutputRun | None = None
    index = -1

    def advance_to(target: int) -> None:
        """Finish the output being written and open the next, up to output ``target``."""
        nonlocal run, index, rows
        while index < target:
            if run is not None:
                run.close()
                rows += run.rows
                job.done(pending[index])
                run = None
            index += 1
            if index == len(pending):
                return
            run = job.open(pending[index])
            run.skip_resumed(pending[index].source.chunks())
            if run.chunk != first[index]:
                raise InputError(f"{pending[index].path}: its resume state changed while this run started")

    truncated = TruncationTally()
    try:
        for k, chunk, table, (texts, cap) in results:
            truncated.add(texts, cap)
            advance_to(k)
            if run is None or chunk != run.chunk:  # Ray Data keeps the order (preserve_order)
                raise SaeError(f"Ray returned chunk {chunk} of output {k} out of order")
            run.write(table)
            embedded += table.num_rows
            progress.advance(table.num_rows)
        advance_to(len(pending))
    except BaseException as exc:
        if run is not None:
            run.close(exc)
        raise
    finally:
        if started_ray:
            ray.shutdown()
    job.complete()
    truncated.report()
    return job.summary(rows, embedded, time.perf_counter() - start)


#: Attempts ``ray.init`` makes at a cluster's control service (GCS) at an explicit
#: ``host:port``, unless the environment sets its own. Each waits about 40 s for an
#: answer; Ray's default of 20 kept a run on a port that is not Ray's for many minutes.
GCS_CONNECT_ATTEMPTS = "1"
_GCS_ATTEMPTS_VARIABLE = "RAY_gcs_server_port_wait_time_s"


class _AbsentError(Exception):
    """Stands for an error class that this version of Ray lacks."""


def _init(ray: Any, address: str | None) -> bool:
    """Connect to Ray unless this process already has; whether we started it. Failing to
    connect is one line: exit 2 for an ADDRESS given (no cluster there, or not a Ray one,
    or one that refuses us), exit 1 when a local instance cannot start."""
    if ray.is_initialized():
        return False
    ray_log = logging.getLogger("ray")
    level = ray_log.level
    ray_log.setLevel(logging.ERROR)  # Ray's notices at startup are not sae's to show
    explicit = bool(address) and address.strip().lower() not in ("auto", "local") and "://" not in address
    bounded = explicit and _GCS_ATTEMPTS_VARIABLE not in os.environ
    if bounded:  # read by ray.init itself; the process starts no Ray of its own here, so nothing inherits it
        os.environ[_GCS_ATTEMPTS_VARIABLE] = GCS_CONNECT_ATTEMPTS
    # A cluster that wants a token refuses us with its own error class; its text says how to give one.
    refused = getattr(getattr(ray, "exceptions", None), "AuthenticationError", _AbsentError)
    try:
        ray.init(address=address or None, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=True)
    except (ConnectionError, RuntimeError, refused) as exc:
        reason = str(exc).strip().split("\n", 1)[0]
        if not isinstance(exc, refused):  # the first sentence: the next name Ray's flags (--address), not sae's
            reason = reason.split(". ", 1)[0].rstrip(".")
        reason = reason or type(exc).__name__
        if address:
            raise InputError(f"--ray {address}: cannot connect to a Ray cluster ({reason})") from None
        raise SaeError(f"--ray: cannot start a local Ray instance ({reason})") from None
    finally:
        ray_log.setLevel(level)
        if bounded:
            os.environ.pop(_GCS_ATTEMPTS_VARIABLE, None)
    return True


def _results(ray: Any, job: Job, pending: list[Any], spec: EngineSpec, todo: list[tuple[int, int]],
             workers: int | None) -> Any:
    """``(output, chunk, table)`` for every chunk of ``todo``, in order, from Ray Data workers."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # chunks come back in the order they are written
    ctx.enable_progress_bars = False  # sae draws its own
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notices; failures reach sae as errors
    resources = ray.cluster_resources()
    if spec.backend == "gpu":
        gpus = int(resources.get("GPU", 0))
        if gpus == 0:
            raise InputError("--backend gpu with --ray: the Ray cluster has no GPUs")
        size, per_worker = workers or gpus, {"num_gpus": 1, "num_cpus": 1}
    else:
        size = workers or max(1, int(resources.get("CPU", 1)) // spec.threads)
        per_worker = {"num_cpus": spec.threads}
    size = max(1, min(size, len(todo)))
    log.info("Ray: %d worker(s), %d chunk(s) to embed", size, len(todo))
    items = ray.data.from_items([{"output": k, "chunk": i} for k, i in todo], override_num_blocks=len(todo))
    mapped = items.map_batches(
        ChunkEmbedder,
        fn_constructor_kwargs={"spec": spec, "sources": [o.source.for_workers() for o in pending],
                               "schemas": [job.schema(o) for o in pending]},
        batch_size=1, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=size),
        **per_worker,
    )
    try:
        for batch in mapped.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1):
            for row in range(batch.num_rows):
                error = batch.column("error")[row].as_py()
                if error:
                    if batch.column("bad_input")[row].as_py():
                        raise InputError(error)
                    raise SaeError(f"a Ray worker failed: {error}")
                yield (batch.column("output")[row].as_py(), batch.column("chunk")[row].as_py(),
                       _from_ipc(batch.column("payload")[row].as_buffer()), batch.column("truncated")[row].as_py())
    except (SaeError, KeyboardInterrupt, GeneratorExit):
        raise
    except Exception as exc:  # a worker crashed: one line, not Ray's nested traceback
        raise SaeError(f"a Ray worker failed: {worker_cause(exc)}") from None


#: Where Ray's text of a failed task passes from the original error to its own wrapper.
_CAUSED = "The above exception was the direct cause of the following exception:"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def worker_cause(exc: BaseException) -> str:
    """The one line that says why a Ray task failed. Ray sends the worker's exception as
    text: its traceback, then (for Ray Data) ``UserCodeException`` with a notice about
    retries whose last line says nothing of the cause; ``exc.cause`` carries that wrapper,
    not the original. The original is the last line before the first "direct cause"."""
    text = _ANSI.sub("", str(exc)).strip()
    original = text.split(_CAUSED, 1)[0].strip() if _CAUSED in text else text
    lines = [line.strip() for line in original.splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
