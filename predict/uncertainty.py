"""Uncertainty of a predicted benefit (and of each arm's expected outcome):

- estimation: the trial-cluster bootstrap, by the delta method on the coefficients' covariance
  (linear learners), a log-linear model of the bootstrap variance (tree learners) or the members'
  SEs combined (stacks): :func:`estimation_se`, :func:`arm_se`; a stack's benefit adds the
  members' disagreement, :func:`between_variance` (when its export states the rule);
- missing data: the variance of the prediction over conditional draws of the patient's missing
  features: :func:`missing_variance` (every comparator), :func:`missing_variance_fast` (one),
  :func:`arm_missing_variance` (benefit and both arms in one pass).
"""
from __future__ import annotations

import numpy as np

from predict.evaluate import benefit_from_expected, benefit_only, expected, linear_spread
from predict.expected_basis import Spread
from predict.impute import impute_draws, impute_mean
from predict.learner_model import EffectTreeLearner, Learner, LinearLearner, StackedLearner, TLearner, as_learner
from predict.linear import Linear, block_matrix, linear_eta, linear_parts, theta_split
from predict.numeric import expit, quad


def delta_se(lin: Linear, comparators: list, F: np.ndarray, V: np.ndarray, c: str,
             blocks: tuple | None = None, spread: Spread | None = None) -> np.ndarray:
    """SE of the benefit vs ``c`` by the delta method (same as the gradient form in
    :func:`estimation_se`), building only the needed columns. ``blocks``: V's modifier blocks
    (:attr:`predict.learner_model.Interval.modifier_blocks`), made once at load; ``spread``: the
    rows' missing inputs (:func:`predict.evaluate.linear_spread`: the gradient is the expected basis)."""
    C = len(comparators)
    i = list(comparators).index(c)
    theta, b0, offs, beta, gamma = theta_split(lin, C)
    sp = lin.spread_of(spread)
    M = block_matrix(lin.modifier, F, spread=sp)
    n = F.shape[0]
    d = 1 + i
    if lin.link == "identity":
        # G = grad_c - grad_active = e_d - [0, .., M]
        q = np.full(n, V[d, d])
        if gamma.size:
            if blocks is None:
                mod = np.arange(theta.size - gamma.size, theta.size)
                blocks = (tuple(V[mod, 1 + j] for j in range(C)), V[np.ix_(mod, mod)])
            q = q - 2 * (M @ blocks[0][i]) + quad(M, blocks[1])
        return np.sqrt(q.clip(0))
    mod = np.arange(theta.size - gamma.size, theta.size)
    eta = linear_eta(lin, comparators, F, sp)
    pa, pc = expit(eta["__active__"]), expit(eta[c])
    wa, wc = pa * (1 - pa), pc * (1 - pc)
    P = block_matrix(lin.prog, F, centred=False, spread=sp)
    G = np.zeros((n, theta.size))
    G[:, 0] = wa - wc
    G[:, d] = -wc
    G[:, 1 + C: 1 + C + beta.size] = (wa - wc)[:, None] * P
    if gamma.size:
        G[:, mod] = wa[:, None] * M
    return np.sqrt(quad(G, V).clip(0))


def _arm_se_trees(L: Learner, Fimp: np.ndarray, comparator: str, F: np.ndarray | None):
    """Tree learners: the bootstrap variance model per arm (``interval.arm_varmodel``, artifacts
    from 2026-11-22 on); None without it or without the raw features F."""
    iv = L.interval
    arm_vm = None if iv is None else iv.arm_varmodel
    if arm_vm is None or iv.method != "varmodel" or comparator not in arm_vm or F is None:
        return None
    U = varmodel_design(L, F, Fimp)
    return tuple(np.sqrt(np.exp(U @ arm_vm[k])) for k in ("__active__", comparator))


def _arm_se_linear(L: LinearLearner, Fimp: np.ndarray, comparator: str, F: np.ndarray | None):
    """A linear learner with identity link: the delta method on the bootstrap covariance."""
    lin = L.linear
    if lin.link != "identity" or L.interval is None or L.interval.method != "delta":
        return None
    comps = list(L.comparators)
    V = L.interval.theta_cov
    sp = None if F is None else linear_spread(L, F)
    P = block_matrix(lin.prog, Fimp, centred=False, spread=sp)
    M = block_matrix(lin.modifier, Fimp, spread=sp)
    n, C = Fimp.shape[0], len(comps)
    if V.shape[0] != 1 + C + P.shape[1] + M.shape[1]:  # unexpected layout: the general form
        _, grad = linear_parts(lin, comps, Fimp, sp)
        return tuple(np.sqrt(quad(grad[k], V).clip(0)) for k in ("__active__", comparator))
    # the gradients of linear_parts for the two classes only
    g_a = np.zeros((n, V.shape[0]))
    g_a[:, 0] = 1.0
    g_a[:, 1 + C: 1 + C + P.shape[1]] = P
    g_a[:, 1 + C + P.shape[1]:] = M
    g_c = g_a.copy()
    g_c[:, 1 + C + P.shape[1]:] = 0.0
    g_c[:, 1 + comps.index(comparator)] = 1.0
    return tuple(np.sqrt(quad(g, V).clip(0)) for g in (g_a, g_c))


