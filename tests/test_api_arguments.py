"""Wrong arguments to the Python API are TypeError / ValueError naming the call, not an
error from deep inside numpy, the matcher or wgpu (found by an adversarial pass)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sae import Engine
from sae.algorithm import check_algorithm, load_algorithm, save_algorithm
from sae.errors import AlgorithmError
from sae.layout import Capacities
from sae.population import PopulationEvaluator, evaluate_population
from sae.rules_text import format_rules, parse_rules


@pytest.fixture(scope="module")
def engine(tiny_alg):
    return Engine(tiny_alg, backend="cpu")


@pytest.mark.parametrize(("token_ids", "error", "message"), [
    (None, TypeError, "expected a list of token id lists, got NoneType"),
    ([None], TypeError, "text 0 is a NoneType, not a sequence of token ids"),
    ([1, 2, 3], TypeError, "text 0 is a int, not a sequence of token ids"),
    ([{1, 2}], TypeError, "text 0 is a set, not a sequence of token ids (a set has no order to embed)"),
    ([[True, 5]], ValueError, "text 0 has a token id of type bool"),  # was embedded as id 1 beside an int
    ([[1, [2, 3]]], ValueError, "text 0 has a token id of type list"),
    (np.zeros((1, 2, 2), dtype=np.int64), ValueError, "text 0 has a token id of type ndarray"),
])
def test_malformed_token_ids_are_named(engine, tiny_alg, token_ids, error, message):
    with pytest.raises(error) as raised:
        engine.embed_tokens(token_ids)
    assert str(raised.value).startswith("Engine.embed_tokens: ") and message in str(raised.value)
    with pytest.raises(error, match=r"^PopulationEvaluator\.evaluate: "):
        evaluate_population([tiny_alg], token_ids, backend="cpu")


def test_token_ids_from_a_generator_embed_as_a_list(engine):
    ids = engine.tokenize(["the cat", "a dog runs"])
    assert np.array_equal(engine.embed_tokens(x for x in ids), engine.embed_tokens(ids))


def test_engine_arguments_of_the_wrong_type(tiny_alg, engine):
    with pytest.raises(TypeError, match="Engine: algorithm must be a path"):
        Engine(5, backend="cpu")
    with pytest.raises(TypeError, match="Engine: algorithm must be a path"):
        Engine(b"/x", backend="cpu")
    with pytest.raises(TypeError, match="Engine: adapter must be a str"):
        Engine(tiny_alg, backend="cpu", adapter=5)
    for bad in ("x", 1.5, True, -1):
        with pytest.raises(ValueError, match=r"Engine\.explain: max_steps must be None or an integer >= 0"):
            engine.explain("the cat", max_steps=bad)
    assert len(engine.explain("the cat", max_steps=0).journal) == 0
    with pytest.raises(TypeError, match=r"Capacities\.stream must be an integer, got 1\.5"):
        Capacities(stream=1.5)


def test_population_arguments_of_the_wrong_type(tiny_alg, tiny_dir):
    with pytest.raises(TypeError, match="PopulationEvaluator: base must be an Algorithm"):
        PopulationEvaluator(str(tiny_dir), backend="cpu")
    with pytest.raises(TypeError, match="PopulationEvaluator: caps must be"):
        PopulationEvaluator(tiny_alg, backend="cpu", caps=None)
    for jobs in ("a", 1.5, 0, True):
        with pytest.raises(ValueError, match="jobs must be an integer >= 1"):
            PopulationEvaluator(tiny_alg, backend="cpu", jobs=jobs)
    with pytest.raises(TypeError, match=r"PopulationEvaluator\.evaluate: member 1 is a NoneType, not an Algorithm"):
        evaluate_population([tiny_alg, None], [[1, 2]], backend="cpu")


def _bad_tables(alg):
    """Algorithms built in Python with a table the loader would refuse, and what is said."""
    nan = np.array(alg.vectors)
    nan[0, 0] = np.nan
    return [
        (replace(alg, symbol_rows=np.full_like(alg.symbol_rows, len(alg.vectors))),
         f"symbol_rows: [0]: row {len(alg.vectors)} is out of range"),  # was an IndexError in the matcher
        (replace(alg, weights=alg.weights[:2]), "weights: shape: (2,) must be"),
        (replace(alg, vectors=nan), "vectors: values: contain NaN or infinity"),  # embedded to zero vectors
        (replace(alg, vectors=alg.vectors.astype(np.float64)),
         "vectors: must be a 2-dimensional float32 array, got 2 dimension(s) of float64"),
        (replace(alg, vectors=alg.vectors.tolist()), "vectors: must be a numpy array, got list"),
        (replace(alg, symbol_classes=np.full_like(alg.symbol_classes, 1 << 30)),
         "symbol_classes: values: use class bits beyond"),
        (replace(alg, transforms=np.zeros((1, 3, 4), np.float32)), "transforms: shape: (1, 3, 4) must be"),
        (replace(alg, tokenizer_json="{}"), "tokenizer_json: not a valid tokenizer"),
        (replace(alg, classes=("a", "a")), "classes: names must be unique"),
    ]


def test_engine_refuses_an_algorithm_built_in_python_with_bad_tables(tiny_alg):
    for bad, message in _bad_tables(tiny_alg):
        with pytest.raises(AlgorithmError) as raised:
            Engine(bad, backend="cpu")
        assert str(raised.value).startswith("Algorithm 'tiny': ") and message in str(raised.value)
        with pytest.raises(AlgorithmError, match=r"^Algorithm 'tiny': "):
            PopulationEvaluator(bad, backend="cpu")
    check_algorithm(tiny_alg)  # the loaded one passes


def test_save_algorithm_never_replaces_a_directory_with_what_would_not_load(tmp_path, tiny_alg):
    out = tmp_path / "alg"
    save_algorithm(tiny_alg, out)
    before = load_algorithm(out).content_hash
    big = np.array(tiny_alg.vectors)
    big[0, 0] = 1e5  # past float16's largest, 65504: stored as infinity
    for bad, reason in ((replace(tiny_alg, vectors=big), "vectors.npy: values: contain NaN or infinity"),
                        (replace(tiny_alg, name=""), "algorithm.json: name: must be a non-empty string")):
        with pytest.raises(ValueError, match="save_algorithm: the Algorithm would not load back: " + reason):
            save_algorithm(bad, out)
    assert load_algorithm(out).content_hash == before and sorted(p.name for p in tmp_path.iterdir()) == ["alg"]


@pytest.mark.parametrize(("text", "message"), [
    ("rule a score 10: [sym=²] => keep", "sym= takes a number or a quoted token, got '²'"),
    ("rule a score 10: [mod=²] => keep", "mod= takes a number, got '²'"),
    ("rule a score 10: [sym=１２] => keep", "sym= takes a number or a quoted token, got '１２'"),
    ("rule a score 10: [word] => set 0 arg1=1_0", "arg1 takes an integer, got '1_0'"),
    ('rule a"b score 10: [word] => keep # c', "expected 'rule NAME score N"),
    ("rule a score 3: [word]" + " " * 5000 + "x", "expected 'rule NAME score N"),
    ("rule a score 3: [word] " + "x" * 5000 + " => keep", "unexpected 'xxxxxxxx"),
])
def test_rules_text_refuses_in_one_short_line(text, message):
    from sae.errors import InputError

    with pytest.raises(InputError) as raised:
        parse_rules(text)
    assert message in str(raised.value) and len(str(raised.value)) < 200


def test_rules_text_quotes_hold_an_arrow_and_names_it_cannot_hold_are_refused():
    (rule,) = parse_rules('rule a score 10: [sym="=>"] => keep', {"=>": 5}.get)
    assert rule.pattern[0].symbol == 5
    with pytest.raises(ValueError, match="the rule name 'has space' has a space"):
        format_rules([replace(rule, name="has space")])
