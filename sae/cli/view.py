"""``sae view TEXT [TEXT2]``: the visual debug viewer, in a window or as a PNG (needs ``sae[view]``)."""

from __future__ import annotations

import argparse
import os

from sae.errors import InputError

SIZE_HELP = "window or image size in pixels (default 1600x900)"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT") from None
    if not (320 <= w <= 8192 and 240 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"{text!r}: width must be in 320..8192 and height in 240..8192")
    return w, h


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "view",
        help="the visual debug viewer: see why every rewrite happened (needs: pip install 'sae[view]')",
        description="Show a text's program through annealing in a window: one row per step, the bids "
        "of the current step and why each attempted rewrite committed or reverted, each item's share "
        "of the embedding, CPU and GPU side by side with differing cells outlined. With two texts, their "
        "cosine and the items that drive it. Press ? in the window for the keys. --png draws the same "
        "view offscreen, with no display. Needs `pip install 'sae[view]'`.",
    )
    p.add_argument("texts", metavar="TEXT", nargs="*", help="the text to view; a second TEXT is compared with it")
    p.add_argument("--input", metavar="FILE", help="texts to pick from: .txt (one per line), .parquet/.arrow "
                   "with a text column, or - for stdin")
    p.add_argument("--algorithm", metavar="PATH", help="Algorithm directory (default: the bundled one)")
    p.add_argument("--backend", choices=("both", "cpu", "gpu"), default="both",
                   help="both (default): CPU and GPU side by side, or the CPU alone when no GPU adapter "
                   "exists; cpu or gpu: that one alone")
    p.add_argument("--adapter", metavar="NAME", default=os.environ.get("SAE_ADAPTER"),
                   help="GPU adapter to anneal on, by (part of) its name (env SAE_ADAPTER)")
    p.add_argument("--png", metavar="OUT.png", help="draw the view offscreen into OUT.png and exit (no display)")
    p.add_argument("--keys", metavar="KEYS", default="",
                   help='key presses to replay first, e.g. "right right n" (also click:X,Y and wheel:DX,DY)')
    p.add_argument("--screenshot", metavar="OUT.png",
                   help="open the window, replay --keys, save the window's picture to OUT.png and exit")
    p.add_argument("--size", type=_size, default=None, metavar="WxH", help=SIZE_HELP)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sae.io import argument_text, check_png_output, read_texts

    if len(args.texts) > 2:
        raise InputError(f"at most two TEXTs (got {len(args.texts)}); use --input FILE for more")
    if args.png and args.screenshot:
        raise InputError("--png draws offscreen and --screenshot draws the window: give one of them")
    for flag, out in (("--png", args.png), ("--screenshot", args.screenshot)):
        if out is not None:
            check_png_output(out, flag, inputs=(args.input,))
    try:
        from sae.viewer import app, state

        if not args.png:
            from sae.viewer import window
    except ImportError as exc:
        raise InputError(str(exc)) from None
    inputs = state.parse_keys(args.keys)
    texts = [argument_text(t) for t in args.texts]
    if args.input is not None:
        texts += read_texts(args.input)
    from sae.viewer.session import open_session

    session = open_session(texts, args.algorithm, args.backend, args.adapter, listing=args.input is not None)
    size = args.size or app.DEFAULT_SIZE
    if args.png:
        app.render_png(app.Viewer(session), args.png, size, inputs)
        return 0
    return window.run_window(session, size, inputs, args.screenshot)
