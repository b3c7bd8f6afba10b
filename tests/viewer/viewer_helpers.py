"""Shared by the viewer tests: the example text and Algorithm, and image comparison."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sae.algorithm import LoopParams

#: A text of the tiny vocabulary whose annealing commits a merge and other rewrites and reverts some.
TEXT = "the new york city players was not happy !"
#: The loop of the viewer's example Algorithm (tests/tiny.py, make_view_example).
PARAMS = LoopParams(max_steps=16, tolerance=0, inhibit_steps=2)
REFERENCES = Path(__file__).parent / "references"
#: Set to 1 to rewrite the reference images instead of comparing with them.
UPDATE = os.environ.get("SAE_UPDATE_SNAPSHOTS") == "1"


def render_skip_reason() -> str | None:
    """None when wgpu can give the viewer an adapter to draw with, else why not."""
    try:
        import wgpu

        adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
    except Exception as exc:  # no Vulkan/Metal/DX12 driver at all
        return f"no wgpu adapter to draw with ({exc})"
    return None if adapter is not None else "no wgpu adapter to draw with"


def image_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean absolute difference per channel, and the fraction of pixels off by more than 32."""
    if a.shape != b.shape:
        return float("inf"), 1.0
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return float(diff.mean()), float((diff.max(axis=2) > 32).mean())


def assert_images_close(actual: np.ndarray, expected: np.ndarray, name: str,
                        mean_tol: float = 0.5, fraction_tol: float = 0.002) -> None:
    mean, fraction = image_difference(actual, expected)
    assert mean <= mean_tol and fraction <= fraction_tol, (
        f"{name}: differs from its reference (mean |diff| {mean:.3f} > {mean_tol} or {fraction:.4f} of "
        f"pixels off > {fraction_tol}); if the change is intended, regenerate with "
        "SAE_UPDATE_SNAPSHOTS=1 python -m pytest tests/viewer"
    )


def color_mask(pixels: np.ndarray, hex_color: str, tol: int = 2) -> np.ndarray:
    """Pixels of exactly (within ``tol``) colour ``#rrggbb``."""
    value = int(hex_color.lstrip("#"), 16)
    rgb = np.array([value >> 16, (value >> 8) & 255, value & 255], dtype=np.int16)
    return (np.abs(pixels.astype(np.int16) - rgb) <= tol).all(axis=2)
