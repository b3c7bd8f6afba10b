# ruff: noqa: N803, N806  (matrix names follow the math: V, G, T, W)
"""Distil the bundled default Algorithm from the teacher all-MiniLM-L6-v2.

Reproducible recipe (see docs/DISTILLATION.md)::

    python tools/distill/build_default.py --shared ../shared --out sae/data/default

Steps:

1. Teacher (cached under ``--cache``, gitignored): the teacher's embedding of every
   vocabulary token alone, and of extra texts cut from *train* sentences (word
   windows) and of every lexicon entry. Computed by ``tools/distill/teacher_cache.py``
   with the teacher's interpreter (``--teacher-python``) when the cache lacks them.
2. Lexicon and rules: whole words that span 2..4 wordpieces and frequent word
   bigrams of the train sentences become lexicon phrases; generic merge rules turn
   them into one item; a negation rule rescales the word a negation governs.
3. Programs: every training text is annealed by the engine itself (numpy path), so
   the fit sees exactly the programs the runtime will execute.
4. Ridge: token and phrase vectors are fitted jointly by least squares to the
   teacher's embeddings, each shrunk to a prior: tokens to their single-token teacher
   vector mapped into sentence space by a fitted 384x384 map, phrases to the sum of
   their tokens' vectors (the phrase vector only learns what is not compositional).
5. Compression: PCA to ``--dim`` dimensions, unit rows with their norm as weight,
   float16 vectors.

Fit and tune on train only: ``--tune`` scores settings on a held-out part of the
*train* pairs (every 5th pair); the dev split is only measured at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from sae.algorithm import (  # noqa: E402
    Algorithm,
    ItemUpdate,
    LoopParams,
    PatternElement,
    Rule,
    phrase_table,
    save_algorithm,
)
from sae.batch import ProgramBatch  # noqa: E402
from sae.engine import Engine  # noqa: E402
from sae.evaluate import read_pairs, score_embeddings  # noqa: E402
from sae.layout import DEFAULT_CAPACITIES, Q16_ONE, F, Op, item_words  # noqa: E402
from sae.teacher import read_teacher  # noqa: E402

CLASSES = ("stop", "cont", "punct", "neg", "num", "word")
STOPWORDS = set(
    """a an the of and or but if then else to in on at by for with from into onto over under
    about as is are was were be been being am do does did doing have has had having i me my
    we our you your he him his she her it its they them their this that these those there
    here what which who whom whose when where why how all any both each few more most other
    some such only own same so than too very s t can will just should now also would could
    may might must shall up down out off again further once while during before after above
    below between through until against""".split()
)
NEGATIONS = {"not", "no", "never", "nothing", "nobody", "none", "neither", "nor", "without", "cannot"}


@dataclass(frozen=True)
class Config:
    """Every knob of the recipe (defaults: chosen with ``--tune`` on train only)."""

    dim: int = 384
    max_bytes: int = 16_000_000  # the whole Algorithm directory
    min_word_freq: int = 2  # multi-piece whole words in the lexicon
    min_bigram_freq: int = 100_000  # word bigrams in the lexicon
    lam_tok: float = 0.01  # ridge strength toward the token prior
    lam_phrase: float = 0.3  # ridge strength toward the compositional phrase vector
    lam_map: float = 1.0  # ridge of the 384x384 prior map
    neg_scale: float = 1.0  # arg1 of a negated word (1.0: rule off)
    windows: int = 8  # word windows per train sentence added as extra teacher texts
    window_weight: float = 1.0  # weight of a window row relative to a sentence row
    token_weight: float = 0.05  # weight of the single-token rows
    rules: bool = True
    # Reweighting rules added after the fit, tuned on train-holdout Spearman (--tune-rules):
    num_scale: float = 3.0  # any token with a digit
    stop_scale: float = 0.25  # a stopword right before a content word (determiners, "is", ...)
    punct_scale: float = 0.5  # punctuation right after a content word
    phrase_prior: str = "sum"  # "teacher": teacher(phrase text) mapped; "sum": sum of its tokens


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- data ------------------------------------------------------------------------------


def load_tokenizer(cache: Path) -> str:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(cache / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok.to_str()


def words_of(tok, text: str) -> list[str]:
    """Pre-tokenized words (the BERT normalizer and pre-tokenizer)."""
    norm = tok.normalizer.normalize_str(text) if tok.normalizer else text
    return [w for w, _ in tok.pre_tokenizer.pre_tokenize_str(norm)]


def token_classes(vocab: list[str]) -> np.ndarray:
    bits = np.zeros(len(vocab), dtype=np.uint32)
    c = {name: 1 << i for i, name in enumerate(CLASSES)}
    for i, w in enumerate(vocab):
        b = 0
        if w in STOPWORDS:
            b |= c["stop"]
        if w.startswith("##"):
            b |= c["cont"]
        core = w[2:] if w.startswith("##") else w
        if core and all(not ch.isalnum() for ch in core):
            b |= c["punct"]
        if w in NEGATIONS:
            b |= c["neg"]
        if core and any(ch.isdigit() for ch in core):
            b |= c["num"]
        if core.isalpha() and not w.startswith("##") and w not in STOPWORDS and not w.startswith("["):
            b |= c["word"]
        bits[i] = b
    return bits


def windows_of(words: list[str], k: int, seed: int) -> list[str]:
    """``k`` deterministic contiguous word windows (3..n-1 words) of a sentence."""
    n = len(words)
    if n < 5:
        return []
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(k):
        size = int(rng.integers(3, n))
        start = int(rng.integers(0, n - size + 1))
        out.append(" ".join(words[start : start + size]))
    return out


def ensure_teacher(cache: Path, texts: list[str], teacher_python: str) -> dict[str, np.ndarray]:
    """Teacher embeddings of ``texts`` from the cache, computing the missing ones."""
    file = cache / "texts.parquet"
    have: set[str] = set()
    if file.exists():
        have = set(read_teacher(file).texts)
    missing = [t for t in dict.fromkeys(texts) if t not in have]
    if missing or not (cache / "tokens.npy").exists():
        req = cache / "requests.txt"
        req.write_text("\n".join(missing) + "\n", encoding="utf-8")
        log(f"teacher: {len(missing)} texts missing from the cache; running {teacher_python}")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        subprocess.run(
            [teacher_python, str(REPO / "tools/distill/teacher_cache.py"), "--cache", str(cache), "--texts", str(req)],
            check=True, env=env,
        )
    if not file.exists():
        return {"texts": [], "emb": np.zeros((0, 384), dtype=np.float32)}
    table = read_teacher(file)
    return {"texts": table.texts, "emb": table.embeddings}


# -- the Algorithm's structure -------------------------------------------------------------


def build_lexicon(tok, fit_texts: list[str], cfg: Config) -> tuple[list[tuple[int, ...]], list[int]]:
    """Multi-piece whole words and frequent bigrams of the fit texts, with their counts."""
    word_count: Counter = Counter()
    bigram_count: Counter = Counter()
    pieces: dict[str, tuple[int, ...]] = {}
    for text in fit_texts:
        ws = words_of(tok, text)
        for w in ws:
            word_count[w] += 1
        for a, b in itertools.pairwise(ws):
            bigram_count[(a, b)] += 1
    for w in word_count:
        pieces[w] = tuple(tok.encode(w, add_special_tokens=False).ids)
    seqs: dict[tuple[int, ...], int] = {}
    for w, n in word_count.items():
        ids = pieces[w]
        if 2 <= len(ids) <= DEFAULT_CAPACITIES.phrase and n >= cfg.min_word_freq:
            seqs[ids] = seqs.get(ids, 0) + n
    alpha = re.compile(r"^[a-z]+$")
    for (a, b), n in bigram_count.items():
        if n < cfg.min_bigram_freq or not (alpha.match(a) and alpha.match(b)):
            continue
        if a in STOPWORDS and b in STOPWORDS:
            continue
        ids = pieces[a] + pieces[b]
        if len(ids) <= DEFAULT_CAPACITIES.phrase:
            seqs[ids] = seqs.get(ids, 0) + n
    keys = sorted(seqs)
    return keys, [seqs[k] for k in keys]


def make_rules(alg_classes: tuple[str, ...], cfg: Config) -> tuple[Rule, ...]:
    P = PatternElement
    rules = [
        Rule("merge4", 400, (P(opcode=int(Op.ACC)), P(), P(), P()), kind="merge"),
        Rule("merge3", 300, (P(opcode=int(Op.ACC)), P(), P()), kind="merge"),
        Rule("merge2", 200, (P(opcode=int(Op.ACC)), P()), kind="merge"),
    ]
    if cfg.neg_scale != 1.0:
        rules.append(
            Rule("negate", 100, (P(classes=("neg",)), P(gap=2, opcode=int(Op.ACC), classes=("word",))),
                 updates=(ItemUpdate(), ItemUpdate(arg1=round(cfg.neg_scale * Q16_ONE))))
        )
    return tuple(rules)


def reweight_rules(cfg: Config) -> tuple[Rule, ...]:
    """Rewrites that change item weights (arg1, Q16) in context; added after the ridge fit.

    The ridge fits vectors to the teacher; these rules then re-balance the items for
    the similarity task itself (numbers matter more to STS raters than to the
    teacher's geometry, function words and punctuation less). Fitting them inside
    the ridge would undo them: the fit would rescale the vectors to match the teacher.
    """
    P = PatternElement
    acc = int(Op.ACC)
    out = []
    if cfg.num_scale != 1.0:
        out.append(Rule("boost_number", 50, (P(opcode=acc, classes=("num",)),),
                        updates=(ItemUpdate(arg1=round(cfg.num_scale * Q16_ONE)),)))
    if cfg.stop_scale != 1.0:
        out.append(Rule("soften_stop_before_word", 50, (P(opcode=acc, classes=("stop",)), P(classes=("word",))),
                        updates=(ItemUpdate(arg1=round(cfg.stop_scale * Q16_ONE)), ItemUpdate())))
    if cfg.punct_scale != 1.0:
        out.append(Rule("soften_punct_after_word", 50, (P(classes=("word",)), P(opcode=acc, classes=("punct",))),
                        updates=(ItemUpdate(), ItemUpdate(arg1=round(cfg.punct_scale * Q16_ONE)))))
    return tuple(out)


def skeleton(tok_json: str, vocab: list[str], lexicon: list[tuple[int, ...]], counts: list[int],
             cfg: Config, dim: int = 8) -> Algorithm:
    """The Algorithm's structure with placeholder vectors: one row per symbol."""
    V = len(vocab)
    width = DEFAULT_CAPACITIES.phrase
    phrases = phrase_table(lexicon, width) if lexicon else np.zeros((0, width), dtype=np.int32)
    count_of = dict(zip(lexicon, counts))
    keys = [tuple(int(t) for t in row if t >= 0) for row in phrases]
    bonus = np.array([min(99, round(10 * float(np.log2(1 + count_of[k])))) for k in keys], dtype=np.int32)
    tok_classes = token_classes(vocab)
    word_bit = np.uint32(1 << CLASSES.index("word"))
    phrase_classes = np.full(len(keys), word_bit, dtype=np.uint32)
    n_sym = V + len(keys)
    return Algorithm(
        name="default",
        tokenizer_json=tok_json,
        vectors=np.zeros((n_sym, dim), dtype=np.float32),
        weights=np.ones(n_sym, dtype=np.float32),
        symbol_rows=np.arange(n_sym, dtype=np.int32),
        symbol_classes=np.concatenate([tok_classes, phrase_classes]),
        phrases=phrases,
        phrase_bonus=bonus,
        classes=CLASSES,
        rules=make_rules(CLASSES, cfg) if cfg.rules else (),
        params=LoopParams(max_steps=DEFAULT_CAPACITIES.steps, tolerance=1 << 20, inhibit_steps=2),
    )


# -- programs as design rows -------------------------------------------------------------------


def programs(alg: Algorithm, texts: list[str], batch_size: int = 1024, credit_tokens: bool = True):
    """Anneal ``texts`` with the engine's numpy path; return (doc, row, coef) arrays.

    ``coef`` is the item's weight scale divided by the document's token count (mean
    pooling); merged phrases also credit their tokens (the phrase vector is the sum
    of its tokens' vectors plus its own fitted difference).
    """
    engine = Engine(alg, backend="cpu", batch_size=batch_size)
    backend = engine.backend
    batch = ProgramBatch(batch_size, engine.caps)
    V = alg.vocab_size
    phrase_tokens = [np.array([t for t in row if t >= 0]) for row in alg.phrases]
    docs, rows, coefs = [], [], []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        ids = engine.tokenize(chunk)
        batch.widen(ids, alg.symbol_rows)
        n_tok = np.array([max(len(t), 1) for t in ids], dtype=np.float64)
        backend.anneal(batch)
        words = item_words(batch.items)[: len(chunk)]
        for d in range(len(chunk)):
            L = int(batch.lengths[d])
            w = words[d, :L]
            keep = w[:, F.OPCODE] == int(Op.ACC)
            sym = w[keep, F.SYMBOL].astype(np.int64)
            c = w[keep, F.ARG1].view(np.int32).astype(np.float64) / Q16_ONE / n_tok[d]
            for s, cc in zip(sym, c):
                docs.append(start + d)
                rows.append(s)
                coefs.append(cc)
                if s >= V and credit_tokens:
                    for t in phrase_tokens[s - V]:
                        docs.append(start + d)
                        rows.append(int(t))
                        coefs.append(cc)
    return np.array(docs, dtype=np.int64), np.array(rows, dtype=np.int64), np.array(coefs, dtype=np.float64)


def bag(docs, rows, coefs, n_docs: int, table: np.ndarray) -> np.ndarray:
    out = np.zeros((n_docs, table.shape[1]), dtype=np.float64)
    np.add.at(out, docs, coefs[:, None] * table[rows])
    return out


# -- the fit ---------------------------------------------------------------------------------


def fit_vectors(
    n_sym: int, V: int, design: tuple, targets: np.ndarray, row_weight: np.ndarray,
    token0: np.ndarray, cfg: Config, phrase0: np.ndarray | None = None,
) -> np.ndarray:
    """Joint ridge of token vectors and phrase differences; returns ``(n_sym, 384)``.

    Phrase columns hold the *difference* to the sum of their tokens; the caller
    adds the sums back (:func:`phrase_vectors`).
    """
    docs, rows, coefs = design
    n = targets.shape[0]
    # 1. Prior map: mean bag of single-token teacher vectors -> teacher sentence vector.
    tok_rows = rows < V
    X0 = bag(docs[tok_rows], rows[tok_rows], coefs[tok_rows], n, token0)
    sw = np.sqrt(row_weight)[:, None]
    A = (X0 * sw).T @ (X0 * sw) + cfg.lam_map * np.eye(token0.shape[1])
    W = np.linalg.solve(A, (X0 * sw).T @ (targets * sw))
    prior = np.zeros((n_sym, token0.shape[1]))
    prior[:V] = token0 @ W
    if phrase0 is not None and len(phrase0):
        prior[V:] = phrase0 @ W
    # 2. Joint ridge on the columns the data touches.
    cols, local = np.unique(rows, return_inverse=True)
    U = cols.size
    log(f"ridge: {n} rows, {U} columns ({int((cols >= V).sum())} phrases)")
    # Gram matrix from the sparse rows: pairs of entries of the same document.
    order = np.argsort(docs, kind="stable")
    d_s, l_s, c_s = docs[order], local[order], coefs[order] * np.sqrt(row_weight[docs[order]])
    bounds = np.flatnonzero(np.r_[True, d_s[1:] != d_s[:-1], True])
    G = np.zeros(U * U, dtype=np.float64)
    ii, jj, vv = [], [], []
    for a, b in itertools.pairwise(bounds):
        li, ci = l_s[a:b], c_s[a:b]
        ii.append(np.repeat(li, b - a))
        jj.append(np.tile(li, b - a))
        vv.append(np.outer(ci, ci).ravel())
    flat = np.concatenate(ii) * U + np.concatenate(jj)
    G += np.bincount(flat, weights=np.concatenate(vv), minlength=U * U)
    G = G.reshape(U, U)
    rhs = np.zeros((U, targets.shape[1]))
    np.add.at(rhs, l_s, c_s[:, None] * (targets[d_s] * np.sqrt(row_weight[d_s])[:, None]))
    lam = np.where(cols < V, cfg.lam_tok, cfg.lam_phrase)
    G[np.arange(U), np.arange(U)] += lam
    rhs += lam[:, None] * prior[cols]
    log(f"ridge: solving {U}x{U}")
    sol = np.linalg.solve(G, rhs)
    out = prior.copy()
    out[cols] = sol
    return out


def phrase_texts(alg: Algorithm) -> list[str]:
    """Readable text of each lexicon phrase (wordpieces joined back into words)."""
    tok = alg.tokenizer
    return [tok.decode([int(t) for t in row if t >= 0]) for row in alg.phrases]


def phrase_teacher(alg: Algorithm, cache: Path, teacher_python: str) -> np.ndarray:
    texts = phrase_texts(alg)
    cached = ensure_teacher(cache, texts, teacher_python)
    idx = {t: i for i, t in enumerate(cached["texts"])}
    return np.asarray([cached["emb"][idx[t]] for t in texts], dtype=np.float64)


def phrase_vectors(fitted: np.ndarray, alg: Algorithm) -> np.ndarray:
    V = alg.vocab_size
    out = fitted.copy()
    for k, row in enumerate(alg.phrases):
        out[V + k] += fitted[[int(t) for t in row if t >= 0]].sum(axis=0)
    return out


def compress(alg: Algorithm, full: np.ndarray, basis_data: np.ndarray, dim: int, keep: np.ndarray) -> Algorithm:
    """PCA to ``dim`` (axes of ``basis_data``; none at 384), unit rows with norms as weights.

    Only symbols in ``keep`` get a row of their own; every other token shares the row
    of its nearest kept token (cosine of the fitted vectors), through ``symbol_rows``.
    """
    if dim < full.shape[1]:
        mean = basis_data.mean(axis=0)
        _, _, vt = np.linalg.svd(basis_data - mean, full_matrices=False)
        full = full @ vt[:dim].T
    kept = np.flatnonzero(keep)
    proj = full[kept]
    norms = np.linalg.norm(proj, axis=1)
    unit = np.divide(proj, norms[:, None], out=np.zeros_like(proj), where=norms[:, None] > 0)
    symbol_rows = np.zeros(alg.n_symbols, dtype=np.int32)
    symbol_rows[kept] = np.arange(kept.size, dtype=np.int32)
    dropped = np.flatnonzero(~keep)
    if dropped.size:
        d = full[dropped]
        d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        kept_tokens = np.flatnonzero(kept < alg.vocab_size)
        for start in range(0, dropped.size, 2048):
            sims = d[start : start + 2048] @ unit[kept_tokens].T
            symbol_rows[dropped[start : start + 2048]] = kept_tokens[np.argmax(sims, axis=1)]
    return replace(alg, vectors=unit.astype(np.float16).astype(np.float32), weights=norms.astype(np.float32),
                   symbol_rows=symbol_rows)


def keep_mask(alg: Algorithm, vocab: list[str], seen: np.ndarray, max_rows: int) -> np.ndarray:
    """Symbols that get their own row (at most ``max_rows``): every phrase, every token
    seen in training, then unseen plain-ASCII tokens in vocabulary order (WordPiece ids
    run roughly by frequency); ``[unused…]`` and other bracketed specials never."""
    keep = np.zeros(alg.n_symbols, dtype=bool)
    keep[alg.vocab_size :] = True
    keep[seen] = True
    for i, w in enumerate(vocab):
        if keep.sum() >= max_rows:
            break
        if not keep[i] and w.isascii() and not (w.startswith("[") and w.endswith("]")):
            keep[i] = True
    return keep


def row_budget(alg: Algorithm, dim: int, max_bytes: int) -> int:
    """Vector rows that fit in ``max_bytes`` beside the other files (float16 vectors)."""
    fixed = len(alg.tokenizer_json.encode()) + 8 * alg.n_symbols + alg.phrases.nbytes + 4 * alg.n_phrases
    fixed += 64 * 1024  # algorithm.json and .npy headers, generously
    return (max_bytes - fixed) // (2 * dim + 4)


# -- evaluation helpers ----------------------------------------------------------------------


def eval_alg(alg: Algorithm, pairs) -> float:
    texts = pairs.unique_texts()
    emb = Engine(alg, backend="cpu").embed(texts)
    return score_embeddings(pairs, texts, emb)[0]


def run(cfg: Config, args, pairs_fit, pairs_eval, teacher, tok_json, vocab, token0, cache, tag: str):
    """Fit with ``cfg`` on ``pairs_fit`` sentences; returns the Algorithm (and scores on pairs_eval)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tok_json)
    fit_texts = pairs_fit.unique_texts()
    lexicon, counts = build_lexicon(tok, fit_texts, cfg) if cfg.rules else ([], [])
    alg = skeleton(tok_json, vocab, lexicon, counts, cfg)
    log(f"{tag}: lexicon {len(lexicon)} phrases, {len(alg.rules)} rules")
    # Training rows: sentences, word windows of them, single tokens.
    win_texts = []
    for t in fit_texts:
        win_texts += windows_of(words_of(tok, t), cfg.windows, seed=int(hashlib.sha256(t.encode()).hexdigest()[:8], 16))
    win_texts = [w for w in dict.fromkeys(win_texts) if w not in set(fit_texts)]
    cached = ensure_teacher(cache, win_texts, args.teacher_python) if win_texts else None
    texts = list(fit_texts)
    T = [teacher[t] for t in fit_texts]
    weights = [1.0] * len(fit_texts)
    if cached is not None:
        idx = {t: i for i, t in enumerate(cached["texts"])}
        texts += win_texts
        T += [cached["emb"][idx[t]] for t in win_texts]
        weights += [cfg.window_weight] * len(win_texts)
    T = np.asarray(T, dtype=np.float64)
    t0 = time.perf_counter()
    design = programs(alg, texts, credit_tokens=cfg.phrase_prior == "sum")
    log(f"{tag}: annealed {len(texts)} texts in {time.perf_counter() - t0:.1f} s")
    # Single-token rows: each vocab token alone -> its teacher vector (a weak anchor).
    docs, rows, coefs = design
    V = alg.vocab_size
    seen = np.unique(rows[rows < V])
    n0 = len(texts)
    docs = np.concatenate([docs, n0 + np.arange(seen.size)])
    rows = np.concatenate([rows, seen])
    coefs = np.concatenate([coefs, np.ones(seen.size)])
    T = np.concatenate([T, token0[seen]])
    weights = np.concatenate([weights, np.full(seen.size, cfg.token_weight)])
    phrase0 = None
    if alg.n_phrases and cfg.phrase_prior == "teacher":
        # Each phrase alone -> the teacher's embedding of its text (a weak anchor and the prior).
        phrase0 = phrase_teacher(alg, cache, args.teacher_python)
        n1 = n0 + seen.size
        k = alg.n_phrases
        docs = np.concatenate([docs, n1 + np.arange(k)])
        rows = np.concatenate([rows, V + np.arange(k)])
        coefs = np.concatenate([coefs, np.ones(k)])
        T = np.concatenate([T, phrase0])
        weights = np.concatenate([weights, np.full(k, cfg.token_weight)])
    fitted = fit_vectors(alg.n_symbols, V, (docs, rows, coefs), T, np.asarray(weights), token0, cfg, phrase0)
    full = phrase_vectors(fitted, alg) if cfg.phrase_prior == "sum" else fitted
    basis = np.asarray([teacher[t] for t in fit_texts])
    keep = keep_mask(alg, vocab, seen, row_budget(alg, cfg.dim, cfg.max_bytes))
    log(f"{tag}: {int(keep.sum())} vector rows of {alg.n_symbols} symbols")
    alg = compress(alg, full, basis, cfg.dim, keep)
    if cfg.rules:
        alg = replace(alg, rules=alg.rules + reweight_rules(cfg))
    result = {}
    if pairs_eval is not None:
        result["with_rules"] = eval_alg(alg, pairs_eval)
        result["merges_only"] = eval_alg(replace(alg, rules=tuple(r for r in alg.rules if r.kind == "merge")), pairs_eval)
        if alg.rules:
            result["without_rules"] = eval_alg(alg.without_rules(), pairs_eval)
        log(f"{tag}: {json.dumps(result)}")
    return alg, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(REPO.parent / "shared"), help="the shared folder (data/stsb, data/teacher)")
    ap.add_argument("--out", default=str(REPO / "sae/data/default"), help="Algorithm directory to write")
    ap.add_argument("--cache", default=str(REPO / "out/distill"), help="teacher cache (gitignored)")
    ap.add_argument("--teacher-python", default=os.environ.get("SAE_TEACHER_PYTHON", "/work/venv-teacher/bin/python"))
    ap.add_argument("--tune", action="store_true", help="score settings on a held-out fifth of the train pairs")
    ap.add_argument("--dev", action="store_true", help="also measure the built Algorithm on the dev split")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a Config field")
    args = ap.parse_args()

    shared = Path(args.shared)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    if not (cache / "tokens.npy").exists() or not (cache / "tokenizer.json").exists():
        ensure_teacher(cache, [], args.teacher_python)
    tok_json = load_tokenizer(cache)
    from tokenizers import Tokenizer

    tk = Tokenizer.from_str(tok_json)
    vocab = [tk.id_to_token(i) for i in range(tk.get_vocab_size(with_added_tokens=True))]
    token0 = np.load(cache / "tokens.npy").astype(np.float64)
    train = read_pairs(shared / "data/stsb/sts-train.csv")
    tt = read_teacher(shared / "data/teacher/teacher-minilm-train.parquet", dim=384)
    teacher = {t: tt.embeddings[i].astype(np.float64) for i, t in enumerate(tt.texts)}

    cfg = Config()
    for kv in args.set:
        key, value = kv.split("=", 1)
        cur = getattr(cfg, key)
        cfg = replace(cfg, **{key: type(cur)(value) if not isinstance(cur, bool) else value.lower() in ("1", "true")})
    log(f"config: {cfg}")

    if args.tune:
        idx = np.arange(len(train))
        hold = idx % 5 == 4
        from sae.evaluate import Pairs

        def sub(mask):
            return Pairs(train.path, [s for s, m in zip(train.s1, mask) if m], [s for s, m in zip(train.s2, mask) if m],
                         train.scores[mask], [g for g, m in zip(train.genres, mask) if m])

        p_fit, p_hold = sub(~hold), sub(hold)
        # Sentences of held-out pairs never reach the fit.
        hold_texts = set(p_hold.unique_texts())
        keep = np.array([a not in hold_texts and b not in hold_texts for a, b in zip(p_fit.s1, p_fit.s2)])
        p_fit = Pairs(p_fit.path, [s for s, m in zip(p_fit.s1, keep) if m], [s for s, m in zip(p_fit.s2, keep) if m],
                      p_fit.scores[keep])
        run(cfg, args, p_fit, p_hold, teacher, tok_json, vocab, token0, cache, "tune")
        return 0

    alg, _ = run(cfg, args, train, None, teacher, tok_json, vocab, token0, cache, "build")
    alg = replace(alg, description=(
        "Distilled from sentence-transformers/all-MiniLM-L6-v2 on the STS Benchmark train split "
        "by tools/distill/build_default.py (docs/DISTILLATION.md)."))
    save_algorithm(alg, args.out, vector_dtype="float16")
    size = sum(f.stat().st_size for f in Path(args.out).iterdir())
    log(f"wrote {args.out}: {size / 1e6:.2f} MB, content hash {alg.content_hash[:16]}")
    if args.dev:
        dev = read_pairs(shared / "data/stsb/sts-dev.csv")
        log(f"dev Spearman: with rules {eval_alg(alg, dev):.4f}, without rules {eval_alg(alg.without_rules(), dev):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
