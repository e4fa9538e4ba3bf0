"""Separation in binary outcomes (s12f): Konis's LP check, Firth's fit against known results, and the
learners' logistic fit under a laryngoscope-like class with all events (medicaldata::laryngoscope:
49 of 49 Macintosh intubations succeeded)."""
import numpy as np
import pytest
from scipy import optimize
from scipy.special import expit

from training.learners.linear import StructuredFit
from training.learners.separation import firth_fit, penalised_loglik, separated


def _two_arms(events_a=46, n_a=50, events_b=49, n_b=49):
    y = np.r_[np.ones(events_a), np.zeros(n_a - events_a), np.ones(events_b), np.zeros(n_b - events_b)]
    arm_b = np.r_[np.zeros(n_a), np.ones(n_b)]
    return y, arm_b


def test_konis_lp_finds_complete_and_quasi_complete_separation_and_only_that():
    y, b = _two_arms()
    X = np.column_stack([np.ones(y.size), b])
    assert separated(X, y)  # quasi-complete: one arm all events
    y2, b2 = _two_arms(events_b=47)
    assert not separated(np.column_stack([np.ones(y2.size), b2]), y2)
    x = np.linspace(-1, 1, 40)
    assert separated(np.column_stack([np.ones(40), x]), (x > 0.05).astype(float))  # complete
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(300, 3))
    ys = (rng.random(300) < expit(xs @ [0.5, -0.3, 0.2])).astype(float)
    assert not separated(np.column_stack([np.ones(300), xs]), ys)
    # within a subgroup only: all events among x2 = 1 (strep_tb-like), overlap elsewhere
    g = (rng.random(300) < 0.2).astype(float)
    ys2 = np.where(g == 1, 1.0, ys)
    assert separated(np.column_stack([np.ones(300), xs, g]), ys2)


def test_firth_on_a_two_by_two_table_adds_a_half_to_every_cell():
    """Known result (Firth 1993; Heinze & Schemper 2002): in a 2x2 table the Firth estimate of the
    log odds ratio is the log odds ratio with 1/2 added to each cell."""
    y, b = _two_arms()
    est, ok = firth_fit(np.column_stack([np.ones(y.size), b]), y)
    assert ok
    assert est[0] == pytest.approx(np.log(46.5 / 4.5), abs=1e-8)
    assert est[1] == pytest.approx(np.log(49.5 / 0.5) - np.log(46.5 / 4.5), abs=1e-8)


def test_firth_with_a_ridge_penalty_maximises_its_objective():
    """Independent computation: the penalised log-likelihood + 0.5 log det(X'WX + P) maximised by a
    general optimiser (numerical gradients) gives the modified-score Newton's estimate."""
    rng = np.random.default_rng(4)
    X = np.column_stack([np.ones(60), rng.normal(size=(60, 2)), (np.arange(60) < 15).astype(float)])
    y = np.where(X[:, 3] == 1, 1.0, (rng.random(60) < 0.5).astype(float))
    pen = np.array([0.0, 0.5, 0.5, 1e-4])
    est, ok = firth_fit(X, y, pen)
    ref = optimize.minimize(lambda b: -penalised_loglik(X, y, b, pen, np.zeros(60)), np.zeros(4), method="BFGS",
                            options={"gtol": 1e-10})
    assert ok and np.allclose(est, ref.x, atol=1e-4)


def _fit(y, cls):
    n = y.size
    trial = np.zeros(n, int)
    treat = (cls == "video").astype(float)
    return StructuredFit("binomial", 1.0, 1e12).fit(y, trial, cls, treat, ["video"], np.zeros((n, 0)), np.zeros((n, 0)))


def test_a_class_with_all_events_gets_firth_not_a_certain_prediction():
    """Laryngoscope-like: 46/50 events under video, 49/49 under Macintosh. Today's fit predicted
    ~0.99998 for Macintosh (logit ~ 11); with Firth the prediction is the 1/2-corrected 49.5/50 and
    the Wald SE of that logit is honest (about 1.4, not ~ 200-fold too small)."""
    y, mac = _two_arms()
    cls = np.where(mac == 1, "macintosh", "video")
    f = _fit(y, cls)
    assert f.separated_ and f.firth_converged_
    p_mac = expit(f.eta_[mac == 1][0])
    p_vid = expit(f.eta_[mac == 0][0])
    assert p_mac == pytest.approx(49.5 / 50, abs=2e-3) and p_vid == pytest.approx(46.5 / 51, abs=2e-3)
    w = p_mac * (1 - p_mac)
    assert 1.0 < 1 / np.sqrt(49 * w) < 2.0
    # no separation: the fit is the penalised maximum likelihood, untouched
    y2, mac2 = _two_arms(events_b=47)
    g = _fit(y2, np.where(mac2 == 1, "macintosh", "video"))
    assert not g.separated_ and expit(g.eta_[mac2 == 1][0]) == pytest.approx(47 / 49, abs=1e-3)
