"""The distillation recipe: from STS-B train and the teacher to an Algorithm directory.

Steps (docs/DISTILLATION.md):

1. **Data** (train only): the unique train sentences, word windows cut from them, and
   their minimal pairs (negated; subject and object swapped), each with the teacher's
   embedding (the shared teacher file, else :class:`TeacherCache`).
2. **Structure**: token classes, the lexicon (multi-piece words of the train
   sentences), the rules (:mod:`sae.distill.rules`).
3. **Vectors**: the texts annealed with the merge rules; one ridge regression of
   token vectors and phrase differences (:func:`fit_vectors`); packed into float16
   unit rows with norms as weights, within the size budget.
4. **Transforms**: the texts annealed with every rule; one ridge regression of the
   transforms the rules apply (:func:`fit_transforms`), then refined so that the
   minimal pairs' cosines follow the teacher's (:func:`refine_transforms`).

``--output-map-of DIR`` instead finishes an Algorithm (the last step of
tools/build_default.sh, after evolution): it appends the recipe's finishing rules
(:func:`sae.distill.rules.finishing_rules`; ``--set not_scale=1`` for the rules as they
are), fits the output map on the train pairs' gold scores and the train sentences'
minimal pairs, and writes it with the map folded into its vectors and transforms
(:mod:`sae.distill.output_map`).

``tune`` does the same on four fifths of the train pairs and scores the result on the
held-out fifth: Spearman, and how closely the minimal pairs of held-out sentences
track the teacher's cosines. Dev is only measured at the end (``--dev``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from sae.algorithm import (
    Algorithm,
    LoopParams,
    check_algorithm_output,
    phrase_table,
    save_algorithm_atomically,
)
from sae.distill.classes import CLASSES, phrase_classes, token_classes
from sae.distill.contractions import with_contractions
from sae.distill.fit import (
    RefineSettings,
    RidgeSettings,
    annealed_items,
    fit_transforms,
    fit_vectors,
    phrase_vectors,
    refine_transforms,
    vector_design,
)
from sae.distill.lexicon import build_lexicon, phrase_bonus, windows_of, words_of
from sae.distill.minimal_pairs import minimal_pairs, reported_pairs
from sae.distill.output_map import (
    CosineTargets,
    OutputMapSettings,
    check_linear,
    fit_output_map,
    fold_output_map,
    program_sums,
)
from sae.distill.pack import compress, keep_mask, row_budget
from sae.distill.rules import RuleSettings, default_rules, finishing_rules, merge_rules, transforms_used
from sae.distill.teacher_cache import TOKENS_FILE, TeacherCache
from sae.engine import Engine
from sae.errors import InputError
from sae.evaluate import Pairs, cosine_rows, read_pairs, score_embeddings
from sae.io import existing_file
from sae.layout import DEFAULT_CAPACITIES, MARK_BITS, Q16_ONE, SCALE_LIMIT, TOLERANCE_MAX
from sae.teacher import read_teacher

log = logging.getLogger(__name__)

DESCRIPTION = ("Distilled from sentence-transformers/all-MiniLM-L6-v2 on the STS Benchmark train split "
               "by sae.distill (docs/DISTILLATION.md).")


#: The largest weight scale a rule may write (64): the bound on every ``*_scale`` setting.
MAX_SCALE = SCALE_LIMIT / Q16_ONE


@dataclass(frozen=True)
class Config:
    """Every knob of the recipe (defaults chosen with ``tune`` on train only)."""

    max_bytes: int = 16_000_000  #: the whole Algorithm directory
    #: the GPU float table in one storage binding: WebGPU's default limit, lavapipe's and many adapters'
    gpu_binding_bytes: int = 128 * 1024 * 1024
    min_word_freq: int = 2  #: multi-piece whole words in the lexicon
    windows: int = 8  #: word windows per train sentence, extra teacher texts
    window_weight: float = 1.0  #: weight of a window row relative to a sentence row
    pair_weight: float = 1.0  #: weight of a minimal-pair row (negated or swapped sentence)
    window_pairs: bool = False  #: minimal pairs of the word windows too, not only of the sentences
    token_weight: float = 0.05  #: weight of the single-token rows
    contractions: bool = True  #: the tokenizer reads "n't" as "not" (:mod:`sae.distill.contractions`)
    lam_token: float = 0.01
    lam_phrase: float = 0.3
    lam_map: float = 1.0
    lam_transform: float = 1.0  #: ridge of the transforms toward the identity
    refine_pair_weight: float = RefineSettings.pair_weight  #: minimal pairs' cosine error in the transforms' refit
    refine_steps: int = RefineSettings.steps  #: 0: the ridge transforms as they are
    rules: bool = True  #: False: no rules at all (and no lexicon)
    merges: bool = RuleSettings.merges
    num_scale: float = RuleSettings.num_scale
    stop_scale: float = RuleSettings.stop_scale
    punct_scale: float = RuleSettings.punct_scale
    negation: bool = RuleSettings.negation
    negation_span: int = RuleSettings.negation_span
    object: bool = RuleSettings.object
    subject: bool = RuleSettings.subject
    plain_roles: bool = RuleSettings.plain_roles
    preposition: bool = RuleSettings.preposition
    clause: bool = RuleSettings.clause
    max_steps: int = DEFAULT_CAPACITIES.steps
    tolerance: int = 0
    inhibit_steps: int = 2
    map_lam: float = OutputMapSettings.lam  #: output map (``--output-map-of``): ridge toward the identity
    map_pair_weight: float = OutputMapSettings.pair_weight  #: output map: the minimal pairs' weight
    map_steps: int = OutputMapSettings.steps  #: output map: Adam steps
    #: ``--output-map-of``: the weight of "not" before anything but a verb (the appended
    #: ``soften_not`` rule; 1.0 leaves it out). Chosen on the train holdout among 0.75, 0.6, 0.5.
    not_scale: float = 0.6

    def with_overrides(self, pairs: list[str]) -> Config:
        """A copy with ``KEY=VALUE`` overrides (``--set``), typed like the field and within its
        range (:data:`CONFIG_RANGES`); a bad one raises :class:`InputError` naming it, before
        any work (a value out of range failed after the whole fit, or was used as it was)."""
        cfg = self
        names = {f.name: f.type for f in fields(self)}
        for kv in pairs:
            key, sep, value = kv.partition("=")
            if not sep or key not in names:
                raise InputError(f"--set {kv!r}: expected KEY=VALUE with KEY one of {', '.join(names)}")
            cur = getattr(cfg, key)
            if isinstance(cur, bool):
                if value.lower() not in BOOLEAN_WORDS:
                    raise InputError(f"--set {kv!r}: {key} is on or off: 1, true, yes, on or 0, false, no, off")
                typed = BOOLEAN_WORDS[value.lower()]
            else:
                try:
                    typed = type(cur)(value)
                except ValueError:
                    raise InputError(f"--set {kv!r}: {key} takes {type(cur).__name__} values, got {value!r}") from None
            if key.endswith("_scale") and not 0 < typed <= MAX_SCALE:
                raise InputError(f"--set {kv!r}: {key} is a weight scale, above 0 and at most {MAX_SCALE:g}")
            if key in CONFIG_RANGES:
                low, high, above = CONFIG_RANGES[key]
                if (isinstance(typed, float) and not math.isfinite(typed)) or not (typed > low if above else typed >= low) \
                        or typed > high:
                    least = f"above {low:g}" if above else f"at least {low:g}"
                    most = f" and at most {high:g}" if math.isfinite(high) else ""
                    raise InputError(f"--set {kv!r}: {key} must be {least}{most} (a finite number)")
            cfg = replace(cfg, **{key: typed})
        return cfg

    def rule_settings(self) -> RuleSettings:
        return RuleSettings(**{f.name: getattr(self, f.name) for f in fields(RuleSettings)})


#: ``--set`` words for a boolean field.
BOOLEAN_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False,
                 "off": False}
_INF = math.inf
#: The range of each numeric :class:`Config` field but the ``*_scale`` ones: ``(low, high,
#: above)``, ``above`` when ``low`` itself is excluded. A ridge needs a positive strength
#: (0 can leave its system singular); the loop parameters are the Algorithm format's.
CONFIG_RANGES: dict[str, tuple[float, float, bool]] = {
    "max_bytes": (1, _INF, False),
    "gpu_binding_bytes": (1, _INF, False),
    "min_word_freq": (1, _INF, False),
    "windows": (0, _INF, False),
    "window_weight": (0, _INF, False),
    "pair_weight": (0, _INF, False),
    "token_weight": (0, _INF, False),
    "lam_token": (0, _INF, True),
    "lam_phrase": (0, _INF, True),
    "lam_map": (0, _INF, True),
    "lam_transform": (0, _INF, True),
    "refine_pair_weight": (0, _INF, False),
    "refine_steps": (0, _INF, False),
    "negation_span": (0, DEFAULT_CAPACITIES.run, False),
    "max_steps": (0, DEFAULT_CAPACITIES.steps, False),
    "tolerance": (0, TOLERANCE_MAX, False),
    "inhibit_steps": (0, DEFAULT_CAPACITIES.steps, False),
    "map_lam": (0, _INF, False),
    "map_pair_weight": (0, _INF, False),
    "map_steps": (0, _INF, False),
}


@dataclass
class Corpus:
    """The training texts, their teacher embeddings and row weights."""

    texts: list[str]
    targets: np.ndarray  # (n, dim) float64
    weights: np.ndarray  # (n,) float64
    sentences: list[str]  # the sentences the lexicon is built from
    pairs: np.ndarray  # (P, 2) indices into texts: a sentence and its minimal-pair variant


class Recipe:
    """One run of the recipe over shared data (``shared/data``) and a teacher cache."""

    def __init__(self, shared: str | Path, cache: str | Path, teacher_python: str | None = None, *,
                 tune: bool = False, dev: bool = False) -> None:
        self.shared = Path(shared)
        # The shared files first: a wrong --shared is named as such, not as a cold teacher cache.
        if not (self.shared / "data").is_dir():  # said as the option, not as a file the user never named
            raise InputError(f"{shared}: no shared data here (data/stsb, data/teacher); name the shared folder "
                             "with --shared (default: ../shared, from the current directory)")
        self.train = read_pairs(self.shared / "data/stsb/sts-train.csv")
        #: ``--tune``'s (fit sentences, held-out pairs); split now, so that too few pairs to
        #: hold a fifth out is said before the teacher runs.
        self.holdout = holdout_split(self.train) if tune else None
        # Read now so that a missing or bad dev file is said before the fit, not after --out is
        # written; only ever scored at the end (_print_dev), never fitted on.
        self.dev = read_pairs(self.shared / "data/stsb/sts-dev.csv") if dev else None
        train_teacher = existing_file(self.shared / "data/teacher/teacher-minilm-train.parquet",
                                      "a teacher Parquet file")
        self._dev_teacher = existing_file(self.shared / "data/teacher/teacher-minilm-dev.parquet",
                                          "a teacher Parquet file") if dev else None
        self.cache = TeacherCache(cache, teacher_python)
        from tokenizers import Tokenizer

        self.tokenizer_json = self.cache.tokenizer_json()
        self.tok = Tokenizer.from_str(self.tokenizer_json)
        self.vocab = [self.tok.id_to_token(i) for i in range(self.tok.get_vocab_size(with_added_tokens=True))]
        self.token0 = self.cache.tokens().astype(np.float64)
        if len(self.token0) < len(self.vocab):
            raise InputError(f"{self.cache.dir / TOKENS_FILE}: {len(self.token0)} token vectors for the "
                             f"{len(self.vocab)} tokens of {self.cache.dir / 'tokenizer.json'}; delete it and the "
                             "teacher writes it again")
        # Teacher embeddings of the train sentences; any other text (a window, a minimal-pair
        # variant) comes from the cache. Dev's file is read only to report on dev
        # (add_dev_teacher), after the fit: until the twenty-seventh session the 249 train
        # sentences that dev repeats took dev's rows (62 differ, by at most 1.04e-7).
        table = read_teacher(train_teacher, dim=self.token0.shape[1])
        self.teacher = {t: i for i, t in enumerate(table.texts)}
        self.teacher_emb = np.asarray(table.embeddings)

    def add_dev_teacher(self) -> None:
        """Add the dev teacher file's rows for texts the train file lacks: for a report on
        dev, after every fit (a dev sentence's minimal pairs are then scored against them)."""
        if self._dev_teacher is None:
            raise ValueError("Recipe.add_dev_teacher: the recipe was made without dev=True")
        table = read_teacher(self._dev_teacher, dim=self.token0.shape[1])
        new = [i for i, t in enumerate(table.texts) if t not in self.teacher]
        first = len(self.teacher_emb)
        self.teacher.update((table.texts[i], first + k) for k, i in enumerate(new))
        self.teacher_emb = np.concatenate([self.teacher_emb, np.asarray(table.embeddings)[new]])

    # -- data ---------------------------------------------------------------------------
    def targets(self, texts: list[str]) -> np.ndarray:
        """Teacher embeddings: the shared train teacher file (and dev's, once added for a
        report), else the cache (computed when missing)."""
        out = np.zeros((len(texts), self.token0.shape[1]), dtype=np.float64)
        shared = [i for i, t in enumerate(texts) if t in self.teacher]
        out[shared] = self.teacher_emb[[self.teacher[texts[i]] for i in shared]]
        rest = [i for i, t in enumerate(texts) if t not in self.teacher]
        if rest:
            out[rest] = self.cache.embeddings([texts[i] for i in rest])
        return out

    def corpus(self, sentences: list[str], cfg: Config) -> Corpus:
        """Sentences, their word windows and their minimal pairs, with teacher targets."""
        windows: list[str] = []
        for t in sentences:
            seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
            windows += windows_of(words_of(self.tok, t), cfg.windows, seed)
        pairs = {}
        if cfg.rules and cfg.rule_settings().transform_names():  # some rule applies a transform
            pairs = minimal_pairs(list(sentences) + (list(dict.fromkeys(windows)) if cfg.window_pairs else []))
        variants = [b for kind in pairs.values() for _, b in kind]
        have = set(sentences)
        windows = [w for w in dict.fromkeys(windows) if w not in have]
        have |= set(windows)
        variants = [v for v in dict.fromkeys(variants) if v not in have]
        texts = list(sentences) + windows + variants
        weights = np.concatenate([np.ones(len(sentences)), np.full(len(windows), cfg.window_weight),
                                  np.full(len(variants), cfg.pair_weight)])
        log.info("corpus: %d sentences, %d windows, %d minimal-pair variants",
                 len(sentences), len(windows), len(variants))
        index = {t: i for i, t in enumerate(texts)}
        pair_index = np.array([(index[a], index[b]) for kind in pairs.values() for a, b in kind],
                              dtype=np.int64).reshape(-1, 2)
        return Corpus(texts, self.targets(texts), weights, list(sentences), pair_index)

    # -- the Algorithm ------------------------------------------------------------------
    def skeleton(self, sentences: list[str], cfg: Config) -> Algorithm:
        """Classes, lexicon and rules, with one placeholder vector row per symbol."""
        width = DEFAULT_CAPACITIES.phrase
        if cfg.rules and cfg.merges:
            lexicon, counts = build_lexicon(self.tok, sentences, cfg.min_word_freq, width)
        else:
            lexicon, counts = [], []
        phrases = phrase_table(lexicon, width) if lexicon else np.zeros((0, width), dtype=np.int32)
        count_of = dict(zip(lexicon, counts))
        bonus = phrase_bonus([count_of[tuple(int(t) for t in row if t >= 0)] for row in phrases])
        rules = default_rules(cfg.rule_settings()) if cfg.rules else ()
        n_sym = len(self.vocab) + len(phrases)
        return Algorithm(
            name="default",
            tokenizer_json=self._tokenizer_json(cfg),
            vectors=np.zeros((n_sym, 8), dtype=np.float32),
            weights=np.ones(n_sym, dtype=np.float32),
            symbol_rows=np.arange(n_sym, dtype=np.int32),
            symbol_classes=np.concatenate([token_classes(self.vocab), phrase_classes(self.vocab, phrases)]),
            phrases=phrases,
            phrase_bonus=bonus,
            classes=CLASSES,
            rules=rules,
            params=LoopParams(max_steps=cfg.max_steps, tolerance=cfg.tolerance, inhibit_steps=cfg.inhibit_steps),
            description=DESCRIPTION,
        )

    def _tokenizer_json(self, cfg: Config) -> str:
        if not cfg.contractions:
            return self.tokenizer_json
        try:
            return with_contractions(self.tokenizer_json)
        except ValueError:  # another tokenizer pipeline: only --set contractions=0 can use it
            raise InputError(f"{self.cache.dir / 'tokenizer.json'}: contractions need a lowercasing BERT "
                             "normalizer; this tokenizer has another (use --set contractions=0)") from None

    def build(self, sentences: list[str], cfg: Config) -> Algorithm:
        """Fit an Algorithm on ``sentences`` (and their windows and minimal pairs)."""
        skel = self.skeleton(list(sentences), cfg)
        log.info("structure: %d phrases, %d rules", skel.n_phrases, len(skel.rules))
        n_tr = transforms_used(skel.rules)
        dim = self.token0.shape[1]
        budget = row_budget(skel, dim, cfg.max_bytes, n_tr, cfg.gpu_binding_bytes)
        _check_budget(cfg, budget, skel.n_phrases + 1)  # before the teacher runs
        corpus = self.corpus(sentences, cfg)
        ids = skel.token_ids(corpus.texts)  # the Algorithm's own tokenizer (windows are cut by the teacher's)
        # Vectors: programs of the merges alone (the reweighting rules are tuned for
        # the similarity task after the fit; fitting through them would undo them).
        t0 = time.perf_counter()
        items = annealed_items(replace(skel, rules=merge_rules() if cfg.rules and cfg.merges else (), transforms=None),
                               ids)
        log.info("vectors: annealed %d texts in %.1f s", len(ids), time.perf_counter() - t0)
        docs, syms, coefs = vector_design(items, skel)
        seen = np.unique(syms[syms < skel.vocab_size])
        _check_budget(cfg, budget, skel.n_phrases + seen.size)  # before the fit
        n0 = len(corpus.texts)
        design = (np.concatenate([docs, n0 + np.arange(seen.size)]), np.concatenate([syms, seen]),
                  np.concatenate([coefs, np.ones(seen.size)]))
        targets = np.concatenate([corpus.targets, self.token0[seen]])
        row_weight = np.concatenate([corpus.weights, np.full(seen.size, cfg.token_weight)])
        ridge = RidgeSettings(cfg.lam_token, cfg.lam_phrase, cfg.lam_map)
        fitted = fit_vectors(skel.n_symbols, skel.vocab_size, design, targets, row_weight, self.token0, ridge)
        full = phrase_vectors(fitted, skel)
        keep = keep_mask(skel, self.vocab, seen, budget)
        log.info("vectors: %d rows of %d symbols", int(keep.sum()), skel.n_symbols)
        identity = np.zeros((n_tr, dim, dim + 1), dtype=np.float32)
        identity[:, :, :dim] = np.eye(dim)
        alg = compress(replace(skel, transforms=identity), full, keep)
        if n_tr:
            # Transforms: programs of every rule, vectors as packed.
            t0 = time.perf_counter()
            items = annealed_items(alg, ids)
            log.info("transforms: annealed %d texts in %.1f s", len(ids), time.perf_counter() - t0)
            tr = fit_transforms(items, alg, corpus.targets, n_tr, cfg.lam_transform, corpus.weights)
            if cfg.refine_steps and cfg.refine_pair_weight > 0:
                tr = refine_transforms(items, replace(alg, transforms=tr), corpus.targets, corpus.weights,
                                       cfg.lam_transform, corpus.pairs,
                                       RefineSettings(cfg.refine_pair_weight, cfg.refine_steps))
            alg = replace(alg, transforms=tr.astype(np.float16).astype(np.float32),
                          transform_names=cfg.rule_settings().transform_names())
        return alg

    def output_map(self, alg: Algorithm, pairs: Pairs, sentences: list[str], cfg: Config) -> Algorithm:
        """``alg`` with its output map folded in, fitted on ``pairs``' gold scores and the
        minimal pairs of ``sentences`` (the teacher's cosines); stored precision (float16)."""
        found = {kind: ps for kind, ps in minimal_pairs(sentences).items() if ps}
        texts = list(dict.fromkeys([*pairs.s1, *pairs.s2, *(t for ps in found.values() for pair in ps for t in pair)]))
        t0 = time.perf_counter()
        sums = program_sums(alg, alg.token_ids(texts))  # the Algorithm's own tokenizer, as the engine reads
        log.info("output map: annealed %d texts in %.1f s", len(texts), time.perf_counter() - t0)
        at = {t: i for i, t in enumerate(texts)}

        def rows(some: list[str]) -> np.ndarray:
            return sums[[at[t] for t in some]]

        gold = CosineTargets(rows(pairs.s1), rows(pairs.s2), np.asarray(pairs.scores, dtype=np.float64) / 5)
        minimal = []
        for ps in found.values():
            a, b = [p[0] for p in ps], [p[1] for p in ps]
            minimal.append(CosineTargets(rows(a), rows(b), cosine_rows(self.targets(a), self.targets(b))))
        output_map = fit_output_map(gold, minimal,
                                    OutputMapSettings(cfg.map_lam, cfg.map_pair_weight, cfg.map_steps))
        mapped = fold_output_map(alg, output_map)
        note = f"Output map of {alg.content_hash[:16]} fitted on STS-B train by sae.distill (docs/DISTILLATION.md)."
        return replace(mapped, vectors=mapped.vectors.astype(np.float16).astype(np.float32),
                       transforms=mapped.transforms.astype(np.float16).astype(np.float32),
                       description=f"{alg.description} {note}".strip())


def _check_budget(cfg: Config, rows: int, needed: int) -> None:
    """The size budget leaves room for ``needed`` vector rows (every phrase and every token
    of the training texts get one), or :class:`InputError` naming the settings. The
    budget was ignored: the Algorithm was written larger than asked."""
    if needed > rows:
        raise InputError(f"--set max_bytes={cfg.max_bytes} gpu_binding_bytes={cfg.gpu_binding_bytes}: room for "
                         f"{max(rows, 0)} vector rows beside the other files, and the Algorithm needs at least "
                         f"{needed} (one per phrase and per token of the training texts)")


# -- scoring ------------------------------------------------------------------------------


def minimal_pair_report(alg: Algorithm, recipe: Recipe, sentences: list[str]) -> dict[str, dict[str, float]]:
    """For the minimal pairs of ``sentences``: mean |cos_sae − cos_teacher|, and both mean cosines."""
    engine = Engine(alg, backend="cpu")
    out = {}
    for kind, pairs in reported_pairs(sentences).items():
        if not pairs:
            continue
        a, b = [p[0] for p in pairs], [p[1] for p in pairs]
        teacher = cosine_rows(recipe.targets(a), recipe.targets(b))
        ours = cosine_rows(engine.embed(a), engine.embed(b))
        out[kind] = {"pairs": len(pairs), "abs_error": float(np.abs(ours - teacher).mean()),
                     "cos_sae": float(ours.mean()), "cos_teacher": float(teacher.mean())}
    return out


def spearman_of(alg: Algorithm, pairs: Pairs) -> float:
    texts = pairs.unique_texts()
    return score_embeddings(pairs, texts, Engine(alg, backend="cpu").embed(texts))[0]


def _held_out(train: Pairs) -> np.ndarray:
    """Every 5th train pair: the pairs ``--tune`` scores on."""
    return np.arange(len(train)) % 5 == 4


def _pairs_where(pairs: Pairs, keep: np.ndarray) -> Pairs:
    return Pairs(pairs.path, [s for s, k in zip(pairs.s1, keep) if k], [s for s, k in zip(pairs.s2, keep) if k],
                 pairs.scores[keep], [g for g, k in zip(pairs.genres, keep) if k])


#: ``--tune`` scores a Spearman correlation on the held-out pairs: at least two of them.
MIN_HELD_OUT = 2


def holdout_split(train: Pairs) -> tuple[list[str], Pairs]:
    """Every 5th train pair held out; the fit sentences exclude every held-out sentence.

    Raises :class:`InputError` naming the file when fewer than :data:`MIN_HELD_OUT` pairs
    are held out or no sentence is left to fit on."""
    held_out = _held_out(train)
    if held_out.sum() < MIN_HELD_OUT:
        raise InputError(f"{train.path}: {len(train)} pair(s); --tune holds out every 5th pair and scores a "
                         f"correlation on them: it needs at least {5 * MIN_HELD_OUT} pairs")
    held = _pairs_where(train, held_out)
    banned = set(held.unique_texts())
    fit = [t for t in train.unique_texts() if t not in banned]
    if not fit:
        raise InputError(f"{train.path}: every sentence of the pairs --tune fits on is also in a held-out pair "
                         "(every 5th): nothing is left to fit")
    return fit, held


def fit_pairs(train: Pairs) -> Pairs:
    """The train pairs :func:`holdout_split` does not hold out."""
    return _pairs_where(train, ~_held_out(train))


def report(alg: Algorithm, recipe: Recipe, pairs: Pairs) -> dict:
    """Spearman with all rules, without them, without the transforms; minimal pairs of the pairs' sentences."""
    plain = replace(alg, rules=tuple(r for r in alg.rules if not any(up.mod for up in r.updates)))
    return {
        "spearman": spearman_of(alg, pairs),
        "spearman_without_rules": spearman_of(alg.without_rules(), pairs),
        "spearman_without_transform_rules": spearman_of(plain, pairs) if plain.rules != alg.rules else None,
        "minimal_pairs": minimal_pair_report(alg, recipe, pairs.unique_texts()),
    }


# -- command line --------------------------------------------------------------------------


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--shared", default="../shared", help="the shared folder, holding data/stsb (sts-train.csv, "
                    "sts-dev.csv) and data/teacher (default: ../shared, from the current directory)")
    ap.add_argument("--out", default="out/base", help="Algorithm directory to write, replaced whole; its parent "
                    "must exist (default: out/base; the bundled default is evolved from this base: "
                    "tools/build_default.sh)")
    ap.add_argument("--cache", default="out/distill", help="teacher cache folder, created and filled by the "
                    "teacher when it lacks something (default: out/distill)")
    ap.add_argument("--teacher-python", default=None,
                    help="interpreter with sae[teacher] installed (env SAE_TEACHER_PYTHON), used when this one "
                         "lacks sentence-transformers")
    ap.add_argument("--tune", action="store_true",
                    help="fit on 4/5 of the train pairs and score on the held-out fifth; writes nothing")
    ap.add_argument("--dev", action="store_true", help="also measure the written Algorithm on the dev split "
                    "(SHARED/data/stsb/sts-dev.csv; not with --tune)")
    ap.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                    help="override fields of sae.distill.Config, one or more per --set (--set subject=0 clause=0); "
                    "an unknown KEY is answered with the list of fields")
    ap.add_argument("--output-map-of", default=None, metavar="DIR",
                    help="finish the Algorithm in DIR: append the recipe's finishing rules (--set not_scale=1 "
                         "keeps its rules as they are), fit its output map and write it with the map folded in to "
                         "--out; with --tune, fit on 4/5 of the train pairs and score the rest")


