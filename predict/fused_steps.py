"""Per-patient steps of the fused kernel (:func:`predict.fused.run`), compiled with the same
options: a forest's raw score, a conditional draw's value, the variance-model SE, the stack
combination and its members' disagreement, the intervals and the variance over draws."""
from __future__ import annotations

import numpy as np

from predict.kernels import lgb_step, njit

# reassociation and contraction only: reductions (dot products, quadratic forms) may be vectorised;
# NaN and infinity keep their IEEE meaning (missing values are NaN)
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_compiled = njit(fastmath=FASTMATH)
# output rows of the kernel (T tasks x n patients each)
O_A, O_C, O_B, O_SE, O_VAR, O_SEA, O_SEC, O_VA, O_VC, O_CILO, O_CIHI, O_PILO, O_PIHI, O_EXLO, O_EXHI, O_CPLO, \
    O_CPHI = range(17)
N_OUT = 17


@_compiled
def draw_value(v, binary, lo, hi):
    """A drawn (or observed) feature value as the draws hold it: binary features rounded (half to
    even, as numpy.round), then bounded to the imputer's range (as predict.impute.impute_draws forms the draws)."""
    if binary:
        v = np.rint(v)
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


@_compiled
def varmodel_se(varmodel, vo, design, do, fimp, miss, p):
    """sqrt(exp(u'v)) with u = [1, standardised imputed features, missing indicators] and v the
    bootstrap variance model at varmodel[vo:] (predict.uncertainty.varmodel_design)."""
    s = varmodel[vo]
    for j in range(p):
        s += ((fimp[j] - design[do + j]) / design[do + p + j]) * varmodel[vo + 1 + j]
    for j in range(p):
        if miss[j]:
            s += varmodel[vo + 1 + p + j]
    return np.sqrt(np.exp(s))


@_compiled
def combine(l0, l1, leaves, la, lb, cont):
    """A stack's expected outcomes from its members' (la: exercise, lb: benefit, comparator -
    exercise for continuous outcomes, exercise - comparator for binary): exercise = the members'
    mean with normalised weights, comparator = exercise + the weighted benefits (binary: exercise -
    them, clipped to [0, 1]), as predict.runtime forms them."""
    member_leaf, member_wn, member_w = leaves.member, leaves.weight_norm, leaves.weight
    act = 0.0
    bc = 0.0
    for m in range(l0, l1):
        lm = member_leaf[m]
        act += member_wn[m] * la[lm]
        bc += member_w[m] * lb[lm]
    if cont:
        cval = act + bc
    else:
        cval = act - bc
        cval = 0.0 if cval < 0.0 else (1.0 if cval > 1.0 else cval)
    return act, cval


@_compiled
def between(l0, l1, leaves, lb):
    """A stack's model-averaging variance at the patient's point, sum_{j<k} v_j v_k (b_j - b_k)^2 over
    its members' benefits lb (v: the normalised weights), as predict.uncertainty.between_variance."""
    member_leaf, member_wn = leaves.member, leaves.weight_norm
    q = 0.0
    for j in range(l0, l1):
        for k in range(j + 1, l1):
            e = lb[member_leaf[j]] - lb[member_leaf[k]]
            q += member_wn[j] * member_wn[k] * e * e
    return q


@_compiled
def clip(x, lo, hi):
    """np.minimum(np.maximum(x, lo), hi): NaN stays NaN."""
    if x != x:
        return x
    return lo if x < lo else (hi if x > hi else x)


