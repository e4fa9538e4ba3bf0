"""Write the default model's card into ``model_cards/`` from its artifact.

    .venv/bin/python scripts/write_default_card.py PATH/TO/ARTIFACT [--out model_cards/default]

Same as ``lbp-benefit card --model ARTIFACT --out model_cards/default``: the artifact is loaded
hash-verified, the card rebuilt from its ``report/`` files and manifest, and ``card.md``,
``card.json`` and the PNG figures written (deterministic except the manifest's created time).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "model_cards" / "default"


def write_default_card(model: str | Path, out: str | Path = DEFAULT_OUT) -> list[Path]:
    """Build the card of artifact ``model`` and write it to ``out``; return the written paths."""
    from lbp_benefit.cmd_card import card_from_artifact
    from training.cards import write_card

    return write_card(card_from_artifact(Path(model)), Path(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="the default model artifact (folder or .zip)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="folder to write (default: model_cards/default)")
    a = ap.parse_args(argv)
    from predict.errors import LbpError

    try:
        paths = write_default_card(a.model, a.out)
    except LbpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} files to {a.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
