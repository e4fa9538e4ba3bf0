"""Boosted (LightGBM) meta-learners: T-, X- and DR-learner, adapted to pooled randomised trials.

Common to all three:

- A linear *base* (the constant-effect model: trial intercepts, class offsets, rich prognostic
  basis) is fitted first; its linear predictor, which contains each trial's fixed effect, is the
  boosters' ``init_score``. The trees therefore learn only deviations from a trial-stratified
  model, and between-trial differences in outcome level cannot leak into the benefit.
- Known propensities: each trial's allocation share of the active class (no propensity model).
- Cross-fitting (X, DR) uses folds grouped by trial; for a held-out trial the out-of-fold
  outcome model gets its trial intercept re-estimated from that trial's own outcomes (one
  number per trial, arm-balanced), which keeps the DR score unbiased under randomisation.
- Effect modification shared across comparator classes: the T-learner pools all comparator
  arms in one control booster (class differences via the base offsets); X/DR learn one
  modification function h(x) on top of the class average benefits B_c of the base model:
  benefit_vs_c(x) = B_c + h(x).
- Missing features: LightGBM's native missing-value splits (``tree_missing='native'``,
  default; at scoring, a feature a booster never saw missing gets its conditional mean instead,
  :func:`predict.trees.tree_input`) or the two-level Gaussian imputation (``'impute'``).

Estimands as in :mod:`training.learners.base`. Intervals: trial-cluster bootstrap refits; the
per-patient bootstrap variance is summarised by an exportable log-linear variance model. For the
X- and DR-learner (continuous outcomes) that model is fitted to the bootstrap variance plus the
missing-input allowance of :mod:`training.learners.missing_allowance` (what their trees' own draws
of a patient's missing features understate, measured against the linear effect model's draws):
same export format, same scoring.
"""
from __future__ import annotations

import hashlib
from types import SimpleNamespace

import lightgbm as lgb
import numpy as np
import pandas as pd

from predict.evaluate import expected, point
from predict.impute import impute_mean
from predict.linear import basis
from predict.model_format import LEARNER_FORMAT, LEARNER_VERSION
from predict.numeric import expit
from training.learners.base import BenefitLearner, allocation_share
from training.learners.effect_model import MAIN_SD, shared_linear_data
from training.learners.folds import row_folds
from training.learners.linear import linear_benefit
from training.learners.intervals import (cluster_bootstrap, fit_variance_model, residual_tau,
                                         varmodel_design_spec)
from training.learners.linear import StructuredFit, linear_block, make_basis, prior_lambda
from training.learners.missing_allowance import missing_allowance, reference_variance
from training.learners.stacking import comparator_mix



class CrossFitCache:
    """Outcome boosters and cross-fits keyed by (data, seed, settings), bounded (oldest dropped).

    The T-, X- and DR-learner fitted on the same data with the same seed need the same outcome
    boosters and the same cross-fit; passing one cache to their ``fit`` (``crossfit_cache=``, as
    training and IECV do for a group of learners) computes them once. Without one, each ``fit``
    uses a fresh cache of its own (nothing is shared between instances behind the caller's back)."""

    def __init__(self, max_items: int = 96):
        self.max_items = max_items
        self._items: dict = {}

    def get(self, key: str, compute):
        if key not in self._items:
            if len(self._items) >= self.max_items:
                self._items.pop(next(iter(self._items)))
            self._items[key] = compute()
        return self._items[key]


def accepts_crossfit_cache(learner) -> bool:
    """Whether ``learner.fit`` takes ``crossfit_cache=`` (the boosted learners)."""
    return isinstance(learner, _MetaBase)
OUTCOME_PARAMS = dict(learning_rate=0.05, num_leaves=7, min_data_in_leaf=30, feature_fraction=0.8,
                      bagging_fraction=0.8, bagging_freq=1, lambda_l2=10.0, num_rounds=150)
