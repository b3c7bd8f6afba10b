"""Options and helpers shared by the commands that run the engine."""

from __future__ import annotations

import argparse
import logging
import os

from sae.engine import BACKENDS, Engine


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def int_in(low: int, high: int):
    """An argparse type: an integer in ``low..high`` (a bound on what a run allocates up front)."""

    def parse(text: str) -> int:
        value = _int_at_least(text, low)
        if value > high:
            raise argparse.ArgumentTypeError(f"must be in {low}..{high:,}, got {value}")
        return value

    return parse


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free port) to 65535."""
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535 (0: any free port), got {value}")
    return value


def add_engine_options(parser: argparse.ArgumentParser, *, batch: bool = True, backend: bool = True,
                       backend_help: str | None = None, threads: bool = True) -> None:
    """--algorithm, --adapter, and unless turned off --backend (``backend_help`` for a command
    that reads it otherwise), --batch-size and --threads (``threads``: only with ``batch``)."""
    parser.add_argument("--algorithm", metavar="PATH", help="Algorithm directory (default: the bundled one)")
    if backend:
        parser.add_argument(
            "--backend",
            choices=BACKENDS,
            default="auto",
            help=backend_help or "auto: a GPU adapter when one can run sae, else the CPU (says which on stderr)",
        )
    parser.add_argument(
        "--adapter",
        metavar="NAME",
        default=os.environ.get("SAE_ADAPTER"),
        help="GPU adapter to use, by (part of) its name (env SAE_ADAPTER)",
    )
    if batch:
        parser.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                            help="documents per batch (default: the backend's, 2048 on the CPU, 1024 on the GPU)")
    if batch and threads:
        parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                            help="batches embedded side by side on the CPU path (default: CPU count, at most 8)")


def engine_from_args(args: argparse.Namespace) -> Engine:
    """The engine the options describe; its backend is reported on stderr."""
    engine = Engine(
        args.algorithm,
        backend=args.backend,
        batch_size=getattr(args, "batch_size", None),
        adapter=args.adapter,
        threads=getattr(args, "threads", None),
        long_texts=getattr(args, "long_texts", "window"),
    )
    logging.getLogger("sae").info("backend: %s (%s)", engine.backend.name, engine.backend.description)
    return engine
