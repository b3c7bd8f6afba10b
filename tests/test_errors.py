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
