"""The scorer's compiled program (predict/program.py, fused.py, kernels.py) against the plain
numpy + LightGBM functions of the reference (predict/reference.py and what it calls): same numbers (floating-point rounding aside), LightGBM's own tree
predictions reproduced exactly, deterministic, and intervals that still widen as inputs go missing."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests._runtime import rt
from predict import Scorer
from predict import kernels as _fast
from tests._small_model import assert_nested_close

COMP = "usual_care"
needs_numba = pytest.mark.skipif(not _fast.AVAILABLE, reason="numba not installed: the plain path is the only path")


@pytest.fixture(scope="module")
def plain(sm):
    return Scorer.load(sm.artifact, compiled=False)


@pytest.fixture(scope="module")
def patients(sm):
    """Simulated participants with their missing covariates, plus copies with more covariates
    removed at random (many missing-data patterns, some with every covariate missing)."""
    from tests._small_model import harmonised

    h = harmonised(sm.data)
    df = h.baselines.dropna(subset=["baseline_pain", "baseline_function"]).head(120).reset_index(drop=True)
    df = df.drop(columns=["arm", "treatment", "subtype", "treat", "trial", "participant"], errors="ignore")
    rng = np.random.default_rng(7)
    more = df.copy()
    cov = [c for c in more.columns if not c.startswith("baseline_")]
    for c in cov:
        more.loc[rng.random(len(more)) < 0.4, c] = np.nan
    bare = df[["baseline_pain", "baseline_function"]].head(5)
    return pd.concat([df, more, bare], ignore_index=True)


@needs_numba
def test_the_fast_path_is_used(scorer, plain):
    """The compiled program scores every learner comparator (its forests and columns are kept by the
    scorer's engine, not written into the learners); compiled=False scores with the reference. Nothing
    writes a private key into an export: after scoring (both paths, with missing inputs) the exports
    have none, and the typed learners are frozen."""
    import dataclasses

    assert all(scorer.engine.compiled.ready(t.model) for t in scorer._tasks)
    sparse = {scorer.baselines[0]: 50.0, **{b: 40.0 for b in scorer.baselines[1:]}}  # every covariate missing
    for comp in scorer.learner_comparators:
        for s in (scorer, plain):
            s.score([s.example_patient(), sparse], comp)
            s.score_table(pd.DataFrame([s.example_patient(), sparse]), comp, explain=True)
    assert scorer.scoring_status()["path"] == "compiled"
    assert plain.scoring_status()["path"] == "reference"

    def private_keys(x, where="exp"):
        if isinstance(x, dict):
            return [f"{where}.{k}" for k in x if str(k).startswith("_") and not str(k).endswith("__")] + \
                [p for k, v in x.items() for p in private_keys(v, f"{where}.{k}")]
        return [p for i, v in enumerate(x) for p in private_keys(v, f"{where}[{i}]")] if isinstance(x, list) else []

    for s in (scorer, plain):
        for t in s._tasks:
            assert private_keys(t.exp) == [], t.task
            with pytest.raises(dataclasses.FrozenInstanceError):
                t.model.imputer = None


def test_fast_and_plain_paths_agree(scorer, plain, patients):
    for comp in scorer.comparators:
        a = scorer.score_table(patients, comp, explain=True)
        b = plain.score_table(patients, comp, explain=True)
        assert list(a.columns) == list(b.columns)
        for c in a.columns:
            if a[c].dtype.kind == "f":
                np.testing.assert_allclose(a[c], b[c], rtol=1e-9, atol=1e-9, err_msg=f"{comp}: {c}")
            else:
                assert a[c].tolist() == b[c].tolist(), c
    recs = [{k: v for k, v in r.items() if v == v} for r in patients.head(30).to_dict("records")]
    ra, rb = scorer.score(recs, COMP), plain.score(recs, COMP)

    assert_nested_close(ra, rb, 1e-9)


def test_task_scores_matches_the_separate_functions(scorer, patients):
    F, _ = scorer.validate(patients)
    for t in scorer._tasks:
        exp = t.exp
        for comp in exp["comparators"]:
            r = rt.task_scores(exp, F, comp, arms=True)
            ex, ben = rt.point(exp, F)
            np.testing.assert_allclose(r["exercise"], ex["__active__"], rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(r["benefit"], ben[comp], rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(r["se_est"], rt.estimation_se(exp, F)[comp], rtol=1e-10, atol=1e-10)
            vm = rt.missing_variance(exp, F)[comp]
            np.testing.assert_allclose(r["var_missing"], vm, rtol=1e-8, atol=1e-10)
            if r["arm_se"] is not None:
                vb, va, vc = rt.arm_missing_variance(exp, F, comp)
                np.testing.assert_allclose(r["arm_var_missing"][0], va, rtol=1e-8, atol=1e-10)
                np.testing.assert_allclose(r["arm_var_missing"][1], vc, rtol=1e-8, atol=1e-10)


def test_deterministic(scorer, patients):
    a = scorer.score_table(patients, COMP, explain=True)
    b = scorer.score_table(patients.iloc[::-1].reset_index(drop=True), COMP, explain=True).iloc[::-1].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12, atol=1e-12)
    c = scorer.score_table(patients, COMP, explain=True)
    pd.testing.assert_frame_equal(a, c, check_exact=True)


def test_intervals_widen_as_inputs_go_missing(scorer, patients):
    """Complete covariates: no missing-data variance; removing covariates widens the CI of the
    benefit on average in every task whose benefit depends on them (the conditional draws carry
    the lost information; a constant-effect task's benefit does not move)."""
    full = patients.head(120).copy()
    cov = [c for c in scorer.schema.names if c in full.columns]
    for c in cov:
        full[c] = full[c].fillna(full[c].median())
    F, _ = scorer.validate(full)
    for t in scorer._tasks:
        assert np.all(rt.task_scores(t.exp, F, COMP)["var_missing"] == 0)
    few = full.copy()
    few[cov] = np.nan
    a, b = scorer.score_table(full, COMP), scorer.score_table(few, COMP)
    wider = 0
    for col in [c for c in a.columns if c.endswith("_benefit_low") or c.endswith("_ard_low")]:
        hi = col.replace("_low", "_high")
        wa, wb = (a[hi] - a[col]).to_numpy(), (b[hi] - b[col]).to_numpy()
        assert np.nanmean(wb) >= np.nanmean(wa) - 1e-9, col  # equal where the benefit ignores covariates
        wider += np.nanmean(wb) > np.nanmean(wa) + 1e-6
    assert wider >= 2


@needs_numba
def test_forests_reproduce_lightgbm_exactly(scorer):
    import lightgbm as lgb

    rng = np.random.default_rng(3)
    X = rng.normal(40, 20, size=(3000, 8))
    X[:, 2] = rng.integers(0, 2, 3000)
    X[:, 3] = np.where(rng.random(3000) < 0.3, 0.0, X[:, 3])
    y = X[:, 0] * 0.1 + (X[:, 2] == 1) * 3 + np.nan_to_num(X[:, 3]) * 0.05 + rng.normal(size=3000)
    Xm = X.copy()
    Xm[rng.random(Xm.shape) < 0.2] = np.nan
    Xm[:5] = np.nan
    params = {"objective": "regression", "num_leaves": 7, "verbose": -1, "min_data_in_leaf": 5}
    variants = [dict(params), dict(params, zero_as_missing=True), dict(params, use_missing=False)]
    boosters = [lgb.train(v, lgb.Dataset(Xm, y), num_boost_round=30) for v in variants]
    for t in scorer._tasks:  # and the artifact's own boosters
        for e in [t.exp] + list((t.exp.get("members") or {}).get("exports") or []):
            for sub in (e, e.get("nuisance") or {}):
                boosters += list((sub.get("boosters") or {}).values())
    for b in boosters:
        fo = _fast.compile_forest(b)
        assert fo is not None
        nf = b.num_feature()
        Z = rng.normal(40, 20, size=(2000, nf))
        Z[rng.random(Z.shape) < 0.25] = np.nan
        Z[rng.random(Z.shape) < 0.1] = 0.0
        np.testing.assert_array_equal(_fast.forest_raw(fo, Z), b.predict(Z, raw_score=True, num_threads=1))
        # (the compiled program's walks of the draws: tests/test_two_paths.py, against LightGBM)


@needs_numba
def test_categorical_boosters_fall_back_to_lightgbm():
    import lightgbm as lgb

    rng = np.random.default_rng(4)
    X = np.column_stack([rng.integers(0, 4, 500), rng.normal(size=500)]).astype(float)
    y = X[:, 0] + X[:, 1] + rng.normal(size=500)
    b = lgb.train({"objective": "regression", "verbose": -1, "min_data_per_group": 5, "cat_smooth": 1},
                  lgb.Dataset(X, y, categorical_feature=[0]), num_boost_round=5)
    assert _fast.compile_forest(b) is None


def test_without_numba_the_plain_path_scores_the_same(sm, scorer, patients, tmp_path):
    """LBP_NO_NUMBA=1 (or numba absent): predict works on numpy + LightGBM alone, same numbers."""
    patients.to_csv(tmp_path / "p.csv", index=False)
    code = ("import sys, pandas as pd; from predict import Scorer, kernels as _fast; assert not _fast.AVAILABLE; "
            f"s = Scorer.load({str(sm.artifact)!r}); "
            f"s.score_table(pd.read_csv({str(tmp_path / 'p.csv')!r}), {COMP!r}).to_csv({str(tmp_path / 'o.csv')!r}, index=False)")
    env = dict(os.environ, LBP_NO_NUMBA="1")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=str(Path(__file__).resolve().parents[1]))
    got = pd.read_csv(tmp_path / "o.csv", keep_default_na=False, na_values=[""])
    want = scorer.score_table(pd.read_csv(tmp_path / "p.csv"), COMP)
    for c in want.columns:
        if want[c].dtype.kind == "f":
            np.testing.assert_allclose(got[c].astype(float), want[c], rtol=1e-9, atol=1e-9, err_msg=c)


def test_copies_of_prepared_exports_are_independent(scorer):
    """A deep copy of a prepared export scores the same."""
    t = scorer._tasks[0]
    exp2 = copy.deepcopy(t.exp)
    F, _ = scorer.validate([{"baseline_pain": 60.0, "baseline_function": 40.0}])
    a = rt.task_scores(t.exp, F, COMP)
    b = rt.task_scores(exp2, F, COMP)
    for k in ("exercise", "comparator", "benefit", "se_est", "var_missing"):
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-12)


