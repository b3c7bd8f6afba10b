"""Ray Data on a local Ray instance: the same bytes as a local run, and resumable across the two."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_job import InterruptError, StopAfter, corpus  # tests/corpus/test_job.py

from sae.cli import main
from sae.corpus import EmbedOptions, embed_corpus
from sae.corpus.sinks import output_schema
from sae.engine import Engine
from sae.errors import InputError

ray = pytest.importorskip("ray", reason="needs the optional extra: pip install 'sae[ray]'")
pytest.importorskip("ray.data", reason="needs the optional extra: pip install 'sae[ray]'")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def embed(*args, tiny_dir):
    return main(["embed", *map(str, args), "--algorithm", str(tiny_dir), "--backend", "cpu", "--chunk-rows", "100"])


def test_ray_resumes_a_local_run_to_the_local_bytes(tmp_path, tiny_dir, local_ray):
    txt = tmp_path / "in.txt"
    txt.write_text("\n".join(corpus(1000, seed=3)) + "\n")
    assert embed(txt, "-o", tmp_path / "local.parquet", tiny_dir=tiny_dir) == 0
    out = tmp_path / "ray.parquet"
    with pytest.raises(InterruptError):  # a local run stops after 3 chunks; Ray does the other 7
        embed_corpus(str(txt), str(out), Engine(tiny_dir, backend="cpu"), EmbedOptions(chunk_rows=100),
                     progress=StopAfter(350))
    assert embed(txt, "-o", out, "--resume", "--ray-workers", "2", "--ray", tiny_dir=tiny_dir) == 0
    assert out.read_bytes() == (tmp_path / "local.parquet").read_bytes()


def test_ray_dataset_with_kept_columns_and_float16(tmp_path, tiny_dir, local_ray, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative INPUT: the workers run in Ray's directory, not this one
    data = tmp_path / "data"
    data.mkdir()
    for k in range(3):
        texts = corpus(150 + 70 * k, seed=k)
        pq.write_table(pa.table({"body": texts, "id": range(len(texts))}), data / f"p{k}.parquet", row_group_size=64)
    args = ["--text-column", "body", "--keep-columns", "id", "--dtype", "float16"]
    assert embed(data, "-o", tmp_path / "local", *args, tiny_dir=tiny_dir) == 0
    assert embed("data", "-o", tmp_path / "ray", *args, "--ray", tiny_dir=tiny_dir) == 0
    for k in range(3):
        name = f"p{k}.parquet"
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_ray_refuses_stdin_and_pipes(tmp_path, tiny_dir, capsys):
    os.mkfifo(tmp_path / "fifo")  # refused before it is opened: no writer needed
    for source in ("-", tmp_path / "fifo"):
        assert embed(source, "-o", tmp_path / "o.parquet", "--ray", tiny_dir=tiny_dir) == 2
        assert "--ray needs an input that workers can read in parts" in capsys.readouterr().err


def test_a_bad_row_found_by_a_worker_is_one_line(tmp_path, tiny_dir, local_ray, capsys):
    texts = corpus(300, seed=5)
    texts[250] = None
    pq.write_table(pa.table({"text": texts}), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    out.write_bytes(b"precious")
    assert embed(tmp_path / "in.parquet", "-o", out, "--ray", tiny_dir=tiny_dir) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert err == [f"sae embed: error: {tmp_path / 'in.parquet'}: column 'text' has a null value in row 251"]
    assert out.read_bytes() == b"precious"


#: What Ray 2.60 gives for a Ray Data worker's ValueError: the traceback, then its own wrapper.
RAY_TASK_ERROR = (
    "\x1b[36mray::MapWorker(MapBatches(ChunkEmbedder)).submit()\x1b[39m (pid=30809, ip=192.0.2.2)\n"
    '  File "sae/corpus/cluster.py", line 7, in __call__\n'
    "    raise ValueError(...)\n"
    "ValueError: in.parquet: something only a worker meets\n\n"
    "The above exception was the direct cause of the following exception:\n\n"
    "\x1b[36mray::MapWorker(MapBatches(ChunkEmbedder)).submit()\x1b[39m (pid=30809, ip=192.0.2.2)\n"
    "ray.exceptions.UserCodeException: UDF failed to process a data block.\n"
    "Failed to apply UDF transform after 1/1 attempts (total backoff 0.0s).\n"
    "To change retry attempts, backoff, or which errors are retried, configure "
    "`ray.data.DataContext.get_current()` if you believe this to be transient."
)


def test_a_worker_failure_is_its_cause_not_rays_notice():
    from sae.corpus.cluster import worker_cause

    assert worker_cause(RuntimeError(RAY_TASK_ERROR)) == "ValueError: in.parquet: something only a worker meets"
    assert worker_cause(RuntimeError("one\nRuntimeError: worker loaded Algorithm a, the driver b")) == (
        "RuntimeError: worker loaded Algorithm a, the driver b")


class FailingSource:
    name = "in.parquet"

    def read_chunk(self, index):
        if index == 1:
            raise InputError(f"{self.name}: column 'text': invalid UTF-8 in row 7")
        raise MemoryError("out of memory")


def test_a_worker_returns_its_failures_as_data(tiny_dir):
    from sae.corpus.cluster import ChunkEmbedder, EngineSpec

    spec, alg = EngineSpec.from_options(tiny_dir)
    schema = output_schema(pa.schema([pa.field("text", pa.string())]), alg.dim, "float32")
    worker = ChunkEmbedder(spec, [FailingSource()], [schema])
    result = worker(pa.table({"output": [0, 0], "chunk": [0, 1]}))
    assert result.column("error").to_pylist() == [
        "in.parquet: chunk 0: MemoryError: out of memory", "in.parquet: column 'text': invalid UTF-8 in row 7"]
    assert result.column("bad_input").to_pylist() == [False, True]


class UnreachableRay:
    """Stands for the ``ray`` module where ray.init cannot connect."""

    def __init__(self, error):
        self.error = error
        self.attempts = None

    def is_initialized(self):
        return False

    def init(self, **kwargs):
        self.attempts = os.environ.get("RAY_gcs_server_port_wait_time_s")
        raise self.error


@pytest.mark.parametrize(("address", "error", "message", "attempts"), [
    ("auto", ConnectionError("Could not find any running Ray instance. Please specify the one to connect to by "
                             "setting `--address` flag"),
     "--ray auto: cannot connect to a Ray cluster (Could not find any running Ray instance)", None),
    ("10.0.0.9:6379", ConnectionError("Failed to connect to Ray cluster at 10.0.0.9:6379"),
     "--ray 10.0.0.9:6379: cannot connect to a Ray cluster (Failed to connect to Ray cluster at 10.0.0.9:6379)",
     "1"),
    ("10.0.0.9:6379", RuntimeError("Failed to connect to GCS.\nlogs"),
     "--ray 10.0.0.9:6379: cannot connect to a Ray cluster (Failed to connect to GCS)", "1"),
])
def test_no_ray_cluster_is_one_line(monkeypatch, address, error, message, attempts):
    from sae.corpus.cluster import _init

    monkeypatch.delenv("RAY_gcs_server_port_wait_time_s", raising=False)
    fake = UnreachableRay(error)
    with pytest.raises(InputError) as info:
        _init(fake, address)
    assert str(info.value) == message
    assert fake.attempts == attempts  # one attempt at an explicit address, and only while connecting
    assert "RAY_gcs_server_port_wait_time_s" not in os.environ
