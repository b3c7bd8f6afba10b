"""Text for the viewer: a glyph atlas rasterized by Pillow, laid out in whole pixels.

The font is Pillow's bundled default (a FreeType font when Pillow has FreeType), so
the viewer needs no font file on any platform. It covers ASCII only: a character it has
no glyph for is shown as its Python escape (``é`` as ``\\xe9``, ``日`` as ``\\u65e5``),
exact and the same on every machine, where it used to be one blank box like any other.
Glyphs are rasterized once, on first use, into one single-channel atlas; every glyph
quad lands on whole pixels and is sampled 1:1, so text is crisp and the same image comes
out of every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: Atlas side in pixels; a full atlas starts over (the renderer re-uploads it).
ATLAS_SIZE = 1024


@dataclass(frozen=True)
class Run:
    """One laid-out string: per glyph its x offset, quad size and atlas rectangle."""

    x: np.ndarray  # (n,) float32 offset of each quad from the string's origin
    size: np.ndarray  # (n, 2) float32 quad width and height
    uv: np.ndarray  # (n, 4) float32 atlas rectangle u0, v0, u1, v1 (0..1)
    width: float  # advance of the whole string


class GlyphAtlas:
    """Glyphs of one font size, packed into a ``(ATLAS_SIZE, ATLAS_SIZE)`` uint8 image.

    ``version`` grows whenever pixels were added, so a renderer knows when to upload.
    """

    def __init__(self, size: int = 13) -> None:
        from PIL import ImageFont

        self.font = ImageFont.load_default(size=size)
        ascent, descent = self.font.getmetrics()
        self.line_height = ascent + descent
        self.pixels = np.zeros((ATLAS_SIZE, ATLAS_SIZE), dtype=np.uint8)
        self.version = 0
        self._glyphs: dict[str, tuple[float, float, float, np.ndarray]] = {}  # ch -> left, width, advance, uv
        self._cursor = [1, 1]  # next free x, y of the current shelf
        self._runs: dict[str, Run] = {}
        self.measure = lru_cache(maxsize=65536)(self._measure)
        self._missing = self._mask("\uffff")  # what the font draws for a character it lacks
        self._has: dict[str, bool] = {}

    def _mask(self, ch: str) -> tuple[bytes, tuple[int, int]]:
        mask = self.font.getmask(ch)
        return bytes(mask), mask.size

    def shown(self, text: str) -> str:
        """``text`` as the atlas draws it: characters without a glyph as their escapes."""
        out = []
        for ch in text:
            has = self._has.get(ch)
            if has is None:
                has = self._has[ch] = ch.isspace() or self._mask(ch) != self._missing
            out.append(ch if has else ascii(ch)[1:-1])
        return "".join(out)

    def _glyph(self, ch: str) -> tuple[float, float, float, np.ndarray]:
        known = self._glyphs.get(ch)
        if known is not None:
            return known
        from PIL import Image, ImageDraw

        advance = float(self.font.getlength(ch))
        left, _, right, _ = self.font.getbbox(ch)
        left, right = min(int(left), 0), max(int(right), int(np.ceil(advance)), 1)
        width, height = right - left, self.line_height
        if self._cursor[0] + width + 1 > ATLAS_SIZE:
            self._cursor = [1, self._cursor[1] + height + 1]
        if self._cursor[1] + height + 1 > ATLAS_SIZE:  # full: start over; callers re-lay their text
            self.pixels[:] = 0
            self._glyphs.clear()
            self._runs.clear()
            self._cursor = [1, 1]
        x, y = self._cursor
        image = Image.new("L", (width, height), 0)
        ImageDraw.Draw(image).text((-left, 0), ch, font=self.font, fill=255)
        self.pixels[y : y + height, x : x + width] = np.asarray(image)
        self._cursor[0] += width + 1
        uv = np.array([x, y, x + width, y + height], dtype=np.float32) / ATLAS_SIZE
        glyph = (float(left), float(width), advance, uv)
        self._glyphs[ch] = glyph
        self.version += 1
        return glyph

    def layout(self, text: str) -> Run:
        """Quads for ``text`` on one line (cached per string)."""
        run = self._runs.get(text)
        if run is not None:
            return run
        xs, sizes, uvs, pen = [], [], [], 0.0
        for ch in self.shown(text):
            left, width, advance, uv = self._glyph(ch)
            if not ch.isspace():
                xs.append(round(pen) + left)
                sizes.append((width, self.line_height))
                uvs.append(uv)
            pen += advance
        run = Run(
            np.array(xs, dtype=np.float32),
            np.array(sizes, dtype=np.float32).reshape(-1, 2),
            np.array(uvs, dtype=np.float32).reshape(-1, 4),
            float(round(pen)),
        )
        if len(self._runs) > 65536:
            self._runs.clear()
        self._runs[text] = run
        return run

    def _measure(self, text: str) -> float:
        return self.layout(text).width

    def fit(self, text: str, width: float) -> str:
        """``text``, shortened with ``..`` at the end when wider than ``width``."""
        if self.measure(text) <= width:
            return text
        lo, hi = 0, len(text)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.measure(text[:mid] + "..") <= width:
                lo = mid
            else:
                hi = mid - 1
        return text[:lo] + ".." if lo else ""
