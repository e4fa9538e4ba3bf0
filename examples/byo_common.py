"""Shared helpers of the bring-your-own-IPD example converters (examples/<trial>/make_data.py)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import pandas as pd


def write(folder: Path, parts: pd.DataFrame, outs: pd.DataFrame) -> None:
    """Write the two tables of the data format (docs/data-format.md); missing = empty cell."""
    folder.mkdir(parents=True, exist_ok=True)
    parts.to_csv(folder / "participants.csv", index=False, lineterminator="\n")
    outs.to_csv(folder / "outcomes.csv", index=False, lineterminator="\n", float_format="%.6g")


def yes_no(s: pd.Series) -> pd.Series:
    """'Yes'/'No' (any case, padded; also 'Y'/'N' and '1_yes'/'0_no') -> 1/0; anything else missing."""
    t = s.astype(str).str.strip().str.lower()
    out = pd.Series(pd.NA, index=s.index, dtype="Int64")
    out[t.isin(["yes", "y", "1_yes"])] = 1
    out[t.isin(["no", "n", "0_no"])] = 0
    return out


def main(here: Path, tables: Callable[[], tuple]) -> None:
    """A converter's command line: write its tables to the folder given as the first argument (default
    ``<here>/data``) and say how many rows were written."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else here / "data"
    p, o = tables()
    write(out, p, o)
    print(f"wrote {out}: {len(p)} participants, {len(o)} outcome rows")
