"""The public engine: load an Algorithm, embed texts, explain one text."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from sae.algorithm import Algorithm, check_algorithm, load_algorithm
from sae.backend import Backend
from sae.batch import AnnealStats, ProgramBatch, as_documents, check_lengths, check_token_ids, lengths_of
from sae.errors import AlgorithmError, BackendUnavailableError
from sae.layout import DEFAULT_CAPACITIES, Capacities
from sae.profile import Profiler, maybe_scope
from sae.windows import Windows, cut_to_capacity

log = logging.getLogger(__name__)

BACKENDS = ("auto", "cpu", "gpu")
#: What an Engine makes of a text longer than the stream capacity (:mod:`sae.windows`).
LONG_TEXTS = ("window", "truncate")


def check_long_texts(value: str, owner: str) -> None:
    """Raise ``ValueError``, naming ``owner``, unless ``value`` is one of :data:`LONG_TEXTS`."""
    if value not in LONG_TEXTS:
        raise ValueError(f"{owner}: long_texts must be one of {', '.join(LONG_TEXTS)}, got {value!r}")


def as_texts(texts: Sequence[str], caller: str) -> list[str]:
    """``texts`` as a list, or a ``TypeError`` naming ``caller`` and the first element that is
    not a ``str``: every path must refuse the same way (a large batch on a many-core machine
    goes to the tokenizer's batch call, which would read a tuple as a sentence pair). A bare
    ``str`` is refused too (it would be read as one text per character), and so is an
    unordered collection (a set: its rows would come back in an order that changes from
    one process to the next)."""
    if isinstance(texts, bytes | bytearray):
        raise TypeError(f"{caller}: texts are bytes; decode them to str first")
    if isinstance(texts, str):
        raise TypeError(f"{caller}: expected a sequence of str, got one str; pass [text]")
    if isinstance(texts, set | frozenset | dict | type({}.keys()) | type({}.values())):
        raise TypeError(f"{caller}: texts are an unordered {type(texts).__name__}; pass a list "
                        "(rows come back in the order given)")
    try:
        texts = list(texts)
    except TypeError:
        raise TypeError(f"{caller}: expected a str or a sequence of str, got {type(texts).__name__}") from None
    if not all(isinstance(t, str) for t in texts):
        i, bad = next((i, t) for i, t in enumerate(texts) if not isinstance(t, str))
        raise TypeError(f"{caller}: texts[{i}] is {type(bad).__name__}, not str")
    return texts


def check_encodable(texts: Sequence[str], caller: str, first: int = 0) -> None:
    """Raise ``ValueError`` naming the first text that is not valid Unicode (a lone
    surrogate, which no UTF-8 tokenizer can take); ``texts`` start at index ``first`` of
    the caller's. Called after the tokenizer failed, so the common path pays nothing."""
    for i, text in enumerate(texts, first):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{caller}: texts[{i}] has a lone surrogate at character {exc.start} "
                             "(not encodable as UTF-8)") from None


def make_backend(
    name: str, alg: Algorithm, caps: Capacities, adapter: str | None = None, batch_size: int | None = None
) -> Backend:
    """Build backend ``name`` (auto, cpu or gpu).

    ``auto`` takes a hardware GPU adapter when one can run sae and otherwise the
    numpy path, and logs which: a software adapter (Mesa's lavapipe, WARP) is slower
    than numpy, so auto uses it only when named with ``adapter``. An explicit ``gpu``
    with no usable adapter raises :class:`~sae.errors.BackendUnavailableError`.
    ``batch_size`` is the GPU chunk (documents per dispatch).
    """
    if name not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
    if name in ("gpu", "auto"):
        try:
            from sae.gpu import GpuBackend, choose_adapter

            if name == "auto" and adapter is None:
                info = choose_adapter()
                if info.is_software:
                    raise BackendUnavailableError(
                        f"only a software adapter ({info.name}, {info.backend}) is available, slower than "
                        "numpy here; pass --backend gpu to use it"
                    )
            return GpuBackend(alg, caps, adapter=adapter, chunk=batch_size)
        except BackendUnavailableError as exc:
            if name == "gpu":
                raise
            log.warning("%s; using the CPU backend", exc)
        except ImportError as exc:
            if name == "gpu":
                raise BackendUnavailableError(f"the GPU backend cannot be loaded: {exc}") from None
            log.warning("GPU backend unavailable (%s); using the CPU backend", exc)
    from sae.cpu import CpuBackend

    return CpuBackend(alg, caps)


