"""The Gaussian structured fit profiles out the trial intercepts (FWL): same optimum as the full system."""
import numpy as np

from training.learners.linear import StructuredFit, fit_penalised


def test_within_trial_fit_equals_the_full_penalised_system():
    rng = np.random.default_rng(4)
    n, J = 600, 9
    trial = rng.integers(0, J, n)
    cls = rng.choice(["exercise", "usual_care", "other"], n)
    treat = (cls == "exercise").astype(float)
    P = rng.normal(size=(n, 5))
    Mw = rng.normal(size=(n, 3))
    y = 2 * trial + P @ rng.normal(size=5) + treat * (Mw @ [1.0, -0.5, 0.2]) + rng.normal(size=n)
    comps = ["usual_care", "other"]
    f = StructuredFit("gaussian", 0.3, 2.0).fit(y, trial, cls, treat, comps, P, Mw)
    D = np.eye(J)[trial]
    O = np.column_stack([(cls == c).astype(float) for c in comps])
    X = np.hstack([D, O, P, Mw * treat[:, None]])
    pen = np.concatenate([np.zeros(J), np.full(2, 1e-4), np.full(5, 0.3), np.full(3, 2.0)])
    b = fit_penalised(X, y, pen, "gaussian")
    assert np.allclose(f.alpha_trial_, b[:J], atol=1e-7)
    assert np.allclose(f.theta_[1:], b[J:], atol=1e-8)
    assert np.allclose(f.eta_, X @ b, atol=1e-7)
    assert f.shrinkage_cov(1.0).shape == (1 + X.shape[1] - J,) * 2


def test_bootstrap_replicate_from_trial_blocks_equals_a_fit_on_the_replicate():
    from training.learners.intervals import cluster_bootstrap
    from training.learners.linear import TrialBlocks, replicate_counts, trial_centre

    rng = np.random.default_rng(7)
    n, J = 500, 8
    trial = np.sort(rng.integers(0, J, n))
    cls = rng.choice(["exercise", "usual_care", "other"], n)
    treat = (cls == "exercise").astype(float)
    P, M = rng.normal(size=(n, 4)), rng.normal(size=(n, 3))
    y = trial + P @ [1.0, 0.5, 0.0, -1.0] + treat * (M @ [1.0, 0.0, 0.5]) + rng.normal(size=n)
    comps = ["usual_care", "other"]
    blocks = TrialBlocks(y, trial, cls, treat, comps, P, M, 0.2, 1.5)
    for idx, codes in cluster_bootstrap(trial, np.ones(J, bool), 5, 3):
        full = StructuredFit("gaussian", 0.2, 1.5).fit(y[idx], codes, cls[idx], treat[idx], comps, P[idx],
                                                      trial_centre(M[idx], codes))
        assert np.allclose(blocks.theta(replicate_counts(trial, idx, codes, J)), full.theta_, atol=1e-8)
