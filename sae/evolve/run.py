"""The evolution loop: generations, the run store, resume, and the final pick.

Generation 0 is the base's own genome, the base without rules, and mutants of the
base. Each later generation breeds ``population`` children (crossover with
probability ``crossover``, else one mutation; parents by binary tournament), evaluates
the ones never seen before, and keeps the best ``population`` distinct genomes of
parents and children by non-dominated sorting and crowding (:mod:`sae.evolve.select`);
with ``resample`` the quality it sorts by is each genome's on that generation's
selection subset (:mod:`sae.evolve.data`), so parents are judged afresh every generation.
Everything a generation produced — genomes, evaluations, births, survivors, the RNG
state after it — is committed in one transaction, so a run killed at any moment
resumes from its last generation and ends exactly where an uninterrupted run ends.

At the end the **final pick** (docs/EVOLVE.md): the Pareto front of every genome the
run evaluated (quality ↑, cost ↓) — only its members of cost at most ``max_cost`` when
that is set — its ``final_candidates`` members of highest quality evaluated on the validation pairs, and the one with the highest validation
quality (then lower cost, then key), less every setting whose removal changes none of
its objectives (an opcode that acts as ``ACC``, a tolerance without a guard) and every rule
without which it is no worse and cheaper, written as a normal Algorithm directory.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sae.algorithm import (
    Algorithm,
    check_algorithm_output,
    default_algorithm_path,
    load_algorithm,
    save_algorithm_atomically,
)
from sae.errors import InputError
from sae.evolve.data import EvalData, build_eval_data, file_sha256
from sae.evolve.fitness import Evaluation, Evaluator, FitnessSettings, check_int, check_number
from sae.evolve.genome import Genome, genome_of, rule_key, rule_removals, simplifications
from sae.evolve.operators import SearchSpace, crossover, mutate
from sae.evolve.select import (
    Ranked,
    Scored,
    diversity,
    one_per_behaviour,
    pareto_front,
    survivors,
    tournament,
)
from sae.evolve.store import RunStore

log = logging.getLogger(__name__)

#: Bounds on what a run sets up before its first generation (the resampled subsets are a
#: generations x pairs table): far above any run here (60 generations of 24 build the default).
MAX_GENERATIONS = 10_000
MAX_POPULATION = 10_000
#: Fewer fit pairs than this (but not 0, all of them): a correlation over them says nothing
#: (it was reported as 0).
MIN_FIT_PAIRS = 10


@dataclass(frozen=True)
class EvolveConfig:
    """What determines a run's result. Resuming needs exactly the same."""

    seed: int = 0
    generations: int = 20
    population: int = 16
    fit_pairs: int = 3000  #: fit pairs used for selection (0: all)
    minimal_pairs: int = 1000  #: minimal pairs used for selection, an equal share per kind (0: all)
    max_rules: int = 24
    crossover: float = 0.3  #: probability that a child comes from crossover
    final_candidates: int = 8
    fitness: FitnessSettings = field(default_factory=FitnessSettings)
    max_cost: float | None = None  #: the final pick only considers genomes of at most this cost
    resample: float = 0.0  #: fraction of the fit pairs selection sees, drawn anew each generation (0: all)
    distinct: bool = False  #: genomes of equal objectives take one place (survival and final candidates)
    linear: bool = False  #: no rule writes MUL: every genome's programs are sums, so an output map fits any pick

    def __post_init__(self) -> None:
        # Checked here, not where a generation uses them: evolve() would otherwise create the run
        # file first, and a bad value (final_candidates=0) fail only after the last generation,
        # stored in an identity that no fixed value can resume.
        owner = "EvolveConfig"
        check_int(owner, "seed", self.seed, 0)
        check_int(owner, "generations", self.generations, 1, MAX_GENERATIONS)
        check_int(owner, "population", self.population, 1, MAX_POPULATION)
        check_int(owner, "fit_pairs", self.fit_pairs, 0)
        if 0 < self.fit_pairs < MIN_FIT_PAIRS:
            raise ValueError(f"{owner}.fit_pairs must be 0 (all) or at least {MIN_FIT_PAIRS}, got {self.fit_pairs}")
        check_int(owner, "minimal_pairs", self.minimal_pairs, 0)
        check_int(owner, "max_rules", self.max_rules, 1)
        check_number(owner, "crossover", self.crossover)
        if not 0 <= self.crossover <= 1:  # a NaN fails this too
            raise ValueError(f"{owner}.crossover must be in 0..1, got {self.crossover}")
        check_int(owner, "final_candidates", self.final_candidates, 1)
        if not isinstance(self.fitness, FitnessSettings):
            raise TypeError(f"{owner}.fitness must be a FitnessSettings, got {type(self.fitness).__name__}")
        if self.max_cost is not None:
            check_number(owner, "max_cost", self.max_cost)
            if not (math.isfinite(self.max_cost) and self.max_cost >= 0):
                raise ValueError(f"{owner}.max_cost must be a finite number >= 0 (None for no budget), "
                                 f"got {self.max_cost}")
        check_number(owner, "resample", self.resample)
        if not 0 <= self.resample < 1:
            raise ValueError(f"{owner}.resample must be in 0..1 (a fraction, 0 for all pairs, below 1), "
                             f"got {self.resample}")
        for name in ("distinct", "linear"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{owner}.{name} must be a bool, got {getattr(self, name)!r}")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fitness"] = self.fitness.as_dict()
        # Runs stored before these options existed keep their identity.
        if d["max_cost"] is None:
            del d["max_cost"]
        if d["resample"] == 0:
            del d["resample"]
        if not d["distinct"]:
            del d["distinct"]
        if not d["linear"]:
            del d["linear"]
        return d