class _TextProgress:
    """A ``progress`` callback counting texts, fed the documents of windowed texts: it
    reports the texts in proportion to the documents done, all of them at the end."""

    def __init__(self, progress: Callable[[int], None] | None, windows: Windows) -> None:
        self.progress = progress
        self.documents = len(windows.documents)
        self.texts = windows.texts
        self.done = 0
        self.reported = 0

    def __call__(self, documents: int) -> None:
        self.done += documents
        texts = self.texts * self.done // self.documents
        if self.progress is not None and texts > self.reported:
            self.progress(texts - self.reported)
        self.reported = max(self.reported, texts)


@dataclass
class EngineCounters:
    """Running totals of everything an :class:`Engine` has embedded (for metrics).

    Read them with :meth:`Engine.counters_snapshot`; they only grow.
    """

    texts: int = 0
    tokens: int = 0  #: tokens embedded (after truncation, when the Engine truncates)
    batches: int = 0
    steps: int = 0  #: annealing steps, summed over batches
    committed: int = 0  #: rewrites committed
    reverted: int = 0  #: rewrites reverted by the health check


@dataclass(frozen=True)
class Explanation:
    """Everything the engine did with one text (``Engine.explain``; ``sae trace`` prints it).

    ``initial`` and ``final`` are structured arrays of ``sae.layout.PROGRAM_ITEM``, one
    record an item: ``symbol``, ``token``, ``pos``, ``span``, ``opcode`` (``sae.layout.Op``),
    ``arg0`` (vector row), ``arg1`` (weight, Q16), ``mod`` (transform), ``marks``.
    ``journal`` is one ``sae.layout.JOURNAL_ENTRY`` record an attempted rewrite, in order:
    ``step``, ``rule`` (an index into ``rule_names``), ``outcome`` (``COMMITTED`` or
    ``REVERTED``) and the rest ``sae.layout.JOURNAL_ENTRY_FIELDS`` describes.
    """

    text: str
    tokens: list[str]
    initial: np.ndarray  # ProgramItems before annealing
    final: np.ndarray  # ProgramItems after annealing
    journal: np.ndarray  # JOURNAL_ENTRY records, in order
    rule_names: list[str]
    symbols: list[str]  # readable name of each final item's symbol
    embedding: np.ndarray


class Closable:
    """``closed``, ``with`` and the refusal after :meth:`close`, for an object that holds a
    backend (:class:`Engine`, :class:`~sae.population.PopulationEvaluator`); the subclass
    defines ``close`` and sets ``_closed``."""

    _closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Engine:
        self._check_open(f"{type(self).__name__}.__enter__")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self, caller: str) -> None:
        if self._closed:
            raise ValueError(f"{caller}: this {type(self).__name__} is closed")