def run(args: argparse.Namespace) -> int:
    if args.tune and args.dev:  # --dev was ignored: dev is measured on what --out writes
        raise InputError("--dev measures the Algorithm written to --out, and --tune writes none; "
                         "drop one of them")
    cfg = Config().with_overrides(args.set)
    if not args.tune:  # before hours of fitting, not after
        # --out is replaced whole: the teacher cache (filled as the run goes) and the shared
        # data may not lie inside it, nor be it.
        check_algorithm_output(args.out, "--out", inputs=(args.output_map_of, args.cache, args.shared))
    if args.output_map_of is not None:
        return _run_output_map(args, cfg)
    recipe = Recipe(args.shared, args.cache, args.teacher_python, tune=args.tune, dev=args.dev)
    log.info("config: %s", cfg)
    if args.tune:
        fit, held = recipe.holdout
        alg = recipe.build(fit, cfg)
        print(json.dumps({"holdout": report(alg, recipe, held)}, indent=1))
        return 0
    alg = recipe.build(recipe.train.unique_texts(), cfg)
    save_algorithm_atomically(alg, args.out, "--out", vector_dtype="float16")
    size = sum(f.stat().st_size for f in Path(args.out).iterdir())
    log.info("wrote %s: %.2f MB, content hash %s", args.out, size / 1e6, alg.content_hash[:16])
    if args.dev:
        _print_dev(recipe, args.out)
    return 0


