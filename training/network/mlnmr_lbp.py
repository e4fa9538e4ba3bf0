"""ML-NMR of the package's low back pain network: the harmonised IPD analysis rows (one outcome and
follow-up) plus aggregate arm summaries in one model (training.network.mlnmr).

Covariates (default ``baseline``, ``age``, ``female``): prognostic for every trial; their
treatment interactions are shared by exercise content (``interaction="exercise_content"``: the
nodes without exercise share one set of effect modifiers vs exercise, combined care — which
contains exercise — shares exercise's, i.e. none vs exercise; the same assumption as the
one-stage IPD network model) or node-specific (``interaction="node"``). Aggregate arms need
``<cov>_mean`` (and ``_sd``) columns; the margins are normal for the baseline score and age,
Bernoulli for ``female``, gamma for BMI and episode months.
"""
from __future__ import annotations

import pandas as pd

from predict.errors import LbpError
from training.network.classes import EXERCISE_CONTENT
from training.network.data import rows_of
from training.network.mlnmr import MLNMRFit, Priors, fit_mlnmr
from training.network.mlnmr_data import NetworkData, build_network

DEFAULT_COVARIATES = ("baseline", "age", "female")
MARGINS = {"baseline": "normal", "age": "normal", "female": "bernoulli", "bmi": "gamma", "episode_months": "gamma"}
PRIORS = Priors(intercept=100.0, trt=100.0, reg=10.0, het=10.0, aux=50.0)


def interaction_classes(nodes, interaction: str) -> dict:
    if interaction == "node":
        return {}
    if interaction == "exercise_content":
        return {n: ("exercise_content" if n in EXERCISE_CONTENT else "no_exercise_content") for n in nodes}
    raise LbpError(f"interaction must be exercise_content or node (got {interaction!r})")


def network_data(analysis: pd.DataFrame | None, aggregate: pd.DataFrame | None, outcome: str, follow_up: str,
                 covariates=DEFAULT_COVARIATES, reference: str = "exercise", interaction: str = "exercise_content",
                 n_int: int = 64, baseline_col: str = "baseline", seed: int = 0) -> NetworkData:
    """The ML-NMR arrays of one outcome and follow-up (IPD treatment = the ``node`` column)."""
    ipd = None if analysis is None else rows_of(analysis, outcome, follow_up)
    if ipd is not None:
        if "node" not in ipd.columns:
            raise LbpError("IPD analysis table: no 'node' column (training.network.classes.node_of)")
        ipd = ipd.rename(columns={baseline_col: "baseline"}) if baseline_col != "baseline" else ipd
        ipd = ipd.assign(treatment=ipd["node"])
    agd = None if aggregate is None else rows_of(aggregate, outcome, follow_up)
    nodes = set(ipd["node"]) if ipd is not None else set()
    nodes |= set(agd["treatment"].astype(str)) if agd is not None else set()
    return build_network(ipd, agd, outcome="value", outcome_type="continuous", covariates=list(covariates),
                         margins={c: MARGINS.get(c, "normal") for c in covariates}, reference=reference,
                         classes=interaction_classes(nodes, interaction), n_int=n_int, seed=seed)


def fit_lbp_network(analysis, aggregate, outcome: str, follow_up: str, covariates=DEFAULT_COVARIATES,
                    effects: str = "random", interaction: str = "exercise_content", priors: Priors = PRIORS,
                    consistency: str = "consistency", num_warmup: int = 500, num_samples: int = 500,
                    num_chains: int = 4, chain_method: str = "sequential", seed: int = 0, check: bool = True,
                    n_int: int = 64, baseline_col: str = "baseline", max_samples: int | None = None) -> MLNMRFit:
    nd = network_data(analysis, aggregate, outcome, follow_up, covariates, interaction=interaction, n_int=n_int,
                      baseline_col=baseline_col)
    return fit_mlnmr(nd, effects=effects, priors=priors, consistency=consistency, num_warmup=num_warmup,
                     num_samples=num_samples, num_chains=num_chains, chain_method=chain_method, seed=seed,
                     check=check, dense_mass=True, max_samples=max_samples)
