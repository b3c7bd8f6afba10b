"""A stand-in for the teacher model, so that ``sae teach``'s streaming and resuming are
tested without sentence-transformers and torch (the ``sae[teacher]`` extra)."""

from __future__ import annotations

import hashlib

import numpy as np

from sae.teacher import TaughtChunk, settle

DIM = 8
#: tokens the fake teacher reads: a text of more than LIMIT - 2 words is cut ([CLS] and [SEP])
LIMIT = 6


class TeacherCrashError(Exception):
    """Stands for a crash of the teacher in the middle of a chunk."""


def vector(text: str) -> np.ndarray:
    """A text's fake embedding: unit length, settled, the same in every call."""
    seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
    x = np.random.default_rng(seed).standard_normal(DIM)
    return settle(x / np.linalg.norm(x))


def is_cut(text: str) -> bool:
    return len(text.split()) + 2 > LIMIT


class FakeTeacher:
    """A :class:`sae.corpus.teach.Teacher`: embeds each text by its hash, counts as cut the
    texts of more than LIMIT - 2 words, records the size of every chunk it is given and
    raises ``fail`` (an exception) at chunk ``fail_at`` (0-based, counted in this run)."""

    dim = DIM
    limit = LIMIT
    label = "fake float32"

    def __init__(self, fail_at: int | None = None, fail: BaseException | None = None) -> None:
        self.fail_at = fail_at
        self.fail = fail or TeacherCrashError(f"the teacher crashed at chunk {fail_at}")
        self.chunks: list[int] = []

    def embed(self, texts, progress=None) -> TaughtChunk:
        if len(self.chunks) == self.fail_at:
            raise self.fail
        self.chunks.append(len(texts))
        emb = np.stack([vector(t) for t in texts]) if texts else np.zeros((0, DIM), np.float32)
        cut = [i for i, t in enumerate(texts) if is_cut(t)]
        if progress is not None:
            progress(len(texts))
        return TaughtChunk(emb, len(cut), cut[0] if cut else -1)

    @property
    def embedded(self) -> int:
        return sum(self.chunks)


def embeddings_of(texts: list[str]) -> np.ndarray:
    """What the fake teacher gives ``texts`` in one call: the one-shot reference."""
    return np.stack([vector(t) for t in texts]) if texts else np.zeros((0, DIM), np.float32)