class Engine(Closable):
    """Loads an Algorithm once and embeds texts with it.

    >>> engine = Engine()                     # the bundled default, backend auto
    >>> engine.embed(["a cat", "a dog"]).shape
    (2, 384)

    ``batch_size`` documents are annealed together (default: the backend's own, 2,048 on
    the numpy path and one 1,024-document chunk on the GPU); on the numpy path up to
    ``threads`` batches (default: the CPU count, at most 8) run side by side. Neither
    changes any result. ``caps`` and ``adapter`` pick capacities and a GPU adapter.

    A text longer than the stream capacity (``caps.stream`` tokens) is embedded, with
    ``long_texts="window"`` (the default), as windows of at most that many tokens cut at
    word starts, their embeddings summed by their tokens (:mod:`sae.windows`); with
    ``"truncate"``, as its first ``caps.stream`` tokens, with a warning.

    :meth:`close` releases what the backend holds (a GPU backend's device buffers) at
    once, rather than when the garbage collector gets to it; ``with Engine(...) as
    engine:`` closes it at the end of the block.
    """

    def __init__(
        self,
        algorithm: str | Path | Algorithm | None = None,
        *,
        backend: str = "auto",
        batch_size: int | None = None,
        caps: Capacities = DEFAULT_CAPACITIES,
        adapter: str | None = None,
        threads: int | None = None,
        long_texts: str = "window",
    ) -> None:
        check_long_texts(long_texts, "Engine")
        for name, value in (("batch_size", batch_size), ("threads", threads)):
            if value is not None and (not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1):
                raise ValueError(f"Engine: {name} must be an integer >= 1, got {value!r}")
        if not isinstance(caps, Capacities):
            raise TypeError(f"Engine: caps must be a sae.layout.Capacities, got {type(caps).__name__}")
        if adapter is not None and not isinstance(adapter, str):
            raise TypeError(f"Engine: adapter must be a str (part of an adapter's name), got {type(adapter).__name__}")
        if algorithm is not None and not isinstance(algorithm, str | os.PathLike | Algorithm):
            raise TypeError(f"Engine: algorithm must be a path (str or os.PathLike), an Algorithm or None, "
                            f"got {type(algorithm).__name__}")
        self.caps = caps
        if isinstance(algorithm, Algorithm):
            check_algorithm(algorithm, caps)  # built in Python: the loader's checks were skipped
            self.algorithm = algorithm
        else:
            self.algorithm = load_algorithm(algorithm, caps)
        self.backend: Backend = make_backend(backend, self.algorithm, caps, adapter, batch_size)
        self.batch_size = batch_size if batch_size is not None else self.backend.default_batch
        #: batches embedded at once, each by its own thread, on a backend that allows it
        self.threads = threads if threads is not None else min(os.cpu_count() or 1, 8)
        #: what a text longer than the stream capacity becomes: "window" or "truncate"
        self.long_texts = long_texts
        self._profiler: Profiler | None = None
        self._counters = EngineCounters()
        self._counters_lock = threading.Lock()
        # A device backend has one queue and reusable readback buffers: calls from two
        # threads at once aborted the process (wgpu: "buffer is still mapped") or mixed
        # their results. They take turns; the numpy path embeds batches side by side.
        self._device_turn = contextlib.nullcontext() if self.backend.concurrent_batches else threading.RLock()
        # Calls in progress: close() waits for them rather than releasing the backend under
        # another thread's batch. The thread-local depth finds a close() from inside a call
        # (a progress callback), which would wait for itself.
        self._calls = threading.Condition()
        self._active = 0
        self._depth = threading.local()

    def __reduce__(self):
        # Without this: "cannot pickle '_thread.lock' object", naming nothing of sae's.
        raise TypeError("an Engine cannot be pickled (it holds a backend, its device or threads); pickle its "
                        "Algorithm (or pass the Algorithm's directory) and make an Engine in the other process")

    def close(self) -> None:
        """Release what the backend holds (on the GPU: its device buffers); idempotent.

        Waits for calls in progress on other threads; later calls of ``embed``,
        ``embed_tokens``, ``tokenize`` and ``explain`` raise ``ValueError``. Embeddings
        already returned are the caller's arrays and stay as they are; ``algorithm``,
        ``dim`` and :meth:`counters_snapshot` stay readable. Raises ``RuntimeError`` when
        called from inside a call of this Engine (a ``progress`` callback).
        """
        if getattr(self._depth, "calls", 0):
            raise RuntimeError("Engine.close: called from inside a call of this Engine (a progress callback); "
                               "close it after the call returns")
        with self._calls:
            if self._closed:
                return
            self._closed = True  # refuse new calls from now on
            while self._active:
                self._calls.wait()
        self.backend.close()

    @contextlib.contextmanager
    def _call(self, caller: str) -> Iterator[None]:
        """One public call: refused once the Engine is closed, and waited for by :meth:`close`."""
        with self._calls:
            self._check_open(caller)
            self._active += 1
        depth = getattr(self._depth, "calls", 0)
        self._depth.calls = depth + 1
        try:
            yield
        finally:
            self._depth.calls = depth
            with self._calls:
                self._active -= 1
                if not self._active:
                    self._calls.notify_all()

    def warm_up(self) -> None:
        """Do the one-time work of the first calls now (:meth:`Backend.prepare
        <sae.backend.Backend.prepare>`): on the numpy path every transformed vector row,
        which calls otherwise compute as they first need them — about 1.2 s for the bundled
        default on 2 cores and 112 MB, where a server's first requests took 2–3× as long
        as later ones. No result changes: a row's bytes do not depend on when it
        is computed. For a process that embeds many texts or must answer its first requests
        fast (``sae serve`` warms every engine before it listens)."""
        with self._call("Engine.warm_up"):
            self.backend.prepare()

    def counters_snapshot(self) -> EngineCounters:
        """A copy of the running totals (texts, tokens, batches, steps, committed, reverted)."""
        with self._counters_lock:
            return replace(self._counters)

    def _count(self, texts: int, stats: AnnealStats, tokens: int) -> None:
        with self._counters_lock:
            c = self._counters
            c.texts += texts
            c.tokens += tokens
            c.batches += 1
            c.steps += stats.steps
            c.committed += stats.committed
            c.reverted += stats.reverted

    @property
    def profiler(self) -> Profiler | None:
        """Attach a :class:`~sae.profile.Profiler` to time every stage (``sae profile``)."""
        return self._profiler

    @profiler.setter
    def profiler(self, profiler: Profiler | None) -> None:
        self._check_open("Engine.profiler")
        self._profiler = profiler
        self.backend.profiler = profiler

    @property
    def dim(self) -> int:
        return self.algorithm.dim

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, whole (``long_texts="window"``: :meth:`embed_tokens` cuts the
        long ones into windows) or truncated to the stream capacity, with a warning
        (``"truncate"``). Raises ``TypeError`` naming the first element that is not a ``str``."""
        with self._call("Engine.tokenize"):
            ids, cut = self._tokenize(as_texts(texts, "Engine.tokenize"))
        self._warn_truncated(cut)
        return ids

    def _tokenize(self, texts: Sequence[str], *, truncate: bool | None = None,
                  first: int = 0) -> tuple[list[list[int]], int]:
        """Token ids per text and how many were truncated to the stream capacity (by
        default when the Engine truncates long texts)."""
        try:
            ids = self.algorithm.token_ids(texts)
        except (TypeError, UnicodeEncodeError):  # the tokenizer's words for a lone surrogate name no text
            check_encodable(texts, "Engine", first)
            raise
        if not (self.long_texts == "truncate" if truncate is None else truncate):
            return ids, 0
        return ids, cut_to_capacity(ids, self.caps.stream)

    def _warn_truncated(self, cut: int) -> None:
        if cut:
            cap = self.caps.stream
            log.warning("%d text(s) longer than %d tokens were truncated to %d tokens", cut, cap, cap)

    def embed(
        self, texts: str | Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Embed texts: ``(n, dim)`` float32 rows, L2-normalized (zeros for empty texts).

        A single string gives a 1-D vector. ``progress`` is called with the number
        of texts finished after each batch.
        """
        if isinstance(texts, str):
            return self.embed([texts])[0]
        texts = as_texts(texts, "Engine.embed")
        with self._call("Engine.embed"):
            if not self.backend.concurrent_batches:
                with self._device_turn:
                    return self._finite(self._embed_pipelined(texts, None, progress))
            with maybe_scope(self._profiler, "tokenize", texts=len(texts)):
                token_ids, cut = self._tokenize(texts)
                self._warn_truncated(cut)
            return self._finite(self._embed_token_ids(token_ids, progress))

    def _finite(self, vectors: np.ndarray) -> np.ndarray:
        """``vectors``, unless the Algorithm made one that is not finite: values that its
        sums or products overflow float32 with (the loader checks that they are finite, not
        how large they are). An :class:`AlgorithmError` then, not NaN rows in an output."""
        finite = np.isfinite(vectors).all(axis=1)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            raise AlgorithmError(f"Algorithm {self.algorithm.name!r}", "values",
                                 f"text {row + 1} embeds to NaN or infinity: its vectors, weights or transforms "
                                 f"overflow float32 ({int((~finite).sum())} text(s))")
        return vectors

    def embed_tokens(
        self, token_ids: Sequence[Sequence[int]], progress: Callable[[int], None] | None = None, *,
        check: bool = True,
    ) -> np.ndarray:
        """Embed texts already tokenized by :meth:`tokenize`: what :meth:`embed` does after it.

        For a caller that needs the token counts before embedding (a service's token
        budget) without tokenizing twice. A text longer than the stream capacity is cut
        into windows (``long_texts="window"``) or, with ``"truncate"``, refused with
        ``ValueError``; so is a token id that is not an integer in
        ``0 .. len(symbol_rows) - 1`` (both backends: the GPU would read out of bounds).
        ``check=False`` skips that last check, about 4 % of the call, for ids that this
        Algorithm's tokenizer made (the service's batches).
        """
        with self._call("Engine.embed_tokens"):
            if check:
                token_ids = as_documents(token_ids, "Engine.embed_tokens")
                check_token_ids(token_ids, len(self.algorithm.symbol_rows), "Engine.embed_tokens")
            return self._finite(self._embed_token_ids(token_ids, progress))

    def documents(self, token_ids: Sequence[Sequence[int]]) -> list[Sequence[int]]:
        """The documents the backends anneal for texts tokenized by :meth:`tokenize`: one per
        text, or a long text's windows one after another (``long_texts="window"``)."""
        windows = self._windows(token_ids, lengths_of(token_ids))
        return list(token_ids) if windows is None else windows.documents

    def _windows(self, token_ids: Sequence[Sequence[int]], lengths: np.ndarray) -> Windows | None:
        """The documents of texts (of ``lengths`` tokens) some of which are longer than the
        stream, when the Engine cuts such texts into windows; else None."""
        if self.long_texts != "window":
            return None
        cap = self.caps.stream
        if not len(lengths) or int(lengths.max()) <= cap:
            return None
        return Windows.of(token_ids, cap, self.algorithm.word_starts)

    def _embed_token_ids(
        self, token_ids: Sequence[Sequence[int]], progress: Callable[[int], None] | None, count_texts: bool = True
    ) -> np.ndarray:
        lengths = lengths_of(token_ids)
        windows = self._windows(token_ids, lengths)
        if windows is not None:
            # texts, not documents: counted once they are done, so the counter never goes down
            vectors = self._embed_token_ids(windows.documents, _TextProgress(progress, windows), count_texts=False)
            with self._counters_lock:
                self._counters.texts += windows.texts
            return windows.combine(vectors)
        check_lengths(lengths, self.caps, "Engine.embed_tokens")
        if not self.backend.concurrent_batches:
            with self._device_turn:
                return self._embed_pipelined(None, token_ids, progress, count_texts)
        prof = self._profiler
        out = np.zeros((len(token_ids), self.dim), dtype=np.float32)
        # Documents are independent, so batching them by length changes no result
        # and saves the numpy path the work of padding short texts to the longest of
        # their batch.
        order = np.argsort(lengths, kind="stable")
        chunks = [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]

        def embed_chunk(chunk: np.ndarray) -> None:
            with maybe_scope(prof, "batch", documents=len(chunk)):
                result = self.backend.submit_batch([token_ids[i] for i in chunk], lengths[chunk]).result()
                out[chunk] = result.embeddings
            self._count(len(chunk) if count_texts else 0, result.stats, int(lengths[chunk].sum()))

        threads = min(self.threads, len(chunks))
        if threads < 2 or prof is not None:
            for chunk in chunks:  # a profile times stages one batch after another
                embed_chunk(chunk)
                if progress is not None:
                    progress(len(chunk))
            return out
        # Documents are independent and the chunks fixed by the sort above, so
        # embedding batches side by side gives the same bytes as one after another.
        # The chunks of the longest texts cost the most: they start first, so the
        # workers finish together rather than one waiting for the last long chunk.
        longest_first = chunks[::-1]
        with ThreadPoolExecutor(threads, thread_name_prefix="sae-batch") as pool:
            for chunk, _ in zip(longest_first, pool.map(embed_chunk, longest_first)):
                if progress is not None:
                    progress(len(chunk))
        return out

    def _embed_pipelined(
        self,
        texts: list[str] | None,
        token_ids: Sequence[Sequence[int]] | None,
        progress: Callable[[int], None] | None,
        count_texts: bool = True,
    ) -> np.ndarray:
        """A device backend: two batches in flight, so that tokenizing and uploading batch
        k + 1 overlaps the device's work on batch k; the batches are slices of the input
        in order (the device pays nothing for mixed lengths). Either ``texts`` or
        ``token_ids`` is given."""
        prof = self._profiler
        n = len(texts) if texts is not None else len(token_ids)
        out = np.zeros((n, self.dim), dtype=np.float32)
        cut = 0
        pending = None  # (slice, lengths, PendingBatch)

        def collect(item) -> None:
            part, lengths, handle, windows = item
            with maybe_scope(prof, "wait + readback", documents=len(lengths)):
                result = handle.result()
            out[part] = result.embeddings if windows is None else windows.combine(result.embeddings)
            self._count(part.stop - part.start if count_texts else 0, result.stats, int(lengths.sum()))
            if progress is not None:
                progress(part.stop - part.start)  # texts, not windows

        for start in range(0, n, self.batch_size):
            part = slice(start, min(start + self.batch_size, n))
            if texts is not None:
                with maybe_scope(prof, "tokenize", texts=part.stop - part.start):
                    ids, c = self._tokenize(texts[part], first=part.start)
                cut += c
            else:
                ids = token_ids[part]
            lengths = lengths_of(ids)
            windows = self._windows(ids, lengths)  # a slice's long texts: more documents than texts
            if windows is not None:
                ids = windows.documents
                lengths = lengths_of(ids)
            with maybe_scope(prof, "batch", documents=len(ids)):
                handle = self.backend.submit_batch(ids, lengths)
            if pending is not None:
                collect(pending)
            pending = (part, lengths, handle, windows)
        if pending is not None:
            collect(pending)
        self._warn_truncated(cut)
        return out

    def explain(self, text: str, max_steps: int | None = None) -> Explanation:
        """Anneal one text and return its initial and final program and journal (one
        document: of a text longer than the stream capacity, its first tokens', with a warning).

        ``max_steps`` stops the annealing loop after that many steps (``Backend.anneal``):
        the program as it stands at the start of that step, and its embedding."""
        if not isinstance(text, str):
            raise TypeError(f"Engine.explain: the text is {type(text).__name__}, not str")
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int | np.integer)
                                      or max_steps < 0):
            raise ValueError(f"Engine.explain: max_steps must be None or an integer >= 0, got {max_steps!r}")
        with self._call("Engine.explain"):
            # One document: a long text's first caps.stream tokens are what is explained.
            token_ids, _ = self._tokenize([text], truncate=False)
            cap, n = self.caps.stream, len(token_ids[0])
            if n > cap and self.long_texts == "window":
                windows = len(self.documents(token_ids))
                log.warning("the text was truncated to its first %d of %d tokens for this explanation; "
                            "embed reads all of them, in %d windows", cap, n, windows)
            else:
                self._warn_truncated(int(n > cap))
            token_ids = [token_ids[0][:cap]]
            batch = ProgramBatch(1, self.caps)
            batch.widen(token_ids, self.algorithm.symbol_rows)
            initial = batch.items[0, : batch.lengths[0]].copy()
            with self._device_turn:
                self.backend.anneal(batch, max_steps)
                embedding = self.backend.execute(batch)[0]
        final = batch.items[0, : batch.lengths[0]].copy()
        journal = batch.journal[0, : batch.journal_len[0]].copy()
        return Explanation(
            text=text,
            tokens=[self.symbol_name(int(t)) for t in token_ids[0]],
            initial=initial,
            final=final,
            journal=journal,
            rule_names=[r.name for r in self.algorithm.rules],
            symbols=[self.symbol_name(int(s)) for s in final["symbol"]],
            embedding=embedding,
        )

    def symbol_name(self, symbol: int) -> str:
        """Readable text of a symbol: the token, or the phrase's tokens joined."""
        alg = self.algorithm
        tok = alg.tokenizer
        if isinstance(symbol, bool) or not isinstance(symbol, int | np.integer) or not 0 <= symbol < alg.n_symbols:
            raise ValueError(f"Engine.symbol_name: symbol must be an integer in 0..{alg.n_symbols - 1}, got {symbol!r}")
        if symbol < alg.vocab_size:
            return tok.id_to_token(symbol) or f"<{symbol}>"
        ids = [int(t) for t in alg.phrases[symbol - alg.vocab_size] if t >= 0]
        return "+".join(tok.id_to_token(t) or f"<{t}>" for t in ids)
