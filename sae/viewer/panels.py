"""What a frame shows, laid out: header, step strip, timelines, bids, details, VM.

:func:`build_scene` turns a :class:`~sae.viewer.session.Session` and a
:class:`~sae.viewer.state.ViewState` into a :class:`~sae.viewer.scene.Scene` of a
given size. It is the only module that decides where things go and what colour
they are; it clamps the state's scroll and zoom to what the frame can show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sae.layout import Op
from sae.viewer.font import GlyphAtlas
from sae.viewer.model import (
    BID_COMMITTED,
    BID_INHIBITED,
    BID_PLAIN,
    BID_REVERTED,
    ITEM_FIELD_NAMES,
    Attempt,
    Step,
    Timeline,
)
from sae.viewer.scene import BASE, OVERLAY, Clip, Color, Scene, rect_block, rgb
from sae.viewer.session import Session
from sae.viewer.state import KEYS, MOUSE_HELP, ZOOM_LEVELS, ViewState

# -- colours ---------------------------------------------------------------------------

BACKGROUND = rgb("#15171c")
PANEL = rgb("#1d2027")
ROW_CURRENT = rgb("#2c3442")
TEXT = rgb("#e6e8eb")
DIM = rgb("#8b929c")
GREEN = rgb("#3fb950")
RED = rgb("#f85149")
YELLOW = rgb("#f2cc60")
MAGENTA = rgb("#ff3bd4")
CYAN = rgb("#56d4dd")
CHANGED = rgb("#c9d1d9")
CHIP = rgb("#343a46")
CHIP_COMMITTED = rgb("#1f6f3a")
CHIP_REVERTED = rgb("#8b2a25")
CHIP_INHIBITED = rgb("#24272e")
STEP_PAST = rgb("#4a5160")
STEP_FUTURE = rgb("#2d323c")
#: Cell colour of each opcode (brightness then follows the item's weight).
OPCODE_COLORS = {
    Op.NOP: "#4b4f58",
    Op.ACC: "#3f7fc4",
    Op.PUSH: "#9a63c9",
    Op.ADD: "#2fa596",
    Op.MUL: "#d08a2e",
    Op.EMIT: "#c2524b",
}
UNKNOWN_OPCODE = "#8a8a8a"
_OPCODE_TABLE = np.array(
    [rgb(OPCODE_COLORS.get(Op(i), UNKNOWN_OPCODE))[:3] if i in OPCODE_COLORS else rgb(UNKNOWN_OPCODE)[:3]
     for i in range(16)],
    dtype=np.float32,
)


def opcode_rgb(opcodes: np.ndarray) -> np.ndarray:
    """``(n, 3)`` base colours of opcodes (unknown ones grey)."""
    return _OPCODE_TABLE[np.minimum(opcodes.astype(np.int64), len(_OPCODE_TABLE) - 1)]


def opcode_name(op: int) -> str:
    return Op(op).name if op in Op._value2member_map_ else f"op{op}"


@dataclass
class Metrics:
    """Sizes in pixels at the frame's scale."""

    scale: float
    line: int  # text line height

    @property
    def pad(self) -> int:
        return round(8 * self.scale)

    @property
    def row(self) -> int:
        return self.line + round(8 * self.scale)

    @property
    def chip(self) -> int:
        return self.line + round(2 * self.scale)


CHIPS_PER_ANCHOR = 4


def build_scene(session: Session, state: ViewState, width: int, height: int, atlas: GlyphAtlas, scale: float = 1.0) -> Scene:
    """The frame for ``state`` at ``width`` × ``height`` pixels."""
    scene = Scene(width, height, atlas, BACKGROUND)
    m = Metrics(scale, atlas.line_height)
    timelines = session.timelines(state.text)
    state.n_texts, state.n_backends = len(session.texts), len(timelines)
    state.n_steps = timelines[0].n_steps
    state.step = min(state.step, state.n_steps)
    state.focus = min(state.focus, len(timelines) - 1)
    focus = timelines[state.focus]

    y = _header(scene, session, state, timelines, m)
    y = _step_strip(scene, state, focus, m, y)
    left = m.pad
    if session.listing or len(session.texts) > 2:
        left = _text_list(scene, session, state, m, y, round(240 * scale))
    details_h = max(round(210 * scale), int(height * 0.34))
    main_bottom = height - details_h - m.pad
    _timeline_panels(scene, session, state, timelines, m, left, y, width - m.pad, main_bottom)
    _details(scene, session, state, focus, m, left, main_bottom + m.pad, width - m.pad, height - m.pad)
    if state.help:
        _help(scene, m)
    state.reveal = False
    return scene


