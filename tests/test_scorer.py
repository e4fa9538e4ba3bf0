"""predict.Scorer on the small trained artifact: results, validation, warnings, explanations, threads."""
from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from tests._runtime import rt
from predict import Scorer, ValidationFailed
from predict.artifact import load_artifact
from predict import model_format as mf
from predict.model_format import resolve_boosters as _resolve_boosters
from serving.interface import check_scorer
from tests._small_model import assert_nested_close

COMP = "usual_care"


@pytest.fixture(scope="module")
def patients(sm):
    """Real-looking patients: the simulated participants' baselines and covariates (with their missing values)."""
    from tests._small_model import harmonised

    h = harmonised(sm.data)
    df = h.baselines.dropna(subset=["baseline_pain", "baseline_function"]).head(40).reset_index(drop=True)
    return df.drop(columns=["arm", "treatment", "subtype", "treat"], errors="ignore")


def _close(a, b):
    assert_nested_close(a, b, 1e-12)


def _raw_export(sm, task):
    art = load_artifact(sm.artifact)
    exp = json.loads(art.file(f"model/{task}.json"))
    _resolve_boosters(exp, art, task, set())
    return exp


def test_scorer_offers_what_the_service_needs(scorer):
    assert check_scorer(scorer) is scorer
    assert scorer.baselines == ["baseline_pain", "baseline_function"]
    assert scorer.outcomes == ["pain", "function", "global_recovery"]
    assert COMP in scorer.comparators
    assert scorer.synthetic and scorer.manifest["synthetic"] is True
    assert scorer.card_markdown and isinstance(scorer.card, dict)
    assert "lbp-" in repr(scorer)


def test_result_shape_and_flat_names(scorer):
    p = scorer.example_patient()
    r = scorer.score(p, COMP)[0]
    assert set(r) >= {"scores", "outcomes", "top_factors", "missing", "warnings"}
    assert list(r["scores"]) == scorer.output_columns()
    for name in ("pain_short_exercise", "pain_short_comparator", "pain_short_benefit", "pain_short_benefit_low",
                 "pain_short_benefit_high", "function_moderate_benefit", "recovery_moderate_p_exercise",
                 "recovery_moderate_p_comparator", "recovery_moderate_ard"):
        assert name in r["scores"]
    o = r["outcomes"]["pain__short"]
    b = o["benefit"]
    assert b["estimate"] == pytest.approx(o["comparator"]["expected"] - o["intervention"]["expected"])
    assert b["ci"][0] <= b["estimate"] <= b["ci"][1]
    assert b["prediction_interval"][0] <= b["ci"][0] and b["ci"][1] <= b["prediction_interval"][1]
    assert o["smallest_worthwhile"]["threshold"] == pytest.approx(0.2 * p["baseline_pain"])
    assert o["clears_smallest_worthwhile"] == (b["estimate"] >= 0.2 * p["baseline_pain"])
    rec = r["outcomes"]["global_recovery__moderate"]
    s = r["scores"]
    assert s["recovery_moderate_ard"] == pytest.approx(s["recovery_moderate_p_exercise"] - s["recovery_moderate_p_comparator"])
    assert 0 <= rec["intervention"]["expected"] <= 1 and rec["clears_smallest_worthwhile"] is None
    json.dumps(r)  # plain JSON


def test_matches_the_runtime_prediction_functions(scorer, sm, patients):
    res = scorer.score_table(patients, COMP)
    for task, pre in (("pain__short", "pain_short"), ("function__moderate", "function_moderate"),
                      ("global_recovery__moderate", "recovery_moderate")):
        ref = rt.predict_from_export(_raw_export(sm, task), patients)
        if pre.startswith("recovery"):
            cols = ("p_exercise", "p_comparator", "ard", "ard_low", "ard_high", "ard_pi_low", "ard_pi_high")
        else:
            cols = ("exercise", "comparator", "benefit", "benefit_low", "benefit_high", "benefit_pi_low", "benefit_pi_high")
        refs = ("expected_exercise", f"expected_{COMP}", f"benefit_vs_{COMP}", f"benefit_vs_{COMP}_ci_low",
                f"benefit_vs_{COMP}_ci_high", f"benefit_vs_{COMP}_pi_low", f"benefit_vs_{COMP}_pi_high")
        for c, rc in zip(cols, refs):
            np.testing.assert_allclose(res[f"{pre}_{c}"], ref[rc], rtol=1e-9, atol=1e-9, err_msg=f"{pre}_{c}")


