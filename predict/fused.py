"""One compiled kernel that scores every task of a model for a block of patients (numba, nogil).

It evaluates the program built by :mod:`predict.program` (flat arrays describing each task's
imputer, learners, stack weights and interval models) and computes, per task and patient, what
:func:`predict.reference.task_scores` computes: the expected outcome under exercise and under the
comparator, the benefit, its estimation SE, the variance of the benefit over the conditional draws
of the patient's missing features, and the per-arm SEs and draw variances. Same estimands, same
draws, same arithmetic up to floating-point summation order (tests compare the two paths).

Why one kernel: numpy per learner spends a patient's time in call overhead. Draws are built one at a
time, each tree is walked once per patient to its first split on a missing feature, and a linear
predictor moves on a draw only through the columns of missing features (a product's: either of two).

Output ``out`` (17, T, n): exercise, comparator, benefit, se_est, var_missing (benefit), arm SE
exercise, arm SE comparator, draw variance exercise, draw variance comparator (these four NaN where
the task has no per-arm uncertainty or ``arms`` is False; a stack's se_est with its members' disagreement
as predict.uncertainty.estimation_se; binary: a single logistic learner's arm SEs
on the logit scale, a stack's or tree learner's on the probability scale, as
``predict.arm_intervals.binary_parts`` uses them); then the intervals the scorer
reports, from the same arithmetic as ``Scorer._compute``: the benefit's CI and prediction
interval (SE = sqrt(se_est^2 + var_missing), the PI adds the task's tau; clipped to +-lim) and
the per-arm CIs (sqrt(arm SE^2 + draw variance), clipped to 0-100; NaN without arms; continuous
outcomes only: binary ones are formed on the logit scale by ``arm_intervals.binary_parts_from``).
"""
from __future__ import annotations

import numpy as np

from predict.fused_blocks import block_draws, block_point
from predict.fused_steps import (FASTMATH, LANES, between, combine, draw_value, forest_point, intervals, tree_x, var,
                                 varmodel_se)
from predict.kernels import lgb_step, mask_walk, njit


# Helpers are compiled separately (LLVM may still inline them), called per forest, block or leaf (never
# per tree node: reference counting negligible); pasting them in at numba's IR level compiled slower.
_compiled = njit(fastmath=FASTMATH)

# leaf table columns (int): see predict/program.py, which fills them
K_KIND, K_LINK, K_PROG, K_MOD, K_THETA, K_K, K_C, K_D, K_NPROG, K_NMOD, K_FA, K_FB, K_TREEIN, K_NUIS, \
    K_IV, K_V, K_VM, K_ARM, K_AVA, K_AVC, K_DES, K_CONT, K_ROLE = range(23)
N_LEAF_INT = 23
KIND_LIN, KIND_T, KIND_XDR = 0, 1, 2
IV_DELTA, IV_VARMODEL, IV_NONE = 0, 1, 2
# task table columns (int)
# (members leaves.member[T_L0:T_L1]; evaluation order leaves.order[T_O0:T_O1]: each member after its X/DR nuisance;
# T_STACKED: 0 one learner, 1 a stack (members' SEs), 2 a stack whose SE adds its members' disagreement;
# T_CORR: 1 = the stack's member SEs combined by their error correlation, leaves.corr[m, m2 - T_L0] (interval.member_corr);
# 0 = added (perfect correlation)
T_L0, T_L1, T_STACKED, T_CONT, T_ARMS, T_M, T_IMP, T_O0, T_O1, T_CORR = range(10)
N_TASK_INT = 10
# output rows (predict/fused_steps.py, which writes the intervals into them)
from predict.fused_steps import (N_OUT, O_A, O_B, O_C, O_CIHI, O_CILO, O_CPHI, O_CPLO, O_EXHI, O_EXLO,  # noqa: E402,F401
                                 O_PIHI, O_PILO, O_SE, O_SEA, O_SEC, O_VA, O_VAR, O_VC)


@_compiled
def _expit(x):
    if x < -40.0:
        x = -40.0
    elif x > 40.0:
        x = 40.0
    return 1.0 / (1.0 + np.exp(-x))


@_compiled
def _mean(eta, link):
    return _expit(eta) if link == 1 else eta


