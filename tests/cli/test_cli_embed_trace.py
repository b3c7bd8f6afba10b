"""End to end: ``sae embed`` and ``sae trace`` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from sae.cli import COMMANDS, build_parser, main

TEXTS = ["a cat eats food", "", "new york city players", "the dog is not happy !", "   "]


@pytest.fixture
def txt(tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("\n".join(TEXTS) + "\n")
    return f


def embed(args, tiny_dir):
    return main(["embed", *args, "--algorithm", str(tiny_dir), "--backend", "cpu"])


def test_embed_writes_rows_in_input_order(txt, tmp_path, tiny_dir):
    out = tmp_path / "out.parquet"
    assert embed([str(txt), "-o", str(out)], tiny_dir) == 0
    table = pq.read_table(out)
    assert table.column("text").to_pylist() == TEXTS
    emb = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
    assert emb.shape == (5, 8)
    assert not emb[1].any() and not emb[4].any()  # empty texts: the zero vector


def test_embed_long_texts_in_windows_or_truncated(tmp_path, tiny_dir, caplog):
    from sae import Engine

    long = "the new york city players , not very big cat dog runs " * 30  # over 128 tokens
    source = tmp_path / "in.txt"
    source.write_text(f"a dog\n{long}\n")
    rows = {}
    for mode in ("window", "truncate"):
        out = tmp_path / f"{mode}.parquet"
        caplog.clear()
        assert embed([str(source), "-o", str(out), "--long-texts", mode], tiny_dir) == 0
        rows[mode] = np.asarray(pq.read_table(out).column("embedding").to_pylist(), dtype=np.float32)
        expected = Engine(tiny_dir, backend="cpu", long_texts=mode).embed(["a dog", long])
        assert rows[mode].tobytes() == expected.tobytes()
        assert ("truncated" in caplog.text) == (mode == "truncate")
    assert rows["window"][0].tobytes() == rows["truncate"][0].tobytes()
    assert rows["window"][1].tobytes() != rows["truncate"][1].tobytes()


def test_embed_twice_gives_identical_bytes(txt, tmp_path, tiny_dir):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert embed([str(txt), "-o", str(a), "--batch-size", "2"], tiny_dir) == 0
    assert embed([str(txt), "-o", str(b)], tiny_dir) == 0
    assert a.read_bytes() == b.read_bytes()


def test_embed_reads_stdin(tmp_path, tiny_dir, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"cat\ndog\n")))
    out = tmp_path / "out.parquet"
    assert embed(["-", "-o", str(out)], tiny_dir) == 0
    assert pq.read_table(out).column("text").to_pylist() == ["cat", "dog"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: (d / "in.txt").write_bytes(b"ok\n\xc3\x28 bad\n"), "line 2: invalid UTF-8"),
        (lambda d: None, "no such file"),
    ],
)
def test_bad_input_exits_2_and_keeps_existing_output(setup, message, tmp_path, tiny_dir, capsys):
    setup(tmp_path)
    out = tmp_path / "out.parquet"
    out.write_bytes(b"precious")
    assert embed([str(tmp_path / "in.txt"), "-o", str(out)], tiny_dir) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert out.read_bytes() == b"precious"


def test_unwritable_output_exits_2_before_work(txt, tmp_path, tiny_dir, capsys):
    assert embed([str(txt), "-o", str(tmp_path / "no" / "dir" / "out.parquet")], tiny_dir) == 2
    assert "does not exist" in capsys.readouterr().err


def test_invalid_algorithm_is_one_line(txt, tmp_path, tiny_dir, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_dir, bad)
    doc = json.loads((bad / "algorithm.json").read_text())
    doc["rules"][0]["pattern"][0]["opcode"] = "JUMP"
    (bad / "algorithm.json").write_text(json.dumps(doc))
    out = tmp_path / "out.parquet"
    assert main(["embed", str(txt), "-o", str(out), "--algorithm", str(bad), "--backend", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "algorithm.json: rules[0].pattern[0].opcode: unknown opcode 'JUMP'" in err
    assert not out.exists()


def test_trace_shows_the_journal(tiny_dir, capsys):
    assert main(["trace", "the new york city player ##s , not very big", "--algorithm", str(tiny_dir),
                 "--backend", "cpu", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["tokens"][:2] == ["the", "new"]
    assert {j["outcome"] for j in doc["journal"]} <= {"committed", "reverted"}
    assert any(j["rule"] == "negate" for j in doc["journal"])
    assert main(["trace", "not very big", "--algorithm", str(tiny_dir), "--backend", "cpu"]) == 0
    assert "journal" in capsys.readouterr().out


def test_trace_shows_text_as_it_is(tiny_dir, capsys):
    """Square brackets in the text are text: "[/]" was a rich MarkupError traceback and
    "[red]x" printed as a red "x"."""
    assert main(["trace", "hello [/] world [red]x", "--algorithm", str(tiny_dir), "--backend", "cpu"]) == 0
    assert "'hello [/] world [red]x'" in capsys.readouterr().out


def test_every_command_has_help(capsys):
    parser = build_parser()
    names = parser._subparsers._group_actions[0].choices  # the registered commands
    assert {"embed", "trace"} <= set(names) <= set(COMMANDS)
    for name in names:
        assert main([name, "--help"]) == 0  # returned, so that a failure to write it is one line and exit 1
        assert "usage: sae " + name in capsys.readouterr().out


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["embed"])
    assert info.value.code == 2


def test_console_script_prints_no_traceback(tmp_path, tiny_dir):
    result = subprocess.run(
        [sys.executable, "-m", "sae", "embed", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "o.parquet"),
         "--algorithm", str(tiny_dir), "--backend", "cpu"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "missing.txt: no such file" in result.stderr
