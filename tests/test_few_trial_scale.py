"""The effect model's few-trial variance tau^2 / k (classes with one or two trials): with
FEW_TRIAL_SCALE = "link" on the scale of the offsets it is added to - the log-odds for a binary outcome
(tau itself is estimated on the risk scale; training.learners.intervals.offset_slope converts it by the
delta method) - train's default since session 12; "risk" keeps the earlier formula (BENCHMARKS.md session 12 s12b)."""
import numpy as np
import pandas as pd
import pytest

from predict.numeric import expit
from training.learners import intervals
from training.learners.intervals import few_trial_variance, offset_slope

TAU_LOGIT = 0.8  # the true between-trial SD of the log odds ratio


def _binary_trials(seed, sizes, tau=TAU_LOGIT):
    """Two-arm trials (exercise vs one class each), binary outcome; the log odds ratio of recovery is
    1.0 plus a trial random effect N(0, tau^2) (known truth on the log-odds scale)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, (c, n) in enumerate(sizes):
        x = rng.normal(size=2 * n)
        t = np.repeat([1, 0], n)
        eta = -0.4 + rng.normal(0, 0.3) + 0.5 * x + t * (1.0 + rng.normal(0, tau))
        y = (rng.random(2 * n) < expit(eta)).astype(int)
        rows.append(pd.DataFrame({"trial": f"T{k}", "treatment": np.where(t == 1, "exercise", c), "x": x, "y": y}))
    return pd.concat(rows, ignore_index=True)


def test_offset_slope_is_the_delta_method_factor():
    """Independent Monte Carlo: a log-odds SD s moves the risk by an SD of about p (1 - p) s."""
    rng = np.random.default_rng(1)
    p = np.full(1000, 0.3)
    d = rng.normal(0, 0.2, 200_000)
    sd_risk = expit(np.log(0.3 / 0.7) + d).std()
    assert sd_risk / offset_slope("binomial", p) == pytest.approx(0.2, rel=0.02)
    assert offset_slope("gaussian", p) == 1.0
    assert offset_slope("binomial", np.full(5, 1.0)) == 1e-3  # floored


def test_binary_few_trial_variance_is_on_the_log_odds_scale(monkeypatch):
    """Known truth: 20 no-treatment trials give the pooled tau; usual care has 2 trials, so its offset
    gets tau_logit^2 / 2 (truth 0.32). On the risk scale it would be ~16x smaller (sqrt ~0.2 x tau)."""
    from training.learners import ConstantEffect

    monkeypatch.setattr(intervals, "FEW_TRIAL_SCALE", "link")
    got = []
    for seed in range(3):
        d = _binary_trials(seed, [("no_treatment", 150)] * 20 + [("usual_care", 150)] * 2)
        m = ConstantEffect(features=["x"], n_boot=4, class_shrinkage=True, outcome_type="binary",
                           class_groups=[["no_treatment", "usual_care"]]).fit(d[["trial", "treatment", "x"]], d["y"])
        few = m.few_trial_var_
        assert few["no_treatment"] == 0.0  # >= 3 trials: the cluster bootstrap shows it
        tau_risk = m.export_["interval"]["tau"]["__pooled__"]
        assert tau_risk < 0.5 * TAU_LOGIT  # tau is estimated on the risk scale
        got.append(np.sqrt(2 * few["usual_care"]))
    # the log-odds tau recovered from the few-trial variance, against the truth
    assert np.mean(got) == pytest.approx(TAU_LOGIT, rel=0.35)
    assert min(got) > 0.5 * TAU_LOGIT


def test_continuous_few_trial_variance_is_tau_squared_over_k():
    from training.learners import ConstantEffect

    rng = np.random.default_rng(0)
    rows = []
    for k, (c, n) in enumerate([("no_treatment", 40)] * 6 + [("usual_care", 40)]):
        x = rng.normal(size=2 * n)
        t = np.repeat([1, 0], n)
        y = 50 + 3 * x - t * (8 + rng.normal(0, 3)) + rng.normal(0, 10, 2 * n)
        rows.append(pd.DataFrame({"trial": f"T{k}", "treatment": np.where(t == 1, "exercise", c), "x": x, "y": y}))
    d = pd.concat(rows, ignore_index=True)
    m = ConstantEffect(features=["x"], n_boot=4, class_shrinkage=True,
                       class_groups=[["no_treatment", "usual_care"]]).fit(d[["trial", "treatment", "x"]], d["y"])
    tau = m.export_["interval"]["tau"]
    assert m.few_trial_var_["usual_care"] == pytest.approx(tau["usual_care"] ** 2 / 1)


def test_default_link_scale_and_the_earlier_formula():
    """train's default (FEW_TRIAL_SCALE = "link") divides tau by the slope; "risk": tau^2 / k whatever the
    slope, as before session 12; classes with >= 3 trials get 0."""
    tau = {"a": 0.05, "__pooled__": 0.04}
    support = {"a": {"trials": 2}, "b": {"trials": 1}, "c": {"trials": 3}}
    assert intervals.FEW_TRIAL_SCALE == "link"
    risk = few_trial_variance(tau, support, ["a", "b", "c"], 0.2, scale="risk")
    assert risk == [0.05 ** 2 / 2, 0.04 ** 2, 0.0]
    link = few_trial_variance(tau, support, ["a", "b", "c"], 0.2)
    assert link == pytest.approx([(0.05 / 0.2) ** 2 / 2, (0.04 / 0.2) ** 2, 0.0])
    with pytest.raises(ValueError, match="few-trial variance scale"):
        few_trial_variance(tau, support, ["a"], 0.2, scale="logit")