def _perturbed_scorer(sm, rel: float, seed: int = 3):
    """A scorer whose imputer covariances are multiplied elementwise by (1 + rel * e), e a symmetric
    standard-normal matrix: what another machine's or BLAS's rounding could do to them (the typed
    learners are immutable: the perturbed exports are built into new ones)."""
    import dataclasses

    from predict.learner_model import build

    s = Scorer.load(sm.artifact)
    rng = np.random.default_rng(seed)

    def walk(exp):
        imp = exp.get("imputer")
        if isinstance(imp, dict):
            S = np.asarray(imp["cov"], float)
            e = rng.standard_normal(S.shape)
            imp["cov"] = S * (1 + rel * (e + e.T) / 2)
        for sub in ([exp["nuisance"]] if isinstance(exp.get("nuisance"), dict) else []) + \
                list((exp.get("members") or {}).get("exports") or []):
            walk(sub)

    tasks = []
    for t in s._tasks:
        exp = _copy_keeping_boosters(t.exp)
        walk(exp)
        tasks.append(dataclasses.replace(t, exp=exp, model=build(exp)))
    return Scorer(s.artifact, tasks, s.schema, s._background, manifest=s.manifest)


def _copy_keeping_boosters(x):
    """A copy of an export's dicts and lists (the LightGBM boosters in it shared)."""
    if isinstance(x, dict):
        return {k: _copy_keeping_boosters(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_copy_keeping_boosters(v) for v in x]
    return x if not isinstance(x, np.ndarray) else x.copy()


def test_cond_factor_is_cholesky_and_smooth():
    """The draws' noise factor is the (unique) Cholesky factor: a 1e-12 relative change of the
    covariance moves it by rounding only, even with (near-)equal eigenvalues, where an eigenvector
    basis would be arbitrary; semi-definite matrices get a small documented jitter."""
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    S = (Q * np.array([2.0, 1.0, 1.0, 1.0 + 1e-15, 0.5, 0.1])) @ Q.T
    L = rt.cond_factor(S)
    np.testing.assert_allclose(L @ L.T, (S + S.T) / 2, rtol=0, atol=1e-13)
    assert np.allclose(L, np.tril(L)) and (np.diag(L) > 0).all()
    E = rng.standard_normal(S.shape)
    L2 = rt.cond_factor(S * (1 + 1e-12 * (E + E.T) / 2))
    assert np.abs(L2 - L).max() < 1e-10
    # semi-definite: a zero-variance feature and an exactly collinear pair
    P = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    Lp = rt.cond_factor(P)
    assert np.isfinite(Lp).all()
    np.testing.assert_allclose(Lp @ Lp.T, P, atol=1e-5)


def test_intervals_are_stable_under_a_tiny_covariance_change(scorer, sm, patients):
    """Same patients, imputer covariances changed by 1e-12 (relative): every interval bound moves
    by < 1e-6 (with an eigendecomposition of the conditional covariance, sign flips of the
    eigenvectors moved CI bounds by points)."""
    other = _perturbed_scorer(sm, 1e-12)
    for comp in (COMP, scorer.comparators[0]):
        a = scorer.score_table(patients, comp)
        b = other.score_table(patients, comp)
        for c in a.columns:
            if a[c].dtype.kind == "f":
                np.testing.assert_allclose(a[c], b[c], rtol=0, atol=1e-6, err_msg=f"{comp}: {c}")
    recs = [{k: v for k, v in r.items() if v == v} for r in patients.head(60).to_dict("records")]
    for ra, rb in zip(scorer.score(recs, COMP), other.score(recs, COMP)):
        for task, oa in ra["outcomes"].items():
            ob = rb["outcomes"][task]
            for arm in ("intervention", "comparator"):
                if oa[arm]["interval"] is not None:
                    np.testing.assert_allclose(oa[arm]["interval"], ob[arm]["interval"], rtol=0, atol=1e-6)
            for k in ("ci", "prediction_interval"):
                if oa["benefit"][k][0] is not None:
                    np.testing.assert_allclose(oa["benefit"][k], ob["benefit"][k], rtol=0, atol=1e-6)