# binary outcomes carry less information per participant: fewer, larger-leaf trees
BINARY_OUTCOME_PARAMS = dict(num_rounds=80, min_data_in_leaf=60)
EFFECT_PARAMS = dict(learning_rate=0.03, num_leaves=5, min_data_in_leaf=60, feature_fraction=0.8,
                     bagging_fraction=0.8, bagging_freq=1, lambda_l2=20.0, num_rounds=100)


def _train(F, label, init, objective, params: dict, seed: int) -> str:
    p = dict(params)
    rounds = int(p.pop("num_rounds"))
    p.update(objective=objective, verbose=-1, num_threads=1, seed=seed, deterministic=True,
             force_row_wise=True, feature_pre_filter=False)
    if len(label) == 0:  # e.g. a bootstrap replicate or cross-fit fold of tiny trials without this arm
        raise ValueError("no participants of this arm in the data to fit a tree booster on (trials too small)")
    if len(label) * float(p.get("bagging_fraction", 1.0)) < 2:  # bagging would leave no row (LightGBM: num_data > 0)
        p.update(bagging_fraction=1.0, bagging_freq=0)
    ds = lgb.Dataset(F, label=label, init_score=init, params={"verbose": -1})
    # keep_training_booster: the text is taken once here instead of LightGBM's own text round trip
    # at the end of train() (the same model text; 17% less CPU per booster)
    return lgb.train(p, ds, num_boost_round=rounds, keep_training_booster=True).model_to_string()


def _subset(d, idx: np.ndarray, codes: np.ndarray):
    s = SimpleNamespace(family=d.family, comps=d.comps, spec=d.spec, prep=d.prep)
    for k in ("F", "Fi", "y", "g", "cls", "treat", "P"):
        setattr(s, k, getattr(d, k)[idx])
    _, s.trial = np.unique(codes, return_inverse=True)
    s.e = allocation_share(s.trial, s.treat == 1, s.treat == 0)
    s.has_comp = np.array([np.isfinite(s.e[s.trial == t]).any() for t in range(s.trial.max() + 1)])
    s.W = comparator_mix(s.trial, s.cls, d.prep.active, d.comps)
    return s


