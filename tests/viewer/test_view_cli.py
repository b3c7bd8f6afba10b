"""``sae view`` from the command line: --png, --keys and every bad input."""

from __future__ import annotations

import sys

import pytest
from viewer_helpers import TEXT, render_skip_reason

from sae.cli import main
from sae.viewer.render import load_png

needs_render = pytest.mark.skipif(render_skip_reason() is not None, reason=str(render_skip_reason()))


@needs_render
def test_png_writes_the_view(view_dir, tmp_path):
    out = tmp_path / "view.png"
    args = ["view", TEXT, "--algorithm", str(view_dir), "--backend", "cpu", "--png", str(out), "--size", "800x500"]
    assert main([*args, "--keys", "right n"]) == 0
    assert load_png(out).shape == (500, 800, 3)


@needs_render
def test_png_with_input_list_and_two_texts(view_dir, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("a cat eats food\nthe dog is not happy !\n")
    out = tmp_path / "list.png"
    assert main(["view", "--input", str(texts), "--algorithm", str(view_dir), "--backend", "cpu",
                 "--png", str(out), "--size", "800x500"]) == 0
    assert main(["view", TEXT, "a cat", "--algorithm", str(view_dir), "--backend", "cpu",
                 "--png", str(out), "--size", "800x500"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a", "b", "c"], "at most two TEXTs"),
        ([], "no text to view"),
        (["a", "--keys", "right fly"], "unknown key 'fly'"),
        (["a", "--png", "x.png", "--screenshot", "y.png"], "give one of them"),
        (["a", "--png", "missing/x.png"], "does not exist"),
        (["--input", "nothing.txt"], "no such file"),
        (["a", "--algorithm", "no-such-dir"], "no such Algorithm"),
        (["a", "--png", "x.txt"], "--png writes a PNG image; name the file .png"),
        (["caf\udce9", "--png", "x.png"], "TEXT: invalid UTF-8"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["view", *args, "--backend", "cpu"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_input_keeps_an_existing_png(tmp_path, monkeypatch, capsys, view_dir):
    out = tmp_path / "keep.png"
    out.write_bytes(b"old")
    assert main(["view", TEXT, "--algorithm", str(view_dir), "--backend", "cpu", "--png", str(out),
                 "--keys", "warp"]) == 2
    assert out.read_bytes() == b"old"


def test_invalid_utf8_input_names_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xc3\x28\n")
    assert main(["view", "--input", str(bad), "--backend", "cpu"]) == 2
    assert "line 2: invalid UTF-8" in capsys.readouterr().err


@pytest.mark.parametrize("missing", ["PIL", "glfw"])
def test_missing_extra_names_the_install_command(missing, monkeypatch, capsys):
    for name in list(sys.modules):
        if name == missing or name.startswith(f"{missing}.") or name.startswith("sae.viewer"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)  # import raises ImportError
    assert main(["view", "some text", "--backend", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'sae[view]'" in err and missing in err


@needs_render
def test_empty_text_views_an_empty_program(view_dir, tmp_path):
    out = tmp_path / "empty.png"
    assert main(["view", "", "--algorithm", str(view_dir), "--backend", "cpu", "--png", str(out),
                 "--size", "640x400", "--keys", "right n end"]) == 0
    assert load_png(out).shape == (400, 640, 3)


def test_no_matching_adapter_shows_the_cpu_alone_or_fails_for_gpu(view_dir, capsys):
    from sae.errors import BackendUnavailableError
    from sae.viewer.session import open_session

    session = open_session(["a cat"], str(view_dir), "both", adapter="no-such-adapter-anywhere")
    assert session.backends == ["cpu"] and "GPU not shown" in session.notes[0]
    with pytest.raises(BackendUnavailableError):
        open_session(["a cat"], str(view_dir), "gpu", adapter="no-such-adapter-anywhere")
