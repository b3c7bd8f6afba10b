"""The one loader of the WGSL passes in ``shaders/``.

In a checkout the shaders are the top-level ``shaders/`` folder; in an installed
wheel they are package data at ``sae/shaders`` (hatch ``force-include``). Every pass
is compiled as ``wgsl_prelude(caps) + backend constants + common.wgsl + <pass>.wgsl``,
so layouts, opcodes, capacities and the bid-key packing are written once, in
:mod:`sae.layout`, the workgroup size once, in :mod:`sae.gpu.device`, and the item
slots and the scratch layout once, here (:func:`scratch_layout`, :func:`backend_source`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import sae
from sae.gpu.tables import ELEMENT_WORDS
from sae.layout import PROGRAM_ITEM_FIELDS, Capacities, alg_record_fields, wgsl_prelude

#: The passes: the annealing loop (optionally widening first), the bid keys of the
#: current streams (``Backend.bids``), the VM with the normalization.
PASSES = ("live", "anneal", "keys", "plan", "vm", "normalize", "stats")
#: vec4s of dimensions one invocation of the "vm" pass computes.
VM_BLOCK = 8
COMMON = "common"
#: Streams of CAP_STREAM items per job: the stream, its other buffer, the windows.
ITEM_SLOTS = 3
WINDOW_SLOT = 2
#: Words of one winner record in the scratch area (``WIN_*`` below). Where its
#: elements lie is the candidate's, at SCRATCH_PLACE.
WINNER_FIELDS = ("KEY", "EXT", "PHRASE", "WLEN", "REMOVES", "TRIPLES", "OUTCOME", "SHIFT", "APPLY", "WBASE")


def winner_words(caps: Capacities) -> int:
    return len(WINNER_FIELDS)


def scratch_layout(caps: Capacities) -> dict[str, int]:
    """Word offsets of one job's scratch area (the scratch buffer holds one per job).

    Per position: the winning candidate anchored there (0 = none), the extent and lexicon
    phrase of its best candidate, where that candidate's elements lie (per element
    ``first | last << 16``); per rule, its inhibition counter; then the winner records
    of the step, at most one per position and per journal entry.
    """
    winners = min(caps.stream, caps.journal)
    place = 3 * caps.stream
    inhibit = place + caps.pattern * caps.stream
    records = inhibit + caps.rules
    plan = 2 + 5 * caps.stream  # the VM's lists (plan.wgsl), after the annealing
    return {
        "SCRATCH_CAND": 0,
        "SCRATCH_EXT": caps.stream,
        "SCRATCH_PHRASE": 2 * caps.stream,
        "SCRATCH_PLACE": place,
        "SCRATCH_INHIBIT": inhibit,
        "SCRATCH_WINNERS": records,
        "MAX_WINNERS": winners,
        "WINNER_WORDS": winner_words(caps),
        "SCRATCH_WORDS": max(records + winner_words(caps) * winners, plan),
        # after annealing, the VM's lists: counts (ACC, stack), then the lists
        "PLAN_COUNTS": 0,
        "PLAN_ACC": 2,
        "PLAN_STACK": 2 + 2 * caps.stream,
        # the live job list (pass live), once, after every job's area: x, y, z, the jobs
        "LIVE_JOBS": 3,
    }


def workgroup_bytes(caps: Capacities, workgroup: int) -> int:
    """Workgroup memory of the largest pass (anneal: a word per position, its state; live: a
    word per thread)."""
    return max(4 * caps.stream + 24 * 4, 4 * workgroup)


def backend_source(caps: Capacities, workgroup: int = 64) -> str:
    """The backend's constants and generated helpers every pass is compiled with."""
    lines = [f"const WG: u32 = {workgroup}u;  // threads per workgroup (AdapterInfo.workgroup)",
             f"const ITEM_SLOTS: u32 = {ITEM_SLOTS}u;", f"const WINDOW_SLOT: u32 = {WINDOW_SLOT}u;",
             "// scratch layout of one job (sae.gpu.shaders.scratch_layout)"]
    lines += [f"const {k}: u32 = {v}u;" for k, v in scratch_layout(caps).items()]
    lines.append(f"const VM_BLOCK: u32 = {VM_BLOCK}u;  // vec4s a vm invocation computes")
    lines.append(f"const ITEM_WORDS: u32 = {len(PROGRAM_ITEM_FIELDS)}u;  // a ProgramItem, by word")
    lines += [f"const ITEM_{f[0].upper()}: u32 = {i}u;" for i, f in enumerate(PROGRAM_ITEM_FIELDS)]
    lines += [f"const WIN_{name}: u32 = {i}u;" for i, name in enumerate(WINNER_FIELDS)]
    lines.append(f"const ELEMENT_WORDS: u32 = {ELEMENT_WORDS}u;  // an element record (sae.gpu.tables.element_tests)")
    # AlgRecord a, read from its words in the table buffer (binding `tables`).
    body = ["fn alg_record(a: u32) -> AlgRecord {", "    let at = params.off_algs + a * ALG_WORDS;",
            "    var x: AlgRecord;"]
    for i, (name, _, wgsl, count, _) in enumerate(alg_record_fields()):
        assert count == 1
        value = f"tables[at + {i}u]"
        body.append(f"    x.{name} = {value if wgsl == 'u32' else f'bitcast<{wgsl}>({value})'};")
    body += ["    return x;", "}"]
    lines.append(f"const ALG_WORDS: u32 = {len(alg_record_fields())}u;")
    return "\n".join(lines + body) + "\n"


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


def shader_source(name: str, caps: Capacities, workgroup: int = 64) -> str:
    """The full WGSL text of pass ``name`` for these capacities and workgroup size."""
    if name not in PASSES:
        raise ValueError(f"shader_source: unknown pass {name!r} (known: {', '.join(PASSES)})")
    return (f"{wgsl_prelude(caps)}\n{backend_source(caps, workgroup)}{_read(COMMON)}\n"
            f"// ---- {name}.wgsl ----\n{_read(name)}")


def numbered(source: str) -> str:
    """``source`` with line numbers, for compile errors."""
    return "\n".join(f"{i:4d}  {line}" for i, line in enumerate(source.splitlines(), 1))


__all__ = ["ITEM_SLOTS", "PASSES", "backend_source", "numbered", "scratch_layout", "shader_dir", "shader_source",
           "workgroup_bytes"]
