"""Resume state: what an output's run has finished, kept beside the output.

An output ``DIR/NAME`` keeps its state in ``DIR/.NAME.resume/`` while it is written:
``state.json`` (the run's identity and one record per finished chunk: its rows, a
digest of its texts and the command's notes on it), whatever the output format keeps
there (:mod:`sae.corpus.sinks`), and a lock. ``state.json`` is replaced atomically after
each chunk, so after a crash or ``kill -9`` it names exactly the chunks that are safely on
disk. The directory is removed when the output is complete. A :class:`ResumePolicy` says how a command treats the state
of an interrupted run: ``sae embed`` starts over without ``--resume``; ``sae teach``,
whose chunks take minutes of a teacher model, refuses to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sae.errors import InputError

log = logging.getLogger(__name__)

STATE_FORMAT = "sae-embed-resume"
STATE_VERSION = 1


class ResumeRefusedError(InputError):
    """The input of a resumed run, or what the interrupted run kept, is not what it should
    be: refused, and the state is kept for the right command."""


@dataclass(frozen=True)
class ResumePolicy:
    """How a command treats what an interrupted run kept (``sae embed``'s way by default)."""

    #: the command named when another process is writing the same output
    command: str = "sae embed"
    #: what a refused resume advises, to start over
    start_over: str = "run without --resume to start over"
    #: a run without ``--resume`` discards an interrupted run's state (False: it is refused,
    #: so that nothing already computed is lost without being asked)
    discard: bool = True
    #: keep the state when the input turns out bad mid-run (the rows before it stay good,
    #: and a corrected input resumes after them when the command checks texts, not dates)
    keep_on_bad_input: bool = False


#: ``sae embed``'s policy
EMBED_POLICY = ResumePolicy()


def state_dir(out: Path) -> Path:
    """Where the resume state of output ``out`` lives."""
    return out.parent / f".{out.name}.resume"


def text_digest(table: Any) -> str:  # (pyarrow.Table) -> str
    """A digest of a chunk's ``text`` column: the lengths and bytes of its strings."""
    import numpy as np

    column = table.column("text").combine_chunks()
    hasher = hashlib.blake2b(digest_size=16)
    if len(column):
        offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[column.offset : column.offset + len(column) + 1]
        hasher.update(np.diff(offsets).astype("<i8").tobytes())
        data = column.buffers()[2]
        if data is not None:
            hasher.update(memoryview(data)[int(offsets[0]) : int(offsets[-1])])
    return hasher.hexdigest()


def sync(path: Path) -> None:
    """Wait until ``path`` is on disk: a file's data, or a directory's entries (a rename in
    it). Without this a finished chunk survives a killed process but not a crash of the
    operating system or a power cut, which can leave a renamed file empty."""
    if os.name == "nt" and path.is_dir():  # pragma: no cover - Windows cannot open a directory
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomically(path: Path, doc: dict[str, Any]) -> None:
    """Replace ``path`` with ``doc`` so that a reader sees the old or the new file, never
    half, even after a crash of the system (:func:`sync`)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, sort_keys=True, indent=1) + "\n")
    sync(tmp)
    os.replace(tmp, path)
    sync(path.parent)


def first_difference(old: Any, new: Any, where: str = "") -> str | None:
    """The first key path where two JSON documents differ, with both values; None if equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            diff = first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else key)
            if diff:
                return diff
        return None
    if old != new:
        return f"{where} was {old!r}, now {new!r}"
    return None


def describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """How a run's identity differs from an interrupted run's, in words; None if the same."""
    before, now = old.get("input"), new.get("input")
    if isinstance(before, dict) and isinstance(now, dict) and before != now and before.get("path") == now.get("path"):
        if before.get("columns") != now.get("columns"):
            return f"the columns of {now.get('path')} changed"
        return f"{now.get('path')} changed since (its size or modification time)"
    if isinstance(before, dict) and isinstance(now, dict) and before.get("path") != now.get("path"):
        return f"it read {_input_name(before)}, this run reads {_input_name(now)}"
    return first_difference(old, new)


