"""The tokenizer stage: requests that wait together share one call; one request's failure is its own."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sae.service.tokenizer import TokenizerStage


class Recorder:
    """A tokenizer that records its calls; ``gate`` holds the first call until set."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.threads: set[str] = set()
        self.gate = threading.Event()

    def __call__(self, texts):
        if not self.calls:
            self.gate.wait(5)
        self.calls.append(list(texts))
        self.threads.add(threading.current_thread().name)
        if any(text == "boom" for text in texts):
            raise ValueError("cannot tokenize 'boom'")
        return [[len(word) for word in text.split()] for text in texts]


def test_requests_that_wait_during_a_call_share_the_next_one():
    tokenize = Recorder()

    async def main():
        stage = TokenizerStage(tokenize)
        first = asyncio.ensure_future(stage.tokenize(["a bb"]))
        await asyncio.sleep(0.01)  # the first call is running (held by the gate)
        waiting = [asyncio.ensure_future(stage.tokenize([f"{'x' * i} y", "zz"])) for i in range(1, 4)]
        await asyncio.sleep(0.01)
        tokenize.gate.set()
        out = await asyncio.gather(first, *waiting)
        stage.close()
        return out

    out = asyncio.run(main())
    assert out == [[[1, 2]], [[1, 1], [2]], [[2, 1], [2]], [[3, 1], [2]]]
    # two calls: the first request alone, then the three that waited, in arrival order
    assert tokenize.calls == [["a bb"], ["x y", "zz", "xx y", "zz", "xxx y", "zz"]]
    assert all(name.startswith("sae-tokenize") for name in tokenize.threads)


def behind_a_held_call(tokenize: Recorder, requests: list[list[str]], cancel: int | None = None) -> list:
    """``requests`` arrive while the first call (of ``["a"]``) is held; request ``cancel``
    is then cancelled. Returns each request's result, exception or cancellation."""

    async def main():
        stage = TokenizerStage(tokenize)
        first = asyncio.ensure_future(stage.tokenize(["a"]))
        await asyncio.sleep(0.01)
        queued = [asyncio.ensure_future(stage.tokenize(texts)) for texts in requests]
        await asyncio.sleep(0)
        if cancel is not None:
            queued[cancel].cancel()
        tokenize.gate.set()
        results = await asyncio.gather(first, *queued, return_exceptions=True)
        stage.close()
        return results

    return asyncio.run(main())


def test_a_failing_request_fails_alone():
    tokenize = Recorder()
    first, good, bad = behind_a_held_call(tokenize, [["b c"], ["boom"]])
    assert first == [[1]] and good == [[1, 1]]
    assert isinstance(bad, ValueError) and "boom" in str(bad)
    # the group's call failed, then each of its requests was tokenized alone
    assert tokenize.calls[1:] == [["b c", "boom"], ["b c"], ["boom"]]


def test_a_cancelled_request_does_not_disturb_the_others():
    tokenize = Recorder()
    first, gone, kept = behind_a_held_call(tokenize, [["b"], ["c d"]], cancel=0)
    assert first == [[1]] and kept == [[1, 1]] and isinstance(gone, asyncio.CancelledError)
    assert tokenize.calls[1:] == [["c d"]]


def test_after_close_a_request_is_refused():
    async def main():
        stage = TokenizerStage(Recorder())
        stage.close()
        with pytest.raises(RuntimeError):
            await stage.tokenize(["a"])

    asyncio.run(main())


def test_fail_answers_the_running_call_and_the_waiting_requests_at_once():
    tokenize = Recorder()

    async def main():
        stage = TokenizerStage(tokenize)
        running = asyncio.ensure_future(stage.tokenize(["a bb"]))
        await asyncio.sleep(0.01)  # held by the gate
        waiting = asyncio.ensure_future(stage.tokenize(["c"]))
        await asyncio.sleep(0.01)
        stage.fail(RuntimeError("cut"))
        results = await asyncio.gather(running, waiting, return_exceptions=True)
        tokenize.gate.set()
        while stage._running:  # the held call ends, and starts no other
            await asyncio.sleep(0.01)
        stage.close()
        return results

    results = asyncio.run(main())
    assert [str(r) for r in results] == ["cut", "cut"]
    assert tokenize.calls == [["a bb"]]  # the waiting request was not tokenized
