"""The extrapolation widening calibrated on held-out trials (predict.support ``inflation``,
training.learners.support_calibration; issue 23, session 12).

- the field's factor is sqrt(1 + kappa max(0, rho - 1)^2), the same for one patient and a batch, and
  an entry without it scores as before (max(1, rho)^2);
- another method/version or a bad kappa is refused (by the runtime and at artifact verification);
- the compiled program and the numpy reference (and predict_from_export) give the same widened
  intervals (1e-9);
- the estimator recovers a known kappa from simulated held-out cells (observed outcomes and truth),
  and kappa 0 where the error does not grow beyond the cut.
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from predict import kernels, learner_model
from predict import support as sp
from predict.compute import Engine
from predict.runtime import predict_from_export
from predict.task import Task
from training.learners import support_calibration as sc
from training.learners.effect_model import EffectModel
from training.simulate.small_trials import small_trials as toy_trials


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def _field(kappa):
    return {"method": sp.INFLATION_METHOD, "version": sp.INFLATION_VERSION, "kappa": kappa}


def test_calibrated_factor_is_the_stated_form_for_one_patient_and_a_batch():
    rng = np.random.default_rng(2)
    p = 4
    F = rng.normal(size=(5000, p))
    F[rng.random(F.shape) < 0.2] = np.nan
    sup = sp.fit_support(np.zeros(p), np.eye(p), F)
    G = np.vstack([F[:100], rng.normal(size=(100, p)) * 3])
    old = sp.support_scores(sup, G)
    rho = old["ratio"]
    assert (rho > 1.5).any() and (rho < 1).any()
    np.testing.assert_allclose(old["factor"], np.maximum(rho, 1) ** 2, rtol=1e-12)  # no field: as before
    cal = sp.support_scores({**sup, "inflation": _field(4.0)}, G)
    np.testing.assert_array_equal(cal["ratio"], rho)
    np.testing.assert_allclose(cal["factor"], np.sqrt(1 + 4.0 * np.maximum(rho - 1, 0) ** 2), rtol=1e-12)
    assert (cal["factor"][rho <= 1] == 1.0).all()
    zero = sp.support_scores({**sup, "inflation": _field(0.0)}, G)  # kappa 0: no widening at all
    assert (zero["factor"] == 1.0).all() and np.array_equal(zero["rare"], old["rare"])
    calsup = {**sup, "inflation": _field(4.0)}
    for i in range(0, G.shape[0], 7):
        one = sp.support_scores(calsup, G[i:i + 1])
        assert one["factor"][0] == pytest.approx(cal["factor"][i], rel=1e-12)
        assert one["ratio"][0] == pytest.approx(rho[i], rel=1e-12, abs=1e-15)


def test_another_version_or_a_bad_kappa_is_refused():
    from predict import model_format as mf
    from predict.artifact import ArtifactError

    sup = sp.fit_support(np.zeros(2), np.eye(2), np.random.default_rng(0).normal(size=(50, 2)))
    for bad in ({**_field(1.0), "version": 2}, {**_field(1.0), "method": "other"}, _field(-1.0), _field(float("nan")),
                _field("3")):
        with pytest.raises(sp.SupportFieldError, match="inflation"):
            sp.support_scores({**sup, "inflation": bad}, np.zeros((2, 2)))
    X, y, _ = toy_trials(n_trials=6, n_per_arm=30, seed=3, noise=10.0, effect_mod=5.0)
    exp = EffectModel(n_boot=5).fit(X, y).to_export()
    mf.parse_learner({**exp, "support": {**exp["support"], "inflation": _field(2.0)}}, "model/x.json")
    with pytest.raises(ArtifactError, match="inflation"):
        mf.parse_learner({**exp, "support": {**exp["support"], "inflation": {**_field(2.0), "version": 2}}},
                         "model/x.json")


@pytest.fixture(scope="module")
def fitted():
    X, y, _ = toy_trials(n_trials=14, n_per_arm=80, seed=11, noise=10.0, effect_mod=5.0, missing=0.1,
                         systematic=True, tau=2.0)
    return X, y, EffectModel(n_boot=20).fit(X, y)


def _far_patients(X, exp, n=40, seed=1):
    names = exp["features"]["names"]
    rng = np.random.default_rng(seed)
    P = X.sample(n, random_state=seed).reset_index(drop=True).copy()
    P.loc[: n // 2, "fear_avoidance"] = float(X["fear_avoidance"].max()) + rng.uniform(0, 25, n // 2 + 1)
    P.loc[n // 4:, "age"] = np.nan  # a missing input too
    return P, [n_ for n_ in names]


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba not installed: one path only")
def test_compiled_program_and_numpy_reference_agree_with_the_calibrated_widening(fitted):
    from predict.features import feature_matrix

    X, y, m = fitted
    exp = json.loads(json.dumps(m.to_export()))
    cal = {**exp, "support": {**exp["support"], "inflation": _field(3.0)}}
    P, names = _far_patients(X, exp)
    F = feature_matrix(exp["features"], P)
    got = {}
    for e, tag in ((exp, "old"), (cal, "cal")):
        for compiled in (True, False):
            L = learner_model.build(copy.deepcopy(e))
            t = Task("pain__short", "pain", "short", "continuous", "effect_model", e, L, "pain", "baseline_pain")
            eng = Engine([t], {n_: j for j, n_ in enumerate(names)}, [], compiled=compiled)
            for comp in e["comparators"]:
                assert (eng.program(comp) is not None) == compiled
                c = eng.compute(F, comp, [t])[0][0]
                got[(tag, compiled, comp)] = (c.benefit, *c.ci, *c.pi)
    ref = {tag: predict_from_export(e, P) for e, tag in ((exp, "old"), (cal, "cal"))}
    f = sp.support_scores(cal["support"], F)["factor"]
    assert (f > 1.2).any() and (f == 1).any()
    for comp in exp["comparators"]:
        for tag in ("old", "cal"):
            a, b = got[(tag, True, comp)], got[(tag, False, comp)]
            r = ref[tag]
            cols = [f"benefit_vs_{comp}" + s for s in ("", "_ci_low", "_ci_high", "_pi_low", "_pi_high")]
            for k in range(5):
                np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-9)
                np.testing.assert_allclose(a[k], r[cols[k]].to_numpy(), rtol=0, atol=1e-9)
        # the calibrated widening: half-widths of the unwidened interval times sqrt(1 + 3 (rho - 1)+^2)
        plain = predict_from_export({**exp, "support": {"method": "none", "features": []}}, P)
        for s in ("ci", "pi"):
            w0 = plain[f"benefit_vs_{comp}_{s}_high"] - plain[f"benefit_vs_{comp}_{s}_low"]
            w1 = ref["cal"][f"benefit_vs_{comp}_{s}_high"] - ref["cal"][f"benefit_vs_{comp}_{s}_low"]
            np.testing.assert_allclose(w1.to_numpy(), f * w0.to_numpy(), rtol=1e-9)
        np.testing.assert_array_equal(got[("cal", True, comp)][0], got[("old", True, comp)][0])  # points unchanged


def _held_out(kappa, n_trials=60, seed=0, noise=8.0, P=9.0):
    """Held-out predictions whose benefit error in each (trial, band) cell is N(0, P (1 + kappa hbar))
    (the estimator's model), participants randomised 1:1, outcome oriented larger = better
    (binary-style: pred columns as training.iecv writes them)."""
    rng = np.random.default_rng(seed)
    rows, truth, rho_all = [], [], []
    k = 0
    for t in range(n_trials):
        shift = rng.uniform(0.3, 2.6) if t % 2 else rng.uniform(0.2, 1.1)
        n = 240
        rho = np.clip(rng.normal(shift, 0.35, n), 0.01, None)
        band = np.digitize(rho, sc.BANDS[1:-1])
        treat = (np.arange(n) % 2).astype(float)
        b_hat = rng.normal(5, 2, n)
        prog = rng.normal(50, 5, n)
        err = np.zeros(n)
        for bb in np.unique(band):
            m = band == bb
            hbar = np.mean(np.maximum(rho[m] - 1, 0) ** 2)
            err[m] = rng.normal(0, np.sqrt(P * (1 + kappa * hbar)))
        y = prog + treat * (b_hat + err) + rng.normal(0, noise, n)
        own = prog + treat * b_hat
        rows.append(pd.DataFrame({"row": np.arange(k, k + n), "fold": str(t), "trial": str(t), "treat": treat,
                                  "y": y, "benefit": b_hat, "expected_own": own}))
        truth.append(b_hat + err)
        rho_all.append(rho)
        k += n
    return pd.concat(rows, ignore_index=True), np.concatenate(rho_all), np.concatenate(truth)


@pytest.mark.parametrize("kappa", [0.0, 6.0])
def test_the_estimator_recovers_a_known_kappa_from_outcomes_and_from_truth(kappa):
    pred, rho, truth = _held_out(kappa)
    cells = sc.heldout_cells(pred, rho, np.full(len(pred), 9.0), "binary", truth=truth)
    f = sc.fit_inflation(cells, n_boot=100, seed=1)
    assert f["kappa"] is not None and f["trials_beyond"] >= 20
    lo, hi = f["kappa_ci"]
    assert lo <= kappa <= hi + 1e-12
    assert f["kappa_true"] == pytest.approx(kappa, abs=0.35 * kappa + 0.6)
    if kappa == 0.0:
        assert f["kappa"] < 1.5
    else:
        assert f["kappa"] > 2.0 and lo > 0.5  # the growth is detected


def test_too_few_trials_beyond_the_cut_gives_no_kappa():
    pred, rho, _ = _held_out(3.0, n_trials=4)
    rho = np.minimum(rho, 0.99)  # nobody beyond the cut
    f = sc.fit_inflation(sc.heldout_cells(pred, rho, np.full(len(pred), 9.0), "binary"))
    assert f["kappa"] is None and "nothing to calibrate" in f["reason"]
    exp = {"support": {"features": [0]}}
    assert sc.with_inflation(exp, f) is exp


@pytest.fixture(scope="module")
def iecv(fitted):
    from training.iecv import run_iecv

    X, y, _ = fitted
    return run_iecv(X.assign(_y=y), "_y", {"effect_model": lambda: EffectModel(n_boot=0)}, "continuous", metrics=False)


def test_calibrate_on_iecv_of_toy_trials_gives_a_field_the_runtime_reads(fitted, iecv):
    X, y, m = fitted
    res = iecv
    f = sc.calibrate(m.export_, X, res.predictions, res.folds, "exercise", seed=0)
    # the toy's effect modification is linear in the inputs: the error does not grow beyond the cut
    assert f["trials"] >= 10 and f["kappa"] is not None and 0.0 <= f["kappa"] < 2.0
    exp = sc.with_inflation(m.to_export(), f)
    assert exp["support"]["inflation"]["kappa"] == f["kappa"]
    assert set(predict_from_export(exp, X.head(5)).columns) == set(predict_from_export(m.export_, X.head(5)).columns)


def test_train_hook_uses_the_deployed_model_held_out_predictions(fitted, iecv):
    """calibrate_selected (train's hook): the deployed learner's own held-out rows (a one-member stack
    is that learner), nothing without IECV or for a binary outcome."""
    X, y, m = fitted
    exp = m.to_export()
    a = sc.calibrate_selected(exp, X, iecv, {"model": "effect_model"}, "exercise")
    b = sc.calibrate_selected(exp, X, iecv, {"model": "stacked", "weights": {"effect_model": 1.0}}, "exercise")
    assert a == b and a["kappa"] is not None and a["trials"] >= 10
    assert sc.calibrate_selected(exp, X, None, {"model": "effect_model"}, "exercise") is None
    assert sc.calibrate_selected({**exp, "outcome_type": "binary"}, X, iecv, {"model": "effect_model"}, "exercise") is None
