"""Reading a run back: generations, the best genome's lineage, the Pareto front, a plot.

:func:`lineage_report` reads only the run store. The lineage follows the best genome
back to generation 0 through its **main parent** (for a crossover, the parent of
higher quality), and states at each step which operator turned which parent into
which child and what it gained in quality.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sae.errors import InputError
from sae.evolve.genome import Genome
from sae.evolve.select import Scored, pareto_front
from sae.evolve.store import RunStore
from sae.io import check_png_output, write_atomically

PLOT_HINT = "pip install 'sae[evolve]'"


def lineage_report(store: RunStore) -> dict[str, Any]:
    """Everything ``sae lineage`` shows, as one JSON-ready object."""
    identity = store.config() or {}
    gens = store.generations()
    records = store.evaluations("fit")
    births = store.births()
    telemetry = store.telemetry()
    final = store.final()
    if not gens:
        raise InputError(f"{store.path}: the run has no committed generation yet")
    best_key = final["genome"] if final else max(
        (g["best_genome"] for g in gens), key=lambda k: (records[k]["objectives"]["quality"], k))

    def quality(k: str) -> float:
        return float(records[k]["objectives"]["quality"])

    steps = []
    key: str | None = best_key
    seen = set()
    while key is not None and key not in seen:
        seen.add(key)
        gen, op, parents = births.get(key, (0, "?", []))
        main = max(parents, key=lambda p: (quality(p), p)) if parents else None
        steps.append({"gen": gen, "genome": key, "operator": op, "parents": parents, "main_parent": main,
                      "quality": quality(key), "gain": quality(key) - quality(main) if main else None})
        key = main
    steps.reverse()
    front = pareto_front([Scored(k, quality(k), float(r["objectives"]["cost"])) for k, r in records.items()])
    best_genome = Genome.from_json(store.genome_doc(best_key))
    from sae.rules_text import format_rules

    return {
        "run": str(store.path),
        "identity": identity,
        "digest": store.digest(),
        "generations": [
            {"gen": g["gen"], "best_quality": g["best_quality"], "median_quality": g["median_quality"],
             "diversity": g["diversity"], "evaluated": g["evaluated"], "best_genome": g["best_genome"],
             "best_objectives": g["summary"].get("best_objectives"), "front_size": g["summary"].get("front_size"),
             "telemetry": telemetry.get(g["gen"])}
            for g in gens
        ],
        "best": {"genome": best_key, "algorithm": records[best_key]["algorithm"],
                 "objectives": records[best_key]["objectives"], "rules": format_rules(best_genome.rules),
                 "params": best_genome.to_json()["params"], "lexicon": best_genome.to_json()["lexicon"],
                 "rule_stats": records[best_key]["rule_stats"]},
        "lineage": steps,
        "front": _grouped_front(front, records, best_key),
        "final": final,
        "evaluations": len(records),
        "finished": final is not None,
    }


def _grouped_front(front: list[Scored], records: dict[str, Any], best_key: str) -> list[dict[str, Any]]:
    """Front members with identical objectives shown once (neutral variants: a loop
    parameter no rule exercises, say); the others are listed as ``equivalent``."""
    groups: dict[str, list[str]] = {}
    for s in front:
        groups.setdefault(json.dumps(records[s.key]["objectives"], sort_keys=True), []).append(s.key)
    out = []
    for s in front:
        keys = groups[json.dumps(records[s.key]["objectives"], sort_keys=True)]
        lead = best_key if best_key in keys else keys[0]
        if s.key == lead:
            out.append({"genome": s.key, "quality": s.quality, "cost": s.cost,
                        "objectives": records[s.key]["objectives"], "equivalent": [k for k in keys if k != lead]})
    return out


def quality_range(report: dict[str, Any], qualities: list[float]) -> tuple[float, float]:
    """The plot's quality axis: every generation's best and median, the Pareto front, the
    final pick and the best of ``qualities`` (every evaluation) lie inside it. Evaluations
    far below (broken mutants) may not: the plot draws them on its lower edge, counted."""
    shown = [g["best_quality"] for g in report["generations"]] + \
        [g["median_quality"] for g in report["generations"]] + [f["quality"] for f in report["front"]]
    if report["final"]:
        shown.append(report["best"]["objectives"]["quality"])
    return min(shown) - 0.02, max(shown + list(qualities)) + 0.005


def plot(report: dict[str, Any], store: RunStore, out: str | Path) -> None:
    """Fitness over generations (best, median, every evaluation) and the Pareto front, as PNG."""
    check_png_output(out, "--plot", inputs=(store.path,))  # before any drawing
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError(f"--plot needs matplotlib: {PLOT_HINT}") from None
    records = store.evaluations("fit")
    first = {}
    for row in store.db.execute("SELECT key, first_gen FROM genomes"):
        first[row[0]] = row[1]
    gens = report["generations"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    xs = [first.get(k, 0) for k in records]
    ys = [r["objectives"]["quality"] for r in records.values()]
    front = report["front"]
    low, high = quality_range(report, ys)
    edge = low + 0.002 * (high - low)
    inside = [y >= low for y in ys]
    below = len(ys) - sum(inside)
    ax1.scatter([x for x, k in zip(xs, inside) if k], [y for y, k in zip(ys, inside) if k], s=6, c="#bbbbbb",
                label="every evaluation")
    if below:
        ax1.scatter([x for x, k in zip(xs, inside) if not k], [edge] * below, s=10, marker="v", c="#888888",
                    label=f"{below} below the range (on its edge)")
    ax1.plot([g["gen"] for g in gens], [g["best_quality"] for g in gens], "o-", ms=3, c="#1f77b4", label="best")
    ax1.plot([g["gen"] for g in gens], [g["median_quality"] for g in gens], "o--", ms=3, c="#ff7f0e",
             label="median")
    ax1.set_ylim(low, high)
    from matplotlib.ticker import MaxNLocator

    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_xlabel("generation")
    ax1.set_ylabel("quality (fit pairs)")
    ax1.set_title("fitness over generations")
    ax1.legend(loc="lower right")
    costs = [r["objectives"]["cost"] for r in records.values()]
    ax2.scatter([c for c, k in zip(costs, inside) if k], [y for y, k in zip(ys, inside) if k], s=6, c="#bbbbbb",
                label="every evaluation")
    if below:
        ax2.scatter([c for c, k in zip(costs, inside) if not k], [edge] * below, s=10, marker="v", c="#888888",
                    label=f"{below} below the range (on its edge)")
    ax2.plot([f["cost"] for f in front], [f["quality"] for f in front], "o-", c="#d62728", ms=3, label="Pareto front")
    if report["final"]:
        b = report["best"]["objectives"]
        ax2.scatter([b["cost"]], [b["quality"]], marker="*", s=160, c="#2ca02c", label="final pick", zorder=3)
    ax2.set_ylim(ax1.get_ylim())
    ax2.set_xlabel("cost (bid work per text)")
    ax2.set_ylabel("quality")
    ax2.set_title("Pareto front")
    ax2.legend(loc="lower right")
    fig.tight_layout()
    try:
        write_atomically(out, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)


__all__ = ["lineage_report", "plot", "quality_range"]
