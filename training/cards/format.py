"""Number and table formatting shared by the card's sections (Markdown and JSON)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def fnum(x: Any, d: int = 3) -> str:
    """Fixed decimals; '–' for missing or non-finite; never '-0.000'."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(v):
        return "–"
    s = f"{v:.{d}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s


def sig(x: Any, n: int = 5) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    return f"{v:.{n}g}" if math.isfinite(v) else "–"


def ci_decimals(lo, hi, default: int = 2) -> int:
    """Decimals that show a 95% CI's width and no more (0 to 3; ``default`` without a finite CI)."""
    try:
        a, b = float(lo), float(hi)
    except (TypeError, ValueError):
        return default
    if not (math.isfinite(a) and math.isfinite(b)) or b <= a:
        return default
    return int(min(3, max(0, 1 - math.floor(math.log10(b - a)))))


def fci(est, lo, hi, d: int = 3) -> str:
    e = fnum(est, d)
    if e == "–":
        return "–"
    if fnum(lo, d) == "–" or fnum(hi, d) == "–":
        return e
    return f"{e} ({fnum(lo, d)} to {fnum(hi, d)})"


def jnum(x: Any) -> float | None:
    """A JSON number, rounded to 6 significant digits (stable across platforms), or None."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(v):
        return None
    return float(f"{v:.6g}")


def md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return out


def records(df: pd.DataFrame | None, cols: list[str] | None = None) -> list[dict]:
    if df is None:
        return []
    d = df[cols] if cols else df
    out = []
    for r in d.to_dict("records"):
        rec = {}
        for k, v in r.items():
            if isinstance(v, (float, np.floating)):
                rec[k] = jnum(v)
            elif isinstance(v, (np.integer,)):
                rec[k] = int(v)
            elif isinstance(v, (np.bool_,)):
                rec[k] = bool(v)
            elif v is None or (isinstance(v, float) and np.isnan(v)):
                rec[k] = None
            else:
                rec[k] = v
        out.append(rec)
    return out


# ----------------------------------------------------------------------------- helpers on inputs
