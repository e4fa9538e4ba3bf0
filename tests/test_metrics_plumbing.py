"""The metric bootstraps' plumbing made cheaper (issue 23 speed) computes exactly what the plain
definitions compute: the same draws from the same generator, the same tie counts, the same strata,
the same matched pairs -- checked against the straightforward implementations kept here."""
from __future__ import annotations

import numpy as np
import pytest

from training import metrics as M
from training.metrics._base import _resample_arms, bootstrap_samples
from training.metrics._stats import _n_tied_pairs, stratified_concordance, stratum_rows
from training.metrics.benefit import _pairs_by_benefit


def _resample_reference(arms, rng):
    return np.concatenate([rng.choice(m, size=m.size, replace=True) for m in arms if m.size])


@pytest.mark.parametrize("seed", range(5))
def test_resample_arms_draws_what_choice_draws(seed):
    sizes = [(0, 3), (1, 1), (2, 5), (17, 40), (133, 120)]
    for n0, n1 in sizes:
        arms = [np.arange(n0) * 3 + 1, np.arange(n1) * 7 + 2]
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        assert np.array_equal(_resample_arms(arms, a), _resample_reference(arms, b))
        assert a.integers(0, 2**62) == b.integers(0, 2**62)  # the generator left in the same state


def _tied_reference(x):
    _, counts = np.unique(x, return_counts=True)
    return float((counts * (counts - 1) / 2).sum())


def test_tied_pairs_match_unique_counts():
    rng = np.random.default_rng(3)
    for n in (0, 1, 2, 3, 10, 200):
        for x in (rng.integers(0, 4, n).astype(float), rng.normal(size=n), np.zeros(n), np.round(rng.normal(size=n), 1)):
            assert _n_tied_pairs(x) == _tied_reference(x)


def test_stratum_rows_match_masks():
    rng = np.random.default_rng(4)
    for strata in (np.sort(rng.integers(0, 5, 40)), rng.integers(0, 5, 40), rng.integers(0, 5, 40).astype(str),
                   np.array([3]), np.array([], int), np.array(["b", "a", "b", "c", "a"])):
        got = stratum_rows(strata)
        want = [np.flatnonzero(strata == s) for s in np.unique(strata)]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert np.array_equal(g, w)


def _concordance_reference(pred, obs, strata):
    from training.metrics._stats import concordance_counts

    num = den = 0.0
    for s in np.unique(strata):
        m = strata == s
        a, b = concordance_counts(pred[m], obs[m])
        num += a
        den += b
    return num, den


def test_stratified_concordance_matches_masks():
    rng = np.random.default_rng(5)
    for _ in range(20):
        n = int(rng.integers(5, 300))
        strata = rng.integers(0, 6, n)
        pred, obs = np.round(rng.normal(size=n), 1), rng.integers(-1, 2, n).astype(float)
        assert stratified_concordance(pred, obs, strata) == _concordance_reference(pred, obs, strata)


def _pairs_reference(b, t, codes, rng):
    tr, co = [], []
    for k in np.unique(codes):
        it = np.flatnonzero((codes == k) & (t == 1))
        ic = np.flatnonzero((codes == k) & (t == 0))
        m = min(it.size, ic.size)
        if m == 0:
            continue
        if it.size > m:
            it = rng.choice(it, m, replace=False)
        if ic.size > m:
            ic = rng.choice(ic, m, replace=False)
        it = it[rng.permutation(m)]
        ic = ic[rng.permutation(m)]
        tr.append(it[np.argsort(b[it], kind="stable")])
        co.append(ic[np.argsort(b[ic], kind="stable")])
    if not tr:
        return np.empty(0, int), np.empty(0, int)
    return np.concatenate(tr), np.concatenate(co)


