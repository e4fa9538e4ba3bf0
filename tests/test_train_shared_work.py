"""Speed work on ``train`` that must not change a number (issue 23, session 11): the effect-model
family's shared design / constant fit / penalty CV (training.learners.shared_work), the
Frisch-Waugh trial means as one sparse product, trial deviations from per-trial slices and the
boosted learners' cached data hash. Each is compared with the computation it replaced, bit for bit."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from training.learners.boosted import XLearner
from training.learners.effect_model import ConstantEffect, EffectModel, shared_linear_data
from training.learners.intervals import trial_deviations
from training.learners.linear import within_trial
from training.simulate.small_trials import small_trials


def _data(outcome: str = "continuous"):
    X, y, _ = small_trials(n_trials=10, n_per_arm=60, seed=3, outcome=outcome, missing=0.3, systematic=True)
    return X, y


def _family(outcome: str):
    return [ConstantEffect(outcome_type=outcome, n_boot=8), EffectModel(outcome_type=outcome, n_boot=8),
            EffectModel(outcome_type=outcome, n_boot=8, adaptive="always"),
            EffectModel(outcome_type=outcome, n_boot=8, pairs=outcome == "continuous")]


def _blob(m) -> str:
    return json.dumps(m.export_, sort_keys=True, default=str)


@pytest.mark.parametrize("outcome", ["continuous", "binary"])
def test_learners_sharing_one_training_frame_fit_exactly_as_each_alone(outcome):
    X, y = _data(outcome)
    assert X.drop(columns=["trial", "treatment"]).isna().to_numpy().any()  # the expected basis is exercised
    with threadpool_limits(1):
        together = [m.fit(X, y) for m in _family(outcome)]  # one X object: one LinearData, shared work
        d = shared_linear_data(together[1], X, y)
        alone = [m.fit(X.copy(), y) for m in _family(outcome)]  # a copy each: nothing shared
    assert getattr(d, "_shared_work", None), "nothing was shared"
    kinds = {k[0] for k in d._shared_work}
    assert {"block", "const", "select_sd"} <= kinds, kinds
    for a, b in zip(together, alone):
        assert _blob(a) == _blob(b)
        assert np.array_equal(a.boot_theta_, b.boot_theta_)
    # shared arrays cannot be written by one learner behind the others' backs
    _, _, P, M = together[1]._design(d)
    assert not P.flags.writeable and not M.flags.writeable
    with pytest.raises(ValueError):
        M[0, 0] = 1.0
    # a learner's CV table is its own copy
    together[1].cv_.loc[0, "r_loss"] = -1.0
    assert together[2].cv_ is None or together[2].cv_ is not together[1].cv_


def test_within_trial_means_equal_a_bincount_per_column_bit_for_bit():
    rng = np.random.default_rng(11)
    n, J, k = 3000, 23, 17
    trial = rng.integers(0, J, n)
    trial[trial == 5] = 6  # a trial code without rows
    Z = rng.normal(size=(n, k)) * rng.lognormal(size=k) + rng.normal(size=k) * 100
    y = rng.normal(size=n)
    nj = np.bincount(trial, minlength=J).astype(float)
    cnt = np.where(nj > 0, nj, 1.0)
    ref = np.column_stack([np.bincount(trial, weights=Z[:, c], minlength=J) / cnt for c in range(k)])
    ybar, Zbar, Zt, yt = within_trial(y, Z, trial, nj)
    assert np.array_equal(Zbar, ref)
    assert np.array_equal(Zt, Z - ref[trial])
    assert np.array_equal(within_trial(y, Z[:, :0], trial, nj)[1], np.zeros((J, 0)))


def _deviations_by_mask(r, trial, cls, active, comparators):
    """The computation trial_deviations replaced: a mask over all rows per trial."""
    out = []
    for t in np.unique(trial):
        m = (trial == t) & np.isfinite(r)
        a = m & (cls == active)
        if a.sum() < 2:
            continue
        for c in comparators:
            b = m & (cls == c)
            if b.sum() < 2:
                continue
            v = r[a].var(ddof=1) / a.sum() + r[b].var(ddof=1) / b.sum()
            if v > 0:
                out.append({"trial": t, "comparator": c, "n_active": int(a.sum()), "n_comparator": int(b.sum()),
                            "raw": float(r[a].mean() - r[b].mean()), "se": float(np.sqrt(v))})
    return out


@pytest.mark.parametrize("labels", ["int", "str"])
def test_trial_deviations_equal_the_masked_computation_exactly(labels):
    rng = np.random.default_rng(5)
    n = 2000
    trial = rng.integers(0, 30, n)
    trial = trial.astype(str) if labels == "str" else trial
    cls = rng.choice(["exercise", "usual_care", "other"], n, p=[0.5, 0.4, 0.1])
    r = rng.normal(size=n) * 7 + 3
    r[rng.random(n) < 0.05] = np.nan
    got = trial_deviations(r, trial, cls, "exercise", ["usual_care", "other"])
    want = _deviations_by_mask(r, trial, cls, "exercise", ["usual_care", "other"])
    assert got == want and len(got) > 30


def test_boosted_cache_key_is_the_hash_of_the_current_data():
    X, y = _data()
    lr = XLearner(n_boot=0, n_folds=2)
    d = shared_linear_data(lr, X, y)
    d.P = np.asarray(d.Fi[:, :3], float).copy()

    def fresh(d, *extra):
        h = hashlib.sha1()
        for a in (d.y, d.trial, np.nan_to_num(d.F, nan=-9e9), d.Fi, d.P):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update("|".join(d.cls).encode())
        h.update(repr((d.comps, lr.tree_missing, lr._op(), lr.outcome_type) + extra).encode())
        return h.hexdigest()

    assert lr._key(d, "t_core", 1) == fresh(d, "t_core", 1)
    assert lr._key(d, "crossfit", 3, 1) == fresh(d, "crossfit", 3, 1)  # from the kept data hash
    d.P = d.P + 1.0  # a new basis object: the data hash is recomputed
    assert lr._key(d, "t_core", 1) == fresh(d, "t_core", 1)
