"""Aggregate network meta-analysis engine: checked against metafor on the Senn et al. (2013)
diabetes network, against closed forms (Bucher indirect comparison, univariate REML pooling),
against Monte Carlo (P-scores = SUCRA) and against known truth (coverage on simulated networks).

Reference numbers: metafor 3.8-1 ``rma.mv`` (contrast-based model, CS heterogeneity with ρ = ½,
REML) run by ``benchmarks/bench_network_metafor.R`` on ``training/network/examples/senn2013_arms.csv``
(``dat.senn2013`` from the R package metadat; Senn et al. 2013, Stat Methods Med Res 22:169–89).
"""
import math
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from predict.errors import LbpError
from training.metrics.pooling import pool_random_effects
from training.network import design_by_treatment, direct_evidence, fit_nma, load_aggregate, node_split
from training.network.data import StudyContrasts, to_contrast_table

SENN = str(resources.files("training.network").joinpath("examples/senn2013_arms.csv"))

# metafor 3.8-1, REML and common-effect ("FE") fits, reference = placebo
METAFOR = {
    "tau2": 0.099914544, "loglik": -7.536327761, "Q": 96.984065066, "Q_df": 18,
    "tau2_inc": 0.138645598, "dbt_chi2": 2.274441979, "dbt_df": 7, "Q_between": 22.534224238,
    "d_re": {"acarbose": -0.841364253, "benfluorex": -0.736900317, "metformin": -1.128403820, "miglitol": -0.949884519,
             "pioglitazone": -1.129404598, "rosiglitazone": -1.233738709, "sitagliptin": -0.570000000,
             "sulfonylurea": -0.417527730, "vildagliptin": -0.700000000},
    "se_re": {"acarbose": 0.238426428, "benfluorex": 0.277600376, "metformin": 0.149401744, "miglitol": 0.225253363,
              "pioglitazone": 0.211917385, "rosiglitazone": 0.123456705, "sitagliptin": 0.341447276,
              "sulfonylurea": 0.232609840, "vildagliptin": 0.340755353},
    "d_fe": {"acarbose": -0.827318119, "metformin": -1.114029952, "rosiglitazone": -1.201860953,
             "sulfonylurea": -0.439400142},
    "se_fe": {"acarbose": 0.108497482, "metformin": 0.059608127, "rosiglitazone": 0.047662981,
              "sulfonylurea": 0.091463501},
}


@pytest.fixture(scope="module")
def senn():
    return load_aggregate(SENN)


@pytest.fixture(scope="module")
def senn_re(senn):
    return fit_nma(senn, reference="placebo", method="REML")


def test_senn_reml_matches_metafor(senn_re):
    r = senn_re
    assert r.tau2 == pytest.approx(METAFOR["tau2"], rel=1e-5)
    assert r.loglik == pytest.approx(METAFOR["loglik"], abs=1e-6)
    for t, v in METAFOR["d_re"].items():
        assert r.d[t] == pytest.approx(v, abs=2e-6), t
        assert math.sqrt(r.vcov.loc[t, t]) == pytest.approx(METAFOR["se_re"][t], rel=1e-5), t


def test_senn_common_effect_and_Q_match_metafor(senn):
    r = fit_nma(senn, reference="placebo", method="fixed")
    assert r.Q == pytest.approx(METAFOR["Q"], rel=1e-8) and r.Q_df == METAFOR["Q_df"]
    for t, v in METAFOR["d_fe"].items():
        assert r.d[t] == pytest.approx(v, abs=1e-8)
        assert math.sqrt(r.vcov.loc[t, t]) == pytest.approx(METAFOR["se_fe"][t], rel=1e-7)


def test_senn_design_by_treatment_matches_metafor(senn_re):
    d = design_by_treatment(senn_re)
    assert d["df"] == METAFOR["dbt_df"] and d["designs"] == 15
    assert d["tau2_inconsistency"] == pytest.approx(METAFOR["tau2_inc"], rel=1e-5)
    assert d["chi2"] == pytest.approx(METAFOR["dbt_chi2"], rel=1e-4)
    assert d["Q_between"] == pytest.approx(METAFOR["Q_between"], rel=1e-8)
    assert d["Q_total"] == pytest.approx(d["Q_within"] + d["Q_between"])


