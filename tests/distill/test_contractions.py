"""sae.distill.contractions: the tokenizer reads "n't" as "not", and nothing else changes."""

import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from sae.distill.contractions import CONTRACTIONS, with_contractions
from tests.conftest import teacher_tokenizer_json


@pytest.fixture(scope="module")
def teacher_tokenizer():
    return teacher_tokenizer_json()


def tokens(tokenizer_json: str, text: str) -> list[str]:
    return Tokenizer.from_str(tokenizer_json).encode(text, add_special_tokens=False).tokens


def test_every_n_t_reads_as_not(teacher_tokenizer):
    contracted = with_contractions(teacher_tokenizer)
    assert tokens(teacher_tokenizer, "The man isn't playing.") == ["the", "man", "isn", "'", "t", "playing", "."]
    for short, full in [("The man isn't playing.", "The man is not playing."),
                        ("They DON'T know", "they do not know"),
                        ("I can't go, won't go, shan't go", "I can not go, will not go, shall not go"),
                        ("It doesn’t rain, can’t, won’t", "It does not rain, can not, will not"),
                        ("do n't", "do not"),
                        ("It ain't so, it AIN’T", "It is not so, it is not")]:
        assert tokens(contracted, short) == tokens(teacher_tokenizer, full), short


def test_other_text_is_tokenized_as_before(teacher_tokenizer):
    contracted = with_contractions(teacher_tokenizer)
    for text in ["The cat's mat.", "Don Juan can, won, cant", "n t ' nt", "Antoine’s t", "café ’t"]:
        assert tokens(contracted, text) == tokens(teacher_tokenizer, text), text


def test_patterns_are_lowercase_literals_without_spaces():
    for pattern, content in CONTRACTIONS:
        assert pattern == pattern.lower() and " " not in pattern and pattern.endswith("t")
        assert content.isascii() and content.endswith("not")


def test_a_tokenizer_that_does_not_lowercase_is_refused():
    tok = Tokenizer(models.WordPiece(vocab={"[UNK]": 0, "t": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    with pytest.raises(ValueError, match="lowercasing BertNormalizer"):
        with_contractions(tok.to_str())
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    with pytest.raises(ValueError, match="lowercasing BertNormalizer"):
        with_contractions(tok.to_str())
