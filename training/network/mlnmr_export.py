"""An ML-NMR fit as a task's network file for the model artifact (format ``lbp-benefit-network`` v1,
read by predict/network.py, plus a ``posterior`` block read by predict/network_posterior.py).

v1 fields: terms ``node[c]`` (d_c vs exercise) and ``node[c]:<modifier>_c`` (γ of c's interaction
class for that modifier; interaction "node"), ``coef`` = posterior means, ``vcov`` = posterior
covariance, ``tau`` = posterior median τ, modifier ``centres`` = the ML-NMR centring values. A
runtime that only knows v1 scores from this normal approximation. ``posterior``: ``draws`` thinned
posterior draws of the same terms (S x terms, JSON arrays), ``tau`` (S), ``z_new`` (S fixed
standard normals for the predictive interval of a new trial) — quantiles of these give the
credible and predictive intervals with no sampling at scoring time. The whole file is hashed
with the rest of the artifact (predict/model_format.py).
"""
from __future__ import annotations

import numpy as np

from training.network.classes import EXERCISE_CONTENT
from training.network.mlnmr import MLNMRFit
from training.network.mlnmr_results import evidence, fixed_normals

FORMAT, VERSION, MODEL_NAME = "lbp-benefit-network", 1, "ipd_network"
DEFAULT_DRAWS = 400


def _legacy_evidence(fit: MLNMRFit, node: str, ev: dict) -> str:
    """The v1 vocabulary (direct only / direct and indirect / indirect only)."""
    D = fit.data
    if ev["direct_trials"] == 0:
        return "indirect only"
    j, r = D.treatments.index(node), 0
    other = any(j in set(D.arm_trt[D.arm_study == s]) and r not in set(D.arm_trt[D.arm_study == s])
                for s in range(len(D.studies)))
    return "direct and indirect" if other else "direct only"


def scoring_payload(fit: MLNMRFit, outcome: str, follow_up: str, feature_of: dict, n_draws: int = DEFAULT_DRAWS,
                    digits: int = 5) -> dict:
    """The network file of one task. ``feature_of`` maps each ML-NMR covariate to the model's
    feature name (e.g. ``baseline`` -> ``baseline_pain``)."""
    D = fit.data
    ref = D.treatments[0]
    nodes = D.treatments[1:]
    mods = [feature_of.get(c, c) for c in D.covariates]
    d, g, tau = fit.d(), fit.gamma(), fit.tau()
    cols, terms = [], []
    for j, c in enumerate(nodes, start=1):
        terms.append(f"node[{c}]")
        cols.append(d[:, j])
        for k, m in enumerate(mods):
            if np.any(g[:, j, k] != 0):
                terms.append(f"node[{c}]:{m}_c")
                cols.append(g[:, j, k])
    X = np.column_stack(cols)
    S = X.shape[0]
    idx = np.linspace(0, S - 1, min(S, n_draws)).astype(int)
    ev = evidence(fit)
    rnd = lambda a: np.round(np.asarray(a, float), digits).tolist()  # noqa: E731
    evid = {}
    for c in nodes:
        e = ev[c]
        evid[c] = {"evidence": _legacy_evidence(fit, c, e), "source": e["evidence"],
                   "direct_trials": e["direct_trials"], "direct_ipd_trials": e["direct_ipd_trials"],
                   "direct_participants": 0, "trials": e["trials"], "participants": e["participants"]}
    model = {"terms": terms, "coef": rnd(X.mean(0)), "vcov": rnd(np.cov(X, rowvar=False).reshape(len(terms), len(terms))),
             "tau": float(np.median(tau)), "modifiers": mods,
             "centres": {m: float(c) for m, c in zip(mods, D.centre)}, "interaction": "node", "reference": ref,
             "exercise_content": {c: float(EXERCISE_CONTENT.get(c, 0.0)) for c in D.treatments}}
    # the sampler's wall time is not a property of the model: kept out of the file, so that two
    # identical builds have the same model id (it is in the network report and run.json timings)
    diag = {k: v for k, v in fit.diagnostics.items() if k not in ("by_parameter", "seconds")}
    return {
        "format": FORMAT, "version": VERSION, "outcome": outcome, "follow_up": follow_up, "reference": ref,
        "nodes": list(nodes), "model": model, "evidence": evid,
        "fit": "ml-nmr",
        "posterior": {"terms": terms, "draws": [rnd(r) for r in X[idx]], "tau": rnd(tau[idx]),
                      "z_new": rnd(fixed_normals(len(idx))), "n_draws": int(len(idx))},
        "mlnmr": {"effects": fit.effects, "link": fit.link, "priors": fit.priors.describe(),
                  "covariates": list(D.covariates), "interaction_classes": dict(zip(D.treatments, [D.class_names[c] for c in D.cls])),
                  "data": D.summary(), "diagnostics": diag},
        "modifier_status": "ML-NMR (IPD + aggregate trials, one likelihood)",
        "excluded": {k: int(v) for k, v in D.excluded.items()},
        "exercise_participants": int((D.arm_trt[D.ipd_arm] == 0).sum() + D.agd_n[D.arm_trt[D.agd_arm] == 0].sum()),
        "definition": "benefit = E[y | node] - E[y | exercise] on 0-100 (positive favours exercise) = d_node + "
                      "sum_m gamma_node,m (z_m - centre_m); ML-NMR posterior (docs/network.md)",
    }
