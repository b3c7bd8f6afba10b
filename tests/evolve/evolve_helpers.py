"""Helpers of the evolve tests (the fixtures are in conftest.py)."""

from __future__ import annotations

from pathlib import Path


def evolve_args(world: dict[str, Path], run: Path, out: Path, *extra: str, generations: int = 4,
                population: int = 6) -> list[str]:
    return ["evolve", "--teacher", str(world["teacher"]), "--pairs", str(world["pairs"]), "--base", str(world["base"]),
            "--run", str(run), "--out", str(out), "--generations", str(generations), "--population", str(population),
            "--fit-pairs", "0", "--minimal-pairs", "0", "--final-candidates", "3", *extra]