@dataclass(frozen=True)
class Inputs:
    """The files a run reads; their digests are part of its identity."""

    teacher: str
    base: str | None = None  #: Algorithm directory (None: the bundled default)
    pairs: str | None = None


class Observer:
    """Callbacks for the live view and the metrics (the default does nothing)."""

    def start(self, first_gen: int, generations: int, population: int) -> None: ...
    def evaluated(self, ev: Evaluation) -> None: ...
    def generation(self, gen: int, summary: dict[str, Any], telemetry: dict[str, Any]) -> None: ...
    def message(self, text: str) -> None: ...
    def stop(self) -> None: ...


@dataclass
class Result:
    """The final pick: its genome hash, the written Algorithm's content hash, where, its objectives."""

    genome: str
    algorithm: str
    out: Path
    final: dict[str, Any]


def load_inputs(inputs: Inputs, config: EvolveConfig) -> tuple[Algorithm, EvalData, dict[str, Any]]:
    """The base, the evaluation data, and the run identity (config plus input digests)."""
    base = load_algorithm(inputs.base)
    data = build_eval_data(base, inputs.teacher, inputs.pairs, config.fit_pairs, config.minimal_pairs,
                           config.resample, config.generations, config.seed)
    identity = {
        "config": config.as_dict(),
        "base": base.content_hash,
        "teacher_sha256": file_sha256(inputs.teacher),
        "pairs_sha256": file_sha256(inputs.pairs) if inputs.pairs else None,
        "data": data.digest(),
    }
    return base, data, identity


