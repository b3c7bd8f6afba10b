"""A frame as data: rectangles and glyph runs in pixels, plus the regions a click can hit.

The panels (:mod:`sae.viewer.panels`) fill a :class:`Scene`; the renderer draws it as
two instanced draws per layer. Nothing here touches the GPU, so the same scene goes
to a window, to a PNG, or to a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sae.viewer.font import GlyphAtlas

#: Floats per rectangle instance: rect(4) fill(4) border(4) border width(4) clip(4).
RECT_FLOATS = 20
#: Floats per glyph instance: rect(4) uv(4) color(4) clip(4).
GLYPH_FLOATS = 16
#: Layers drawn in order; each draws its rectangles, then its glyphs.
BASE, OVERLAY = 0, 1

Color = tuple[float, float, float, float]
Clip = tuple[float, float, float, float]
NO_CLIP: Clip = (-1e9, -1e9, 1e9, 1e9)


def rgb(hex_color: str, alpha: float = 1.0) -> Color:
    """``"#rrggbb"`` as an rgba tuple of floats."""
    value = int(hex_color.lstrip("#"), 16)
    return ((value >> 16) / 255, ((value >> 8) & 255) / 255, (value & 255) / 255, alpha)


@dataclass(frozen=True)
class Region:
    """A clickable rectangle and what it stands for (for example ``("cell", panel, step, item)``)."""

    x0: float
    y0: float
    x1: float
    y1: float
    target: tuple[Any, ...]


class _Layer:
    def __init__(self) -> None:
        self.rects: list[tuple[float, ...]] = []  # single rectangles since the last block
        self.rect_blocks: list[np.ndarray] = []
        self.glyphs: list[np.ndarray] = []

    def flush(self) -> None:
        if self.rects:
            self.rect_blocks.append(np.array(self.rects, dtype=np.float32))
            self.rects = []


class Scene:
    """Everything one frame draws, at ``width`` × ``height`` pixels."""

    def __init__(self, width: int, height: int, atlas: GlyphAtlas, background: Color) -> None:
        self.width, self.height, self.atlas = width, height, atlas
        self.background = background
        self.layers = (_Layer(), _Layer())
        self.regions: list[Region] = []

    # -- drawing ---------------------------------------------------------------------
    def rect(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        fill: Color,
        border: Color | None = None,
        border_width: float = 0.0,
        clip: Clip = NO_CLIP,
        layer: int = BASE,
    ) -> None:
        """A filled rectangle, optionally with a border drawn inside its edge."""
        if w <= 0 or h <= 0:
            return
        self.layers[layer].rects.append(
            (x, y, w, h, *fill, *(border or fill), border_width, 0.0, 0.0, 0.0, *clip)
        )

    def rects(self, block: np.ndarray, layer: int = BASE) -> None:
        """Many rectangles at once: a ``(n, RECT_FLOATS)`` array (see :func:`rect_block`)."""
        if block.size:
            lay = self.layers[layer]
            lay.flush()  # keep the drawing order: single rectangles drawn before come first
            lay.rect_blocks.append(block.astype(np.float32, copy=False))

    def text(
        self, x: float, y: float, text: str, color: Color, clip: Clip = NO_CLIP, layer: int = BASE
    ) -> float:
        """Draw ``text`` with its top left at (x, y), on whole pixels; returns its width."""
        run = self.atlas.layout(text)
        n = run.x.size
        if n:
            block = np.empty((n, GLYPH_FLOATS), dtype=np.float32)
            block[:, 0] = run.x + round(x)
            block[:, 1] = round(y)
            block[:, 2:4] = run.size
            block[:, 4:8] = run.uv
            block[:, 8:12] = color
            block[:, 12:16] = clip
            self.layers[layer].glyphs.append(block)
        return run.width

    def texts(self, x: np.ndarray, y: np.ndarray, texts: list[str], color: np.ndarray, clip: np.ndarray,
              layer: int = BASE) -> None:
        """Many strings at once: per string its top left, colour ``(n, 4)`` and clip ``(n, 4)``."""
        runs = [self.atlas.layout(t) for t in texts]
        counts = np.fromiter((r.x.size for r in runs), dtype=np.int64, count=len(runs))
        total = int(counts.sum())
        if not total:
            return
        block = np.empty((total, GLYPH_FLOATS), dtype=np.float32)
        block[:, 0] = np.concatenate([r.x for r in runs]) + np.repeat(np.round(x), counts)
        block[:, 1] = np.repeat(np.round(y), counts)
        block[:, 2:4] = np.concatenate([r.size for r in runs])
        block[:, 4:8] = np.concatenate([r.uv for r in runs])
        block[:, 8:12] = np.repeat(color, counts, axis=0)
        block[:, 12:16] = np.repeat(clip, counts, axis=0)
        self.layers[layer].glyphs.append(block)

    def region(self, x: float, y: float, w: float, h: float, *target: Any) -> None:
        """Make (x, y, w, h) clickable; :meth:`hit` returns ``target``."""
        self.regions.append(Region(x, y, x + w, y + h, target))

    # -- reading back ------------------------------------------------------------------
    def hit(self, x: float, y: float) -> tuple[Any, ...] | None:
        """The target of the last region drawn under (x, y), or None."""
        for r in reversed(self.regions):
            if r.x0 <= x < r.x1 and r.y0 <= y < r.y1:
                return r.target
        return None

    def rect_array(self, layer: int) -> np.ndarray:
        lay = self.layers[layer]
        lay.flush()
        blocks = lay.rect_blocks
        return np.concatenate(blocks) if blocks else np.zeros((0, RECT_FLOATS), dtype=np.float32)

    def glyph_array(self, layer: int) -> np.ndarray:
        lay = self.layers[layer]
        return np.concatenate(lay.glyphs) if lay.glyphs else np.zeros((0, GLYPH_FLOATS), dtype=np.float32)


def rect_block(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | float,
    h: np.ndarray | float,
    fill: np.ndarray,
    border: np.ndarray | None = None,
    border_width: np.ndarray | float = 0.0,
    clip: Clip = NO_CLIP,
) -> np.ndarray:
    """``(n, RECT_FLOATS)`` rectangles from per-rectangle arrays (``fill`` is ``(n, 4)``)."""
    n = np.size(x)
    block = np.zeros((n, RECT_FLOATS), dtype=np.float32)
    block[:, 0], block[:, 1], block[:, 2], block[:, 3] = x, y, w, h
    block[:, 4:8] = fill
    block[:, 8:12] = fill if border is None else border
    block[:, 12] = border_width
    block[:, 16:20] = clip
    return block
