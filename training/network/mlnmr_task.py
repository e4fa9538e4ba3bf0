"""The comparator network of a training task by ML-NMR: the task's IPD rows plus the aggregate arm
summaries of the same outcome and follow-up (e.g. the simulator's active/passive/combined
physiotherapy trials, ``training.simulate.network.default_aggregate``) in one Bayesian model, exported
as the task's network file (training.network.mlnmr_export) so that the scorer scores every node
— passive physiotherapy and combined care included — with posterior credible and predictive
intervals.

Covariates: the outcome's baseline score, age, female, BMI and episode months, each kept only if
observed for at least 90% of the task's IPD participants and summarised (``<cov>_mean``) in every aggregate trial of
the task; participants missing a kept covariate are excluded (counted).
"""
from __future__ import annotations

import pandas as pd

from predict.errors import LbpError
from training.network.data import rows_of
from training.network.mlnmr_lbp import fit_lbp_network

MAX_MISSING = 0.10
# 4 chains x (500 warm-up + 500 draws) by NUTS on the marginalised model (training.network.mlnmr_gauss),
# chains one after the other by one compiled loop (training.network.mlnmr_nuts); a fit whose R-hat or
# ESS misses the thresholds continues its chains by 500 draws at a time, up to 1500 per chain, before
# the thresholds are applied (BENCHMARKS.md, "ML-NMR speed")
MCMC = {"num_warmup": 500, "num_samples": 500, "max_samples": 1500, "num_chains": 4, "chain_method": "sequential"}
CANDIDATES = ("baseline", "age", "female", "bmi", "episode_months")


def usable_covariates(ipd: pd.DataFrame, agd: pd.DataFrame, features: dict) -> list[str]:
    names = set(features.get("names", []))
    out = []
    for c in CANDIDATES:
        if c != "baseline" and c not in names:
            continue
        if c not in ipd.columns or pd.to_numeric(ipd[c], errors="coerce").isna().mean() > MAX_MISSING:
            continue
        if agd is not None and len(agd):
            if f"{c}_mean" not in agd.columns or not agd.groupby("trial")[f"{c}_mean"].apply(lambda v: v.notna().any()).all():
                continue
        out.append(c)
    return out


def fit_task_mlnmr(df: pd.DataFrame, outcome: str, follow_up: str, features: dict, aggregate: pd.DataFrame,
                   reference: str = "exercise", seed: int = 0, mcmc: dict | None = None) -> dict:
    """The ML-NMR network payload of one task (``df``: the task's rows with a ``node`` column).
    Raises LbpError (ConvergenceError included) when the model cannot be fitted."""
    from training.network.mlnmr_export import scoring_payload
    from training.network.mlnmr_results import effects_table, evidence

    agd = rows_of(aggregate, outcome, follow_up)
    if agd.empty:
        raise LbpError(f"ML-NMR ({outcome}, {follow_up}): no aggregate arms for this outcome and follow-up")
    ipd = df[df["outcome"] == outcome] if "outcome" in df.columns else df
    covs = usable_covariates(ipd, agd, features)
    fit = fit_lbp_network(ipd, agd, outcome, follow_up, covariates=covs, seed=seed, **(mcmc or MCMC))
    payload = scoring_payload(fit, outcome, follow_up, {"baseline": f"baseline_{outcome}"})
    ev = evidence(fit)
    eff = effects_table(fit, fit.data.centre)
    payload["card_network"] = {
        "method": "ML-NMR (Bayesian, NumPyro NUTS; docs/network.md)", "reference": reference,
        "outcome": outcome, "follow_up": follow_up, "covariates": covs,
        "classes": [{"node": r["treatment"], "vs_exercise": {"estimate": r["mean"], "sd": r["sd"], "cri": r["cri"],
                                                             "pri": r["pri"]}, **ev[r["treatment"]]} for r in eff],
        "tau": float(fit.tau().mean()) if fit.effects == "random" else 0.0,
        "diagnostics": payload["mlnmr"]["diagnostics"], "priors": payload["mlnmr"]["priors"],
        "indirect_only": [c for c, e in ev.items() if e["evidence"] == "indirect only"],
    }
    return payload
