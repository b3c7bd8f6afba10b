"""The Algorithm format: round trip, content hash, and one clear error per bad field."""

import json
import shutil

import numpy as np
import pytest
from tiny import make_tiny

from sae.algorithm import LoopParams, load_algorithm, save_algorithm
from sae.errors import AlgorithmError
from sae.layout import Capacities


def test_round_trip_keeps_the_content_hash(tiny_alg, tiny_dir):
    loaded = load_algorithm(tiny_dir)
    assert loaded.content_hash == tiny_alg.content_hash
    assert loaded.rules == tiny_alg.rules
    assert load_algorithm(tiny_dir / "algorithm.json").content_hash == tiny_alg.content_hash


def test_hash_changes_with_any_part(tiny_alg):
    assert make_tiny(seed=1).content_hash != tiny_alg.content_hash
    assert make_tiny(rules=()).content_hash != tiny_alg.content_hash
    assert make_tiny(params=LoopParams(max_steps=3)).content_hash != tiny_alg.content_hash


def test_json_is_canonical(tiny_dir, tmp_path):
    again = save_algorithm(load_algorithm(tiny_dir), tmp_path / "again", vector_dtype="float32")
    assert (again / "algorithm.json").read_bytes() == (tiny_dir / "algorithm.json").read_bytes()


@pytest.fixture
def broken(tiny_dir, tmp_path):
    """A writable copy of the tiny Algorithm to break."""
    path = tmp_path / "broken"
    shutil.copytree(tiny_dir, path)
    return path


def edit_json(path, change):
    doc = json.loads((path / "algorithm.json").read_text())
    change(doc)
    (path / "algorithm.json").write_text(json.dumps(doc))


def expect_error(path, file_part, field, reason, caps=None):
    with pytest.raises(AlgorithmError) as info:
        load_algorithm(path, **({"caps": caps} if caps else {}))
    err = info.value
    assert file_part in err.file and err.field == field and reason in err.reason, str(err)
    assert "\n" not in str(err)


def test_bad_json(broken):
    (broken / "algorithm.json").write_text("{ not json")
    expect_error(broken, "algorithm.json", "file", "not valid JSON")


def test_unknown_opcode(broken):
    edit_json(broken, lambda d: d["rules"][3]["pattern"][0].update(opcode="JUMP"))
    expect_error(broken, "algorithm.json", "rules[3].pattern[0].opcode", "unknown opcode 'JUMP'")


def test_symbol_id_out_of_range(broken):
    edit_json(broken, lambda d: d["rules"][0]["pattern"][0].update(symbol=10**6))
    expect_error(broken, "algorithm.json", "rules[0].pattern[0].symbol", "out of range")


def test_rules_over_capacity(broken):
    expect_error(broken, "algorithm.json", "rules", "exceed the capacity of 4", caps=Capacities(rules=4))


def test_steps_over_capacity(broken):
    edit_json(broken, lambda d: d["params"].update(max_steps=65))
    expect_error(broken, "algorithm.json", "params.max_steps", "out of range 0..64")


def test_unknown_field(broken):
    edit_json(broken, lambda d: d["rules"][1].update(colour="red"))
    expect_error(broken, "algorithm.json", "rules[1].colour", "unknown field")


def test_unknown_class(broken):
    edit_json(broken, lambda d: d["rules"][0]["pattern"][0].update(classes=["verb"]))
    expect_error(broken, "algorithm.json", "rules[0].pattern[0].classes", "unknown class 'verb'")


def test_bad_permutation(broken):
    edit_json(broken, lambda d: d["rules"][5]["action"].update(perm=[0, 0]))
    expect_error(broken, "algorithm.json", "rules[5].action.perm", "permutation")


def test_merge_with_gap(broken):
    edit_json(broken, lambda d: d["rules"][1]["pattern"][1].update(gap=1))
    expect_error(broken, "algorithm.json", "rules[1].pattern[1]", "cannot have gaps or runs")


def test_wrong_format_version(broken):
    edit_json(broken, lambda d: d.update(version=99))
    expect_error(broken, "algorithm.json", "version", "unsupported version 99")


def test_nan_vectors(broken):
    v = np.load(broken / "vectors.npy")
    v[3, 1] = np.nan
    np.save(broken / "vectors.npy", v)
    expect_error(broken, "vectors.npy", "values", "NaN")


def test_vector_row_out_of_range(broken):
    rows = np.load(broken / "symbol_rows.npy")
    rows[5] = 10**6
    np.save(broken / "symbol_rows.npy", rows)
    expect_error(broken, "symbol_rows.npy", "[5]", "out of range")


def test_unsorted_phrases(broken):
    p = np.load(broken / "phrases.npy")
    np.save(broken / "phrases.npy", p[::-1].copy())
    expect_error(broken, "phrases.npy", "order", "sorted")


