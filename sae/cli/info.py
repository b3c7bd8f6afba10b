"""``sae info``: the GPU adapters of this machine and which one sae would use."""

from __future__ import annotations

import argparse
import json
import os

from sae.errors import BackendUnavailableError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="list GPU adapters, their features and limits",
        description="List the GPU adapters wgpu sees (name, graphics backend, device type), "
        "whether they offer timestamp queries, the limits sae needs, and which adapter sae "
        "would pick (SAE_ADAPTER, SAE_POWER_PREFERENCE).",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.set_defaults(run=run)


def collect() -> dict:
    """Everything ``sae info`` reports, as plain data."""
    from sae.gpu.device import REQUIRED_LIMITS, choose_adapter, enumerate_adapters

    adapters = enumerate_adapters()
    try:
        chosen = choose_adapter()
        choice, reason = chosen.index, None
    except BackendUnavailableError as exc:
        choice, reason = None, str(exc)
    return {
        "adapters": [a.as_dict() for a in adapters],
        "required_limits": dict(REQUIRED_LIMITS),
        "chosen": choice,
        "chosen_reason": reason,
        "env": {k: os.environ.get(k) for k in ("SAE_ADAPTER", "SAE_POWER_PREFERENCE")},
    }


def run(args: argparse.Namespace) -> int:
    try:
        info = collect()
    except BackendUnavailableError as exc:  # wgpu itself cannot be loaded
        info = {"adapters": [], "required_limits": {}, "chosen": None, "chosen_reason": str(exc), "env": {}}
    if args.json:
        print(json.dumps(info))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(markup=False)  # adapter names are shown as they are
    table = Table(title="GPU adapters")
    for col in ("#", "name", "backend", "device type", "timestamp-query", "usable"):
        table.add_column(col)
    for a in info["adapters"]:
        mark = " ← sae" if a["index"] == info["chosen"] else ""
        usable = "yes" if a["usable"] else f"no: {a['problems'][0]}"
        table.add_row(
            str(a["index"]), a["name"] + mark, a["backend"], a["device_type"],
            "yes" if a["timestamp_query"] else "no", usable,
        )
    console.print(table)
    if info["adapters"]:
        limits = Table(title="limits that matter (adapter value / sae needs)")
        limits.add_column("limit")
        for a in info["adapters"]:
            limits.add_column(f"#{a['index']} {a['backend']}", justify="right")
        for name, need in info["required_limits"].items():
            limits.add_row(name, *(f"{a['limits'][name]} / {need}" for a in info["adapters"]))
        console.print(limits)
    if info["chosen"] is None:
        console.print(f"sae uses the CPU backend: {info['chosen_reason']}")
    else:
        a = info["adapters"][info["chosen"]]
        console.print(f"--backend gpu uses adapter #{a['index']}: {a['name']} ({a['backend']})")
        if a["is_software"] and not info["env"].get("SAE_ADAPTER"):
            console.print("--backend auto uses the CPU backend: this is a software adapter, slower than "
                          "numpy (name it with --adapter or SAE_ADAPTER to use it)")
        else:
            console.print("--backend auto uses it too")
    return 0
