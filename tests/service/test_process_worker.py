"""An engine in a child process: the same bytes and counters as in this one, and clear failures."""

from __future__ import annotations

import multiprocessing.spawn
import os
import signal
from multiprocessing.connection import wait
from multiprocessing.shared_memory import SharedMemory

import pytest

from sae import Engine
from sae.service import ProcessEngine, WorkerProcessError
from sae.service.process_worker import describe_exit

TEXTS = ["the cat runs", "a new york city dog", "", "not happy , very sad !", "the " * 300]


@pytest.fixture(scope="module")
def child(tiny_dir):
    worker = ProcessEngine(tiny_dir)
    yield worker
    worker.close()


def test_the_child_embeds_the_same_bytes_and_counts_the_same(child, tiny_dir):
    engine = Engine(tiny_dir, backend="cpu")
    token_ids = engine.tokenize(TEXTS)
    assert child.embed_tokens(token_ids).tobytes() == engine.embed_tokens(token_ids).tobytes()
    assert child.counters_snapshot() == engine.counters_snapshot()
    assert child.content_hash == engine.algorithm.content_hash and child.alive


def test_a_batch_larger_than_the_shared_block_gets_a_new_block(child, tiny_dir):
    engine = Engine(tiny_dir, backend="cpu")
    small = child.embed_tokens(engine.tokenize(TEXTS[:2]))
    first = child._block.name
    texts = [f"the cat {i} runs" for i in range(3000)]  # more texts than the first block holds
    token_ids = engine.tokenize(texts)
    assert child.embed_tokens(token_ids).tobytes() == engine.embed_tokens(token_ids).tobytes()
    assert child._block.name != first
    with pytest.raises(FileNotFoundError):
        SharedMemory(first)  # the outgrown block was unlinked
    assert child.embed_tokens(engine.tokenize(TEXTS[:2])).tobytes() == small.tobytes()
    assert child.embed_tokens([]).shape == (0, child.dim)


def test_token_ids_outside_the_vocabulary_fail_the_batch_in_one_line(child, tiny_dir):
    symbols = len(Engine(tiny_dir, backend="cpu").algorithm.symbol_rows)
    with pytest.raises(WorkerProcessError, match=f"text 0 has token id {symbols}, outside 0..{symbols - 1}"):
        child.embed_tokens([[symbols]])
    assert child.alive and child.embed_tokens([[1, 2]]).shape == (1, child.dim)


def test_closing_unlinks_the_shared_block(tiny_dir):
    worker = ProcessEngine(tiny_dir)
    worker.embed_tokens([[1, 2]])
    name = worker._block.name
    worker.close()
    with pytest.raises(FileNotFoundError):
        SharedMemory(name)
    with pytest.raises(WorkerProcessError, match="closed"):
        worker.embed_tokens([[1, 2]])


def test_the_child_runs_one_blas_thread(child):
    """Engine processes are the service's parallelism: each with a BLAS thread per core,
    two of them on two cores served a quarter fewer texts (sae.blas)."""
    assert child.blas_threads == 1


def test_the_child_warms_its_engine_up_before_it_is_ready(child):
    assert isinstance(child.warm_up_seconds, float) and child.warm_up_seconds > 0


def test_a_failing_batch_is_an_error_and_the_child_goes_on(child, tiny_dir):
    with pytest.raises(WorkerProcessError, match="outside 0"):
        child.embed_tokens([[10**9]])
    assert child.embed_tokens([[1, 2]]).shape == (1, 8)


def test_a_child_that_cannot_load_the_algorithm(tmp_path):
    with pytest.raises(WorkerProcessError, match="could not start"):
        ProcessEngine(tmp_path / "missing")


def test_a_child_that_loaded_another_algorithm(tiny_dir):
    with pytest.raises(WorkerProcessError, match="another Algorithm"):
        ProcessEngine(tiny_dir, content_hash="0" * 64)


def test_a_child_that_dies_while_starting(tiny_dir, tmp_path, monkeypatch):
    """A broken environment: the interpreter the child is spawned with exits at once."""
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setattr(multiprocessing.spawn, "_python_exe", os.fsencode(broken))  # as set_executable keeps it
    with pytest.raises(WorkerProcessError, match=r"could not start: it died \(exit code 3\)"):
        ProcessEngine(tiny_dir)


def test_a_dead_child_fails_the_batch_and_says_how_it_died(tiny_dir):
    worker = ProcessEngine(tiny_dir)
    try:
        os.kill(worker.pid, signal.SIGKILL)
        assert wait([worker.sentinel], 120) == [worker.sentinel]  # it has ended
        with pytest.raises(WorkerProcessError, match=r"the engine process died \(killed by SIGKILL\)"):
            worker.embed_tokens([[1, 2]])
        assert not worker.alive and worker.exitcode == -signal.SIGKILL
    finally:
        worker.close()


@pytest.mark.parametrize(("exitcode", "said"), [
    (0, "exit code 0"), (1, "exit code 1"), (-9, "killed by SIGKILL"), (-11, "killed by SIGSEGV"),
    (-200, "killed by signal 200"), (None, "exit status unknown"),
])
def test_how_a_process_ended(exitcode, said):
    assert describe_exit(exitcode) == said
