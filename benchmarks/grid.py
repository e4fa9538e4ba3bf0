"""Run one benchmark function over scenarios x seeds, saving the rows so far after each run (a long
run interrupted keeps what it measured)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import pandas as pd


def run_grid(fn: Callable[[str, int], list[dict]], scenarios: Iterable[str], seeds: Iterable[int],
             out: Path) -> pd.DataFrame:
    """``fn(scenario, seed)`` for every scenario and seed in order; its rows concatenated, written
    to ``out`` (CSV) after each call and returned."""
    rows: list[dict] = []
    seeds = list(seeds)
    for s in scenarios:
        for seed in seeds:
            rows += fn(s, seed)
            pd.DataFrame(rows).to_csv(out, index=False)
    return pd.DataFrame(rows)
