"""``kill -9`` at random points, then ``--resume``: the same bytes as a run never interrupted."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import pytest
from test_job import corpus  # tests/corpus/test_job.py

from sae.corpus import EmbedOptions, embed_corpus
from sae.corpus.state import state_dir
from sae.engine import Engine

CHUNK_ROWS = 100


def out_suffix(name: str) -> str:
    return name[name.index("."):]


def finished_chunks(out) -> int:
    try:
        return len(json.loads((state_dir(out) / "state.json").read_text())["chunks"])
    except (OSError, ValueError, KeyError):
        return 0


def start(txt, out, tiny_dir):
    # Small batches on one thread: slow enough to be killed mid-run on a fast machine.
    return subprocess.Popen(
        [sys.executable, "-m", "sae", "embed", str(txt), "-o", str(out), "--algorithm", str(tiny_dir),
         "--backend", "cpu", "--batch-size", "16", "--threads", "1", "--chunk-rows", str(CHUNK_ROWS), "--resume"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.parametrize(("name", "lines", "kills"), [("out.parquet", 4000, 3), ("out.npy", 2000, 2)])
def test_kill_9_then_resume_gives_the_same_bytes(tmp_path, tiny_dir, name, lines, kills):
    txt = tmp_path / "in.txt"
    txt.write_text("\n".join(corpus(lines, seed=7)) + "\n")
    reference = tmp_path / ("reference" + out_suffix(name))
    embed_corpus(str(txt), str(reference), Engine(tiny_dir, backend="cpu"), EmbedOptions(chunk_rows=CHUNK_ROWS))
    out = tmp_path / name
    rng = random.Random(lines)
    killed = 0
    for _ in range(kills):
        before = finished_chunks(out)
        proc = start(txt, out, tiny_dir)
        deadline = time.monotonic() + 120
        while proc.poll() is None and finished_chunks(out) <= before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.4))  # somewhere in the next chunks, or in a write, or in a rename
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        killed += proc.returncode == -signal.SIGKILL
        print(f"killed: {proc.returncode == -signal.SIGKILL}, chunks finished: {before} -> {finished_chunks(out)}")
        # The output appears only complete (a temporary name, renamed at the end); a kill
        # that lands after the rename, while the process exits, leaves the whole table.
        assert not out.exists() or out.read_bytes() == reference.read_bytes()
    assert killed >= kills - 1, "the runs finished before they could be killed"
    proc = start(txt, out, tiny_dir)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert out.read_bytes() == reference.read_bytes()
    assert not state_dir(out).exists()
