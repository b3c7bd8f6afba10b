"""The evolve data: minimal pairs labelled by kind, so the fitness can weigh each kind alike."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
from tiny import make_tiny

from sae.distill.minimal_pairs import reported_pairs
from sae.evolve.data import MINIMAL_KINDS, build_eval_data, first_of_each_kind
from sae.io import write_embeddings

SENTENCES = [
    "a dog is biting a man.",  # negated by "not" and by "no"; roles swapped around "is V-ing"
    "a woman peels a potato.",  # roles swapped around a verb without an auxiliary
    "the man was playing.",  # negated by "not"
    "there is a cat on the mat.",  # negated by "no"
    *(f"filler sentence number {k}." for k in range(20)),
]


def teacher_file(path) -> list[str]:
    """A teacher file of :data:`SENTENCES` and their variants (random unit embeddings); its texts."""
    found = reported_pairs(SENTENCES)
    texts = SENTENCES + [b for kind in MINIMAL_KINDS for _, b in found[kind]]
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((len(texts), make_tiny().dim))
    write_embeddings(path, texts, (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32))
    return texts


def test_each_kind_of_minimal_pair_is_labelled_as_such(tmp_path):
    texts = teacher_file(tmp_path / "teacher.parquet")
    data = build_eval_data(make_tiny(), tmp_path / "teacher.parquet", None, 0, 0)
    labelled = Counter(MINIMAL_KINDS[k] for ps in (data.minimal_fit, data.minimal_valid) for k in ps.kind)
    # Every text is a teacher text, variants too: a swapped variant swaps back into its original.
    expected = {kind: sum(v in texts for _, v in pairs) for kind, pairs in reported_pairs(texts).items()}
    assert labelled == {kind: expected[kind] for kind in MINIMAL_KINDS}
    assert labelled["order"] == labelled["order_plain"] == 2  # the plain swap is a kind of its own


def test_a_cap_on_minimal_pairs_applies_to_each_kind():
    rows = [("a", "b", 0)] * 10 + [("c", "d", 3), ("e", "f", 0), ("g", "h", 2), ("i", "j", 3)]
    assert first_of_each_kind(rows, 2) == [("a", "b", 0)] * 2 + [("c", "d", 3), ("g", "h", 2), ("i", "j", 3)]
    assert first_of_each_kind(rows, 100) == rows


def test_selection_sees_every_kind_under_a_small_cap(tmp_path):
    teacher_file(tmp_path / "teacher.parquet")
    capped = build_eval_data(make_tiny(), tmp_path / "teacher.parquet", None, 0, len(MINIMAL_KINDS))
    assert sorted(capped.minimal_fit.kind.tolist()) == list(range(len(MINIMAL_KINDS)))  # one of each


def test_the_data_digest_holds_the_kinds(tmp_path):
    """Pairs relabelled to another kind score differently, so they digest differently: a run
    stored under other kinds is not resumed as if it were this one."""
    teacher_file(tmp_path / "teacher.parquet")
    data = build_eval_data(make_tiny(), tmp_path / "teacher.parquet", None, 0, 0)
    pooled = replace(data.minimal_fit, kind=data.minimal_fit.kind * 0)
    assert replace(data, minimal_fit=pooled).digest() != data.digest()
    assert replace(data).digest() == data.digest()


def test_a_teacher_file_without_minimal_pairs_is_said(tmp_path, caplog):
    """With no variant of its sentences the minimal-pair error is 0 and the search is blind to
    negation and order: the shared teacher file (train sentences alone) is one such."""
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((len(SENTENCES), make_tiny().dim))
    write_embeddings(tmp_path / "plain.parquet", SENTENCES,
                     (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32))
    data = build_eval_data(make_tiny(), tmp_path / "plain.parquet", None, 0, 0)
    assert len(data.minimal_fit) == len(data.minimal_valid) == 0
    assert any("holds no minimal pair" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    caplog.clear()
    teacher_file(tmp_path / "teacher.parquet")
    build_eval_data(make_tiny(), tmp_path / "teacher.parquet", None, 0, 0)
    assert not any("holds no minimal pair" in r.getMessage() for r in caplog.records)


def test_pairs_whose_correlation_is_undefined_are_refused(tmp_path):
    """Constant gold scores, or a teacher file that holds none of the validation fifth's
    sentences, ran to the end with a Spearman of 0 or none (an adversarial pass): the search
    then selected, or the final pick chose, on the minimal-pair error alone."""
    import pytest

    from sae.errors import InputError

    texts = teacher_file(tmp_path / "teacher.parquet")
    base = make_tiny()

    def pairs(scores, first=lambda i: SENTENCES[4 + i]) -> str:
        path = tmp_path / "pairs.tsv"
        path.write_text("".join(f"g\tf\ty\t{i}\t{score}\t{first(i)}\t{SENTENCES[5 + i]}\n"
                                for i, score in enumerate(scores)))
        return str(path)

    with pytest.raises(InputError, match=r"the fit pairs .* 1 distinct gold score\(s\); their Spearman"):
        build_eval_data(base, str(tmp_path / "teacher.parquet"), pairs([2.0] * 15), 0, 0)
    unknown = pairs([float(i % 4) for i in range(15)], lambda i: "not in the teacher." if i % 5 == 4 else SENTENCES[4 + i])
    with pytest.raises(InputError, match=r"the validation \(every fifth\) pairs .* are 0, with 0 distinct"):
        build_eval_data(base, str(tmp_path / "teacher.parquet"), unknown, 0, 0)
    assert len(texts) > 20
