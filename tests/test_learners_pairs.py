"""The effect model with screened modifier pairs (training/learners/pairs.py) against known truth:
a simulated product modifier is found and its coefficient recovered; without one the CV keeps
the products out (prior SD 0) and the model is the plain effect model; the export scores on the
runtime."""
from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from predict.reference import task_scores
from predict.features import feature_matrix
from training.learners.effect_model import EffectModel
from training.simulate.small_trials import small_trials

K = 0.15  # benefit lost per (year x kg/m2) above the means, simulated


def _data(product: float, seed: int):
    X, y, _ = small_trials(n_trials=12, n_per_arm=120, seed=seed, noise=10.0, effect_mod=4.0, exercise_only=0)
    ex = (X["treatment"] == "exercise").to_numpy()
    # continuous benefit = comparator - exercise: a higher exercise-arm outcome is a smaller benefit
    y = y + ex * product * (X["age"].to_numpy() - 45.0) * (X["bmi"].to_numpy() - 27.0)
    return X, y


@pytest.fixture(scope="module")
def fits():
    out = {}
    with threadpool_limits(1):
        for name, k in (("product", K), ("none", 0.0)):
            X, y = _data(k, seed=4)
            out[name] = (X, y, EffectModel(n_boot=20, pairs=True).fit(X, y))
    return out


def test_a_simulated_product_modifier_is_recovered(fits):
    X, _, m = fits["product"]
    assert m.pairs_["product_sd"] > 0
    cv = m.pairs_["cv"].set_index("product_sd")["r_loss"]
    assert cv.idxmin() > 0 and cv.min() < cv.loc[0.0]
    exp = m.to_export()
    names = exp["features"]["names"]
    cols = exp["linear"]["modifier"]["basis"]
    prods = [(i, c) for i, c in enumerate(cols) if c["kind"] == "product"]
    found = {tuple(sorted((names[c["feature"]], names[c["feature2"]]))): i for i, c in prods}
    assert ("age", "bmi") in found, found
    i = found[("age", "bmi")]
    n_mod = exp["linear"]["n_mod"]
    th = np.asarray(exp["linear"]["theta"])
    j = th.size - n_mod + i
    # per (year x kg/m2) on the exercise arm's outcome: gamma / the column's stored scale
    # (ridge-shrunk towards 0 at the CV-chosen prior SD: on this seed 0.135, 10% low)
    k_hat = th[j] / cols[i]["scale"]
    assert abs(k_hat - K) < 0.15 * K, k_hat
    # screened-in noise pairs stay small (per SD of their product, as the penalty sees them)
    others = [th[th.size - n_mod + q] for p, q in found.items() if p != ("age", "bmi")]
    assert all(abs(o) < 0.1 * abs(th[j]) for o in others), (others, th[j])
    assert exp["meta"]["pairs"]["pairs"] and ["age", "bmi"] in exp["meta"]["pairs"]["pairs"]
    # the runtime reproduces the fitted benefit: against the truth at two patients who differ only in bmi
    F = feature_matrix(exp["features"], X.head(2).assign(age=[65.0, 65.0], bmi=[22.0, 34.0]))
    b = task_scores(exp, F, exp["comparators"][0])["benefit"]
    want = -K * 20.0 * 12.0  # the product's part of the change (main bmi terms aside) is -K (65-45)(34-22)
    assert abs((b[1] - b[0]) - want) < 0.35 * abs(want), (b, want)


def test_no_product_effect_chooses_no_products(fits):
    _, _, m = fits["none"]
    cv = m.pairs_["cv"].set_index("product_sd")["r_loss"]
    sp = m.pairs_["product_sd"]
    assert sp <= 0.5, cv
    if sp == 0:
        assert not m.pairs_["columns"]
        assert all(c["kind"] != "product" for c in m.to_export()["linear"]["modifier"]["basis"])
    # and the member is then the plain effect model: same theta
    X, y, _ = fits["none"]
    if sp == 0:
        with threadpool_limits(1):
            plain = EffectModel(n_boot=20).fit(X, y)
        np.testing.assert_allclose(m.theta_, plain.theta_, rtol=0, atol=1e-10)


def test_the_screen_keeps_n_pairs(fits):
    # the benchmark hook EffectModel.n_pairs: one pair kept -> the simulated one, a single product column
    X, y, _ = fits["product"]
    m = EffectModel(n_boot=0, pairs=True)
    m.n_pairs = 1
    with threadpool_limits(1):
        m.fit(X, y)
    names = m.to_export()["features"]["names"]
    prods = [c for c in m.to_export()["linear"]["modifier"]["basis"] if c["kind"] == "product"]
    assert [(names[c["feature"]], names[c["feature2"]]) for c in prods] == [("age", "bmi")]