def test_dict_list_and_frame_inputs_agree(scorer, patients):
    recs = [{k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))}
            for r in patients.drop(columns=["trial", "participant", "arm", "treatment", "subtype", "treat"],
                                   errors="ignore").to_dict("records")]
    a = scorer.score(recs[:5], COMP)
    b = scorer.score(patients.head(5)[[c for c in patients.columns if c in scorer.schema or c in scorer.baselines
                                        or c in ("trial", "participant")]], COMP)
    c = [scorer.score(r, COMP)[0] for r in recs[:5]]
    assert a == b  # same batch: identical
    _close(a, c)  # batch of one: equal up to floating-point summation order (BLAS)
    t = scorer.score_table(patients.head(5)[["trial", "participant"] + scorer.baselines], COMP)
    assert list(t.columns[:2]) == ["trial", "participant"]


def test_explanations_add_up(scorer, sm, patients):
    cols = [c for c in patients.columns if c in scorer.schema or c in scorer.baselines]
    r = scorer.score(patients[cols].head(10), COMP, outcomes=["pain"])
    ex = rt.explain_from_export(_raw_export(sm, "pain__short"), patients[cols].head(10), COMP)
    for i, res in enumerate(r):
        assert res["explained"]["task"] == "pain__short"
        top = res["top_factors"]
        assert 0 < len(top) <= 5
        for f in top:
            assert f["contribution"] == pytest.approx(ex.loc[i, f["name"]], abs=1e-9)
            assert f["label"] and "0-100 pain" in f["units"]
        mags = [abs(f["contribution"]) for f in top]
        assert mags == sorted(mags, reverse=True)
        total = ex.loc[i, "base"] + ex.loc[i].drop(["base", "residual"]).sum() + ex.loc[i, "residual"]
        assert total == pytest.approx(res["outcomes"]["pain__short"]["benefit"]["estimate"], abs=1e-8)
    assert "explained" not in scorer.score(patients[cols].head(1), COMP, explain=False)[0]


def test_missing_and_warnings(scorer):
    p = {"baseline_pain": 62.0, "baseline_function": 41.0, "age": 99}
    r = scorer.score([p], COMP)[0]
    names = {m["name"] for m in r["missing"]}
    assert names == set(scorer.schema.names) - {"age"}
    assert all(m["handled_as"].startswith("imputed") for m in r["missing"])
    assert any("Age = 99" in w and "training participants" in w for w in r["warnings"])
    assert any("synthetic" in w for w in r["warnings"])
    full = {c.name: (50.0 if c.type == "continuous" else 0) for c in scorer.schema.covariates}
    full.update(age=45, bmi=26.0, episode_months=12.0, baseline_pain=50.0, baseline_function=40.0)
    r2 = scorer.score([full], COMP)[0]
    assert r2["missing"] == []
    # intervals are at least as wide when inputs are missing
    b1, b2 = r["outcomes"]["pain__short"]["benefit"], r2["outcomes"]["pain__short"]["benefit"]
    assert b1["ci"][1] - b1["ci"][0] > 0 and b2["ci"][1] - b2["ci"][0] > 0


def test_sparse_comparator_warning(scorer):
    sparse = scorer.sparse_comparators
    if not sparse:
        pytest.skip("no sparse comparator in this model")
    r = scorer.score([{"baseline_pain": 50.0, "baseline_function": 50.0}], sparse[0])[0]
    assert any("few trials compared exercise with" in w for w in r["warnings"])


