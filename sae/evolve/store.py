"""The run store: one SQLite file (stdlib ``sqlite3``), one transaction per generation.

Tables (every value deterministic except ``telemetry``):

* ``meta``: the run's configuration (canonical JSON) and the store's format;
* ``genomes``: canonical JSON of every genome ever made, by key (SHA-256 of the JSON);
* ``evaluations``: per genome and stage (``fit``; ``valid`` for final candidates): the
  Algorithm's content hash, the objectives, rule statistics, the interaction edges;
* ``births``: per generation and slot, the child, the operator and the parents;
* ``population``: per generation, the survivors with their front and crowding distance;
* ``generations``: per generation, the RNG state after it, best and median quality,
  the best genome, diversity, how many genomes were new;
* ``final``: the Algorithm picked at the end, with the rule that picked it;
* ``telemetry``: wall times and evaluations per second, which vary from run to run:
  recorded, never read back by the search, and left out of :meth:`RunStore.digest`.

A ``kill -9`` at any moment leaves the file at the end of the last committed
generation; SQLite's journal rolls back the rest when it is next opened.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sae.algorithm import canonical_json
from sae.errors import InputError, SaeError, one_line

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; SQLite's own locking still keeps the file consistent
    fcntl = None

FORMAT = "sae-evolve-run"
VERSION = 1

SCHEMA = """
BEGIN;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS genomes (key TEXT PRIMARY KEY, json TEXT NOT NULL, first_gen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (genome TEXT NOT NULL, stage TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (genome, stage));
CREATE TABLE IF NOT EXISTS births (gen INTEGER NOT NULL, slot INTEGER NOT NULL, child TEXT NOT NULL,
    operator TEXT NOT NULL, parents TEXT NOT NULL, PRIMARY KEY (gen, slot));
CREATE TABLE IF NOT EXISTS population (gen INTEGER NOT NULL, slot INTEGER NOT NULL, genome TEXT NOT NULL,
    front INTEGER NOT NULL, crowding REAL NOT NULL, PRIMARY KEY (gen, slot));
CREATE TABLE IF NOT EXISTS generations (gen INTEGER PRIMARY KEY, rng_state TEXT NOT NULL,
    best_quality REAL NOT NULL, median_quality REAL NOT NULL, best_genome TEXT NOT NULL,
    diversity REAL NOT NULL, evaluated INTEGER NOT NULL, summary TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS final (id INTEGER PRIMARY KEY CHECK (id = 0), genome TEXT NOT NULL,
    algorithm TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS telemetry (gen INTEGER PRIMARY KEY, record TEXT NOT NULL);
COMMIT;
"""
#: The tables a run database holds (created together, in one transaction).
TABLES = ("meta", "genomes", "evaluations", "births", "population", "generations", "final", "telemetry")


def _columns(db: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    return [(name, kind) for _, name, kind, *_ in db.execute(f"PRAGMA table_info({table})")]  # a known name


def _schema_columns() -> dict[str, list[tuple[str, str]]]:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.executescript(SCHEMA)
    columns = {table: _columns(db, table) for table in TABLES}
    db.close()
    return columns


#: Each table's (column, type) list, as :data:`SCHEMA` creates it.
_SCHEMA_COLUMNS = _schema_columns()

#: Tables whose contents the same seed and inputs reproduce exactly, with their order.
DETERMINISTIC = (
    ("meta", "key"),
    ("genomes", "key"),
    ("evaluations", "genome, stage"),
    ("births", "gen, slot"),
    ("population", "gen, slot"),
    ("generations", "gen"),
    ("final", "id"),
)


class RunStore:
    """A run's SQLite file. Writes happen inside :meth:`generation` transactions.

    Opened for writing (``sae evolve``), the file must be empty, new or a run database;
    the tables are created in one transaction, the file must take writes, and it is locked
    (``flock``, where the system has it) against a second run for as long as the store is
    open. Opened ``readonly`` (``sae lineage``), nothing is created, locked or written.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self._lock = None
        try:
            if readonly:
                self.db = sqlite3.connect(_read_only_uri(self.path), uri=True)
            else:
                self.db = sqlite3.connect(str(self.path), isolation_level=None)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a usable run database ({exc})") from None
        try:
            self._check_tables(complete=readonly)
            if not readonly:
                self._lock_file()
                self.db.execute("PRAGMA synchronous=FULL")
                self.db.executescript(SCHEMA)
                self._check_writable()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise InputError(f"{self.path}: not a usable run database ({exc})") from None
        except BaseException:
            self.close()
            raise

    def _check_tables(self, complete: bool) -> None:
        """Refuse a database of another program (its tables would gain ours) and, when
        ``complete``, a run database without all its tables. A file with some of our
        tables and no others is a run whose creation was interrupted."""
        have = {name for (name,) in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        foreign = sorted(have - set(TABLES))
        if foreign:
            raise InputError(f"{self.path}: not a sae evolve run database (it holds table {foreign[0]!r}); "
                             "name a new or an empty --run file")
        for table in sorted(have):
            if _columns(self.db, table) != _SCHEMA_COLUMNS[table]:
                raise InputError(f"{self.path}: not a sae evolve run database (table {table!r} has other columns)")
        if complete and set(TABLES) - have:
            missing = sorted(set(TABLES) - have)
            raise InputError(f"{self.path}: not a complete sae evolve run database (table {missing[0]!r} is missing)")
        if "meta" in have:  # checked before our tables are added to a file that is refused
            keys = sorted({key for (key,) in self.db.execute("SELECT key FROM meta")} - {"format", "config", "probe"})
            if keys:
                raise InputError(f"{self.path}: not a sae evolve run database (its meta table holds {keys[0]!r}); "
                                 "name a new or an empty --run file")
            self.check_format()

    def _lock_file(self) -> None:
        if fcntl is None:
            return
        self._lock = open(self.path, "rb")  # held, and so locked, until close()
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{self.path}: in use by another sae evolve; wait for it to end or name "
                             "another --run file") from None
        except OSError:  # a file system without flock (some network mounts): SQLite's locking still holds
            self._lock.close()
            self._lock = None

    def _check_writable(self) -> None:
        """A write rolled back at once: a read-only file fails here, before any work."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('probe', '')")
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: the run database cannot be written ({exc})") from None
        finally:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")

    def close(self) -> None:
        self.db.close()
        if self._lock is not None:  # after the database: closing it drops SQLite's locks on the file too
            self._lock.close()
            self._lock = None

    # -- configuration ----------------------------------------------------------------------
    def config(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT value FROM meta WHERE key='config'").fetchone()
        return self._json(row[0], "meta.config") if row else None

    def start(self, config: dict[str, Any]) -> None:
        with self.transaction():
            self.db.execute("INSERT INTO meta VALUES ('format', ?)", (f"{FORMAT} {VERSION}",))
            self.db.execute("INSERT INTO meta VALUES ('config', ?)", (canonical_json(config),))

    def check_format(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE key='format'").fetchone()
        if row and row[0] != f"{FORMAT} {VERSION}":
            raise InputError(f"{self.path}: run format {row[0]!r}, this sae writes {FORMAT} {VERSION}")

    # -- transactions --------------------------------------------------------------------------
    def transaction(self) -> _Transaction:
        return _Transaction(self.db, self.path)

    # -- reading ---------------------------------------------------------------------------------
    def last_generation(self) -> int | None:
        row = self.db.execute("SELECT MAX(gen) FROM generations").fetchone()
        return row[0]

    def generation(self, gen: int) -> dict[str, Any]:
        row = self.db.execute(
            "SELECT rng_state, best_quality, median_quality, best_genome, diversity, evaluated, summary "
            "FROM generations WHERE gen=?", (gen,)).fetchone()
        where = f"generations[{gen}]"
        return {"gen": gen, "rng_state": self._json(row[0], f"{where}.rng_state"), "best_quality": row[1],
                "median_quality": row[2], "best_genome": row[3], "diversity": row[4], "evaluated": row[5],
                "summary": self._json(row[6], f"{where}.summary")}

    def generations(self) -> list[dict[str, Any]]:
        return [self.generation(g) for (g,) in self.db.execute("SELECT gen FROM generations ORDER BY gen")]

    def population(self, gen: int) -> list[tuple[str, int, float]]:
        return [(k, f, c) for k, f, c in self.db.execute(
            "SELECT genome, front, crowding FROM population WHERE gen=? ORDER BY slot", (gen,))]

    def genome_json(self, key: str) -> str:
        row = self.db.execute("SELECT json FROM genomes WHERE key=?", (key,)).fetchone()
        if row is None:
            raise InputError(f"{self.path}: genome {key[:16]} is missing")
        return row[0]

    def genome_doc(self, key: str) -> Any:
        """The genome's JSON, parsed."""
        return self._json(self.genome_json(key), f"genomes[{key[:16]}]")

    def _json(self, text: Any, where: str, kind: type = object) -> Any:
        """A stored JSON value (of ``kind``); a run file edited or damaged outside sae is one
        line naming the row (SQLite's own checks do not see inside a value)."""
        try:
            value = json.loads(text)
        except (TypeError, ValueError):
            raise InputError(f"{self.path}: {where}: not valid JSON; the run database is damaged") from None
        if not isinstance(value, kind):
            raise InputError(f"{self.path}: {where}: not a JSON {'object' if kind is dict else kind.__name__}; "
                             "the run database is damaged")
        return value

    def evaluations(self, stage: str = "fit") -> dict[str, dict[str, Any]]:
        return {g: self._json(r, f"evaluations[{g[:16]}]", dict) for g, r in self.db.execute(
            "SELECT genome, record FROM evaluations WHERE stage=?", (stage,))}

    def births(self) -> dict[str, tuple[int, str, list[str]]]:
        """Each genome's first birth: generation, operator, parents."""
        out: dict[str, tuple[int, str, list[str]]] = {}
        for gen, child, op, parents in self.db.execute(
                "SELECT gen, child, operator, parents FROM births ORDER BY gen, slot"):
            out.setdefault(child, (gen, op, self._json(parents, f"births[{child[:16]}].parents")))
        return out

    def final(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT genome, algorithm, record FROM final WHERE id=0").fetchone()
        return {"genome": row[0], "algorithm": row[1], **self._json(row[2], "final.record", dict)} if row else None

    def telemetry(self) -> dict[int, dict[str, Any]]:
        return {g: self._json(r, f"telemetry[{g}]", dict) for g, r in self.db.execute("SELECT gen, record FROM telemetry")}

    def digest(self) -> str:
        """SHA-256 over every deterministic table, row by row in key order."""
        h = hashlib.sha256()
        for table, order in DETERMINISTIC:
            h.update(table.encode())
            for row in self.db.execute(f"SELECT * FROM {table} ORDER BY {order}"):  # table names are constants
                h.update(canonical_json(list(row)).encode())
        return h.hexdigest()

    # -- writing (inside a transaction) ----------------------------------------------------------
    def add_genome(self, key: str, genome_json: str, gen: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO genomes VALUES (?, ?, ?)", (key, genome_json, gen))

    def add_evaluation(self, key: str, stage: str, record: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?)", (key, stage, canonical_json(record)))

    def add_birth(self, gen: int, slot: int, child: str, operator: str, parents: list[str]) -> None:
        self.db.execute("INSERT INTO births VALUES (?, ?, ?, ?, ?)", (gen, slot, child, operator, json.dumps(parents)))

    def add_population(self, gen: int, ranked: list[tuple[str, int, float]]) -> None:
        for slot, (key, front, crowd) in enumerate(ranked):
            self.db.execute("INSERT INTO population VALUES (?, ?, ?, ?, ?)",
                            (gen, slot, key, front, crowd if crowd != float("inf") else 1e300))

    def add_generation(self, gen: int, rng_state: dict[str, Any], best: float, median: float, best_key: str,
                       div: float, evaluated: int, summary: dict[str, Any]) -> None:
        self.db.execute("INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (gen, canonical_json(rng_state), best, median, best_key, div, evaluated,
                         canonical_json(summary)))

    def set_final(self, genome: str, algorithm: str, record: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO final VALUES (0, ?, ?, ?)", (genome, algorithm, canonical_json(record)))

    def add_telemetry(self, gen: int, record: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO telemetry VALUES (?, ?)", (gen, canonical_json(record)))


class _Transaction:
    """``with store.transaction():`` BEGIN IMMEDIATE … COMMIT, ROLLBACK on an exception.
    A write the file refuses (read-only, full disk) or a row another process added ends
    in one line (:class:`SaeError`), not a traceback."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db, self.path = db, path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise SaeError(f"{self.path}: cannot write the run database ({exc})") from None
        return self.db

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
                return False
            except sqlite3.DatabaseError as exc:
                self.db.execute("ROLLBACK")
                raise SaeError(f"{self.path}: cannot write the run database ({exc})") from None
        self.db.execute("ROLLBACK")
        if issubclass(exc_type, sqlite3.IntegrityError):
            raise SaeError(f"{self.path}: the run database changed underneath this run ({exc}); "
                           "was another sae evolve writing it?") from None
        if issubclass(exc_type, sqlite3.DatabaseError):
            raise SaeError(f"{self.path}: cannot write the run database ({exc})") from None
        return False


@contextmanager
def readable_run(path: str | Path) -> Iterator[None]:
    """SQLite refusing a run file midway (a damaged page, a value that is not UTF-8) as one
    line naming it: what ``sae lineage`` and ``sae evolve --resume`` read past the checks
    of :func:`open_existing` and :class:`RunStore`."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise InputError(f"{path}: not a usable run database ({one_line(exc)})") from None


def _read_only_uri(path: Path) -> str:
    """SQLite's URI of ``path`` opened read-only: the path percent-encoded, as a name with
    ``#`` or ``?`` would otherwise end it there (and open, or create, another file)."""
    return f"{path.resolve().as_uri()}?mode=ro"


def open_existing(path: str | Path) -> RunStore:
    """Open a run file for reading (``sae lineage``); one-line error when it is not one."""
    if str(path) == "":  # Path("") is the current directory
        raise InputError("an empty name where a run database was expected; name the file")
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a run database")
    if not p.is_file():
        raise InputError(f"{p}: no such run database")
    try:
        db = sqlite3.connect(_read_only_uri(p), uri=True)
        row = db.execute("SELECT value FROM meta WHERE key='format'").fetchone()
        db.close()
    except sqlite3.DatabaseError as exc:
        raise InputError(f"{p}: not a run database ({exc})") from None
    if not row or not str(row[0]).startswith(FORMAT):
        raise InputError(f"{p}: not a sae evolve run database")
    return RunStore(p, readonly=True)


__all__ = ["RunStore", "open_existing"]
