"""The one loader of the WGSL passes in ``shaders/``.

In a checkout the shaders are the top-level ``shaders/`` folder; in an installed
wheel they are package data at ``sae/shaders`` (hatch ``force-include``). Every pass
is compiled as ``wgsl_prelude(caps) + const WG + common.wgsl + <pass>.wgsl``, so
layouts, opcodes and capacities are written once, in :mod:`sae.layout`, and the
workgroup size once, in :mod:`sae.gpu.device`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import sae
from sae.layout import Capacities, wgsl_prelude

#: The passes, in the order one annealing step runs them (then the VM).
PASSES = ("bids", "potential", "select", "apply", "health", "vm", "normalize")
COMMON = "common"


def shader_dir() -> Path:
    """The folder holding the ``.wgsl`` files (wheel first, then the checkout)."""
    package = Path(sae.__file__).resolve().parent
    for candidate in (package / "shaders", package.parent / "shaders"):
        if (candidate / f"{COMMON}.wgsl").is_file():
            return candidate
    raise FileNotFoundError(
        f"sae's WGSL shaders are missing: looked in {package / 'shaders'} and {package.parent / 'shaders'}"
    )


@lru_cache(maxsize=None)
def _read(name: str) -> str:
    path = shader_dir() / f"{name}.wgsl"
    return path.read_text(encoding="utf-8")


def shader_source(name: str, caps: Capacities) -> str:
    """The full WGSL text of pass ``name`` for these capacities."""
    if name not in PASSES:
        raise ValueError(f"shader_source: unknown pass {name!r} (known: {', '.join(PASSES)})")
    from sae.gpu.device import WORKGROUP

    backend = f"const WG: u32 = {WORKGROUP}u;  // threads per workgroup (sae.gpu.device.WORKGROUP)\n"
    return f"{wgsl_prelude(caps)}\n{backend}{_read(COMMON)}\n// ---- {name}.wgsl ----\n{_read(name)}"


def numbered(source: str) -> str:
    """``source`` with line numbers, for compile errors."""
    return "\n".join(f"{i:4d}  {line}" for i, line in enumerate(source.splitlines(), 1))


__all__ = ["PASSES", "numbered", "shader_dir", "shader_source"]
