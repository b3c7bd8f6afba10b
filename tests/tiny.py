"""A tiny, fully deterministic Algorithm for tests: a 40-word WordPiece vocabulary."""

from __future__ import annotations

import numpy as np

from sae.algorithm import Algorithm, ItemUpdate, LoopParams, PatternElement, Rule, phrase_table
from sae.layout import Op

WORDS = (
    "[PAD] [UNK] the a an of and not is was cat dog play runs run new york city "
    "good bad very big small house red blue man woman eats food happy sad "
    "##s ##ing ##ed ##er , . ! ? 1 2"
).split()
CLASSES = ("stop", "cont", "punct", "neg", "word")
STOP = {"the", "a", "an", "of", "and", "is", "was"}
PHRASES = (("new", "york"), ("new", "york", "city"), ("play", "##ing"), ("play", "##er", "##s"), ("run", "##s"))
#: A few texts of the tiny vocabulary: a negation, a number, punctuation, a phrase-free mix.
SAMPLE_TEXTS = ["the cat is not happy .", "a dog runs", "the man eats food !", "not a good house", "red blue", "1 2 cat"]


def tokenizer_json() -> str:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok.to_str()


def token_id(word: str) -> int:
    return WORDS.index(word)


def classes_of(word: str) -> int:
    bits = 0
    if word in STOP:
        bits |= 1 << CLASSES.index("stop")
    if word.startswith("##"):
        bits |= 1 << CLASSES.index("cont")
    if word in {",", ".", "!", "?"}:
        bits |= 1 << CLASSES.index("punct")
    if word == "not":
        bits |= 1 << CLASSES.index("neg")
    if word.isalpha():
        bits |= 1 << CLASSES.index("word")
    return bits


def default_rules() -> tuple[Rule, ...]:
    """A small rule set exercising merge, reorder, update and gaps."""
    P = PatternElement  # noqa: N806
    return (
        Rule("merge3", 300, (P(classes=("word",)), P(), P()), kind="merge"),
        Rule("merge2", 200, (P(classes=("word",)), P()), kind="merge"),
        Rule("negate", 150, (P(classes=("neg",)), P(gap=2, classes=("word",))),
             updates=(ItemUpdate(opcode=int(Op.PUSH)), ItemUpdate(opcode=int(Op.MUL)))),
        Rule("soften_stop", 40, (P(opcode=int(Op.ACC), classes=("stop",)),),
             updates=(ItemUpdate(arg1=16384),)),
        Rule("silence_punct", 30, (P(classes=("punct",)),), updates=(ItemUpdate(opcode=int(Op.NOP)),)),
        Rule("swap_adj", 20, (P(classes=("word",)), P(classes=("word",))), perm=(1, 0)),
    )


def parse(text: str) -> tuple[Rule, ...]:
    """Rules in the text form of sae.rules_text, with ``sym="word"`` resolved in WORDS."""
    from sae.rules_text import parse_rules

    return parse_rules(text, lambda w: WORDS.index(w) if w in WORDS else None)


def ids(text: str) -> list[int]:
    """Token ids of space-separated WORDS (no tokenizer: every word is one token)."""
    return [token_id(w) for w in text.split()]


def phrase_symbol(*words: str) -> int:
    """The symbol of the lexicon phrase spelled by ``words`` (vocab size + its row in the sorted table)."""
    ids = [token_id(w) for w in words]
    table = make_tiny(rules=()).phrases
    row = next(i for i, p in enumerate(table) if [int(t) for t in p if t >= 0] == ids)
    return len(WORDS) + row


def make_tiny(
    rules: tuple[Rule, ...] | None = None,
    params: LoopParams | None = None,
    dim: int = 8,
    seed: int = 0,
    transforms: int = 0,
) -> Algorithm:
    """The tiny Algorithm; ``transforms`` random near-identity VM transforms (drawn after the vectors)."""
    rng = np.random.default_rng(seed)
    vocab = len(WORDS)
    phrase_ids = [tuple(token_id(w) for w in p) for p in PHRASES]
    phrases = phrase_table(phrase_ids, width=max(len(p) for p in phrase_ids))
    n_symbols = vocab + len(phrase_ids)
    rows = n_symbols
    symbol_classes = np.array([classes_of(w) for w in WORDS] + [1 << CLASSES.index("word")] * len(phrase_ids), dtype=np.uint32)
    vectors = rng.standard_normal((rows, dim)).astype(np.float32)
    weights = rng.uniform(0.5, 1.5, rows).astype(np.float32)
    tr = np.zeros((transforms, dim, dim + 1), dtype=np.float32)
    tr[:, :, :dim] = np.eye(dim) + 0.5 * rng.standard_normal((transforms, dim, dim))
    tr[:, :, dim] = 0.3 * rng.standard_normal((transforms, dim))
    return Algorithm(
        name="tiny",
        tokenizer_json=tokenizer_json(),
        vectors=vectors,
        weights=weights,
        transforms=tr,
        symbol_rows=np.arange(n_symbols, dtype=np.int32),
        symbol_classes=symbol_classes,
        phrases=phrases,
        phrase_bonus=np.array([10 * (p >= 0).sum() for p in phrases], dtype=np.int32),
        classes=CLASSES,
        rules=default_rules() if rules is None else rules,
        params=params or LoopParams(max_steps=16, tolerance=0, inhibit_steps=2),
    )


#: Rules of the viewer's example: the tiny rules, a negation scope that changes vectors
#: (a transform), and a guard that refuses the PUSH/MUL negation, so that annealing the
#: example text commits a merge, reverts a rewrite and then takes the next-best bid.
VIEW_EXAMPLE_RULES = """
rule scope score 90: [neg] [word !neg]+2 => set 1 mod=1
rule no_push_mul score 300: [op=PUSH] ~2 [op=MUL] => guard
"""


def make_view_example() -> Algorithm:
    """The Algorithm the viewer's tests and pictures use (tolerance 0, one transform)."""
    return make_tiny(rules=default_rules() + parse(VIEW_EXAMPLE_RULES),
                     params=LoopParams(max_steps=16, tolerance=0, inhibit_steps=2), transforms=1)
