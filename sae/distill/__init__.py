"""Distillation: fit an Algorithm's data to a teacher model.

The engine's semantics are fixed (docs/ENGINE.md); distillation produces data:
vectors, transforms, a lexicon, token classes, rules and their parameters. The
pieces are importable on their own (the evolutionary engine reuses the fits):

* :mod:`sae.distill.classes`: token classes rules can test;
* :mod:`sae.distill.lexicon`: the lexicon of multi-piece words, word windows;
* :mod:`sae.distill.minimal_pairs`: negation and role-swap minimal pairs;
* :mod:`sae.distill.fit`: the ridge fits of vectors and transforms, on annealed programs;
* :mod:`sae.distill.pack`: packing vectors into the size budget;
* :mod:`sae.distill.rules`: the default rules, in the text form;
* :mod:`sae.distill.teacher_cache`: the teacher's embeddings, cached;
* :mod:`sae.distill.recipe`: the whole recipe (``sae distill``).
"""

from __future__ import annotations

from sae.distill.recipe import Config, Recipe

__all__ = ["Config", "Recipe"]
