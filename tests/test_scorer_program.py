"""The fused program (predict/program.py + predict/fused.py) against the per-learner reference
functions of predict.runtime: every learner kind (linear, T, X, DR; stacks of them; continuous
and binary outcomes), every comparator, with and without the per-arm uncertainty, on complete
rows, partly and wholly missing rows; equal to 1e-9 (floating-point summation order aside).
A property-based test draws arbitrary missing-data patterns; another checks that splitting a
batch over threads changes nothing."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from tests._runtime import rt
from predict import arm_intervals as A
from predict import fused as fz
from predict import kernels as _fast
from predict.program import compile_program
from training.learners.effect_model import ConstantEffect, EffectModel
from training.learners.boosted import DRLearner, TLearner, XLearner
from training.learners.risk_model import RiskModel
from training.learners.stacking import StackedLearner
from training.simulate.small_trials import small_trials

pytestmark = pytest.mark.skipif(not _fast.AVAILABLE, reason="numba not installed: no fused program")
ROWS = {"exercise": fz.O_A, "comparator": fz.O_C, "benefit": fz.O_B, "se_est": fz.O_SE, "var_missing": fz.O_VAR}


def _fit(outcome: str):
    X, y, _ = small_trials(n_trials=8, n_per_arm=40, seed=21, noise=10.0, effect_mod=5.0, outcome=outcome,
                         missing=0.15)
    kw = dict(outcome_type=outcome)
    with threadpool_limits(1):
        lin = EffectModel(n_boot=4, **kw).fit(X, y)
        const = ConstantEffect(n_boot=4, **kw).fit(X, y)
        risk = RiskModel(n_boot=4, **kw).fit(X, y)
        t = TLearner(n_boot=5, **kw).fit(X, y)
        x = XLearner(n_boot=5, **kw).fit(X, y)
        dr = DRLearner(n_boot=5, **kw).fit(X, y)
        stack = StackedLearner.from_fitted([lin, x, dr, risk], [0.4, 0.25, 0.2, 0.15])
    exps = [m.to_export() for m in (lin, const, risk, t, x, dr)] + [stack.export_]
    return X, exps


@pytest.fixture(scope="module")
def exports():
    out = {}
    for outcome in ("continuous", "binary"):
        X, exps = _fit(outcome)
        out[outcome] = (X, [copy.deepcopy(e) for e in exps])  # compile_program builds the typed learners
    return out


def _features(X, exp, rng) -> np.ndarray:
    F = rt.feature_matrix(exp["features"], X.head(60))
    F = np.vstack([F, F[:5]])
    F[-5:, :] = np.nan  # every covariate missing
    F[-5:, -1] = 50.0  # (the small-trials data's last feature is a baseline: keep one value)
    full = F[:10].copy()
    for j in range(full.shape[1]):
        col = full[:, j]
        col[np.isnan(col)] = np.nanmedian(F[:, j]) if np.isfinite(F[:, j]).any() else 0.0
    more = F[10:30].copy()
    more[rng.random(more.shape) < 0.4] = np.nan
    return np.vstack([full, F, more])


def _clip(x, lo, hi):
    return np.minimum(np.maximum(x, lo), hi)


def _compare(prog, exps, F, comp, arms):
    z = 1.959963984540054
    out = prog.run(F, arms=arms, threads=1, z=z)
    for j, pos in enumerate(prog.tasks):
        exp = exps[pos]
        ref = rt.task_scores(exp, F, comp, arms=arms)
        # the intervals, as Scorer._compute forms them from these numbers
        lim = 100.0 if exp["outcome_type"] == "continuous" else 1.0
        se = np.sqrt(ref["se_est"] ** 2 + ref["var_missing"])
        sp = np.sqrt(se ** 2 + float(exp["interval"]["tau"].get(comp, 0.0)) ** 2)
        for row, want in ((fz.O_CILO, ref["benefit"] - z * se), (fz.O_CIHI, ref["benefit"] + z * se),
                          (fz.O_PILO, ref["benefit"] - z * sp), (fz.O_PIHI, ref["benefit"] + z * sp)):
            np.testing.assert_allclose(out[row, j], _clip(want, -lim, lim), rtol=1e-9, atol=1e-9)
        if ref["arm_se"] is not None:
            for k, (est, lo_row) in enumerate(((ref["exercise"], fz.O_EXLO), (ref["comparator"], fz.O_CPLO))):
                sd = np.sqrt(ref["arm_se"][k] ** 2 + ref["arm_var_missing"][k])
                np.testing.assert_allclose(out[lo_row, j], _clip(est - z * sd, 0, 100), rtol=1e-9, atol=1e-9)
                np.testing.assert_allclose(out[lo_row + 1, j], _clip(est + z * sd, 0, 100), rtol=1e-9, atol=1e-9)
        for key, row in ROWS.items():
            np.testing.assert_allclose(out[row, j], ref[key], rtol=1e-9, atol=1e-10,
                                       err_msg=f"{exp['kind']} {exp['outcome_type']} {comp} {key}")
        if exp["outcome_type"] == "binary":  # per-arm P(recovery): predict/arm_intervals.py
            parts = A.binary_parts(exp, F, comp) if arms else None
            if parts is None:
                assert np.isnan(out[fz.O_SEA, j]).all() and np.isnan(out[fz.O_VA, j]).all(), exp["kind"]
            else:
                got = A.binary_parts_from(exp, *(out[r, j] for r in (fz.O_A, fz.O_C, fz.O_SEA, fz.O_SEC, fz.O_VA,
                                                                     fz.O_VC)))
                for g, w in zip(A.binary_interval(got, z), A.binary_interval(parts, z)):
                    np.testing.assert_allclose(g, w, rtol=0, atol=1e-10, err_msg=f"{exp['kind']} {comp} arms")
        elif ref["arm_se"] is None:
            assert np.isnan(out[fz.O_SEA, j]).all() and np.isnan(out[fz.O_VA, j]).all(), exp["kind"]
        else:
            for row, want in ((fz.O_SEA, ref["arm_se"][0]), (fz.O_SEC, ref["arm_se"][1]),
                              (fz.O_VA, ref["arm_var_missing"][0]), (fz.O_VC, ref["arm_var_missing"][1])):
                np.testing.assert_allclose(out[row, j], want, rtol=1e-9, atol=1e-10,
                                           err_msg=f"{exp['kind']} {comp} arms row {row}")


@pytest.mark.parametrize("outcome", ["continuous", "binary"])
def test_every_learner_kind_matches_the_reference(exports, outcome):
    X, exps = exports[outcome]
    kinds = {e["kind"] for e in exps}
    assert kinds == {"effect_model", "constant", "risk_model", "t_learner", "x_learner", "dr_learner", "stacked"}
    F = _features(X, exps[0], np.random.default_rng(3))
    assert np.isnan(F).any(axis=1).sum() > 20 and (~np.isnan(F).any(axis=1)).sum() >= 10
    for comp in exps[0]["comparators"]:
        prog = compile_program(exps, comp)
        assert prog is not None and prog.tasks == list(range(len(exps)))
        for arms in (False, True):
            _compare(prog, exps, F, comp, arms)


def test_arm_uncertainty_is_there_for_continuous_learners_that_have_it(exports):
    X, exps = exports["continuous"]
    F = _features(X, exps[0], np.random.default_rng(4))
    out = compile_program(exps, "usual_care").run(F, arms=True, threads=1)
    have = {e["kind"]: bool(np.isfinite(out[fz.O_SEA, j]).all()) for j, e in enumerate(exps)}
    # linear learners by the delta method, tree learners by their per-arm variance models; the
    # stack has them when every member does
    assert have == {"effect_model": True, "constant": True, "risk_model": True, "t_learner": True,
                    "x_learner": True, "dr_learner": True, "stacked": True}
    miss = np.isnan(F).any(axis=1)
    assert (out[fz.O_VA][:, ~miss] == 0).all() and (out[fz.O_VA][:, miss] > 0).any()


def test_splitting_a_batch_over_threads_changes_nothing(exports, monkeypatch):
    import predict.program as pg

    X, exps = exports["binary"]
    F = _features(X, exps[0], np.random.default_rng(5))
    F = np.vstack([F] * 8)
    prog = compile_program(exps, "usual_care")
    one = prog.run(F, arms=True, threads=1)
    monkeypatch.setattr(pg, "PARALLEL_MIN_ROWS", 10)
    two = prog.run(F, arms=True, threads=3)
    np.testing.assert_array_equal(one, two)


def test_unsupported_exports_give_no_program(exports):
    _, exps = exports["continuous"]
    odd = copy.deepcopy(exps[0])
    odd["kind"] = "not_a_kind"  # e.g. a learner the compiled program does not know
    assert compile_program([odd], "usual_care") is None
    assert compile_program(exps, "not_a_class") is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_missing_pattern_matches_the_reference(exports, data):
    """Property: for any subset of missing covariates and any comparator, the fused kernel and
    the reference agree (point, SE, missing-data variance, arms)."""
    outcome = data.draw(st.sampled_from(["continuous", "binary"]))
    X, exps = exports[outcome]
    comp = data.draw(st.sampled_from(list(exps[0]["comparators"])))
    F = rt.feature_matrix(exps[0]["features"], X.head(6))
    p = F.shape[1]
    masks = data.draw(st.lists(st.lists(st.booleans(), min_size=p - 1, max_size=p - 1), min_size=1, max_size=6))
    for i, m in enumerate(masks):
        F[i % len(F), :p - 1][np.array(m)] = np.nan
    prog = compile_program(exps, comp)
    _compare(prog, exps, F, comp, arms=data.draw(st.booleans()))