def test_contrast_format_multiarm_equals_arm_format(senn, senn_re, tmp_path):
    """All pairwise contrasts (Willms 1999 has three arms) read back give the same fit."""
    tab = to_contrast_table(senn)
    assert len(tab) == 28  # 25 two-arm trials + 3 pairs of the three-arm trial
    p = tmp_path / "c.csv"
    tab.drop(columns="source").to_csv(p, index=False)
    r2 = fit_nma(load_aggregate(p), reference="placebo")
    assert r2.tau2 == pytest.approx(senn_re.tau2, rel=1e-6)
    np.testing.assert_allclose(r2.d.sort_index(), senn_re.d.sort_index(), atol=1e-7)


def test_pairwise_network_equals_univariate_reml():
    """Two treatments: the network model is ordinary REML random-effects pooling."""
    rng = np.random.default_rng(5)
    y = rng.normal(-3, 2, 9)
    se = rng.uniform(0.8, 2.5, 9)
    studies = [StudyContrasts(f"s{i}", ("a", "b"), np.array([y[i]]), np.array([[se[i] ** 2]])) for i in range(9)]
    r = fit_nma(studies, reference="a")
    uni = pool_random_effects(y, se, method="REML")
    est = uni["estimate"] if isinstance(uni, dict) else uni.estimate
    tau2 = uni["tau2"] if isinstance(uni, dict) else uni.tau2
    assert r.d["b"] == pytest.approx(est, abs=1e-5)
    assert r.tau2 == pytest.approx(tau2, rel=1e-4, abs=1e-8)
    assert r.pi_df == 9 - 2  # Higgins et al. 2009: t with k − 2 df


def test_node_split_common_effect_is_bucher():
    """Triangle of two-arm trials, common effect: direct = IV-pooled a–b trials, indirect =
    Bucher's (c−a pooled) − (c−b pooled)."""
    rows = [("t1", "a", "b", 1.0, 0.5), ("t2", "a", "b", 2.0, 0.7), ("t3", "a", "c", 3.0, 0.6),
            ("t4", "a", "c", 2.5, 0.4), ("t5", "b", "c", 0.5, 0.8), ("t6", "b", "c", 1.5, 0.5)]
    st = [StudyContrasts(t, (p, q), np.array([e]), np.array([[s**2]])) for t, p, q, e, s in rows]

    def iv(sub):
        w = np.array([1 / r[4] ** 2 for r in sub])
        return float((w * [r[3] for r in sub]).sum() / w.sum()), float(1 / w.sum())

    ab, v_ab = iv(rows[:2])
    ac, v_ac = iv(rows[2:4])
    bc, v_bc = iv(rows[4:])
    res = fit_nma(st, reference="a", method="fixed")
    ns = node_split(res).set_index(["treatment", "comparator"])
    r = ns.loc[("b", "a")]
    assert r["direct"] == pytest.approx(ab, abs=1e-10)
    assert r["indirect"] == pytest.approx(ac - bc, abs=1e-10)
    assert r["indirect_se"] ** 2 == pytest.approx(v_ac + v_bc, rel=1e-10)
    assert r["difference"] == pytest.approx(ab - (ac - bc), abs=1e-10)
    ev = direct_evidence(res)
    assert set(ev["evidence"]) == {"direct and indirect"}


def test_pscores_equal_monte_carlo_sucra(senn_re):
    rng = np.random.default_rng(11)
    t = senn_re.treatments
    draws = rng.multivariate_normal(senn_re.d[t].to_numpy(), senn_re.vcov.loc[t, t].to_numpy(), 40000,
                                    method="svd")
    ranks = draws.argsort(1).argsort(1) + 1  # 1 = lowest HbA1c = best
    sucra = (len(t) - ranks.mean(0)) / (len(t) - 1)
    ps = senn_re.pscores()[t].to_numpy()
    np.testing.assert_allclose(ps, sucra, atol=0.01)
    assert ps.mean() == pytest.approx(0.5)
    assert senn_re.pscores().index[0] == "rosiglitazone"


def _simulate_network(rng, d, tau):
    """Trials of a 4-node network with 3-arm trials, contrasts from the model itself."""
    designs = [("A", "B")] * 4 + [("A", "C")] * 4 + [("B", "D")] * 3 + [("C", "D")] * 3 + [("A", "B", "C")] * 2
    out = []
    for i, des in enumerate(designs):
        m = len(des) - 1
        v = rng.uniform(1.0, 4.0, len(des))
        S = np.diag(v[1:]) + v[0]
        P = 0.5 * (np.eye(m) + 1)
        mu = np.array([d[t] - d[des[0]] for t in des[1:]])
        y = rng.multivariate_normal(mu, S + tau**2 * P)
        out.append(StudyContrasts(f"s{i}", des, y, S))
    return out


