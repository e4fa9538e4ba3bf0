"""The two scoring paths agree (issue 19): the numpy reference (predict.evaluate, uncertainty,
impute, linear, trees: exports prepared with ``prepare_export`` only, no compiled kernels) and the
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

from predict import fused as fz, kernels, prepared, reference
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
        compiled = [prepared.prepare_export(copy.deepcopy(e)) for e in exps]
        reference = [prepared.prepare_export(copy.deepcopy(e)) for e in exps]
        assert all(prepared.CompiledExports(compiled).ready(e) for e in compiled)
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
    for comp in compiled[0]["comparators"]:
        prog = compile_program(compiled, comp)
        assert prog is not None
        out = prog.run(F, arms=arms, threads=1)
        for j, pos in enumerate(prog.tasks):
            ref = reference.task_scores(reference_exps[pos], F, comp, arms=arms)
            what = f"{reference_exps[pos]['kind']} {outcome} vs {comp}"
            for key, row in ROWS.items():
                np.testing.assert_allclose(out[row, j], ref[key], rtol=TOL, atol=TOL, err_msg=f"{what}: {key}")
            if arms and ref["arm_se"] is not None:
                for row, key, k in ARM_ROWS:
                    np.testing.assert_allclose(out[row, j], ref[key][k], rtol=TOL, atol=TOL, err_msg=f"{what}: {key}")
