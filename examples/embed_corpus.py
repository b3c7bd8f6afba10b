"""Embed a corpus into Parquet a chunk at a time (memory does not grow with the corpus),
then read the result back a row group at a time. With resume=True, the same call after an
interruption (a crash, Ctrl-C, kill -9) continues after the last finished chunk."""

import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from sae import Engine
from sae.corpus import EmbedOptions, embed_corpus

work = Path(tempfile.mkdtemp(prefix="sae-corpus-"))
corpus = work / "corpus.txt"
corpus.write_text("".join(f"A man is playing guitar number {i}.\n" for i in range(20_000)))

engine = Engine(backend="cpu")
summary = embed_corpus(str(corpus), str(work / "corpus.parquet"), engine,
                       EmbedOptions(chunk_rows=4096, dtype="float16", resume=True))
print(f"{summary.rows} rows in {summary.seconds:.1f} s ({summary.rate:,.0f} texts/s) -> {summary.outputs[0]}")

table = pq.ParquetFile(work / "corpus.parquet")  # one row group per chunk
for batch in table.iter_batches(batch_size=4096, columns=["text", "embedding"]):
    first = batch.column("embedding")[0].values.to_numpy()
    print(f"{batch.num_rows} rows, first: {batch.column('text')[0]} -> {first[:4]} ...")
    break