def with_finishing_rules(alg: Algorithm, cfg: Config) -> Algorithm:
    """``alg`` with the recipe's finishing rules appended, each unless it already has a rule of that name."""
    have = {rule.name for rule in alg.rules}
    extra = tuple(r for r in finishing_rules(cfg.not_scale, alg.tokenizer.token_to_id) if r.name not in have)
    # A mark bit of its own for each: by position (the default) it could share one with a
    # rule of the search that kept its base's mark, and two rules sharing a bit never both
    # rewrite an item (docs/ENGINE.md §2, "Element tests").
    free = iter(sorted(set(range(MARK_BITS)) - {rule.mark for rule in alg.rules}))
    extra = tuple(replace(r, mark=next(free, r.mark)) for r in extra)
    return replace(alg, rules=alg.rules + extra) if extra else alg


def _run_output_map(args: argparse.Namespace, cfg: Config) -> int:
    from sae.algorithm import load_algorithm

    alg = load_algorithm(args.output_map_of)  # a bad directory fails here, before the data is read
    try:
        check_linear(alg)
    except ValueError as exc:
        raise InputError(f"--output-map-of {args.output_map_of}: {exc}") from None
    finished = with_finishing_rules(alg, cfg)
    if len(finished.rules) > len(alg.rules):
        log.info("appended the finishing rules: %s", ", ".join(r.name for r in finished.rules[len(alg.rules):]))
    alg = finished
    recipe = Recipe(args.shared, args.cache, args.teacher_python, tune=args.tune, dev=args.dev)
    log.info("config: %s", cfg)
    if args.tune:
        fit, held = recipe.holdout
        mapped = recipe.output_map(alg, fit_pairs(recipe.train), fit, cfg)
        print(json.dumps({"holdout": {"without_map": report(alg, recipe, held),
                                      "with_map": report(mapped, recipe, held)}}, indent=1))
        return 0
    mapped = recipe.output_map(alg, recipe.train, recipe.train.unique_texts(), cfg)
    save_algorithm_atomically(mapped, args.out, "--out", vector_dtype="float16")
    log.info("wrote %s: content hash %s (output map of %s)", args.out, mapped.content_hash[:16], alg.content_hash[:16])
    if args.dev:
        _print_dev(recipe, args.out)
    return 0


def _print_dev(recipe: Recipe, path: str) -> None:
    """The written Algorithm measured on the dev split: the only place dev's pairs and dev's
    teacher rows are read, after every fit."""
    from sae.algorithm import load_algorithm

    recipe.add_dev_teacher()
    print(json.dumps({"dev": report(load_algorithm(path), recipe, recipe.dev)}, indent=1))
