"""Evaluations per second of ``sae evolve`` with 1 and 2 local workers and Ray local,
in one invocation, and a check that the three runs are the same run.

    python tools/evolve/bench_executors.py --teacher out/evolve/teacher-train.parquet \
        --pairs ../shared/data/stsb/sts-train.csv --base out/base-v2 [--generations 3 --population 8] \
        [--configs local:1,local:2,ray:2] [--backend cpu|gpu]

Each configuration runs the same small evolution (same seed) into its own run file;
the rate is evaluations over the wall time of the evaluation phases (telemetry of the
run store, the final pick left out), over all generations and after generation 0 (whose
evaluations include starting the workers: spawning processes, or Ray actors, and
shipping them the base and the data). The digests of the
deterministic tables and the final content hashes must agree. The machine is shared:
note the load average printed beside each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXECUTORS = ("local", "ray")


def configs(text: str) -> list[tuple[str, str]]:
    """An argparse type: ``executor:workers`` pairs, comma-separated (``local:1,ray:2``)."""
    from sae.cli.common import positive_int

    out = []
    for spec in text.split(","):
        kind, sep, workers = spec.partition(":")
        if not sep or kind not in EXECUTORS:
            raise argparse.ArgumentTypeError(f"{spec!r} is not executor:workers with executor one of {EXECUTORS}")
        out.append((kind, str(positive_int(workers))))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--pairs", default=None)
    ap.add_argument("--base", default=None)
    ap.add_argument("--generations", type=int, default=3)
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--fit-pairs", type=int, default=1000)
    ap.add_argument("--minimal-pairs", type=int, default=300)
    ap.add_argument("--configs", type=configs, default="local:1,local:2,ray:2",
                    help="executor:workers, comma-separated (executor local or ray)")
    ap.add_argument("--backend", choices=("cpu", "gpu"), default="cpu",
                    help="evaluation backend (gpu with one local worker: a generation as one population)")
    args = ap.parse_args()

    from sae.algorithm import load_algorithm
    from sae.errors import InputError, SaeError
    from sae.evolve.store import RunStore

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, workers in args.configs:
            run, out = Path(tmp) / f"{kind}{workers}.sqlite", Path(tmp) / f"{kind}{workers}"
            cmd = [sys.executable, "-m", "sae", "evolve", "--teacher", args.teacher, "--run", str(run),
                   "--out", str(out), "--generations", str(args.generations), "--population", str(args.population),
                   "--fit-pairs", str(args.fit_pairs), "--minimal-pairs", str(args.minimal_pairs),
                   "--workers", workers, "--executor", kind, "--backend", args.backend]
            cmd += ["--pairs", args.pairs] if args.pairs else []
            cmd += ["--base", args.base] if args.base else []
            load0 = os.getloadavg()[0]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if proc.returncode != 0:  # its own one-line error (a bad --teacher, ...) is its last line
                last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
                error = InputError if proc.returncode == 2 else SaeError
                raise error(f"sae evolve ({kind}:{workers}) exited with {proc.returncode}: {last}")
            wall = time.perf_counter() - t0
            store = RunStore(run)
            tel = store.telemetry()
            evals = sum(t["evaluations"] for t in tel.values())
            eval_wall = sum(t["evaluations"] / t["evaluations_per_second"] for t in tel.values()
                            if t["evaluations_per_second"])
            steady = [t for g, t in tel.items() if g > 0 and t["evaluations_per_second"]]
            steady_rate = (sum(t["evaluations"] for t in steady)
                           / sum(t["evaluations"] / t["evaluations_per_second"] for t in steady)) if steady else None
            rows.append({"executor": kind, "workers": int(workers), "backend": args.backend, "evaluations": evals,
                         "evaluations_per_second": evals / eval_wall, "steady_evaluations_per_second": steady_rate,
                         "command_seconds": wall,
                         "digest": store.digest(), "algorithm": load_algorithm(out).content_hash,
                         "load_average_before": load0})
            store.close()
    same = len({(r["digest"], r["algorithm"]) for r in rows}) == 1
    for r in rows:
        steady = r["steady_evaluations_per_second"]
        steady_text = f"{steady:.2f}/s" if steady is not None else "n/a (one generation)"
        print(f"{r['backend']} {r['executor']:5s} workers {r['workers']}: {r['evaluations']} evaluations, "
              f"{r['evaluations_per_second']:.2f}/s, after generation 0 {steady_text} (command {r['command_seconds']:.0f} s, load before "
              f"{r['load_average_before']:.1f}); digest {r['digest'][:12]}, best {r['algorithm'][:12]}")
    print(f"same run in every configuration: {same}")
    print(json.dumps(rows))
    return 0 if same else 1


if __name__ == "__main__":
    from sae.errors import run_script

    sys.exit(run_script(main))
