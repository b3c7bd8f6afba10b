"""Tokenizing requests beside the event loop: the requests that wait together share one call.

The tokenizer lets go of the interpreter lock while it runs, so on a thread of its own
it runs beside the event loop instead of stalling it. Most texts never reach it: the
word cache (``sae.word_cache``, a few µs per text, holding the lock) answers printable text,
and the service tokenizes such requests on the event loop itself, which measured faster
than handing them to this thread (docs/SERVE.md). This stage takes the requests with a
text the tokenizer must see. Requests arrive in bursts (a batch's answers go out
together, and closed-loop clients send their next requests together): while one call
runs, the requests that arrive wait, and then go to the tokenizer in one call. The
event loop then wakes once per call rather than once per request, and a burst's texts
are one ``encode_batch`` (docs/SERVE.md, "Tokenize once").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

#: Token ids per text of a list of texts (:meth:`sae.engine.Engine.tokenize`).
Tokenize = Callable[[Sequence[str]], list[list[int]]]


class TokenizerStage:
    """Tokenizes the texts of concurrent requests on one thread, a waiting group per call.

    Use from one event loop: ``await stage.tokenize(texts)``. A text's ids do not
    depend on the texts it was tokenized with. If a group's call fails, each request
    of the group is tokenized alone, so one request's failure is only its own.
    """

    def __init__(self, tokenize: Tokenize) -> None:
        self._tokenize = tokenize
        self._pending: list[tuple[Sequence[str], asyncio.Future]] = []
        self._group: list[tuple[Sequence[str], asyncio.Future]] = []  # the requests of the running call
        self._running = False
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sae-tokenize")

    async def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of ``texts``, tokenized with whatever requests wait beside them."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((texts, future))
        if not self._running:
            self._start(loop)
        return await future

    def fail(self, exc: Exception) -> None:
        """Fail every request waiting here, in the running call or for the next, with ``exc`` now."""
        for _, future in [*self._group, *self._pending]:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: a cancelled waiter must not log it
        self._pending = []

    def close(self) -> None:
        """Stop the thread once the running call ends; requests that wait for a later call
        then fail with ``RuntimeError``."""
        self._thread.shutdown(wait=False)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        # A request cancelled while it waited (its client went away) is not tokenized.
        group, self._pending = [(texts, future) for texts, future in self._pending if not future.done()], []
        if not group:
            return
        try:
            call = loop.run_in_executor(self._thread, self._run, [texts for texts, _ in group])
        except RuntimeError as exc:  # closed: nothing more is tokenized
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        self._running = True
        self._group = group
        call.add_done_callback(lambda done: self._settle(loop, group, done))

    def _run(self, requests: list[Sequence[str]]) -> list[list[list[int]] | BaseException]:
        """Per request, its ids or the exception tokenizing it raised."""
        texts = [text for request in requests for text in request]
        try:
            ids = self._tokenize(texts)
        except Exception:
            if len(requests) == 1:
                raise
            return [self._alone(request) for request in requests]
        out: list[list[list[int]] | BaseException] = []
        at = 0
        for request in requests:
            out.append(ids[at : at + len(request)])
            at += len(request)
        return out

    def _alone(self, texts: Sequence[str]) -> list[list[int]] | BaseException:
        try:
            return self._tokenize(texts)
        except Exception as exc:
            return exc

    def _settle(self, loop: asyncio.AbstractEventLoop, group: list[tuple[Sequence[str], asyncio.Future]],
                done: asyncio.Future) -> None:
        self._running, self._group = False, []
        if done.cancelled():
            results: list = [asyncio.CancelledError()] * len(group)
        elif done.exception() is not None:
            results = [done.exception()] * len(group)  # every request of the group gets the failure
        else:
            results = done.result()
        for (_, future), result in zip(group, results):
            if future.done():  # the request was cancelled (its client went away)
                continue
            if isinstance(result, asyncio.CancelledError):
                future.cancel()
            elif isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        if self._pending:
            self._start(loop)
