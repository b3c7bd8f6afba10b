"""The viewer as one object: a session, a state, the last frame; keys and clicks in, scenes out.

The window (:mod:`sae.viewer.window`) and the headless path (:func:`render_png`)
both drive a :class:`Viewer`, so a PNG shows exactly what the window would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sae.viewer.font import GlyphAtlas
from sae.viewer.panels import build_scene
from sae.viewer.scene import Scene
from sae.viewer.session import Session
from sae.viewer.state import ScriptedInput, ViewState

#: Window and PNG size when none is given.
DEFAULT_SIZE = (1600, 900)
#: Text size in pixels at scale 1.
FONT_SIZE = 13


class Viewer:
    """Turns input into state changes and state into frames."""

    def __init__(self, session: Session, scale: float = 1.0) -> None:
        self.session = session
        self.state = ViewState(n_texts=len(session.texts), n_backends=len(session.engines))
        if len(session.texts) == 2 and not session.listing:
            self.state.partner = 1
        self.scale = scale
        self.atlas = GlyphAtlas(round(FONT_SIZE * scale))
        self.scene: Scene | None = None
        self._size = DEFAULT_SIZE

    def frame(self, width: int, height: int) -> Scene:
        """Lay out the current state at ``width`` × ``height`` pixels."""
        self._size = (width, height)
        self.scene = build_scene(self.session, self.state, width, height, self.atlas, self.scale)
        return self.scene

    def _ensure_scene(self) -> Scene:
        return self.scene if self.scene is not None else self.frame(*self._size)

    # -- input -----------------------------------------------------------------------------
    def key(self, name: str) -> None:
        self._ensure_scene()  # n and p need the current row; the first frame sets the state's bounds
        step = self.session.timeline(self.state.text, self.session.backends[self.state.focus]).steps[self.state.step]
        self.state.key(name, [int(p) for p in step.stream["pos"]])

    def click(self, x: float, y: float) -> None:
        target = self._ensure_scene().hit(x, y)
        if target and target[0] == "row":
            _, panel, s, origin, cw = target
            backend = self.session.backends[panel]
            step = self.session.timeline(self.state.text, backend).steps[s]
            index = int((x - origin) // cw)
            if not 0 <= index < step.length:
                self.state.go(s)
                return
            target = ("cell", panel, s, int(step.stream["pos"][index]))
        self.state.click(target)

    def wheel(self, dx: float, dy: float, modifiers: tuple[str, ...] = ()) -> None:
        self.state.wheel(dx, dy, modifiers)

    def replay(self, inputs: list[ScriptedInput]) -> None:
        """Apply ``--keys`` inputs in order, laying out a frame after each (as a window would)."""
        for inp in inputs:
            if inp.kind == "key":
                self.key(inp.name)
            elif inp.kind == "click":
                self.click(inp.x, inp.y)
            else:
                self.wheel(inp.x, inp.y)
            self.frame(*self._size)


def render_png(viewer: Viewer, out: str | Path, size: tuple[int, int] = DEFAULT_SIZE,
               inputs: list[ScriptedInput] = ()) -> np.ndarray:
    """Replay ``inputs`` and draw the view offscreen into ``out``; returns the pixels."""
    from sae.viewer.render import OFFSCREEN_FORMAT, Renderer, request_device, save_png

    viewer.frame(*size)
    viewer.replay(list(inputs))
    _, device = request_device()
    pixels = Renderer(device, OFFSCREEN_FORMAT).render_offscreen(viewer.frame(*size))
    save_png(pixels, out)
    return pixels
