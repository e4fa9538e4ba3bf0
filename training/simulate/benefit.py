"""True expected outcomes and true individual benefit for any covariate profile.

For learner benchmarks: given complete covariate profiles (the 17 covariates plus
``baseline_pain`` and ``baseline_function`` on 0–100), return the expected outcome under
each treatment class, or the benefit of exercise vs a comparator class, at a follow-up, in
the *average trial* of the scenario (trial intercept 0, mean baseline slope, no class random
effect). Scores are clipped to 0–100 but not rounded to an instrument (exact Tobit means);
global recovery uses both pain and function with continuous thresholds (exact, bivariate
normal). Sign convention: positive benefit = exercise better.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from predict.errors import LbpError
from training.simulate import model, truth
from training.simulate.scenario import FOLLOW_UPS, LATENT, OUTCOMES, RECOVERY, Scenario, load_scenario


def _profiles(profiles: pd.DataFrame | dict) -> dict[str, np.ndarray]:
    df = pd.DataFrame(profiles)
    missing = [v for v in LATENT if v not in df.columns]
    if missing:
        raise LbpError(f"true benefit: profiles need columns {', '.join(missing)}")
    x = {v: df[v].to_numpy(dtype=float, na_value=np.nan) for v in LATENT}
    bad = [v for v in LATENT if np.isnan(x[v]).any()]
    if bad:
        raise LbpError(f"true benefit: profiles have missing values in {', '.join(bad)} (the truth needs complete profiles)")
    return x


def true_expected(profiles: pd.DataFrame | dict, follow_up: str = "short", outcome: str = "pain",
                  scenario: str | Scenario = "hayden2020") -> pd.DataFrame:
    """Expected 0–100 outcome (pain, function) or recovery probability (``global_recovery``)
    under every treatment class; one column ``expected_<class>`` per class."""
    scen = load_scenario(scenario)
    if follow_up not in FOLLOW_UPS:
        raise LbpError(f"follow_up must be one of {', '.join(FOLLOW_UPS)}")
    if outcome not in OUTCOMES + (RECOVERY,):
        raise LbpError(f"outcome must be one of {', '.join(OUTCOMES + (RECOVERY,))}")
    x = _profiles(profiles)
    n = len(x["age"])
    te = model.TrialEffects.population(scen, 1)
    base = {o: np.clip(x[f"baseline_{o}"], 0.0, 100.0) for o in OUTCOMES}
    means = model.expected_latent(scen, x, base, np.zeros(n, dtype=np.int64), te)
    if outcome in OUTCOMES:
        val = truth.rounded_clipped_mean(means.mu[(outcome, follow_up)], means.sd[(outcome, follow_up)], 0.0)
    else:
        cfg = scen.config
        zs = {o: truth.recovery_z(means.mu[(o, follow_up)], means.sd[(o, follow_up)], base[o], float(cfg.recovery_relative),
                                  float(cfg.outcomes[o].recovery_min_points), None, 0.0) for o in OUTCOMES}
        rho = float((scen.raw.get("residual_correlation") or {}).get("pain_function", 0.0))
        ones = np.ones(n, bool)
        val = truth.recovery_probability(zs["pain"], zs["function"], rho, ones, ones)
    return pd.DataFrame(val, columns=[f"expected_{c}" for c in scen.classes])


def true_benefit(profiles: pd.DataFrame | dict, comparator: str = "usual_care", follow_up: str = "short",
                 outcome: str = "pain", scenario: str | Scenario = "hayden2020") -> np.ndarray:
    """True individual benefit of exercise vs ``comparator`` (a treatment class): for pain and
    function E[comparator] − E[exercise] (0–100 points), for global recovery
    P(exercise) − P(comparator). Positive = exercise better."""
    scen = load_scenario(scenario)
    if comparator not in scen.comparators:
        raise LbpError(f"comparator must be one of {', '.join(scen.comparators)}")
    e = true_expected(profiles, follow_up, outcome, scen)
    diff = e[f"expected_{comparator}"].to_numpy() - e[f"expected_{scen.config.active}"].to_numpy()
    return diff if outcome in OUTCOMES else -diff
