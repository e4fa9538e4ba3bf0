"""Fits with the trial block eliminated (training.learners.strata_fit) give the optimum and the
shrinkage covariance of the full system with trial dummy columns (dense reference)."""
import numpy as np
import pytest

from predict.numeric import expit
from training.learners.linear import StructuredFit, fit_penalised, trial_centre


def _data(seed, n, J, sort=False, empty=None):
    rng = np.random.default_rng(seed)
    trial = rng.integers(0, J, n)
    if empty is not None:
        trial[trial == empty] = (empty + 1) % J
    if sort:
        trial = np.sort(trial)
    cls = rng.choice(["exercise", "usual_care", "other"], n)
    treat = (cls == "exercise").astype(float)
    P = rng.normal(size=(n, 6))
    M = rng.normal(size=(n, 4))
    eta = rng.normal(0, 0.8, J)[trial] + P @ rng.normal(0, 0.4, 6) + treat * (M @ [0.5, -0.3, 0.0, 0.2]) \
        - 0.3 * (cls == "usual_care")
    y = (rng.random(n) < expit(eta)).astype(float)
    return y, trial, cls, treat, P, trial_centre(M, trial)


def _dense(y, trial, cls, treat, comps, P, Mw, lam_main, lam_int, J):
    D = np.eye(J)[trial]
    O = np.column_stack([(cls == c).astype(float) for c in comps])
    X = np.hstack([D, O, P, Mw * treat[:, None]])
    pen = np.concatenate([np.full(J, 1e-3), np.full(len(comps), 1e-4), np.full(P.shape[1], lam_main),
                          np.full(Mw.shape[1], lam_int)])
    return X, pen, fit_penalised(X, y, pen, "binomial")


@pytest.mark.parametrize("sort,empty", [(False, None), (True, None), (False, 3)])
def test_logistic_fit_equals_the_newton_fit_on_the_full_system(sort, empty):
    J = 12
    y, trial, cls, treat, P, Mw = _data(5, 900, J, sort, empty)
    comps = ["usual_care", "other"]
    f = StructuredFit("binomial", 0.11, 4.0).fit(y, trial, cls, treat, comps, P, Mw)
    X, pen, b = _dense(y, trial, cls, treat, comps, P, Mw, 0.11, 4.0, J)
    assert np.max(np.abs(f.alpha_trial_ - b[:J])) < 1e-8
    assert np.max(np.abs(f.theta_[1:] - b[J:])) < 1e-8
    assert np.max(np.abs(f.eta_ - X @ b)) < 1e-8
    if empty is not None:  # a trial code without rows: its intercept stays at the penalty's 0
        assert f.alpha_trial_[empty] == 0.0


@pytest.mark.parametrize("family", ["binomial", "gaussian"])
def test_shrinkage_covariance_equals_the_dense_formula(family):
    J = 10
    y, trial, cls, treat, P, Mw = _data(9, 700, J)
    if family == "gaussian":
        y = y * 3 + trial + np.random.default_rng(1).normal(size=y.size)
    comps = ["usual_care", "other"]
    f = StructuredFit(family, 0.2, 1e12).fit(y, trial, cls, treat, comps, P, Mw)
    D = np.eye(J)[trial]
    O = np.column_stack([(cls == c).astype(float) for c in comps])
    X = np.hstack([D, O, P, Mw * treat[:, None]])
    W = np.ones(y.size) if family == "gaussian" else expit(f.eta_) * (1 - expit(f.eta_))
    lam_t = 0.0 if family == "gaussian" else 1e-3
    pen = np.concatenate([np.full(J, lam_t), np.full(2, 1e-4), np.full(P.shape[1], 0.2), np.full(Mw.shape[1], 1e12)])
    A = np.linalg.inv((X * W[:, None]).T @ X + np.diag(pen) + 1e-10 * np.eye(X.shape[1]))
    B = 2.5 * (A * np.where(pen >= 1e11, 0.0, pen)) @ A
    nj = np.bincount(trial, minlength=J)
    T = np.zeros((X.shape[1] - J + 1, X.shape[1]))
    T[0, :J] = nj / nj.sum()
    T[1:, J:] = np.eye(X.shape[1] - J)
    ref = T @ B @ T.T
    got = f.shrinkage_cov(2.5)
    assert np.allclose(got, ref, rtol=1e-7, atol=1e-12 * np.abs(ref).max())


