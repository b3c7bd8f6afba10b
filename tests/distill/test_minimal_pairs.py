"""Minimal pairs: a negation (by "not", and its "n't" form for reports) and a role swap."""

from __future__ import annotations

from sae.distill.minimal_pairs import contract, minimal_pairs, negate, reported_pairs, swap_roles


def test_negation_inserts_not_after_the_first_auxiliary():
    assert negate("The man is playing the guitar.") == "The man is not playing the guitar."
    assert negate("Is the man playing?") is None  # no auxiliary after the first word
    assert negate("A dog runs.") is None
    assert negate("Nobody is here.") is None and negate("The man is not playing.") is None


def test_the_contracted_form_keeps_case_and_skips_auxiliaries_without_one():
    assert contract("The man is not playing the guitar.") == "The man isn't playing the guitar."
    assert contract("Tom will not go home.") == "Tom won't go home."
    assert contract("Cats Can not fly.") == "Cats Can't fly."
    assert contract("She may not go.") is None
    assert contract("A dog runs.") is None


def test_minimal_pairs_of_distinct_texts():
    found = minimal_pairs(["A dog is biting a man.", "She may go.", "A dog is biting a man."])
    assert found["negation"] == [("A dog is biting a man.", "A dog is not biting a man."),
                                 ("She may go.", "She may not go.")]
    assert found["order"] == [("A dog is biting a man.", "a man is biting A dog.")]
    assert swap_roles("A dog is biting a man.") == "a man is biting A dog."


def test_reports_add_the_contracted_form_of_each_negation():
    found = reported_pairs(["A dog is biting a man.", "She may go."])
    assert found["contracted"] == [("A dog is biting a man.", "A dog isn't biting a man.")]
    assert found["negation"] == minimal_pairs(["A dog is biting a man.", "She may go."])["negation"]
