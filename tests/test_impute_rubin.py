"""Rubin's rules against independent computations: statsmodels' MICE.combine and R mice::pool.scalar."""
import numpy as np
import pandas as pd
import pytest

from training.impute.rubin import d1_test, pool

Q = np.array([1.2, 1.5, 0.9, 1.1, 1.4])
U = np.array([0.04, 0.05, 0.045, 0.05, 0.042])


def test_scalar_matches_r_mice_pool_scalar():
    # R 4.2, mice 3.15.0 (Debian r-cran-mice): pool.scalar(Q, U, n = 53, k = 3) and n = Inf
    # (script: benchmarks/r/rubin_reference.R)
    p = pool(Q, U, df_com=50)
    assert p.estimate[0] == pytest.approx(1.22, abs=1e-12)
    assert p.Ubar[0, 0] == pytest.approx(0.0454, abs=1e-12)
    assert p.B[0, 0] == pytest.approx(0.057, abs=1e-12)
    assert p.T[0, 0] == pytest.approx(0.1138, abs=1e-12)
    assert p.df[0] == pytest.approx(7.02174468416, rel=1e-9)
    assert p.riv[0] == pytest.approx(1.50660792952, rel=1e-9)
    assert p.fmi[0] == pytest.approx(0.680670462801, rel=1e-9)
    big = pool(Q, U)
    assert big.df[0] == pytest.approx(11.0721589549, rel=1e-9)
    assert big.fmi[0] == pytest.approx(0.657754454839, rel=1e-9)


def test_vector_matches_statsmodels_combine():
    import statsmodels.api as sm
    from statsmodels.imputation.mice import MICE

    rng = np.random.default_rng(3)
    results = []
    for m in range(6):
        x = rng.normal(size=(80, 2))
        y = 1 + x @ [0.5, -0.3] + rng.normal(size=80)
        results.append(sm.OLS(y, sm.add_constant(x)).fit())
    mice = MICE.__new__(MICE)  # only combine(): it reads results_list
    mice.results_list = results
    mice.model_class = sm.OLS
    mice.init_kwds, mice.fit_kwds = {}, {}
    mice.exog_names = results[0].model.exog_names
    mice.endog_names = results[0].model.endog_names
    ref = mice.combine()
    p = pool([r.params for r in results], [r.cov_params() for r in results])
    np.testing.assert_allclose(p.estimate, ref.params, rtol=1e-12)
    np.testing.assert_allclose(p.T, ref.cov_params(), rtol=1e-12)
    np.testing.assert_allclose(p.lam, ref.frac_miss_info, rtol=1e-12)  # statsmodels' fmi is lambda


def test_no_between_variance_is_complete_data():
    p = pool([2.0, 2.0, 2.0], [0.25, 0.25, 0.25], df_com=30)
    assert p.T[0, 0] == pytest.approx(0.25) and p.df[0] == 30
    lo, hi = p.ci()
    from scipy import stats
    assert hi[0] - 2.0 == pytest.approx(stats.t.ppf(0.975, 30) * 0.5)


def test_d1_one_parameter_is_wald_on_total_variance():
    p = pool(Q, U)
    d = d1_test(p)
    assert d["statistic"] == pytest.approx(Q.mean() ** 2 / p.T[0, 0], rel=1e-12)
    assert 0 < d["p"] < 1


def test_pool_needs_two_imputations():
    with pytest.raises(ValueError):
        pool([1.0], [0.1])