@_compiled
def _forest_draws(f, xo, XT, M, miss, forests, FD, snode, smask):
    """FD[f, :M] = the forest's raw score on each draw (column d of XT, p x M). Each tree is walked
    once on the draw-invariant values xo to its first split on a missing feature (or to a leaf,
    shared by all draws); from there all draws go down together (predict.kernels.mask_walk). Draws
    are complete (no NaN): a split is x <= threshold, except that a forest with missing type
    Zero sends zeros the missing way (such forests walk each draw separately)."""
    forest_zero, forest_trees, root, node_feature = forests.zero, forests.trees, forests.root, forests.feature
    threshold = forests.threshold
    missing_type = forests.missing_type
    nan_child = forests.nan_child
    children = forests.children
    leaf_value = forests.leaf_value
    common = 0.0
    for d in range(M):
        FD[f, d] = 0.0
    zero = forest_zero[f] == 1
    full = (np.int64(1) << M) - 1
    for t in range(forest_trees[f, 0], forest_trees[f, 1]):
        node = root[t]
        while node >= 0 and not miss[node_feature[node]]:
            node = lgb_step(xo[node_feature[node]], threshold[node], missing_type[node],
                            nan_child[node], children[2 * node], children[2 * node + 1])
        if node < 0:
            common += leaf_value[-node - 1]
            continue
        if zero or M > 62:
            for d in range(M):
                nd = node
                while nd >= 0:
                    nd = lgb_step(XT[node_feature[nd], d], threshold[nd], missing_type[nd],
                                  nan_child[nd], children[2 * nd], children[2 * nd + 1])
                FD[f, d] += leaf_value[-nd - 1]
            continue
        common += mask_walk(node, M, full, XT, xo, miss, node_feature, threshold, children,
                            leaf_value, FD[f], snode, smask)
    for d in range(M):
        FD[f, d] += common


@_compiled
def _quad(Vm, g, K):
    """g' V g for a dense g (K) and V (K x K)."""
    q = 0.0
    for a in range(K):
        ga = g[a]
        if ga == 0.0:
            continue
        row = Vm[a]
        s = 0.0
        for b in range(K):
            s += row[b] * g[b]
        q += ga * s
    return q


