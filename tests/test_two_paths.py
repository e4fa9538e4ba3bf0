"""The two scoring paths agree (issue 19): the numpy reference (predict.evaluate, uncertainty,
impute, linear, trees on typed learners built by ``learner_model.build``, no compiled kernels) and the
compiled program (predict.program + predict.fused), to 1e-10, for every learner kind (linear,
T, X, DR, stacks; continuous and binary outcomes), every comparator, on random patients (rows
drawn from the training features, values perturbed within their observed range) with random
patterns of missing inputs, including rows with every covariate missing."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from predict import fused as fz, kernels, learner_model, prepared, reference
from predict.features import feature_matrix
from predict.program import compile_program
from tests.test_scorer_program import _fit

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba not installed: one path only")
TOL = 1e-10
ROWS = {"exercise": fz.O_A, "comparator": fz.O_C, "benefit": fz.O_B, "se_est": fz.O_SE, "var_missing": fz.O_VAR}
ARM_ROWS = ((fz.O_SEA, "arm_se", 0), (fz.O_SEC, "arm_se", 1), (fz.O_VA, "arm_var_missing", 0),
            (fz.O_VC, "arm_var_missing", 1))


@pytest.fixture(scope="module")
def paths():
    out = {}
    for outcome in ("continuous", "binary"):
        X, exps = _fit(outcome)
        compiled = [learner_model.build(copy.deepcopy(e)) for e in exps]
        reference = [learner_model.build(copy.deepcopy(e)) for e in exps]
        assert all(prepared.CompiledLearners(compiled).ready(e) for e in compiled)
        F0 = feature_matrix(exps[0]["features"], X)
        out[outcome] = (F0, compiled, reference)
    return out


def _patients(F0: np.ndarray, seed: int, n: int, p_missing: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    F = F0[rng.integers(0, len(F0), n)].copy()
    lo, hi = np.nanmin(F0, axis=0), np.nanmax(F0, axis=0)
    for j in range(F.shape[1] - 1):  # the last feature is a baseline (kept)
        vals = F0[:, j][np.isfinite(F0[:, j])]
        if np.unique(vals).size > 2:  # continuous: a random value in the observed range
            F[:, j] = rng.uniform(lo[j], hi[j], n)
    F[:, :-1][rng.random((n, F.shape[1] - 1)) < p_missing] = np.nan
    F[0, :-1] = np.nan  # every covariate missing
    return F


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), outcome=st.sampled_from(["continuous", "binary"]),
       p_missing=st.sampled_from([0.0, 0.1, 0.4, 0.8]), arms=st.booleans())
def test_compiled_program_equals_the_numpy_reference(paths, seed, outcome, p_missing, arms):
    F0, compiled, reference_exps = paths[outcome]
    F = _patients(F0, seed, 25, p_missing)
    for comp in compiled[0].comparators:
        prog = compile_program(compiled, comp)
        assert prog is not None
        out = prog.run(F, arms=arms, threads=1)
        for j, pos in enumerate(prog.tasks):
            ref = reference.task_scores(reference_exps[pos], F, comp, arms=arms)
            what = f"{reference_exps[pos].kind} {outcome} vs {comp}"
            for key, row in ROWS.items():
                np.testing.assert_allclose(out[row, j], ref[key], rtol=TOL, atol=TOL, err_msg=f"{what}: {key}")
            if arms and ref["arm_se"] is not None:
                for row, key, k in ARM_ROWS:
                    np.testing.assert_allclose(out[row, j], ref[key][k], rtol=TOL, atol=TOL, err_msg=f"{what}: {key}")


@pytest.mark.parametrize("p_missing", [0.0, 0.4, 0.8])
def test_binary_arm_intervals_from_the_compiled_program_equal_the_numpy_reference(paths, p_missing):
    """The per-arm intervals of P(recovery) the scorer takes from the compiled program
    (arm_intervals.binary_parts_from on its per-arm rows) equal arm_intervals.binary_parts's
    (the numpy reference) for every binary learner with per-arm uncertainty and every comparator."""
    from predict import arm_intervals as A

    F0, compiled, reference_exps = paths["binary"]
    F = _patients(F0, 7, 40, p_missing)
    checked = 0
    for comp in compiled[0].comparators:
        prog = compile_program(compiled, comp)
        out = prog.run(F, arms=True, threads=1)
        for j, pos in enumerate(prog.tasks):
            exp = reference_exps[pos]
            ref = A.binary_parts(exp, F, comp)
            assert (ref is None) == np.isnan(out[fz.O_SEA, j]).all(), exp.kind
            if ref is None:
                continue
            got = A.binary_parts_from(exp, *(out[r, j] for r in (fz.O_A, fz.O_C, fz.O_SEA, fz.O_SEC, fz.O_VA, fz.O_VC)))
            for g, r in zip(A.binary_interval(got, 1.96), A.binary_interval(ref, 1.96)):
                np.testing.assert_allclose(g, r, rtol=0, atol=TOL, err_msg=f"{exp.kind} vs {comp}")
            checked += 1
    assert checked


def test_the_scorer_takes_binary_arm_intervals_from_the_compiled_program(scorer):
    """On the small model: Scorer's per-arm intervals of binary tasks (from the compiled program)
    equal the numpy reference's (arm_intervals.binary_parts), patients with missing inputs."""
    from predict import arm_intervals as A

    F0, _ = scorer.validate([scorer.example_patient()])
    rng = np.random.default_rng(3)
    F = np.repeat(F0, 60, axis=0) * rng.uniform(0.8, 1.2, (60, F0.shape[1]))
    keep = np.array([n in scorer.baselines or not np.isfinite(F0[0, j]) for j, n in enumerate(scorer._names)])
    cont = np.array([ty == "continuous" for ty in scorer._types])
    F[:, keep | ~cont] = F0[0, keep | ~cont]  # baselines as given; binary and categorical inputs valid
    F[:, ~keep] = np.where(rng.random((60, int((~keep).sum()))) < 0.4, np.nan, F[:, ~keep])
    checked = 0
    for comp in scorer.comparators:
        if scorer.engine.program(comp) is None:
            continue
        comp_out, arm_iv = scorer.engine.compute_unwidened(F, comp, scorer._select(None), arms=True)
        for c in comp_out:
            if not (c.available and c.learner is None and c.task.outcome_type == "binary"):
                continue
            ref = A.binary_parts(c.task.exp, F, comp)
            assert (ref is None) == (c.task.task not in arm_iv)
            if ref is not None:
                for g, r in zip(arm_iv[c.task.task], A.binary_interval(ref, 1.959963984540054)):
                    np.testing.assert_allclose(g, r, rtol=0, atol=TOL)
                checked += 1
    assert checked
