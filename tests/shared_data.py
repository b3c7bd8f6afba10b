"""../shared/data beside the checkout (present in CI and on developer machines), and the
mark of the checks that need it. A module of its own: ``from conftest import`` resolves to
whichever conftest.py was imported first (tests/viewer's, when it is collected first)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
SHARED_DATA = Path(os.environ.get("SAE_SHARED_DATA", TESTS.parent.parent / "shared" / "data"))
needs_shared = pytest.mark.skipif(
    not (SHARED_DATA / "stsb" / "sts-dev.csv").exists(),
    reason=f"STS-B data not found at {SHARED_DATA} (set SAE_SHARED_DATA); large checks skipped",
)
