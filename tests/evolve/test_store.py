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


def test_a_second_writer_is_refused_while_the_first_has_the_file(tmp_path):
    pytest.importorskip("fcntl", reason="the run file lock is flock, which this system lacks")
    first = RunStore(tmp_path / "run.sqlite")
    with pytest.raises(InputError, match="in use by another sae evolve"):
        RunStore(tmp_path / "run.sqlite")
    reader = open_existing_after_start(first, tmp_path / "run.sqlite")  # readers need no lock
    assert reader.config() == {"x": 1}
    reader.close()
    first.close()
    RunStore(tmp_path / "run.sqlite").close()  # free again


def open_existing_after_start(store: RunStore, path):
    store.start({"x": 1})
    return open_existing(path)


def test_a_read_only_run_file_is_refused_before_any_work(tmp_path, monkeypatch):
    """A file the system will not let us write (read-only mount, or permissions for a
    user who is not root) fails at open, in one line, not after a generation."""
    import sqlite3

    path = tmp_path / "run.sqlite"
    store = RunStore(path)
    store.start({"x": 1})
    store.close()
    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda target, **kw: connect(f"file:{target}?mode=ro", uri=True, **kw))
    with pytest.raises(InputError, match=r"cannot be written.*readonly"):
        RunStore(path)


def test_reading_a_run_writes_nothing(tmp_path):
    """``sae lineage`` opens read-only: a file with a run's format row but not its tables
    is refused, not completed with our tables."""
    import sqlite3

    path = tmp_path / "partial.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('format', 'sae-evolve-run 1')")
    before = path.read_bytes()
    with pytest.raises(InputError, match="not a complete sae evolve run database"):
        open_existing(path)
    assert path.read_bytes() == before


def test_a_write_refused_mid_run_is_one_line(tmp_path):
    """A row another process added (two runs on one file where there is no lock) ends the
    run with one line, not an IntegrityError traceback."""
    from sae.errors import SaeError

    store = RunStore(tmp_path / "run.sqlite")
    with store.transaction():
        store.add_birth(0, 0, "child", "random", [])
    with pytest.raises(SaeError, match="changed underneath this run"), store.transaction():
        store.add_birth(0, 0, "child", "random", [])


def test_a_file_of_another_program_or_format_is_refused_unchanged(tmp_path):
    """Found by an adversarial pass: a database whose only table was a ``meta`` of the same
    columns was adopted, and a run file of another format gained our tables before the refusal."""
    import contextlib
    import sqlite3

    def meta_only(name: str, key: str, value: str):
        path = tmp_path / name
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute("INSERT INTO meta VALUES (?, ?)", (key, value))
            db.commit()
        return path, path.read_bytes()

    for (path, before), refusal in ((meta_only("foreign.sqlite", "app", "someapp"),
                                     "not a sae evolve run database \\(its meta table holds 'app'\\)"),
                                    (meta_only("older.sqlite", "format", "sae-evolve-run 0"),
                                     "run format 'sae-evolve-run 0'")):
        with pytest.raises(InputError, match=refusal):
            RunStore(path)
        assert path.read_bytes() == before
