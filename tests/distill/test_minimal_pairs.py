"""Minimal pairs: a negation (by "not", and its "n't" form for reports; by "no") and a role swap."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from sae.distill.minimal_pairs import (
    contract,
    minimal_pairs,
    negate,
    negate_noun_phrase,
    negate_plain_verb,
    reported_pairs,
    swap_plain_roles,
    swap_roles,
    words,
)


def test_negation_inserts_not_after_the_first_auxiliary():
    assert negate("The man is playing the guitar.") == "The man is not playing the guitar."
    assert negate("Is the man playing?") is None  # no auxiliary after the first word
    assert negate("A dog runs.") is None
    assert negate("Nobody is here.") is None and negate("The man is not playing.") is None


def test_negation_by_no_takes_an_indefinite_subject_or_the_object_of_there_is():
    assert negate_noun_phrase("A man is playing a guitar.") == "No man is playing a guitar."
    assert negate_noun_phrase("Some young people are dancing.") == "No young people are dancing."
    assert negate_noun_phrase("There is a dog in the yard.") == "There is no dog in the yard."
    assert negate_noun_phrase("there were some cats.") == "there were no cats."
    assert negate_noun_phrase("The man is playing.") is None  # definite: "no" would change more than negation
    assert negate_noun_phrase("A man plays.") is None  # no auxiliary after the subject
    assert negate_noun_phrase("An old man with a hat is sitting.") is None  # subject too long to be sure of
    assert negate_noun_phrase("A man is not playing.") is None and negate_noun_phrase("A dog.") is None


def test_a_verb_without_an_auxiliary_is_negated_by_does_not_and_by_never():
    assert negate_plain_verb("A woman peels a potato.") == ["A woman does not peel a potato.",
                                                            "A woman never peels a potato."]
    assert negate_plain_verb("A dog catches a ball.")[0] == "A dog does not catch a ball."
    assert negate_plain_verb("The baby cries in the crib.") == []  # "the" + preposition: could be a plural
    assert negate_plain_verb("A baby cries in the crib.")[0] == "A baby does not cry in the crib."
    assert negate_plain_verb("A bird perched on a pot.") == ["A bird never perched on a pot."]  # no base form of "-ed"
    assert negate_plain_verb("a man walks two dogs.") == []  # "walks" is the verb, and no determiner follows it
    assert negate_plain_verb("A pet playfully investigates a bag.") == []  # an adverb: not a plain subject
    assert negate_plain_verb("A man is playing a guitar.") == []  # an auxiliary: "not" goes after it
    assert negate_plain_verb("A man never plays a guitar.") == []  # already negated


def test_the_contracted_form_keeps_case_and_skips_auxiliaries_without_one():
    assert contract("The man is not playing the guitar.") == "The man isn't playing the guitar."
    assert contract("Tom will not go home.") == "Tom won't go home."
    assert contract("Cats Can not fly.") == "Cats Can't fly."
    assert contract("She may not go.") is None
    assert contract("A dog runs.") is None


def test_minimal_pairs_of_distinct_texts():
    found = minimal_pairs(["A dog is biting a man.", "She may go.", "A dog is biting a man.", "A cat eats a fish."])
    assert found["negation"] == [("A dog is biting a man.", "A dog is not biting a man."),
                                 ("She may go.", "She may not go.")]
    assert found["negation_plain"] == [("A cat eats a fish.", "A cat does not eat a fish."),
                                       ("A cat eats a fish.", "A cat never eats a fish.")]
    assert found["order"] == [("A dog is biting a man.", "a man is biting A dog."),
                              ("A cat eats a fish.", "a fish eats A cat.")]
    assert found["negation_no"] == [("A dog is biting a man.", "No dog is biting a man.")]
    assert swap_roles("A dog is biting a man.") == "a man is biting A dog."


def test_roles_swap_around_a_verb_without_an_auxiliary():
    assert swap_plain_roles("A woman peels a potato.") == "a potato peels A woman."
    assert swap_plain_roles("The man plays the old guitar") == "the old guitar plays The man"
    assert swap_plain_roles("A man with a hat plays a guitar.") is None  # a preposition in the subject
    assert swap_plain_roles("A man plays a guitar in the park.") is None  # more than the object after the verb
    assert swap_plain_roles("A man plays.") is None and swap_plain_roles("A dog is biting a man.") is None
    assert minimal_pairs(["A woman peels a potato."])["order"] == [("A woman peels a potato.",
                                                                   "a potato peels A woman.")]


def test_reports_add_the_contracted_form_of_each_negation_and_single_out_plain_swaps():
    found = reported_pairs(["A dog is biting a man.", "She may go.", "A woman peels a potato."])
    assert found["contracted"] == [("A dog is biting a man.", "A dog isn't biting a man.")]
    assert found["order_plain"] == [("A woman peels a potato.", "a potato peels A woman.")]
    assert found["negation"] == minimal_pairs(["A dog is biting a man.", "She may go."])["negation"]
    assert found["order"] == [("A dog is biting a man.", "a man is biting A dog.")]


# -- invariants over generated sentences (hypothesis) ------------------------------------------

_DET = st.sampled_from(["A", "The", "a", "the", "Some", "This"])
_NOUN = st.sampled_from(["man", "woman", "dog", "ball", "guitar", "potato", "bird", "crib", "young", "brown"])
_VERB = st.sampled_from(["peels", "catches", "carries", "plays", "watches", "cried", "jumped", "passes", "goes"])
_OTHER = st.sampled_from(["is", "not", "never", "in", "on", "quickly", "no", ",", "and", "n't", "slowly"])
_END = st.sampled_from([".", "!", "", "?"])


@st.composite
def _sentences(draw) -> str:
    """Mostly "DET nouns VERB DET nouns." (the templates' shape), with stray words mixed in
    so that the refusals are exercised too."""
    parts = [draw(_DET), *draw(st.lists(_NOUN, min_size=1, max_size=3)), draw(_VERB),
             draw(st.one_of(_DET, st.sampled_from(["in", "on", "to"]))), *draw(st.lists(_NOUN, min_size=1, max_size=3))]
    for _ in range(draw(st.integers(0, 2))):
        parts.insert(draw(st.integers(0, len(parts))), draw(_OTHER))
    end = draw(_END)
    return " ".join(parts) + end


@settings(max_examples=300, deadline=None)
@given(_sentences())
def test_a_plain_negation_inserts_its_words_and_changes_nothing_else(text):
    ws = words(text)
    for variant in negate_plain_verb(text):
        vs = words(variant)
        if "never" in vs:  # "never" inserted before the verb, every other word kept
            i = vs.index("never")
            assert vs[:i] + vs[i + 1:] == ws
        else:  # "does not" and the verb's base form in place of the verb
            i = vs.index("does")
            assert vs[i + 1] == "not" and vs[:i] == ws[:i] and vs[i + 3:] == ws[i + 1:]
            assert ws[i].lower().startswith(vs[i + 2][:-1]) and ws[i].lower().endswith("s")
        assert negate_plain_verb(variant) == [] and negate(variant) is None  # negated once
    assert len(negate_plain_verb(text)) <= 2


@settings(max_examples=300, deadline=None)
@given(_sentences())
def test_every_template_keeps_the_sentence_apart_from_its_edit(text):
    """"not" and "never" add one word and remove none ("no" and "does not" replace one: the
    test above and the examples); a role swap keeps the multiset of words."""
    ws = Counter(w.lower() for w in words(text))
    for variant in [negate(text), *(v for v in negate_plain_verb(text) if "never" in words(v))]:
        if variant is not None:
            added = Counter(w.lower() for w in words(variant)) - ws
            assert not ws - Counter(w.lower() for w in words(variant)) and sum(added.values()) == 1
    for swapped in (swap_roles(text), swap_plain_roles(text)):
        if swapped is not None:
            assert Counter(w.lower() for w in words(swapped)) == ws and swapped != text
