"""Parsing the HTTP request bodies: what is accepted, what is refused and how it is said."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sae.service.schema import RequestError, TEIRequest, parse_openai, parse_tei


def body(value) -> bytes:
    return orjson.dumps(value)


def refused(parse, raw: bytes, max_texts: int = 8) -> RequestError:
    with pytest.raises(RequestError) as info:
        parse(raw, max_texts)
    err = info.value
    assert "\n" not in err.message and err.message
    return err


def test_openai_accepts_a_string_or_a_list_and_both_encodings():
    r = parse_openai(body({"input": "a cat", "model": "anything"}), 8)
    assert r.texts == ["a cat"] and not r.base64
    r = parse_openai(body({"input": ["a", ""], "encoding_format": "base64", "user": "u"}), 8)
    assert r.texts == ["a", ""] and r.base64
    assert parse_openai(body({"input": "x", "encoding_format": None, "dimensions": None}), 8).texts == ["x"]


@pytest.mark.parametrize(
    ("value", "words", "param"),
    [
        ({"input": "x", "dimensions": 128}, "'dimensions' is not supported", "dimensions"),
        ({"input": []}, "empty list", "input"),
        ({"input": 3}, "must be a string or a list of strings, got a number", "input"),
        ({"input": ["a", None]}, "'input[1]' must be a string, got null", "input"),
        ({"input": [1, 2, 3]}, "token array", "input"),
        ({"input": [[1, 2]]}, "token array", "input"),
        ({"model": "m"}, "missing field 'input'", "input"),
        ({"input": "x", "encoding_format": "hex"}, 'must be "float" or "base64", got "hex"', "encoding_format"),
        ({"input": "x", "model": 5}, "'model' must be a string", "model"),
        ({"input": "x", "temperature": 1}, "unknown field 'temperature'", "temperature"),
    ],
)
def test_openai_refusals_name_the_field(value, words, param):
    err = refused(parse_openai, body(value))
    assert words in err.message and err.param == param and err.status == 400


def test_too_many_texts_is_413():
    err = refused(parse_openai, body({"input": ["a"] * 9}))
    assert err.status == 413 and err.kind == "too_large" and "limit of 8" in err.message
    assert refused(parse_tei, body({"inputs": ["a"] * 9})).status == 413


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "body is empty"),
        (b"{", "not valid JSON"),
        (b'{"input": "caf\xe9"}', "not valid UTF-8"),
        (b'{"input": "\\ud800"}', "not valid JSON"),  # a lone surrogate is no text
        (b"[1, 2]", "must be a JSON object, got a list"),
        (b'"input"', "must be a JSON object, got a string"),
        (b'{"input": NaN}', "not valid JSON"),
    ],
)
def test_malformed_bodies(raw, words):
    assert words in refused(parse_openai, raw).message


def test_tei_shape_and_options_sae_cannot_honour():
    assert parse_tei(body({"inputs": "x", "normalize": True, "truncate": True}), 8) == TEIRequest(["x"], True)
    assert parse_tei(body({"inputs": ["x", "y"], "truncation_direction": "Right"}), 8) == TEIRequest(["x", "y"], False)
    assert parse_tei(body({"inputs": "x", "truncate": False}), 8) == TEIRequest(["x"], False)  # windows
    assert "always L2-normalized" in refused(parse_tei, body({"inputs": "x", "normalize": False})).message
    for value in (1, 0, "yes"):
        assert "'truncate' must be true or false" in refused(parse_tei, body({"inputs": "x", "truncate": value})).message
    assert parse_tei(body({"inputs": "x", "truncate": None}), 8) == TEIRequest(["x"], False)
    assert "not supported" in refused(parse_tei, body({"inputs": "x", "dimensions": 4})).message
    assert "missing field 'inputs'" in refused(parse_tei, body({"normalize": True})).message
    assert "unknown field 'input'" in refused(parse_tei, body({"input": "x"})).message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
field_values = st.dictionaries(
    st.sampled_from(["input", "inputs", "model", "encoding_format", "dimensions", "normalize", "truncate", "x"]),
    json_values | st.lists(st.text(), max_size=10),
    max_size=4,
)


@given(raw=st.binary(max_size=200) | json_values.map(body) | field_values.map(body))
def test_any_body_is_parsed_or_refused_with_one_line(raw):
    for parse in (parse_openai, parse_tei):
        try:
            result = parse(raw, 8)
        except RequestError as err:
            assert err.message and "\n" not in err.message and err.status in (400, 413)
        else:
            texts = result if isinstance(result, list) else result.texts
            assert 1 <= len(texts) <= 8 and all(isinstance(t, str) for t in texts)
