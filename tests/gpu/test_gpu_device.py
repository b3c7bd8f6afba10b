"""Adapter choice (pure logic on fake adapters) and its errors."""

from __future__ import annotations

import pytest

from sae.errors import BackendUnavailableError, InputError
from sae.gpu.device import REQUIRED_LIMITS, AdapterInfo, choose_adapter

GOOD = {k: v * 4 for k, v in REQUIRED_LIMITS.items()}


def _adapter(index, name, backend="Vulkan", kind="DiscreteGPU", limits=None):
    return AdapterInfo(index, name, backend, kind, "", {"timestamp-query"}, dict(limits or GOOD))


ADAPTERS = [
    _adapter(0, "llvmpipe", kind="CPU"),
    _adapter(1, "Intel Iris", kind="IntegratedGPU"),
    _adapter(2, "NVIDIA RTX", backend="OpenGL"),
    _adapter(3, "NVIDIA RTX"),
]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("SAE_ADAPTER", raising=False)
    monkeypatch.delenv("SAE_POWER_PREFERENCE", raising=False)


def test_ranking_prefers_native_discrete(monkeypatch):
    assert choose_adapter(adapters=ADAPTERS).index == 3
    monkeypatch.setenv("SAE_POWER_PREFERENCE", "low-power")
    assert choose_adapter(adapters=ADAPTERS).index == 1


def test_name_substring_and_env(monkeypatch):
    assert choose_adapter("iris", adapters=ADAPTERS).index == 1
    assert choose_adapter("opengl", adapters=ADAPTERS).index == 2
    monkeypatch.setenv("SAE_ADAPTER", "llvm")
    assert choose_adapter(adapters=ADAPTERS).index == 0


def test_no_match_names_what_exists():
    with pytest.raises(BackendUnavailableError, match=r"no GPU adapter matches 'radeon' \(found: llvmpipe"):
        choose_adapter("radeon", adapters=ADAPTERS)


def test_no_adapter_at_all():
    with pytest.raises(BackendUnavailableError, match="no GPU adapter found"):
        choose_adapter(adapters=[])


def test_too_small_limits_are_skipped_with_a_reason():
    small = dict(GOOD, **{"max-storage-buffers-per-shader-stage": 4})
    weak = _adapter(0, "tiny gpu", limits=small)
    assert weak.problems() == ["max-storage-buffers-per-shader-stage is 4, sae needs 8"]
    assert choose_adapter(adapters=[weak, ADAPTERS[1]]).index == 1
    with pytest.raises(BackendUnavailableError, match=r"no usable GPU adapter: tiny gpu .*storage-buffers"):
        choose_adapter(adapters=[weak])


def test_engine_gpu_backend_fails_clearly(monkeypatch, tiny_alg):
    from sae.engine import make_backend
    from sae.layout import DEFAULT_CAPACITIES

    with pytest.raises(BackendUnavailableError, match="no GPU adapter matches"):
        make_backend("gpu", tiny_alg, DEFAULT_CAPACITIES, adapter="no-such-adapter-anywhere")
    # auto falls back to the CPU and says so
    assert make_backend("auto", tiny_alg, DEFAULT_CAPACITIES, adapter="no-such-adapter-anywhere").name == "cpu"


def test_device_failure_is_one_clear_error(monkeypatch, tiny_alg):
    from gpu_helpers import skip_without_gpu

    skip_without_gpu()
    import wgpu

    from sae.batch import ProgramBatch
    from sae.gpu import GpuBackend
    from sae.gpu.device import GpuError
    from sae.layout import DEFAULT_CAPACITIES

    gpu = GpuBackend(tiny_alg, DEFAULT_CAPACITIES)
    batch = ProgramBatch(2, DEFAULT_CAPACITIES)
    batch.widen([[3, 4, 5], [6]], tiny_alg.symbol_rows)

    def lost(*args, **kwargs):
        raise wgpu.GPUError("Parent device is lost\nmore details")

    monkeypatch.setattr(type(gpu._staging), "map_sync", lost)
    with pytest.raises(GpuError, match=r"failed in execute: Parent device is lost$") as info:
        gpu.execute(batch)
    assert info.value.exit_code == 1


def test_unknown_power_preference_is_bad_input_not_a_missing_adapter(monkeypatch):
    # Not a BackendUnavailableError: --backend auto would fall back to the CPU without saying why.
    monkeypatch.setenv("SAE_POWER_PREFERENCE", "fast")
    with pytest.raises(InputError, match="SAE_POWER_PREFERENCE must be 'high-performance' or 'low-power', got 'fast'") as info:
        choose_adapter(adapters=ADAPTERS)
    assert not isinstance(info.value, BackendUnavailableError)
