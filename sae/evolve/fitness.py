"""Fitness: how one genome's Algorithm does on the train data, deterministically.

An :class:`Evaluator` turns a genome (canonical JSON) into an :class:`Evaluation`:
it materializes the Algorithm on the base (fitting its transforms first when the
run asks for it), anneals and executes the texts of the fit pairs and minimal pairs
on the chosen backend, and computes the objectives (docs/EVOLVE.md):

* ``spearman``: Spearman of cosine against the gold scores of the fit pairs (None
  without ``--pairs``);
* ``teacher``: Spearman of sae's cosines against the teacher's cosines, same pairs;
* ``minimal_error``: mean |cos_sae − cos_teacher| over the minimal pairs of each kind
  (:data:`sae.evolve.data.MINIMAL_KINDS`: negation by "not", by "no" and by "does not" or
  "never"; role swaps around "is V-ing" and without an auxiliary), averaged over the kinds
  of each phenomenon and then over the phenomena (negation, order), so that each counts alike;
* ``quality`` = spearman − ``w_minimal`` × minimal_error (↑); without gold scores,
  teacher − ``w_minimal`` × minimal_error. The teacher's pairwise agreement is not in
  ``quality`` when gold scores exist: on STS-B train the reweighting rules that raise
  the gold Spearman lower it (docs/EVOLVE.md);
* ``cost``: bid work per text, ``Σ_rules weight × tokens × (1 + steps) / 1000`` with a
  rule's weight ``Σ_elements (1 + gap + run)`` (↓): what the numpy path's matching
  does, counted rather than timed so that selection stays deterministic.

A text longer than the stream capacity is read as ``Engine.embed`` reads it: in
windows (:mod:`sae.windows`), each annealed as a document, their embeddings summed back
per text; its journal entries count for the text, at their places in the whole text.

It also reads the journals: how often each rule committed and was reverted, and
which rules interact (fire in the same texts, at overlapping places): the
rule-interaction graph crossover uses.

The evaluator is the seam for other backends: anything with
``evaluate(genome_json, stage) -> Evaluation`` plugs into the executors. On the GPU
backend, :meth:`Evaluator.evaluate_many` evaluates a whole list of genomes as one
population (:class:`sae.population.PopulationEvaluator`): every genome's Algorithm
anneals the stage's texts in the same grid, one submission and one readback per chunk
of jobs (documents × genomes), instead of a backend and several round trips per batch
for each genome.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from sae.algorithm import Algorithm, rule_reach
from sae.batch import ProgramBatch
from sae.evaluate import cosine_rows, spearman
from sae.evolve.data import MINIMAL_KINDS, MINIMAL_PHENOMENA, EvalData, PairSet
from sae.evolve.genome import Genome, materialize, rule_key
from sae.layout import COMMITTED, DEFAULT_CAPACITIES, REVERTED
from sae.windows import Windows

#: Digits objective values are rounded to (the run store keeps these exact values).
DIGITS = 10
#: Jobs (texts x genomes) of one GPU population call in :meth:`Evaluator.evaluate_many`:
#: their journals come back whole, 512 MB at the default capacities.
POPULATION_JOBS = 65536
#: GPU population evaluators kept for lexicons other than the base's (each holds its tables
#: on the device); a search visits a few lexicon choices at a time.
MAX_SUBSET_POPULATIONS = 4


#: ``w_minimal`` above this makes the minimal pairs all of the quality anyway; far larger
#: weights overflow the final pick's fixed-point comparison.
MAX_W_MINIMAL = 1000.0
#: What :class:`FitnessSettings` accepts for ``backend`` and ``transforms``.
BACKENDS = ("cpu", "gpu")
TRANSFORMS = ("inherit", "fit")


def check_int(owner: str, name: str, value: Any, low: int, high: int | None = None) -> None:
    """TypeError unless ``value`` is an int (a bool is not), ValueError unless it is in ``low..high``.

    Run settings are checked when they are made, not when a generation first uses them: a
    bad one would otherwise fail after the run file exists, or pass into the run's identity."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}.{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"in {low}..{high:,}" if high is not None else f"at least {low}"
        raise ValueError(f"{owner}.{name} must be {bound}, got {value}")