def test_coverage_against_known_truth():
    """Model-generated networks (known d, τ = 1.5): 95% CIs cover at a plausible rate and the
    REML τ² is close to unbiased."""
    rng = np.random.default_rng(2024)
    d = {"A": 0.0, "B": -2.0, "C": 1.0, "D": -0.5}
    cover, tau2, reject = [], [], []
    for _ in range(100):
        r = fit_nma(_simulate_network(rng, d, 1.5), reference="A")
        v = r.versus("A").set_index("treatment")
        cover += [(v.loc[t, "ci_low"] <= d[t] <= v.loc[t, "ci_high"]) for t in "BCD"]
        tau2.append(r.tau2)
        reject.append(design_by_treatment(r)["p"] < 0.05)
    rate = float(np.mean(cover))
    assert 0.89 <= rate <= 0.99, rate
    assert np.mean(tau2) == pytest.approx(2.25, rel=0.25)
    assert 0.01 <= np.mean(reject) <= 0.12  # size of the design-by-treatment test under consistency


def test_inconsistency_is_detected():
    """A loop made inconsistent (C–D trials shifted by +15): the global test rejects and the
    C–D node split shows the shift."""
    rng = np.random.default_rng(3)
    st = _simulate_network(rng, {"A": 0.0, "B": -2.0, "C": 1.0, "D": -0.5}, 0.3)
    for s in st:
        if s.treatments == ("C", "D"):
            s.y = s.y + 15.0
    r = fit_nma(st, reference="A")
    assert design_by_treatment(r)["p"] < 0.01
    ns = node_split(r).set_index(["treatment", "comparator"])
    assert ns.loc[("D", "C"), "p"] < 0.01 and ns.loc[("D", "C"), "difference"] > 8


def test_disconnected_network_is_an_error():
    st = [StudyContrasts("s1", ("a", "b"), np.array([1.0]), np.array([[1.0]])),
          StudyContrasts("s2", ("c", "d"), np.array([1.0]), np.array([[1.0]]))]
    with pytest.raises(LbpError, match="disconnected"):
        fit_nma(st)


@pytest.mark.parametrize("text, match", [
    ("trial,treatment,n,mean,sd\nt1,a,10,1,2\nt1,b,10,2,x\n", r"line 3 column 'sd'.*not a number"),
    ("trial,treatment,n,mean,sd\nt1,a,10,1,2\nt1,b,10,2,-1\n", r"line 3 column 'sd'.*positive"),
    ("trial,treatment,n,mean,sd\nt1,a,10,1,2\n", r"trial 't1' has only one arm"),
    ("trial,arm,value\nt1,a,1\n", r"match neither the arm format"),
    ("trial,treatment1,treatment2,estimate,se\nt1,a,b,1,0.5\nt1,a,c,2,0.5\nt1,b,c,3,0.6\n",
     r"line 4 column 'estimate'.*not\s+consistent"),
    ("trial,treatment1,treatment2,estimate,se\nt1,a,b,1,0.5\nt1,a,c,2,0.5\n", r"must give every pair.*b vs c"),
])
def test_bad_aggregate_input_names_line_and_column(tmp_path, text, match):
    p = tmp_path / "agg.csv"
    p.write_text(text)
    with pytest.raises(LbpError, match=match):
        load_aggregate(p)


def test_smd_arm_data_hedges_g():
    """SMD from arm data: Hedges' g with the pooled SD and the Gleser–Olkin variance."""
    tab = pd.DataFrame({"trial": ["t"] * 2, "treatment": ["a", "b"], "n": [30, 40], "mean": [10.0, 7.0], "sd": [4.0, 5.0]})
    s = load_aggregate(tab, measure="SMD")[0]
    sp = math.sqrt((29 * 16 + 39 * 25) / 68)
    g = (1 - 3 / (4 * 68 - 1)) * (7 - 10) / sp
    assert s.y[0] == pytest.approx(g)
    assert s.S[0, 0] == pytest.approx(1 / 30 + 1 / 40 + g**2 / (2 * 70))
