"""Multilevel MICE: the interaction survives imputation (vs known truth), systematically missing
covariates are imputed with between-trial heterogeneity, and the effect model pools by Rubin's rules."""
import numpy as np
import pandas as pd
import pytest

from training.impute import MultilevelMICE, pool
from training.impute.mice import dersimonian_laird


def _sim(seed, J=16, nk=120, gamma=4.0):
    rng = np.random.default_rng(seed)
    trial = np.repeat(np.arange(J), nk)
    n = trial.size
    x1 = rng.normal(0, 0.5, J)[trial] + rng.normal(size=n)
    x2 = 0.5 * x1 + rng.normal(size=n)
    xb = (rng.random(n) < 1 / (1 + np.exp(-0.3 * x1))).astype(float)
    t = (rng.random(n) < 0.5).astype(float)
    y = rng.normal(0, 2, J)[trial] + 2 * x2 + t * (-5 + gamma * x1 + 2 * xb) + rng.normal(0, 5, n)
    F = np.column_stack([x1, x2, xb])
    sysm = rng.permutation(J)[: J // 2]
    F[np.isin(trial, sysm), 0] = np.nan  # half the trials never measured the modifier
    F[rng.random(n) < 0.15, 0] = np.nan
    F[rng.random(n) < 0.1, 1] = np.nan
    F[np.isin(trial, sysm[:3]), 2] = np.nan
    return F, trial, t, y, sysm


def _interaction(F, trial, t, y):
    J = trial.max() + 1
    Fc = F - np.array([F[trial == k].mean(0) for k in range(J)])[trial]
    X = np.column_stack([np.eye(J)[trial], t, F, t[:, None] * Fc])
    b, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = y - X @ b
    V = r @ r / (y.size - X.shape[1]) * np.linalg.inv(X.T @ X)
    return b[J + 4], V[J + 4, J + 4]


def test_interaction_with_systematically_missing_modifier_is_not_attenuated():
    est, hits = [], []
    for seed in range(12):
        F, trial, t, y, _ = _sim(seed)
        sets = MultilevelMICE(n_imputations=6, random_state=seed).fit_transform(
            F, trial.astype(str), ["continuous", "continuous", "binary"], y, t)
        fits = [_interaction(Fm, trial, t, y) for Fm in sets]
        p = pool([f[0] for f in fits], [f[1] for f in fits])
        lo, hi = p.ci()
        est.append(p.estimate[0])
        hits.append(lo[0] <= 4.0 <= hi[0])
        assert p.B[0, 0] > 0  # the imputations differ: missing information shows
    assert np.mean(est) == pytest.approx(4.0, abs=0.3)  # truth 4; without outcome/arm in the model: ~2.4
    assert np.mean(hits) >= 0.75


def test_observed_values_kept_and_systematic_trials_get_heterogeneous_draws():
    F, trial, t, y, sysm = _sim(1)
    mice = MultilevelMICE(n_imputations=3, random_state=2)
    sets = mice.fit_transform(F, trial.astype(str), ["continuous", "continuous", "binary"], y, t)
    obs = ~np.isnan(F)
    for Fm in sets:
        np.testing.assert_array_equal(Fm[obs], F[obs])
        assert not np.isnan(Fm).any()
        assert set(np.unique(Fm[:, 2])) <= {0.0, 1.0}
    means = [np.mean(sets[0][trial == k, 0]) for k in sysm]
    assert np.std(means) > 0.1  # trials that never measured x1 do not all get one distribution
    assert mice.report_[0]["trials_systematically_missing"] == len(sysm)
    assert not np.allclose(sets[0], sets[1])


def test_dersimonian_laird_against_statsmodels():
    from statsmodels.stats.meta_analysis import combine_effects

    a = np.array([0.1, 0.5, -0.2, 0.8, 0.3])
    v = np.array([0.04, 0.09, 0.05, 0.1, 0.02])
    mu, vmu, tau2 = dersimonian_laird(a, v)
    ref = combine_effects(a, v, method_re="dl")
    assert tau2 == pytest.approx(ref.tau2, rel=1e-10)
    assert mu == pytest.approx(ref.mean_effect_re, rel=1e-10)
    assert vmu == pytest.approx(ref.sd_eff_w_re ** 2, rel=1e-10)


def test_effect_model_mi_pools_and_keeps_runtime_imputer():
    from training.learners import EffectModel

    F, trial, t, y, _ = _sim(3, J=10, nk=80)
    X = pd.DataFrame(F, columns=["x1", "x2", "xb"]).assign(
        trial=[f"T{k}" for k in trial], treatment=np.where(t == 1, "exercise", "usual_care"))
    kw = dict(features=["x1", "x2", "xb"], interaction_sd=2.0, n_boot=20, splines=False)
    cm = EffectModel(**kw).fit(X, -y)
    mi = EffectModel(missing="mi", n_imputations=4, **kw).fit(X, -y)
    meta = mi.export_["meta"]["missing"]
    assert meta["imputations"] == 4 and meta["rubin"]["lambda_max"] > 0
    assert "missing" not in cm.export_["meta"]
    assert mi.export_["imputer"] == cm.export_["imputer"]  # scoring: the same conditional-mean model
    assert 0 < meta["rubin"]["lambda_median"] <= meta["rubin"]["lambda_max"] < 1
    assert np.all(np.linalg.eigvalsh(np.asarray(mi.export_["interval"]["theta_cov"])) > -1e-9)
    # the x1 interaction is recovered (outcome -y, higher = worse: benefit = -5 + 4 x1 + 2 xb)
    b = mi.predict(X.assign(x1=1.0))["benefit_vs_usual_care"] - mi.predict(X.assign(x1=0.0))["benefit_vs_usual_care"]
    assert float(b.mean()) == pytest.approx(4.0, abs=1.0)
    with pytest.raises(ValueError, match="missing="):
        EffectModel(missing="hot", **kw).fit(X, -y)


def test_meta_interaction_model_by_multiple_imputation_recovers_truth():
    from training.impute.meta import fit_model_mi
    from training.meta.design import ModelSpec, build_design
    from training.meta.fit import fit_model

    spec = ModelSpec(outcome="pain", follow_up="short", comparison="any", comparators=("usual_care",),
                     modifier="x1", baseline=False)
    mi_est, cc_se, mi_se, hits = [], [], [], []
    for seed in range(2):
        F, trial, t, y, _ = _sim(seed, J=10, nk=80)
        a = pd.DataFrame({"trial": [f"T{k:02d}" for k in trial], "participant": np.arange(trial.size),
                          "treatment": np.where(t == 1, "exercise", "usual_care"), "treat": t,
                          "outcome": "pain", "follow_up": "short", "value": y,
                          "x1": F[:, 0], "x2": F[:, 1], "xb": F[:, 2]})
        cc = fit_model(build_design(a, spec))
        mi = fit_model_mi(a, spec, m=5, seed=seed)
        if seed == 0:  # the replicate path (worker runner, imputations shared by the models on the rows)
            from training.meta.run import fit_many

            via = fit_many(a, [spec, ModelSpec(**{**spec.__dict__, "modifier": "x2"})], workers=1, missing=("mi", 5))
            assert via.loc[0, "estimate"] == pytest.approx(mi["estimate"], rel=1e-9)
            assert via["imputations"].tolist() == [5, 5]
        assert mi["excluded_missing_cc"] == cc["excluded_missing"] > 0 and mi["imputations"] == 5
        assert 0 < mi["fmi"] < 1 and np.isfinite(mi["df"])
        mi_est.append(mi["estimate"])
        hits.append(mi["ci_low"] <= 4.0 <= mi["ci_high"])
        cc_se.append(cc["se"])
        mi_se.append(mi["se"])
    assert np.mean(mi_est) == pytest.approx(4.0, abs=0.8)  # truth: 4 per unit of x1
    assert all(hits)
