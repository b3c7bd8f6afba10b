"""sae, the Semantic Annealing Engine: text to embeddings by rewriting token programs.

The public surface is small::

    from sae import Engine
    engine = Engine()                  # bundled default Algorithm, backend "auto"
    vectors = engine.embed(["a text", "another text"])   # (2, dim) float32
    print(engine.explain("a text").journal)
"""

from __future__ import annotations

from sae.algorithm import Algorithm, load_algorithm, save_algorithm
from sae.engine import Engine, Explanation
from sae.errors import AlgorithmError, InputError, SaeError

__version__ = "0.1.0"

__all__ = [
    "Algorithm",
    "AlgorithmError",
    "Engine",
    "Explanation",
    "InputError",
    "SaeError",
    "__version__",
    "load_algorithm",
    "save_algorithm",
]
