"""``sae eval`` end to end on the tiny Algorithm (and on STS-B dev when ../shared is there)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from shared_data import SHARED_DATA, needs_shared

from sae.cli import main
from sae.engine import Engine
from sae.teacher import write_teacher

PAIRS = [
    (5.0, "the cat runs", "the cat runs"),
    (3.0, "a big dog", "a small dog"),
    (1.0, "new york city", "happy man"),
    (0.5, "red house", "sad woman eats food"),
]


@pytest.fixture
def pairs_file(tmp_path):
    f = tmp_path / "pairs.tsv"
    f.write_text("".join(f"g\tf\t2024\t{i}\t{s}\t{a}\t{b}\n" for i, (s, a, b) in enumerate(PAIRS)), encoding="utf-8")
    return f


def test_eval_json(pairs_file, tiny_dir, tmp_path, capsys):
    # A "teacher" that is the tiny Algorithm itself: mean cosine exactly 1.
    texts = list(dict.fromkeys([t for _, a, b in PAIRS for t in (a, b)]))
    write_teacher(tmp_path / "t.parquet", texts, Engine(str(tiny_dir), backend="cpu").embed(texts), {})
    code = main(["eval", str(pairs_file), "--json", "--algorithm", str(tiny_dir), "--backend", "cpu",
                 "--teacher", str(tmp_path / "t.parquet")])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["pairs"] == 4 and doc["sentences"] == len(texts)
    assert -1.0 <= doc["spearman"] <= 1.0
    assert doc["teacher_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert doc["backend"] == "cpu" and doc["algorithm"] == "tiny"


def test_eval_table(pairs_file, tiny_dir, capsys):
    assert main(["eval", str(pairs_file), "--algorithm", str(tiny_dir), "--backend", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "Spearman" in out and "sentences/s" in out


def test_eval_reports_what_the_rules_add(pairs_file, tiny_dir, capsys):
    """--rules-add: the same Algorithm with its rules removed, scored beside it, and the
    difference (issue 9's measure, on any pairs file)."""
    from sae.algorithm import load_algorithm
    from sae.evaluate import evaluate, read_pairs

    assert main(["eval", str(pairs_file), "--json", "--rules-add", "--algorithm", str(tiny_dir),
                 "--backend", "cpu"]) == 0
    doc = json.loads(capsys.readouterr().out)
    alg = load_algorithm(tiny_dir)
    assert alg.rules  # the tiny Algorithm has rules to remove
    plain = evaluate(Engine(alg.without_rules(), backend="cpu"), read_pairs(pairs_file))
    assert doc["without_rules"]["spearman"] == plain.spearman
    assert doc["without_rules"]["pearson"] == plain.pearson != doc["pearson"]  # not the engine with rules again
    assert doc["rules_add"] == doc["spearman"] - plain.spearman
    assert main(["eval", str(pairs_file), "--rules-add", "--algorithm", str(tiny_dir), "--backend", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "rules removed" in out and "rules add (Spearman)" in out


def test_eval_missing_file_exits_2(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nope.tsv"), "--backend", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sae eval: error:") and "no such file" in err and len(err.splitlines()) == 1


@needs_shared
def test_eval_dev_with_teacher_json(capsys):
    dev = SHARED_DATA / "stsb" / "sts-dev.csv"
    teacher = SHARED_DATA / "teacher" / "teacher-minilm-dev.parquet"
    assert main(["eval", str(dev), "--json", "--backend", "cpu", "--teacher", str(teacher)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["pairs"] == 1500 and doc["sentences"] == 2910 and doc["teacher_missing"] == 0
    assert doc["spearman"] >= 0.82
    assert doc["teacher_cosine"] > 0.7
    assert np.isfinite(doc["sentences_per_second"])


def test_teach_rejects_a_zero_batch_size(tmp_path, capsys):
    import pytest

    from sae.cli import main

    with pytest.raises(SystemExit) as info:
        main(["teach", str(tmp_path / "c.txt"), "-o", str(tmp_path / "t.parquet"), "--batch-size", "0"])
    assert info.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_eval_reads_pairs_from_stdin(pairs_file, tiny_dir, monkeypatch, capsys):
    """'sae eval -' said '-: no such file', though embed and teach read '-' as stdin."""
    import io

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(pairs_file.read_bytes())))
    assert main(["eval", "-", "--json", "--algorithm", str(tiny_dir), "--backend", "cpu"]) == 0
    from_stdin = json.loads(capsys.readouterr().out)
    assert main(["eval", str(pairs_file), "--json", "--algorithm", str(tiny_dir), "--backend", "cpu"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert from_stdin["pairs_file"] == "-" and from_stdin["spearman"] == from_file["spearman"]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"g\tf\ty\t1\tfive\ta\tb\n")))
    assert main(["eval", "-", "--algorithm", str(tiny_dir), "--backend", "cpu"]) == 2
    assert capsys.readouterr().err.strip() == "sae eval: error: <stdin>: line 1: score 'five' is not a number"
