"""End to end: ``sae compare`` and ``sae info``."""

from __future__ import annotations

import json

from gpu_helpers import skip_without_gpu

from sae.cli import main

skip_without_gpu()


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["adapters"] and info["chosen"] is not None
    a = info["adapters"][info["chosen"]]
    assert a["backend"] in {"Vulkan", "Metal", "D3D12", "OpenGL"} and a["usable"]
    assert isinstance(a["timestamp_query"], bool)
    assert "max-storage-buffer-binding-size" in a["limits"]


def test_info_table(capsys):
    assert main(["info"]) == 0
    assert "--backend gpu uses adapter" in capsys.readouterr().out


def test_compare_builtin_texts_agree(capsys, tiny_dir):
    assert main(["compare", "--algorithm", str(tiny_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["equal"] and report["texts"] > 5
    assert [s["stage"] for s in report["stages"]] == ["bids", "items", "lengths", "journal", "embeddings"]
    assert report["stages"][-1]["max_abs_diff"] <= 1e-5


def test_compare_input_file_and_table(capsys, tiny_dir, tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("the new york city\n\nnot a good dog !\n" * 5)
    assert main(["compare", str(f), "--algorithm", str(tiny_dir), "--batch-size", "4"]) == 0
    assert "journal" in capsys.readouterr().out


def test_compare_checks_a_long_texts_windows(capsys, tiny_dir, tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("the cat\n" + "not a good dog ! " * 40 + "\n")
    assert main(["compare", str(f), "--algorithm", str(tiny_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["equal"] and report["texts"] == 2 and report["documents"] > 2


def test_compare_empty_input(capsys, tiny_dir, tmp_path):
    f = tmp_path / "empty.txt"
    f.write_text("")
    assert main(["compare", str(f), "--algorithm", str(tiny_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["texts"] == 0


def test_compare_reports_a_mismatch(capsys, tiny_dir, monkeypatch):
    from sae.gpu import GpuBackend

    real = GpuBackend.execute
    monkeypatch.setattr(GpuBackend, "execute", lambda self, batch: real(self, batch) * 0.5)
    assert main(["compare", "--algorithm", str(tiny_dir), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    emb = report["stages"][-1]
    assert not report["equal"] and not emb["equal"] and emb["differing"]


def test_compare_without_adapter_exits_2(capsys, tiny_dir):
    assert main(["compare", "--algorithm", str(tiny_dir), "--adapter", "no-such-gpu"]) == 2
    assert "no GPU adapter matches 'no-such-gpu'" in capsys.readouterr().err


def test_bad_gpu_environment_is_one_line_and_exit_2(capsys, tiny_dir, tmp_path, monkeypatch):
    f = tmp_path / "in.txt"
    f.write_text("the cat runs\n")
    out = tmp_path / "out.parquet"
    for env, value in (("SAE_GPU_CHUNK", "abc"), ("SAE_GPU_CHUNK", "0"), ("SAE_POWER_PREFERENCE", "fast")):
        with monkeypatch.context() as m:
            m.setenv(env, value)
            code = main(["embed", str(f), "-o", str(out), "--algorithm", str(tiny_dir), "--backend", "gpu"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and env in err and repr(value) in err and "\n" not in err, (env, value, err)
        assert not out.exists()