def test_pickled_array_is_refused(broken):
    np.save(broken / "weights.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    expect_error(broken, "weights.npy", "dtype", "is object")


def test_missing_array(broken):
    (broken / "phrase_bonus.npy").unlink()
    expect_error(broken, "phrase_bonus.npy", "file", "missing")


def test_missing_directory(tmp_path):
    expect_error(tmp_path / "nope", "nope", "path", "no such Algorithm directory")
    (tmp_path / "afile").write_text("x")
    expect_error(tmp_path / "afile", "afile", "path", "is a file, not an Algorithm directory")


def test_an_algorithm_output_replaces_only_an_algorithm(tmp_path, tiny_alg):
    from sae.algorithm import check_algorithm_output, load_algorithm, save_algorithm_atomically
    from sae.errors import InputError

    out = tmp_path / "alg"
    save_algorithm_atomically(tiny_alg, out, "--out", vector_dtype="float32")
    save_algorithm_atomically(tiny_alg, out, "--out", vector_dtype="float32")  # an Algorithm directory is replaced whole
    assert load_algorithm(out).content_hash == tiny_alg.content_hash
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alg"]  # no temporary or old copy left
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"holds 'notes\.txt', not only an Algorithm's files; --out replaces"):
        save_algorithm_atomically(tiny_alg, out, "--out", vector_dtype="float32")
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(InputError, match=r"which this command needs; name another --out"):
        check_algorithm_output(tmp_path / "new", "--out", inputs=(tmp_path / "new" / "run.sqlite",))
    with pytest.raises(InputError, match=r"no such directory \(for --out\)"):
        check_algorithm_output(tmp_path / "missing" / "alg", "--out")


def test_what_a_killed_writer_left_beside_an_algorithm_is_cleared(tmp_path, tiny_alg):
    """A ``kill -9`` while ``--out`` was written left ``.OUT.tmp-PID`` (13 MB for the
    default) that no later run removed (an adversarial pass); one killed between the two
    renames left the previous Algorithm set aside as ``.OUT.old-PID`` and no ``OUT``."""
    import os
    import subprocess
    import sys
    from dataclasses import replace

    from sae.algorithm import load_algorithm, save_algorithm_atomically

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has ended
    out = tmp_path / "alg"
    save_algorithm_atomically(tiny_alg, out, "--out", vector_dtype="float32")
    (tmp_path / f".alg.tmp-{pid}").mkdir()
    (tmp_path / f".alg.tmp-{pid}" / "vectors.npy").write_bytes(b"partial")
    (tmp_path / f".alg.tmp-{os.getpid()}x").mkdir()  # not a process id: not ours to touch
    save_algorithm_atomically(tiny_alg, out, "--out", vector_dtype="float32")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".alg.tmp-{os.getpid()}x", "alg"]
    out.rename(tmp_path / f".alg.old-{pid}")  # killed between the renames: the old one set aside
    save_algorithm_atomically(replace(tiny_alg, name="next"), out, "--out", vector_dtype="float32")
    assert load_algorithm(out).name == "next"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".alg.tmp-{os.getpid()}x", "alg"]


def test_save_algorithm_checks_first_and_writes_whole(tmp_path, tiny_alg, monkeypatch):
    """A failed save left the new algorithm.json beside the old arrays (a mixed Algorithm
    that loaded without error), a bad vector_dtype wrote files the loader refuses, and a
    directory of other files had the Algorithm mixed into it."""
    from dataclasses import replace

    from sae.errors import InputError, SaeError

    out = tmp_path / "alg"
    save_algorithm(tiny_alg, out, vector_dtype="float32")
    other = replace(tiny_alg, name="other", rules=tiny_alg.rules[:1])
    for dtype in ("bogus", "float64", "int8"):
        with pytest.raises(ValueError, match=r"vector_dtype must be one of \('float16', 'float32'\)"):
            save_algorithm(other, out, vector_dtype=dtype)
    with pytest.raises(TypeError, match="expected an Algorithm, got str"):
        save_algorithm("not an algorithm", tmp_path / "never")
    assert not (tmp_path / "never").exists()
    assert load_algorithm(out).content_hash == tiny_alg.content_hash  # untouched by the refusals

    def failing_save(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr("sae.algorithm.np.save", failing_save)
        with pytest.raises(SaeError, match="writing the Algorithm failed: No space left on device"):
            save_algorithm(other, out, vector_dtype="float32")
    assert load_algorithm(out).content_hash == tiny_alg.content_hash  # the old one, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alg"]  # no temporary copy left
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"holds 'notes\.txt'"):
        save_algorithm(tiny_alg, tmp_path / "mine")
    for name in ("", "."):
        with pytest.raises(ValueError, match="name a directory to write"):
            save_algorithm(tiny_alg, name)
    assert load_algorithm(save_algorithm(tiny_alg, tmp_path / "a" / "b")).name == tiny_alg.name  # parents made


