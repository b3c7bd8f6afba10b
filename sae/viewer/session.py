"""The texts a viewer shows and their timelines on each backend, built when first looked at."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from sae.algorithm import Algorithm
from sae.engine import Engine
from sae.errors import BackendUnavailableError, InputError
from sae.viewer.model import Mismatch, Timeline, build_timeline, compare_timelines
from sae.viewer.vm import Contributions, vm_contributions

log = logging.getLogger(__name__)

#: ``--backend`` choices: both side by side (when a GPU adapter exists), or one.
BACKEND_CHOICES = ("both", "cpu", "gpu")


@dataclass
class Session:
    """Texts, the engines that anneal them, and every timeline built so far."""

    texts: list[str]
    engines: dict[str, Engine]  # backend name -> engine, in panel order
    listing: bool = False  # texts came from a file: show the list to pick from
    notes: list[str] = field(default_factory=list)  # shown in the header (e.g. no GPU)
    _timelines: dict[tuple[int, str], Timeline] = field(default_factory=dict)
    _contributions: dict[tuple[int, str], Contributions] = field(default_factory=dict)
    _mismatches: dict[int, Mismatch] = field(default_factory=dict)

    @property
    def algorithm(self) -> Algorithm:
        return next(iter(self.engines.values())).algorithm

    @property
    def backends(self) -> list[str]:
        return list(self.engines)

    def timeline(self, text: int, backend: str) -> Timeline:
        key = (text, backend)
        if key not in self._timelines:
            timeline = build_timeline(self.engines[backend], self.texts[text])
            if timeline.truncated and backend == self.backends[0]:  # once per text
                log.warning("text %d is longer than %d tokens; the viewer shows its first %d",
                            text + 1, self.engines[backend].caps.stream, self.engines[backend].caps.stream)
            self._timelines[key] = timeline
        return self._timelines[key]

    def timelines(self, text: int) -> list[Timeline]:
        return [self.timeline(text, b) for b in self.engines]

    def mismatch(self, text: int) -> Mismatch | None:
        """CPU against GPU for ``text``, when both run."""
        if len(self.engines) < 2:
            return None
        if text not in self._mismatches:
            a, b = self.timelines(text)[:2]
            self._mismatches[text] = compare_timelines(a, b)
        return self._mismatches[text]

    def contributions(self, text: int, backend: str) -> Contributions:
        key = (text, backend)
        if key not in self._contributions:
            engine = self.engines[backend]
            self._contributions[key] = vm_contributions(self.timeline(text, backend).final, engine.algorithm, engine.caps.stack)
        return self._contributions[key]

    def cosine(self, a: int, b: int, backend: str) -> float:
        """Cosine of two texts' embeddings (both unit length, or zero)."""
        ea, eb = self.timeline(a, backend).embedding, self.timeline(b, backend).embedding
        return float(np.dot(ea.astype(np.float64), eb.astype(np.float64)))


def open_session(
    texts: list[str],
    algorithm: str | None = None,
    backend: str = "both",
    adapter: str | None = None,
    listing: bool = False,
) -> Session:
    """Engines for ``backend`` (see :data:`BACKEND_CHOICES`) over ``texts``.

    ``both`` shows the GPU beside the CPU when any wgpu adapter can run sae (software
    ones included: this is a debugging tool) and says in the header when none can.
    """
    if backend not in BACKEND_CHOICES:
        raise InputError(f"--backend: unknown backend {backend!r} (choose from {', '.join(BACKEND_CHOICES)})")
    if not texts:
        raise InputError("no text to view: give TEXT or --input FILE")
    engines: dict[str, Engine] = {}
    notes = []
    if backend in ("both", "cpu"):
        engines["cpu"] = Engine(algorithm, backend="cpu", batch_size=1)
    if backend in ("both", "gpu"):
        alg = engines["cpu"].algorithm if engines else algorithm
        try:
            engines["gpu"] = Engine(alg, backend="gpu", batch_size=1, adapter=adapter)
        except BackendUnavailableError as exc:
            if backend == "gpu":
                raise
            notes.append(f"GPU not shown: {exc}")
            log.warning("GPU timeline not shown: %s", exc)
    return Session(texts=texts, engines=engines, listing=listing, notes=notes)
