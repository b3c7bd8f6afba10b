"""``sae embed`` on every STS-B dev sentence with the bundled default (needs ../shared/data)."""

from __future__ import annotations

import pyarrow.parquet as pq
from shared_data import SHARED_DATA, needs_shared

from sae.cli import main


def dev_sentences() -> list[str]:
    rows = [line.split("\t") for line in (SHARED_DATA / "stsb" / "sts-dev.csv").read_text("utf-8").splitlines()]
    return sorted({s for r in rows for s in (r[5], r[6])})


@needs_shared
def test_embed_every_dev_sentence_twice_gives_identical_bytes(tmp_path):
    sentences = dev_sentences()
    assert len(sentences) == 2910
    src = tmp_path / "dev.txt"
    src.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    outs = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    for out in outs:
        assert main(["embed", str(src), "-o", str(out), "--backend", "cpu"]) == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()
    table = pq.read_table(outs[0])
    assert table.column("text").to_pylist() == sentences
    assert table.num_rows == 2910