def check_number(owner: str, name: str, value: Any) -> None:
    """TypeError unless ``value`` is an int or a float (a bool is not); the caller checks its range,
    in comparisons that a NaN fails."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{owner}.{name} must be a number, got {type(value).__name__} {value!r}")


@dataclass(frozen=True)
class FitnessSettings:
    """How fitness is computed; part of a run's configuration.

    Raises TypeError or ValueError, naming the field, for a setting no run can use."""

    backend: str = "cpu"  #: "cpu" (numpy) or "gpu" (wgpu)
    transforms: str = "inherit"  #: "inherit" the base's transforms, or "fit" them per genome
    max_transforms: int = 0  #: with "fit": transforms a genome may use (0: as many as the base has)
    lam_transform: float = 0.3  #: ridge of fitted transforms toward the identity
    w_minimal: float = 0.5  #: weight of the minimal-pair error in ``quality``
    batch_size: int = 1024

    def __post_init__(self) -> None:
        owner = "FitnessSettings"
        if self.backend not in BACKENDS:  # make_backend would refuse it only once the run file exists
            raise ValueError(f"{owner}.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.transforms not in TRANSFORMS:
            raise ValueError(f"{owner}.transforms must be one of {', '.join(TRANSFORMS)}, got {self.transforms!r}")
        check_int(owner, "max_transforms", self.max_transforms, 0)
        check_number(owner, "lam_transform", self.lam_transform)
        if not (math.isfinite(self.lam_transform) and self.lam_transform >= 0):
            raise ValueError(f"{owner}.lam_transform must be a finite number >= 0, got {self.lam_transform}")
        check_number(owner, "w_minimal", self.w_minimal)
        if not 0 <= self.w_minimal <= MAX_W_MINIMAL:
            raise ValueError(f"{owner}.w_minimal must be in 0..{MAX_W_MINIMAL:g}, got {self.w_minimal}")
        check_int(owner, "batch_size", self.batch_size, 1)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Evaluation:
    """The deterministic result of evaluating one genome (plus its timing, which is not)."""

    genome: str  #: genome key
    algorithm: str  #: content hash of the materialized Algorithm
    objectives: dict[str, float | None]
    rule_stats: dict[str, list[int]] = field(default_factory=dict)  #: rule key -> [committed, reverted, docs]
    edges: list[list[Any]] = field(default_factory=list)  #: [key_a, key_b, co-firing docs, overlaps]
    seconds: float = 0.0  #: wall time (telemetry, never used for selection)
    texts: int = 0
    subset_quality: list[float] | None = None  #: quality on each generation's selection subset (--resample)

    def record(self) -> dict[str, Any]:
        """What the run store keeps (deterministic)."""
        rec = {"algorithm": self.algorithm, "objectives": self.objectives,
               "rule_stats": self.rule_stats, "edges": self.edges}
        if self.subset_quality is not None:
            rec["subset_quality"] = self.subset_quality
        return rec

    @staticmethod
    def from_record(genome: str, rec: dict[str, Any]) -> Evaluation:
        return Evaluation(genome, rec["algorithm"], rec["objectives"], rec["rule_stats"], rec["edges"],
                          subset_quality=rec.get("subset_quality"))

    @property
    def quality(self) -> float:
        return float(self.objectives["quality"])

    @property
    def cost(self) -> float:
        return float(self.objectives["cost"])


class PopulationEvaluator(Protocol):
    """What the executors call: many genomes in, their evaluations out, in order."""

    def evaluate_many(self, genomes: list[str], stage: str) -> list[Evaluation]: ...


@dataclass
class _Run:
    """Embeddings of some texts and what the loop did to them."""

    emb: np.ndarray  # (n, dim) float32, rows in the order of the requested texts
    steps: np.ndarray  # (n,) steps with a journal entry, per text
    tokens: np.ndarray  # (n,)
    entries: dict[str, np.ndarray]  # committed/reverted journal entries: doc, rule, pos, outcome


class Evaluator:
    """Evaluates genomes on one :class:`EvalData` over one base Algorithm."""

    def __init__(self, base: Algorithm, data: EvalData, settings: FitnessSettings = FitnessSettings()) -> None:
        self.base, self.data, self.settings = base, data, settings
        self.caps = DEFAULT_CAPACITIES
        self._batch = ProgramBatch(settings.batch_size, self.caps)
        self._fits: OrderedDict[str, np.ndarray] = OrderedDict()
        fit_texts = np.unique(np.concatenate([data.fit.texts(), data.minimal_fit.texts()]))
        valid_texts = np.unique(np.concatenate([data.valid.texts(), data.minimal_valid.texts()]))
        self.stage_texts = {"fit": fit_texts, "valid": valid_texts}
        self.fit_texts = fit_texts
        self._population = None  # the GPU population evaluator, made on first use
        self._subset_populations: OrderedDict[int, Any] = OrderedDict()  # those of smaller lexicons

    def close(self) -> None:
        """Release the GPU population evaluators' device buffers (made again if used later)."""
        populations = [p for p in (self._population, *self._subset_populations.values()) if p is not None]
        self._population = None
        self._subset_populations.clear()
        for population in populations:
            population.close()

    @property
    def batches_genomes(self) -> bool:
        """Whether :meth:`evaluate_many` evaluates its genomes together (the GPU population path)."""
        return self.settings.backend == "gpu" and self.settings.transforms != "fit"

    def evaluate_many(self, genomes: list[str], stage: str = "fit") -> list[Evaluation]:
        """:meth:`evaluate` of each genome, in order; on the GPU as one population (the
        same evaluations: each member anneals and executes as it does alone)."""
        if not self.batches_genomes or len(genomes) < 2:
            return [self.evaluate(g, stage) for g in genomes]
        # Inherited transforms: the genomes share the base's tables, but for their lexicon (below).
        t0 = time.perf_counter()
        parsed = [Genome.from_json(json.loads(g)) for g in genomes]
        algs = [self.algorithm(g) for g in parsed]
        texts = self.stage_texts[stage]
        windows = self._windows(texts)
        ids = [t.tolist() for t in windows.documents]
        # A population shares its tables; a genome's lexicon choice (min_bonus) can drop
        # phrases, which renumbers the symbol tables, so each lexicon is a population of its
        # own. The lexicons are nested (phrases above a bonus), so their size names them.
        members: dict[int, list[int]] = {}
        for i, alg in enumerate(algs):
            members.setdefault(alg.n_phrases, []).append(i)
        # Every job's whole journal comes back (8 KB a job at the default capacities):
        # genomes go in groups of at most POPULATION_JOBS jobs, each group's journals
        # reduced to their entries before the next group runs.
        group = max(1, POPULATION_JOBS // max(len(ids), 1))
        runs: list[_Run | None] = [None] * len(algs)
        for lexicon, indices in members.items():
            population = self._population_of(lexicon, algs[indices[0]])
            for start in range(0, len(indices), group):
                part = indices[start : start + group]
                for i, run in zip(part, population.runs([algs[i] for i in part], ids)):
                    entries = _journal_entries(run.journal, run.journal_len, np.arange(len(ids)))
                    runs[i] = _journal_run(run.embeddings, windows, [entries])
        seconds = (time.perf_counter() - t0) / len(genomes)  # the population's time, shared alike
        return [self._evaluation(genome, alg, run, texts, stage, seconds)
                for genome, alg, run in zip(parsed, algs, runs)]

    def _population_of(self, lexicon: int, member: Algorithm):
        """The GPU population evaluator of the genomes whose lexicon keeps ``lexicon`` phrases
        (``member`` is one of them), kept for the next generations; the base's lexicon's is
        :attr:`_population`."""
        from sae.population import PopulationEvaluator

        if lexicon == self.base.n_phrases:
            if self._population is None:
                self._population = PopulationEvaluator(self.base, backend="gpu", caps=self.caps)
            return self._population
        population = self._subset_populations.pop(lexicon, None)
        if population is None:
            population = PopulationEvaluator(member, backend="gpu", caps=self.caps)
        self._subset_populations[lexicon] = population  # the most recently used last
        while len(self._subset_populations) > MAX_SUBSET_POPULATIONS:  # each holds the tables on the device
            # released now: waiting for the collector kept them on the device meanwhile
            self._subset_populations.pop(next(iter(self._subset_populations))).close()
        return population

    # -- one genome -------------------------------------------------------------------------
    def algorithm(self, genome: Genome) -> Algorithm:
        """The Algorithm of ``genome``: transforms fitted (cached by genome key) or the base's."""
        if self.settings.transforms != "fit":
            return materialize(self.base, genome)
        key = genome.key
        tr = self._fits.get(key)
        if tr is None:
            tr = self._fit_transforms(genome)
            self._fits[key] = tr
            while len(self._fits) > 64:
                self._fits.popitem(last=False)
        return materialize(self.base, genome, tr)

    def n_transforms(self) -> int:
        return self.settings.max_transforms or self.base.n_transforms

    def _fit_transforms(self, genome: Genome) -> np.ndarray:
        from sae.distill.fit import annealed_items, fit_transforms

        n_tr = self.n_transforms()
        dim = self.base.dim
        identity = np.zeros((n_tr, dim, dim + 1), dtype=np.float32)
        identity[:, :, :dim] = np.eye(dim, dtype=np.float32)
        uses = any(up.mod for r in genome.rules for up in r.updates)
        if n_tr == 0 or not uses:
            return identity
        alg = materialize(self.base, genome, identity)
        windows = self._windows(self.fit_texts)
        ids = [t.tolist() for t in windows.documents]
        items = annealed_items(alg, ids, self.settings.batch_size)
        # Each window is fitted to its text's target, the windows of a text sharing its weight of 1.
        owner = windows.owners()
        weights = windows.lengths() / windows.text_lengths()[owner] if windows.windowed else np.ones(len(ids))
        targets = self.data.targets[self.fit_texts[owner]].astype(np.float64)
        tr = fit_transforms(items, alg, targets, n_tr, self.settings.lam_transform, weights)
        return tr.astype(np.float16).astype(np.float32)  # stored as float16 without loss

    def evaluate(self, genome_json: str, stage: str = "fit") -> Evaluation:
        """Evaluate one genome on the ``fit`` texts (selection) or the ``valid`` ones (final pick)."""
        t0 = time.perf_counter()
        genome = Genome.from_json(json.loads(genome_json))
        alg = self.algorithm(genome)
        texts = self.stage_texts[stage]
        run = self._run(alg, texts)
        return self._evaluation(genome, alg, run, texts, stage, time.perf_counter() - t0)

    def _evaluation(self, genome: Genome, alg: Algorithm, run: _Run, texts: np.ndarray, stage: str,
                    seconds: float) -> Evaluation:
        where = np.full(self.data.n_texts, -1, dtype=np.int64)
        where[texts] = np.arange(texts.size)
        pairs, minimal = (self.data.fit, self.data.minimal_fit) if stage == "fit" else \
            (self.data.valid, self.data.minimal_valid)
        cos = cosine_rows(run.emb[where[pairs.a]], run.emb[where[pairs.b]])
        mcos = cosine_rows(run.emb[where[minimal.a]], run.emb[where[minimal.b]])
        obj = self._objectives(alg, run, cos, mcos, pairs, minimal)
        subsets = self._subset_quality(cos, mcos) if stage == "fit" and self.data.fit_subsets is not None else None
        stats, edges = _interactions(alg, run)
        return Evaluation(genome.key, alg.content_hash, obj, stats, edges, seconds=seconds, texts=int(texts.size),
                          subset_quality=subsets)

    def _objectives(self, alg: Algorithm, run: _Run, cos: np.ndarray, mcos: np.ndarray, pairs: PairSet,
                    minimal: PairSet) -> dict[str, float | None]:
        """The objectives from sae's cosines of ``pairs`` (``cos``) and ``minimal`` (``mcos``)."""
        rho_gold = _finite(spearman(cos, pairs.gold)) if pairs.gold is not None else None
        rho_teacher = _finite(spearman(cos, pairs.teacher_cos))
        mp_err = self._minimal_error(mcos, minimal)
        quality = (rho_gold if rho_gold is not None else rho_teacher) - self.settings.w_minimal * mp_err
        weight = sum(sum(1 + el.gap + el.run for el in r.pattern) for r in alg.rules)
        cost = float((weight * run.tokens * (1 + run.steps)).mean() / 1000.0) if run.tokens.size else 0.0
        out = {"quality": quality, "spearman": rho_gold, "teacher": rho_teacher, "minimal_error": mp_err,
               "cost": cost, "rules": float(len(alg.rules)), "steps": float(run.steps.mean())}
        return {k: (round(v, DIGITS) if v is not None else None) for k, v in out.items()}

    def _minimal_error(self, mcos: np.ndarray, minimal: PairSet, keep: np.ndarray | None = None) -> float:
        """Mean |cos_sae − cos_teacher| per kind of minimal pair, averaged over the kinds of
        each phenomenon, then over the phenomena (only the pairs ``keep`` marks, when given)."""
        if keep is None:
            keep = np.ones(len(minimal), dtype=bool)
        if not keep.any():
            return 0.0
        err = np.abs(mcos - minimal.teacher_cos)[keep]
        kinds = (minimal.kind if minimal.kind is not None else np.zeros(len(minimal), dtype=np.int8))[keep]
        per_phenomenon: dict[str, list[float]] = {}
        for k in np.unique(kinds):
            per_phenomenon.setdefault(MINIMAL_PHENOMENA[MINIMAL_KINDS[k]], []).append(float(err[kinds == k].mean()))
        return float(np.mean([np.mean(errors) for errors in per_phenomenon.values()]))

    def _subset_quality(self, cos: np.ndarray, mcos: np.ndarray) -> list[float]:
        """``quality`` on each generation's selection subset of the fit pairs (sae's cosines
        ``cos``) and fit minimal pairs (``mcos``) (``--resample``; docs/EVOLVE.md, "Resampled selection")."""
        data = self.data
        pairs, minimal = data.fit, data.minimal_fit
        target = pairs.gold if pairs.gold is not None else pairs.teacher_cos
        out = []
        for keep, keep_minimal in zip(data.fit_subsets, data.minimal_subsets):
            rho = _finite(spearman(cos[keep], target[keep]))
            out.append(round(rho - self.settings.w_minimal * self._minimal_error(mcos, minimal, keep_minimal), DIGITS))
        return out

    def _windows(self, texts: np.ndarray) -> Windows:
        """The documents of ``texts`` as ``Engine.embed`` anneals them (long ones in windows)."""
        ids = self.data.token_ids(texts)
        if all(len(t) <= self.caps.stream for t in ids):  # the word starts (40 ms) only when needed
            return Windows(ids, None, len(ids))
        return Windows.of(ids, self.caps.stream, self.base.word_starts)

    def _run(self, alg: Algorithm, texts: np.ndarray) -> _Run:
        """Anneal and execute ``texts``' documents in fixed batches (sorted by length, stable)."""
        from sae.engine import make_backend

        backend = make_backend(self.settings.backend, alg, self.caps, batch_size=self.settings.batch_size)
        windows = self._windows(texts)
        ids, lengths = windows.documents, windows.lengths()
        order = np.argsort(lengths, kind="stable")
        emb = np.zeros((len(ids), alg.dim), dtype=np.float32)
        entries = []
        batch = self._batch
        for start in range(0, len(order), self.settings.batch_size):
            chunk = order[start : start + self.settings.batch_size]
            batch.widen([ids[i] for i in chunk], alg.symbol_rows, lengths[chunk].astype(np.uint32))
            backend.anneal(batch)
            emb[chunk] = backend.execute(batch)
            n = len(chunk)
            entries.append(_journal_entries(batch.journal[:n], batch.journal_len[:n], chunk))
        return _journal_run(emb, windows, entries)


#: A journal entry as a :class:`_Run` keeps it: its text, rule, anchor, outcome and step.
_ENTRY = np.dtype([("doc", np.int64), ("rule", np.int64), ("pos", np.int64), ("outcome", np.int64),
                   ("step", np.int64)])


def _journal_entries(journal: np.ndarray, journal_len: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """The entries of ``journal``'s rows (text ``docs[i]`` for row i), each with its text
    in a ``doc`` field: what a :class:`_Run` keeps of a journal."""
    live = np.arange(journal.shape[1])[None, :] < journal_len.astype(np.int64)[:, None]
    row, e = np.nonzero(live)
    entry = journal[row, e]
    out = np.empty(len(entry), dtype=_ENTRY)
    out["doc"] = np.asarray(docs, dtype=np.int64)[row]
    for name in ("rule", "pos", "outcome", "step"):
        out[name] = entry[name]
    return out


def _journal_run(emb: np.ndarray, windows: Windows, parts: list[np.ndarray]) -> _Run:
    """A :class:`_Run` of ``windows``' texts from their documents' embeddings and the journal
    entries of :func:`_journal_entries` (``doc`` a document): a text's embedding combines its
    windows', its entries take the text and their place in it."""
    entry = np.concatenate(parts) if parts else np.empty(0, dtype=_ENTRY)
    if windows.windowed:
        entry["pos"] += windows.starts()[entry["doc"]]
        entry["doc"] = windows.owner[entry["doc"]]
        emb = windows.combine(emb)
    tokens = windows.text_lengths()
    steps = np.zeros(len(emb), dtype=np.int64)
    np.maximum.at(steps, entry["doc"], entry["step"] + 1)
    return _Run(emb, steps, tokens, {k: entry[k] for k in ("doc", "rule", "pos", "outcome")})


def _finite(x: float) -> float:
    return float(x) if np.isfinite(x) else 0.0


def _interactions(alg: Algorithm, run: _Run) -> tuple[dict[str, list[int]], list[list[Any]]]:
    """Per rule: committed, reverted, texts it fired in; per pair of rules: texts both
    fired in, and committed rewrites within reach of each other in the same text."""
    n_rules = len(alg.rules)
    if n_rules == 0:
        return {}, []
    keys = [rule_key(r) for r in alg.rules]
    e = run.entries
    committed = e["outcome"] == COMMITTED
    n_docs = run.tokens.size
    c_count = np.bincount(e["rule"][committed], minlength=n_rules)
    r_count = np.bincount(e["rule"][e["outcome"] == REVERTED], minlength=n_rules)
    fired = np.zeros((n_docs, n_rules), dtype=np.float64)
    fired[e["doc"][committed], e["rule"][committed]] = 1.0
    co = (fired.T @ fired).astype(np.int64)  # texts in which both rules committed
    stats = {keys[r]: [int(c_count[r]), int(r_count[r]), int(co[r, r])] for r in range(n_rules)}
    # Overlaps: committed rewrites of two rules, same text, anchors within the left one's reach.
    doc, rule, pos = e["doc"][committed], e["rule"][committed], e["pos"][committed]
    order = np.lexsort((rule, pos, doc))
    doc, rule, pos = doc[order], rule[order], pos[order]
    reach = np.array([rule_reach(r) for r in alg.rules], dtype=np.int64)
    ov = np.zeros((n_rules, n_rules), dtype=np.int64)
    for lag in range(1, 4):
        if doc.size <= lag:
            break
        same = (doc[lag:] == doc[:-lag]) & (pos[lag:] - pos[:-lag] <= reach[rule[:-lag]] + 1)
        np.add.at(ov, (rule[:-lag][same], rule[lag:][same]), 1)
    ov = ov + ov.T
    # A guard interacts with every rule the health check reverted (journals do not say which guard).
    guards = [g for g, r in enumerate(alg.rules) if r.kind == "guard"]
    edges = []
    for a in range(n_rules):
        for b in range(a + 1, n_rules):
            link_guard = (a in guards and r_count[b] > 0) or (b in guards and r_count[a] > 0)
            if co[a, b] or ov[a, b] or link_guard:
                ka, kb = sorted((keys[a], keys[b]))
                edges.append([ka, kb, int(co[a, b]), int(ov[a, b]) + (1 if link_guard else 0)])
    edges.sort()
    return stats, edges


__all__ = ["Evaluation", "Evaluator", "FitnessSettings", "PopulationEvaluator"]
