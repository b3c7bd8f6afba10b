"""Large corpora: ``sae embed`` streaming, resumable, over datasets, and with Ray.

::

    from sae import Engine
    from sae.corpus import EmbedOptions, embed_corpus

    engine = Engine(backend="cpu")
    summary = embed_corpus("corpus.txt", "corpus.parquet", engine, EmbedOptions(resume=True))

Inputs are read a chunk at a time (:mod:`sae.corpus.sources`), embedded, and written
as one Parquet row group (or a run of ``.npy`` rows) per chunk (:mod:`sae.corpus.sinks`);
the state beside the output (:mod:`sae.corpus.state`) lets an interrupted run resume
after its last finished chunk. :mod:`sae.corpus.cluster` runs the same job with Ray Data
(``pip install 'sae[ray]'``). :mod:`sae.corpus.teach` streams a corpus through a teacher
model the same way (``sae teach``).
"""

from __future__ import annotations

from sae.corpus.job import (
    DEFAULT_CHUNK_ROWS,
    EmbedOptions,
    EmbedSummary,
    Job,
    embed_corpus,
    embed_in_memory,
    run_job,
)
from sae.corpus.sources import Columns, Source, open_source

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "Columns",
    "EmbedOptions",
    "EmbedSummary",
    "Job",
    "Source",
    "embed_corpus",
    "embed_in_memory",
    "open_source",
    "run_job",
]
