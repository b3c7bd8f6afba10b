"""Structure-aware fuzzing of Algorithm directories.

A valid directory is mutated field by field (JSON values replaced, deleted, added,
nested deeply; arrays truncated, re-typed, re-shaped, given lying headers or
non-finite values; the tokenizer cut or garbled). Every case must either load — and
then embed without error — or fail with one :class:`AlgorithmError` line naming the
file, never another exception, a hang or an unbounded allocation.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny import make_tiny, parse

from sae.algorithm import ARRAY_FILES, LoopParams, load_algorithm, save_algorithm
from sae.engine import Engine
from sae.errors import AlgorithmError

#: A loader that stays within this while refusing a lying file is bounded.
MEMORY_LIMIT = 64 << 20
RULES = """
rule m3 score 300: [word] [] [] => merge
rule scope score 90: [neg] [!punct]+4 => set 1 mod=1
rule soften score 40: [op=ACC stop] [word] => set 0 scale=0.25
rule role score 30: [word mod=0] ~2 [&word !stop] => set 0 mod=2 arg1=70000
rule guard score 500: [neg] [mod=1] => guard
"""


@pytest.fixture(scope="module")
def valid_dir(tmp_path_factory) -> Path:
    alg = make_tiny(rules=parse(RULES), params=LoopParams(max_steps=8, tolerance=0, inhibit_steps=2), transforms=2)
    return save_algorithm(alg, tmp_path_factory.mktemp("fuzz") / "valid", vector_dtype="float32")


def _paths(doc, prefix=()):
    """Every path into a JSON document, containers included."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


def _set(doc, path, value):
    if not path:
        return value
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def _delete(doc, path):
    node = doc
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return doc


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.sampled_from([0, -1, 1, 2**31, 2**32 - 1])
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
    | st.sampled_from(["ACC", "merge", "guard", "word", "neg", "sae-algorithm"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


@st.composite
def json_mutation(draw, doc):
    paths = list(_paths(doc))
    path = draw(st.sampled_from(paths))
    kind = draw(st.sampled_from(["replace", "replace", "delete", "add", "deep"]))
    if kind == "delete" and path:
        return "json", _delete(doc, path)
    if kind == "add":
        parents = [p for p in paths if isinstance(_get(doc, p), dict)]
        target = draw(st.sampled_from(parents))
        _get(doc, target)[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
        return "json", doc
    if kind == "deep":
        return "text", json.dumps(_set(doc, path, "@DEEP@")).replace('"@DEEP@"', "[" * 5000 + "]" * 5000)
    return "json", _set(doc, path, draw(json_values))


def _get(doc, path):
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def array_mutation(draw, name: str, arr: np.ndarray):
    kind = draw(st.sampled_from(["truncate", "dtype", "shape", "lying_header", "values", "header_bytes"]))
    if kind == "dtype":
        dtype = draw(st.sampled_from(["int64", "float64", "bool", "complex64", "uint8", "U3", "int16", "object"]))
        return kind, arr.astype(dtype)
    if kind == "shape":
        flat = arr.reshape(-1)
        shapes = [flat, flat[: max(len(flat) - 1, 0)], arr[None], np.concatenate([flat, flat[:1]])]
        if arr.ndim >= 2:
            shapes += [arr.T.copy(), arr.reshape(arr.shape[0], -1)[:, :-1].copy()]
        return kind, draw(st.sampled_from(shapes))
    if kind == "values" and arr.size:
        out = arr.copy()
        flat = out.reshape(-1)
        i = draw(st.integers(0, flat.size - 1))
        if out.dtype.kind == "f":
            flat[i] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e30]))
        else:
            flat[i] = draw(st.sampled_from([-1, -(2**31), 2**31 - 1, 10**6])) if out.dtype.kind == "i" else 2**32 - 1
        return kind, out
    return kind, draw(st.integers(0, 10**6))  # a byte offset for the byte-level mutations


def _write_array(file: Path, kind: str, value) -> None:
    if isinstance(value, np.ndarray):
        np.save(file, value, allow_pickle=value.dtype.kind == "O")
        return
    data = bytearray(file.read_bytes())
    if kind == "truncate":
        file.write_bytes(bytes(data[: value % max(len(data), 1)]))
    elif kind == "lying_header":
        header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({10**12 + value}, 384), }}"
        header += " " * (63 - (len(header) + 10) % 64) + "\n"
        file.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 64)
    else:  # header_bytes: flip one byte of the magic or header
        at = value % min(len(data), 128)
        data[at] ^= 0xFF
        file.write_bytes(bytes(data))


def _check(directory: Path) -> None:
    """Loads (and then embeds) or fails with one AlgorithmError line; bounded memory."""
    tracemalloc.start()
    try:
        alg = load_algorithm(directory)
    except AlgorithmError as exc:
        message = str(exc)
        assert "\n" not in message and len(message) < 600, message
        assert message.startswith(str(directory)), message
        return
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < MEMORY_LIMIT, f"the loader allocated {peak} bytes"
    # Whatever loads is safe to run.
    with np.errstate(all="ignore"):
        out = Engine(alg, backend="cpu").embed(["the new york city players", "not a good dog , the cat", ""])
    assert out.shape == (3, alg.dim)