def check_identity(store: RunStore, identity: dict[str, Any], resume: bool) -> bool:
    """True when the run store already holds this run; InputError when it holds another
    (its format was checked when the store opened the file)."""
    stored = store.config()
    if stored is None:
        return False
    if not resume:
        raise InputError(f"{store.path}: a run is already stored there; pass --resume to continue it, "
                         "or name a new --run file")
    if stored != identity:
        what = _first_difference(stored, identity)
        raise InputError(f"{store.path}: cannot resume: {what} differs from the stored run")
    return True


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        # The inputs first: a different file explains a different data digest.
        first = ["teacher_sha256", "pairs_sha256", "base", "config"]
        for k in sorted(set(a) | set(b), key=lambda k: (first.index(k) if k in first else len(first), k)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
    names = {"teacher_sha256": "the teacher file", "pairs_sha256": "the pairs file", "base": "the base Algorithm",
             "data": "the evaluation data"}
    setting = path.removeprefix("config.").removeprefix("fitness.")
    label = names.get(path, f"--{setting.replace('_', '-')}" if setting in _FLAGS else setting or "the configuration")
    return f"{label} ({_short(a)} stored, {_short(b)} now)"


#: Run settings that ``sae evolve`` takes as flags of the same name (``fit_pairs``: ``--fit-pairs``).
_FLAGS = {"seed", "generations", "population", "fit_pairs", "minimal_pairs", "max_rules", "crossover",
          "final_candidates", "max_cost", "resample", "distinct", "linear", "backend", "transforms", "w_minimal"}


def _short(v: Any) -> str:
    if isinstance(v, str) and len(v) > 16:  # a digest: its head names it
        return json.dumps(v[:16] + "…", ensure_ascii=False)
    text = json.dumps(v)
    return text if len(text) <= 20 else text[:17] + "..."


class Evolution:
    """One run: the loop over generations against a store and an executor."""

    def __init__(self, config: EvolveConfig, base: Algorithm, data: EvalData, store: RunStore, executor,
                 observer: Observer | None = None, workers: int = 1) -> None:
        self.config, self.base, self.data, self.store = config, base, data, store
        self.executor = executor
        self.observer = observer or Observer()
        self.workers = workers
        n_tr = config.fitness.max_transforms or base.n_transforms
        fit_tokens = data.token_ids(np.unique(np.concatenate([data.fit.texts(), data.minimal_fit.texts()])))
        counts = np.bincount(np.concatenate(fit_tokens) if fit_tokens else np.zeros(0, np.int64),
                             minlength=base.vocab_size)[: base.vocab_size]
        self.space = SearchSpace.of(base, counts, n_tr, config.max_rules, products=not config.linear)
        self.genomes: dict[str, Genome] = {}
        self.records: dict[str, dict[str, Any]] = store.evaluations("fit")

    # -- helpers ------------------------------------------------------------------------------
    def genome(self, key: str) -> Genome:
        g = self.genomes.get(key)
        if g is None:
            g = Genome.from_json(json.loads(self.store.genome_json(key)))
            self.genomes[key] = g
        return g

    def scored(self, key: str, gen: int | None = None) -> Scored:
        """A genome's objectives: on all the fit pairs, or as selection sees them in
        generation ``gen`` (its subset's quality when the run resamples)."""
        rec = self.records[key]
        quality = rec["objectives"]["quality"]
        if gen is not None and "subset_quality" in rec:
            quality = rec["subset_quality"][gen]
        return Scored(key, float(quality), float(rec["objectives"]["cost"]))

    def _evaluate(self, keys: list[str], stage: str = "fit") -> tuple[list[Evaluation], float]:
        t0 = time.perf_counter()
        evs = self.executor.evaluate([self.genome(k).canonical() for k in keys], stage, self.observer.evaluated)
        return evs, time.perf_counter() - t0

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> None:
        last = self.store.last_generation()
        first = 0 if last is None else last + 1
        self.observer.start(first, self.config.generations, self.config.population)
        if first > 0:
            self.observer.message(f"resuming after generation {last}")
        for gen in range(first, self.config.generations):
            if gen == 0:
                rng = np.random.default_rng(self.config.seed)
                births = self._initial(rng)
                parents: list[str] = []
            else:
                prev = self.store.generation(gen - 1)
                rng = np.random.default_rng(self.config.seed)
                rng.bit_generator.state = prev["rng_state"]
                ranked = [Ranked(k, f, c) for k, f, c in self.store.population(gen - 1)]
                births = self._offspring(ranked, rng)
                parents = [r.key for r in ranked]
            self._commit(gen, births, parents, rng)

    def _initial(self, rng: np.random.Generator) -> list[tuple[Genome, str, list[str]]]:
        base_g = genome_of(self.base)
        out = [(base_g, "base", [])]
        if base_g.rules:
            out.append((Genome((), base_g.params, 0), "base_without_rules", []))
        seen = {g.key for g, _, _ in out}
        attempts = 0
        while len(out) < self.config.population and attempts < 50 * self.config.population:
            attempts += 1
            g, ops = base_g, []
            for _ in range(int(rng.integers(1, 4))):
                m = mutate(g, rng, self.space)
                if m is None:
                    break
                g, op = m
                ops.append(op)
            if g.key not in seen and ops:
                seen.add(g.key)
                out.append((g, "+".join(ops), [base_g.key]))
        return out

    def _offspring(self, ranked: list[Ranked], rng: np.random.Generator) -> list[tuple[Genome, str, list[str]]]:
        out: list[tuple[Genome, str, list[str]]] = []
        seen = {r.key for r in ranked}
        draws = 0
        while len(out) < self.config.population and draws < 20 * self.config.population:
            draws += 1
            a = tournament(ranked, rng)
            child = None
            if rng.random() < self.config.crossover and len(ranked) > 1:
                b = tournament(ranked, rng)
                if b.key != a.key:
                    child = crossover(self.genome(a.key), self.genome(b.key), self.records[a.key],
                                      self.records[b.key], rng, self.space)
                    op, parents = "crossover", [a.key, b.key]
            if child is None:
                m = mutate(self.genome(a.key), rng, self.space)
                if m is None:
                    continue
                child, op = m
                parents = [a.key]
            if child.key in seen:
                continue
            seen.add(child.key)
            out.append((child, op, parents))
        return out

    def _commit(self, gen: int, births: list[tuple[Genome, str, list[str]]], parents: list[str],
                rng: np.random.Generator) -> None:
        t0 = time.perf_counter()
        for g, _, _ in births:
            self.genomes.setdefault(g.key, g)
        new = list(dict.fromkeys(g.key for g, _, _ in births if g.key not in self.records))
        evs, eval_wall = self._evaluate(new)
        for ev in evs:
            self.records[ev.genome] = ev.record()
        pool = [self.scored(k, gen) for k in parents] + [self.scored(g.key, gen) for g, _, _ in births]
        ranked = survivors(pool, self.config.population, self.config.distinct)
        qualities = np.array([self.scored(r.key).quality for r in ranked])
        best = max(ranked, key=lambda r: (self.scored(r.key).quality, -self.scored(r.key).cost, r.key))
        div = diversity([frozenset(rule_key(x) for x in self.genome(r.key).rules) for r in ranked])
        front = pareto_front([self.scored(k) for k in self.records])
        summary = {"best_objectives": self.records[best.key]["objectives"], "front_size": len(front),
                   "population": len(ranked), "children": len(births)}
        with self.store.transaction():
            for g, _, _ in births:
                self.store.add_genome(g.key, g.canonical(), gen)
            for ev in evs:
                self.store.add_evaluation(ev.genome, "fit", ev.record())
            for slot, (g, op, ps) in enumerate(births):
                self.store.add_birth(gen, slot, g.key, op, ps)
            self.store.add_population(gen, [(r.key, r.front, r.crowding) for r in ranked])
            self.store.add_generation(gen, rng.bit_generator.state, float(qualities.max()),
                                      float(np.median(qualities)), best.key, round(div, 10), len(new), summary)
            seconds = sum(ev.seconds for ev in evs)
            telemetry = {
                "wall_seconds": time.perf_counter() - t0, "evaluations": len(evs), "evaluation_seconds": seconds,
                "evaluations_per_second": len(evs) / eval_wall if eval_wall > 0 and evs else None,
                "texts_per_second": sum(ev.texts for ev in evs) / seconds if seconds > 0 else None,
                "workers": self.workers, "executor": getattr(self.executor, "name", "?"),
                "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            }
            self.store.add_telemetry(gen, telemetry)
        self.observer.generation(gen, {"best_quality": float(qualities.max()), "median_quality":
                                       float(np.median(qualities)), "diversity": div, "best": best.key,
                                       "evaluated": len(new), **summary}, telemetry)

    # -- the end ------------------------------------------------------------------------------------
    def final(self) -> dict[str, Any]:
        """Pick the final genome (validation on the front's best) and record it; idempotent."""
        done = self.store.final()
        if done is not None:
            return done
        front = pareto_front([self.scored(k) for k in self.records])
        budget = self.config.max_cost
        allowed = [s for s in front if budget is None or s.cost <= budget]
        if self.config.distinct:  # one candidate per behaviour: the first (smallest key) of equal objectives
            allowed = one_per_behaviour(allowed)
        candidates = [s.key for s in allowed[: self.config.final_candidates]]
        stored = self.store.evaluations("valid")
        todo = [k for k in candidates if k not in stored]
        if todo:
            self.observer.message(f"final pick: validating {len(todo)} of the front's best")
        evs, _ = self._evaluate(todo, "valid")
        valid = {k: stored[k] for k in candidates if k in stored}
        valid.update({ev.genome: ev.record() for ev in evs})
        pick = max(candidates, key=lambda k: (valid[k]["objectives"]["quality"],
                                              -valid[k]["objectives"]["cost"], _neg(k)))
        chosen, steps, records = self._simplify(pick, valid[pick])
        within = f" of cost at most {budget}" if budget is not None else ""
        record = {
            "rule": f"the highest validation quality among the {self.config.final_candidates} front members{within} "
                    "of highest fit quality (then lower cost, then smaller genome key), less the settings that "
                    "change none of its objectives and the rules without which it is no worse and cheaper",
            "pick": pick,
            "simplified": [what for what, _ in steps],
            "fit": records[chosen][0]["objectives"],
            "valid": records[chosen][1]["objectives"],
            "candidates": [{"genome": k, "fit": self.records[k]["objectives"], "valid": valid[k]["objectives"]}
                           for k in candidates],
            "front": [{"genome": s.key, "quality": s.quality, "cost": s.cost} for s in front],
        }
        with self.store.transaction():
            for ev in evs:
                self.store.add_evaluation(ev.genome, "valid", ev.record())
            parent = pick
            for slot, (what, key) in enumerate(steps):  # a birth each, so lineage shows what went
                self.store.add_genome(key, self.genome(key).canonical(), self.config.generations)
                self.store.add_evaluation(key, "fit", records[key][0])
                self.store.add_evaluation(key, "valid", records[key][1])
                self.store.add_birth(self.config.generations, slot, key, f"simplify: {what}", [parent])
                parent = key
            self.store.set_final(chosen, records[chosen][0]["algorithm"], record)
        return self.store.final()

    def _simplify(self, key: str, valid: dict[str, Any]
                  ) -> tuple[str, list[tuple[str, str]], dict[str, tuple[dict[str, Any], dict[str, Any]]]]:
        """The pick less every setting whose removal changes none of its objectives and every
        rule whose removal leaves it no worse and cheaper, on the fit and the validation data
        (:func:`sae.evolve.genome.simplifications`, then :func:`sae.evolve.genome.rule_removals`,
        tried in order, again after each one kept): the simpler genome, what each step removed
        with the genome it gave, and the evaluations (fit, validation) of the pick and of those
        genomes."""
        pick = (self.records[key], valid)  # every step is compared with the pick, so nothing drifts
        steps: list[tuple[str, str]] = []
        records: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {key: pick}
        tried: set[str] = set()
        while True:
            genome = self.genome(key)
            candidates = [(what, g, _changes_nothing) for what, g in simplifications(genome, self.base.params)]
            candidates += [(what, g, _no_worse_and_cheaper) for what, g in rule_removals(genome)]
            for what, simpler, keeps in candidates:
                if simpler.key in tried:
                    continue
                tried.add(simpler.key)
                self.genomes[simpler.key] = simpler
                (fit,), _ = self._evaluate([simpler.key], "fit")
                (val,), _ = self._evaluate([simpler.key], "valid")
                if keeps(pick[0], fit.record()) and keeps(pick[1], val.record()):
                    key = simpler.key
                    records[key] = (fit.record(), val.record())
                    steps.append((what, key))
                    break
            else:
                return key, steps, records


#: Objectives a simplification must leave unchanged, compared in millionths: an opcode that
#: acts like ``ACC`` still sums in another order and moves a cosine in its eighth digit.
_KEPT = ("quality", "spearman", "teacher", "minimal_error", "steps")


def _micro(value: float | None) -> int | None:
    return None if value is None else round(value * 1_000_000)


def _changes_nothing(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether ``after``'s objectives equal ``before``'s to six digits, at no more cost."""
    a, b = before["objectives"], after["objectives"]
    return all(_micro(a[k]) == _micro(b[k]) for k in _KEPT) and b["cost"] <= a["cost"] and b["rules"] <= a["rules"]


def _no_worse_and_cheaper(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether ``after`` dominates ``before`` in the search's own objectives: a quality at
    least as high to six digits, at a lower cost (the final pick would have preferred it)."""
    a, b = before["objectives"], after["objectives"]
    return _micro(b["quality"]) >= _micro(a["quality"]) and b["cost"] < a["cost"]


def _neg(key: str) -> tuple[int, ...]:
    """Order keys so that max() prefers the smaller one."""
    return tuple(-ord(c) for c in key)


def write_algorithm(alg: Algorithm, out: Path) -> None:
    """Save ``alg`` to ``out`` atomically (a temporary sibling, then renamed) and check it loads
    back with the same content hash."""
    lossless16 = all(np.array_equal(a.astype(np.float16).astype(np.float32), a)
                     for a in (alg.vectors, alg.transforms))
    save_algorithm_atomically(alg, out, "--out", vector_dtype="float16" if lossless16 else "float32")


def evolve(inputs: Inputs, config: EvolveConfig, run_path: str | Path, out: str | Path, *, resume: bool = False,
           executor_kind: str = "local", workers: int = 1, ray_address: str | None = None,
           observer: Observer | None = None,
           on_ready: Callable[[], None] | None = None, name: str = "evolved") -> Result:
    """Run (or resume) an evolution and write its final Algorithm to ``out``, named ``name``."""
    from sae.evolve.executors import Payload, check_executor, make_executor

    check_executor(executor_kind, ray_address)
    if not isinstance(name, str) or not name:  # what loading the written Algorithm would refuse, after the run
        raise InputError("--name must be a non-empty string")
    base_dir = inputs.base or default_algorithm_path()
    out = check_algorithm_output(out, "--out", inputs=(run_path, base_dir, inputs.teacher, inputs.pairs))
    # SQLite writes beside the run file: a directory by one of those names breaks the run.
    sidecars = {f"{Path(run_path).name}{suffix}" for suffix in ("-journal", "-wal", "-shm")}
    if out.name in sidecars and out.resolve().parent == Path(run_path).resolve().parent:
        raise InputError(f"{out}: SQLite writes the run file {run_path}'s journal by that name; name another --out")
    if Path(base_dir).resolve() in out.resolve().parents:  # the base would hold a directory not its own
        raise InputError(f"{out}: lies inside the base Algorithm {base_dir}; name another --out")
    base, data, identity = load_inputs(inputs, config)
    if config.linear:
        from sae.distill.output_map import check_linear

        try:
            check_linear(base)
        except ValueError as exc:
            raise InputError(f"--linear: the base {inputs.base or 'default'}: {exc}") from None
    store = RunStore(run_path)
    try:
        if not check_identity(store, identity, resume):
            store.start(identity)
        executor = make_executor(Payload.of(base, data, config.fitness), executor_kind, workers, ray_address)
        try:
            if on_ready:
                on_ready()
            evo = Evolution(config, base, data, store, executor, observer, workers)
            evo.run()
            final = evo.final()
        finally:
            executor.close()
        genome = Genome.from_json(json.loads(store.genome_json(final["genome"])))
        from sae.blas import one_thread

        with one_thread():  # a refit of the transforms must give the evaluated bytes
            alg = Evaluator(base, data, config.fitness).algorithm(genome)
        if alg.content_hash != final["algorithm"]:
            raise InputError(f"{run_path}: the final Algorithm's content hash {alg.content_hash[:16]} differs from "
                             f"the recorded {final['algorithm'][:16]}")
        alg = replace(alg, name=name)
        write_algorithm(alg, out)
        return Result(final["genome"], alg.content_hash, out, final)
    finally:
        if observer:
            observer.stop()
        store.close()


__all__ = ["MAX_GENERATIONS", "MAX_POPULATION", "MIN_FIT_PAIRS", "Evolution", "EvolveConfig", "Inputs", "Observer",
           "Result", "evolve", "write_algorithm"]
