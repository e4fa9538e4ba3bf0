"""Reading the dataset's tables (CSV or Parquet) without silent coercion.

CSV cells are read as text (missing = empty cell) so that a non-numeric value can be
reported with its line and column instead of quietly becoming NaN.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from predict.errors import Problem, ValidationFailed


def find_table(folder: Path, stem: str) -> tuple[Path | None, list[Problem]]:
    """Locate ``stem.csv`` or ``stem.parquet`` in ``folder`` (exactly one)."""
    found = [p for p in (folder / f"{stem}.csv", folder / f"{stem}.parquet") if p.is_file()]
    if not found:
        return None, [Problem("missing_file", f"{stem}.csv or {stem}.parquet is required in {folder}", file=f"{stem}.csv")]
    if len(found) == 2:
        return None, [
            Problem("ambiguous_file", f"both {stem}.csv and {stem}.parquet exist in {folder}; keep one", file=f"{stem}.csv")
        ]
    return found[0], []


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (all cells as text; '' = missing) or Parquet table. Raises ValidationFailed
    with the file and line for unreadable input."""
    name = path.name
    if path.stat().st_size == 0:
        raise ValidationFailed([Problem("empty_file", "the file is empty", file=name)], what=name)
    if path.suffix == ".parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - any reader failure is the user's file
            raise ValidationFailed([Problem("unreadable_file", f"not a readable Parquet file ({exc})", file=name)], what=name)
        df = df.reset_index(drop=True)
        for col in df.columns:
            if not pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
                df[col] = df[col].map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
        df.attrs["row_offset"] = 1
    else:
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise ValidationFailed(
                [Problem("bad_encoding", f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8", file=name, row=line)],
                what=name,
            )
        rows = list(csv.reader(text.splitlines()))
        if not rows or not any(cell.strip() for cell in rows[0]):
            raise ValidationFailed([Problem("empty_file", "the file has no header line", file=name)], what=name)
        header = [h.strip() for h in rows[0]]
        problems = []
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            problems.append(Problem("duplicate_column", f"columns named more than once: {', '.join(dupes)}", file=name, row=1))
        if any(h == "" for h in header):
            problems.append(Problem("empty_column_name", "a column has no name in the header", file=name, row=1))
        body = []
        for i, r in enumerate(rows[1:], start=2):
            if not any(c.strip() for c in r):
                continue  # blank line
            if len(r) != len(header):
                problems.append(
                    Problem("ragged_row", f"{len(r)} cells where the header has {len(header)}", file=name, row=i)
                )
                continue
            body.append([c.strip() for c in r] + [i])
        if problems:
            raise ValidationFailed(problems, what=name)
        df = pd.DataFrame(body, columns=header + ["__line"])
        df.attrs["row_offset"] = None
    if len(df) == 0:
        raise ValidationFailed([Problem("empty_file", "the file has a header but no data rows", file=name)], what=name)
    if "__line" not in df.columns:
        df["__line"] = np.arange(1, len(df) + 1)
    df.attrs["file"] = name
    return df


def parse_numeric(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values as float (empty → NaN) and a mask of non-empty cells that are not numbers."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        vals = series.to_numpy(dtype=float)
        return vals, ~np.isfinite(vals) & ~np.isnan(vals)
    text = series.astype(str)
    empty = text.str.strip() == ""
    vals = pd.to_numeric(text.where(~empty, None), errors="coerce").to_numpy(dtype=float)
    bad = (~empty.to_numpy()) & (np.isnan(vals) | ~np.isfinite(vals))
    return vals, bad
