"""The evolve data: minimal pairs labelled by kind, so the fitness can weigh each kind alike."""

from __future__ import annotations

from collections import Counter

import numpy as np
from tiny import make_tiny

from sae.distill.minimal_pairs import reported_pairs
from sae.evolve.data import MINIMAL_KINDS, build_eval_data
from sae.io import write_embeddings

SENTENCES = [
    "a dog is biting a man.",  # negated by "not" and by "no"; roles swapped around "is V-ing"
    "a woman peels a potato.",  # roles swapped around a verb without an auxiliary
    "the man was playing.",  # negated by "not"
    "there is a cat on the mat.",  # negated by "no"
    *(f"filler sentence number {k}." for k in range(20)),
]


def test_each_kind_of_minimal_pair_is_labelled_as_such(tmp_path):
    found = reported_pairs(SENTENCES)
    variants = [b for kind in MINIMAL_KINDS for _, b in found[kind]]
    texts = SENTENCES + variants
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((len(texts), make_tiny().dim))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    write_embeddings(tmp_path / "teacher.parquet", texts, emb)
    data = build_eval_data(make_tiny(), tmp_path / "teacher.parquet", None, 0, 0)
    labelled = Counter(MINIMAL_KINDS[k] for ps in (data.minimal_fit, data.minimal_valid) for k in ps.kind)
    # Every text is a teacher text, variants too: a swapped variant swaps back into its original.
    expected = {kind: sum(v in texts for _, v in pairs) for kind, pairs in reported_pairs(texts).items()}
    assert labelled == {kind: expected[kind] for kind in MINIMAL_KINDS}
    assert labelled["order"] == labelled["order_plain"] == 2  # the plain swap is a kind of its own
