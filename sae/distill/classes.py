"""Token classes of distilled Algorithms: lexical categories rules can test.

Classes are a bitmask per symbol (``Algorithm.symbol_classes``); rules name them.
They are computed from the token's text alone (an uncased WordPiece vocabulary),
so every vocabulary gets the same definitions.
"""

from __future__ import annotations

import numpy as np

#: Class names, in bit order.
CLASSES = ("stop", "cont", "punct", "neg", "num", "word", "aux", "det", "prep", "pron", "conj", "ing", "ed")

STOPWORDS = frozenset(
    """a an the of and or but if then else to in on at by for with from into onto over under
    about as is are was were be been being am do does did doing have has had having i me my
    we our you your he him his she her it its they them their this that these those there
    here what which who whom whose when where why how all any both each few more most other
    some such only own same so than too very s t can will just should now also would could
    may might must shall up down out off again further once while during before after above
    below between through until against""".split()
)
NEGATIONS = frozenset({"not", "no", "never", "nothing", "nobody", "none", "neither", "nor", "without", "cannot"})
AUXILIARIES = frozenset(
    """is are was were be been being am do does did has have had can could will would should
    may might must shall""".split()
)
DETERMINERS = frozenset("a an the this that these those some any each every another".split())
PREPOSITIONS = frozenset(
    """of in on at by for with from into onto over under about through near behind across along
    around between against towards toward upon beside inside outside below above down up off out""".split()
)
PRONOUNS = frozenset("i me my we us our you your he him his she her it its they them their someone something".split())
CONJUNCTIONS = frozenset("and or but while as because so although though whereas".split())


def token_class_names(token: str) -> set[str]:
    """The classes of one vocabulary token (WordPiece: ``##`` marks a continuation)."""
    names = set()
    core = token[2:] if token.startswith("##") else token
    if token in STOPWORDS:
        names.add("stop")
    if token.startswith("##"):
        names.add("cont")
    if core and all(not ch.isalnum() for ch in core):
        names.add("punct")
    if token in NEGATIONS:
        names.add("neg")
    if core and any(ch.isdigit() for ch in core):
        names.add("num")
    if core.isalpha() and not token.startswith("##") and token not in STOPWORDS | NEGATIONS:
        names.add("word")
    for name, words in (("aux", AUXILIARIES), ("det", DETERMINERS), ("prep", PREPOSITIONS),
                        ("pron", PRONOUNS), ("conj", CONJUNCTIONS)):
        if token in words:
            names.add(name)
    if core.isalpha() and len(core) > 4 and core.endswith("ing"):
        names.add("ing")
    if core.isalpha() and len(core) > 3 and core.endswith("ed"):
        names.add("ed")
    return names


def class_bits(names: set[str]) -> int:
    return sum(1 << CLASSES.index(n) for n in names)


def token_classes(vocab: list[str]) -> np.ndarray:
    """``(len(vocab),)`` uint32 class bitmask of every token."""
    return np.array([class_bits(token_class_names(t)) for t in vocab], dtype=np.uint32)


def phrase_classes(vocab: list[str], phrases: np.ndarray) -> np.ndarray:
    """Classes of lexicon phrases (whole words of several pieces): ``word``, plus the
    suffix classes (``ing``, ``ed``) and ``num`` of the word they spell."""
    out = np.zeros(len(phrases), dtype=np.uint32)
    for i, row in enumerate(phrases):
        text = "".join(vocab[t][2:] if vocab[t].startswith("##") else vocab[t] for t in row if t >= 0)
        names = {"word"} if text.isalpha() else set()
        if any(ch.isdigit() for ch in text):
            names.add("num")
        if text.isalpha() and len(text) > 4 and text.endswith("ing"):
            names.add("ing")
        if text.isalpha() and len(text) > 3 and text.endswith("ed"):
            names.add("ed")
        out[i] = class_bits(names)
    return out
