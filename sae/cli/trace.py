"""``sae trace TEXT``: the journal of one text, every bid taken, committed or reverted."""

from __future__ import annotations

import argparse
import json

import numpy as np

from sae.cli.common import add_engine_options, engine_from_args
from sae.engine import Engine, Explanation
from sae.io import argument_text
from sae.layout import COMMITTED, Op


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "trace",
        help="show how one text is rewritten",
        description="Anneal one text and print its journal (every attempted rewrite, committed "
        "or reverted) and its program before and after.",
    )
    p.add_argument("text", metavar="TEXT", help="the text to trace")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    add_engine_options(p, batch=False)
    p.set_defaults(run=run)


def _program_rows(engine: Engine, items: np.ndarray) -> list[dict]:
    return [
        {
            "symbol": engine.symbol_name(int(it["symbol"])),
            "pos": int(it["pos"]),
            "span": int(it["span"]),
            "opcode": Op(int(it["opcode"])).name,
            "arg0": int(it["arg0"]),
            "weight": int(it["arg1"]) / 65536,
            "transform": engine.algorithm.transform_name(int(it["mod"])),
        }
        for it in items
    ]


def _journal_rows(x: Explanation) -> list[dict]:
    return [
        {
            "step": int(j["step"]),
            "rank": int(j["rank"]),
            "rule": x.rule_names[int(j["rule"])],
            "pos": int(j["pos"]),
            "score": int(j["score"]),
            "potential_before": int(j["potential_before"]),
            "potential_after": int(j["potential_after"]),
            "outcome": "committed" if j["outcome"] == COMMITTED else "reverted",
        }
        for j in x.journal
    ]


def run(args: argparse.Namespace) -> int:
    engine = engine_from_args(args)
    x = engine.explain(argument_text(args.text))
    journal = _journal_rows(x)
    if args.json:
        print(json.dumps({
            "text": x.text,
            "algorithm": engine.algorithm.name,
            "backend": engine.backend.name,
            "tokens": x.tokens,
            "initial": _program_rows(engine, x.initial),
            "journal": journal,
            "final": _program_rows(engine, x.final),
            "embedding_norm": float(np.linalg.norm(x.embedding)),
        }))
        return 0
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(markup=False)  # the text, symbols and rule names are shown as they are
    console.print(Text.assemble((repr(x.text), "bold"), f": {len(x.tokens)} tokens → {len(x.final)} items, "
                  f"{sum(j['outcome'] == 'committed' for j in journal)} committed / "
                  f"{sum(j['outcome'] == 'reverted' for j in journal)} reverted rewrites "
                  f"({engine.algorithm.name}, {engine.backend.name})"))
    table = Table(title="journal")
    for col in ("step", "rank", "rule", "pos", "score", "potential", "outcome"):
        table.add_column(col, justify="right" if col in ("step", "rank", "pos", "score") else "left")
    for j in journal:
        style = "green" if j["outcome"] == "committed" else "red"
        table.add_row(str(j["step"]), str(j["rank"]), j["rule"], str(j["pos"]), str(j["score"]),
                      f"{j['potential_before']} → {j['potential_after']}", Text(j["outcome"], style=style))
    console.print(table)
    for title, items in (("program before", x.initial), ("program after", x.final)):
        prog = Table(title=title)
        for col in ("#", "symbol", "pos", "span", "opcode", "weight", "transform"):
            prog.add_column(col)
        for i, row in enumerate(_program_rows(engine, items)):
            prog.add_row(str(i), row["symbol"], str(row["pos"]), str(row["span"]), row["opcode"],
                         f"{row['weight']:g}", row["transform"])
        console.print(prog)
    return 0
