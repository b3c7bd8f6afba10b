"""The ``sae`` command line. Each command is a module here with ``add_parser`` and ``run``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from sae import __version__
from sae.errors import run_script

#: Command modules, in the order ``sae --help`` lists them.
COMMANDS = ("embed", "trace", "compare", "info", "eval", "demo", "teach", "distill", "profile", "serve", "view",
            "evolve", "lineage")


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors in one line, as every other bad input is (argparse prints the whole
    usage block first: ten lines for ``sae serve``); ``--help`` still shows the usage."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(
        prog="sae",
        description="Semantic Annealing Engine: text to embeddings by rewriting token programs.",
    )
    parser.add_argument("--version", action="version", version=f"sae {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"sae.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"sae.cli.{name}":
                continue  # command not built yet
            raise
        module.add_parser(sub)
    return parser


def _setup_logging(verbose: bool) -> None:
    """Rich's log lines on a terminal; elsewhere (a service's log, a pipe) one plain line a
    record: rich wraps at 80 columns when it cannot see a terminal's width, and a log
    collector takes each piece for a record of its own."""
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_time=False, show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)-8s %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    # Not "wgpu": creating its logger before wgpu is imported breaks wgpu's own setup.
    logging.getLogger("tokenizers").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sae`` console script; returns the exit code."""
    if sys.stderr is None:  # started with it closed (2>&-): the command still runs, its messages go nowhere
        sys.stderr = open(os.devnull, "w")
    parser = build_parser()
    parsed: list[argparse.Namespace] = []

    def parse() -> int:
        try:
            parsed.append(parser.parse_args(argv))
        except SystemExit as exc:
            if exc.code:
                raise  # a usage error, on stderr
        return 0  # --help and --version: what they wrote to stdout is checked as a command's output

    code = run_script(parse, "sae")
    if not parsed:
        return code
    args = parsed[0]
    _setup_logging(args.verbose)
    try:
        return run_script(lambda: args.run(args), f"sae {args.command}")
    except KeyboardInterrupt:
        print(f"sae {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
