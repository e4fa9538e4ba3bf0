"""Boundary handling of the mixed-model engine: no fit stops at a boundary saddle point.

In the Cholesky parametrisation the (restricted) likelihood is even in a random-effect SD at 0,
so its gradient there is exactly 0 whether 0 is the optimum or a saddle; only the slope in the
variance direction tells them apart. An outside audit found linear models of the default
replication reported with an SD of exactly 0 where the REML optimum lies inside (tau 0 where the
optimum is 0.31-0.72). These tests scan fits with the package's own criterion
(:func:`training.mixed.lmm.profiled_criterion`): at every zero component the directional
derivative into the interior must be >= 0 and no value of that component may do better.

Every linear model of the default replication (666 fits: REML, diagonal G, as ``replicate`` fits
them) is fitted once per test run (module fixture) and scanned: the directional derivative into
the interior at every zero component, for all 666 (about 20 s of CPU in all: simulation, designs,
fits, derivatives). The grid over each zero component's SD (25 criterion values per component, about
2 min for all 880 zero components) runs on a deterministic subset: the 7 models that stopped at a
saddle before the fix plus every 12th model in ``all_specs`` order; the full grid scan is
``benchmarks/bench_mixed_boundary.py`` (BENCHMARKS.md).
"""
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

from predict.errors import LbpError

from training.mixed import fit_glmm_binomial, fit_lmm
from training.mixed._optim import boundary_descent, inward_slope, positive_curvature_step
from training.mixed.glmm import laplace_criterion
from training.mixed.lmm import profiled_criterion

REF = Path(__file__).parent / "data" / "lme4_boundary_reference.json"
# The default replication's linear models that stopped at a boundary saddle before the fix.
SADDLES = [
    "pain/long/no_treatment_usual_care/sick_leave_12m/adjusted",
    "pain/long/other_conservative/employed/unadjusted",
    "pain/long/other_conservative/social_support/adjusted",
    "function/short/any_non_exercise/sick_leave_12m/unadjusted",
    "function/short/no_treatment_usual_care/mental_health/adjusted",
    "function/short/other_conservative/employed/adjusted",
    "function/long/no_treatment_usual_care/female/adjusted",
]
ZERO = 1e-4  # relative SD (SD / residual SD per unit-RMS column) reported as a boundary fit


def boundary_report(D, res, grid: bool = True):
    """For each component of theta at ~0: (slope into the interior per unit theta_j^2 from the
    analytic gradient, best improvement of the criterion over a grid of theta_j values; NaN
    without ``grid``)."""
    f = profiled_criterion(D.y, D.X, D.Z, D.groups, method="REML", re_cov="diagonal")
    theta = np.asarray(res.theta, float)
    z_rms = np.sqrt((D.Z.to_numpy() ** 2).mean(0))
    out = {}
    f0 = f(theta)[0]
    assert f0 == pytest.approx(-2 * res.loglik, abs=1e-8)
    for j in np.flatnonzero(theta * z_rms <= ZERO):
        t = theta.copy()
        h = 1e-6 / z_rms[j]
        t[j] = h
        slope = f(t)[1][j] / (2 * h) * z_rms[j] ** -2  # per unit of (theta_j * z_rms)^2
        best = np.nan
        if grid:
            t[j] = 0.0
            base = f(t)[0]
            best = np.inf
            for v in np.geomspace(1e-4, 3, 25):
                t[j] = v / z_rms[j]
                best = min(best, f(t)[0] - min(base, f0))
        out[D.Z.columns[j]] = (slope, best)
    return out


@pytest.fixture(scope="module")
def default_designs():
    from training.dataset import load_dataset
    from training.harmonise import harmonise
    from training.meta.design import build_design
    from training.meta.specs import all_specs
    from training.simulate import simulate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        simulate_dataset("hayden2020", seed=1).write(Path(tmp))
        h = harmonise(load_dataset(Path(tmp)))
    specs = [s for s in all_specs(h.config, set(h.analysis["outcome"])) if not s.binary_outcome]
    assert len(specs) == 702  # 666 fitted, 36 without two trials with both arms
    designs = {}
    for i, s in enumerate(specs):
        try:
            designs[s.label] = (i, build_design(h.analysis, s, h.config.active))
        except LbpError:  # fewer than two trials with both arms: not fitted by replicate either
            continue
    assert len(designs) == 666 and set(SADDLES) <= set(designs)
    return designs


@pytest.fixture(scope="module")
def default_fits(default_designs):
    """Every linear model of the default replication, fitted once for all tests of this module."""
    return {label: fit_lmm(D.y, D.X, D.Z, D.groups, method="REML", re_cov="diagonal")
            for label, (_, D) in default_designs.items()}


