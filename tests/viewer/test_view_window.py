"""A real glfw window under Xvfb (lavapipe in CI): it opens, replays keys, and its screenshot
is the offscreen render of the same step."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from viewer_helpers import TEXT, assert_images_close, image_difference, render_skip_reason

from sae.viewer.render import load_png

pytestmark = pytest.mark.skipif(render_skip_reason() is not None, reason=str(render_skip_reason()))


def sae_view(args: list[str], display: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("WAYLAND_DISPLAY", None)
    if display:
        env["DISPLAY"] = display
    return subprocess.run([sys.executable, "-m", "sae", "view", *args], env=env, capture_output=True, text=True,
                          timeout=180)


def test_window_replays_keys_and_shows_the_step(x_display, view_dir, tmp_path):
    common = [TEXT, "--algorithm", str(view_dir), "--backend", "cpu", "--size", "900x560"]
    shot = tmp_path / "window.png"
    done = sae_view([*common, "--keys", "right right n", "--screenshot", str(shot)], x_display)
    assert done.returncode == 0, done.stderr
    window = load_png(shot)
    renders = {}
    for keys in ("right right n", "right n"):
        out = tmp_path / f"{len(keys)}.png"
        done = sae_view([*common, "--keys", keys, "--png", str(out)])
        assert done.returncode == 0, done.stderr
        renders[keys] = load_png(out)
    assert_images_close(window, renders["right right n"], "window screenshot")
    # ... and not the frame of another step.
    assert image_difference(window, renders["right n"])[1] > 0.001
    assert window.shape == (560, 900, 3) and np.ptp(window) > 100


def _third_item_of_step_2(view_alg) -> tuple[int, int]:
    """Where the third item of step 2's row is drawn at 900 x 560 (from the scene's regions)."""
    from sae import Engine
    from sae.viewer.app import Viewer
    from sae.viewer.session import Session

    viewer = Viewer(Session(texts=[TEXT], engines={"cpu": Engine(view_alg, backend="cpu", batch_size=1)}))
    scene = viewer.frame(900, 560)
    region = next(r for r in scene.regions if r.target[:3] == ("row", 0, 2))
    _, _, _, origin, cw = region.target
    return int(origin + 2.5 * cw), int((region.y0 + region.y1) / 2)


def test_window_click_selects_step_and_item(x_display, view_dir, view_alg, tmp_path):
    common = [TEXT, "--algorithm", str(view_dir), "--backend", "cpu", "--size", "900x560"]
    shot, png = tmp_path / "window.png", tmp_path / "keys.png"
    # A click on the third item of step 2's row; the keys (the first item is selected at the
    # start, each n selects the next) reach the same view.
    x, y = _third_item_of_step_2(view_alg)
    done = sae_view([*common, "--keys", f"click:{x},{y}", "--screenshot", str(shot)], x_display)
    assert done.returncode == 0, done.stderr
    assert sae_view([*common, "--keys", "right right n n", "--png", str(png)]).returncode == 0
    assert_images_close(load_png(shot), load_png(png), "window after a click")


def test_no_display_is_one_line_and_exit_2(view_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run([sys.executable, "-m", "sae", "view", "a cat", "--algorithm", str(view_dir),
                           "--backend", "cpu", "--screenshot", str(tmp_path / "x.png")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "cannot open a window" in done.stderr and "--png" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.png").exists()
