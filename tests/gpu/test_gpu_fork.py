"""A GPU Engine after os.fork: the child cannot use its parent's device (its first readback
waited forever), nor open one of its own once the parent had; both say so at once."""

from __future__ import annotations

import multiprocessing
import os

import pytest
from gpu_helpers import skip_without_gpu
from tiny import SAMPLE_TEXTS, make_tiny

from sae import Engine

skip_without_gpu()
pytestmark = pytest.mark.skipif(not hasattr(os, "register_at_fork"), reason="no fork on this platform")


def _in_forked_child(work) -> tuple[str, str]:
    """What ``work()`` raised in a forked child, as (type name, message); ("ok", "") if nothing."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()

    def child() -> None:
        try:
            work()
            queue.put(("ok", ""))
        except Exception as exc:  # the parent checks it
            queue.put((type(exc).__name__, str(exc)))

    process = context.Process(target=child)
    process.start()
    try:
        return queue.get(timeout=60)  # before the fix: no answer, ever
    finally:
        if process.is_alive():
            process.kill()
        process.join()


# Forking a process with threads (wgpu's) is what this tests; Python 3.12+ warns of it.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_a_forked_child_is_told_to_spawn_instead_of_waiting_forever():
    engine = Engine(make_tiny(), backend="gpu")
    before = engine.embed(SAMPLE_TEXTS)
    kind, message = _in_forked_child(lambda: engine.embed(SAMPLE_TEXTS))
    assert kind == "GpuError" and "a forked child cannot use its device" in message and "'spawn'" in message
    kind, message = _in_forked_child(lambda: Engine(make_tiny(), backend="gpu"))
    assert kind == "BackendUnavailableError" and "forked from process" in message and "'spawn'" in message
    kind, _ = _in_forked_child(lambda: Engine(make_tiny(), backend="cpu").embed(SAMPLE_TEXTS))
    assert kind == "ok"
    assert engine.embed(SAMPLE_TEXTS).tobytes() == before.tobytes()  # the parent's device still serves
