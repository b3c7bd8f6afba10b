"""BLAS threads: one per process where processes are the parallelism.

numpy's BLAS (OpenBLAS here) starts a thread per core in every process. Where several
worker processes share the machine — `sae serve`'s engine processes, `sae evolve`'s
evaluators — that many threads per process oversubscribe the cores: with two engine
processes on two cores, `tools/loadtest.py --levels 64 --server-args "--workers 2"`
served 11,603–12,142 texts/s with each process's default BLAS threads and
14,949–15,917 with one (p99 235–604 ms against 129–139 ms), docs/SERVE.md.
"""

from __future__ import annotations

import contextlib

_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def one_thread_env() -> dict[str, str]:
    """Environment variables that give a process started with them one BLAS thread."""
    return dict.fromkeys(_VARIABLES, "1")


def limit_to_one_thread() -> int | None:
    """Limit this process's BLAS libraries (already loaded with numpy) to one thread, for
    good; the threads they now use (1), or None without ``threadpoolctl``."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return None
    threadpool_limits(limits=1, user_api="blas")
    return max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=1)


def one_thread() -> contextlib.AbstractContextManager:
    """One BLAS thread inside the block (a no-op context without ``threadpoolctl``)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)