@_compiled
def intervals(out, t, i, z, tau, lim, do_arms):
    b = out[O_B, t, i]
    se = np.sqrt(out[O_SE, t, i] ** 2 + out[O_VAR, t, i])
    sp = np.sqrt(se ** 2 + tau ** 2)
    out[O_CILO, t, i] = clip(b - z * se, -lim, lim)
    out[O_CIHI, t, i] = clip(b + z * se, -lim, lim)
    out[O_PILO, t, i] = clip(b - z * sp, -lim, lim)
    out[O_PIHI, t, i] = clip(b + z * sp, -lim, lim)
    if do_arms:
        sa = np.sqrt(out[O_SEA, t, i] ** 2 + out[O_VA, t, i])
        sc = np.sqrt(out[O_SEC, t, i] ** 2 + out[O_VC, t, i])
        a, c = out[O_A, t, i], out[O_C, t, i]
        out[O_EXLO, t, i] = clip(a - z * sa, 0.0, 100.0)
        out[O_EXHI, t, i] = clip(a + z * sa, 0.0, 100.0)
        out[O_CPLO, t, i] = clip(c - z * sc, 0.0, 100.0)
        out[O_CPHI, t, i] = clip(c + z * sc, 0.0, 100.0)
    else:
        for r in range(O_EXLO, O_CPHI + 1):
            out[r, t, i] = np.nan


@_compiled
def var(a, M):
    s = 0.0
    for d in range(M):
        s += a[d]
    mu = s / M
    q = 0.0
    for d in range(M):
        e = a[d] - mu
        q += e * e
    return q / (M - 1)


LANES = 16  # trees walked side by side by _forest_point


@_compiled
def tree_x(f, xi, fimp, native, forests, buf):
    """What forest f walks for one patient (predict.trees.tree_input): fimp (tree_missing
    "impute"), else the raw features xi with a NaN in a feature the forest never saw missing
    (split with missing type None) replaced by its conditional mean fimp; others stay NaN."""
    if native == 0:
        return fimp
    fill = forests.fill
    for j in range(xi.shape[0]):
        v = xi[j]
        buf[j] = fimp[j] if (v != v and fill[f, j] == 1) else v
    return buf


@_compiled
def forest_point(f, x, forests, lanes):
    """The forest's raw score at x (LightGBM's decision rule; trees summed in order). Forests
    without missing type Zero are walked LANES trees at a time through their lockstep form
    (leaves lead to themselves: a walk of the trees' largest depth ends on every tree's leaf), so
    independent walks overlap instead of one chain of dependent loads at a time."""
    forest_trees, forest_zero, lock_root, depth = forests.trees, forests.zero, forests.lock_root, forests.depth
    lock_feature, lock_nan_child, lock_children, lock_threshold = (forests.lock_feature, forests.lock_nan_child,
                                                                   forests.lock_children, forests.lock_threshold)
    lock_value, root, node_feature, threshold = forests.lock_value, forests.root, forests.feature, forests.threshold
    missing_type, nan_child, children, leaf_value = (forests.missing_type, forests.nan_child, forests.children,
                                                     forests.leaf_value)
    s = 0.0
    t = forest_trees[f, 0]
    t1 = forest_trees[f, 1]
    if forest_zero[f] == 0:
        while t + LANES <= t1:
            dep = 0
            for g in range(LANES):
                lanes[g] = lock_root[t + g]
                if depth[t + g] > dep:
                    dep = depth[t + g]
            for _ in range(dep):
                for g in range(LANES):
                    nd = lanes[g]
                    v = x[lock_feature[nd]]
                    if v != v:
                        lanes[g] = lock_nan_child[nd]
                    else:
                        lanes[g] = lock_children[2 * nd + (v > lock_threshold[nd])]
            for g in range(LANES):
                s += lock_value[lanes[g]]
            t += LANES
        while t < t1:
            nd = lock_root[t]
            for _ in range(depth[t]):
                v = x[lock_feature[nd]]
                if v != v:
                    nd = lock_nan_child[nd]
                else:
                    nd = lock_children[2 * nd + (v > lock_threshold[nd])]
            s += lock_value[nd]
            t += 1
        return s
    for t in range(forest_trees[f, 0], forest_trees[f, 1]):
        node = root[t]
        while node >= 0:
            node = lgb_step(x[node_feature[node]], threshold[node], missing_type[node],
                            nan_child[node], children[2 * node], children[2 * node + 1])
        s += leaf_value[-node - 1]
    return s
