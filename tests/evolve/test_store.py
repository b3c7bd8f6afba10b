"""The run store: transactions, the digest of the deterministic tables, bad files."""

from __future__ import annotations

import pytest

from sae.errors import InputError
from sae.evolve.store import RunStore, open_existing


def test_transaction_rolls_back(tmp_path):
    store = RunStore(tmp_path / "run.sqlite")
    store.start({"x": 1})
    with pytest.raises(RuntimeError), store.transaction():
        store.add_genome("k", "{}", 0)
        raise RuntimeError("killed")
    assert store.db.execute("SELECT COUNT(*) FROM genomes").fetchone()[0] == 0
    assert store.config() == {"x": 1}


def test_digest_ignores_telemetry_only(tmp_path):
    store = RunStore(tmp_path / "run.sqlite")
    store.start({"x": 1})
    d0 = store.digest()
    with store.transaction():
        store.add_telemetry(0, {"wall_seconds": 1.5})
    assert store.digest() == d0
    with store.transaction():
        store.add_genome("k", "{}", 0)
    assert store.digest() != d0


def test_open_existing_refuses_other_files(tmp_path):
    with pytest.raises(InputError, match="no such run"):
        open_existing(tmp_path / "missing.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(InputError, match="not a run database"):
        open_existing(junk)