class _MetaBase(BenefitLearner):
    def __init__(self, outcome_type: str = "continuous", active: str = "exercise", classes=None, features=None,
                 outcome_params: dict | None = None, effect_params: dict | None = None, tree_missing: str = "native",
                 n_folds: int = 5, n_boot: int = 20, boot_folds: int = 3, n_draws: int = 20, random_state: int = 0):
        self.outcome_type = outcome_type
        self.active = active
        self.classes = classes
        self.features = features
        self.outcome_params = outcome_params
        self.effect_params = effect_params
        self.tree_missing = tree_missing
        self.n_folds = n_folds
        self.n_boot = n_boot
        self.boot_folds = boot_folds
        self.n_draws = n_draws
        self.random_state = random_state

    # ---------------------------------------------------------------- pieces
    def _op(self):
        base = OUTCOME_PARAMS if self.outcome_type == "continuous" else {**OUTCOME_PARAMS, **BINARY_OUTCOME_PARAMS}
        return {**base, **(self.outcome_params or {})}

    def _ep(self):
        return {**EFFECT_PARAMS, **(self.effect_params or {})}

    def _tree_X(self, d):
        return d.F if self.tree_missing == "native" else d.Fi

    def _base(self, d):
        """Constant-effect linear base on arrays of d: (StructuredFit, lam_main)."""
        fam = d.family
        f0 = StructuredFit(fam, prior_lambda(fam, 1.0, MAIN_SD[fam]), 1e12).fit(
            d.y, d.trial, d.cls, d.treat, d.comps, d.P, np.zeros((d.y.size, 0)))
        if fam != "gaussian":  # the penalty does not depend on a residual variance: f0 is the fit
            return f0
        s2 = f0.sigma2_
        return StructuredFit(fam, prior_lambda(fam, s2, MAIN_SD[fam]), 1e12).fit(
            d.y, d.trial, d.cls, d.treat, d.comps, d.P, np.zeros((d.y.size, 0)))

    def _key(self, d, *extra) -> str:
        # Fi and P too: two subsets with the same rows can carry different imputations (e.g. the
        # inner folds of two IECV folds that hold out the same two trials in the other order), so
        # a key without them let a forked worker's cache hit depend on scheduling. The data's part
        # of the hash is kept on d while its arrays stay the same objects (d.P is set anew by each
        # learner's fit; the other arrays of a LinearData are never reassigned).
        state = getattr(d, "_key_data", None)
        if state is None or state[0] is not d.P:
            h = hashlib.sha1()
            for a in (d.y, d.trial, np.nan_to_num(d.F, nan=-9e9), d.Fi, d.P):
                h.update(np.ascontiguousarray(a).tobytes())
            h.update("|".join(d.cls).encode())
            state = (d.P, h)
            d._key_data = state
        h = state[1].copy()
        h.update(repr((d.comps, self.tree_missing, self._op(), self.outcome_type) + extra).encode())
        return h.hexdigest()

    def _t_core(self, d, seed: int) -> dict:
        """Base + two boosters (active, pooled control) on the arrays of d (cached: the T-, X-
        and DR-learner fitted on the same data with the same seed share it)."""
        return self._cache.get(self._key(d, "t_core", seed), lambda: self._t_core_compute(d, seed))

    def _t_core_compute(self, d, seed: int) -> dict:
        base = self._base(d)
        obj = "regression" if d.family == "gaussian" else "binary"
        Ft = self._tree_X(d)
        act = d.treat == 1
        b1 = _train(Ft[act], d.y[act], base.eta_[act], obj, self._op(), seed)
        b0 = _train(Ft[~act], d.y[~act], base.eta_[~act], obj, self._op(), seed + 1)
        return {"theta": base.theta_.tolist(), "boosters": {"active": b1, "control": b0}}

    def _t_export(self, d, core: dict, Pcols) -> dict:
        exp = {"format": LEARNER_FORMAT, "version": LEARNER_VERSION, "kind": "t_learner", "outcome_type": self.outcome_type,
               "active": d.prep.active, "comparators": d.comps, "unavailable": getattr(d, "unavailable", []),
               "features": d.spec, "imputer": self._imputer_export, "tree_missing": self.tree_missing,
               "linear": {"link": "identity" if d.family == "gaussian" else "logit", "prog": linear_block(Pcols),
                          "modifier": None, "theta": core["theta"], "n_prog": len(Pcols), "n_mod": 0},
               "boosters": core["boosters"]}
        return exp

    def _crossfit(self, d, Pcols, n_folds: int, seed: int):
        """Out-of-fold expected outcomes (mean scale) per class for rows of comparator trials,
        with the held-out trial's intercept re-estimated from its own outcomes. Cached per
        data/seed/settings so the X- and DR-learner share one cross-fit."""
        return self._cache.get(self._key(d, "crossfit", n_folds, seed),
                               lambda: self._crossfit_compute(d, Pcols, n_folds, seed))

    def _crossfit_compute(self, d, Pcols, n_folds: int, seed: int):
        n = d.y.size
        mu = {k: np.full(n, np.nan) for k in ["__active__"] + d.comps}
        for k, te in enumerate(row_folds(d.trial, d.has_comp, d.cls, n_folds, seed)):
            tr = ~te
            comps_tr = [c for c in d.comps if (d.cls[tr] == c).any()]
            keep = tr & np.isin(d.cls, comps_tr + [d.prep.active])
            idx = np.flatnonzero(keep)
            sub = _subset(d, idx, d.trial[idx])
            sub.comps = comps_tr
            core = self._t_core(sub, seed + 10 * k)
            exp = self._t_export(sub, core, Pcols)
            Fte = d.F[te] if self.tree_missing == "native" else d.Fi[te]
            ex = expected(exp, Fte, d.Fi[te])
            # classes absent from the training folds borrow the pooled control prediction
            for c in d.comps:
                if c not in ex:
                    ex[c] = np.mean([ex[x] for x in comps_tr], axis=0)
            rows = np.flatnonzero(te)
            for t in np.unique(d.trial[te]):
                m = d.trial[rows] == t
                own = np.where(d.treat[rows][m] == 1, ex["__active__"][m], np.nan)
                for c in d.comps:
                    own = np.where(d.cls[rows][m] == c, ex[c][m], own)
                delta = _intercept_shift(d.y[rows][m], own, d.family)
                for key in mu:
                    mu[key][rows[m]] = _shift(ex[key][m], delta, d.family)
        return mu

    def _class_benefit(self, d, theta) -> dict:
        ok = np.isfinite(d.e)
        b = linear_benefit(np.asarray(theta), d.P[ok], np.zeros((ok.sum(), 0)), d.comps, d.family)
        return {c: float(np.mean(v)) for c, v in b.items()}

    # ---------------------------------------------------------------- fit
    def fit(self, X: pd.DataFrame, y, crossfit_cache: CrossFitCache | None = None) -> "_MetaBase":
        """Fit on the rows of one task; ``crossfit_cache`` shares outcome boosters and cross-fits
        with other boosted learners fitted on the same data (:class:`CrossFitCache`)."""
        self._cache = crossfit_cache if crossfit_cache is not None else CrossFitCache()
        try:
            return self._fit(X, y)
        finally:
            del self._cache

    def _fit(self, X: pd.DataFrame, y) -> "_MetaBase":
        d = shared_linear_data(self, X, y)
        self._imputer_export = d.imputer.export()
        Pcols = make_basis(d.Fi, d.spec, 3, True)
        d.P = basis(Pcols, d.Fi)
        core = self._core(d, Pcols, self.random_state, self.n_folds)
        exp = self._assemble(d, core, Pcols)
        exp["meta"] = d.base_export(self, self.kind)["meta"]
        # trial-cluster bootstrap -> per-row variance -> exportable variance model
        Fimp = impute_mean(exp["imputer"], d.F)  # every replicate's export carries this same imputer
        exp["interval"] = {"method": "varmodel", "design": varmodel_design_spec(Fimp), "tau": {}, "n_boot": 0}
        preds, arm_preds = [], []
        for b, (idx, codes) in enumerate(cluster_bootstrap(d.trial, d.has_comp, self.n_boot, self.random_state, strata=d.cls)):
            if len(set(d.cls[idx]) & set(d.comps)) < len(d.comps):
                continue
            sub = _subset(d, idx, codes)
            cb = self._core(sub, Pcols, self.random_state + 1000 * (b + 1), self.boot_folds)
            eb = self._assemble(sub, cb, Pcols)
            ex, ben = point(eb, d.F, Fimp)
            preds.append(np.column_stack([ben[c] for c in d.comps]))
            arm_preds.append(np.column_stack([ex[k] for k in ["__active__"] + d.comps]))
        if len(preds) >= 3:
            var = np.var(np.stack(preds), axis=0, ddof=1)
            # + what the trees' own draws of missing inputs understate (training.learners.missing_allowance)
            allow, exp["meta"]["missing_allowance"] = self._missing_allowance(X, y, exp, d)
            exp["interval"]["varmodel"] = {c: fit_variance_model(exp, d.F, var[:, i] + allow[c])
                                           for i, c in enumerate(d.comps)}
            # the same bootstrap, per arm: the expected outcome under each class (per-arm intervals)
            avar = np.var(np.stack(arm_preds), axis=0, ddof=1)
            exp["interval"]["arm_varmodel"] = {k: fit_variance_model(exp, d.F, avar[:, i])
                                               for i, k in enumerate(["__active__"] + d.comps)}
        else:
            exp["interval"]["varmodel"] = {c: [-30.0] + [0.0] * (2 * d.F.shape[1]) for c in d.comps}
        exp["interval"]["n_boot"] = len(preds)
        # tau: heterogeneity of the trial effects beyond the model, from *out-of-trial* (cross-fitted)
        # own-arm predictions: in-sample trees partly absorb a trial's effect through its case-mix,
        # which would understate tau
        # (n_boot = 0 means "no intervals": tau is then 0 as well, and the cross-fit is skipped)
        if self.n_boot > 0:
            mu = self._crossfit(d, Pcols, self.n_folds, self.random_state)
            own = np.full(d.y.size, np.nan)
            own[d.treat == 1] = mu["__active__"][d.treat == 1]
            for c in d.comps:
                own[d.cls == c] = mu[c][d.cls == c]
            g_hat = -own if d.family == "gaussian" else own
            exp["interval"]["tau"] = residual_tau(d.g, g_hat, d.trial, d.cls, d.prep.active, d.comps)
        else:
            exp["interval"]["tau"] = {c: 0.0 for c in d.comps + ["__pooled__"]}
        self.boot_predictions_ = preds
        self.boot_arm_predictions_ = arm_preds
        self.export_ = exp
        self.n_features_in_ = len(d.spec["names"])
        self._attach_support(X)
        return self

    def _missing_allowance(self, X, y, exp, d):
        """No allowance for the T-learner (its arm boosters are not this module's concern; its
        coverage was 0.92-0.95); the X- and DR-learner override this."""
        return {c: np.zeros(d.y.size) for c in d.comps}, {"method": "none"}