def test_no_linear_model_of_the_default_replication_stops_at_a_saddle(default_designs, default_fits):
    """All 666 fits: the directional derivative into the interior at every zero component is >= 0;
    on the subset (audited saddles + every 12th model) also no grid value of that SD does better."""
    checked = gridded = 0
    for label, (i, D) in default_designs.items():
        res = default_fits[label]
        grid = i % 12 == 0 or label in SADDLES
        for name, (slope, best) in boundary_report(D, res, grid=grid).items():
            checked += 1
            assert slope >= -1e-6, f"{label}: SD of {name} at 0 with the criterion falling into the interior ({slope:.3g})"
            if grid:
                gridded += 1
                assert best >= -1e-9, f"{label}: raising the SD of {name} lowers the criterion by {-best:.3g}"
    assert checked > 800 and gridded > 50  # the scan did look at every (880 in 496 models) / many zero components


def test_the_audited_saddle_fits_reach_the_lme4_optimum(default_designs, default_fits):
    """lme4 (tight bobyqa) on the same designs (benchmarks/r/boundary_lme4.R): the same REML
    optimum, so the same tau, and lme4's criterion at the package's theta equals its own optimum."""
    ref = json.loads(REF.read_text())
    assert set(SADDLES) <= set(ref)
    for label in SADDLES:
        D, res = default_designs[label][1], default_fits[label]
        r = ref[label]
        assert res.loglik >= r["logLik"] - 1e-7, label
        assert res.loglik == pytest.approx(r["logLik"], abs=1e-6), label
        identified = D.studies > 1 + sum(c.endswith("_trialmean") for c in D.X.columns)
        for name, sd in r["re_sd"].items():
            if name == "treat" and not identified:  # 2 trials and a trial-mean term: flat in tau
                continue
            assert res.re_sd[name] == pytest.approx(sd, abs=2e-3 * max(1.0, sd)), (label, name)
        assert res.params["treat"] == pytest.approx(r["fixef"]["treat"], abs=1e-4), label


def test_audited_tau_is_no_longer_zero(default_fits):
    res = default_fits["function/short/any_non_exercise/sick_leave_12m/unadjusted"]
    assert res.status == "ok" and res.re_sd["treat"] > 0.3


# -- the pieces ---------------------------------------------------------------------------
def _toy(x):
    """Even in x0 with a saddle at x0 = 0 (f = -x0^2 + x0^4 + (x1 - 1)^2), minimum at x0^2 = 1/2."""
    f = -x[0] ** 2 + x[0] ** 4 + (x[1] - 1) ** 2
    return f, np.array([-2 * x[0] + 4 * x[0] ** 3, 2 * (x[1] - 1)])


def test_inward_slope_and_boundary_descent_on_a_known_saddle():
    x = np.array([1e-7, 1.0])
    assert inward_slope(_toy, x, 0) == pytest.approx(-1.0, abs=1e-9)
    found = boundary_descent(_toy, x, _toy(x)[0], [0])
    assert found is not None and found[1] < -0.15 and 0.3 < found[0][0] < 1.1
    # a true boundary minimum (f = x0^2 + ...) is left alone
    assert boundary_descent(lambda z: (z[0] ** 2, np.array([2 * z[0]])), np.array([0.0]), 0.0, [0]) is None


def test_newton_step_never_follows_negative_curvature():
    H = np.diag([-2.0, 2.0])
    g = np.array([1e-6, 2.0])
    step, dropped = positive_curvature_step(H, g)
    assert dropped and step[0] == pytest.approx(0.0, abs=1e-15) and step[1] == pytest.approx(1.0)
    step, dropped = positive_curvature_step(np.diag([1.0, 4.0]), g)
    assert not dropped and np.allclose(step, [1e-6, 0.5])


def test_logistic_fit_does_not_stop_at_a_saddle():
    """The same check for the Laplace GLMM on a small simulated IPD with a treatment-effect SD."""
    rng = np.random.default_rng(11)
    k, n = 8, 120
    g = np.repeat(np.arange(k), n)
    t = rng.integers(0, 2, k * n).astype(float)
    b = rng.normal(0, 0.6, k)
    eta = -0.3 + rng.normal(0, 0.4, k)[g] + (0.5 + b[g]) * t
    y = (rng.random(k * n) < 1 / (1 + np.exp(-eta))).astype(float)
    X = np.column_stack([(g == j).astype(float) for j in range(k)] + [t])
    res = fit_glmm_binomial(y, X, t[:, None], g, fixed_names=[f"trial{j}" for j in range(k)] + ["treat"],
                            random_names=["treat"], re_cov="diagonal")
    assert res.status == "ok" and res.re_sd["treat"] > 0.2
    f = laplace_criterion(y, X, t[:, None], g, re_cov="diagonal")
    assert f(res.theta, res.params.to_numpy()) == pytest.approx(-2 * res.loglik, abs=1e-8)
    assert f(np.zeros(1), res.params.to_numpy()) > -2 * res.loglik + 1.0  # tau = 0 is clearly worse here