BAD = [
    ({"baseline_pain": 50.0}, "baseline_function", "required"),
    ({"baseline_pain": 150.0, "baseline_function": 50.0}, "baseline_pain", "out_of_range"),
    ({"baseline_pain": "50", "baseline_function": 50.0}, "baseline_pain", "bad_type"),
    ({"baseline_pain": 50.0, "baseline_function": 50.0, "age": "47"}, "age", "bad_type"),
    ({"baseline_pain": 50.0, "baseline_function": 50.0, "age": 10}, "age", "out_of_range"),
    ({"baseline_pain": 50.0, "baseline_function": 50.0, "female": True}, "female", "bad_type"),
    ({"baseline_pain": 50.0, "baseline_function": 50.0, "female": 2}, "female", "bad_value"),
    ({"baseline_pain": 50.0, "baseline_function": 50.0, "shoe_size": 44}, "shoe_size", "unknown_field"),
    ({"baseline_pain": float("inf"), "baseline_function": 50.0}, "baseline_pain", "bad_value"),
    ({"baseline_pain": float("nan"), "baseline_function": 50.0}, "baseline_pain", "required"),
]


@pytest.mark.parametrize("patient,field,code", BAD)
def test_invalid_input_names_field_and_patient(scorer, patient, field, code):
    ok = {"baseline_pain": 40.0, "baseline_function": 30.0}
    with pytest.raises(ValidationFailed) as e:
        scorer.score([ok, ok, patient], COMP)
    probs = e.value.errors
    assert any(p.column == field and p.row == 2 and p.code == code for p in probs), [str(p) for p in probs]
    assert all(p.row == 2 for p in probs)


def test_invalid_request(scorer):
    ok = {"baseline_pain": 40.0, "baseline_function": 30.0}
    with pytest.raises(ValidationFailed) as e:
        scorer.score([ok], "surgery")
    assert e.value.errors[0].column == "comparator"
    with pytest.raises(ValidationFailed) as e:
        scorer.score([ok], COMP, outcomes=["mood"])
    assert e.value.errors[0].column == "outcomes"
    with pytest.raises(ValidationFailed):
        scorer.score("not patients", COMP)
    with pytest.raises(ValidationFailed) as e:
        scorer.score(pd.DataFrame({"baseline_pain": [1.0], "baseline_function": [2.0], "shoe": [3]}), COMP)
    assert e.value.errors[0].column == "shoe"


def test_outcome_selection(scorer):
    p = {"baseline_pain": 40.0, "baseline_function": 30.0}
    r = scorer.score([p], COMP, outcomes=["global_recovery"])[0]
    assert list(r["outcomes"]) == ["global_recovery__moderate"]
    assert all(k.startswith("recovery_") for k in r["scores"])
    r = scorer.score([p], COMP, outcomes=["pain__short"])[0]
    assert list(r["outcomes"]) == ["pain__short"]


def test_thread_safe(scorer, patients):
    cols = [c for c in patients.columns if c in scorer.schema or c in scorer.baselines]
    rows = [patients[cols].iloc[[i]] for i in range(len(patients))]
    seq = [scorer.score(r, COMP) for r in rows]
    with ThreadPoolExecutor(8) as pool:
        par = list(pool.map(lambda r: scorer.score(r, COMP), rows * 3))
    assert par == seq * 3  # same inputs, same batch sizes: identical results under concurrency


def test_empty_batch(scorer):
    assert scorer.score([], COMP) == []
    assert len(scorer.score_table(pd.DataFrame(columns=scorer.baselines), COMP)) == 0