def _intercept_shift(y, mu_own, family) -> float:
    if family == "gaussian":
        return float(np.mean(y - mu_own))
    eta = np.log(np.clip(mu_own, 1e-9, 1 - 1e-9) / np.clip(1 - mu_own, 1e-9, 1))
    delta = 0.0
    for _ in range(30):
        p = expit(eta + delta)
        step = np.sum(y - p) / max(np.sum(p * (1 - p)), 1e-9)
        delta += step
        if abs(step) < 1e-10:
            break
    return float(np.clip(delta, -10, 10))


def _shift(mu, delta, family):
    if family == "gaussian":
        return mu + delta
    eta = np.log(np.clip(mu, 1e-9, 1 - 1e-9) / np.clip(1 - mu, 1e-9, 1))
    return expit(eta + delta)


class TLearner(_MetaBase):
    """T-learner: one booster for the active arm, one for the pooled comparator arms, both on top
    of the trial-stratified linear base (``init_score``). benefit_vs_c(x) = difference of the two
    arm predictions plus the base class offset; the prognostic part cancels."""

    kind = "t_learner"

    # Not parameters of the T-learner (it has no effect booster and no cross-fit of its own):
    # fixed, as class attributes, so that __init__ stores only its own parameters.
    effect_params = None
    n_folds = 5
    boot_folds = 3

    def __init__(self, outcome_type: str = "continuous", active: str = "exercise", classes=None, features=None,
                 outcome_params: dict | None = None, tree_missing: str = "native", n_boot: int = 20,
                 n_draws: int = 20, random_state: int = 0):
        self.outcome_type = outcome_type
        self.active = active
        self.classes = classes
        self.features = features
        self.outcome_params = outcome_params
        self.tree_missing = tree_missing
        self.n_boot = n_boot
        self.n_draws = n_draws
        self.random_state = random_state

    def _core(self, d, Pcols, seed, n_folds):
        return self._t_core(d, seed)

    def _assemble(self, d, core, Pcols):
        return self._t_export(d, core, Pcols)