# -- header and step strip ---------------------------------------------------------------


def _header(scene: Scene, session: Session, state: ViewState, timelines: list[Timeline], m: Metrics) -> int:
    atlas, x, y = scene.atlas, m.pad, m.pad
    focus = timelines[state.focus]
    title = "sae view  "
    x += scene.text(x, y, title, TEXT)
    label = f"text {state.text + 1}: " if len(session.texts) > 1 else ""
    scene.text(x, y, atlas.fit(f"{label}{focus.text!r}", scene.width - x - m.pad), YELLOW)
    y += m.line + round(2 * m.scale)
    alg = session.algorithm
    committed, reverted = focus.counts()
    parts = [
        (f"{alg.name} {alg.content_hash[:8]}", DIM),
        (f"tolerance {focus.tolerance}, inhibit {focus.inhibit_steps}", DIM),
        (f"step {state.step} / {focus.n_steps}" + (" (final)" if state.step == focus.n_steps else ""), TEXT),
        (f"{committed} committed", GREEN),
        (f"{reverted} reverted", RED),
    ]
    mismatch = session.mismatch(state.text)
    if mismatch is not None:
        if mismatch.count:
            parts.append((f"CPU != GPU: {mismatch.count} cells differ", MAGENTA))
        else:
            parts.append((f"CPU = GPU (embeddings within {mismatch.embedding_max_abs:.1e})", GREEN))
    parts += [(note, YELLOW) for note in session.notes]
    parts.append(("press ? for keys", DIM))
    x = m.pad
    for text, color in parts:
        if x > scene.width - m.pad:
            break
        x += scene.text(x, y, text, color, clip=(0, 0, scene.width - m.pad, scene.height)) + round(14 * m.scale)
    return y + m.line + round(6 * m.scale)


def _step_strip(scene: Scene, state: ViewState, tl: Timeline, m: Metrics, y: int) -> int:
    """One box per row: the current step in yellow; a green or red foot for steps with
    commits or only reverts. Tests read the step from this strip."""
    rows = tl.n_steps + 1
    avail = scene.width - 2 * m.pad
    box = max(3.0, min(28 * m.scale, avail / rows))
    h = round(14 * m.scale)
    for s, step in enumerate(tl.steps):
        x = m.pad + s * box
        fill = YELLOW if s == state.step else STEP_PAST if s < state.step else STEP_FUTURE
        scene.rect(x, y, box - 1, h, fill)
        if step.attempts:
            foot = GREEN if any(a.committed for a in step.attempts) else RED
            scene.rect(x, y + h - round(3 * m.scale), box - 1, round(3 * m.scale), foot)
        scene.region(x, y, box, h, "step", s)
    return y + h + round(6 * m.scale)


