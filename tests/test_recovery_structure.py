"""Recovery's structural missing-input allowance (predict/recovery_structure.py, issue 23).

On the small model's global-recovery effect model (logistic, moderate term) with a field built by
training.recovery_structure from the small model's continuous pain and function effect models:
- the probability of recovery equals a Monte Carlo of the definition (training.harmonise.recovered
  applied to normal follow-ups around the continuous models' expectations, combine "any");
- the variance over the draws equals an independent Monte Carlo over the imputer's conditional
  distribution (many draws, conditional mean and covariance computed here from scratch);
- the compiled program and the numpy reference give the same benefit CI/PI and per-arm intervals
  (1e-9), complete patients the same intervals as without the field, point predictions unchanged;
- an export without the field scores exactly as before; another version is refused."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from predict import kernels, learner_model
from predict import recovery_structure as RS
from predict.artifact import ArtifactError
from predict.compute import Engine
from predict.impute import impute_mean
from predict.runtime import predict_from_export
from predict.task import Task
from tests._small_model import harmonised, small_model

Z = 1.959963984540054


@pytest.fixture(scope="module")
def built():
    from training.recovery_structure import structural_field

    sm = small_model()
    runm = sm.run / "models"
    cfg = harmonised(sm.data).config
    rec = json.loads((runm / "global_recovery__moderate" / "effect_model.json").read_text("utf-8"))
    # the small model trains pain at short term only: its model stands in for the moderate one here
    cont = {"pain": json.loads((runm / "pain__short" / "effect_model.json").read_text("utf-8")),
            "function": json.loads((runm / "function__moderate" / "effect_model.json").read_text("utf-8"))}
    field, why = structural_field(cfg, rec, cont)
    assert field is not None, why
    F0 = impute_mean(rec["imputer"], np.full((1, len(rec["features"]["names"])), np.nan))
    binary = np.asarray(rec["imputer"]["binary"], bool)
    F0[:, binary] = np.round(F0[:, binary])  # a patient's binary inputs are 0 or 1
    return {"cfg": cfg, "rec": rec, "cont": cont, "field": field, "with": {**rec, RS.KEY: field}, "F0": F0,
            "sm": sm}


def _patients(b, n=30, seed=4, p_missing=0.5):
    names = b["rec"]["features"]["names"]
    rng = np.random.default_rng(seed)
    F = np.repeat(b["F0"], n, axis=0)
    F[:, names.index("baseline_pain")] = rng.uniform(30, 90, n)
    F[:, names.index("baseline_function")] = rng.uniform(20, 80, n)
    cov = [j for j, nm in enumerate(names) if not nm.startswith("baseline_")]
    sub = F[:, cov]
    sub[rng.random(sub.shape) < p_missing] = np.nan
    F[:, cov] = sub
    F[: n // 3, cov] = b["F0"][0, cov]  # a third complete
    return F


def test_probability_is_the_definition_through_the_continuous_models(built):
    from predict.evaluate import expected
    from training.harmonise import recovered

    cfg, s = built["cfg"], RS.parse(built["with"])
    D = _patients(built, n=4, p_missing=0.0)
    rng = np.random.default_rng(11)
    K = 200_000
    for arm in ("__active__", built["rec"]["comparators"][0]):
        got = RS.recovery_probability(s, D, arm)
        for i in range(D.shape[0]):
            crit = []
            for o in cfg.recovery_sources:
                e = built["cont"][o]
                mu = expected(e, D[i:i + 1], D[i:i + 1])[arm][0]
                y = mu + np.sqrt(e["meta"]["sigma2"]) * rng.standard_normal(K)
                b = np.full(K, D[i, e["features"]["names"].index(f"baseline_{o}")])
                crit.append(recovered(b, y, cfg.recovery_relative, cfg.outcomes[o].recovery_min_points))
            mc = (np.column_stack(crit) == 1).any(axis=1).mean()  # combine "any"
            assert got[i] == pytest.approx(mc, abs=4 * np.sqrt(mc * (1 - mc) / K) + 1e-4), (arm, i)


def test_draw_variance_equals_an_independent_monte_carlo_of_the_missing_inputs(built):
    """With many stored draws (z replaced by 4,000 standard-normal rows) the runtime's variance over
    the draws is the variance over the conditional distribution; computed here from the imputer's
    mean and covariance directly (missing continuous inputs only, so no rounding), clipped to bounds."""
    exp = copy.deepcopy(built["with"])
    imp = exp["imputer"]
    p = len(imp["mean"])
    exp["imputer"]["z"] = np.random.default_rng(5).standard_normal((4000, p)).tolist()
    names = exp["features"]["names"]
    cont_j = [j for j, nm in enumerate(names) if not imp["binary"][j] and not nm.startswith("baseline_")][:3]
    assert cont_j
    F = _patients(built, n=1, p_missing=0.0)
    F[0, cont_j] = np.nan
    L, s = learner_model.build(exp), RS.parse(exp)
    comp = exp["comparators"][0]
    vb, va, vc = RS.structural_variance(L, s, F, comp)
    mu, S = np.asarray(imp["mean"]), np.asarray(imp["cov"])
    m = np.isnan(F[0])
    o = ~m
    A = np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, m)])
    cm = mu[m] + (F[0, o] - mu[o]) @ A
    cc = S[np.ix_(m, m)] - S[np.ix_(m, o)] @ A
    draws = np.random.default_rng(6).multivariate_normal(cm, cc, 20_000)
    D = np.repeat(F, draws.shape[0], axis=0)
    D[:, m] = np.clip(draws, np.asarray(imp["lower"])[m], np.asarray(imp["upper"])[m])
    pa, pc = RS.recovery_probability(s, D, "__active__"), RS.recovery_probability(s, D, comp)
    assert vb[0] > 1e-6
    assert vb[0] == pytest.approx(np.var(pa - pc), rel=0.1)
    assert va[0] == pytest.approx(np.var(pa), rel=0.1) and vc[0] == pytest.approx(np.var(pc), rel=0.1)


def _engine(exp, structural, compiled):
    L = learner_model.build(copy.deepcopy(exp))
    t = Task("global_recovery__moderate", "global_recovery", "moderate", "binary", "effect_model", exp, L,
             "recovery", None, None, "intervention", structural)
    return Engine([t], {n: j for j, n in enumerate(exp["features"]["names"])}, [], compiled=compiled), t


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba not installed: one path only")
def test_compiled_program_and_numpy_reference_agree_with_the_allowance(built):
    from predict import arm_intervals as A

    F = _patients(built, n=40)
    complete = ~np.isnan(F).any(axis=1)
    s = RS.parse(built["with"])
    for comp in built["rec"]["comparators"]:
        got = {}
        for compiled in (True, False):
            for field in (s, None):
                eng, t = _engine(built["with"] if field else built["rec"], field, compiled)
                assert (eng.program(comp) is not None) == compiled
                out, arm_iv = eng.compute_unwidened(F, comp, [t], arms=True)
                if not compiled:  # the scorer's numpy path for binary arms
                    arm_iv = {t.task: A.binary_interval(A.binary_parts(t.model, F, comp, field), Z)}
                c = out[0]
                got[(compiled, field is not None)] = (c.benefit, *c.ci, *c.pi, *arm_iv[t.task])
        for k in range(len(got[(True, True)])):
            np.testing.assert_allclose(got[(True, True)][k], got[(False, True)][k], rtol=0, atol=1e-9)
            np.testing.assert_allclose(got[(True, False)][k], got[(False, False)][k], rtol=0, atol=1e-9)
            # complete patients: as without the field (and point predictions always)
            np.testing.assert_array_equal(got[(True, True)][k][complete], got[(True, False)][k][complete])
        np.testing.assert_array_equal(got[(True, True)][0], got[(True, False)][0])
        w_new = got[(False, True)][2] - got[(False, True)][1]
        w_old = got[(False, False)][2] - got[(False, False)][1]
        assert (w_new >= w_old - 1e-12).all() and (w_new[~complete] > w_old[~complete] + 1e-6).any()


def test_an_export_without_the_field_scores_as_before_and_the_runtime_takes_it(built):
    import pandas as pd

    names = built["rec"]["features"]["names"]
    F = _patients(built, n=20)
    X = pd.DataFrame(F, columns=names).assign(trial="x", treatment="exercise")
    assert RS.parse(built["rec"]) is None
    a, b = predict_from_export(built["rec"], X), predict_from_export(built["with"], X)
    comp = built["rec"]["comparators"][0]
    complete = ~np.isnan(F).any(axis=1)
    pd.testing.assert_series_equal(a[f"benefit_vs_{comp}"], b[f"benefit_vs_{comp}"])
    np.testing.assert_array_equal(a[f"benefit_vs_{comp}_se"][complete], b[f"benefit_vs_{comp}_se"][complete])
    assert (b[f"benefit_vs_{comp}_se"] >= a[f"benefit_vs_{comp}_se"] - 1e-15).all()
    # the SE is sqrt(estimation^2 + max(own, structural) draw variance): by hand
    from predict.uncertainty import estimation_se, missing_variance

    L = learner_model.build(built["rec"])
    v = RS.structural_variance(L, RS.parse(built["with"]), F, comp)[0]
    se = np.sqrt(estimation_se(L, F)[comp] ** 2 + np.maximum(missing_variance(L, F)[comp], v))
    from predict.support import support_scores

    np.testing.assert_allclose(b[f"benefit_vs_{comp}_se"], support_scores(L.support, F)["factor"] * se, rtol=1e-12)


def test_another_version_or_a_bad_field_is_refused(built):
    from predict import model_format as mf

    bad = {**built["rec"], RS.KEY: {**built["field"], "version": 2}}
    with pytest.raises(RS.StructuralFieldError, match="version 2 is not known"):
        RS.parse(bad, "model/x.json")
    with pytest.raises(ArtifactError, match="structural_missing"):
        mf.parse_learner(bad, "model/x.json")
    mf.parse_learner(built["with"], "model/x.json")  # version 1: accepted
    worse = copy.deepcopy(built["with"])
    worse[RS.KEY]["criteria"][0]["baseline"] = "baseline_mood"
    with pytest.raises(RS.StructuralFieldError, match="baseline_mood"):
        RS.parse(worse)
    with pytest.raises(RS.StructuralFieldError, match="combine"):
        RS.parse({**built["rec"], RS.KEY: {**built["field"], "combine": "some"}})


def test_train_writes_the_field_only_where_every_criterion_has_its_model(built):
    """The small model trains pain at short term only, so its moderate-term recovery gets no field
    (and is scored as before); with both models the field names the definition's numbers."""
    from training.recovery_structure import structural_field

    sel = json.loads((built["sm"].run / "models" / "global_recovery__moderate" / "selected.json").read_text("utf-8"))
    assert RS.KEY not in sel
    field, why = structural_field(built["cfg"], built["rec"], {"function": built["cont"]["function"]})
    assert field is None and "pain" in why
    f = built["field"]
    assert f["version"] == RS.VERSION and f["combine"] == built["cfg"].recovery_combine
    assert [c["outcome"] for c in f["criteria"]] == built["cfg"].recovery_sources
    assert all(c["sigma"] > 0 and c["relative"] == built["cfg"].recovery_relative for c in f["criteria"])
