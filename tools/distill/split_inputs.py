"""What the distillation tools beside this file read: an Algorithm and an STS-B split of
the shared data with its teacher file (``--shared``, ``--algorithm``, ``--split``)."""

from __future__ import annotations

import argparse

from sae.algorithm import Algorithm, load_algorithm
from sae.cli.common import positive_int
from sae.evaluate import Pairs, read_shared_split
from sae.teacher import TeacherTable


def split_inputs(doc: str | None, passes: bool = False) -> tuple[argparse.Namespace, Pairs, TeacherTable, Algorithm]:
    """Parse the tool's command line (``doc`` is its help; ``passes``: it takes ``--passes N``,
    profiled passes) and read what it names."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--algorithm", default=None)
    ap.add_argument("--split", default="dev", choices=("dev", "train"))
    if passes:
        ap.add_argument("--passes", type=positive_int, default=5, help="profiled passes the rules' costs average")
    args = ap.parse_args()
    pairs, teacher = read_shared_split(args.shared, args.split)
    return args, pairs, teacher, load_algorithm(args.algorithm)
