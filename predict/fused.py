"""One compiled kernel that scores every task of a model for a block of patients (numba, nogil).

It evaluates the program built by :mod:`predict.program` (flat arrays describing each task's
imputer, learners, stack weights and interval models) and computes, per task and patient, what
:func:`predict.reference.task_scores` computes: the expected outcome under exercise and under the
comparator, the benefit, its estimation SE, the variance of the benefit over the conditional draws
of the patient's missing features, and the per-arm SEs and draw variances. Same estimands, same
draws, same arithmetic up to floating-point summation order (tests compare the two paths).

Why one kernel: scoring one patient through the per-learner numpy functions spends almost all of
its time in Python and numpy call overhead (nine tasks, thirteen learners, dozens of small arrays
each); here the whole patient is a few thousand floating-point operations. For batches the draws
are built one at a time on the stack instead of as (n, M, p) arrays, each tree is walked once per
patient to its first split on a missing feature, and a linear learner's predictor moves on each
draw only through the basis columns of the missing features (as in :mod:`predict.kernels`).

Output ``out`` (17, T, n): exercise, comparator, benefit, se_est, var_missing (benefit), arm SE
exercise, arm SE comparator, draw variance exercise, draw variance comparator (these four NaN
where the task has no per-arm uncertainty or ``arms`` is False); then the intervals the scorer
reports, from the same arithmetic as ``Scorer._compute``: the benefit's CI and prediction
interval (SE = sqrt(se_est^2 + var_missing), the PI adds the task's tau; clipped to +-lim) and
the per-arm CIs (sqrt(arm SE^2 + draw variance), clipped to 0-100; NaN without arms).
"""
from __future__ import annotations

import numpy as np

from predict.fused_steps import FASTMATH, LANES, combine, draw_value, forest_point, intervals, var, varmodel_se
from predict.kernels import lgb_step, mask_walk, njit




# The kernel and its helpers. Helpers are compiled separately (LLVM may still inline them) and
# called per forest, block or leaf, never per tree node, so the reference counting of their array
# arguments is negligible; pasting them into the kernel at numba's IR level instead made the first
# compilation several times slower for no measurable gain.
_compiled = njit(fastmath=FASTMATH)

# leaf table columns (int): see predict/program.py, which fills them
K_KIND, K_LINK, K_PROG, K_MOD, K_THETA, K_K, K_C, K_D, K_NPROG, K_NMOD, K_FA, K_FB, K_TREEIN, K_NUIS, \
    K_IV, K_V, K_VM, K_ARM, K_AVA, K_AVC, K_DES, K_CONT, K_ROLE = range(23)
N_LEAF_INT = 23
KIND_LIN, KIND_T, KIND_XDR = 0, 1, 2
IV_DELTA, IV_VARMODEL, IV_NONE = 0, 1, 2
# task table columns (int)
# (members MEM[T_L0:T_L1]; evaluation order ORD[T_O0:T_O1]: each member after its X/DR nuisance)
T_L0, T_L1, T_STACKED, T_CONT, T_ARMS, T_M, T_IMP, T_O0, T_O1 = range(9)
N_TASK_INT = 9
# output rows (predict/fused_steps.py, which writes the intervals into them)
from predict.fused_steps import (N_OUT, O_A, O_B, O_C, O_CIHI, O_CILO, O_CPHI, O_CPLO, O_EXHI, O_EXLO,  # noqa: E402,F401
                                 O_PIHI, O_PILO, O_SE, O_SEA, O_SEC, O_VA, O_VAR, O_VC)


@_compiled
def _bval(x, kind, tj, t2, t1, r1, r2, inv_norm, level):
    """A basis column's raw value (before standardisation): linear, RCS term (r1 = c1 / d,
    r2 = c2 / d, inv_norm = 1 / norm: predict.kernels's constants, divided once) or one-hot."""
    if kind == 0:
        return x
    if kind == 1:
        return (_cube(x - tj) - _cube(x - t2) * r1 + _cube(x - t1) * r2) * inv_norm
    return 1.0 if x == level else 0.0