def _arm_se_stacked(L: StackedLearner, Fimp: np.ndarray, comparator: str, F: np.ndarray | None):
    """A stack: its members' SEs added with the stack's coefficients (perfect correlation)."""
    w, wn = L.weights, L.weights_normalised
    parts = [_ARM_SE[type(e)](e, Fimp, comparator, F) for e in L.members]
    if any(p is None for p in parts):
        return None
    # stack: active = sum wn_i a_i; comparator = active + sum w_i (c_i - a_i)
    se_a = sum(abs(a) * p[0] for a, p in zip(wn, parts))
    se_c = sum(abs(a - b) * p[0] + abs(b) * p[1] for a, b, p in zip(wn, w, parts))
    return se_a, se_c


_ARM_SE = {LinearLearner: _arm_se_linear, TLearner: _arm_se_trees, EffectTreeLearner: _arm_se_trees,
           StackedLearner: _arm_se_stacked}


def arm_se(exp: Learner | dict, Fimp: np.ndarray, comparator: str, F: np.ndarray | None = None):
    """(SE under exercise, SE under ``comparator``) of the expected continuous outcome from
    estimation: the trial-cluster bootstrap covariance by the delta method (linear learners) or
    the bootstrap's per-arm variance model (tree learners); None where the learner has no per-arm
    uncertainty (tree learners exported before the per-arm model; binary outcomes). A stack adds
    its members' SEs with the stack's coefficients
    (perfect correlation: conservative), as for the benefit. ``F``: the raw features (NaN =
    missing), needed for the tree learners' variance models."""
    L = as_learner(exp)
    if not L.continuous:
        return None
    return _ARM_SE[type(L)](L, Fimp, comparator, F)


def missing_draws(exp: Learner, F: np.ndarray):
    """The conditional draws of the missing features of the rows of F that have any, flattened:
    (which rows, draws (M * n, p) or None when no row has a missing feature, M, n). Every
    missing-data variance below is the variance over these draws (ddof 1; 0 with one draw)."""
    rows = np.isnan(F).any(axis=1)
    if not rows.any():
        return rows, None, 0, 0
    D = impute_draws(exp.imputer, F[rows])
    M, n, p = D.shape
    return rows, D.reshape(M * n, p), M, n


def _draw_var(values: np.ndarray, M: int, n: int):
    return values.reshape(M, n).var(axis=0, ddof=1) if M > 1 else 0.0


def arm_missing_variance(exp: Learner | dict, F: np.ndarray, comparator: str):
    """One pass over the conditional draws of the patient's missing features: the variance of
    the benefit (comparator - exercise, continuous outcomes; as :func:`missing_variance_fast`, up
    to floating-point rounding) and of the expected outcome under each arm (0 for complete rows).
    Returns (var benefit, var exercise, var comparator)."""
    exp = as_learner(exp)
    vb, va, vc = np.zeros(F.shape[0]), np.zeros(F.shape[0]), np.zeros(F.shape[0])
    miss, flat, M, n = missing_draws(exp, F)
    if flat is None or M < 2:
        return vb, va, vc
    ex = expected(exp, flat, flat)
    a, c = ex["__active__"], ex[comparator]
    vb[miss], va[miss], vc[miss] = _draw_var(c - a, M, n), _draw_var(a, M, n), _draw_var(c, M, n)
    return vb, va, vc


def missing_variance_fast(exp: Learner | dict, F: np.ndarray, comparator: str) -> np.ndarray:
    """:func:`missing_variance` for one comparator through :func:`benefit_only` (same draws;
    equal up to floating-point rounding)."""
    exp = as_learner(exp)
    out = np.zeros(F.shape[0])
    miss, flat, M, n = missing_draws(exp, F)
    if flat is not None:
        out[miss] = _draw_var(benefit_only(exp, flat, flat, comparator), M, n)
    return out


def missing_variance(exp: Learner | dict, F: np.ndarray, comparators: list | None = None) -> dict:
    """Per comparator, the variance of the predicted benefit over conditional draws of the
    patient's missing features (0 for complete rows): the information lost by not knowing them.
    ``comparators``: only these (default all)."""
    exp = as_learner(exp)
    comps = exp.comparators if comparators is None else list(comparators)
    out = {c: np.zeros(F.shape[0]) for c in comps}
    miss, flat, M, n = missing_draws(exp, F)
    if flat is not None:
        ben = benefit_from_expected(exp, expected(exp, flat, flat))
        for c in comps:
            out[c][miss] = _draw_var(ben[c], M, n)
    return out


