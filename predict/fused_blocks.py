"""Linear blocks in the fused kernel (:func:`predict.fused.run`), compiled with the same options: a
basis column's raw value, a block's design vector at the patient's point (the expected basis of missing
inputs for blocks exported with it: :mod:`predict.expected_basis`, the same Gauss-Hermite nodes) and the
change of its linear predictor over the conditional draws."""
from __future__ import annotations

import numpy as np

from predict.expected_basis import NODES, WEIGHTS
from predict.fused_steps import FASTMATH
from predict.kernels import njit

_compiled = njit(fastmath=FASTMATH)


@_compiled
def _bval(x, kind, tj, t2, t1, r1, r2, inv_norm, level):
    """A basis column's raw value (before standardisation): linear, RCS term (r1 = c1 / d,
    r2 = c2 / d, inv_norm = 1 / norm: predict.kernels's constants, divided once) or one-hot (products: own loops)."""
    if kind == 0:
        return x
    if kind == 1:
        return (_cube(x - tj) - _cube(x - t2) * r1 + _cube(x - t1) * r2) * inv_norm
    return 1.0 if x == level else 0.0


@_compiled
def _cube(v):
    u = v if v > 0.0 else 0.0
    return u * u * u


_GH_NODES = np.ascontiguousarray(NODES)  # Gauss-Hermite (predict.expected_basis): compile-time constants
_GH_WEIGHTS = np.ascontiguousarray(WEIGHTS)


@_compiled
def _expected_spline(m, s, lo, hi, tj, t2, t1, r1, r2, inv_norm):
    """E[rcs(clip(X))] for X ~ N(m, s^2): Gauss-Hermite quadrature on the nodes of predict.expected_basis,
    each node bounded to [lo, hi] (predict.expected_basis.expect_columns)."""
    acc = 0.0
    for q in range(_GH_NODES.size):
        x = m + s * _GH_NODES[q]
        if x < lo:
            x = lo
        elif x > hi:
            x = hi
        acc += ((_cube(x - tj) - _cube(x - t2) * r1 + _cube(x - t1) * r2) * inv_norm) * _GH_WEIGHTS[q]
    return acc


@_compiled
def block_point(b, x, columns, center, v0, dst, miss, cm, sd, Sc, lo, hi):
    """Design vector of block b at complete x into dst[:n_design] (centred if the block is), and
    each column's raw basis value into v0 (the reference for the draws' deltas). A block of the
    expected basis (block[b, 5] = 1): a missing feature's spline terms and the products with a missing
    feature take their conditional expectations (cm: unbounded conditional means, sd: their SDs,
    Sc: the conditional covariance, lo/hi: the imputer's bounds; predict.expected_basis)."""
    block, col_feature, col_kind, knot = columns.block, columns.feature, columns.kind, columns.knot
    knot_penult, knot_last, ratio_last, ratio_penult = (columns.knot_penult, columns.knot_last, columns.ratio_last,
                                                        columns.ratio_penult)
    inv_norm, level, dest, design_weight = columns.inv_norm, columns.level, columns.dest, columns.design_weight
    loc, inv_scale = columns.loc, columns.inv_scale
    nd = block[b, 2]
    for j in range(nd):
        dst[j] = 0.0
    expect = block[b, 5] == 1
    for k in range(block[b, 0], block[b, 4]):
        f = col_feature[k]
        if expect and col_kind[k] == 1 and miss[f] and sd[f] > 0.0:
            v = _expected_spline(cm[f], sd[f], lo[f], hi[f], knot[k], knot_penult[k], knot_last[k], ratio_last[k],
                                 ratio_penult[k], inv_norm[k])
        else:
            v = _bval(x[f], col_kind[k], knot[k], knot_penult[k],
                      knot_last[k], ratio_last[k], ratio_penult[k], inv_norm[k],
                      level[k])
        v0[k] = v
        dst[dest[k]] += design_weight[k] * ((v - loc[k]) * inv_scale[k])
    col_feature2 = columns.feature2
    for k in range(block[b, 4], block[b, 1]):  # products (x_a - o_a)(x_b - o_b), origins in knot, knot_penult
        v = (x[col_feature[k]] - knot[k]) * (x[col_feature2[k]] - knot_penult[k])
        if expect and miss[col_feature[k]] and miss[col_feature2[k]]:
            v += Sc[col_feature[k], col_feature2[k]]
        v0[k] = v
        dst[dest[k]] += design_weight[k] * ((v - loc[k]) * inv_scale[k])
    if block[b, 3] >= 0:
        for j in range(nd):
            dst[j] -= center[block[b, 3] + j]


@_compiled
def block_draws(b, XT, M, miss, columns, v0, acc):
    """acc[:M] += the change of the block's linear predictor between each draw and the imputed point:
    only the columns of missing features move (a product's: either; v0: their values at the point)."""
    block, col_feature, draw_weight, col_kind = columns.block, columns.feature, columns.draw_weight, columns.kind
    knot, knot_penult, knot_last, ratio_last = columns.knot, columns.knot_penult, columns.knot_last, columns.ratio_last
    ratio_penult, inv_norm, level = columns.ratio_penult, columns.inv_norm, columns.level
    for k in range(block[b, 0], block[b, 4]):
        f = col_feature[k]
        w = draw_weight[k]
        if not miss[f] or w == 0.0:
            continue
        for d in range(M):
            acc[d] += w * (_bval(XT[f, d], col_kind[k], knot[k], knot_penult[k],
                                 knot_last[k], ratio_last[k], ratio_penult[k],
                                 inv_norm[k], level[k]) - v0[k])
    col_feature2 = columns.feature2
    for k in range(block[b, 4], block[b, 1]):  # products: move when either feature is missing
        f = col_feature[k]
        f2 = col_feature2[k]
        w = draw_weight[k]
        if not (miss[f] or miss[f2]) or w == 0.0:
            continue
        for d in range(M):
            acc[d] += w * ((XT[f, d] - knot[k]) * (XT[f2, d] - knot_penult[k]) - v0[k])
