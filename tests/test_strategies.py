"""The random Algorithms of tests/strategies.py are valid: they survive saving and loading unchanged."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from strategies import algorithms

from sae.algorithm import load_algorithm, save_algorithm


@settings(max_examples=60)
@given(algorithms())
def test_random_algorithms_save_and_load_with_the_same_content_hash(alg):
    with tempfile.TemporaryDirectory() as tmp:
        loaded = load_algorithm(save_algorithm(alg, Path(tmp) / "alg", vector_dtype="float32"))
    assert loaded.rules == alg.rules
    assert loaded.params == alg.params
    assert loaded.content_hash == alg.content_hash
