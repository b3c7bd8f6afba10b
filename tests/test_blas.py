"""sae.blas: one BLAS thread per worker process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sae.blas import one_thread_env

threadpoolctl = pytest.importorskip("threadpoolctl", reason="needs threadpoolctl (pip install 'sae[serve]')")


def test_the_limit_holds_for_good_and_the_block_restores():
    code = ("import numpy; from sae.blas import limit_to_one_thread, one_thread; from threadpoolctl import "
            "threadpool_info as info\n"
            "n = lambda: max((l['num_threads'] for l in info() if l['user_api'] == 'blas'), default=1)\n"
            "before = n()\nwith one_thread(): inside = n()\nafter = n()\n"
            "print(before, inside, after, limit_to_one_thread(), n())")
    before, inside, after, limited, later = map(int, subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert inside == limited == later == 1 and after == before


def test_a_process_started_with_the_environment_has_one_blas_thread():
    import os

    code = ("import numpy; from threadpoolctl import threadpool_info as info; "
            "print(max((l['num_threads'] for l in info() if l['user_api'] == 'blas'), default=1))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, **one_thread_env()}).stdout
    assert int(out) == 1
