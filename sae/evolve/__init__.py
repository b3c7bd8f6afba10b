"""Evolution: discover Algorithms against a teacher (``sae evolve``, docs/EVOLVE.md).

The modules, one idea each:

* :mod:`sae.evolve.genome`: what evolves (rules, loop parameters, lexicon threshold)
  and how a genome becomes an Algorithm on a base;
* :mod:`sae.evolve.data`: the train texts, teacher embeddings and pairs fitness reads;
* :mod:`sae.evolve.fitness`: the deterministic objectives, the rule-interaction graph,
  the evaluator seam other backends plug into;
* :mod:`sae.evolve.operators`: mutation operators and interaction-aware crossover;
* :mod:`sae.evolve.select`: non-dominated sorting, crowding, tournaments, the front;
* :mod:`sae.evolve.store`: the SQLite run store, one transaction per generation;
* :mod:`sae.evolve.executors`: this process, local worker processes, or Ray;
* :mod:`sae.evolve.run`: the loop, resume, the final pick;
* :mod:`sae.evolve.observe`: the live view and Prometheus metrics;
* :mod:`sae.evolve.lineage`: reading a run back (``sae lineage``).
"""

from __future__ import annotations

from sae.evolve.genome import Genome, materialize
from sae.evolve.run import EvolveConfig, Inputs, evolve

__all__ = ["EvolveConfig", "Genome", "Inputs", "evolve", "materialize"]
