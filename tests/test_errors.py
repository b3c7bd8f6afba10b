"""sae.errors: failures reach the user as one line and an exit code, in the CLI and the tools alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sae.errors import AlgorithmError, InputError, SaeError, run_script

ROOT = Path(__file__).resolve().parents[1]


def test_run_script_turns_an_error_into_one_line_and_its_exit_code(capsys):
    def bad_input() -> int:
        raise InputError("data/x.csv: no such file")

    def failed() -> int:
        raise SaeError("the paths disagree")

    assert run_script(bad_input, "tool.py") == 2
    assert capsys.readouterr().err == "tool.py: error: data/x.csv: no such file\n"
    assert run_script(failed, "tool.py") == 1
    assert capsys.readouterr().err == "tool.py: error: the paths disagree\n"
    assert run_script(lambda: 0) == 0 and run_script(lambda: None) == 0


def test_run_script_leaves_other_exceptions_alone():
    def broken() -> int:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        run_script(broken)


def test_an_algorithm_error_names_file_field_and_reason():
    exc = AlgorithmError("alg/algorithm.json", "rules[0].score", "must be an integer")
    assert str(exc) == "alg/algorithm.json: rules[0].score: must be an integer" and exc.exit_code == 2


@pytest.mark.parametrize("tool", ["tools/distill/ceiling.py", "tools/distill/ablate.py", "tools/bench_cpu.py"])
def test_a_tool_given_a_wrong_shared_directory_says_so_in_one_line(tool, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / tool), "--shared", str(tmp_path / "nowhere")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "XDG_RUNTIME_DIR" not in line]
    assert lines == [f"{Path(tool).name}: error: {tmp_path / 'nowhere'}/data/stsb/sts-dev.csv: no such file"]


@pytest.mark.parametrize("option", ["--rounds", "--repeats", "--profile-passes"])
def test_bench_cpu_refuses_a_count_below_one_in_one_line(option, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "tools/bench_cpu.py"), "--shared", str(tmp_path), option, "0"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[-1] == f"bench_cpu.py: error: argument {option}: must be >= 1, got 0"
    assert "Traceback" not in proc.stderr


class _FailingStream:
    """A standard output whose writes fail with ``error``."""

    def __init__(self, error: OSError) -> None:
        self.error = error

    def write(self, text: str) -> int:
        raise self.error

    def flush(self) -> None:
        raise self.error


def test_a_standard_output_that_fails_is_one_line_and_exit_1(monkeypatch, capsys):
    """``> /dev/full`` gave a traceback (OSError: [Errno 28]) from whichever print came first."""
    import errno

    monkeypatch.setattr(sys, "stdout", _FailingStream(OSError(errno.ENOSPC, "No space left on device")))
    assert run_script(lambda: print("result"), "tool.py") == 1
    assert capsys.readouterr().err == "tool.py: error: standard output: writing failed: No space left on device\n"


def test_a_reader_that_went_away_ends_the_script_silently(monkeypatch, capsys):
    """``| head``: the reader closed the pipe; a traceback (BrokenPipeError) before."""
    monkeypatch.setattr(sys, "stdout", _FailingStream(BrokenPipeError(32, "Broken pipe")))
    assert run_script(lambda: print("result"), "tool.py") == 1
    assert capsys.readouterr().err == ""


def test_a_broken_pipe_that_is_not_standard_output_is_not_hidden():
    def broken() -> int:
        raise BrokenPipeError(32, "Broken pipe")  # a socket's, say: not the reader of stdout

    with pytest.raises(BrokenPipeError):
        run_script(broken)


@pytest.mark.parametrize("stdout", ["/dev/full", "closed pipe"])
def test_the_cli_writing_to_a_full_or_closed_standard_output(stdout, tmp_path, tiny_dir):
    import os

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("g\tf\ty\t1\t3.0\tthe cat\ta dog\ng\tf\ty\t2\t1.0\tnot happy\tthe city\n")
    argv = [sys.executable, "-m", "sae", "eval", str(pairs), "--json", "--algorithm", str(tiny_dir), "--backend", "cpu"]
    if stdout == "/dev/full":
        with open("/dev/full", "w") as full:
            proc = subprocess.run(argv, stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120)
        expected = ["sae eval: error: standard output: writing failed: No space left on device"]
    else:
        read, write = os.pipe()
        os.close(read)  # the reader has gone before the first write
        try:
            proc = subprocess.run(argv, stdout=write, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120)
        finally:
            os.close(write)
        expected = []
    lines = [line for line in proc.stderr.splitlines() if "backend: cpu" not in line and "XDG_RUNTIME_DIR" not in line]
    assert proc.returncode == 1 and lines == expected, proc.stderr