def estimation_se(exp: Learner | dict, F: np.ndarray, Fimp: np.ndarray | None = None,
                  comparators: list | None = None) -> dict:
    """Per comparator, the SE of the predicted benefit from the trial-cluster bootstrap
    (delta method on the bootstrap covariance for linear kinds; the stored variance model for
    tree kinds; for a stack the members' SEs combined by their error correlation R,
    sqrt(sum_jk R_jk w_j SE_j w_k SE_k) (:func:`stack_within_se`; without ``interval.member_corr``
    R = all ones: the weighted sum of member SEs, i.e. perfectly correlated), and with the stack's
    ``interval.between`` rule its square plus :func:`between_variance` under the root)."""
    L = as_learner(exp)
    iv = L.interval
    comps = L.comparators if comparators is None else list(comparators)
    if Fimp is None:
        Fimp = impute_mean(L.imputer, F)
    if iv.method == "delta":
        sp = linear_spread(L, F) if isinstance(L, LinearLearner) else None
        return {c: delta_se(L.linear, L.comparators, Fimp, iv.theta_cov, c, iv.modifier_blocks, sp) for c in comps}
    if iv.method == "varmodel":
        U = varmodel_design(L, F, Fimp)
        return {c: np.sqrt(np.exp(U @ iv.varmodel[c])) for c in comps}
    if iv.method == "stack":
        ses = [estimation_se(e, F, Fimp, comps) for e in L.members]
        within = {c: stack_within_se(L.weights, [s[c] for s in ses], (iv.member_corr or {}).get(c)) for c in comps}
        if iv.between is None:  # artifacts before 2026-12-07: the members' SEs only, as they were scored
            return within
        vb = between_variance(L, F, Fimp, comps)
        return {c: np.where(vb[c] > 0, np.sqrt(within[c] ** 2 + vb[c]), within[c]) for c in comps}
    raise ValueError(f"unknown interval method {iv.method!r}")


def stack_within_se(weights, ses: list, R: np.ndarray | None) -> np.ndarray:
    """sqrt(s' R s) per patient, s_k = w_k SE_k: a stack's members' estimation SEs combined with their
    error correlation R (``interval.member_corr``); R None: sum_k s_k (perfect correlation, computed
    as that sum so older artifacts score bit for bit as before)."""
    if R is None:
        return sum(w * s for w, s in zip(weights, ses))
    S = np.column_stack([w * np.asarray(s, float) for w, s in zip(weights, ses)])
    q = np.einsum("ij,jk,ik->i", S, np.asarray(R, float), S)
    return np.sqrt(np.clip(q, 0.0, None))


def between_variance(exp: Learner | dict, F: np.ndarray, Fimp: np.ndarray | None = None,
                     comparators: list | None = None) -> dict:
    """Per comparator, the model-averaging variance of a stack's benefit: the weighted variance of
    its members' point benefits for each patient, sum_k v_k (b_k - sum_j v_j b_j)^2 with v the
    weights normalised to sum 1 (the between-model part of the law of total variance for a
    mixture; Buckland, Burnham & Augustin 1997, Hoeting et al. 1999). Zero for a single learner and
    where the members agree. Members disagree most where they extrapolate differently (trees flat,
    linear models on), so the interval then says so. Added to the square of the within-member SE
    by :func:`estimation_se` (both the CI and, through it, the PI)."""
    L = as_learner(exp)
    comps = L.comparators if comparators is None else list(comparators)
    w, members = L.stack
    if len(members) < 2 or L is members[0]:
        return {c: np.zeros(F.shape[0]) for c in comps}
    if Fimp is None:
        Fimp = impute_mean(L.imputer, F)
    v = L.weights_normalised
    out = {}
    for c in comps:
        b = [benefit_only(e, F, Fimp, c) for e in members]
        # the pairwise form sum_{j<k} v_j v_k (b_j - b_k)^2 (equal, as sum v = 1): exactly 0 where members agree
        q = np.zeros(F.shape[0])
        for j in range(len(b)):
            for k in range(j + 1, len(b)):
                q = q + v[j] * v[k] * (b[j] - b[k]) ** 2
        out[c] = q
    return out


def varmodel_design(exp: Learner | dict, F: np.ndarray, Fimp: np.ndarray) -> np.ndarray:
    """[1, standardised imputed features, missing indicators] for the bootstrap-variance model."""
    if isinstance(exp, Learner):
        loc, scale = exp.interval.design_loc, exp.interval.design_scale
    else:  # an export (training builds the variance model from it)
        des = exp["interval"]["design"]
        loc, scale = np.asarray(des["loc"], float), np.asarray(des["scale"], float)
    Z = (Fimp - loc) / scale
    return np.hstack([np.ones((F.shape[0], 1)), Z, np.isnan(F).astype(float)])
