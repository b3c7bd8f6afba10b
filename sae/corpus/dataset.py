"""Partitioned inputs: a directory or a glob of Parquet files, embedded part by part.

Each input part gets its own output, at the same relative path under the output
directory: ``in/2024/a.parquet`` with ``-o out`` becomes ``out/2024/a.parquet``.
Files and directories whose names start with ``.`` or ``_`` (``_SUCCESS``,
``_metadata``, the outputs' own resume state) are not parts, as in other Parquet tools.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from sae.errors import InputError

_MAGIC = set("*?[")


@dataclass(frozen=True)
class Part:
    """One input file of a dataset and where its output goes."""

    path: Path
    relative: str  #: POSIX path relative to the dataset's root


def is_dataset(spec: str | os.PathLike[str]) -> bool:
    """Whether INPUT names a dataset: a directory, or a glob that is not an existing file."""
    spec = os.fspath(spec)  # a Path is not iterable, and the glob test reads characters
    if not isinstance(spec, str):
        raise TypeError(f"INPUT must be a str or an os.PathLike of a str, got {type(spec).__name__}")
    if spec == "-":
        return False
    path = Path(spec)
    if path.is_dir():
        return True
    return any(c in _MAGIC for c in spec) and not path.exists()


def _hidden(relative: Path) -> bool:
    return any(p.startswith((".", "_")) for p in relative.parts)


def find_parts(spec: str, exclude: Path | None = None) -> list[Part]:
    """The Parquet files of a dataset INPUT, sorted by relative path; files under
    ``exclude`` (the output directory) are left out.

    A directory is searched as the glob ``DIR/**/*`` would be, so both forms agree:
    symbolic links to directories are followed; a file reached by two paths (a link
    back up the tree) is one part, under its shortest path."""
    path = Path(spec)
    if path.is_dir():
        root = path
        pattern = str(Path(glob.escape(str(path))) / "**" / "*")
    else:
        prefix = []
        for part in Path(spec).parts:
            if any(c in _MAGIC for c in part):
                break
            prefix.append(part)
        root = Path(*prefix) if prefix else Path(".")
        pattern = spec
    candidates = [Path(p) for p in glob.glob(pattern, recursive=True) if p.lower().endswith(".parquet")]
    candidates.sort(key=lambda p: (len(p.parts), p.as_posix()))  # the shortest path of a file comes first
    skip = exclude.resolve() if exclude is not None else None
    seen: set[Path] = set()
    inside_out = 0
    parts = []
    for p in candidates:
        if not p.is_file():
            if p.exists() and not p.is_dir():  # refused as a single INPUT would be, not skipped unseen
                raise InputError(f"{p}: not a regular file (a pipe or a device) in the dataset {spec}")
            continue
        relative = p.relative_to(root)
        if _hidden(relative):
            continue
        real = p.resolve()
        if skip is not None and real.is_relative_to(skip):
            inside_out += 1
            continue
        if real in seen:
            continue
        seen.add(real)
        parts.append(Part(p, relative.as_posix()))
    if not parts and inside_out:
        raise InputError(f"{spec}: lies inside OUT {exclude}, whose files are outputs, not parts; name an OUT "
                         "that does not contain the input")
    if not parts:
        raise InputError(f"{spec}: no Parquet files found")
    return sorted(parts, key=lambda p: p.relative)


def prepare_output_dir(out: str) -> Path:
    """OUT for a dataset: an existing directory, or a new one in an existing directory."""
    path = Path(out)
    if path.suffix.lower() == ".npy":
        raise InputError(f"{out}: a dataset INPUT writes a directory of Parquet files, not a .npy file")
    if path.exists() and not path.is_dir():
        raise InputError(f"{out}: is a file; a dataset INPUT needs OUT to be a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not path.exists():
        if not parent.is_dir():
            raise InputError(f"{out}: directory {parent} does not exist")
        try:
            path.mkdir()
        except OSError as exc:
            raise InputError(f"{out}: cannot create the directory ({exc.strerror})") from None
    return path
