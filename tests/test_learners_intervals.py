"""Intervals, missing covariates and the export runtime's independence from training code."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from tests._runtime import rt
from training.learners.effect_model import EffectModel
from training.learners.intervals import cluster_bootstrap
from training.learners.boosted import TLearner
from training.learners.missing import GaussianImputer
from training.simulate.small_trials import small_trials


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def fitted():
    X, y, truth = small_trials(n_trials=14, n_per_arm=80, seed=11, noise=10.0, effect_mod=5.0, missing=0.1,
                             systematic=True, tau=2.0)
    return X, y, truth, EffectModel(n_boot=30).fit(X, y)


def test_intervals_widen_as_covariates_are_removed(fitted):
    X, y, _, m = fitted
    Xc = X.head(60).copy()
    Xc = Xc.fillna(Xc.mean(numeric_only=True))
    widths = []
    for drop in ([], ["bmi"], ["bmi", "fear_avoidance"], ["bmi", "fear_avoidance", "age", "female", "baseline_pain"]):
        Xd = Xc.copy()
        Xd[drop] = np.nan
        p = m.predict_interval(Xd)
        widths.append((p["benefit_vs_usual_care_ci_high"] - p["benefit_vs_usual_care_ci_low"]).mean())
    assert widths == sorted(widths)
    assert widths[2] > widths[0] * 1.2  # losing the true modifier costs real information


def test_missing_variance_zero_for_complete_rows_and_pi_wider(fitted):
    X, _, _, m = fitted
    exp = m.to_export()
    Xc = X.dropna().head(30)
    F = rt.feature_matrix(exp["features"], Xc)
    vm = rt.missing_variance(exp, F)
    assert all(np.all(v == 0) for v in vm.values())
    p = m.predict_interval(Xc)
    assert (p["benefit_vs_usual_care_pi_high"] - p["benefit_vs_usual_care_pi_low"]
            >= p["benefit_vs_usual_care_ci_high"] - p["benefit_vs_usual_care_ci_low"]).all()
    assert exp["interval"]["tau"]["usual_care"] >= 0


def test_prediction_interval_covers_trial_specific_benefit(fitted):
    X, _, truth, m = fitted
    p = m.predict_interval(X)
    cov = []
    for c in m.comparators_:
        t = truth[f"trial_benefit_vs_{c}"]
        cov.append(((t >= p[f"benefit_vs_{c}_pi_low"]) & (t <= p[f"benefit_vs_{c}_pi_high"])).mean())
    assert np.mean(cov) > 0.75  # one dataset; the many-seed check lives in benchmarks/


def test_cluster_bootstrap_resamples_whole_trials():
    trial = np.repeat(np.arange(6), 10)
    has_comp = np.array([True, True, True, True, False, False])
    for idx, codes in cluster_bootstrap(trial, has_comp, 20, random_state=1):
        # every replicate draws 4 comparator trials and 2 others, each whole
        assert idx.size == 60
        for k in np.unique(codes):
            src = np.unique(trial[idx[codes == k]])
            assert src.size == 1 and (codes == k).sum() == 10
        assert has_comp[trial[idx]].sum() == 40


def test_imputer_uses_trial_means_for_sporadic_and_pooled_for_systematic():
    rng = np.random.default_rng(0)
    trial = np.repeat(np.array(["A", "B", "C"]), 200)
    x1 = np.where(trial == "A", 10.0, np.where(trial == "B", 20.0, 30.0)) + rng.normal(0, 1, 600)
    x2 = x1 * 0 + rng.normal(0, 1, 600)
    F = np.column_stack([x1, x2])
    F[trial == "C", 1] = np.nan  # systematically missing in C
    F[5, 0] = np.nan  # sporadic in A
    imp = GaussianImputer().fit(F, trial, ["continuous", "continuous"])
    out = imp.transform_train(F, trial)
    assert out[5, 0] == pytest.approx(10.0, abs=0.5)
    assert np.isfinite(out).all()
    # a new patient with nothing observed gets the pooled mean
    new = rt.impute_mean(imp.export(), np.array([[np.nan, np.nan]]))
    assert new[0, 0] == pytest.approx(np.nanmean(F[:, 0]), abs=1e-9)


def test_moment_matched_draws_make_the_missing_variance_of_a_linear_prediction_exact():
    """Draws of the missing features have exactly the conditional covariance (ddof = 1), so the
    spread of a linear prediction over them equals b' S_cond b (an independent computation)."""
    from training.learners.missing import moment_matched_normal

    Z = moment_matched_normal(np.random.default_rng(3), 20, 6)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.cov(Z[:, [1, 4]], rowvar=False), np.eye(2), atol=1e-12)
    assert np.array_equal(Z, moment_matched_normal(np.random.default_rng(3), 20, 6))
    assert moment_matched_normal(np.random.default_rng(3), 5, 6).shape == (5, 6)  # p > M - 1: plain draws

    rng = np.random.default_rng(1)
    n = 400
    trial = np.repeat(np.array(["A", "B", "C", "D"]), n // 4)
    C = np.array([[4.0, 1.5, 0.5], [1.5, 9.0, 2.0], [0.5, 2.0, 16.0]])
    F = rng.multivariate_normal([10.0, 20.0, 30.0], C, n)
    imp = GaussianImputer().fit(F, trial, ["continuous"] * 3).export()
    patient = np.array([[11.0, np.nan, np.nan]])
    D = rt.impute_draws(imp, patient)[:, 0, :]  # (M, p)
    S = np.asarray(imp["cov"])
    m, o = np.array([False, True, True]), np.array([True, False, False])
    S_cond = S[np.ix_(m, m)] - S[np.ix_(m, o)] @ np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, m)])
    b = np.array([0.7, -1.3])
    assert np.var(D[:, m] @ b, ddof=1) == pytest.approx(b @ S_cond @ b, rel=1e-9)


