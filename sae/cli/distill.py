"""``sae distill``: build an Algorithm from STS-B train and the teacher (the bundled default's recipe)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from sae.distill.recipe import __doc__ as recipe_doc

    p = sub.add_parser(
        "distill",
        help="distil an Algorithm from the teacher on STS-B train (the bundled default's recipe)",
        description=recipe_doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from sae.distill.recipe import add_arguments

    add_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sae.distill.recipe import run as run_recipe

    return run_recipe(args)
