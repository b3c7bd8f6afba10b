"""Regenerate the pictures of docs/VIEW.md and the README, each made by ``sae view --png``.

    python tools/view_screenshots.py            # writes docs/view/*.png

The example Algorithm is the viewer's example (tests/tiny.py, ``make_view_example``):
its annealing commits a three-token merge, a guard reverts a rewrite (the next-best
bid then commits), and a rule changes a vector through a transform; it is saved with
``sae.save_algorithm`` into a temporary directory. The last picture uses the bundled default Algorithm. Both
backends are shown side by side when a GPU adapter exists (lavapipe counts).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

TEXT = "the new york city players was not happy !"
SIZE = "1280x720"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "view"), help="folder for the PNGs (default docs/view)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from tiny import make_view_example

    from sae import save_algorithm
    from sae.cli import main as sae

    with tempfile.TemporaryDirectory() as tmp:
        alg = save_algorithm(make_view_example(), Path(tmp) / "view-example", vector_dtype="float32")
        pictures = {
            # step 3: the merge of "new york city" commits; the item's history shows its earlier revert
            "merge_step.png": [TEXT, "--keys", "right right right n n"],
            # the final program, the VM's shares, and the cosine with a second text
            "final_vm_pair.png": [TEXT, "the new york city players was happy !", "--keys", "end n n n"],
        }
        for name, view_args in pictures.items():
            code = sae(["view", *view_args, "--algorithm", str(alg), "--size", SIZE, "--png", str(out / name)])
            if code:
                return code
    code = sae(["view", "A man is not playing the guitar on the street.", "--size", SIZE,
                "--keys", "n n n n", "--png", str(out / "default_algorithm.png")])
    for path in sorted(out.glob("*.png")):
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {path.stat().st_size // 1024} KiB")
    return code


if __name__ == "__main__":
    from sae.errors import run_script

    sys.exit(run_script(main))
