"""The heavy, cached part of distillation: the teacher's embeddings (needs ``sae[teacher]``).

:class:`TeacherCache` is what the recipe uses: it reads the cache and computes what is
missing, in this process when sentence-transformers is importable, else by running
this module with the teacher's interpreter (a venv with sentence-transformers and
torch)::

    PYTHONPATH=. /work/venv-teacher/bin/python -m sae.distill.teacher_cache \
        --cache out/distill --texts out/distill/requests.jsonl

It writes, under ``--cache``:

* ``tokenizer.json``: the teacher's tokenizer (the student uses it as is);
* ``tokens-f64.npy``: ``(vocab, 384)`` float32, the teacher's embedding of every vocabulary
  token alone (input ``[CLS] token [SEP]``, the model's mean pooling, L2-normalized);
* ``texts-f64.parquet``: a teacher file (``text``, ``embedding``) with every text of
  ``--texts`` (one per line, or a ``.jsonl`` file of JSON strings, which can hold any
  text); texts already cached are not embedded again.

**The same bytes on any CPU.** The teacher runs in float64 and every value is settled
to a multiple of 2⁻²⁰ (:func:`sae.teacher.embed_settled`; why: the :mod:`sae.teacher`
docstring). Built from empty with torch's generic kernels and with its AVX2 ones, the
build script's cache (27.7 million values) came out the same bytes. The files carry
``f64`` in their names so that a cache of the earlier float32 teacher is never mixed in.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sae.errors import InputError, one_line
from sae.io import write_atomically
from sae.teacher import settle

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: The cache's files (see the module docstring: ``f64`` marks the float64 teacher).
TOKENS_FILE = "tokens-f64.npy"
TEXTS_FILE = "texts-f64.parquet"
#: The texts :class:`TeacherCache` asks the teacher for (JSON Lines, :func:`read_requests`).
REQUESTS_FILE = "requests.jsonl"
#: What a bad cache file's message advises.
_REDO = "delete it and the teacher writes it again"


def token_vectors(st, vocab_size: int, batch: int = 1024) -> np.ndarray:
    """Teacher embedding of each token id alone: mean over [CLS] t [SEP], normalized."""
    import torch

    tok = st.tokenizer
    cls_id, sep_id = tok.cls_token_id, tok.sep_token_id
    model = st[0].auto_model
    model.eval()
    out = np.zeros((vocab_size, model.config.hidden_size), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, vocab_size, batch):
            ids = torch.arange(start, min(start + batch, vocab_size))
            n = ids.numel()
            input_ids = torch.stack([torch.full((n,), cls_id), ids, torch.full((n,), sep_id)], dim=1)
            mask = torch.ones_like(input_ids)
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            pooled = hidden.mean(dim=1)
            pooled = torch.nn.functional.normalize(pooled, dim=1)
            out[start : start + n] = pooled.numpy()
    return settle(out)


class TeacherCache:
    """The teacher's tokenizer, single-token vectors and text embeddings, cached in a folder.

    Args:
        directory (Path): the cache folder (created when missing).
        teacher_python (str | None): an interpreter with ``sae[teacher]`` installed, used
            when this one cannot import sentence-transformers (default: env ``SAE_TEACHER_PYTHON``).
    """

    def __init__(self, directory: str | Path, teacher_python: str | None = None) -> None:
        self.dir = Path(directory)
        if self.dir.exists() and not self.dir.is_dir():
            raise InputError(f"{directory}: is a file; the teacher cache is a directory")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{directory}: cannot create the teacher cache: {exc.strerror or exc}") from None
        self.teacher_python = teacher_python or os.environ.get("SAE_TEACHER_PYTHON")
        self._texts: dict[str, int] | None = None
        self._emb: np.ndarray | None = None

    def _run(self, texts: list[str]) -> None:
        # JSON Lines: a text may be empty or hold a line break, which one text per line would lose.
        request = self.dir / REQUESTS_FILE
        try:
            request.write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{request}: cannot write the teacher's request ({exc.strerror or exc}); the teacher "
                             f"cache {self.dir} must be writable while it lacks embeddings") from None
        argv = ["--cache", str(self.dir), "--texts", str(request)]
        if importlib.util.find_spec("sentence_transformers") is not None:
            if run(argv) != 0:
                raise InputError("the teacher failed (see its output above)")
            return
        python = self.teacher_python
        if python and not Path(python).is_file():  # named, but not there: said as such
            raise InputError(f"{python}: no such teacher interpreter (--teacher-python or SAE_TEACHER_PYTHON); the "
                             "teacher cache lacks embeddings and this interpreter has no sentence-transformers: "
                             "pip install 'sae[teacher]', or name an interpreter that has it")
        if not python:
            raise InputError(
                "the teacher cache lacks embeddings and this interpreter has no sentence-transformers: "
                "pip install 'sae[teacher]', or name a teacher interpreter with --teacher-python"
            )
        root = Path(__file__).resolve().parents[2]
        env = dict(os.environ, PYTHONPATH=str(root))
        # Not ``-m sae.distill.teacher_cache``: the package imports this module first, and runpy
        # warns about running a module that is already imported.
        entry = "import sys; from sae.distill.teacher_cache import main; sys.exit(main(sys.argv[1:]))"
        done = subprocess.run([python, "-c", entry, *argv], env=env)
        if done.returncode != 0:
            raise InputError(f"the teacher ({python}) failed with exit code {done.returncode}")

    def _ready(self) -> None:
        if not (self.dir / TOKENS_FILE).exists() or not (self.dir / "tokenizer.json").exists():
            self._run([])

    def tokenizer_json(self) -> str:
        """The teacher's tokenizer, without padding or truncation settings."""
        from tokenizers import Tokenizer

        self._ready()
        file = self.dir / "tokenizer.json"
        try:
            tok = Tokenizer.from_file(str(file))
        except Exception as exc:  # tokenizers raises a bare Exception for a bad file
            raise InputError(f"{file}: not a readable tokenizer ({one_line(exc)}); {_REDO}") from None
        tok.no_padding()
        tok.no_truncation()
        return tok.to_str()

    def tokens(self) -> np.ndarray:
        """``(vocab, dim)`` float32: the teacher's embedding of every token alone."""
        self._ready()
        file = self.dir / TOKENS_FILE
        try:
            with open(file, "rb") as f:
                if f.read(6) != b"\x93NUMPY":  # np.load would read it as a pickle, and refuse that
                    raise InputError(f"{file}: not an .npy file; {_REDO}")
            tokens = np.load(file, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise InputError(f"{file}: not a readable .npy file ({one_line(exc)}); {_REDO}") from None
        if tokens.ndim != 2 or tokens.dtype != np.float32 or not tokens.size:
            raise InputError(f"{file}: holds a {tokens.dtype} array of shape {tokens.shape}, expected "
                             f"(vocabulary, dim) float32; {_REDO}")
        if not np.isfinite(tokens).all():
            raise InputError(f"{file}: contains NaN or infinity; {_REDO}")
        return tokens

    def _load(self) -> None:
        from sae.teacher import read_teacher

        file = self.dir / TEXTS_FILE
        if file.exists():
            try:
                table = read_teacher(file)
            except InputError as exc:
                raise InputError(f"{exc}; {_REDO}") from None
            self._texts = {t: i for i, t in enumerate(table.texts)}
            self._emb = np.asarray(table.embeddings)
        else:
            self._texts, self._emb = {}, None

    def embeddings(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 teacher embeddings, computing the ones not cached."""
        if self._texts is None:
            self._load()
        missing = [t for t in dict.fromkeys(texts) if t not in self._texts]
        if missing:
            self._run(missing)
            self._load()
            lost = [t for t in missing if t not in self._texts]
            if lost:  # a teacher that exits 0 without them: said, not a KeyError
                raise InputError(f"{self.dir / TEXTS_FILE}: the teacher ran but returned no embedding for {len(lost)} of the "
                                 f"{len(missing)} requested text(s), e.g. {lost[0][:60]!r}")
        if not texts:
            return np.zeros((0, self.tokens().shape[1]), dtype=np.float32)
        return self._emb[[self._texts[t] for t in texts]]


def read_requests(path: str | Path) -> list[str]:
    """The texts of a request: a ``.jsonl`` file holds one JSON string per line (what
    :class:`TeacherCache` writes: any text, the empty one and line breaks included), any
    other file one text per line (empty lines skipped)."""
    with open(path, encoding="utf-8", newline="") as f:
        data = f.read()
    if str(path).endswith(".jsonl"):
        return [json.loads(line) for line in data.split("\n") if line]
    return [line.rstrip("\r") for line in data.split("\n") if line.rstrip("\r")]


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # np.save would append ".npy" to a temporary name
        np.save(f, array)


def run(argv: list[str] | None = None) -> int:
    """Fill the cache (the teacher's interpreter runs this). Every file is written to a
    temporary name and renamed (:func:`sae.io.write_atomically`): an interrupted run leaves
    no partial file that a later one would take as finished."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", required=True, help="cache folder (gitignored, e.g. out/distill)")
    ap.add_argument("--texts", help="file of texts to embed (appended to the cached texts): one per line, or "
                    "a .jsonl file of JSON strings, one per line")
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    args = ap.parse_args(argv)

    import torch

    torch.manual_seed(0)
    from sae.teacher import embed_settled, load_teacher_model, read_teacher, write_teacher

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    st = load_teacher_model(args.model).to(torch.float64)  # float64: see the module docstring

    # The student's tokenizer is the teacher's own (all-MiniLM-L6-v2, Apache-2.0).
    from sae.teacher import resolve_model

    tok_json = Path(resolve_model(args.model)) / "tokenizer.json"
    if not (cache / "tokenizer.json").exists() and tok_json.exists():
        data = tok_json.read_bytes()
        write_atomically(cache / "tokenizer.json", lambda tmp: Path(tmp).write_bytes(data))

    tok_file = cache / TOKENS_FILE
    if not tok_file.exists():
        t = time.perf_counter()
        vocab = st.tokenizer.vocab_size
        vec = token_vectors(st, vocab)
        write_atomically(tok_file, lambda tmp: _save_npy(tmp, vec))
        print(f"teacher: {vocab} token vectors in {time.perf_counter() - t:.1f} s", file=sys.stderr)

    if args.texts:
        wanted = read_requests(args.texts)
        file = cache / TEXTS_FILE
        texts: list[str] = []
        emb = np.zeros((0, 384), dtype=np.float32)
        if file.exists():
            old = read_teacher(file)
            texts, emb = list(old.texts), np.array(old.embeddings)
        have = set(texts)
        todo = list(dict.fromkeys(t for t in wanted if t not in have))
        if todo:
            t = time.perf_counter()
            # Sorting by length makes batches of similar lengths (much faster on CPU).
            todo.sort(key=len)
            new = embed_settled(todo, st, batch_size=128)
            texts += todo
            emb = np.concatenate([emb, new]) if emb.size else new
            write_teacher(file, texts, emb, {"teacher": "sentence-transformers/all-MiniLM-L6-v2", "normalized": "true"})
            print(f"teacher: {len(todo)} texts in {time.perf_counter() - t:.1f} s "
                  f"({len(todo) / (time.perf_counter() - t):.0f}/s)", file=sys.stderr)
        else:
            print("teacher: every requested text is cached", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """:func:`run` as a process of its own (the teacher's interpreter): an error is one line
    and Ctrl-C, which reaches it with the command that started it, exits 130 without a
    traceback (the command says it was interrupted)."""
    from sae.errors import run_script

    try:
        return run_script(lambda: run(argv), "teacher")
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
