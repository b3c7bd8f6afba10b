"""Bad inputs and a bad environment found by an adversarial pass over the commands, each
a traceback (or a silent failure) before: one line, and exit 2 for bad input, 1 for a
failed job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_helpers import one_line_error

from sae.cli import main

PAIRS = "g\tf\ty\ti\t1\tthe cat\ta cat\ng\tf\ty\ti\t4\ta dog runs\ta dog is running\n"


def sae(*args: str, shell: str = "", **kwargs) -> subprocess.CompletedProcess:
    """The CLI in a process of its own (standard streams closed or full need one)."""
    command = " ".join([f"'{sys.executable}'", "-m", "sae", *(f"'{a}'" for a in args), shell])
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, **kwargs)


def test_a_name_too_long_is_one_line_for_inputs_and_outputs(tmp_path, tiny_dir, capsys, monkeypatch):
    # Path.exists() raises for a name over the system's limit (as for a directory that
    # cannot be entered): a traceback in every command that took a path.
    monkeypatch.chdir(tmp_path)
    long = "e" * 300
    (tmp_path / "t.txt").write_text("the cat\n")
    (tmp_path / "pairs.csv").write_text(PAIRS)
    for args, name in ((["eval", f"{long}.csv"], long), (["embed", f"{long}.txt", "-o", "o.parquet"], long),
                       (["embed", "t.txt", "-o", f"{long}.parquet"], long),
                       (["eval", "pairs.csv", "--teacher", f"{long}.parquet"], long)):
        assert main([*args, "--algorithm", str(tiny_dir), "--backend", "cpu"]) == 2, args
        line = one_line_error(capsys)
        assert name in line and ("cannot" in line or "no such" in line or "too long" in line), line
    # A name the system takes but the temporary file beside it would not: refused up front.
    name = "f" * 245 + ".parquet"
    assert main(["embed", "t.txt", "-o", name, "--algorithm", str(tiny_dir), "--backend", "cpu"]) == 2
    assert "the file name has 253 bytes, at most 239" in one_line_error(capsys)
    assert not list(tmp_path.glob(".f*"))


def test_an_empty_name_is_one_line_and_reads_nothing(tmp_path, tiny_dir, capsys, monkeypatch):
    """An empty name was the current directory: ``sae embed ''`` embedded every Parquet
    file below it as a dataset, ``sae profile ''`` the built-in sample, and the others
    said ": is a directory" or "algorithm.json: file: missing" (an adversarial pass)."""
    monkeypatch.chdir(tmp_path)
    pq.write_table(pa.table({"text": ["the cat"]}), tmp_path / "x.parquet")
    (tmp_path / "t.txt").write_text("the cat\n")
    alg = ["--algorithm", str(tiny_dir), "--backend", "cpu"]
    for args, said in ((["embed", "", "-o", "out", *alg], "INPUT is empty"),
                       (["embed", "t.txt", "-o", "", *alg], "an empty name where an output file was expected"),
                       (["profile", "", "--trace", "t.json", *alg], "an empty name where a .txt, .parquet or"),
                       (["eval", "", *alg], "an empty name where an STS pairs file was expected"),
                       (["embed", "t.txt", "-o", "o.parquet", "--algorithm", ""],
                        "'': path: an empty name; name an Algorithm directory"),
                       (["lineage", ""], "an empty name where a run database was expected")):
        assert main(args) == 2, args
        assert said in one_line_error(capsys), args
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.txt", "x.parquet"]


def test_tables_with_odd_schemas_or_damaged_texts_are_one_line(tmp_path, tiny_dir, capsys):
    """Found by an adversarial pass: two columns named 'text' were a KeyError, a column name
    that is not UTF-8 a UnicodeDecodeError, and string offsets past the data were read as
    they were (texts of stray bytes) or a SystemError."""
    texts = pa.array(["the cat", "a dog", ""])
    pq.write_table(pa.Table.from_arrays([texts, texts], names=["text", "text"]), tmp_path / "dup.parquet")
    with pa.ipc.new_file(str(tmp_path / "dup.arrow"), pa.schema([("text", pa.string())] * 2)) as f:
        f.write_table(pa.Table.from_arrays([texts, texts], names=["text", "text"]))
    pq.write_table(pa.table({"text": texts, "zzq": [1, 2, 3]}), tmp_path / "name.parquet", store_schema=False)
    data = (tmp_path / "name.parquet").read_bytes()
    (tmp_path / "name.parquet").write_bytes(data.replace(b"zzq", b"\xffzq"))
    with pa.ipc.new_file(str(tmp_path / "offsets.arrow"), pa.schema([("text", pa.string())])) as f:
        f.write_table(pa.table({"text": texts}))
    offsets = np.array([0, 7, 12, 12], np.int32).tobytes()
    data = (tmp_path / "offsets.arrow").read_bytes()
    assert data.count(offsets) == 1
    (tmp_path / "offsets.arrow").write_bytes(data.replace(offsets, np.array([0, 7, 12, 16], np.int32).tobytes()))
    (tmp_path / "pairs.tsv").write_text(PAIRS)
    alg = ["--algorithm", str(tiny_dir), "--backend", "cpu"]
    for args, said in (
        (["embed", str(tmp_path / "dup.parquet"), "-o", str(tmp_path / "o.parquet")],
         "dup.parquet: 2 columns are named 'text'"),
        (["compare", str(tmp_path / "dup.arrow")], "dup.arrow: 2 columns are named 'text'"),
        (["compare", str(tmp_path / "dup.parquet")], "dup.parquet: 2 columns are named 'text'"),
        (["embed", str(tmp_path / "name.parquet"), "-o", str(tmp_path / "o.parquet")],
         "name.parquet: its schema names a column in bytes that are not UTF-8"),
        (["compare", str(tmp_path / "name.parquet")], "name.parquet: its schema names a column in bytes"),
        (["eval", str(tmp_path / "pairs.tsv"), "--teacher", str(tmp_path / "name.parquet")],
         "name.parquet: its schema names a column in bytes"),
        (["compare", str(tmp_path / "offsets.arrow")], "offsets.arrow: column 'text' is damaged (In chunk 0: "),
    ):
        assert main([*args, *alg] if args[0] != "compare" else [*args, "--algorithm", str(tiny_dir)]) == 2, args
        assert said in one_line_error(capsys), args
    assert not (tmp_path / "o.parquet").exists()


def test_pairs_scores_in_other_digits_and_undefined_genres(tmp_path, tiny_dir, capsys):
    from sae.errors import InputError
    from sae.evaluate import read_pairs

    for score in ("\u0663", "\uff11"):  # Arabic-Indic 3, full-width 1: float() reads them
        (tmp_path / "p.tsv").write_text(f"g\tf\ty\ti\t{score}\tthe cat\ta cat\n")
        with pytest.raises(InputError, match=r"score .* is not a number"):
            read_pairs(tmp_path / "p.tsv")
    (tmp_path / "p.tsv").write_text(PAIRS + "h\tf\ty\ti\t4\tthe dog\ta dog\nh\tf\ty\ti\t4\tthe cat\tthe dog\n")
    assert main(["eval", str(tmp_path / "p.tsv"), "--algorithm", str(tiny_dir), "--backend", "cpu"]) == 0
    err = capsys.readouterr().err  # the overall figure is defined, genre h's is not
    assert "the correlation of 'h' is undefined (its gold scores or cosines are all equal" in err


def test_tables_read_as_sae_embed_reads_them(tmp_path, tiny_dir, capsys):
    """profile, compare and eval --teacher refused dictionary-encoded texts that embed takes,
    and invalid UTF-8 in a table's texts was a UnicodeDecodeError's traceback."""
    from sae.io import read_texts

    dictionary = tmp_path / "dict.parquet"
    pq.write_table(pa.table({"text": pa.array(["the cat", "a dog", "the cat"]).dictionary_encode()}), dictionary)
    assert read_texts(str(dictionary)) == ["the cat", "a dog", "the cat"]
    bad = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(np.array([0, 2, 6], np.int32).tobytes()),
                                                 pa.py_buffer(b"s1caf\xe9")])
    broken = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"text": bad}), broken)
    assert main(["profile", str(broken), "--trace", str(tmp_path / "t.json"), "--algorithm", str(tiny_dir),
                 "--backend", "cpu"]) == 2
    assert one_line_error(capsys).endswith("bad.parquet: column 'text': invalid UTF-8 in row 2")
    assert not (tmp_path / "t.json").exists()
    from sae.teacher import read_teacher

    teacher = tmp_path / "teacher.parquet"
    rows = np.eye(2, 8, dtype=np.float32)
    pq.write_table(pa.table({"text": bad, "embedding": pa.FixedSizeListArray.from_arrays(rows.ravel(), 8)}), teacher)
    with pytest.raises(Exception, match=r"column 'text': invalid UTF-8 in row 2"):
        read_teacher(teacher)


def test_an_unreadable_pairs_file_is_one_line(tmp_path, tiny_dir, capsys, monkeypatch):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(PAIRS)

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)  # chmod 000 does not stop root, who runs CI
    assert main(["eval", str(pairs), "--algorithm", str(tiny_dir), "--backend", "cpu"]) == 2
    assert one_line_error(capsys).endswith("pairs.csv: cannot read (Permission denied)")


def test_an_os_error_naming_a_file_is_one_line_wherever_it_is_raised(capsys):
    from sae.errors import run_script

    def missing():
        raise FileNotFoundError(2, "No such file or directory", "/nowhere/x")

    def full():
        raise OSError(28, "No space left on device", "/tmp/out.parquet")

    assert run_script(missing, "sae x") == 2
    assert one_line_error(capsys) == "sae x: error: /nowhere/x: No such file or directory"
    assert run_script(full, "sae x") == 1  # the job's failure, not the input's
    assert one_line_error(capsys) == "sae x: error: /tmp/out.parquet: No space left on device"
    with pytest.raises(OSError, match="no file"):  # not the user's: keeps its traceback
        run_script(lambda: (_ for _ in ()).throw(OSError("no file")), "sae x")


def test_closed_standard_streams(tmp_path, tiny_dir):
    algorithm = ["--algorithm", str(tiny_dir), "--backend", "cpu"]
    for args in (["eval", "-"], ["embed", "-", "-o", str(tmp_path / "x.parquet")]):
        result = sae(*args, *algorithm, shell="<&-")
        assert result.returncode == 2 and result.stderr.strip().endswith(
            "-: standard input is closed; give a file, or pipe the input in"), result.stderr
        assert "Traceback" not in result.stderr
    result = sae("info", "--json", shell=">&-")
    # (some wgpu versions log their Vulkan probing on stderr first)
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1] == "sae info: error: standard output is closed"
    assert "Traceback" not in result.stderr
    (tmp_path / "t.txt").write_text("the cat\n")
    result = sae("embed", str(tmp_path / "t.txt"), "-o", str(tmp_path / "c.parquet"), *algorithm, shell="2>&-")
    assert result.returncode == 0 and (tmp_path / "c.parquet").exists()  # it died before any work


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_help_and_version_that_cannot_be_written_are_one_line_and_exit_1():
    for args in (["--help"], ["--version"], ["embed", "--help"]):
        result = sae(*args, shell=">/dev/full")
        assert result.returncode == 1, args
        assert result.stderr.strip() == "sae: error: standard output: writing failed: No space left on device"
    assert sae("--version").returncode == 0


def test_an_algorithm_whose_values_overflow_is_refused_not_written_as_nan(tmp_path, tiny_dir, capsys):
    import shutil

    huge = tmp_path / "huge"
    shutil.copytree(tiny_dir, huge)
    weights = np.load(huge / "weights.npy")
    np.save(huge / "weights.npy", np.full_like(weights, 3e38))  # finite, so the loader takes it
    (tmp_path / "t.txt").write_text("the cat\na dog\n")
    out = tmp_path / "o.parquet"
    assert main(["embed", str(tmp_path / "t.txt"), "-o", str(out), "--algorithm", str(huge), "--backend", "cpu"]) == 2
    line = one_line_error(capsys)
    assert "embeds to NaN or infinity" in line and "overflow float32" in line and not out.exists()