def _input_name(identity: dict[str, Any]) -> str:
    """An input as a message names it: its path, or stdin (which has none)."""
    return str(identity.get("path") or identity.get("kind") or "another input")


@dataclass
class ChunkRecord:
    rows: int
    digest: str
    #: what the command noted about the chunk, to report for the whole output at the end
    #: (``sae teach``: the texts its teacher cut); None when it notes nothing
    notes: dict[str, Any] | None = None


@dataclass
class ResumeState:
    """The finished chunks of one output, and the identity of the run that wrote them."""

    directory: Path
    identity: dict[str, Any]
    chunks: list[ChunkRecord] = field(default_factory=list)
    _lock: Any = None

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.chunks)

    @classmethod
    def inspect(cls, out: Path, identity: dict[str, Any], resume: bool,
                policy: ResumePolicy = EMBED_POLICY) -> ResumeState | None:
        """The interrupted run's state when ``resume`` finds one with the same identity,
        None when there is nothing to resume; an :class:`InputError` when it differs, or
        when there is one with finished chunks, no ``resume`` and a ``policy`` that does not
        discard it.
        Reads only: :meth:`open` takes the lock."""
        path = state_dir(out) / "state.json"
        if not path.exists():
            return None
        if not resume:
            kept = resumable_rows(out)
            if not policy.discard and kept:  # a state of no finished chunk loses nothing
                where = state_dir(out)
                raise InputError(f"{out}: an interrupted run kept {kept:,} embedded text(s) in {where}; "
                                 f"pass --resume to continue it, or delete {where} to start over")
            return None
        state = cls._load(state_dir(out), path, out, policy)
        diff = describe_difference(state.identity, identity)
        if diff:
            raise InputError(f"{out}: cannot resume, the interrupted run differs: {diff} ({policy.start_over})")
        return state

    @classmethod
    def open(cls, out: Path, identity: dict[str, Any], resume: bool,
             policy: ResumePolicy = EMBED_POLICY) -> ResumeState:
        """The state for writing ``out``, locked: the interrupted run's when ``resume``
        finds one with the same identity (see :meth:`inspect`), otherwise a fresh one."""
        directory = state_dir(out)
        lock = _lock(directory / "lock", out, policy.command) if directory.is_dir() else None
        try:
            state = cls.inspect(out, identity, resume, policy)
        except BaseException:
            _unlock(lock)
            raise
        if state is not None:
            state._lock = lock
            log.info("resuming %s after %d rows (%d chunks)", out, state.rows, len(state.chunks))
            return state
        if resume:
            log.info("nothing to resume for %s; starting from the beginning", out)
        elif (directory / "state.json").exists():
            log.info("discarding the unfinished run of %s (use --resume to continue one)", out)
        _unlock(lock)
        shutil.rmtree(directory, ignore_errors=True)
        try:
            directory.mkdir()
        except OSError as exc:
            raise InputError(f"{out}: cannot create its resume state {directory.name}: {exc.strerror or exc}") from None
        state = cls(directory, identity, [], _lock(directory / "lock", out, policy.command))
        state.save()
        return state

    @classmethod
    def _load(cls, directory: Path, path: Path, out: Path, policy: ResumePolicy) -> ResumeState:
        try:
            doc = json.loads(path.read_text())
            # JSON of another shape ([1, 2], "identity": null) is as unreadable as garbled text
            if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT or doc.get("version") != STATE_VERSION:
                raise ValueError("unknown format")
            if not isinstance(doc["identity"], dict):
                raise ValueError("no identity")
            chunks = [ChunkRecord(int(c["rows"]), str(c["digest"]), _notes(c.get("notes"))) for c in doc["chunks"]]
            return cls(directory, doc["identity"], chunks)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{out}: cannot resume, its state {path} is unreadable ({exc}); "
                             f"{policy.start_over}") from None

    def save(self) -> None:
        write_json_atomically(self.directory / "state.json", {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "identity": self.identity,
            "chunks": [{"rows": c.rows, "digest": c.digest} | ({"notes": c.notes} if c.notes is not None else {})
                       for c in self.chunks],
        })

    def keep(self, chunks: int) -> None:
        """Forget the finished chunks after the first ``chunks`` (their saved output is damaged)."""
        del self.chunks[chunks:]
        self.save()

    def commit(self, rows: int, digest: str, notes: dict[str, Any] | None = None) -> None:
        """Record one more finished chunk (after its data is on disk), with the command's ``notes``."""
        self.chunks.append(ChunkRecord(rows, digest, notes))
        self.save()

    def close(self) -> None:
        """Release the lock and keep the state (for ``--resume``)."""
        _unlock(self._lock)
        self._lock = None

    def remove(self) -> None:
        """The output is complete: release the lock and remove the state."""
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def _notes(value: Any) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"notes of another shape: {value!r}")
    return value


