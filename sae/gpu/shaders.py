"""The one loader of the WGSL passes in ``shaders/``.

In a checkout the shaders are the top-level ``shaders/`` folder; in an installed
wheel they are package data at ``sae/shaders`` (hatch ``force-include``). Every pass
is compiled as ``wgsl_prelude(caps) + backend constants + common.wgsl + <pass>.wgsl``,
so layouts, opcodes and capacities are written once, in :mod:`sae.layout`, the
workgroup size once, in :mod:`sae.gpu.device`, and the scratch layout once, here
(:func:`scratch_layout`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import sae
from sae.layout import Capacities, wgsl_prelude

#: The passes, in the order one annealing step runs them (then the VM).
PASSES = ("bids", "potential", "select", "apply", "health", "vm", "normalize")
COMMON = "common"
#: Words of one winner record in the scratch area: key, last, shift, window sum.
WINNER_WORDS = 4


def scratch_layout(caps: Capacities) -> dict[str, int]:
    """Word offsets of one document's scratch area (in the keys buffer, after every key).

    Per position: the candidate key and its last matched item (``select``), and the sum
    of the scores of the bids anchored there (``potential``); then the winner records
    of the step, at most one per position and per free journal entry.
    """
    winners = min(caps.stream, caps.journal)
    return {
        "SCRATCH_CAND": 0,
        "SCRATCH_LAST": caps.stream,
        "SCRATCH_SUM": 2 * caps.stream,
        "SCRATCH_WINNERS": 3 * caps.stream,
        "MAX_WINNERS": winners,
        "WINNER_WORDS": WINNER_WORDS,
        "SCRATCH_WORDS": 3 * caps.stream + WINNER_WORDS * winners,
    }


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
    backend += "// scratch layout of one document (sae.gpu.shaders.scratch_layout)\n"
    backend += "".join(f"const {k}: u32 = {v}u;\n" for k, v in scratch_layout(caps).items())
    return f"{wgsl_prelude(caps)}\n{backend}{_read(COMMON)}\n// ---- {name}.wgsl ----\n{_read(name)}"


def numbered(source: str) -> str:
    """``source`` with line numbers, for compile errors."""
    return "\n".join(f"{i:4d}  {line}" for i, line in enumerate(source.splitlines(), 1))


__all__ = ["PASSES", "WINNER_WORDS", "numbered", "scratch_layout", "shader_dir", "shader_source"]
