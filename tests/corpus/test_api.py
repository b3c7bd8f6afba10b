"""embed_corpus and EmbedOptions from Python: paths as os.PathLike, and arguments of the
wrong type refused up front with a TypeError naming them, before any output exists."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sae.corpus import EmbedOptions, embed_corpus
from sae.corpus.dataset import is_dataset
from sae.engine import Engine
from sae.errors import InputError

TEXTS = ["the cat", "a dog eats food", "new york city", "", "not very big"]


@pytest.fixture(scope="module")
def engine(tiny_dir):
    return Engine(tiny_dir, backend="cpu", batch_size=16, threads=1)


@pytest.fixture
def txt(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("\n".join(TEXTS) + "\n")
    return path


def test_paths_may_be_path_objects(txt, tmp_path, engine):
    """A Path for INPUT and OUT (was: TypeError 'PosixPath' object is not iterable) writes what strs write."""
    embed_corpus(str(txt), str(tmp_path / "s.parquet"), engine, EmbedOptions(chunk_rows=2))
    summary = embed_corpus(txt, tmp_path / "p.parquet", engine, EmbedOptions(chunk_rows=2))
    assert summary.rows == len(TEXTS)
    assert (tmp_path / "p.parquet").read_bytes() == (tmp_path / "s.parquet").read_bytes()


def test_a_dataset_may_be_a_path_object(tmp_path, engine):
    root = tmp_path / "data"
    root.mkdir()
    pq.write_table(pa.table({"text": TEXTS}), root / "a.parquet")
    assert is_dataset(root) and not is_dataset(root / "a.parquet") and is_dataset(root / "*.parquet")
    embed_corpus(root, tmp_path / "out", engine)
    assert pq.read_table(tmp_path / "out" / "a.parquet").column("text").to_pylist() == TEXTS


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"chunk_rows": 16.5}, "EmbedOptions.chunk_rows must be an int, got float"),  # was an IndexError mid-read
    ({"chunk_rows": "16"}, "EmbedOptions.chunk_rows must be an int, got str"),  # was "'<' not supported"
    ({"chunk_rows": True}, "EmbedOptions.chunk_rows must be an int, got bool"),  # was accepted as 1
    ({"keep_columns": "genre"}, "EmbedOptions.keep_columns must be a tuple or list"),  # was "'e' is listed twice"
    ({"keep_columns": ("genre", 3)}, "EmbedOptions.keep_columns must hold column names"),
    ({"text_column": None}, "EmbedOptions.text_column must be a str"),
    ({"dtype": None}, "EmbedOptions.dtype must be a str"),
    ({"resume": "yes"}, "EmbedOptions.resume must be a bool"),
])
def test_options_of_the_wrong_type_are_named(kwargs, message):
    with pytest.raises(TypeError, match=message.replace("(", r"\(")):
        EmbedOptions(**kwargs)


def test_bad_values_keep_their_one_line_errors():
    with pytest.raises(InputError, match="--chunk-rows: must be >= 1, got 0"):
        EmbedOptions(chunk_rows=0)
    with pytest.raises(InputError, match="--dtype: 'float64' is not one of float32, float16"):
        EmbedOptions(dtype="float64")


def test_a_list_of_kept_columns_is_kept_as_a_tuple():
    assert EmbedOptions(keep_columns=["a", "b"]) == EmbedOptions(keep_columns=("a", "b"))
    hash(EmbedOptions(keep_columns=["a"]))  # still hashable, as a frozen dataclass promises


@pytest.mark.parametrize(("args", "message"), [
    (("IN", "OUT", {"dtype": "float16"}), "options must be an EmbedOptions, got dict"),  # was an AttributeError
    ((3, "OUT", EmbedOptions()), "input must be a str or an os.PathLike, got int"),
    (("IN", b"out.parquet", EmbedOptions()), "output must be a str or an os.PathLike, got bytes"),
])
def test_arguments_of_the_wrong_type_are_refused_before_any_output(txt, tmp_path, engine, args, message):
    given = [str(txt) if a == "IN" else str(tmp_path / "o.parquet") if a == "OUT" else a for a in args]
    with pytest.raises(TypeError, match=message):
        embed_corpus(given[0], given[1], engine, given[2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]