@pytest.mark.parametrize("name", [".", "", "..", "sub/..", "/"])
def test_an_algorithm_output_that_is_the_current_directory_is_refused_first(tmp_path, tiny_alg, monkeypatch, name):
    """'sae distill --out .' in an empty directory (or one holding an Algorithm) passed the
    check, fitted for as long as it takes, then failed to rename the current directory, with
    'the saved Algorithm does not load back identically'."""
    from sae.algorithm import check_algorithm_output, save_algorithm_atomically
    from sae.errors import InputError

    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    monkeypatch.chdir(work / "sub")
    message = r"names the Algorithm directory to write by a path that ends in its name"
    with pytest.raises(InputError, match=message):
        check_algorithm_output(name, "--out")
    with pytest.raises(InputError, match=message):
        save_algorithm_atomically(tiny_alg, name, "--out")
    assert not any((work / "sub").iterdir())


def test_distill_out_dot_is_refused_before_anything_is_read(tmp_path, monkeypatch, capsys):
    from sae.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["distill", "--shared", str(tmp_path / "no-shared"), "--out", "."]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sae distill: error: .: --out names the Algorithm directory to write by a path that ends in its "
                   "name, not the current directory, its parent or the root"], err


@pytest.mark.parametrize(("rule", "reason"), [
    ("rule far score 10: [word] ~4 [word] => set 0 arg1=1", "rules[0].pattern[1].gap: 4 is out of range 0..3"),
    ("rule long score 10: [word]+9 => set 0 arg1=1", "rules[0].pattern[0].run: 9 is out of range 0..8"),
    ("rule loud score 40000: [word] => set 0 arg1=1", "rules[0].score: 40000 is out of range 1..32767"),
    ("rule wide score 10: [word] [word] [word] [word] [word] => set 0 arg1=1", "must be a list of 1..4 elements"),
])
def test_rules_built_in_python_are_checked_as_loaded_ones_are(tmp_path, tiny_alg, rule, reason):
    """parse_rules and dataclasses.replace skipped the loader: the Engine ran a gap past the
    capacity (or failed with a bare IndexError), and save_algorithm wrote a directory the
    loader then refused."""
    from dataclasses import replace

    from sae import Engine
    from sae.algorithm import check_rules
    from sae.population import PopulationEvaluator
    from sae.rules_text import parse_rules

    bad = replace(tiny_alg, rules=parse_rules(rule))
    for attempt in (lambda: check_rules(bad), lambda: Engine(bad, backend="cpu"),
                    lambda: save_algorithm(bad, tmp_path / "bad"),
                    lambda: PopulationEvaluator(tiny_alg, backend="cpu").evaluate([bad], [[1, 2]])):
        with pytest.raises(AlgorithmError) as info:
            attempt()
        assert str(info.value) == f"Algorithm 'tiny': {reason}" or str(info.value).endswith(reason)
    assert not (tmp_path / "bad").exists()
    check_rules(tiny_alg)  # the loaded one passes
    with pytest.raises(AlgorithmError, match=r"params\.max_steps"):
        check_rules(replace(tiny_alg, params=LoopParams(max_steps=10_000)))


def test_arrays_given_by_the_caller_are_copied_and_frozen(tiny_alg):
    """An Algorithm kept the caller's writable arrays: a change after an Engine was made
    reached the numpy path's weights but not its vectors, nor the GPU, skipped the checks
    (an IndexError in numpy) and left content_hash stale."""
    from dataclasses import replace

    from sae import Engine

    weights, rows = tiny_alg.weights.copy(), tiny_alg.symbol_rows.copy()
    alg = replace(tiny_alg, weights=weights, symbol_rows=rows)
    engine = Engine(alg, backend="cpu")
    before, digest = engine.embed(["the cat is not happy ."]), alg.content_hash
    weights[:] = 0
    rows[:] = 10**6
    assert engine.embed(["the cat is not happy ."]).tobytes() == before.tobytes()
    assert alg.content_hash == digest == replace(alg).content_hash
    for name in ("vectors", "weights", "symbol_rows", "symbol_classes", "phrases", "phrase_bonus", "transforms"):
        assert not getattr(alg, name).flags.writeable, name
    assert tiny_alg.weights is replace(tiny_alg, name="again").weights  # frozen arrays are not copied again


def test_an_algorithm_pickles_after_an_engine_has_used_it(tiny_alg):
    """Its cached word cache holds a lock: pickling failed once an Engine had tokenized with it."""
    import pickle

    from sae import Engine

    Engine(tiny_alg, backend="cpu").embed(["the cat"])
    copy = pickle.loads(pickle.dumps(tiny_alg))
    assert copy.content_hash == tiny_alg.content_hash
    assert Engine(copy, backend="cpu").embed(["the cat"]).tobytes() == Engine(tiny_alg, backend="cpu").embed(
        ["the cat"]).tobytes()
