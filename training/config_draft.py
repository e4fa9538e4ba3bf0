"""Draft a ``study.yaml`` from a dataset folder (``lbp-benefit config init --data DIR``).

Everything is read from the data and written as a starting point for the user to edit: covariate
types (0/1 columns binary, text columns categorical with their levels, other numbers continuous
with the observed range as the plausible range), treatment classes (the most frequent class is
*guessed* as the comparator-free active class only if the user does not say), outcomes with their
instruments (0/1 values → a binary outcome without baseline; values at week 0 → a baseline) and
follow-up windows around the observed post-baseline weeks.
"""
from __future__ import annotations

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
    if num is None:
        levels = sorted(str(v) for v in observed.unique())
        return {"type": "categorical", "categories": levels, "reference": levels[0] if levels else None}
    vals = num.dropna()
    if len(vals) and set(vals.unique()) <= {0.0, 1.0}:
        return {"type": "binary"}
    if not len(vals):
        return {"type": "continuous"}
    lo, hi = float(vals.min()), float(vals.max())
    if lo == hi:
        hi = lo + 1.0
    return {"type": "continuous", "plausible": [lo, hi]}


def _windows(weeks: np.ndarray) -> dict:
    """One window per distinct post-baseline week (up to 4, else quartiles), split at midpoints."""
    post = np.unique(weeks[weeks > 0])
    if not len(post):
        return {"end": {"target_week": 1.0, "after": 0.0, "up_to": 1.0}}
    targets = post if len(post) <= 4 else np.unique(np.quantile(post, [0.25, 0.5, 0.75, 1.0], method="nearest"))
    out, after = {}, 0.0
    for i, t in enumerate(targets):
        up_to = float(t) if i == len(targets) - 1 else float((t + targets[i + 1]) / 2)
        out[f"week_{float(t):g}".replace(".", "_")] = {"target_week": float(t), "after": after, "up_to": up_to}
        after = up_to
    return out


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
    outcomes, instruments = {}, {}
    for name, idx in outs.groupby(outs["outcome"].astype(str).str.strip()).indices.items():
        v, w = value[idx], week[idx]
        codes = sorted(set(outs["instrument"].astype(str).str.strip().to_numpy()[idx]))
        if set(np.unique(v[~np.isnan(v)])) <= {0.0, 1.0} and not (w == 0).any():
            outcomes[name] = {"kind": "binary", "direction": "higher_is_worse", "label": f"{name} (1 = event; EDIT direction)"}
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
            vals = value[idx][outs["instrument"].astype(str).str.strip().to_numpy()[idx] == c]
            instruments[c] = {"min": float(np.nanmin(vals)), "max": float(np.nanmax(vals)), "direction": "higher_is_worse",
                              "label": f"{c}: observed {np.nanmin(vals):g}-{np.nanmax(vals):g}; EDIT to the instrument's true range"}
    raw = {
        "name": (folder.resolve().parent.name if folder.resolve().name in ("data", "train") else folder.resolve().name), "description": f"Drafted by 'lbp-benefit config init' from {folder}; edit before use.",
        "treatments": {"active": active, "classes": classes},
        "covariates": covariates, "adjust_for": [], "outcomes": outcomes, "instruments": instruments,
        "follow_up": _windows(week[~np.isnan(week)]), "min_trial_size": 10,
    }
    parse_config(raw, source=f"draft for {folder}")  # the draft must itself be a valid config
    return raw


def draft_yaml(data: str | Path, active: str | None = None) -> str:
    head = ("# study.yaml drafted from the data by 'lbp-benefit config init'. Check every entry:\n"
            "# the active class, instrument ranges and directions, binary outcome directions, plausible\n"
            "# ranges (set to the observed range) and the follow-up windows. Schema: 'lbp-benefit config schema'.\n")
    return head + yaml.safe_dump(draft_config(data, active), sort_keys=False, allow_unicode=True)
