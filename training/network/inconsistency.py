"""Inconsistency checks for the contrast-based network model.

* **Design-by-treatment interaction** (Higgins et al. 2012; White et al. 2012): the
  inconsistency model gives every design (set of treatments compared in a trial) its own
  unrestricted contrast parameters; consistency is the linear restriction that they all derive
  from one set of basic parameters d. τ² is estimated by REML under the inconsistency model
  and the Wald statistic for the restriction is Q_consistency(τ²) − Q_inconsistency(τ²) (GLS
  residual forms), χ² with (design parameters − (treatments − 1)) df. At τ² = 0 the same
  difference is the between-designs Q of Krahn et al. (2013), also reported with the
  within-designs Q.
* **Node-splitting** (Dias et al. 2010), side-splitting form: for a comparison a–b with both
  direct and independent indirect evidence, trials containing a and b (re-expressed against a)
  get an extra parameter ω on their b − a contrast. Then d_b − d_a is the indirect estimate, d_b −
  d_a + ω the direct one and ω their difference (Wald test); τ² is re-estimated (REML) in each
  split model. In a multi-arm trial only its b − a contrast is split (the others stay in the
  consistency part), as in White et al. (2015).
"""
from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from predict.errors import LbpError
from training.network.data import StudyContrasts
from training.network.nma import NMAResult, estimate_tau2, gls, has_indirect_path, stack


def _canonical(studies: list[StudyContrasts], order: list[str]) -> list[StudyContrasts]:
    return [s.rebased(min(s.treatments, key=order.index)) for s in studies]


def design_by_treatment(res: NMAResult) -> dict:
    """Global design-by-treatment Wald test (random effects) and the common-effect Q decomposition."""
    order = res.treatments
    studies = _canonical(res.studies, order)
    designs = sorted({s.design for s in studies})
    cols = [(d, t) for d in designs for t in d.split(":")[1:]]
    col_idx = {c: i for i, c in enumerate(cols)}
    blocks = []
    for s in studies:
        B = np.zeros((len(s.y), len(cols)))
        for r, t in enumerate(s.treatments[1:]):
            B[r, col_idx[(s.design, t)]] = 1.0
        blocks.append(B)
    st_inc = stack(studies, order, res.reference)
    st_inc.X = blocks
    st_inc._b = st_inc._ldxx = None
    st_inc.names = [f"{d}|{t}" for d, t in cols]
    st_con = stack(studies, order, res.reference)
    df = len(cols) - (len(order) - 1)
    out = {"designs": len(designs), "df": int(df), "method": res.method}
    if df <= 0:
        return {**out, "chi2": np.nan, "p": np.nan, "tau2_inconsistency": np.nan, "Q_total": res.Q,
                "Q_within": np.nan, "Q_between": np.nan, "p_between": np.nan,
                "note": "no closed loops between designs: consistency cannot be tested"}
    tau2 = 0.0 if res.method == "fixed" else estimate_tau2(st_inc, res.method)[0]
    q_con = gls(st_con, tau2)[2]
    q_inc = gls(st_inc, tau2)[2]
    chi2 = max(q_con - q_inc, 0.0)
    q_tot0, q_within0 = gls(st_con, 0.0)[2], gls(st_inc, 0.0)[2]
    q_between0 = q_tot0 - q_within0
    df_within = st_inc.n_obs - len(cols)
    return {**out, "chi2": float(chi2), "p": float(stats.chi2.sf(chi2, df)), "tau2_inconsistency": float(tau2),
            "Q_total": float(q_tot0), "Q_total_df": int(st_con.n_obs - (len(order) - 1)),
            "Q_within": float(q_within0), "Q_within_df": int(df_within),
            "p_within": float(stats.chi2.sf(q_within0, df_within)) if df_within > 0 else np.nan,
            "Q_between": float(q_between0), "p_between": float(stats.chi2.sf(q_between0, df)), "note": ""}


def node_split(res: NMAResult, level: float = 0.95) -> pd.DataFrame:
    """Direct, indirect and their difference for every comparison that has both."""
    z = stats.norm.ppf(0.5 + level / 2)
    rows = []
    for a, b in combinations(res.treatments, 2):
        both = [s for s in res.studies if a in s.treatments and b in s.treatments]
        if not both or not has_indirect_path(res.studies, a, b):
            continue
        studies, extra = [], []
        for s in res.studies:
            if a in s.treatments and b in s.treatments:
                s = s.rebased(a)
                col = np.zeros((len(s.y), 1))
                col[list(s.treatments).index(b) - 1, 0] = 1.0
            else:
                col = np.zeros((len(s.y), 1))
            studies.append(s)
            extra.append(col)
        st = stack(studies, res.treatments, res.reference, extra, ["omega"])
        try:
            tau2 = 0.0 if res.method == "fixed" else estimate_tau2(st, res.method)[0]
            beta, vcov, *_ = gls(st, tau2)
        except LbpError:
            continue
        names = st.names
        c_ind = np.zeros(len(names))
        if b in names:
            c_ind[names.index(b)] += 1
        if a in names:
            c_ind[names.index(a)] -= 1
        c_dir = c_ind.copy()
        c_dir[-1] = 1.0
        ind, se_ind = float(c_ind @ beta), math.sqrt(float(c_ind @ vcov @ c_ind))
        dirc, se_dir = float(c_dir @ beta), math.sqrt(float(c_dir @ vcov @ c_dir))
        om, se_om = float(beta[-1]), math.sqrt(float(vcov[-1, -1]))
        net, se_net = res.contrast(b, a)
        rows.append({"treatment": b, "comparator": a, "direct_trials": len(both),
                     "direct": dirc, "direct_se": se_dir, "direct_low": dirc - z * se_dir, "direct_high": dirc + z * se_dir,
                     "indirect": ind, "indirect_se": se_ind, "indirect_low": ind - z * se_ind,
                     "indirect_high": ind + z * se_ind, "network": net, "network_se": se_net,
                     "difference": om, "difference_se": se_om, "p": float(2 * stats.norm.sf(abs(om / se_om))),
                     "tau2_split": tau2})
    return pd.DataFrame(rows)