def check_not_written(out: Path, command: str) -> None:
    """Refuse ``out`` when another process holds its state's lock, that is, is writing it:
    a refusal that comes before any work, and before a message would call the state an
    interrupted run's. Takes the lock only for the time of the check."""
    directory = state_dir(out)
    if directory.is_dir():
        _unlock(_lock(directory / "lock", out, command))


def resumable_rows(out: Path) -> int:
    """Rows that the state beside ``out`` records as finished (0 without one); not checked."""
    try:
        doc = json.loads((state_dir(out) / "state.json").read_text())
        return sum(int(c["rows"]) for c in doc["chunks"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


class DatasetState:
    """Which parts of a dataset a run has finished (a file in the output directory)."""

    def __init__(self, path: Path, identity: dict[str, Any], done: set[str]) -> None:
        self.path, self.identity, self.done = path, identity, done

    @staticmethod
    def peek(path: Path) -> set[str]:
        """The finished parts that ``path`` records (none without it); not checked."""
        try:
            return set(json.loads(path.read_text())["done"])
        except (OSError, ValueError, KeyError, TypeError):
            return set()

    @classmethod
    def open(cls, path: Path, identity: dict[str, Any], resume: bool, out: str) -> DatasetState:
        """The interrupted run's record when ``resume`` and its finished parts are unchanged,
        else a fresh one. ``identity`` is ``{"parts": {relative: part identity}}``.

        Only the finished parts are compared: they are what the record vouches for. An
        unfinished part (one fixed after it failed, say) has its own state, which decides
        whether its output goes on or starts over. A finished part that left the dataset
        is refused: its output would stay in OUT beside the others."""
        done: set[str] = set()
        parts = identity["parts"]
        if resume and path.exists():
            try:
                doc = json.loads(path.read_text())
                old, done = doc["identity"]["parts"], set(doc["done"])
                if not isinstance(old, dict) or not all(isinstance(old.get(r), dict) for r in done):
                    raise ValueError("unknown format")
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise InputError(f"{out}: cannot resume, {path} is unreadable ({exc}); "
                                 "run without --resume to start over") from None
            gone = sorted(done - set(parts))
            if gone:
                raise InputError(f"{out}: cannot resume, the interrupted run finished {gone[0]}, which the input "
                                 "no longer holds (run without --resume to start over)")
            for relative in sorted(done):
                diff = describe_difference(old[relative], parts[relative])
                if diff:
                    raise InputError(f"{out}: cannot resume, the interrupted run differs: {diff} "
                                     "(run without --resume to start over)")
            log.info("resuming %s: %d of %d parts were finished", out, len(done), len(parts))
        state = cls(path, identity, done)
        state._save()
        return state

    def _save(self) -> None:
        write_json_atomically(self.path, {"identity": self.identity, "done": sorted(self.done)})

    def mark(self, relative: str) -> None:
        self.done.add(relative)
        self._save()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _lock(path: Path, out: Path, command: str) -> Any:
    """An exclusive lock on ``path`` (released by the OS if the process dies); None where
    the platform has no ``fcntl``."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    handle = open(path, "a+b")  # held for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise InputError(f"{out}: another {command} is writing this output") from None
    return handle


def _unlock(handle: Any) -> None:
    if handle is not None:
        handle.close()
