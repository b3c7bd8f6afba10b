"""Where the viewer is (text, step, selected item, zoom, scroll) and how keys and clicks move it.

Pure Python: the window, the headless renderer and the tests all drive the same
:class:`ViewState` through :meth:`ViewState.key` and :meth:`ViewState.click`.
``--keys`` takes the names in :data:`KEYS` (and ``click:X,Y``, ``wheel:DX,DY``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sae.errors import InputError

#: Cell widths the zoom keys step through, in pixels at scale 1.
ZOOM_LEVELS = (6, 10, 16, 24, 36, 48, 64, 80, 104, 136)
DEFAULT_ZOOM = 6  # index into ZOOM_LEVELS: 64 px

#: Every key the viewer knows, with what it does (``?`` shows this list).
KEYS: dict[str, str] = {
    "right": "next step",
    "space": "next step",
    "left": "previous step",
    "backspace": "previous step",
    "home": "first step",
    "end": "last step (the final program)",
    "n": "select the next item of the row",
    "p": "select the previous item of the row",
    "escape": "clear the selection (quits when nothing is selected)",
    "+": "zoom in",
    "-": "zoom out",
    "0": "zoom to fit the longest row",
    "b": "show or hide the bids of the step",
    "g": "describe the other backend's timeline below",
    "up": "previous text of the list",
    "down": "next text of the list",
    "c": "compare with the text of the list now shown (or stop comparing)",
    "tab": "switch to the compared text",
    "pageup": "scroll the rows up",
    "pagedown": "scroll the rows down",
    "?": "show or hide this help",
    "q": "quit",
}
#: Names ``--keys`` also accepts for keys awkward to type in a shell.
ALIASES = {"plus": "+", "minus": "-", "question": "?", "equal": "+", "=": "+", "esc": "escape", "bs": "backspace"}
MOUSE_HELP = "click a cell: select that step and item; wheel: scroll rows; shift+wheel: scroll the row; ctrl+wheel: zoom"


@dataclass
class ViewState:
    """The viewer's position. ``item`` is an original token position, so a selection
    follows its item through merges and moves (see :func:`sae.viewer.model.changed_items`)."""

    n_texts: int = 1
    text: int = 0
    partner: int | None = None  # the text compared with, if any
    step: int = 0
    n_steps: int = 0  # rows of the current text's timeline minus one (set by the session)
    item: int | None = None
    focus: int = 0  # which backend's timeline the details describe
    n_backends: int = 1
    zoom: int = DEFAULT_ZOOM
    fit: bool = False  # zoom to fit on the next layout
    scroll_x: float = 0.0
    scroll_y: float = 0.0
    reveal: bool = True  # scroll the current step and selected item into view on the next layout
    bids: bool = True
    help: bool = False
    quit: bool = False

    @property
    def cell_width(self) -> float:
        return float(ZOOM_LEVELS[self.zoom])

    # -- keys --------------------------------------------------------------------------
    def key(self, name: str, row_positions: list[int] | None = None) -> None:
        """Apply key ``name`` (see :data:`KEYS`). ``row_positions`` are the original
        positions of the current row's items, for ``n`` and ``p``."""
        name = ALIASES.get(name, name)
        if name in ("right", "space"):
            self.go(self.step + 1)
        elif name in ("left", "backspace"):
            self.go(self.step - 1)
        elif name == "home":
            self.go(0)
        elif name == "end":
            self.go(self.n_steps)
        elif name in ("n", "p") and row_positions:
            self._select_neighbour(row_positions, 1 if name == "n" else -1)
        elif name == "escape":
            if self.item is None and not self.help:
                self.quit = True
            self.item, self.help = None, False
        elif name == "+":
            self.zoom = min(self.zoom + 1, len(ZOOM_LEVELS) - 1)
            self.reveal = True
        elif name == "-":
            self.zoom = max(self.zoom - 1, 0)
            self.reveal = True
        elif name == "0":
            self.fit = True
        elif name == "b":
            self.bids = not self.bids
        elif name == "g":
            self.focus = (self.focus + 1) % self.n_backends
        elif name in ("up", "down"):
            self.choose_text(self.text + (1 if name == "down" else -1))
        elif name == "c":
            self.partner = None if self.partner == self.text else self.text
        elif name == "tab" and self.partner is not None:
            self.text, self.partner = self.partner, self.text
            self._new_text()
        elif name == "pageup":
            self.scroll_y -= 200
        elif name == "pagedown":
            self.scroll_y += 200
        elif name == "?":
            self.help = not self.help
        elif name == "q":
            self.quit = True

    def go(self, step: int) -> None:
        self.step = max(0, min(step, self.n_steps))
        self.reveal = True

    def choose_text(self, index: int) -> None:
        index = max(0, min(index, self.n_texts - 1))
        if index != self.text:
            self.text = index
            self._new_text()

    def _new_text(self) -> None:
        self.step, self.item, self.scroll_x, self.scroll_y, self.reveal = 0, None, 0.0, 0.0, True

    def _select_neighbour(self, positions: list[int], direction: int) -> None:
        if self.item is None:
            index = 0 if direction > 0 else len(positions) - 1
        else:
            # The item selected, or the one covering its position after a merge.
            after = [i for i, p in enumerate(positions) if p <= self.item]
            here = after[-1] if after else 0
            index = max(0, min(here + direction, len(positions) - 1))
        self.item = positions[index]
        self.reveal = True

    # -- mouse -------------------------------------------------------------------------
    def click(self, target: tuple | None) -> None:
        """Apply a click on a scene region's target (see :meth:`sae.viewer.scene.Scene.hit`)."""
        if not target:
            return
        kind = target[0]
        if kind == "cell":
            _, panel, step, pos = target
            self.step, self.item, self.focus = step, pos, panel
        elif kind == "text":
            self.choose_text(target[1])
        elif kind == "step":
            self.go(target[1])
        elif kind == "vm":
            self.item = target[1]
            self.go(self.n_steps)

    def wheel(self, dx: float, dy: float, modifiers: tuple[str, ...] = ()) -> None:
        if "Control" in modifiers:
            self.zoom = max(0, min(self.zoom + (1 if dy < 0 else -1), len(ZOOM_LEVELS) - 1))
        elif "Shift" in modifiers or dx:
            self.scroll_x += dx if dx else dy
        else:
            self.scroll_y += dy


# -- scripted input (--keys) ------------------------------------------------------------


@dataclass(frozen=True)
class ScriptedInput:
    """One entry of ``--keys``: a key name, or a click or wheel turn at a point."""

    kind: str  # "key", "click" or "wheel"
    name: str = ""
    x: float = 0.0
    y: float = 0.0


def parse_keys(script: str) -> list[ScriptedInput]:
    """``"right right n click:120,300 wheel:0,100"`` as inputs; unknown names are an InputError."""
    out = []
    for token in script.split():
        if token.startswith(("click:", "wheel:")):
            kind, _, coords = token.partition(":")
            try:
                x, y = (float(v) for v in coords.split(","))
            except ValueError:
                raise InputError(f"--keys: {token!r}: expected {kind}:X,Y with two numbers") from None
            out.append(ScriptedInput(kind, x=x, y=y))
            continue
        name = ALIASES.get(token.lower(), token if len(token) == 1 else token.lower())
        if name not in KEYS:
            known = ", ".join(sorted(set(KEYS) | set(ALIASES)))
            raise InputError(f"--keys: unknown key {token!r} (known: {known}, click:X,Y, wheel:DX,DY)")
        out.append(ScriptedInput("key", name))
    return out
