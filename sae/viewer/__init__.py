"""``sae view``: the visual debug viewer (needs the extra ``pip install 'sae[view]'``).

It shows a text's program through annealing: a timeline of every step, the bids on
each step and why each attempted rewrite committed or reverted, what each item of
the final program adds to the embedding, and the CPU and GPU timelines side by
side. It draws through wgpu in a glfw window (:mod:`sae.viewer.window`) or offscreen
into a PNG (:func:`sae.viewer.app.render_png`).

Modules: :mod:`~sae.viewer.model` (timelines from the public engine API),
:mod:`~sae.viewer.vm` (per-item VM contributions), :mod:`~sae.viewer.session`,
:mod:`~sae.viewer.state` (keys), :mod:`~sae.viewer.panels` (layout),
:mod:`~sae.viewer.scene`, :mod:`~sae.viewer.font`, :mod:`~sae.viewer.render`.
"""

from __future__ import annotations

INSTALL_HINT = "pip install 'sae[view]'"


def require(*modules: str) -> None:
    """Import ``modules`` or raise ImportError naming the extra that provides them."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"sae view needs {name} ({exc}); install it with: {INSTALL_HINT}") from None


# Rasterizing text and writing PNGs need Pillow; every part of the viewer draws text.
require("PIL")