def test_arm_intervals_match_an_independent_delta_method(scorer):
    """Per-arm 95% CIs (linear learners, continuous outcomes): half-width = z * sqrt(g' V g) with
    g the finite-difference gradient of the expected outcome in theta (complete covariates, so no
    missing-data term); tree learners: z * sqrt(exp(U w)) of their per-arm bootstrap variance
    model. Recovery (a probability) has them only from single logistic learners (tested against a
    Monte Carlo of the bootstrap covariance in tests/test_verdict.py)."""
    patient = {k: v for k, v in scorer.example_patient().items()}
    for c in scorer.schema.covariates:  # complete the patient: no missing-data spread
        if c.name not in patient:
            patient[c.name] = 0 if c.type in ("binary", "categorical") else (
                float(np.mean(c.range)) if c.range else 1.0)
    r = scorer.score([patient], "usual_care")[0]["outcomes"]
    z = 1.959963984540054
    checked = 0
    for t in scorer._tasks:
        res = r[t.task]
        if t.outcome_type != "continuous":
            from predict.arm_intervals import available

            has = res["intervention"]["interval"] is not None and res["comparator"]["interval"] is not None
            assert has == available(t.exp)
            continue
        exp = t.exp
        if exp["kind"] in ("t_learner", "x_learner", "dr_learner"):  # the bootstrap's per-arm variance model
            if "arm_varmodel" not in exp["interval"]:  # fewer than 3 bootstrap replicates: no model
                assert res["intervention"]["interval"] is None and res["comparator"]["interval"] is None
                continue
            F, _ = scorer.validate([patient])
            Fimp = rt.impute_mean(exp["imputer"], F)
            U = rt.varmodel_design(exp, F, Fimp)
            for arm, key in (("intervention", "__active__"), ("comparator", "usual_care")):
                half = z * math.sqrt(math.exp(float(U[0] @ np.asarray(exp["interval"]["arm_varmodel"][key], float))))
                est = res[arm]["expected"]
                assert res[arm]["interval"][0] == pytest.approx(max(0.0, est - half), abs=1e-6)
                assert res[arm]["interval"][1] == pytest.approx(min(100.0, est + half), abs=1e-6)
                checked += 1
            continue
        if exp["kind"] not in mf.LINEAR_KINDS:
            continue
        lin = dict(exp["linear"])
        F, _ = scorer.validate([patient])
        Fimp = rt.impute_mean(exp["imputer"], F)
        assert not np.isnan(F[:, [scorer._index[c] for c in scorer.schema.names if c in patient]]).any()
        theta = np.asarray(lin["theta"], float)
        V = np.asarray(exp["interval"]["theta_cov"], float)
        for arm, key in (("intervention", "__active__"), ("comparator", "usual_care")):
            g = np.empty(theta.size)
            for j in range(theta.size):
                h = 1e-6
                up, dn = theta.copy(), theta.copy()
                up[j] += h
                dn[j] -= h
                g[j] = (rt.linear_eta({**lin, "theta": up}, exp["comparators"], Fimp)[key][0]
                        - rt.linear_eta({**lin, "theta": dn}, exp["comparators"], Fimp)[key][0]) / (2 * h)
            half = z * math.sqrt(g @ V @ g)
            lo, hi = res[arm]["interval"]
            est = res[arm]["expected"]
            assert lo == pytest.approx(max(0.0, est - half), abs=1e-6)
            assert hi == pytest.approx(min(100.0, est + half), abs=1e-6)
            checked += 1
    assert checked >= 2


