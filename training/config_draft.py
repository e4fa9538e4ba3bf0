"""Draft a ``study.yaml`` from a dataset folder (``lbp-benefit config init --data DIR``).

Everything is read from the data and written as a starting point for the user to edit: covariate
types (0/1 columns binary, text columns categorical with their levels, other numbers continuous
with the observed range as the plausible range), treatment classes (the most frequent class is
*guessed* as the comparator-free active class only if the user does not say), outcomes with their
instruments (0/1 values → a binary outcome, which has no baseline; values at week 0 → a baseline;
an empty instrument cell → the outcome's single instrument) and follow-up windows around the
observed post-baseline weeks: one per distinct visit week, or one around the median for an outcome
recorded once per participant at scattered weeks (an event at the end of each patient's own
follow-up); an outcome seen in some windows only gets ``follow_up:`` listing those.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from predict.errors import LbpError
from training.config import EVENT, parse_config
from training.instruments import BUILTIN
from training.tables import find_table, read_table

BASE_COLUMNS = ("trial", "participant", "arm", "treatment", "subtype", "__line")


def _numeric(col: pd.Series) -> pd.Series | None:
    s = col.replace("", np.nan)
    num = pd.to_numeric(s, errors="coerce")
    return num if num.notna().sum() == s.notna().sum() else None


def _covariate(name: str, col: pd.Series) -> dict:
    num = _numeric(col)
    observed = col.replace("", np.nan).dropna()
    if num is None:  # text: categorical; the reference is the most frequent level (a stable comparison)
        levels = sorted(str(v) for v in observed.unique())
        counts = observed.astype(str).value_counts()
        ref = min(levels, key=lambda lv: (-int(counts.get(lv, 0)), lv)) if levels else None
        return {"type": "categorical", "categories": levels, "reference": ref}
    vals = num.dropna()
    if len(vals) and set(vals.unique()) <= {0.0, 1.0}:
        return {"type": "binary"}
    if not len(vals):
        return {"type": "continuous"}
    lo, hi = _outward(float(vals.min()), math.floor), _outward(float(vals.max()), math.ceil)
    if lo == hi:
        hi = lo + 1.0
    return {"type": "continuous", "plausible": [lo, hi]}


def _outward(x: float, rnd) -> float:
    """x rounded outward (floor for a lower bound, ceil for an upper one) to 4 significant digits, so
    that the drafted range reads '17.48' rather than '17.4876708984375' and still covers every value."""
    if x == 0 or not math.isfinite(x):
        return x
    q = 10.0 ** (math.floor(math.log10(abs(x))) - 3)
    return float(round(rnd(x / q) * q, 12))


def _clusters(weeks: np.ndarray, participants: np.ndarray) -> list[tuple[float, float, float]]:
    """The visits of one outcome as (target, first, last) week clusters. An outcome measured at most
    once per participant after baseline at scattered weeks (an event recorded at the end of each
    patient's own follow-up) is ONE cluster around its median week; otherwise one cluster per
    distinct post-baseline week (up to 4, else quartiles)."""
    m = weeks > 0
    post, who = weeks[m], participants[m]
    if not len(post):
        return []
    distinct = np.unique(post)
    if len(distinct) > 1 and pd.Series(who).duplicated().sum() == 0 and len(distinct) > 4:
        return [(float(np.median(post)), float(distinct[0]), float(distinct[-1]))]
    targets = distinct if len(distinct) <= 4 else np.unique(np.quantile(distinct, [0.25, 0.5, 0.75, 1.0], method="nearest"))
    return [(float(t), float(t), float(t)) for t in targets]


def _windows(clusters: list[tuple[float, float, float]]) -> dict:
    """Non-overlapping windows around the clusters of every outcome (overlapping clusters merge),
    split half-way between neighbours; the last ends at the last observed week."""
    if not clusters:
        return {"end": {"target_week": 1.0, "after": 0.0, "up_to": 1.0}}
    merged: list[list[float]] = []
    for t, lo, hi in sorted(clusters, key=lambda c: (c[1], c[2])):
        if merged and lo <= merged[-1][2]:
            last = merged[-1]
            last[1], last[2] = min(last[1], lo), max(last[2], hi)
            last[0] = min(max(last[0], last[1]), last[2])
        else:
            merged.append([t, lo, hi])
    out, after = {}, 0.0
    for i, (t, lo, hi) in enumerate(merged):
        up_to = hi if i == len(merged) - 1 else (hi + merged[i + 1][1]) / 2
        out[f"week_{t:g}".replace(".", "_")] = {"target_week": t, "after": after, "up_to": float(up_to)}
        after = float(up_to)
    return out


def _windows_of(weeks: np.ndarray, windows: dict) -> list[str]:
    """The windows holding at least one of these post-baseline weeks."""
    post = weeks[weeks > 0]
    return [name for name, w in windows.items() if ((post > w["after"]) & (post <= w["up_to"])).any()]


def draft_config(data: str | Path, active: str | None = None) -> dict:
    """A study config (as a dict ready for YAML) drafted from the dataset folder ``data``."""
    folder = Path(data)
    if not folder.is_dir():
        raise LbpError(f"dataset folder {folder} not found")
    tables = {}
    for stem in ("participants", "outcomes"):
        path, probs = find_table(folder, stem)
        if probs:
            raise LbpError(f"{folder}: {probs[0].message}")
        tables[stem] = read_table(path)
    parts, outs = tables["participants"], tables["outcomes"]
    for df, need in ((parts, ("trial", "participant", "arm", "treatment")),
                     (outs, ("trial", "participant", "outcome", "instrument", "week", "value"))):
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise LbpError(f"{folder}: required column(s) missing: {', '.join(missing)}")
    classes = [c for c in parts["treatment"].astype(str).str.strip().value_counts().index if c]
    if len(classes) < 2:
        raise LbpError(f"{folder}: participants name fewer than two treatment classes")
    if active is not None and active not in classes:
        raise LbpError(f"--active {active!r} is not one of the treatment classes {', '.join(classes)}")
    active = active or classes[0]
    covariates = {c: _covariate(c, parts[c].astype(str).str.strip()) for c in parts.columns if c not in BASE_COLUMNS}
    week = pd.to_numeric(outs["week"], errors="coerce").to_numpy(float)
    value = pd.to_numeric(outs["value"], errors="coerce").to_numpy(float)
    who = (outs["trial"].astype(str) + "\x1f" + outs["participant"].astype(str)).to_numpy()
    instrument = outs["instrument"].fillna("").astype(str).str.strip().replace("nan", "").to_numpy()
    groups = outs.groupby(outs["outcome"].astype(str).str.strip()).indices
    clusters = {name: _clusters(week[idx][~np.isnan(week[idx])], who[idx][~np.isnan(week[idx])])
                for name, idx in groups.items()}
    windows = _windows([c for cs in clusters.values() for c in cs])
    outcomes, instruments = {}, {}
    for name, idx in groups.items():
        v, w = value[idx], week[idx]
        codes = sorted(set(instrument[idx]) - {""})  # an empty cell: the outcome's single instrument
        if not codes:
            codes = [EVENT] if set(np.unique(v[~np.isnan(v)])) <= {0.0, 1.0} else [f"{name}_scale"]
        if set(np.unique(v[~np.isnan(v)])) <= {0.0, 1.0}:
            note = "; its week-0 rows are ignored: a binary outcome has no baseline" if (w == 0).any() else ""
            outcomes[name] = {"kind": "binary", "direction": "higher_is_worse",
                              "label": f"{name} (1 = event; EDIT direction{note})"}
            if codes != [EVENT]:
                outcomes[name]["instruments"] = codes
                for c in codes:
                    instruments.setdefault(c, {"min": 0, "max": 1, "label": f"{c} (0/1)"})
            continue
        outcomes[name] = {"kind": "continuous", "instruments": codes, "baseline": bool((w == 0).any()),
                          "label": f"{name} (0-100, higher = worse)"}
        for c in codes:
            if c in BUILTIN:
                continue
            vals = value[idx][np.isin(instrument[idx], [c, ""] if len(codes) == 1 else [c])]
            instruments[c] = {"min": float(np.nanmin(vals)), "max": float(np.nanmax(vals)), "direction": "higher_is_worse",
                              "label": f"{c}: observed {np.nanmin(vals):g}-{np.nanmax(vals):g}; EDIT to the instrument's true range"}
    for name, idx in groups.items():  # an outcome seen in some windows only is analysed in those
        used = _windows_of(week[idx][~np.isnan(week[idx])], windows)
        if used and len(used) < len(windows):
            outcomes[name]["follow_up"] = used
    raw = {
        "name": (folder.resolve().parent.name if folder.resolve().name in ("data", "train") else folder.resolve().name), "description": f"Drafted by 'lbp-benefit config init' from {folder}; edit before use.",
        "treatments": {"active": active, "classes": classes},
        # two or more comparator classes (a three-arm trial): each compared on its own, not lumped together
        **({"comparisons": {c: [c] for c in classes if c != active}} if len(classes) > 2 else {}),
        "covariates": covariates, "adjust_for": [], "outcomes": outcomes, "instruments": instruments,
        "follow_up": windows, "min_trial_size": 10,
    }
    parse_config(raw, source=f"draft for {folder}")  # the draft must itself be a valid config
    return raw


def draft_yaml(data: str | Path, active: str | None = None) -> str:
    head = ("# study.yaml drafted from the data by 'lbp-benefit config init'. Check every entry:\n"
            "# the active class, instrument ranges and directions, binary outcome directions, plausible\n"
            "# ranges (set to the observed range) and the follow-up windows. Schema: 'lbp-benefit config schema'.\n")
    return head + yaml.safe_dump(draft_config(data, active), sort_keys=False, allow_unicode=True)