@_compiled
def run(F, inv, A, N, S, r0, r1, arms, z, tasks, imputers, leaves, coefs, columns, forests, max_design_width,
        max_theta, out):
    task_ints, task_floats = tasks.ints, tasks.floats
    leaf_ints, leaf_order, leaf_floats, member_leaf = leaves.ints, leaves.order, leaves.floats, leaves.member
    member_w, member_wn, member_corr = leaves.weight, leaves.weight_norm, leaves.corr
    col_feature = columns.feature
    forest_trees = forests.trees
    imp_mean, imp_lower, imp_upper, imp_binary = imputers.mean, imputers.lower, imputers.upper, imputers.binary
    theta, center, theta_cov, varmodel = coefs.theta, coefs.center, coefs.theta_cov, coefs.varmodel
    design = coefs.design
    p = F.shape[1]
    T = task_ints.shape[0]
    L = leaf_ints.shape[0]
    n_cols = col_feature.shape[0]
    Mmax = N.shape[2]
    cm = np.empty(p)
    sdv = np.zeros(p)
    fimp = np.empty(p)
    xbuf = np.empty(p)
    xo = np.empty(p)
    miss = np.zeros(p, np.bool_)
    v0 = np.empty(max(n_cols, 1))
    Pd = np.empty(max_design_width)
    Md = np.empty(max_design_width)
    g = np.zeros(max(max_theta, 1))
    ea = np.empty(L)
    ec = np.empty(L)
    la = np.empty(L)
    lc = np.empty(L)
    lse = np.empty(L)
    lsa = np.empty(L)
    lsc = np.empty(L)
    XT = np.empty((p, max(Mmax, 1)))
    snode = np.empty(4096, np.int64)
    lanes = np.empty(LANES, np.int64)
    smask = np.empty(4096, np.int64)
    FD = np.empty((max(forest_trees.shape[0], 1), max(Mmax, 1)))
    DP = np.empty((L, max(Mmax, 1)))
    DM = np.empty((L, max(Mmax, 1)))
    lb = np.empty(L)
    da = np.empty(Mmax)
    dc = np.empty(Mmax)
    db = np.empty(Mmax)
    for i in range(r0, r1):
        k = inv[i]
        nmiss = 0
        for j in range(p):
            miss[j] = F[i, j] != F[i, j]
            nmiss += miss[j]
        for t in range(T):
            l0, l1 = task_ints[t, T_L0], task_ints[t, T_L1]
            cont = task_ints[t, T_CONT] == 1
            stacked = task_ints[t, T_STACKED] >= 1
            do_arms = arms and task_ints[t, T_ARMS] == 1
            M = task_ints[t, T_M]
            im = task_ints[t, T_IMP]
            # --- conditional-mean imputation (observed entries kept), bounded
            for j in range(p):
                v = F[i, j]
                if v == v:
                    cm[j] = v
                    continue
                s = imp_mean[im, j]
                for o in range(p):
                    x = F[i, o]
                    if x == x:
                        s += (x - imp_mean[im, o]) * A[k, t, o, j]
                cm[j] = s
            for j in range(p):
                v = cm[j]
                if v < imp_lower[im, j]:
                    v = imp_lower[im, j]
                elif v > imp_upper[im, j]:
                    v = imp_upper[im, j]
                fimp[j] = v
            for j in range(p):
                s2 = S[k, t, j, j] if miss[j] else 0.0
                sdv[j] = np.sqrt(s2) if s2 > 0.0 else 0.0
            Sk = S[k, t]
            lo_t, hi_t = imp_lower[im], imp_upper[im]
            # --- point predictions and SEs of every leaf this task uses (members and nuisances)
            for q in range(task_ints[t, T_O0], task_ints[t, T_O1]):
                l = leaf_order[q]
                kind = leaf_ints[l, K_KIND]
                if kind == KIND_XDR:
                    nu = leaf_ints[l, K_NUIS]
                    nat = leaf_ints[l, K_TREEIN] == 0
                    fa_ = leaf_ints[l, K_FA]
                    h = forest_point(fa_, tree_x(fa_, F[i], fimp, nat, forests, xbuf), forests, lanes)
                    if leaf_ints[l, K_FB] >= 0:
                        fb_ = leaf_ints[l, K_FB]
                        h = (leaf_floats[l, 1] * h + leaf_floats[l, 2]
                             * forest_point(fb_, tree_x(fb_, F[i], fimp, nat, forests, xbuf), forests, lanes))
                    bc = leaf_floats[l, 0] + h
                    a = la[nu]
                    la[l] = a
                    if leaf_ints[l, K_CONT] == 1:
                        lc[l] = a + bc
                    else:
                        c = a - bc
                        lc[l] = 0.0 if c < 0.0 else (1.0 if c > 1.0 else c)
                else:
                    off = leaf_ints[l, K_THETA]
                    C = leaf_ints[l, K_C]
                    npg, nmd = leaf_ints[l, K_NPROG], leaf_ints[l, K_NMOD]
                    Kt = leaf_ints[l, K_K]
                    base = theta[off]
                    if leaf_ints[l, K_PROG] >= 0:
                        block_point(leaf_ints[l, K_PROG], fimp, columns, center, v0, Pd, miss, cm, sdv, Sk, lo_t, hi_t)
                        s = 0.0
                        for j in range(npg):
                            s += Pd[j] * theta[off + 1 + C + j]
                        base += s
                    eta_a = base
                    if leaf_ints[l, K_MOD] >= 0:
                        block_point(leaf_ints[l, K_MOD], fimp, columns, center, v0, Md, miss, cm, sdv, Sk, lo_t, hi_t)
                        s = 0.0
                        for j in range(nmd):
                            s += Md[j] * theta[off + Kt - nmd + j]
                        eta_a = base + s
                    eta_c = base + theta[off + leaf_ints[l, K_D]]
                    ea[l] = eta_a
                    ec[l] = eta_c
                    link = leaf_ints[l, K_LINK]
                    if kind == KIND_T:
                        nat = leaf_ints[l, K_TREEIN] == 0
                        fa_ = leaf_ints[l, K_FA]
                        fa = forest_point(fa_, tree_x(fa_, F[i], fimp, nat, forests, xbuf), forests, lanes)
                        la[l] = _mean(eta_a + fa, link)
                        if leaf_ints[l, K_FB] >= 0:
                            fb_ = leaf_ints[l, K_FB]
                            lc[l] = _mean(eta_c + forest_point(fb_, tree_x(fb_, F[i], fimp, nat, forests, xbuf),
                                                               forests, lanes), link)
                        else:
                            lc[l] = np.nan
                    else:
                        la[l] = _mean(eta_a, link)
                        lc[l] = _mean(eta_c, link)
                    if leaf_ints[l, K_IV] == IV_DELTA:
                        d = leaf_ints[l, K_D]
                        Vm = theta_cov[leaf_ints[l, K_V]:leaf_ints[l, K_V] + Kt * Kt].reshape((Kt, Kt))
                        # gradients as dense K-vectors: the quadratic forms vectorise
                        for j in range(Kt):
                            g[j] = 0.0
                        if link == 0:  # benefit = e_d - [0.., M]
                            g[d] = 1.0
                            for j in range(nmd):
                                g[Kt - nmd + j] = -Md[j]
                        else:
                            pa, pc = _expit(eta_a), _expit(eta_c)
                            wa, wc = pa * (1 - pa), pc * (1 - pc)
                            g[0] = wa - wc
                            g[d] = -wc
                            for j in range(npg):
                                g[1 + C + j] = (wa - wc) * Pd[j]
                            for j in range(nmd):
                                g[Kt - nmd + j] = wa * Md[j]
                        q = _quad(Vm, g, Kt)
                        lse[l] = np.sqrt(q if q > 0.0 else 0.0)
                        if do_arms and leaf_ints[l, K_ARM] == 1:
                            # exercise: [1, 0.., P, M]; comparator: [1, e_d, P, 0]
                            for j in range(Kt):
                                g[j] = 0.0
                            g[0] = 1.0
                            for j in range(npg):
                                g[1 + C + j] = Pd[j]
                            for j in range(nmd):
                                g[Kt - nmd + j] = Md[j]
                            q = _quad(Vm, g, Kt)
                            lsa[l] = np.sqrt(q if q > 0.0 else 0.0)
                            for j in range(nmd):
                                g[Kt - nmd + j] = 0.0
                            g[d] = 1.0
                            q = _quad(Vm, g, Kt)
                            lsc[l] = np.sqrt(q if q > 0.0 else 0.0)
                if leaf_ints[l, K_IV] == IV_VARMODEL:
                    do = leaf_ints[l, K_DES]
                    lse[l] = varmodel_se(varmodel, leaf_ints[l, K_VM], design, do, fimp, miss, p)
                    if do_arms and leaf_ints[l, K_ARM] == 1:
                        lsa[l] = varmodel_se(varmodel, leaf_ints[l, K_AVA], design, do, fimp, miss, p)
                        lsc[l] = varmodel_se(varmodel, leaf_ints[l, K_AVC], design, do, fimp, miss, p)
            # --- combine the members (stack) into the task's numbers
            if stacked:
                se = 0.0
                for m in range(l0, l1):
                    lm = member_leaf[m]
                    lb[lm] = (lc[lm] - la[lm]) if leaf_ints[lm, K_CONT] == 1 else (la[lm] - lc[lm])
                    se += member_w[m] * lse[lm]
                if task_ints[t, T_CORR] == 1:  # interval.member_corr: sqrt(s' R s), s_m = w_m SE_m
                    q = 0.0
                    for m in range(l0, l1):
                        sm = member_w[m] * lse[member_leaf[m]]
                        for m2 in range(l0, l1):
                            q += sm * member_corr[m, m2 - l0] * member_w[m2] * lse[member_leaf[m2]]
                    se = np.sqrt(q if q > 0.0 else 0.0)
                aval, cval = combine(l0, l1, leaves, la, lb, cont)
                vbw = between(l0, l1, leaves, lb) if task_ints[t, T_STACKED] == 2 else 0.0  # interval.between
                se = np.sqrt(se * se + vbw) if vbw > 0.0 else se
                if do_arms:
                    sa = 0.0
                    sc = 0.0
                    for m in range(l0, l1):
                        lm = member_leaf[m]
                        fa = 1.0
                        fc = 1.0
                        if leaf_ints[lm, K_LINK] == 1 and leaf_ints[lm, K_IV] == IV_DELTA:
                            # a logistic member's SE on the probability scale: p(1-p) x logit-scale SE
                            fa = la[lm] * (1.0 - la[lm])
                            fc = lc[lm] * (1.0 - lc[lm])
                        sa += abs(member_wn[m]) * fa * lsa[lm]
                        sc += abs(member_wn[m] - member_w[m]) * fa * lsa[lm] + abs(member_w[m]) * fc * lsc[lm]
                    out[O_SEA, t, i] = sa
                    out[O_SEC, t, i] = sc
            else:
                lm = member_leaf[l0]
                aval = la[lm]
                cval = lc[lm]
                se = lse[lm]
                if do_arms:
                    out[O_SEA, t, i] = lsa[lm]
                    out[O_SEC, t, i] = lsc[lm]
            if not do_arms:
                out[O_SEA, t, i] = np.nan
                out[O_SEC, t, i] = np.nan
                out[O_VA, t, i] = np.nan
                out[O_VC, t, i] = np.nan
            out[O_A, t, i] = aval
            out[O_C, t, i] = cval
            out[O_B, t, i] = (cval - aval) if cont else (aval - cval)
            out[O_SE, t, i] = se
            if nmiss == 0 or M < 2:
                out[O_VAR, t, i] = 0.0
                if do_arms:
                    out[O_VA, t, i] = 0.0
                    out[O_VC, t, i] = 0.0
                intervals(out, t, i, z, task_floats[t, 0], task_floats[t, 1], do_arms)
                continue
            # --- the conditional draws (M x p), built once per patient and task
            for j in range(p):
                xo[j] = draw_value(cm[j], imp_binary[im, j], imp_lower[im, j], imp_upper[im, j])
            for d in range(M):
                for j in range(p):
                    if miss[j]:
                        XT[j, d] = draw_value(cm[j] + N[k, t, d, j], imp_binary[im, j], imp_lower[im, j],
                                              imp_upper[im, j])
                    else:
                        XT[j, d] = xo[j]
            # the exercise arm's level is needed on the draws only for the arms' variances and for
            # binary outcomes; otherwise the benefit alone (prognostic terms and X/DR nuisances cancel)
            need_a = do_arms or not cont
            for q in range(task_ints[t, T_O0], task_ints[t, T_O1]):
                l = leaf_order[q]
                if leaf_ints[l, K_ROLE] == 1 and not need_a:  # an X/DR nuisance: only the exercise level
                    continue
                for which in range(2):
                    f = leaf_ints[l, K_FA] if which == 0 else leaf_ints[l, K_FB]
                    if f < 0:
                        continue
                    _forest_draws(f, xo, XT, M, miss, forests, FD, snode, smask)
                if leaf_ints[l, K_KIND] == KIND_XDR:
                    continue
                for d in range(M):
                    DP[l, d] = 0.0
                    DM[l, d] = 0.0
                if leaf_ints[l, K_PROG] >= 0 and (need_a or leaf_ints[l, K_LINK] != 0):
                    block_draws(leaf_ints[l, K_PROG], XT, M, miss, columns, v0, DP[l])
                if leaf_ints[l, K_MOD] >= 0:
                    block_draws(leaf_ints[l, K_MOD], XT, M, miss, columns, v0, DM[l])
            for d in range(M):
                for q in range(task_ints[t, T_O0], task_ints[t, T_O1]):
                    l = leaf_order[q]
                    if leaf_ints[l, K_ROLE] == 1 and not need_a:
                        continue
                    kind = leaf_ints[l, K_KIND]
                    if kind == KIND_XDR:
                        h = FD[leaf_ints[l, K_FA], d]
                        if leaf_ints[l, K_FB] >= 0:
                            h = leaf_floats[l, 1] * h + leaf_floats[l, 2] * FD[leaf_ints[l, K_FB], d]
                        bc = leaf_floats[l, 0] + h
                        if not need_a:  # continuous: comparator - exercise = bc
                            lb[l] = bc
                            continue
                        a = la[leaf_ints[l, K_NUIS]]
                        la[l] = a
                        if leaf_ints[l, K_CONT] == 1:
                            lc[l] = a + bc
                            lb[l] = lc[l] - a
                        else:
                            c = a - bc
                            lc[l] = 0.0 if c < 0.0 else (1.0 if c > 1.0 else c)
                            lb[l] = a - lc[l]
                        continue
                    link = leaf_ints[l, K_LINK]
                    xa = ea[l] + DP[l, d] + DM[l, d]
                    xc = ec[l] + DP[l, d]
                    if kind == KIND_T:
                        xa += FD[leaf_ints[l, K_FA], d]
                        if leaf_ints[l, K_FB] >= 0:
                            xc += FD[leaf_ints[l, K_FB], d]
                    la[l] = _mean(xa, link)
                    lc[l] = _mean(xc, link)
                    if leaf_ints[l, K_CONT] == 1:
                        lb[l] = lc[l] - la[l]
                    else:
                        lb[l] = la[l] - lc[l]
                if not need_a:  # continuous benefit only
                    if stacked:
                        bsum = 0.0
                        for m in range(l0, l1):
                            bsum += member_w[m] * lb[member_leaf[m]]
                        db[d] = bsum
                    else:
                        db[d] = lb[member_leaf[l0]]
                    continue
                if stacked:
                    aval, cval = combine(l0, l1, leaves, la, lb, cont)
                else:
                    aval = la[member_leaf[l0]]
                    cval = lc[member_leaf[l0]]
                da[d] = aval
                dc[d] = cval
                db[d] = (cval - aval) if cont else (aval - cval)
            out[O_VAR, t, i] = var(db, M)
            if do_arms:
                out[O_VA, t, i] = var(da, M)
                out[O_VC, t, i] = var(dc, M)
            intervals(out, t, i, z, task_floats[t, 0], task_floats[t, 1], do_arms)