def _plain_json(x, path="result"):
    """Only what json.dumps(allow_nan=False) writes as-is: no numpy values, no NaN/inf."""
    if isinstance(x, dict):
        for k, v in x.items():
            assert type(k) is str, path
            _plain_json(v, f"{path}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            _plain_json(v, f"{path}[{i}]")
    elif type(x) is float:
        assert math.isfinite(x), path
    else:
        assert x is None or type(x) in (str, bool, int), (path, type(x))


def test_results_are_plain_json(scorer, patients):
    """Scorer.json_results: the service sends score() results without converting them again."""
    from serving.interface import to_jsonable

    assert Scorer.json_results is True
    keep = set(scorer.schema.names) | set(scorer.baselines)
    recs = [{k: v for k, v in r.items() if v == v and k in keep} for r in patients.head(40).to_dict("records")]
    recs.append({b: 50.0 for b in scorer.baselines})  # every covariate missing
    for comp in scorer.comparators:
        res = scorer.score(recs, comp)
        _plain_json(res)
        assert to_jsonable(res) == res
        json.dumps(res, allow_nan=False)


# ------------------------------------------------------------------ the small-request fast paths
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import predict.clinical_warnings as warnings_mod  # noqa: E402


def _value_strategy(scorer, name):
    """Valid and invalid values for one input: in range, out of range, wrong types, NaN, inf,
    unknown levels, booleans, None."""
    typ = scorer._types[scorer._names.index(name)]
    lo, hi = scorer._range.get(name) or (0.0, 100.0)
    bad = st.sampled_from([None, True, "x", float("nan"), float("inf"), -float("inf"), [1], 1e9, -1e9])
    if typ == "categorical":
        good = st.sampled_from([str(c) for c in scorer._cats.get(name, [])] or ["a"])
    elif typ == "binary":
        good = st.sampled_from([0, 1, 0.0, 1.0, 2, 0.5])
    else:
        good = st.one_of(st.floats(lo - 5, hi + 5, allow_nan=False), st.integers(int(lo) - 5, int(hi) + 5))
    return st.one_of(good, good, bad)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_validation_decides_each_patient_alone(scorer, data):
    """Property: for any one patient (valid or not), validating it alone and among copies of
    itself gives the same decision: the same feature-matrix row, or the same problems (named by
    field, message and kind) for every copy; a list of dicts and a DataFrame of numbers agree."""
    names = data.draw(st.lists(st.sampled_from(scorer._names + ["shoe_size"]), unique=True, max_size=8))
    p = {n: data.draw(_value_strategy(scorer, n)) if n != "shoe_size" else 42 for n in names}
    for b in scorer.baselines:
        if data.draw(st.booleans()) or b not in p:
            p[b] = data.draw(st.one_of(st.floats(0, 100), st.just(50)))
    k = data.draw(st.integers(2, 200))

    def outcome(patients):
        try:
            return scorer.validate(patients)[0], None
        except ValidationFailed as exc:
            return None, [(q.code, q.column, q.message, q.row) for q in exc.problems]

    F1, probs1 = outcome([p])
    Fk, probsk = outcome([dict(p) for _ in range(k)])
    assert (F1 is None) == (Fk is None), p
    if F1 is not None:
        np.testing.assert_array_equal(np.vstack([F1] * k), Fk)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p.values()):
            Fd, _ = outcome(pd.DataFrame([p] * k))
            np.testing.assert_array_equal(Fd, Fk)
    else:
        per_row = [(c, col, msg) for c, col, msg, row in probs1]
        assert sorted((c, col, msg) for c, col, msg, row in probsk) == sorted(per_row * k)
        assert {row for *_, row in probsk} <= set(range(k))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_small_request_warnings_agree_with_the_general_path(scorer, data):
    """Property: the per-value warnings of small requests are the column-wise ones, in order."""
    rows = []
    for _ in range(data.draw(st.integers(1, 4))):
        row = []
        for name, typ in zip(scorer._names, scorer._types):
            lo, hi = scorer._range.get(name) or (0.0, 100.0)
            if typ == "binary":
                v = data.draw(st.sampled_from([0.0, 1.0, np.nan]))
            elif typ == "categorical":
                v = data.draw(st.sampled_from([0.0, np.nan]))
            else:
                v = data.draw(st.one_of(st.just(np.nan), st.floats(lo, hi)))
            row.append(v)
        rows.append(row)
    F = np.array(rows, float)
    small = scorer.warnings.patient(F)
    big = scorer.warnings.patient(np.vstack([F] * (warnings_mod.SMALL_MAX_ROWS // len(F) + 1)))
    assert small == big[:len(F)]
