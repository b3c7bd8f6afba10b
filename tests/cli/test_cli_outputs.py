"""Outputs the commands must refuse before any work, end to end: an output that is an
input, a dataset OUT left behind by a refused run, a text that is not UTF-8, and an
undefined correlation in ``--json``."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
from cli_helpers import one_line_error

from sae.cli import main


def test_an_output_that_is_the_input_is_refused_and_the_input_kept(tmp_path, tiny_dir, capsys):
    table = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["the cat", "a dog"], "id": [1, 2]}), table)
    before = table.read_bytes()
    assert main(["embed", str(table), "-o", str(table), "--algorithm", str(tiny_dir), "--backend", "cpu"]) == 2
    assert "is also an input" in one_line_error(capsys) and table.read_bytes() == before
    texts = tmp_path / "in.txt"
    texts.write_text("the cat\n")
    assert main(["profile", str(texts), "--trace", str(texts), "--algorithm", str(tiny_dir), "--backend", "cpu"]) == 2
    assert "is also an input" in one_line_error(capsys) and texts.read_text() == "the cat\n"


def test_teach_refuses_to_write_over_its_corpus(tmp_path, capsys):
    """``sae teach in.parquet -o in.parquet`` replaced the corpus by its teacher file (or a
    link to it); refused before the teacher is loaded."""
    table = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["the cat", "a dog"], "id": [1, 2]}), table)
    before = table.read_bytes()
    (tmp_path / "link.parquet").symlink_to(table)
    for out in (table, tmp_path / "link.parquet"):
        assert main(["teach", str(table), "-o", str(out)]) == 2
        assert "is also an input" in one_line_error(capsys) and table.read_bytes() == before

def test_a_refused_dataset_run_leaves_no_output_directory(tmp_path, tiny_dir, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    assert main(["embed", str(tmp_path / "empty"), "-o", str(out), "--algorithm", str(tiny_dir)]) == 2
    assert "no Parquet files" in one_line_error(capsys) and not out.exists()


def test_a_text_argument_that_is_not_utf8_is_one_line(tiny_dir, capsys):
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert main(["trace", bad, "--algorithm", str(tiny_dir), "--backend", "cpu"]) == 2
    assert "TEXT: invalid UTF-8" in one_line_error(capsys)


def test_an_undefined_correlation_is_null_in_json_and_said(tmp_path, tiny_dir, capsys):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("g\tf\ty\t1\t3.0\tthe cat\ta dog\ng\tf\ty\t2\t3.0\tnot happy\tthe city\n")
    assert main(["eval", str(pairs), "--json", "--algorithm", str(tiny_dir), "--backend", "cpu"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)  # strict JSON: no bare NaN
    assert doc["spearman"] is None and doc["pearson"] is None
    assert "correlations are undefined" in err
