"""Watching a run: a rich live view on the terminal, Prometheus metrics on a port.

The live view shows the generation, best and median quality, diversity, evaluations
per second and the ETA; on a non-terminal stderr it logs one line per generation.
Metrics (``--metrics-port``, extra ``sae[evolve]``: prometheus-client), on their own
registry:

* ``sae_evolve_generation``: the last committed generation;
* ``sae_evolve_best_fitness``: the best quality in the population;
* ``sae_evolve_median_fitness``, ``sae_evolve_diversity``;
* ``sae_evolve_evaluations_total``: genomes evaluated by this process;
* ``sae_evolve_evaluation_seconds``: histogram of one evaluation's wall time.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sae.errors import InputError
from sae.evolve.fitness import Evaluation
from sae.evolve.run import Observer

log = logging.getLogger(__name__)
EVOLVE_HINT = "pip install 'sae[evolve]'"


class Metrics(Observer):
    """Prometheus metrics served on ``port`` (0: an ephemeral port, see :attr:`port`)."""

    def __init__(self, port: int, addr: str = "127.0.0.1") -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
        except ImportError:
            raise InputError(f"--metrics-port needs prometheus-client: {EVOLVE_HINT}") from None
        self.registry = CollectorRegistry()
        r = self.registry
        self.gen = Gauge("sae_evolve_generation", "Last committed generation", registry=r)
        self.best = Gauge("sae_evolve_best_fitness", "Best quality in the population", registry=r)
        self.median = Gauge("sae_evolve_median_fitness", "Median quality in the population", registry=r)
        self.div = Gauge("sae_evolve_diversity", "Mean Jaccard distance of the population's rule sets", registry=r)
        self.evals = Counter("sae_evolve_evaluations", "Genomes evaluated", registry=r)
        self.seconds = Histogram("sae_evolve_evaluation_seconds", "Wall time of one evaluation", registry=r,
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64))
        try:
            self.server, self.thread = start_http_server(port, addr=addr, registry=r)
        except OSError as exc:
            raise InputError(f"--metrics-port {port}: cannot listen ({exc.strerror or exc})") from None
        self.port = self.server.server_address[1]
        log.info("metrics: http://%s:%d/metrics", addr, self.port)  # --metrics-port 0 chose it: say which

    def evaluated(self, ev: Evaluation) -> None:
        self.evals.inc()
        self.seconds.observe(ev.seconds)

    def generation(self, gen: int, summary: dict[str, Any], telemetry: dict[str, Any]) -> None:
        self.gen.set(gen)
        self.best.set(summary["best_quality"])
        self.median.set(summary["median_quality"])
        self.div.set(summary["diversity"])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class LiveView(Observer):
    """A rich table of the generations so far, redrawn live (or a log line each)."""

    def __init__(self, console=None, rows: int = 12) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True, markup=False)  # messages name files as they are
        self.rows = rows
        self.history: list[tuple] = []
        self.live = None
        self.t_start = time.perf_counter()
        self.done_in_gen = 0
        self.first = self.total = self.population = 0
        self.gens_done = 0

    def start(self, first_gen: int, generations: int, population: int) -> None:
        self.first, self.total, self.population = first_gen, generations, population
        self.t_start = time.perf_counter()
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self._render(), console=self.console, refresh_per_second=2, transient=False)
            self.live.start()

    def evaluated(self, ev: Evaluation) -> None:
        self.done_in_gen += 1
        if self.live is not None:
            self.live.update(self._render())

    def message(self, text: str) -> None:
        if self.live is not None:
            self.live.console.log(text)
        else:
            log.info("%s", text)

    def generation(self, gen: int, summary: dict[str, Any], telemetry: dict[str, Any]) -> None:
        self.gens_done += 1
        self.done_in_gen = 0
        eps = telemetry.get("evaluations_per_second")
        elapsed = time.perf_counter() - self.t_start
        remaining = self.total - gen - 1
        eta = elapsed / self.gens_done * remaining
        row = (gen, summary["best_quality"], summary["median_quality"], summary["diversity"],
               summary["evaluated"], eps, eta, summary["best"][:12])
        self.history.append(row)
        if self.live is not None:
            self.live.update(self._render())
        else:
            log.info("generation %d/%d: best %.4f, median %.4f, diversity %.3f, %d evaluated (%s/s), ETA %s",
                     gen, self.total - 1, row[1], row[2], row[3], row[4], f"{eps:.2f}" if eps else "-", _hms(eta))

    def _render(self):
        from rich.table import Table

        t = Table(title=f"sae evolve: generation {len(self.history) + self.first}/{self.total}"
                        f"  (evaluating {self.done_in_gen}/{self.population})", expand=False)
        for name in ("gen", "best", "median", "diversity", "evaluated", "eval/s", "ETA", "best genome"):
            t.add_column(name, justify="right" if name != "best genome" else "left")
        for gen, best, med, div, n, eps, eta, key in self.history[-self.rows :]:
            t.add_row(str(gen), f"{best:.4f}", f"{med:.4f}", f"{div:.3f}", str(n),
                      f"{eps:.2f}" if eps else "-", _hms(eta), key)
        return t

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


class Observers(Observer):
    """Several observers as one."""

    def __init__(self, *items: Observer) -> None:
        self.items = [i for i in items if i is not None]

    def start(self, *a) -> None:
        for i in self.items:
            i.start(*a)

    def evaluated(self, ev: Evaluation) -> None:
        for i in self.items:
            i.evaluated(ev)

    def generation(self, *a) -> None:
        for i in self.items:
            i.generation(*a)

    def message(self, text: str) -> None:
        for i in self.items:
            i.message(text)

    def stop(self) -> None:
        for i in self.items:
            i.stop()


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


__all__ = ["LiveView", "Metrics", "Observers"]