class XLearner(_MetaBase):
    """X-learner (Kuenzel et al. 2019) with known propensities and trial-grouped cross-fitting.

    Imputed effects (oriented, benefit direction): active participants D = g - g0_hat(x)
    (g0 = their trial's comparator mix), comparator participants D = g1_hat(x) - g; the class
    average benefit is subtracted, boosters tau1 / tau0 fit the remaining modification on active /
    comparator participants, h(x) = e tau0(x) + (1 - e) tau1(x) with e the active share."""

    kind = "x_learner"

    def _nuisances(self, d, Pcols, seed, n_folds):
        """The T-learner nuisance, cross-fitted outcome models oriented to the benefit direction
        (``o`` flips a continuous higher-is-worse outcome), the class average benefits and the rows
        with a usable propensity and active-arm prediction."""
        nuis = self._t_core(d, seed)
        mu = self._crossfit(d, Pcols, n_folds, seed)
        cb = self._class_benefit(d, nuis["theta"])
        ok = np.isfinite(d.e) & np.isfinite(mu["__active__"])
        o = (lambda v: -v) if d.family == "gaussian" else (lambda v: v)
        return nuis, mu, cb, ok, o

    def _core(self, d, Pcols, seed, n_folds):
        nuis, mu, cb, ok, o = self._nuisances(d, Pcols, seed, n_folds)
        g1 = o(mu["__active__"])
        g0 = {c: o(mu[c]) for c in d.comps}
        g0mix = sum(d.W[:, i] * np.nan_to_num(g0[c]) for i, c in enumerate(d.comps))
        bmix = sum(d.W[:, i] * cb[c] for i, c in enumerate(d.comps))
        D = np.full(d.y.size, np.nan)
        act = ok & (d.treat == 1)
        D[act] = d.g[act] - g0mix[act] - bmix[act]
        for c in d.comps:
            m = ok & (d.cls == c)
            D[m] = g1[m] - d.g[m] - cb[c]
        Ft = self._tree_X(d)
        ctl = ok & (d.treat == 0)
        t1 = _train(Ft[act], D[act], np.zeros(act.sum()), "regression", self._ep(), seed + 2)
        t0 = _train(Ft[ctl], D[ctl], np.zeros(ctl.sum()), "regression", self._ep(), seed + 3)
        e = float(act.sum() / max(act.sum() + ctl.sum(), 1))
        return {"nuisance": nuis, "boosters": {"tau1": t1, "tau0": t0}, "combine": {"e": e, "class_benefit": cb}}

    def _missing_allowance(self, X, y, exp, d):
        # the reference is the same for the X- and DR-learner of one job: cached (CrossFitCache)
        ref = lambda: self._cache.get(self._key(d, "missing_reference", self.n_draws, self.random_state),
                                      lambda: reference_variance(self, X, y, d.F, d.comps))
        return missing_allowance(self, exp, d.F, d.comps, ref)

    def _assemble(self, d, core, Pcols):
        exp = self._t_export(d, core["nuisance"], Pcols)
        return {**{k: exp[k] for k in ("format", "version", "outcome_type", "active", "comparators", "unavailable",
                                       "features", "imputer", "tree_missing")},
                "kind": self.kind, "nuisance": exp, "boosters": core["boosters"], "combine": core["combine"]}


