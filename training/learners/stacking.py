"""Selection and stacking of benefit learners by a benefit loss on held-out trials.

Benefit loss: the R-loss (Nie & Wager 2021) with known propensities. In a held-out trial j
with active share e_j, oriented outcome g (larger = better), a treatment-blind prognostic
nuisance m_j(x) (within-trial OLS of g on an intercept and a prognostic index) and the
predicted benefit b(x) against the trial's comparator mix::

    R_j(b) = mean_i [ (g_i - m_j(x_i)) - (t_i - e_j) b(x_i) ]^2

Lower is better; differences between candidates estimate differences in
E[(b(x) - tau(x))^2 (t - e)^2] (the PEHE weighted by e(1-e)). Trials without a comparator give
no loss. The constant (average-effect) model is always a candidate.

Stacking: convex weights w (non-negative, summing to 1) over the candidates' held-out benefit
predictions minimising the pooled R-loss: the super learner's constrained least squares
(van der Laan, Polley & Hubbard 2007; SuperLearner ``method.CC_LS``) on (t - e) b_k. Every
candidate is a vertex of the simplex, so the stack never does worse in held-out R-loss than the
best single candidate, the constant model included. The sum-to-one constraint matters: free
non-negative weights summing below 1 (what plain NNLS gave, sums 0.55-0.95 on the simulator)
scale the well-estimated class average effects towards zero together with the heterogeneity,
which biased the benefit and broke the interval coverage; shrinking heterogeneity is still
possible through the constant model's weight.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from predict.learner_model import BETWEEN_MIXTURE
from training.learners.base import BenefitLearner


def comparator_mix(trial: np.ndarray, cls: np.ndarray, active: str, comps: list) -> np.ndarray:
    """(n, C) weights: share of each comparator class among the trial's comparator participants."""
    W = np.zeros((trial.size, len(comps)))
    for t in np.unique(trial):
        m = trial == t
        counts = np.array([(cls[m] == c).sum() for c in comps], float)
        if counts.sum():
            W[m] = counts / counts.sum()
    return W


def mix_benefit(benefit: dict, W: np.ndarray, comps: list) -> np.ndarray:
    return sum(W[:, i] * np.nan_to_num(np.asarray(benefit[c], float)) for i, c in enumerate(comps))