@_compiled
def _cube(v):
    u = v if v > 0.0 else 0.0
    return u * u * u


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
def _forest_draws(f, xo, XT, M, miss, FI, roots, feat, thr, nanch, mtype, ch, leafv, FZ, FD, snode, smask):
    """FD[f, :M] = the forest's raw score on each draw (column d of XT, p x M). Each tree is walked
    once on the draw-invariant values xo to its first split on a missing feature (or to a leaf,
    shared by all draws); from there all draws go down together (predict.kernels.mask_walk). Draws
    are complete (no NaN): a split is x <= threshold, except that a forest with missing type
    Zero sends zeros the missing way (such forests walk each draw separately)."""
    common = 0.0
    for d in range(M):
        FD[f, d] = 0.0
    zero = FZ[f] == 1
    full = (np.int64(1) << M) - 1
    for t in range(FI[f, 0], FI[f, 1]):
        node = roots[t]
        while node >= 0 and not miss[feat[node]]:
            node = lgb_step(xo[feat[node]], thr[node], mtype[node], nanch[node], ch[2 * node], ch[2 * node + 1])
        if node < 0:
            common += leafv[-node - 1]
            continue
        if zero or M > 62:
            for d in range(M):
                nd = node
                while nd >= 0:
                    nd = lgb_step(XT[feat[nd], d], thr[nd], mtype[nd], nanch[nd], ch[2 * nd],
                                  ch[2 * nd + 1])
                FD[f, d] += leafv[-nd - 1]
            continue
        common += mask_walk(node, M, full, XT, xo, miss, feat, thr, ch, leafv, FD[f], snode, smask)
    for d in range(M):
        FD[f, d] += common


@_compiled
def _block_point(b, x, BI, CF, CK, CTJ, CT2, CT1, CR1, CR2, CIN, CLEV, CLOC, CIS, CDEST, CDW, CENTER, v0, dst):
    """Design vector of block b at complete x into dst[:n_design] (centred if the block is), and
    each column's raw basis value into v0 (the reference for the draws' deltas)."""
    nd = BI[b, 2]
    for j in range(nd):
        dst[j] = 0.0
    for k in range(BI[b, 0], BI[b, 1]):
        v = _bval(x[CF[k]], CK[k], CTJ[k], CT2[k], CT1[k], CR1[k], CR2[k], CIN[k], CLEV[k])
        v0[k] = v
        dst[CDEST[k]] += CDW[k] * ((v - CLOC[k]) * CIS[k])
    if BI[b, 3] >= 0:
        for j in range(nd):
            dst[j] -= CENTER[BI[b, 3] + j]


