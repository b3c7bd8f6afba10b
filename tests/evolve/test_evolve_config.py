"""EvolveConfig and FitnessSettings refuse, when made, what no run can use: evolve() from
Python gets the checks the CLI makes, before the run file exists."""

from __future__ import annotations

import pytest

from sae.evolve import EvolveConfig
from sae.evolve.fitness import MAX_W_MINIMAL, FitnessSettings
from sae.evolve.run import MAX_GENERATIONS, MAX_POPULATION, MIN_FIT_PAIRS


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    # final_candidates=0 ran every generation, then failed in max() with a run no fixed value resumes.
    ({"final_candidates": 0}, ValueError, "EvolveConfig.final_candidates must be at least 1, got 0"),
    ({"population": 0}, ValueError, "EvolveConfig.population must be in 1..10,000, got 0"),
    ({"population": MAX_POPULATION + 1}, ValueError, "EvolveConfig.population must be in 1..10,000"),
    ({"generations": -1}, ValueError, "EvolveConfig.generations must be in 1..10,000, got -1"),
    ({"generations": MAX_GENERATIONS + 1}, ValueError, "EvolveConfig.generations must be in 1..10,000"),
    ({"generations": 2.5}, TypeError, "EvolveConfig.generations must be an int, got float"),
    ({"population": True}, TypeError, "EvolveConfig.population must be an int, got bool"),
    ({"seed": -1}, ValueError, "EvolveConfig.seed must be at least 0"),
    ({"fit_pairs": 3}, ValueError, "EvolveConfig.fit_pairs must be 0 (all) or at least 10, got 3"),
    ({"minimal_pairs": -1}, ValueError, "EvolveConfig.minimal_pairs must be at least 0"),
    ({"max_rules": 0}, ValueError, "EvolveConfig.max_rules must be at least 1"),
    ({"crossover": 2.0}, ValueError, "EvolveConfig.crossover must be in 0..1, got 2.0"),
    ({"crossover": float("nan")}, ValueError, "EvolveConfig.crossover must be in 0..1, got nan"),
    ({"crossover": "0.3"}, TypeError, "EvolveConfig.crossover must be a number"),
    ({"resample": 1.5}, ValueError, "EvolveConfig.resample must be in 0..1"),
    ({"resample": 1.0}, ValueError, "EvolveConfig.resample must be in 0..1"),
    ({"max_cost": float("inf")}, ValueError, "EvolveConfig.max_cost must be a finite number >= 0"),
    ({"max_cost": -1}, ValueError, "EvolveConfig.max_cost must be a finite number >= 0"),
    ({"distinct": 1}, TypeError, "EvolveConfig.distinct must be a bool"),
    ({"fitness": {"backend": "cpu"}}, TypeError, "EvolveConfig.fitness must be a FitnessSettings, got dict"),
])
def test_evolve_config_refuses_what_no_run_can_use(kwargs, error, message):
    with pytest.raises(error) as info:
        EvolveConfig(**kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    # "bogus" raised BackendUnavailableError only once evolve() had created the run file.
    ({"backend": "bogus"}, ValueError, "FitnessSettings.backend must be one of cpu, gpu, got 'bogus'"),
    ({"transforms": "refit"}, ValueError, "FitnessSettings.transforms must be one of inherit, fit"),
    ({"max_transforms": -1}, ValueError, "FitnessSettings.max_transforms must be at least 0"),
    ({"lam_transform": float("nan")}, ValueError, "FitnessSettings.lam_transform must be a finite number"),
    ({"w_minimal": float("nan")}, ValueError, "FitnessSettings.w_minimal must be in 0..1000, got nan"),
    ({"w_minimal": MAX_W_MINIMAL * 2}, ValueError, "FitnessSettings.w_minimal must be in 0..1000"),
    ({"w_minimal": None}, TypeError, "FitnessSettings.w_minimal must be a number"),
    ({"batch_size": 0}, ValueError, "FitnessSettings.batch_size must be at least 1"),
])
def test_fitness_settings_refuse_what_no_run_can_use(kwargs, error, message):
    with pytest.raises(error) as info:
        FitnessSettings(**kwargs)
    assert message in str(info.value)


def test_valid_settings_keep_their_identity():
    """The checks change nothing a valid configuration stores (a run's identity, so resume)."""
    config = EvolveConfig(fit_pairs=0, minimal_pairs=0, crossover=1, max_cost=0, resample=0.5,
                          fitness=FitnessSettings(backend="gpu", transforms="fit", w_minimal=0))
    assert config.crossover == 1 and type(config.crossover) is int
    assert EvolveConfig().as_dict() == {
        "seed": 0, "generations": 20, "population": 16, "fit_pairs": 3000, "minimal_pairs": 1000,
        "max_rules": 24, "crossover": 0.3, "final_candidates": 8,
        "fitness": {"backend": "cpu", "transforms": "inherit", "max_transforms": 0, "lam_transform": 0.3,
                    "w_minimal": 0.5, "batch_size": 1024},
    }
    EvolveConfig(fit_pairs=MIN_FIT_PAIRS, generations=MAX_GENERATIONS, population=MAX_POPULATION)


def test_the_cli_uses_the_library_bounds():
    import sae.cli.evolve as cli
    import sae.evolve.fitness as fitness
    import sae.evolve.run as run

    assert (cli.MAX_GENERATIONS, cli.MAX_POPULATION, cli.MAX_W_MINIMAL, cli.MIN_FIT_PAIRS) == (
        run.MAX_GENERATIONS, run.MAX_POPULATION, fitness.MAX_W_MINIMAL, run.MIN_FIT_PAIRS)
