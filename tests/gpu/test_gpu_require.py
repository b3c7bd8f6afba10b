"""SAE_REQUIRE_GPU=1 (set by .ci/run) turns a missing adapter into a failure of the GPU
tier instead of skips: pure logic, runs everywhere."""

from __future__ import annotations

import pytest
from _pytest.outcomes import Failed, Skipped
from gpu_helpers import REQUIRE_GPU, skip_without_gpu

from sae.errors import BackendUnavailableError


@pytest.fixture
def no_adapter(monkeypatch):
    import sae.gpu.device

    def none(name=None, adapters=None):
        raise BackendUnavailableError("no GPU adapter found (wgpu sees no Vulkan, Metal, D3D12 or GL device)")

    monkeypatch.setattr(sae.gpu.device, "choose_adapter", none)


def test_without_the_switch_a_missing_adapter_skips(no_adapter, monkeypatch):
    monkeypatch.delenv(REQUIRE_GPU, raising=False)
    with pytest.raises(Skipped, match="no GPU adapter can run sae here"):
        skip_without_gpu()


@pytest.mark.parametrize("value", ["1", "yes"])
def test_with_the_switch_a_missing_adapter_fails(no_adapter, monkeypatch, value):
    monkeypatch.setenv(REQUIRE_GPU, value)
    with pytest.raises(Failed, match="SAE_REQUIRE_GPU is set but no GPU adapter can run sae here"):
        skip_without_gpu()


def test_ci_sets_the_switch():
    from pathlib import Path

    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "SAE_REQUIRE_GPU=1" in ci