@_compiled
def _block_draws(b, XT, M, miss, BI, CF, CK, CTJ, CT2, CT1, CR1, CR2, CIN, CLEV, CEW, v0, acc):
    """acc[:M] += the change of the block's linear predictor between each draw and the imputed
    point: only the columns of missing features move (v0: their values at the point)."""
    for k in range(BI[b, 0], BI[b, 1]):
        f = CF[k]
        w = CEW[k]
        if not miss[f] or w == 0.0:
            continue
        for d in range(M):
            acc[d] += w * (_bval(XT[f, d], CK[k], CTJ[k], CT2[k], CT1[k], CR1[k], CR2[k], CIN[k], CLEV[k])
                           - v0[k])


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
def run(F, inv, A, N, r0, r1, arms, z, TF, TI, MU, LO, HI, BIN, LI, LF, MEM, ORD, LW, LWN, THETA, VV, VM, DES,
         BI, CF, CK, CTJ, CT2, CT1, CR1, CR2, CIN, CLEV, CLOC, CIS, CDEST, CDW, CEW, CENTER,
         FI, FZ, roots, feat, thr, nanch, mtype, ch, leafv, LD, LR, LFE, LTH, LNA, LCH, LV, max_design, max_K, out):
    p = F.shape[1]
    T = TI.shape[0]
    L = LI.shape[0]
    n_cols = CF.shape[0]
    Mmax = N.shape[2]
    cm = np.empty(p)
    fimp = np.empty(p)
    xo = np.empty(p)
    miss = np.zeros(p, np.bool_)
    v0 = np.empty(max(n_cols, 1))
    Pd = np.empty(max_design)
    Md = np.empty(max_design)
    g = np.zeros(max(max_K, 1))
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
    FD = np.empty((max(FI.shape[0], 1), max(Mmax, 1)))
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
            l0, l1 = TI[t, T_L0], TI[t, T_L1]
            cont = TI[t, T_CONT] == 1
            stacked = TI[t, T_STACKED] == 1
            do_arms = arms and TI[t, T_ARMS] == 1
            M = TI[t, T_M]
            im = TI[t, T_IMP]
            # --- conditional-mean imputation (observed entries kept), bounded
            for j in range(p):
                v = F[i, j]
                if v == v:
                    cm[j] = v
                    continue
                s = MU[im, j]
                for o in range(p):
                    x = F[i, o]
                    if x == x:
                        s += (x - MU[im, o]) * A[k, t, o, j]
                cm[j] = s
            for j in range(p):
                v = cm[j]
                if v < LO[im, j]:
                    v = LO[im, j]
                elif v > HI[im, j]:
                    v = HI[im, j]
                fimp[j] = v
            # --- point predictions and SEs of every leaf this task uses (members and nuisances)
            for q in range(TI[t, T_O0], TI[t, T_O1]):
                l = ORD[q]
                kind = LI[l, K_KIND]
                if kind == KIND_XDR:
                    nu = LI[l, K_NUIS]
                    xt = F[i] if LI[l, K_TREEIN] == 0 else fimp
                    h = forest_point(LI[l, K_FA], xt, FI, FZ, roots, feat, thr, nanch, mtype, ch, leafv, LD, LR,
                                     LFE, LTH, LNA, LCH, LV, lanes)
                    if LI[l, K_FB] >= 0:
                        h = LF[l, 1] * h + LF[l, 2] * forest_point(LI[l, K_FB], xt, FI, FZ, roots, feat, thr,
                                                                  nanch, mtype, ch, leafv, LD, LR, LFE, LTH, LNA,
                                                                  LCH, LV, lanes)
                    bc = LF[l, 0] + h
                    a = la[nu]
                    la[l] = a
                    if LI[l, K_CONT] == 1:
                        lc[l] = a + bc
                    else:
                        c = a - bc
                        lc[l] = 0.0 if c < 0.0 else (1.0 if c > 1.0 else c)
                else:
                    off = LI[l, K_THETA]
                    C = LI[l, K_C]
                    npg, nmd = LI[l, K_NPROG], LI[l, K_NMOD]
                    Kt = LI[l, K_K]
                    base = THETA[off]
                    if LI[l, K_PROG] >= 0:
                        _block_point(LI[l, K_PROG], fimp, BI, CF, CK, CTJ, CT2, CT1, CR1, CR2, CIN, CLEV,
                                     CLOC, CIS, CDEST, CDW, CENTER, v0, Pd)
                        s = 0.0
                        for j in range(npg):
                            s += Pd[j] * THETA[off + 1 + C + j]
                        base += s
                    eta_a = base
                    if LI[l, K_MOD] >= 0:
                        _block_point(LI[l, K_MOD], fimp, BI, CF, CK, CTJ, CT2, CT1, CR1, CR2, CIN, CLEV,
                                     CLOC, CIS, CDEST, CDW, CENTER, v0, Md)
                        s = 0.0
                        for j in range(nmd):
                            s += Md[j] * THETA[off + Kt - nmd + j]
                        eta_a = base + s
                    eta_c = base + THETA[off + LI[l, K_D]]
                    ea[l] = eta_a
                    ec[l] = eta_c
                    link = LI[l, K_LINK]
                    if kind == KIND_T:
                        xt = F[i] if LI[l, K_TREEIN] == 0 else fimp
                        fa = forest_point(LI[l, K_FA], xt, FI, FZ, roots, feat, thr, nanch, mtype, ch, leafv, LD,
                                          LR, LFE, LTH, LNA, LCH, LV, lanes)
                        la[l] = _mean(eta_a + fa, link)
                        if LI[l, K_FB] >= 0:
                            lc[l] = _mean(eta_c + forest_point(LI[l, K_FB], xt, FI, FZ, roots, feat, thr,
                                                                nanch, mtype, ch, leafv, LD, LR, LFE, LTH, LNA, LCH,
                                                                LV, lanes), link)
                        else:
                            lc[l] = np.nan
                    else:
                        la[l] = _mean(eta_a, link)
                        lc[l] = _mean(eta_c, link)
                    if LI[l, K_IV] == IV_DELTA:
                        d = LI[l, K_D]
                        Vm = VV[LI[l, K_V]:LI[l, K_V] + Kt * Kt].reshape((Kt, Kt))
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
                        if do_arms and LI[l, K_ARM] == 1:
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
                if LI[l, K_IV] == IV_VARMODEL:
                    do = LI[l, K_DES]
                    lse[l] = varmodel_se(VM, LI[l, K_VM], DES, do, fimp, miss, p)
                    if do_arms and LI[l, K_ARM] == 1:
                        lsa[l] = varmodel_se(VM, LI[l, K_AVA], DES, do, fimp, miss, p)
                        lsc[l] = varmodel_se(VM, LI[l, K_AVC], DES, do, fimp, miss, p)
            # --- combine the members (stack) into the task's numbers
            if stacked:
                se = 0.0
                for m in range(l0, l1):
                    lm = MEM[m]
                    lb[lm] = (lc[lm] - la[lm]) if LI[lm, K_CONT] == 1 else (la[lm] - lc[lm])
                    se += LW[m] * lse[lm]
                aval, cval = combine(l0, l1, MEM, LW, LWN, la, lb, cont)
                if do_arms:
                    sa = 0.0
                    sc = 0.0
                    for m in range(l0, l1):
                        lm = MEM[m]
                        sa += abs(LWN[m]) * lsa[lm]
                        sc += abs(LWN[m] - LW[m]) * lsa[lm] + abs(LW[m]) * lsc[lm]
                    out[O_SEA, t, i] = sa
                    out[O_SEC, t, i] = sc
            else:
                lm = MEM[l0]
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
                intervals(out, t, i, z, TF[t, 0], TF[t, 1], do_arms)
                continue
            # --- the conditional draws (M x p), built once per patient and task
            for j in range(p):
                xo[j] = draw_value(cm[j], BIN[im, j], LO[im, j], HI[im, j])
            for d in range(M):
                for j in range(p):
                    XT[j, d] = draw_value(cm[j] + N[k, t, d, j], BIN[im, j], LO[im, j], HI[im, j]) if miss[j] \
                        else xo[j]
            # the exercise arm's level is needed on the draws only for the arms' variances and for
            # binary outcomes; otherwise the benefit alone (prognostic terms and X/DR nuisances cancel)
            need_a = do_arms or not cont
            for q in range(TI[t, T_O0], TI[t, T_O1]):
                l = ORD[q]
                if LI[l, K_ROLE] == 1 and not need_a:  # an X/DR nuisance: only the exercise level
                    continue
                for which in range(2):
                    f = LI[l, K_FA] if which == 0 else LI[l, K_FB]
                    if f < 0:
                        continue
                    _forest_draws(f, xo, XT, M, miss, FI, roots, feat, thr, nanch, mtype, ch, leafv, FZ, FD, snode,
                                  smask)
                if LI[l, K_KIND] == KIND_XDR:
                    continue
                for d in range(M):
                    DP[l, d] = 0.0
                    DM[l, d] = 0.0
                if LI[l, K_PROG] >= 0 and (need_a or LI[l, K_LINK] != 0):
                    _block_draws(LI[l, K_PROG], XT, M, miss, BI, CF, CK, CTJ, CT2, CT1, CR1, CR2, CIN,
                                 CLEV, CEW, v0, DP[l])
                if LI[l, K_MOD] >= 0:
                    _block_draws(LI[l, K_MOD], XT, M, miss, BI, CF, CK, CTJ, CT2, CT1, CR1, CR2, CIN,
                                 CLEV, CEW, v0, DM[l])
            for d in range(M):
                for q in range(TI[t, T_O0], TI[t, T_O1]):
                    l = ORD[q]
                    if LI[l, K_ROLE] == 1 and not need_a:
                        continue
                    kind = LI[l, K_KIND]
                    if kind == KIND_XDR:
                        h = FD[LI[l, K_FA], d]
                        if LI[l, K_FB] >= 0:
                            h = LF[l, 1] * h + LF[l, 2] * FD[LI[l, K_FB], d]
                        bc = LF[l, 0] + h
                        if not need_a:  # continuous: comparator - exercise = bc
                            lb[l] = bc
                            continue
                        a = la[LI[l, K_NUIS]]
                        la[l] = a
                        if LI[l, K_CONT] == 1:
                            lc[l] = a + bc
                            lb[l] = lc[l] - a
                        else:
                            c = a - bc
                            lc[l] = 0.0 if c < 0.0 else (1.0 if c > 1.0 else c)
                            lb[l] = a - lc[l]
                        continue
                    link = LI[l, K_LINK]
                    xa = ea[l] + DP[l, d] + DM[l, d]
                    xc = ec[l] + DP[l, d]
                    if kind == KIND_T:
                        xa += FD[LI[l, K_FA], d]
                        if LI[l, K_FB] >= 0:
                            xc += FD[LI[l, K_FB], d]
                    la[l] = _mean(xa, link)
                    lc[l] = _mean(xc, link)
                    if LI[l, K_CONT] == 1:
                        lb[l] = lc[l] - la[l]
                    else:
                        lb[l] = la[l] - lc[l]
                if not need_a:  # continuous benefit only
                    if stacked:
                        bsum = 0.0
                        for m in range(l0, l1):
                            bsum += LW[m] * lb[MEM[m]]
                        db[d] = bsum
                    else:
                        db[d] = lb[MEM[l0]]
                    continue
                if stacked:
                    aval, cval = combine(l0, l1, MEM, LW, LWN, la, lb, cont)
                else:
                    aval = la[MEM[l0]]
                    cval = lc[MEM[l0]]
                da[d] = aval
                dc[d] = cval
                db[d] = (cval - aval) if cont else (aval - cval)
            out[O_VAR, t, i] = var(db, M)
            if do_arms:
                out[O_VA, t, i] = var(da, M)
                out[O_VC, t, i] = var(dc, M)
            intervals(out, t, i, z, TF[t, 0], TF[t, 1], do_arms)