def r_loss_parts(g: np.ndarray, treat: np.ndarray, trial: np.ndarray, e: np.ndarray,
                 prog: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(g - m(x), t - e, mask of rows in trials with a comparator)."""
    gt = np.full(g.size, np.nan)
    ok = np.isfinite(e)
    for t in np.unique(trial[ok]):
        m = (trial == t) & ok
        Z = np.ones((m.sum(), 1)) if prog is None else np.column_stack([np.ones(m.sum()), prog[m]])
        coef, *_ = np.linalg.lstsq(Z, g[m], rcond=None)
        gt[m] = g[m] - Z @ coef
    return gt, treat - e, ok


def r_loss(b_mix: np.ndarray, g: np.ndarray, treat: np.ndarray, trial: np.ndarray, e: np.ndarray,
           prog: np.ndarray | None = None, by_trial: bool = False):
    """Mean R-loss over rows of trials with a comparator (or per trial with ``by_trial``)."""
    gt, tt, ok = r_loss_parts(g, treat, trial, e, prog)
    res = (gt - tt * b_mix) ** 2
    if by_trial:
        return pd.Series(res[ok]).groupby(trial[ok]).mean()
    return float(np.mean(res[ok]))


def stack_weights(b_mix: np.ndarray, g: np.ndarray, treat: np.ndarray, trial: np.ndarray, e: np.ndarray,
                  prog: np.ndarray | None = None) -> np.ndarray:
    """Convex weights (>= 0, sum 1) over candidate columns of ``b_mix`` (n, K) minimising the
    R-loss: least squares of (g - m) on (t - e) b_k over the simplex, solved exactly by
    enumerating the supports (K is a handful of learners): on each support the
    equality-constrained least squares has a closed form (KKT system); the best feasible one wins."""
    gt, tt, ok = r_loss_parts(g, treat, trial, e, prog)
    A = tt[ok, None] * np.asarray(b_mix, float)[ok]
    r = gt[ok]
    K = A.shape[1]
    scale = max(float(np.mean(A ** 2)), 1e-300)
    G, h = A.T @ A / scale, A.T @ r / scale
    best_w, best_loss = None, np.inf
    for size in range(1, K + 1):
        for S in combinations(range(K), size):
            S = list(S)
            kkt = np.zeros((size + 1, size + 1))
            kkt[:size, :size] = 2 * G[np.ix_(S, S)]
            kkt[:size, size] = kkt[size, :size] = 1.0
            try:
                sol = np.linalg.solve(kkt, np.append(2 * h[S], 1.0))
            except np.linalg.LinAlgError:
                continue
            if (sol[:size] < -1e-12).any():
                continue
            w = np.zeros(K)
            w[S] = np.clip(sol[:size], 0.0, None)
            w /= w.sum()
            val = float(w @ G @ w - 2 * h @ w)
            if best_w is None or val < best_loss - 1e-12 * abs(best_loss):
                best_w, best_loss = w, val
    return best_w


def member_corr_field(corr: dict | None, comps: list, K: int) -> dict:
    """The export's ``interval.member_corr`` ({comparator: K x K nested list}) for the comparators that
    have one, or {} (absent: the members' SEs added, as every stack before session 13)."""
    if not corr:
        return {}
    out = {}
    for c in comps:
        if c in corr:
            R = np.asarray(corr[c], float)
            if R.shape != (K, K) or not np.allclose(np.diag(R), 1.0) or not np.allclose(R, R.T):
                raise ValueError(f"member correlation for {c!r}: not a symmetric {K} x {K} correlation matrix")
            out[c] = [[float(v) for v in row] for row in R]
    return {"member_corr": out} if out else {}


class StackedLearner(BenefitLearner):
    """A fixed non-negative combination of learners (weights from IECV predictions):
    benefit = sum_k w_k b_k(x); expected outcome under the active class = weighted mean of the
    members' (normalised weights); SE^2 = sum_jk w_j w_k rho_jk SE_j SE_k + sum_k v_k (b_k(x) -
    sum_j v_j b_j(x))^2 (v = w normalised: the members' disagreement, the model-averaging variance;
    ``interval.between`` "mixture", scored by ``predict.uncertainty.between_variance``). rho: the
    members' estimation-error correlation per comparator (``member_corr``, from the IECV folds'
    leave-one-trial-out refits, ``training.learners.member_corr``; exported as
    ``interval.member_corr``); without it rho = 1, i.e. SE_within = sum_k w_k SE_k (the members
    treated as perfectly correlated: the largest variance any correlation allows, the rule of every
    stack before session 13). tau = weighted mean of members' tau.

    ``fit(X, y)`` fits a clone of every member on the data and combines them;
    :meth:`from_fitted` combines learners that are already fitted (training's final fits)."""

    kind = "stacked"
    #: the export's ``interval.between`` rule (None: the members' SEs only, no disagreement term); a class
    #: attribute so a benchmark can switch it for every stack ``train`` builds (s12v)
    between_rule = BETWEEN_MIXTURE

    def __init__(self, learners: list, weights, names: list | None = None, member_corr: dict | None = None):
        self.learners = learners
        self.weights = weights
        self.names = names
        self.member_corr = member_corr

    def fit(self, X, y) -> "StackedLearner":
        """Fit a clone of every member on ``X, y`` (one shared cross-fit cache for the boosted
        members, as in training) and combine them with the fixed weights."""
        from sklearn.base import clone

        from training.learners.boosted import CrossFitCache, accepts_crossfit_cache

        cache = CrossFitCache()
        fitted = []
        for lr in self.learners:
            member = clone(lr)
            fitted.append(member.fit(X, y, crossfit_cache=cache) if accepts_crossfit_cache(member)
                          else member.fit(X, y))
        return self._combine(fitted)

    @classmethod
    def from_fitted(cls, learners: list, weights, names: list | None = None,
                    member_corr: dict | None = None) -> "StackedLearner":
        """The stack of already fitted ``learners`` (not refitted); ``member_corr``: {comparator: K x K
        correlation of the members' estimation errors} (None: perfectly correlated)."""
        return cls(learners, weights, names, member_corr)._combine(list(learners))

    def _combine(self, fitted: list) -> "StackedLearner":
        exps = [lr.to_export() for lr in fitted]
        w = [float(v) for v in np.asarray(self.weights, float)]
        first = exps[0]
        comps = first["comparators"]
        for e in exps[1:]:
            if e["comparators"] != comps:
                raise ValueError("stacked learners must share their comparators")
        tau = {c: float(sum(wi * e["interval"]["tau"].get(c, 0.0) for wi, e in zip(w, exps)) / max(sum(w), 1e-12))
               for c in comps}
        self.learners_ = fitted
        self.export_ = {
            "format": first["format"], "version": first["version"], "kind": "stacked",
            "outcome_type": first["outcome_type"], "active": first["active"], "comparators": comps,
            "unavailable": first.get("unavailable", []), "features": first["features"],
            "imputer": first["imputer"],
            "members": {"weights": w, "names": self.names or [e["kind"] for e in exps], "exports": exps},
            # SE = the members' SEs combined (sqrt(s' R s), R = member_corr or all ones) and the members' disagreement
            # (model-averaging variance, predict.uncertainty.between_variance) under the root
            "interval": {"method": "stack", "tau": tau, "between": type(self).between_rule,
                         **member_corr_field(self.member_corr, comps, len(exps))},
            # the extrapolation check of the heaviest member (predict.support)
            "support": exps[int(np.argmax(w))].get("support", {"method": "none", "features": []}),
            "meta": {**first.get("meta", {}), "stack_weights": dict(zip(self.names or [e["kind"] for e in exps], w))},
        }
        return self
