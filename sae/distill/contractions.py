"""Negation by contraction: a tokenizer normalizer that reads "n't" as "not".

WordPiece splits "isn't" into ``isn ' t``: the negation is a ``t`` that no token class
can call a negation without calling every other ``t`` one, and the stem ``isn`` is a
content word. The teacher reads "isn't" and "is not" alike (its mean cosine between a
sentence and its negation is 0.892 with "n't" and 0.894 with "not" on dev's minimal
pairs); so the recipe makes the tokenizer read them alike too, with ``Replace``
normalizers after the teacher's own BERT normalizer ("isn't" → "is not", "can't" →
"can not", "won't" → "will not", "ain't" → "is not"), and every rule that tests a
negation sees one.

The normalizers are part of the Algorithm's ``tokenizer.json``: data, not engine, the
same for every backend (they tokenize on the host), and ``sae.word_cache`` serves this
pipeline from its cache (literal patterns without spaces act word by word).
"""

from __future__ import annotations

import json

#: (pattern, replacement) after lowercasing, applied in this order: the irregular stems
#: first, then every other "n't" (straight and curly apostrophe alike). "ain't" stands for
#: "am/is/are/has/have not"; "is not" is its commonest reading, and any auxiliary beats the
#: stem "ai" the general rule would leave.
CONTRACTIONS: tuple[tuple[str, str], ...] = tuple(
    (f"{stem}{apostrophe}t", full)
    for apostrophe in ("'", "\u2019")
    for stem, full in (("can", "can not"), ("won", "will not"), ("shan", "shall not"),
                       ("ain", "is not"), ("n", " not"))
)


def with_contractions(tokenizer_json: str) -> str:
    """``tokenizer_json`` with :data:`CONTRACTIONS` applied after its normalizer.

    The tokenizer must lowercase (the patterns are lowercase), as BERT uncased does.
    """
    spec = json.loads(tokenizer_json)
    normalizer = spec.get("normalizer")
    if not normalizer or normalizer.get("type") != "BertNormalizer" or not normalizer.get("lowercase", True):
        raise ValueError("contractions need a lowercasing BertNormalizer tokenizer")
    replace = [{"type": "Replace", "pattern": {"String": p}, "content": c} for p, c in CONTRACTIONS]
    spec["normalizer"] = {"type": "Sequence", "normalizers": [normalizer, *replace]}
    return json.dumps(spec, ensure_ascii=False)


__all__ = ["CONTRACTIONS", "with_contractions"]
