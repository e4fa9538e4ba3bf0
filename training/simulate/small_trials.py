"""Small seeded pooled trials with a known individual benefit, for tests and docs: a quick
stand-in for the calibrated simulator (``training.simulate.simulate_dataset``) when a test needs
a few hundred rows with a simple, known benefit function.

Continuous outcome (0-100, higher = worse)::

    y = alpha_j + 0.5 baseline_pain + 0.15 (age - 45) + a_class + 1[exercise] * m(x) + noise
    m(x) = -effect_mod * (fear_avoidance - 40) / 20 - bmi_mod * ((bmi - 27)/5)^2   (negative = better)

so the benefit vs class c is a_c - m(x) (a_c: average class effect, positive = exercise better).
Binary outcome: logistic with the same linear predictor scaled by -1/15 (higher = recovered).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

CLASS_EFFECT = {"no_treatment": 10.0, "usual_care": 8.0, "other_conservative": -2.0}


def small_trials(n_trials: int = 12, n_per_arm: int = 60, seed: int = 0, noise: float = 12.0,
               effect_mod: float = 4.0, bmi_mod: float = 0.0, outcome: str = "continuous",
               missing: float = 0.0, systematic: bool = False, exercise_only: int = 2,
               tau: float = 0.0) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """(X, y, truth): X has trial, treatment and features; truth has benefit_vs_<class> for
    every row (the average-trial benefit; with ``tau`` > 0 each trial's own effect deviates by
    N(0, tau^2), given in ``trial_benefit_vs_<c>``)."""
    rng = np.random.default_rng(seed)
    classes = list(CLASS_EFFECT)
    rows = []
    for j in range(n_trials):
        if j < exercise_only:
            arms = ["exercise", "exercise"]
        else:
            arms = ["exercise", classes[j % len(classes)]]
            if j % 5 == 4:
                arms.append(classes[(j + 1) % len(classes)])
        alpha = rng.normal(30, 6)
        shift = {"age": rng.normal(0, 4), "bmi": rng.normal(0, 1.5), "fear": rng.normal(0, 6)}
        u = rng.normal(0, tau)
        for a in arms:
            n = n_per_arm
            age = rng.normal(45 + shift["age"], 11, n).clip(18, 90)
            bmi = rng.normal(27 + shift["bmi"], 4.5, n).clip(15, 50)
            female = rng.binomial(1, 0.55, n).astype(float)
            fear = rng.normal(40 + shift["fear"], 15, n).clip(0, 100)
            bp = rng.normal(55, 15, n).clip(0, 100)
            df = pd.DataFrame({"trial": f"T{j:02d}", "treatment": a, "age": age, "bmi": bmi, "female": female,
                               "fear_avoidance": fear, "baseline_pain": bp})
            df["_alpha"] = alpha
            df["_u"] = u
            rows.append(df)
    X = pd.concat(rows, ignore_index=True)
    m = -effect_mod * (X["fear_avoidance"] - 40) / 20 - bmi_mod * ((X["bmi"] - 27) / 5) ** 2
    m = m.to_numpy()
    ex = (X["treatment"] == "exercise").to_numpy()
    a_cls = X["treatment"].map(lambda c: CLASS_EFFECT.get(c, 0.0)).to_numpy()
    lin = X["_alpha"].to_numpy() + 0.5 * X["baseline_pain"].to_numpy() + 0.15 * (X["age"].to_numpy() - 45)
    eta = lin + a_cls + ex * (m - X["_u"].to_numpy())
    truth = pd.DataFrame(index=X.index)
    if outcome == "continuous":
        y = np.clip(eta + rng.normal(0, noise, len(X)), 0, 100) if noise > 0 else eta
        for c, a in CLASS_EFFECT.items():
            truth[f"benefit_vs_{c}"] = a - m
            truth[f"trial_benefit_vs_{c}"] = a - m + X["_u"].to_numpy()
    else:
        lp = lambda e: 1 / (1 + np.exp((e - 50) / 15))  # noqa: E731 - higher eta = worse = lower P(recover)
        p = lp(eta)
        y = rng.binomial(1, p).astype(float)
        base_ex = lin + m
        for c, a in CLASS_EFFECT.items():
            truth[f"benefit_vs_{c}"] = lp(base_ex - X["_u"].to_numpy() * 0) - lp(lin + a)
            truth[f"trial_benefit_vs_{c}"] = lp(base_ex - X["_u"].to_numpy()) - lp(lin + a)
    X = X.drop(columns=["_alpha", "_u"])
    if missing > 0:
        for col in ("age", "bmi", "female", "fear_avoidance"):
            X.loc[rng.random(len(X)) < missing, col] = np.nan
    if systematic:
        for j in range(0, n_trials, 3):
            X.loc[X["trial"] == f"T{j:02d}", "bmi"] = np.nan
    return X, np.asarray(y, float), truth