def _text_list(scene: Scene, session: Session, state: ViewState, m: Metrics, top: int, width: int) -> int:
    bottom = scene.height - m.pad
    x = m.pad
    scene.rect(x, top, width, bottom - top, PANEL)
    scene.text(x + 6, top + 3, "texts: up/down, c compares", DIM)
    row = m.line + round(4 * m.scale)
    first_y = top + m.line + round(8 * m.scale)
    visible = max(1, (bottom - first_y) // row)
    start = max(0, min(state.text - visible // 2, len(session.texts) - visible))
    clip = (x, top, x + width, bottom)
    for i in range(start, min(len(session.texts), start + visible)):
        y = first_y + (i - start) * row
        if i == state.text:
            scene.rect(x, y, width, row, ROW_CURRENT, clip=clip)
        mark = "vs " if i == state.partner else ""
        color = CYAN if i == state.partner else TEXT if i == state.text else DIM
        scene.text(x + 6, y + 2, scene.atlas.fit(f"{i + 1}. {mark}{session.texts[i]}", width - 12), color, clip=clip)
        scene.region(x, y, width, row, "text", i)
    return x + width + m.pad


# -- the timelines ---------------------------------------------------------------------------


def covering_index(step: Step, pos: int | None) -> int | None:
    """The item of ``step`` whose tokens include original position ``pos``."""
    if pos is None or step.length == 0:
        return None
    start, span = step.stream["pos"].astype(np.int64), step.stream["span"].astype(np.int64)
    hit = np.flatnonzero((start <= pos) & (pos < start + span))
    return int(hit[0]) if hit.size else None


def _effective_weight(session: Session, stream: np.ndarray) -> np.ndarray:
    weights = session.algorithm.weights
    rows = np.minimum(stream["arg0"].astype(np.int64), weights.size - 1)
    return np.abs(weights[rows].astype(np.float64) * stream["arg1"].astype(np.float64) / 65536.0)


def _timeline_panels(scene: Scene, session: Session, state: ViewState, timelines: list[Timeline], m: Metrics,
                     left: int, top: int, right: int, bottom: int) -> None:
    n = len(timelines)
    gap = m.pad
    panel_w = (right - left - gap * (n - 1)) / n
    title_h = m.line + round(6 * m.scale)
    label_w = round(78 * m.scale)
    band_h = (m.line + round(6 * m.scale) + CHIPS_PER_ANCHOR * m.chip) if state.bids else 0
    grid_w = panel_w - label_w
    rows = timelines[0].n_steps + 1
    # The rows take the room they need (the bids sit right under them), at most what is left.
    grid_h = max(m.row, min(bottom - top - title_h - band_h, rows * m.row + round(4 * m.scale)))
    longest = max(max(s.length for s in tl.steps) for tl in timelines)
    if state.fit:
        fitting = [i for i, w in enumerate(ZOOM_LEVELS) if w * m.scale * max(longest, 1) <= grid_w]
        state.zoom = fitting[-1] if fitting else 0
        state.fit = False
    cw = state.cell_width * m.scale
    _clamp_scroll(state, timelines[state.focus], cw, m.row, grid_w, grid_h, longest, rows)
    mismatch = session.mismatch(state.text)
    for p, tl in enumerate(timelines):
        x0 = left + p * (panel_w + gap)
        scene.rect(x0, top, panel_w, bottom - top, PANEL)
        name = "CPU" if tl.backend == "cpu" else "GPU"
        title = f"{name}: {tl.backend_description}"
        focus_mark = "  (details below)" if p == state.focus and n > 1 else ""
        tx = x0 + 6 + scene.text(x0 + 6, top + 3, scene.atlas.fit(title, panel_w * 0.6), TEXT)
        scene.text(tx, top + 3, focus_mark, DIM)
        grid = (x0 + label_w, top + title_h, grid_w, grid_h)
        _grid(scene, session, state, tl, p, mismatch, m, grid, x0)
        if state.bids:
            _bids_band(scene, state, tl, p, mismatch, m, (x0 + label_w, top + title_h + grid_h, grid_w, band_h), x0)


def _clamp_scroll(state: ViewState, tl: Timeline, cw: float, row: int, grid_w: float, grid_h: float,
                  longest: int, rows: int) -> None:
    if state.reveal:
        y = state.step * row
        if y < state.scroll_y:
            state.scroll_y = y
        elif y + row > state.scroll_y + grid_h:
            state.scroll_y = y + row - grid_h
        index = covering_index(tl.steps[state.step], state.item)
        if index is not None:
            x = index * cw
            if x < state.scroll_x:
                state.scroll_x = x
            elif x + cw > state.scroll_x + grid_w:
                state.scroll_x = x + cw - grid_w
    state.scroll_x = float(min(max(state.scroll_x, 0.0), max(0.0, longest * cw - grid_w)))
    state.scroll_y = float(min(max(state.scroll_y, 0.0), max(0.0, rows * row - grid_h)))


def _grid(scene: Scene, session: Session, state: ViewState, tl: Timeline, panel: int, mismatch, m: Metrics,
          grid: tuple[float, float, float, float], x0: float) -> None:
    gx, gy, gw, gh = grid
    clip: Clip = (gx, gy, gx + gw, gy + gh)
    label_clip: Clip = (x0, gy, gx, gy + gh)
    cw = state.cell_width * m.scale
    sx, sy = state.scroll_x, state.scroll_y
    initial_weight = _effective_weight(session, tl.steps[0].stream)
    w_ref = float(initial_weight.max()) if initial_weight.size and initial_weight.max() > 0 else 1.0
    symbol_rows = session.algorithm.symbol_rows
    show_labels = cw >= 22 * m.scale
    gap = 1.0 if cw >= 6 else 0.0
    first_row = max(0, int(sy // m.row))
    last_row = min(len(tl.steps), math.ceil((sy + gh) / m.row))
    for s in range(first_row, last_row):
        step = tl.steps[s]
        y = gy + s * m.row - sy
        if s == state.step:
            scene.rect(x0, y, gx + gw - x0, m.row, ROW_CURRENT, clip=(x0, gy, gx + gw, gy + gh))
            scene.text(x0 + 4, y + 4, ">", YELLOW, clip=label_clip)
        committed = sum(a.committed for a in step.attempts)
        reverted = len(step.attempts) - committed
        lx = x0 + round(14 * m.scale)
        lx += scene.text(lx, y + 4, "final" if s == tl.n_steps else f"s{s}", TEXT if s == state.step else DIM,
                         clip=label_clip) + 4
        if committed:
            lx += scene.text(lx, y + 4, f"+{committed}", GREEN, clip=label_clip) + 2
        if reverted:
            scene.text(lx, y + 4, f"-{reverted}", RED, clip=label_clip)
        scene.region(gx, max(y, gy), gw, min(y + m.row, gy + gh) - max(y, gy), "row", panel, s, gx - sx, cw)
        diff = mismatch.steps[s] if mismatch is not None and s < len(mismatch.steps) else None
        n = step.length
        i0 = max(0, int(sx // cw))
        i1 = min(n, math.ceil((sx + gw) / cw))
        stream = step.stream
        if i1 > i0:
            idx = np.arange(i0, i1)
            part = stream[i0:i1]
            weight = _effective_weight(session, part)
            bright = 0.3 + 0.7 * np.clip(weight / w_ref, 0.0, 1.0)
            fill = np.ones((idx.size, 4), dtype=np.float32)
            fill[:, :3] = opcode_rgb(part["opcode"]) * bright[:, None]
            border = fill.copy()
            bw = np.zeros(idx.size, dtype=np.float32)
            changed = step.changed[i0:i1]
            border[changed] = CHANGED
            bw[changed] = max(1.0, round(m.scale))
            if diff is not None:
                bad = diff.items[i0:i1]
                border[bad] = MAGENTA
                bw[bad] = max(2.0, round(2 * m.scale))
            xs = gx + idx * cw - sx
            scene.rects(rect_block(xs + gap / 2, y + 2, cw - gap, m.row - 4, fill, border, bw, clip))
            # A vector row other than its symbol's: a rule replaced the item's vector.
            rows = np.minimum(part["symbol"].astype(np.int64), symbol_rows.size - 1)
            replaced = np.flatnonzero(part["arg0"].astype(np.int64) != symbol_rows[rows])
            if replaced.size:
                d = max(3.0, round(4 * m.scale))
                scene.rects(rect_block(xs[replaced] + cw - gap - d - 1, np.full(replaced.size, y + 3), d, d,
                                       np.tile(CYAN, (replaced.size, 1)), clip=clip))
            if show_labels:
                light = fill[:, :3].mean(axis=1) > 0.55  # dark text on light cells
                colors = np.where(light[:, None], np.float32((0.05, 0.05, 0.07, 1.0)), np.float32(TEXT))
                clips = np.stack([np.maximum(xs, gx), np.full(xs.size, gy), np.minimum(xs + cw, gx + gw),
                                  np.full(xs.size, gy + gh)], axis=1)
                fit = scene.atlas.fit
                labels = [fit(step.labels[i], cw - 6) for i in range(i0, i1)]
                scene.texts(xs + 3, np.full(xs.size, y + 4), labels, colors, clips)
        if diff is not None and diff.items.size > n:  # items only the other backend has
            ghost = np.arange(max(n, i0), min(diff.items.size, math.ceil((sx + gw) / cw)))
            if ghost.size:
                scene.rects(rect_block(gx + ghost * cw - sx, np.full(ghost.size, y + 2), cw - gap, m.row - 4,
                                       np.tile(PANEL, (ghost.size, 1)), np.tile(MAGENTA, (ghost.size, 1)), 2.0, clip))
        anchors = step.attempt_anchors  # every attempt's anchor: green committed, red reverted
        seen = (anchors >= i0) & (anchors < i1)
        if seen.any():
            colors = np.where(step.attempt_committed[seen, None], np.float32(GREEN), np.float32(RED))
            scene.rects(rect_block(gx + anchors[seen] * cw - sx, np.full(int(seen.sum()), y), cw,
                                   max(3, round(4 * m.scale)), colors, clip=clip))
        sel = covering_index(step, state.item)
        if sel is not None and i0 <= sel < i1:
            scene.rect(gx + sel * cw - sx, y + m.row - max(3, round(3 * m.scale)), cw, max(3, round(3 * m.scale)),
                       YELLOW, clip=clip)


_STATUS_NAMES = {BID_PLAIN: "bid", BID_COMMITTED: "committed", BID_REVERTED: "reverted", BID_INHIBITED: "inhibited"}
_CHIP_FILLS = np.array([CHIP, CHIP_COMMITTED, CHIP_REVERTED, CHIP_INHIBITED], dtype=np.float32)


def _bid_status(step: Step, bid: int) -> str:
    return _STATUS_NAMES[int(step.bid_status[bid])]


def _bids_band(scene: Scene, state: ViewState, tl: Timeline, panel: int, mismatch, m: Metrics,
               band: tuple[float, float, float, float], x0: float) -> None:
    """The current step's bids under their anchors, best first: green and red the winners
    that committed and reverted, dark the inhibited rules, grey the rest."""
    bx, by, bw, bh = band
    step = tl.steps[state.step]
    bids = step.bids
    title = f"bids on step {state.step}: {len(bids)} bids, potential {bids.potential}, {len(step.attempts)} winners"
    scene.text(x0 + 6, by + 3, scene.atlas.fit(title, bw + bx - x0 - 12), DIM)
    cw = state.cell_width * m.scale
    sx = state.scroll_x
    top = by + m.line + round(6 * m.scale)
    clip: Clip = (bx, by, bx + bw, by + bh)
    i0 = max(0, int(sx // cw))
    i1 = min(step.length, math.ceil((sx + bw) / cw))
    scene.region(bx, top, bw, CHIPS_PER_ANCHOR * m.chip, "row", panel, state.step, bx - sx, cw)
    if not len(bids) or i1 <= i0:
        return
    count = step.bids_per_anchor[bids.anchor]
    rank = step.bid_rank
    # The last chip of a crowded anchor says how many more there are.
    shown = (bids.anchor >= i0) & (bids.anchor < i1) & (
        (rank < CHIPS_PER_ANCHOR - 1) | ((rank == CHIPS_PER_ANCHOR - 1) & (count == CHIPS_PER_ANCHOR)))
    idx = np.flatnonzero(shown)
    xs = bx + bids.anchor[idx] * cw - sx + 0.5
    ys = top + rank[idx] * m.chip
    diff = mismatch.steps[state.step] if mismatch is not None and state.step < len(mismatch.steps) else None
    bad = diff.bids[bids.anchor[idx]] if diff is not None else np.zeros(idx.size, dtype=bool)
    fill = _CHIP_FILLS[step.bid_status[idx]]
    border = np.where(bad[:, None], np.float32(MAGENTA), fill)
    scene.rects(rect_block(xs, ys, cw - 1, m.chip - 2, fill, border, np.where(bad, 2.0, 0.0), clip))
    more = np.flatnonzero((step.bids_per_anchor > CHIPS_PER_ANCHOR) & (np.arange(step.length) >= i0)
                          & (np.arange(step.length) < i1))
    if more.size:
        scene.rects(rect_block(bx + more * cw - sx + 0.5, np.full(more.size, top + (CHIPS_PER_ANCHOR - 1) * m.chip),
                               cw - 1, m.chip - 2, np.tile(CHIP, (more.size, 1)), clip=clip))
    if cw < 22 * m.scale:
        return
    names = [tl.rule_names[r] if r < len(tl.rule_names) else f"rule{r}" for r in bids.rule[idx].tolist()]
    labels = [scene.atlas.fit(f"{score} {name}", cw - 6) for score, name in zip(bids.score[idx].tolist(), names)]
    colors = np.where((step.bid_status[idx] == BID_INHIBITED)[:, None], np.float32(DIM), np.float32(TEXT))
    clips = np.stack([np.maximum(xs, bx), np.full(xs.size, by), np.minimum(xs + cw, bx + bw), np.full(xs.size, by + bh)], axis=1)
    scene.texts(xs + 3, ys, labels, colors, clips)
    for i in more:
        x = bx + i * cw - sx
        scene.text(x + 3, top + (CHIPS_PER_ANCHOR - 1) * m.chip, f"+{step.bids_per_anchor[i] - CHIPS_PER_ANCHOR + 1}",
                   DIM, clip=(max(x, bx), by, min(x + cw, bx + bw), by + bh))


# -- details: attempts, the selected item, the VM -----------------------------------------------


def verdict(a: Attempt) -> tuple[str, Color]:
    """Why an attempt committed or reverted, as one line, and its colour."""
    sign = "<=" if a.delta <= a.threshold else ">"
    text = f"delta {a.delta} {sign} {a.score}+{a.tolerance}: {'commit' if a.committed else 'revert'}"
    if a.predicted != a.committed:
        return text + " (journal disagrees with the health test as the viewer knows it)", YELLOW
    return text, GREEN if a.committed else RED


def _details(scene: Scene, session: Session, state: ViewState, tl: Timeline, m: Metrics,
             left: int, top: int, right: int, bottom: int) -> None:
    width = right - left
    w1, w2 = round(width * 0.38), round(width * 0.32)
    columns = ((left, w1), (left + w1 + m.pad, w2 - m.pad), (left + w1 + w2 + m.pad, width - w1 - w2 - m.pad))
    for x, w in columns:
        scene.rect(x, top, w, bottom - top, PANEL)
    step = tl.steps[state.step]
    _attempts(scene, state, tl, step, m, columns[0], top, bottom)
    _item(scene, session, state, tl, step, m, columns[1], top, bottom)
    _vm(scene, session, state, tl, m, columns[2], top, bottom)


class _Lines:
    """Writes lines of text down a column until it is full."""

    def __init__(self, scene: Scene, x: float, y: float, w: float, bottom: float, m: Metrics) -> None:
        self.scene, self.x, self.y, self.w, self.bottom, self.m = scene, x, y, w, bottom, m
        self.clip = (x, y, x + w, bottom)

    @property
    def full(self) -> bool:
        return self.y + self.m.line > self.bottom

    def line(self, *parts: tuple[str, Color], tabs: tuple[float, ...] = ()) -> bool:
        if self.full:
            return False
        x = self.x
        for k, (text, color) in enumerate(parts):
            if k < len(tabs):
                x = self.x + tabs[k] * self.m.scale
            # A column ends where the next one starts.
            end = self.x + tabs[k + 1] * self.m.scale - 6 if k + 1 < len(tabs) else self.x + self.w
            x += self.scene.text(x, self.y, self.scene.atlas.fit(text, end - x), color, clip=self.clip)
        self.y += self.m.line + round(2 * self.m.scale)
        return True

    def gap(self) -> None:
        self.y += round(4 * self.m.scale)


def _attempts(scene: Scene, state: ViewState, tl: Timeline, step: Step, m: Metrics, column, top: int, bottom: int) -> None:
    x, w = column
    out = _Lines(scene, x + 6, top + 4, w - 12, bottom - 4, m)
    if state.step == tl.n_steps:
        out.line((f"final program: {step.length} items after {tl.n_steps} steps", TEXT))
        out.line(("the loop attempts nothing more: " + ("no bid is left" if not len(step.bids)
                  else "every step after this one would change nothing"), DIM))
        return
    out.line((f"step {state.step}: {len(step.attempts)} attempts on {len(step.bids)} bids, "
              f"potential P0 = {step.bids.potential}", TEXT))
    out.line(("commit iff delta (guards made - guards broken - bids offered) <= score + tolerance", DIM))
    if not step.attempts:
        rules = {int(r) for r in step.bids.rule}
        why = ("every bidding rule is inhibited" if rules and rules <= step.inhibited else "no candidate won")
        out.line((f"no winner this step: {why}", DIM))
    if step.inhibited:
        names = ", ".join(tl.rule_names[r] for r in sorted(step.inhibited) if r < len(tl.rule_names))
        out.line((f"inhibited: {names}", DIM))
    out.gap()
    tabs = (0, 34, 150, 182, 226)
    out.line(("rank", DIM), ("rule", DIM), ("at", DIM), ("score", DIM), ("why", DIM), tabs=tabs)
    selected = covering_index(step, state.item)
    ordered = sorted(step.attempts, key=lambda a: (a.anchor != selected, a.fields["rank"]))
    for k, a in enumerate(ordered):
        if out.y + 2 * m.line > out.bottom and k < len(ordered) - 1:
            out.line((f"... {len(ordered) - k} more (select an item to see its own)", DIM))
            break
        text, color = verdict(a)
        mark = YELLOW if a.anchor == selected else TEXT
        out.line((str(a.fields["rank"]), mark), (a.rule_name, mark), (str(a.anchor), mark),
                 (str(a.score), mark), (text, color), tabs=tabs)


def _item(scene: Scene, session: Session, state: ViewState, tl: Timeline, step: Step, m: Metrics, column,
          top: int, bottom: int) -> None:
    x, w = column
    out = _Lines(scene, x + 6, top + 4, w - 12, bottom - 4, m)
    index = covering_index(step, state.item)
    if index is None:
        out.line(("no item selected", TEXT))
        out.line(("click a cell, or press n / p", DIM))
        return
    item = step.stream[index]
    out.line((f"item {index} of step {state.step}: ", TEXT), (repr(step.labels[index]), YELLOW))
    fields = []
    for name in ITEM_FIELD_NAMES:
        value = int(item[name])
        if name == "opcode":
            fields.append(f"{name} {opcode_name(value)}")
        elif name == "arg1":
            fields.append(f"{name} {value} (x{value / 65536:g})")
        else:
            fields.append(f"{name} {value}")
    half = (len(fields) + 1) // 2
    for a, b in zip(fields[:half], fields[half:] + [""]):
        out.line((a, DIM), (b, DIM), tabs=(0, 130))
    out.gap()
    here = step.bids.at(index)
    out.line((f"bids here: {here.size}", TEXT))
    for b in here[:6]:
        rule = int(step.bids.rule[b])
        status = _bid_status(step, b)
        color = {"committed": GREEN, "reverted": RED, "inhibited": DIM, "bid": TEXT}[status]
        name = tl.rule_names[rule] if rule < len(tl.rule_names) else f"rule{rule}"
        out.line((f"  {name} score {int(step.bids.score[b])}", color), (status, color), tabs=(0, 170))
    out.gap()
    pos = int(item["pos"])
    history = [(s, a) for s in tl.steps for a in s.attempts
               if a.anchor < s.length and int(s.stream["pos"][a.anchor]) == pos]
    out.line((f"journal at this item: {len(history)}", TEXT))
    for s, a in history:
        if out.y + 2 * m.line > out.bottom:
            break
        text, color = verdict(a)
        out.line((f"  s{s.index} {a.rule_name}", color), (text, color), tabs=(0, 120))
    final = tl.steps[-1]
    k = covering_index(final, pos)
    if k is not None and not out.full:
        out.gap()
        c = session.contributions(state.text, tl.backend)
        share = c.share(tl.embedding)
        cos = c.cosine(tl.embedding)
        out.line((f"VM (final item {k}): {c.effect[k]}, w {c.weight[k]:.3g}, |v| {c.norm[k]:.3g}, "
                  f"cos(v, e) {cos[k]:+.3f}, share {share[k]:+.3f}", CYAN))


def _vm(scene: Scene, session: Session, state: ViewState, tl: Timeline, m: Metrics, column, top: int, bottom: int) -> None:
    x, w = column
    c = session.contributions(state.text, tl.backend)
    final = tl.steps[-1]
    n = final.length
    out = _Lines(scene, x + 6, top + 4, w - 12, bottom - 4, m)
    out.line((f"VM: {n} items, |acc| {c.acc_norm:.3g}, max stack {int(c.depth.max(initial=0))}", TEXT))
    out.line(("bars: each item's share of the embedding; below: stack depth", DIM))
    chart_h = max(round(40 * m.scale), round((bottom - top) * 0.36))
    cy, cx, cwid = out.y + 2, x + 6, w - 12
    share = c.share(tl.embedding)
    if n:
        bar = cwid / n
        peak = max(float(np.abs(share).max()), 1e-9)
        mid = cy + chart_h / 2
        heights = share / peak * (chart_h / 2)
        fill = np.ones((n, 4), dtype=np.float32)
        fill[:, :3] = opcode_rgb(final.stream["opcode"])
        ys = np.where(heights >= 0, mid - heights, mid)
        scene.rects(rect_block(cx + np.arange(n) * bar, ys, max(bar - (1 if bar > 3 else 0), 1), np.abs(heights) + 0.5,
                               fill, clip=(cx, cy, cx + cwid, cy + chart_h)))
        scene.rect(cx, mid, cwid, 1, DIM)
        depth_h = round(12 * m.scale)
        stack = max(int(c.depth.max(initial=0)), 1)
        dy = cy + chart_h + 2
        dh = c.depth / stack * depth_h
        scene.rects(rect_block(cx + np.arange(n) * bar, dy + depth_h - dh, max(bar, 1), dh,
                               np.tile(rgb("#9a63c9"), (n, 1))))
        k = covering_index(final, state.item)
        if k is not None:
            scene.rect(cx + k * bar, cy, max(bar, 2), chart_h + depth_h + 2, (0, 0, 0, 0), YELLOW, 1.0)
        for i in range(n):
            scene.region(cx + i * bar, cy, bar, chart_h + depth_h, "vm", int(final.stream["pos"][i]))
        out.y = dy + depth_h + round(6 * m.scale)
    top_items = np.argsort(-share, kind="stable")[:4]
    out.line(("largest shares: " + ", ".join(f"{final.labels[i]!r} {share[i]:+.2f}" for i in top_items), DIM))
    if state.partner is not None and state.partner != state.text:
        other = session.timeline(state.partner, tl.backend)
        cos = session.cosine(state.text, state.partner, tl.backend)
        out.gap()
        out.line((f"cos(text {state.text + 1}, text {state.partner + 1}) = {cos:+.4f}", YELLOW))
        mine = c.share(other.embedding)
        theirs = session.contributions(state.partner, tl.backend).share(tl.embedding)
        for label, drive, names in (("here", mine, final.labels), ("there", theirs, other.steps[-1].labels)):
            best = np.argsort(-np.abs(drive), kind="stable")[:4]
            out.line((f"drivers {label}: " + ", ".join(f"{names[i]!r} {drive[i]:+.3f}" for i in best), TEXT))
        out.line((f"shares of the cosine sum to it: {mine.sum():+.4f}", DIM))


def _help(scene: Scene, m: Metrics) -> None:
    entries = [(k, v) for k, v in KEYS.items()]
    line = m.line + round(2 * m.scale)
    w = round(520 * m.scale)
    h = (len(entries) + 3) * line + 2 * m.pad
    x, y = (scene.width - w) / 2, max(m.pad, (scene.height - h) / 2)
    scene.rect(x, y, w, h, rgb("#0e1014", 0.96), YELLOW, 1.0, layer=OVERLAY)
    clip = (x, y, x + w, y + h)
    scene.text(x + m.pad, y + m.pad, "keys", YELLOW, clip=clip, layer=OVERLAY)
    for k, (name, what) in enumerate(entries):
        ty = y + m.pad + (k + 1) * line
        scene.text(x + m.pad, ty, name, TEXT, clip=clip, layer=OVERLAY)
        scene.text(x + m.pad + round(90 * m.scale), ty, what, DIM, clip=clip, layer=OVERLAY)
    scene.text(x + m.pad, y + m.pad + (len(entries) + 1.5) * line, scene.atlas.fit(MOUSE_HELP, w - 2 * m.pad), DIM,
               clip=clip, layer=OVERLAY)


__all__ = ["BASE", "OVERLAY", "build_scene", "covering_index", "verdict"]