def test_tree_interval_export_and_widening():
    X, y, _ = small_trials(n_trials=10, n_per_arm=60, seed=12, noise=10.0, effect_mod=5.0)
    m = TLearner(n_boot=4).fit(X, y)
    Xd = X.head(40).copy()
    p0 = m.predict_interval(Xd)
    Xd["fear_avoidance"] = np.nan
    p1 = m.predict_interval(Xd)
    assert (p1["benefit_vs_usual_care_se"] >= p0["benefit_vs_usual_care_se"] - 1e-12).all()
    assert m.to_export()["interval"]["method"] == "varmodel"


def test_runtime_module_imports_no_training_or_sklearn():
    path = Path(__file__).resolve().parents[1] / "predict" / "runtime.py"
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('lbp_rt', {str(path)!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "bad = [m for m in sys.modules if m.startswith(('training', 'sklearn', 'pickle'))]\n"
        "assert not [m for m in bad if m != 'pickle'], bad\n"
        "assert hasattr(mod, 'predict_from_export')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tree_learner_exports_per_arm_variance_models_from_its_bootstrap():
    """The per-arm variance model reproduces the bootstrap's mean per-arm variance (its intercept
    is calibrated to it) and gives arm SEs for scoring."""
    prt = rt

    X, y, _ = small_trials(n_trials=10, n_per_arm=60, seed=12, noise=10.0, effect_mod=5.0, missing=0.1)
    m = TLearner(n_boot=6).fit(X, y)
    exp = m.to_export()
    iv = exp["interval"]
    assert set(iv["arm_varmodel"]) == {"__active__", *exp["comparators"]}
    F = prt.feature_matrix(exp["features"], X)
    Fimp = prt.impute_mean(exp["imputer"], F)
    U = prt.varmodel_design(exp, F, Fimp)
    boot = np.stack(m.boot_arm_predictions_)  # (replicates, rows, arms)
    assert boot.shape[0] >= 3
    for i, k in enumerate(["__active__"] + list(exp["comparators"])):
        v = np.exp(U @ np.asarray(iv["arm_varmodel"][k], float))
        assert np.all(np.isfinite(v)) and np.all(v > 0)
        assert v.mean() == pytest.approx(boot[:, :, i].var(axis=0, ddof=1).mean(), rel=1e-8)
    se = prt.arm_se(exp, Fimp, "usual_care", F)
    assert se is not None and np.all(se[0] > 0) and np.all(se[1] > 0)
    assert prt.arm_se(exp, Fimp, "usual_care", None) is None  # the tree model needs the raw features
