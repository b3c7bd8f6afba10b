"""The shaders ship in the wheel (sae/shaders) and the loader finds them there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sae.gpu.shaders import PASSES

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import sae
from sae.gpu import shaders
from sae.layout import DEFAULT_CAPACITIES as caps
out = {"sae": sae.__file__, "dir": str(shaders.shader_dir()), "compiled": []}
for name in shaders.PASSES:
    shaders.shader_source(name, caps)
if sys.argv[1] == "compile":
    from sae.gpu.backend import _pipelines
    from sae.gpu.device import choose_adapter, get_device
    info = choose_adapter()
    out["compiled"] = sorted(_pipelines(get_device(info), caps, info.workgroup).passes)
print(json.dumps(out))
"""


def _gpu_available() -> bool:
    from gpu_helpers import REQUIRE_GPU, gpu_skip_reason

    reason = gpu_skip_reason()
    if reason and os.environ.get(REQUIRE_GPU, "") not in ("", "0"):
        pytest.fail(f"{REQUIRE_GPU} is set but {reason}", pytrace=False)
    return reason is None


def test_wheel_ships_and_loads_every_shader(tmp_path):
    builders = pytest.importorskip("hatchling.builders.wheel", reason="hatchling is needed to build the wheel")
    wheel = next(iter(builders.WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])))
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(site)
    assert {f"sae/shaders/{p}.wgsl" for p in (*PASSES, "common")} <= names
    mode = "compile" if _gpu_available() else "load"
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(out["sae"]).is_relative_to(site)
    assert Path(out["dir"]) == site / "sae" / "shaders"
    if mode == "compile":
        assert out["compiled"] == sorted(PASSES)
