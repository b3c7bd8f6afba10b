"""Shared fixtures. Tests come in tiers: pure (no GPU), cpu, gpu (skip without an
adapter), cli (end to end), and checks against ../shared/data (skip without it)."""

from __future__ import annotations

import functools
import importlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))  # tests/tiny.py: the tiny fixture Algorithm
sys.path.insert(0, str(TESTS.parent / "tools"))  # tools/loadtest.py: the service tests' load generator

from tiny import make_tiny  # noqa: E402

from sae.algorithm import Algorithm, save_algorithm  # noqa: E402

# CI machines have 2 cores shared with other work: no per-example deadline.
settings.register_profile("sae", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("sae")

# A key in the developer's environment would make every `sae serve` the tests start ask for it.
os.environ.pop("SAE_API_KEY", None)



@functools.cache
def serve_missing() -> tuple[str, ...]:
    """What tests/service imports beyond the core install (sae[serve,serve-test]) and this
    environment lacks. Looked up when the first service module is collected, not at start-up:
    importing grpc, uvicorn and httpx takes about 0.4 s."""
    missing = []
    for name in ("starlette", "uvicorn", "grpc", "grpc_health", "grpc_reflection", "prometheus_client", "orjson",
                 "httpx"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return tuple(missing)


class _NeedsServeExtras(pytest.Module):
    def collect(self):
        pytest.skip("the service tests need: pip install -e '.[serve,serve-test]' "
                    f"(missing: {', '.join(serve_missing())})")


def pytest_pycollect_makemodule(module_path: Path, parent):
    """Without the serve extras, each module of tests/service is reported as skipped instead
    of failing to import grpc, httpx or orjson at collection."""
    if module_path.parent == TESTS / "service" and serve_missing():
        return _NeedsServeExtras.from_parent(parent, path=module_path)
    return None


@pytest.fixture(autouse=True)
def _numpy_strict():
    np.random.seed(0)
    old = np.seterr(all="raise")
    yield
    np.seterr(**old)


@pytest.fixture(scope="session")
def tiny_alg() -> Algorithm:
    return make_tiny()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, tiny_alg) -> Path:
    return save_algorithm(tiny_alg, tmp_path_factory.mktemp("alg") / "tiny", vector_dtype="float32")


def teacher_tokenizer_json() -> str:
    """The teacher's BERT uncased tokenizer as the teacher cache holds it: the bundled
    default's, without the contractions its recipe adds after the BERT normalizer."""
    import json

    from sae.algorithm import load_algorithm

    spec = json.loads(load_algorithm(None).tokenizer_json)
    if spec["normalizer"]["type"] == "Sequence":
        spec["normalizer"] = spec["normalizer"]["normalizers"][0]
    return json.dumps(spec)
