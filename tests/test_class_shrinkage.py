"""Class-effect shrinkage (training.learners.shrinkage): the empirical-Bayes algebra against an independent
DerSimonian-Laird fit (statsmodels), and against known truth on simulated trials with a sparse class."""
import numpy as np
import pandas as pd
import pytest

from training.learners.shrinkage import class_sets, shrink_offsets


def test_normal_normal_posterior_against_statsmodels_dl():
    from statsmodels.stats.meta_analysis import combine_effects

    comps = ["a", "b", "c", "d"]
    a = np.array([10.0, 12.5, 7.0, -3.0])
    v = np.array([1.0, 4.0, 9.0, 0.5])
    theta = np.concatenate([[50.0], a, [0.3, -0.2]])
    cov = np.diag(np.concatenate([[2.0], v, [0.01, 0.01]]))
    th, cv, rep = shrink_offsets(theta, cov, comps, [["a", "b", "c"], ["a", "b", "c", "d"]])
    ref = combine_effects(a[:3], v[:3], method_re="dl")
    mu, s2 = ref.mean_effect_re, ref.tau2
    assert s2 > 0
    w = s2 / (s2 + v[:3])
    np.testing.assert_allclose(th[1:4], mu + w * (a[:3] - mu), rtol=1e-10)
    assert th[0] == theta[0] and np.all(th[5:] == theta[5:])  # only the class offsets move
    # posterior variance of a class (mu fixed part): w v plus the uncertainty of mu
    pi = (1 / (v[:3] + s2)) / np.sum(1 / (v[:3] + s2))
    for i in range(3):
        row = (1 - w[i]) * pi
        row[i] += w[i]
        assert cv[1 + i, 1 + i] == pytest.approx(row @ np.diag(v[:3]) @ row + w[i] * (1 - w[i]) * v[i], rel=1e-10)
    assert rep["b"]["weight_own"] < rep["a"]["weight_own"]  # less information: pulled more
    assert rep["d"]["set"] == comps  # d is only in the larger set


def test_classes_in_no_shared_set_keep_their_estimate():
    theta = np.array([1.0, 5.0, -5.0])
    cov = np.diag([1.0, 2.0, 3.0])
    th, cv, rep = shrink_offsets(theta, cov, ["x", "y"], [["x"], ["y"]])
    np.testing.assert_array_equal(th, theta)
    np.testing.assert_array_equal(cv, cov)
    assert class_sets(["x", "y"], None) == [["x", "y"], ["x", "y"]]


def _trials(seed, effects, sizes):
    """Two-arm trials (exercise vs one class each), continuous outcome; true class effect = effects[c]
    plus a trial random effect (SD 3)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, (c, n) in enumerate(sizes):
        u = rng.normal(0, 3.0)
        x = rng.normal(size=2 * n)
        t = np.repeat([1, 0], n)
        y = 50 + rng.normal(0, 5) + 3 * x - t * (effects[c] + u) + rng.normal(0, 12, 2 * n)
        rows.append(pd.DataFrame({"trial": f"T{k}", "treatment": np.where(t == 1, "exercise", c), "x": x, "y": y}))
    return pd.concat(rows, ignore_index=True)


def test_sparse_class_error_falls_with_shrinkage_against_truth():
    from training.learners import ConstantEffect

    effects = {"no_treatment": 10.0, "placebo": 10.0, "usual_care": 10.0}
    sizes = [("no_treatment", 60)] * 4 + [("usual_care", 60)] * 4 + [("placebo", 15)]
    err = {False: [], True: []}
    for seed in range(12):
        d = _trials(seed, effects, sizes)
        for shrink in (False, True):
            m = ConstantEffect(features=["x"], n_boot=20, class_shrinkage=shrink,
                               class_groups=[list(effects)]).fit(d[["trial", "treatment", "x"]], d["y"])
            b = m.predict(d.iloc[:1])["benefit_vs_placebo"].iloc[0]
            err[shrink].append(b - effects["placebo"])
    rmse = {k: float(np.sqrt(np.mean(np.square(v)))) for k, v in err.items()}
    assert rmse[True] < 0.8 * rmse[False]  # the sparse class borrows from its set (truth: equal effects)
