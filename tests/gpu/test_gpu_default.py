"""The bundled default Algorithm on every STS-B dev sentence: CPU == GPU."""

from __future__ import annotations

import pytest
from gpu_helpers import skip_without_gpu

from sae.algorithm import default_algorithm_path

skip_without_gpu()

from shared_data import SHARED_DATA, needs_shared  # noqa: E402


def _dev_sentences() -> list[str]:
    seen: dict[str, None] = {}
    with open(SHARED_DATA / "stsb" / "sts-dev.csv", encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) >= 7:
                seen.setdefault(cols[5])
                seen.setdefault(cols[6])
    return list(seen)


@needs_shared
@pytest.mark.skipif(
    not (default_algorithm_path() / "algorithm.json").exists(),
    reason=f"the bundled default Algorithm is not built yet ({default_algorithm_path()})",
)
def test_default_algorithm_on_sts_dev():
    from sae.cli.compare import compare

    texts = _dev_sentences()
    assert len(texts) > 2000
    report = compare(texts, None, None, batch_size=1024)
    bad = {s["stage"]: s["differing"] for s in report["stages"] if not s["equal"]}
    assert report["equal"], f"CPU and GPU disagree on STS-B dev: {bad}"
