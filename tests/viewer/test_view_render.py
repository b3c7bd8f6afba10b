"""Offscreen frames against reference images (regenerate: SAE_UPDATE_SNAPSHOTS=1 python -m pytest tests/viewer)."""

from __future__ import annotations

import numpy as np
import pytest
from viewer_helpers import REFERENCES, TEXT, UPDATE, assert_images_close, color_mask, render_skip_reason

from sae import Engine
from sae.viewer.app import Viewer
from sae.viewer.panels import MAGENTA, YELLOW
from sae.viewer.render import OFFSCREEN_FORMAT, Renderer, load_png, request_device, save_png
from sae.viewer.session import Session
from sae.viewer.state import parse_keys

pytestmark = pytest.mark.skipif(render_skip_reason() is not None, reason=str(render_skip_reason()))

SIZE = (800, 480)


@pytest.fixture(scope="module")
def renderer():
    _, device = request_device()
    return Renderer(device, OFFSCREEN_FORMAT)


def draw(renderer, viewer: Viewer, keys: str = "", size=SIZE) -> np.ndarray:
    viewer.frame(*size)
    viewer.replay(parse_keys(keys))
    return renderer.render_offscreen(viewer.frame(*size))


def _hex(color) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in color[:3])


# name: (texts, keys, listing) of each reference image
CASES = {
    "step2_item": ([TEXT], "right right n n", False),
    "final_help": ([TEXT], "end ?", False),
    "compare_list": ([TEXT, "a cat eats food", "the dog is not happy !"], "down c up n", True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_offscreen_render_matches_reference(renderer, view_alg, name, tmp_path):
    texts, keys, listing = CASES[name]
    session = Session(texts=texts, engines={"cpu": Engine(view_alg, backend="cpu", batch_size=1)}, listing=listing)
    pixels = draw(renderer, Viewer(session), keys)
    reference = REFERENCES / f"{name}.png"
    if UPDATE or not reference.exists():
        if not UPDATE:
            pytest.fail(f"no reference image {reference}; create it with SAE_UPDATE_SNAPSHOTS=1")
        REFERENCES.mkdir(exist_ok=True)
        save_png(pixels, reference)
    assert_images_close(pixels, load_png(reference), name)


def test_render_is_deterministic_and_shows_the_step(renderer, cpu_session):
    viewer = Viewer(cpu_session)
    a = draw(renderer, viewer, "right right")
    b = draw(renderer, Viewer(cpu_session), "right right")
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, draw(renderer, Viewer(cpu_session), "right"))
    # The step strip: exactly the box of step 2 is yellow.
    boxes = [r for r in viewer.scene.regions if r.target[0] == "step"]
    yellow = [r.target[1] for r in boxes
              if color_mask(a[int(r.y0) + 2 : int(r.y0) + 6, int(r.x0) + 1 : int(r.x1) - 2], _hex(YELLOW)).all()]
    assert yellow == [2]


def test_mismatching_cells_are_outlined(renderer, view_alg):
    engines = {"cpu": Engine(view_alg, backend="cpu", batch_size=1), "gpu": Engine(view_alg, backend="cpu", batch_size=1)}
    session = Session(texts=[TEXT], engines=engines)
    clean = draw(renderer, Viewer(session))
    assert not color_mask(clean, _hex(MAGENTA)).any()
    # Make the second timeline disagree in one item of step 0, as a GPU bug would.
    tl = session.timeline(0, "gpu")
    tl.steps[0].stream = tl.steps[0].stream.copy()
    tl.steps[0].stream["arg1"][1] += 1
    session._mismatches.clear()
    bad = draw(renderer, Viewer(session))
    assert color_mask(bad, _hex(MAGENTA)).sum() > 50


def test_click_selects_a_cell(renderer, cpu_session):
    viewer = Viewer(cpu_session)
    viewer.frame(*SIZE)
    row = next(r for r in viewer.scene.regions if r.target[:3] == ("row", 0, 1))
    viewer.click(row.x0 + 1, row.y0 + 2)  # the first item of step 1
    assert viewer.state.step == 1 and viewer.state.item == 0