def test_bootstrap_replicate_codes_fit_like_the_dense_system():
    from training.learners.intervals import cluster_bootstrap

    J = 8
    y, trial, cls, treat, P, _ = _data(11, 600, J)
    M = np.random.default_rng(2).normal(size=(600, 3))
    comps = ["usual_care", "other"]
    for idx, codes in cluster_bootstrap(trial, np.ones(J, bool), 3, 4):
        Mb = trial_centre(M[idx], codes)
        f = StructuredFit("binomial", 0.3, 2.0).fit(y[idx], codes, cls[idx], treat[idx], comps, P[idx], Mb)
        Jb = int(codes.max()) + 1
        _, _, b = _dense(y[idx], codes, cls[idx], treat[idx], comps, P[idx], Mb, 0.3, 2.0, Jb)
        assert np.max(np.abs(f.theta_[1:] - b[Jb:])) < 1e-8


def test_warm_started_replicate_reaches_the_cold_optimum():
    from training.learners.intervals import cluster_bootstrap
    from training.learners.linear import replicate_start

    J = 9
    y, trial, cls, treat, P, Mw = _data(13, 800, J)
    comps = ["usual_care", "other"]
    full = StructuredFit("binomial", 0.2, 3.0).fit(y, trial, cls, treat, comps, P, Mw)
    for idx, codes in cluster_bootstrap(trial, np.ones(J, bool), 4, 8):
        Mb = trial_centre(Mw[idx], codes)
        args = (y[idx], codes, cls[idx], treat[idx], comps, P[idx], Mb)
        cold = StructuredFit("binomial", 0.2, 3.0).fit(*args)
        warm = StructuredFit("binomial", 0.2, 3.0).fit(*args, start=replicate_start(full, trial, idx, codes))
        assert np.max(np.abs(warm.theta_ - cold.theta_)) < 1e-10
        assert np.max(np.abs(warm.alpha_trial_ - cold.alpha_trial_)) < 1e-10
    # a start far from the optimum still ends at it (or falls back to the cold start)
    far = (np.full(J, 30.0), np.full(full.theta_.size - 1, -20.0))
    bad = StructuredFit("binomial", 0.2, 3.0).fit(y, trial, cls, treat, comps, P, Mw, start=far)
    assert np.max(np.abs(bad.theta_ - full.theta_)) < 1e-10


def test_trial_centre_subtracts_each_trials_mean():
    rng = np.random.default_rng(3)
    trial = rng.choice(["t1", "t2", "t3"], 300)
    M = rng.normal(size=(300, 4)) * 3 + 7
    ref = M.copy()
    for t in np.unique(trial):
        ref[trial == t] -= M[trial == t].mean(axis=0)
    assert np.allclose(trial_centre(M, trial), ref, atol=1e-12)


@pytest.mark.parametrize("family", ["gaussian", "binomial"])
def test_penalty_path_equals_one_fit_per_penalty(family):
    from training.learners.linear import theta_path

    J = 7
    y, trial, cls, treat, P, Mw = _data(17, 700, J)
    if family == "gaussian":
        y = 5 * y + trial + np.random.default_rng(2).normal(size=y.size)
    comps = ["usual_care", "other"]
    grid = [(1e12, 0), (4.0, Mw.shape[1]), (1.0, Mw.shape[1]), (0.25, Mw.shape[1])]
    path = theta_path(family, 0.3, grid, y, trial, cls, treat, comps, P, Mw)
    for (lam, k), th in zip(grid, path):
        one = StructuredFit(family, 0.3, lam).fit(y, trial, cls, treat, comps, P, Mw[:, :k]).theta_
        assert th.shape == one.shape
        assert np.max(np.abs(th - one)) < 1e-9