@pytest.mark.parametrize("seed", range(4))
def test_pairs_by_benefit_match_masks(seed):
    rng = np.random.default_rng(seed)
    n = 400
    codes, t, b = rng.integers(0, 9, n), rng.integers(0, 2, n), np.round(rng.normal(size=n), 1)
    t[codes == 3] = 1  # a cluster with one arm only
    for order in (np.arange(n), np.argsort(codes, kind="stable")):
        a, r = np.random.default_rng(seed), np.random.default_rng(seed)
        got, want = _pairs_by_benefit(b[order], t[order], codes[order], a), _pairs_reference(b[order], t[order], codes[order], r)
        assert all(np.array_equal(g, w) for g, w in zip(got, want))


def test_bootstrap_metrics_unchanged_on_fixed_data():
    """c-for-benefit with clusters (the subgroup call) and without (the IECV call): the same values as
    the plain definitions give (reference numbers computed with the np.unique / mask / choice code)."""
    rng = np.random.default_rng(11)
    n = 300
    t = (rng.random(n) < 0.5).astype(float)
    b = rng.normal(5, 3, n)
    y = rng.normal(40, 20, n) - t * b
    cl = np.repeat(np.arange(6), 50).astype(str)
    one = M.c_for_benefit(b, y, t, match="benefit", n_boot=30, n_repeats=3, random_state=2,
                          outcome_type="continuous", higher_is_better=False)
    many = M.c_for_benefit(b, y, t, cluster=cl, match="benefit", n_boot=30, n_repeats=5, random_state=2,
                           outcome_type="continuous", higher_is_better=False)
    ref = _reference_c(b, y, t, cl)
    assert (one.c_for_benefit, one.ci_low, one.ci_high) == ref["one"]
    assert (many.c_for_benefit, many.ci_low, many.ci_high) == ref["many"]


def _reference_c(b, y, t, cl):
    """The same two calls with the module's plumbing swapped for the reference implementations."""
    import training.metrics._base as base
    import training.metrics._stats as st
    import training.metrics.benefit as ben

    saved = (base._resample_arms, st._n_tied_pairs, ben.stratified_concordance, ben._pairs_by_benefit)
    try:
        base._resample_arms, st._n_tied_pairs = _resample_reference, _tied_reference
        ben.stratified_concordance, ben._pairs_by_benefit = _concordance_reference, _pairs_reference
        one = M.c_for_benefit(b, y, t, match="benefit", n_boot=30, n_repeats=3, random_state=2,
                              outcome_type="continuous", higher_is_better=False)
        many = M.c_for_benefit(b, y, t, cluster=cl, match="benefit", n_boot=30, n_repeats=5, random_state=2,
                               outcome_type="continuous", higher_is_better=False)
    finally:
        base._resample_arms, st._n_tied_pairs, ben.stratified_concordance, ben._pairs_by_benefit = saved
    assert np.isfinite(one.ci_low) and np.isfinite(many.ci_low)
    return {"one": (one.c_for_benefit, one.ci_low, one.ci_high), "many": (many.c_for_benefit, many.ci_low, many.ci_high)}


def test_bootstrap_samples_reproducible():
    codes, treat = np.repeat(np.arange(4), 10), np.tile([0, 1], 20)
    a = [i.copy() for i, _ in bootstrap_samples(codes, treat, 5, np.random.default_rng(1))]
    b = [i.copy() for i, _ in bootstrap_samples(codes, treat, 5, np.random.default_rng(1))]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_percentile_ci_matches_nanquantile():
    from training.metrics._base import percentile_ci

    rng = np.random.default_rng(12)
    for it in range(200):
        d = rng.normal(size=(int(rng.integers(1, 40)), int(rng.integers(1, 25))))
        if it % 3 == 0:
            d = np.round(d, 1)
        if it % 5 == 0:
            d[0, 0] = np.nan  # the NaN path
        for level in (0.95, 0.9):
            a = (1 - level) / 2
            lo, hi = percentile_ci(d, level)
            assert np.array_equal(lo, np.nanquantile(d, a, axis=0), equal_nan=True)
            assert np.array_equal(hi, np.nanquantile(d, 1 - a, axis=0), equal_nan=True)
