"""``sae demo`` on the bundled sample: a table, never a failure when no GPU exists."""

from __future__ import annotations

import sae.engine
from sae.cli import main
from sae.errors import BackendUnavailableError


def test_demo_cpu(capsys):
    assert main(["demo", "--backend", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "sentences/s (cpu)" in out and "Spearman on the sample" in out and "40 pairs" in out


def test_demo_without_gpu_says_so(monkeypatch, capsys):
    def no_gpu(*args, **kwargs):
        raise BackendUnavailableError("no adapter here")

    real = sae.engine.make_backend

    def fake(name, *args, **kwargs):
        return no_gpu() if name == "gpu" else real(name, *args, **kwargs)

    monkeypatch.setattr(sae.engine, "make_backend", fake)
    assert main(["demo"]) == 0
    assert "no GPU backend/adapter" in capsys.readouterr().out
    # --backend gpu names the GPU: without one it is an error (exit 2), as for every command;
    # it printed the table and exited 0.
    assert main(["demo", "--backend", "gpu"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == "sae demo: error: no adapter here"


def test_demo_bundled_sample_is_not_msr():
    from sae.cli.demo import SAMPLE

    text = SAMPLE.read_text(encoding="utf-8")
    assert "MSRpar" not in text and "MSRvid" not in text
    assert sum(1 for line in text.splitlines() if line and not line.startswith("#")) == 40


def test_demo_says_when_the_correlation_is_undefined(tmp_path, tiny_dir, caplog):
    pairs = tmp_path / "same.tsv"
    pairs.write_text("g\tf\ty\t1\t3\tthe cat\ta cat\ng\tf\ty\t2\t3\ta dog runs\tthe dog\n")  # one gold score
    assert main(["demo", "--pairs", str(pairs), "--algorithm", str(tiny_dir), "--backend", "cpu"]) == 0
    assert "the correlations are undefined" in caplog.text