def _fresh(valid: Path, tmp_path: Path, n: int) -> Path:
    target = tmp_path / f"case{n}"
    shutil.copytree(valid, target)
    return target


_COUNTER = iter(range(10**9))
FUZZ = settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                deadline=None)


@FUZZ
@given(data=st.data())
def test_algorithm_json_mutations_load_or_fail_in_one_line(valid_dir, tmp_path, data):
    case = _fresh(valid_dir, tmp_path, next(_COUNTER))
    doc = json.loads((case / "algorithm.json").read_text())
    kind, value = data.draw(json_mutation(doc))
    text = json.dumps(value) if kind == "json" else value
    (case / "algorithm.json").write_text(text)
    _check(case)


@FUZZ
@given(data=st.data(), name=st.sampled_from(ARRAY_FILES))
def test_array_mutations_load_or_fail_in_one_line(valid_dir, tmp_path, data, name):
    case = _fresh(valid_dir, tmp_path, next(_COUNTER))
    file = case / f"{name}.npy"
    kind, value = data.draw(array_mutation(name, np.load(file)))
    _write_array(file, kind, value)
    _check(case)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(cut=st.integers(0, 10**6), junk=st.binary(max_size=64))
def test_tokenizer_mutations_load_or_fail_in_one_line(valid_dir, tmp_path, cut, junk):
    case = _fresh(valid_dir, tmp_path, next(_COUNTER))
    tok = (case / "tokenizer.json").read_bytes()
    (case / "tokenizer.json").write_bytes(tok[: cut % len(tok)] + junk)
    _check(case)


def test_oversized_json_is_refused_before_reading(valid_dir, tmp_path):
    case = _fresh(valid_dir, tmp_path, next(_COUNTER))
    with open(case / "algorithm.json", "ab") as fh:
        fh.write(b" " * (17 << 20))
    with pytest.raises(AlgorithmError, match=r"algorithm.json: file: .* bytes is more than"):
        load_algorithm(case)


def test_a_mutated_directory_is_exit_code_2_and_one_line_from_the_cli(valid_dir, tmp_path):
    case = _fresh(valid_dir, tmp_path, next(_COUNTER))
    doc = json.loads((case / "algorithm.json").read_text())
    doc["rules"][1]["pattern"][1]["run"] = 10**9
    (case / "algorithm.json").write_text(json.dumps(doc))
    done = subprocess.run([sys.executable, "-m", "sae", "embed", "-", "-o", str(tmp_path / "o.parquet"),
                           "--algorithm", str(case), "--backend", "cpu"], input="a cat\n", capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if "XDG_RUNTIME_DIR" not in line]
    assert len(lines) == 1 and "rules[1].pattern[1].run: 1000000000 is out of range 0..8" in lines[0], done.stderr
    assert not (tmp_path / "o.parquet").exists()


def test_a_version_1_directory_still_loads(valid_dir, tmp_path):
    """Version 1 had no transforms and no rule marks: they default to none and ``index % 32``."""
    case = _fresh(valid_dir, tmp_path, next(_COUNTER))
    doc = json.loads((case / "algorithm.json").read_text())
    doc["version"] = 1
    for rule in doc["rules"]:
        rule.pop("mark")
        for el in rule["pattern"]:
            el.pop("mod", None)
        for up in rule["action"].get("set", []):
            up.pop("mod", None)
    (case / "algorithm.json").write_text(json.dumps(doc))
    (case / "transforms.npy").unlink()
    alg = load_algorithm(case)
    assert alg.n_transforms == 0 and [r.mark for r in alg.rules] == list(range(len(alg.rules)))
    (case / "transforms.npy").write_bytes(b"")
    doc["version"] = 2
    (case / "algorithm.json").write_text(json.dumps(doc))
    with pytest.raises(AlgorithmError, match=r"transforms\.npy: file: not a readable"):
        load_algorithm(case)


def test_transform_names_round_trip_and_must_match_the_transforms(valid_dir, tmp_path):
    from dataclasses import replace

    alg = load_algorithm(valid_dir)
    named = save_algorithm(replace(alg, transform_names=("scope", "role")), tmp_path / "named",
                           vector_dtype="float32")
    loaded = load_algorithm(named)
    assert loaded.transform_names == ("scope", "role") and loaded.transform_name(2) == "role"
    assert loaded.content_hash == replace(alg, transform_names=("scope", "role")).content_hash
    doc = json.loads((named / "algorithm.json").read_text())
    doc["transforms"] = ["one"]
    (named / "algorithm.json").write_text(json.dumps(doc))
    with pytest.raises(AlgorithmError, match=r"transforms: names 1 transforms, there are 2 \(.*transforms\.npy\)"):
        load_algorithm(named)
