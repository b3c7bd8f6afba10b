"""``sae lineage RUN.sqlite``: what an evolution run did (docs/EVOLVE.md)."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lineage",
        help="an evolution run's generations, the best Algorithm's lineage, the Pareto front, a plot",
        description="Reads a run store written by sae evolve (finished or not): the generations, the best "
                    "genome's lineage (which operator on which parent brought which gain), the Pareto front "
                    "of quality and cost, and with --plot a PNG of fitness over generations.",
    )
    p.add_argument("run_path", metavar="RUN.sqlite")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="OUT.png", help="write a plot of fitness over generations and the front")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sae.evolve.lineage import lineage_report, plot
    from sae.evolve.store import open_existing, readable_run
    store = open_existing(args.run_path)
    try:
        with readable_run(args.run_path):
            report = lineage_report(store)
            if args.plot:
                plot(report, store, args.plot)
    finally:
        store.close()
    if args.json:
        print(json.dumps(report))
        return 0
    _print(report)
    return 0


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def _print(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    con = Console(markup=False)  # the run's path is shown as it is
    cfg = report["identity"].get("config", {})
    con.print(Text.assemble(
        (report["run"], "bold"),
        f": seed {cfg.get('seed')}, {len(report['generations'])} of "
        f"{cfg.get('generations')} generations, population {cfg.get('population')}, "
        + (f"selection on {cfg['resample']:g} of the fit pairs per generation, " if cfg.get("resample") else "")
        + ("one place per behaviour, " if cfg.get("distinct") else "")
        + f"{report['evaluations']} genomes evaluated, {'finished' if report['finished'] else 'not finished'}; "
        f"digest {report['digest'][:16]}"))
    t = Table(title="generations")
    for c in ("gen", "best", "median", "diversity", "evaluated", "eval/s", "best genome"):
        t.add_column(c, justify="left" if c == "best genome" else "right")
    for g in report["generations"]:
        eps = (g["telemetry"] or {}).get("evaluations_per_second")
        t.add_row(str(g["gen"]), _fmt(g["best_quality"]), _fmt(g["median_quality"]), f"{g['diversity']:.3f}",
                  str(g["evaluated"]), f"{eps:.2f}" if eps else "-", g["best_genome"][:12])
    con.print(t)
    t = Table(title="lineage of the best genome (main parent: the fitter one)")
    for c in ("gen", "operator", "parent", "child", "quality", "gain"):
        t.add_column(c, justify="right" if c in ("gen", "quality", "gain") else "left")
    for s in report["lineage"]:
        gain = s["gain"]
        t.add_row(str(s["gen"]), s["operator"], (s["main_parent"] or "-")[:12], s["genome"][:12],
                  _fmt(s["quality"]), "-" if gain is None else f"{gain:+.4f}")
    con.print(t)
    t = Table(title="Pareto front (quality ↑, cost ↓)")
    for c in ("genome", "quality", "spearman", "teacher", "minimal err", "cost", "rules", "same"):
        t.add_column(c, justify="left" if c == "genome" else "right")
    for f in report["front"]:
        o = f["objectives"]
        t.add_row(f["genome"][:12], _fmt(o["quality"]), _fmt(o.get("spearman")), _fmt(o.get("teacher")),
                  _fmt(o.get("minimal_error")), _fmt(o["cost"]), str(int(o["rules"])),
                  f"+{len(f['equivalent'])}" if f["equivalent"] else "")
    con.print(t)
    best = report["best"]
    con.print(Text.assemble(("best", "bold"), f" genome {best['genome'][:16]}, Algorithm {best['algorithm'][:16]}, "
                            f"params {best['params']}, lexicon {best['lexicon']}:"))
    con.print(best["rules"], highlight=False)
    if report["final"]:
        final = report["final"]
        # The stored rule names --final-candidates; a small front validates fewer.
        con.print(f"final pick: {final['rule']} ({len(final['candidates'])} validated); "
                  f"validation {final['valid']}")
