"""What the distillation tools beside this file read: an Algorithm and an STS-B split of
the shared data with its teacher file (``--shared``, ``--algorithm``, ``--split``)."""

from __future__ import annotations

import argparse

from sae.algorithm import Algorithm, load_algorithm
from sae.evaluate import Pairs, read_shared_split
from sae.teacher import TeacherTable


def split_inputs(doc: str | None) -> tuple[argparse.Namespace, Pairs, TeacherTable, Algorithm]:
    """Parse the tool's command line (``doc`` is its help) and read what it names."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--algorithm", default=None)
    ap.add_argument("--split", default="dev", choices=("dev", "train"))
    args = ap.parse_args()
    pairs, teacher = read_shared_split(args.shared, args.split)
    return args, pairs, teacher, load_algorithm(args.algorithm)
