"""Simulator calibration rows from the one-stage mixed models (the package's own engine):
fitted overall effects and adjusted interactions on a simulated dataset vs the published
values, each accepted within the published 95% CI (±½ of the last printed digit).

About 5% of rows fall outside by chance when the simulator is calibrated, so these rows are
informative; across seeds the share inside is what matters (see BENCHMARKS.md).
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

from training.dataset import load_dataset
from training.harmonise import RECOVERY, harmonise
from training.meta.design import ModelSpec
from training.meta.run import fit_many
from training.simulate.report import row

COMPARISONS = {"no_treatment_usual_care": "no treatment/usual care", "other_conservative": "other conservative"}


def one_stage_rows(sim, workers: int = 2, progress=None) -> list[dict]:
    pub = sim.scenario.published or {}
    if not pub.get("overall"):
        return []
    with tempfile.TemporaryDirectory(prefix="lbp-cal-") as tmp:
        sim.write(Path(tmp))
        h = harmonise(load_dataset(Path(tmp)))
    cfg = h.config
    specs, keys = [], []
    for o in ("pain", "function", RECOVERY):
        pk_o = "recovery" if o == RECOVERY else o
        for c, words in COMPARISONS.items():
            key = f"{pk_o}_vs_{c}"
            if key in pub["overall"]:
                specs.append(ModelSpec(o, "short", c, cfg.comparisons[c], None, False, o == RECOVERY))
                keys.append(("overall", key, f"{pk_o} {'OR' if o == RECOVERY else 'MD'} vs {words}"))
        for v, t in (pub.get("interactions", {}).get(pk_o) or {}).items():
            specs.append(ModelSpec(o, "short", "any_non_exercise", cfg.comparisons["any_non_exercise"], v, True,
                                   o == RECOVERY))
            keys.append(("interaction", v, t))
    fits = fit_many(h.analysis, specs, active=cfg.active, workers=workers, progress=progress)
    out = []
    for (kind, key, extra), spec, r in zip(keys, specs, fits.to_dict("records")):
        est = r["estimate"]
        odds = spec.binary_outcome
        val = math.exp(est) if odds and np.isfinite(est) else est
        status = f"; fit {r['status']}" if r["status"] != "ok" else ""
        if kind == "overall":
            p = pub["overall"][key]
            out.append(row("effects (one-stage mixed model)", f"{extra} (short term){status}", p["estimate"], val,
                           p["ci"][0], p["ci"][1], "published 95% CI", slack=0.05))
        else:
            e, lo, hi = extra
            q = f"{spec.outcome} x {key} (adjusted){status}"
            if e is None:
                out.append(row("interactions (one-stage mixed model)", q, None, val, None, None, "published value unresolved"))
            else:
                out.append(row("interactions (one-stage mixed model)", q, e, val, lo, hi,
                               "published 95% CI ±0.005 (~5% outside by chance)", slack=0.005))
    return out