class DRLearner(XLearner):
    """DR-learner (Kennedy 2023) with known propensities: the AIPW pseudo-outcome
    psi = b_T(x) + t (g - g1_hat)/e_j - (1 - t)(g - g0_hat)/(1 - e_j) from cross-fitted outcome
    models (trial-grouped folds), minus the class average benefit, regressed on x by a strongly
    regularised booster: h(x)."""

    kind = "dr_learner"

    def _core(self, d, Pcols, seed, n_folds):
        nuis, mu, cb, ok, o = self._nuisances(d, Pcols, seed, n_folds)
        g1 = o(mu["__active__"])
        g0own = np.full(d.y.size, np.nan)
        g0mix = sum(d.W[:, i] * np.nan_to_num(o(mu[c])) for i, c in enumerate(d.comps))
        bref = sum(d.W[:, i] * cb[c] for i, c in enumerate(d.comps))
        g0own[d.treat == 1] = g0mix[d.treat == 1]
        for c in d.comps:
            m = d.cls == c
            g0own[m] = o(mu[c])[m]
            bref = np.where(m, cb[c], bref)
        t = d.treat
        e = np.where(ok, d.e, 0.5)
        psi = g1 - g0own + t * (d.g - g1) / e - (1 - t) * (d.g - g0own) / (1 - e)
        target = psi - bref
        Ft = self._tree_X(d)
        tb = _train(Ft[ok], target[ok], np.zeros(ok.sum()), "regression", self._ep(), seed + 4)
        return {"nuisance": nuis, "boosters": {"tau": tb}, "combine": {"class_benefit": cb}}
