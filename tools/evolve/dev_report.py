"""STS-B dev figures of evolved Algorithms next to their references (for the report only:
dev never feeds selection).

    python tools/evolve/dev_report.py --shared ../shared --cache out/distill \
        --teacher-python /work/venv-teacher/bin/python \
        --algorithm evolved=out/real/best --algorithm base=out/base-v2 --algorithm shipped=sae/data/default

For each Algorithm: dev Spearman with its rules and with its rules removed (the
difference is what the rules add), mean cosine to the teacher, and the minimal pairs of
dev sentences (mean |cos_sae − cos_teacher|: negation by "not", by "n't", by "no" and by
"does not" or "never", role swaps around "is V-ing" and without an auxiliary, and the mean
signed error, ``_bias``; teacher embeddings from the distillation cache, computed when missing). ``--split train`` gives the same figures on
train, for a decision taken before dev is read.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def main() -> int:
    from sae import Engine, load_algorithm
    from sae.distill.minimal_pairs import reported_pairs
    from sae.distill.teacher_cache import TeacherCache
    from sae.evaluate import cosine_rows, read_shared_split, score_embeddings

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--cache", default="out/distill")
    ap.add_argument("--teacher-python", default=None)
    ap.add_argument("--algorithm", action="append", required=True, metavar="NAME=DIR")
    ap.add_argument("--split", choices=("dev", "train"), default="dev",
                    help="the STS-B split (default dev; train for a decision that must not read dev)")
    args = ap.parse_args()

    split, teacher = read_shared_split(args.shared, args.split)
    texts = split.unique_texts()
    lookup = teacher.lookup()
    t_emb = np.asarray(teacher.embeddings)[[lookup[t] for t in texts]]
    found = reported_pairs(texts)  # negation by "not" (issue 9's target), "n't", "no", "does not"/"never"; role swaps
    cache = TeacherCache(args.cache, args.teacher_python)
    # Every text the cache lacks in one teacher run (it loads the model each time it runs).
    cache.embeddings(list(dict.fromkeys(t for pairs in found.values() for pair in pairs for t in pair)))
    mp = {kind: (pairs, cosine_rows(cache.embeddings([a for a, _ in pairs]), cache.embeddings([b for _, b in pairs])))
          for kind, pairs in found.items() if pairs}  # the teacher's cosines, once per kind
    out = {}
    for spec in args.algorithm:
        name, _, path = spec.partition("=")
        alg = load_algorithm(path)
        row = {"content_hash": alg.content_hash, "rules": len(alg.rules)}
        for label, a in (("", alg), ("without_rules_", alg.without_rules())):
            eng = Engine(a, backend="cpu")
            emb = eng.embed(texts)
            row[f"{label}spearman"] = score_embeddings(split, texts, emb)[0]
            row[f"{label}teacher_cosine"] = float(cosine_rows(emb, t_emb).mean())
            for kind, (pairs, teacher_cos) in mp.items():
                ours = cosine_rows(eng.embed([p[0] for p in pairs]), eng.embed([p[1] for p in pairs]))
                error = ours - teacher_cos
                row[f"{label}{kind}_abs_error"] = float(np.abs(error).mean())
                row[f"{label}{kind}_bias"] = float(error.mean())  # < 0: sae moves the pairs further apart
        row["rules_add"] = row["spearman"] - row["without_rules_spearman"]
        out[name] = row
        print(f"{name:10s} {alg.content_hash[:12]} {args.split} Spearman {row['spearman']:.4f} "
              f"(rules removed {row['without_rules_spearman']:.4f}, rules add {row['rules_add']:+.4f}); "
              f"teacher cos {row['teacher_cosine']:.4f}; minimal pairs |Δcos| "
              + ", ".join(f"{k} {row[f'{k}_abs_error']:.4f}" for k in mp), file=sys.stderr)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    from sae.errors import run_script

    sys.exit(run_script(main))
