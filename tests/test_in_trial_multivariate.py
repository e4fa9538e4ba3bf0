"""The multivariate in-trial deviation estimator of benchmarks/in_trial_multivariate.py (measured in
diag_in_trial.py, not adopted) against the package's univariate one and a known truth."""
import numpy as np

from benchmarks.in_trial_multivariate import between_correlation, multivariate_deviations, raw_deviations
from training.learners.trial_specific import univariate_deviations


def _data(T=120, n=30, rho_between=0.95, rho_within=0.0, seed=3):
    """Residuals of two tasks for the same participants: trial t's active arm is shifted by u_t,k
    (SD 3, correlation ``rho_between`` between the tasks), noise SD 15 (correlation ``rho_within``)."""
    rng = np.random.default_rng(seed)
    L = np.linalg.cholesky(np.array([[1, rho_between], [rho_between, 1]]))
    u = 3.0 * rng.standard_normal((T, 2)) @ L.T
    Lw = np.linalg.cholesky(np.array([[1, rho_within], [rho_within, 1]]))
    trial = np.repeat(np.arange(T).astype(str), 2 * n)
    cls = np.tile(np.r_[np.full(n, "ex"), np.full(n, "uc")], T)
    R = 15.0 * rng.standard_normal((T * 2 * n, 2)) @ Lw.T
    R += np.where(cls == "ex", 1.0, 0.0)[:, None] * np.repeat(u, 2 * n, axis=0)
    return R, trial, cls, {str(t): u[t, 0] for t in range(T)}


def test_one_component_is_the_univariate_estimator():
    R, trial, cls, _ = _data(T=15)
    mv, taus, rho = multivariate_deviations(R[:, :1], trial, cls, "ex", ["uc"])
    uni, taus_u = univariate_deviations(R[:, 0], trial, cls, "ex", ["uc"])
    assert rho.shape == (1, 1) and taus["uc"] == taus_u["uc"]
    for col in ("raw", "se", "mu", "tau", "shrinkage", "blup", "post_sd"):
        np.testing.assert_allclose(mv[col].to_numpy(float), uni[col].to_numpy(float), rtol=1e-10, atol=1e-12)


def test_within_trial_covariance_and_between_correlation():
    R, trial, cls, _ = _data(T=200, rho_between=0.9, rho_within=0.5)
    rows = raw_deviations(R, trial, cls, "ex", ["uc"])
    S = np.mean([r[5] for r in rows], axis=0)
    # two arm means of 30 with SD 15: variance 2 * 225 / 30 = 15, covariance 0.5 * 15
    np.testing.assert_allclose(S, [[15.0, 7.5], [7.5, 15.0]], rtol=0.08)
    rho = between_correlation(rows, 2)
    assert abs(rho[0, 1] - 0.9) < 0.2 and np.allclose(np.diag(rho), 1.0)


def test_a_correlated_task_lowers_the_deviation_error():
    R, trial, cls, truth = _data(T=150, rho_between=0.95, rho_within=0.0)
    uni, _ = univariate_deviations(R[:, 0], trial, cls, "ex", ["uc"])
    mv, _, _ = multivariate_deviations(R, trial, cls, "ex", ["uc"])
    err = {k: np.sqrt(np.mean((d["blup"].to_numpy() - d["trial"].map(truth).to_numpy()) ** 2))
           for k, d in (("uni", uni), ("mv", mv))}
    # the BLUPs' error at the true parameters: [Sigma - Sigma (Sigma + S)^-1 Sigma]_00, tau 3, S = 15 I
    Sig = 9.0 * np.array([[1.0, 0.95], [0.95, 1.0]])
    S = 15.0 * np.eye(2)
    ideal_mv = np.sqrt((Sig - Sig @ np.linalg.solve(Sig + S, Sig))[0, 0])  # 2.04
    ideal_uni = np.sqrt(9.0 * 15.0 / 24.0)  # 2.37
    assert abs(err["uni"] / ideal_uni - 1) < 0.1 and abs(err["mv"] / ideal_mv - 1) < 0.1, err
    assert err["mv"] < 0.95 * err["uni"], err
    # and the posterior SD says so (it is the error's own estimate: within 25% of it)
    assert mv["post_sd"].mean() < uni["post_sd"].mean()
    assert abs(mv["post_sd"].mean() / err["mv"] - 1) < 0.25


def test_no_heterogeneity_in_the_task_gives_no_spread():
    """Task 0's raw deviations are identical in every trial (REML tau = 0); task 1 varies a lot and is
    given as related: every trial of task 0 still gets the same deviation (no spread invented)."""
    R, trial, cls, _ = _data(T=40, rho_between=0.0)
    first = trial == "0"
    R[:, 0] = np.tile(R[first, 0], 40)
    mv, taus, _ = multivariate_deviations(R, trial, cls, "ex", ["uc"])
    assert taus["uc"] == 0.0
    np.testing.assert_allclose(mv["blup"].to_numpy(), mv["blup"].iloc[0], atol=1e-12)
    assert np.ptp(mv["raw"].to_numpy()) < 1e-9
