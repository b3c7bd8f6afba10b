"""Fixtures of the viewer tests: the viewer's example Algorithm (a merge commits, a guard
reverts a rewrite, a rule changes a vector), sessions on it, and a private X server for the
window tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("PIL", reason="the viewer extra is not installed: pip install 'sae[view]'")

from tiny import make_view_example
from viewer_helpers import TEXT

from sae import Engine, save_algorithm
from sae.viewer.session import Session


@pytest.fixture(scope="session")
def view_alg():
    return make_view_example()


@pytest.fixture(scope="session")
def view_dir(tmp_path_factory, view_alg) -> Path:
    return save_algorithm(view_alg, tmp_path_factory.mktemp("view") / "alg", vector_dtype="float32")


@pytest.fixture
def cpu_session(view_alg) -> Session:
    return Session(texts=[TEXT, "a cat eats food"], engines={"cpu": Engine(view_alg, backend="cpu", batch_size=1)})


@pytest.fixture(scope="session")
def x_display():
    """A private Xvfb display for real windows (a failure in CI, where .ci/run installs Xvfb)."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        if os.environ.get("CI"):
            pytest.fail("Xvfb is not installed, but CI must run the window tests (.ci/run installs xvfb)")
        pytest.skip("Xvfb not installed (apt-get install xvfb): window tests skipped")
    read, write = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()
    if not number:
        proc.kill()
        pytest.fail("Xvfb did not report a display number")
    yield f":{number}"
    proc.terminate()
    proc.wait(timeout=10)
