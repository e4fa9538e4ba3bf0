"""Observation process: from latent outcomes to the raw rows of ``outcomes.csv``.

* Scores are clipped to 0–100, converted to the trial's instrument (``from_0_100``) and
  rounded to its natural precision (VAS mm, NRS/RMDQ/ODI points, VAS cm to 0.1).
* Each trial measures its outcomes at baseline (week 0) and at its own weeks in each window.
  A trial listing two weeks in a window measures both: the week closest to the target (the
  one harmonisation selects) carries the model's Y; the other carries Y + drift × (target −
  week) + N(0, sd²) (less improvement before the target), so picking the wrong week shows.
* Missingness is completely at random within trial: a missed visit removes a whole window
  for the participant (both outcomes, every week in it), a missing item removes one outcome
  in a window, and baseline items are missing at the scenario's rate. Because missingness
  removes whole windows, the harmonised value, when present, is always the model's Y.
"""
from __future__ import annotations

import numpy as np

from training.instruments import BUILTIN
from training.simulate.scenario import FOLLOW_UPS, OUTCOMES, Scenario


def to_raw(score_0_100: np.ndarray, instrument: str, precision: float) -> tuple[np.ndarray, np.ndarray]:
    """Clip to 0–100, convert to the raw instrument scale and round to its precision.
    Returns (raw values as parsed from text, integer grid index)."""
    ins = BUILTIN[instrument]
    raw = ins.from_0_100(np.clip(score_0_100, 0.0, 100.0))
    k = np.rint((raw - ins.min) / precision).astype(np.int64)
    kmax = int(round((ins.max - ins.min) / precision))
    k = np.clip(k, 0, kmax)
    if precision >= 1:
        vals = ins.min + k * float(precision)
    else:
        vals = ins.min + k / float(round(1.0 / precision))
    return vals, k


def long_rows(scen: Scenario, starts: np.ndarray, y_main: dict, y_base_raw: dict, base_missing: dict,
              window_missing: dict, item_missing: dict, rng: np.random.Generator) -> dict:
    """Build the long outcome table as column arrays (already in output order)."""
    obs = scen.raw.get("observation") or {}
    extra = obs.get("extra_visit") or {}
    drift = float(extra.get("drift_per_week", 0.0))
    esd = float(extra.get("sd", 0.0))
    cols = {"trial": [], "participant": [], "outcome": [], "instrument": [], "week": [], "value": []}
    for ti, t in enumerate(scen.trials):
        lo, hi = int(starts[ti]), int(starts[ti + 1])
        n = hi - lo
        pid = np.arange(1, n + 1, dtype=np.int64)
        for oi, o in enumerate(OUTCOMES):
            code = t.instruments[o]
            if code is None:
                continue
            prec = scen.precision(code)
            blocks = []  # (week, values, keep)
            blocks.append((0.0, y_base_raw[o][lo:hi], ~base_missing[o][lo:hi]))
            for f in FOLLOW_UPS:
                weeks = t.weeks.get(f)
                if not weeks:
                    continue
                keep = ~(window_missing[f][lo:hi] | item_missing[(o, f)][lo:hi])
                y = y_main[(o, f)][lo:hi]
                target = scen.target_week(f)
                for j, wk in enumerate(weeks):
                    if j == 0:
                        yy = y
                    else:
                        yy = y + drift * (target - wk) + esd * rng.standard_normal(n)
                    vals, _ = to_raw(yy, code, prec)
                    blocks.append((wk, vals, keep))
            for wk, vals, keep in blocks:
                m = int(keep.sum())
                cols["trial"].append(np.full(m, ti, np.int32))
                cols["participant"].append(pid[keep])
                cols["outcome"].append(np.full(m, oi, np.int8))
                cols["instrument"].append(np.full(m, list(BUILTIN).index(code), np.int8))
                cols["week"].append(np.full(m, wk))
                cols["value"].append(np.asarray(vals, float)[keep])
    out = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in cols.items()}
    order = np.lexsort((out["week"], out["outcome"], out["participant"], out["trial"]))
    return {k: v[order] for k, v in out.items()}
