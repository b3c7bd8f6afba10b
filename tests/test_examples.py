"""The programs in examples/ run as a user would run them and print what they promise.

``serve_clients.py`` needs a running server: tests/service/test_examples_serve.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from sae import Engine

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name: str, *args: str, cwd: Path | None = None) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                            timeout=300, cwd=cwd)
    assert result.returncode == 0, f"{name} exited {result.returncode}: {result.stderr[-2000:]}"
    return result.stdout


def test_similarity_prints_each_sentence_nearest_neighbour(tmp_path):
    out = run_example("similarity.py", cwd=tmp_path).splitlines()
    assert len(out) == 4 and all("closest:" in line for line in out)
    # The pair the example is about: the guitar and the instrument are each other's nearest.
    assert re.search(r"'A man is playing a guitar\.'\s+closest: 'Someone is playing an instrument\.'", out[0])
    vectors = Engine(backend="cpu").embed(["A man is playing a guitar.", "Someone is playing an instrument."])
    assert out[0].endswith(f"({float(vectors[0] @ vectors[1]):.3f})")


def test_custom_rules_shows_its_rule_firing(tmp_path):
    out = run_example("custom_rules.py", cwd=tmp_path)
    assert "rule bind_negation score 150" in out  # the rule, formatted back from the text form
    assert re.search(r"step\s+\d+\s+bind_negation @\s+3\s+commit", out)
    assert "not[PUSH]" in out and "happy[MUL]" in out


def test_embed_corpus_writes_and_reads_back_parquet(tmp_path):
    out = run_example("embed_corpus.py", cwd=tmp_path)
    match = re.search(r"^20000 rows in [\d.]+ s \([\d,]+ texts/s\) -> (\S+)$", out, re.M)
    assert match, out
    first = re.search(r"^4096 rows, first: A man is playing guitar number 0\. -> \[(.*?)\]", out, re.M)
    assert first, out
    with np.errstate(under="ignore"):  # float16 rounds the smallest components to 0, as the sink does
        expected = Engine(backend="cpu").embed(["A man is playing guitar number 0."])[0].astype(np.float16)
    assert np.array_equal(np.array(first.group(1).split(), dtype=np.float16), expected[:4])
