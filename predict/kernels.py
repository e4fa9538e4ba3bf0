"""Compiled kernels for the scorer's hot path (optional: numba, installed with shap).

Nothing here changes what is computed, only how fast:

* :func:`compile_forest` turns a LightGBM booster (numerical splits only) into flat arrays, and
  :func:`forest_raw` reproduces ``booster.predict(X, raw_score=True)`` (LightGBM's decision rule:
  NaN -> 0 unless the split's missing type is NaN; missing type Zero/NaN go to the default side);
* :func:`lgb_step` and :func:`mask_walk`, the decision rule and the walk of all of a patient's
  conditional draws down a tree at once, which the compiled program (:mod:`predict.fused`) uses;
* :func:`compile_forest` also gives the forest's lockstep form (leaves lead to themselves), in
  which several walks run side by side.

Without numba (or with ``LBP_NO_NUMBA=1``) :data:`AVAILABLE` is False and the runtime uses its
plain numpy + LightGBM functions; tests compare the two.
"""
from __future__ import annotations

import logging

import os

import numpy as np

try:  # pragma: no cover - depends on the environment
    if os.environ.get("LBP_NO_NUMBA"):
        raise ImportError("disabled by LBP_NO_NUMBA")
    import numba

    AVAILABLE = True
except Exception:  # noqa: BLE001 - any import problem means: no compiled path
    numba = None
    AVAILABLE = False

_ZERO = 1.0000000180025095e-35  # LightGBM kZeroThreshold (1e-35f) as a double

def njit(**options):
    """A decorator: numba.njit(nogil=True, **options), cached on disk where numba can write its
    cache (else compiled per process); the plain function without numba."""
    def deco(f):
        if not AVAILABLE:  # pragma: no cover
            return f
        try:
            return numba.njit(cache=True, nogil=True, **options)(f)
        except Exception:  # noqa: BLE001 - e.g. no writable cache location
            return numba.njit(nogil=True, **options)(f)
    return deco


_jit = njit()
# pasted into its callers at numba's IR level (no call, no reference counting of its array
# arguments): for small helpers of the hot loops
_jit_inline = njit(inline="always")


@_jit
def lgb_step(v, threshold, missing_type, nan_child, left_child, right_child):
    """LightGBM's decision at one internal node for the value ``v``: NaN, and zero where the
    split's missing type is Zero (1), go the missing way; otherwise left if v <= threshold.
    (Scalars only: a helper taking the node arrays costs ~4x the walk in reference counting,
    inlined or not.)"""
    if v != v or (v >= -_ZERO and v <= _ZERO and missing_type == 1):
        return nan_child
    return right_child if v > threshold else left_child


# ----------------------------------------------------------------------------- trees
def compile_forest(booster) -> dict | None:
    """Flat arrays of a LightGBM booster, or None when it uses anything this evaluator does not
    reproduce (categorical splits, linear trees, several classes, averaged output)."""
    if not AVAILABLE:
        return None
    try:
        d = booster.dump_model()
    except Exception:  # noqa: BLE001
        return None
    if d.get("num_class", 1) != 1 or d.get("num_tree_per_iteration", 1) != 1 or d.get("average_output"):
        return None
    feat, thr, dleft, mtype, left, right, leafv, roots = [], [], [], [], [], [], [], []
    nanch: dict = {}
    mt_code = {"None": 0, "Zero": 1, "NaN": 2}

    def walk(node) -> int:
        if "leaf_value" in node:
            if "leaf_coeff" in node or "leaf_features" in node:
                raise ValueError("linear tree")
            leafv.append(float(node["leaf_value"]))
            return -len(leafv)  # ~index
        if node.get("decision_type") != "<=" or node.get("missing_type") not in mt_code:
            raise ValueError("unsupported split")
        k = len(feat)
        feat.append(int(node["split_feature"]))
        thr.append(float(node["threshold"]))
        dleft.append(bool(node["default_left"]))
        mtype.append(mt_code[node["missing_type"]])
        left.append(0)
        right.append(0)
        left[k] = walk(node["left_child"])
        right[k] = walk(node["right_child"])
        # where NaN goes: the default side for missing types NaN and Zero (NaN -> 0 -> zero);
        # missing type None treats NaN as 0
        if mtype[k] == 0:
            nanch[k] = left[k] if 0.0 <= thr[k] else right[k]
        else:
            nanch[k] = left[k] if dleft[k] else right[k]
        return k

    try:
        for t in d["tree_info"]:
            roots.append(walk(t["tree_structure"]))
    except (ValueError, KeyError, TypeError):
        return None
    i32 = lambda v: np.asarray(v, np.int32)  # noqa: E731
    ch = np.empty(2 * len(feat), np.int32)  # children side by side: ch[2k + (x > threshold)]
    ch[0::2], ch[1::2] = left, right
    nan_list = [nanch[k] for k in range(len(feat))]
    out = {"ch": ch, "has_zero": bool(any(t == 1 for t in mtype)), "roots": i32(roots), "feat": i32(feat),
           "thr": np.asarray(thr, float), "nanch": i32(nan_list),
           "mtype": np.asarray(mtype, np.int8), "left": i32(left), "right": i32(right),
           "leafv": np.asarray(leafv, float), "n_features": int(d.get("max_feature_idx", -1)) + 1}
    out["lock"] = _lockstep(out)
    return out


def _lockstep(fo: dict) -> dict:
    """The forest with its leaves as ordinary nodes that lead to themselves (numbered after the
    internal nodes; threshold +inf, so any value stays), and each tree's depth: a walk is then
    exactly ``depth`` steps with no test for having arrived, so several patients' walks through
    one tree can run side by side (:func:`_forest_raw_lockstep`)."""
    ni, nl = fo["feat"].size, fo["leafv"].size
    node = lambda c: np.where(c >= 0, c, ni + (-c - 1))  # noqa: E731
    ch = np.empty(2 * (ni + nl), np.int64)
    ch[0:2 * ni:2], ch[1:2 * ni:2] = node(fo["left"].astype(np.int64)), node(fo["right"].astype(np.int64))
    ch[2 * ni::2] = ch[2 * ni + 1::2] = np.arange(ni, ni + nl)
    nan = np.concatenate([node(fo["nanch"].astype(np.int64)), np.arange(ni, ni + nl)])
    feat = np.concatenate([fo["feat"].astype(np.int64), np.zeros(nl, np.int64)])
    thr = np.concatenate([fo["thr"], np.full(nl, np.inf)])
    val = np.concatenate([np.zeros(ni), fo["leafv"]])
    roots = node(fo["roots"].astype(np.int64))
    depth = np.zeros(roots.size, np.int64)
    for t, r in enumerate(roots):  # iterative depth of each tree
        stack, best = [(int(r), 0)], 0
        while stack:
            k, dep = stack.pop()
            if k >= ni:
                best = max(best, dep)
            else:
                stack += [(int(ch[2 * k]), dep + 1), (int(ch[2 * k + 1]), dep + 1)]
        depth[t] = best
    return {"roots": roots, "depth": depth, "feat": feat, "thr": thr, "nanch": nan, "ch": ch, "val": val}


@_jit
def _forest_raw(X, roots, feat, thr, nanch, mtype, ch, leafv):
    n = X.shape[0]
    out = np.zeros(n)
    for i in range(n):
        s = 0.0
        for t in range(roots.size):
            node = roots[t]
            while node >= 0:
                node = lgb_step(X[i, feat[node]], thr[node], mtype[node], nanch[node], ch[2 * node],
                                ch[2 * node + 1])
            s += leafv[-node - 1]
        out[i] = s
    return out


@_jit_inline
def mask_walk(node, M, full, X, xo, miss, feat, thr, ch, leafv, acc, snode, smask):
    """All M draws of one patient down one tree from ``node`` (the first split on a missing
    feature) together, as a bit mask split at each node by one comparison per draw: a node is
    visited once, not once per draw. X[f, d]: draw d's value of feature f (complete: the split is
    x <= threshold); xo[f]: the value of an observed feature (the same in every draw). Leaves
    reached by some draws add their value to acc[d]; the value of a leaf reached by all draws is
    returned instead (the caller adds it once). M <= 62."""
    shared = 0.0
    top = 0
    snode[0] = node
    smask[0] = full
    while top >= 0:
        nd = snode[top]
        mk = smask[top]
        top -= 1
        if nd < 0:
            lv = leafv[-nd - 1]
            if mk == full:
                shared += lv
            else:
                for d in range(M):
                    acc[d] += lv * ((mk >> d) & 1)
            continue
        fe = feat[nd]
        th = thr[nd]
        if not miss[fe]:
            top += 1
            snode[top] = ch[2 * nd + (xo[fe] > th)]
            smask[top] = mk
            continue
        r = np.int64(0)
        for d in range(M):
            r |= np.int64(X[fe, d] > th) << d
        rm = mk & r
        lm = mk & ~r
        if lm != 0:
            top += 1
            snode[top] = ch[2 * nd]
            smask[top] = lm
        if rm != 0:
            top += 1
            snode[top] = ch[2 * nd + 1]
            smask[top] = rm
    return shared


_LOCK_ROWS = 32


@_jit
def _forest_raw_lockstep(X, roots, depth, feat, thr, nanch, ch, val):
    """forest_raw for forests without missing type Zero: blocks of 32 patients walk each tree in
    lockstep for the tree's depth (independent walks the processor overlaps, instead of one
    chain of dependent loads at a time). Trees are added in order, as LightGBM does."""
    n = X.shape[0]
    out = np.zeros(n)
    node = np.empty(_LOCK_ROWS, np.int64)
    acc = np.empty(_LOCK_ROWS)
    for i0 in range(0, n, _LOCK_ROWS):
        m = min(_LOCK_ROWS, n - i0)
        for b in range(m):
            acc[b] = 0.0
        for t in range(roots.size):
            r = roots[t]
            for b in range(m):
                node[b] = r
            for _ in range(depth[t]):
                for b in range(m):
                    nd = node[b]
                    v = X[i0 + b, feat[nd]]
                    if v != v:
                        node[b] = nanch[nd]
                    else:
                        node[b] = ch[2 * nd + (v > thr[nd])]
            for b in range(m):
                acc[b] += val[node[b]]
        for b in range(m):
            out[i0 + b] = acc[b]
    return out


def _forest_args(fo: dict):
    return fo["roots"], fo["feat"], fo["thr"], fo["nanch"], fo["mtype"], fo["ch"], fo["leafv"]


def forest_raw(fo: dict, X: np.ndarray) -> np.ndarray:
    """Raw score of every row of X (n, p): booster.predict(X, raw_score=True)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    lk = fo.get("lock")
    if lk is not None and not fo["has_zero"]:
        return _forest_raw_lockstep(X, lk["roots"], lk["depth"], lk["feat"], lk["thr"], lk["nanch"], lk["ch"], lk["val"])
    return _forest_raw(X, *_forest_args(fo))


# ----------------------------------------------------------------------------- linear blocks
_READY: bool | None = None
_SELF_TEST_ERROR = ""
log = logging.getLogger("predict.kernels")


def ready() -> bool:
    """True when the kernels compile (or load from numba's cache) and give the expected numbers
    on a small case; checked once per process. False: the runtime's plain functions are used, and
    the reason is logged (a warning) and given by :func:`self_test_error` (shown in /v1/model)."""
    global _READY
    if _READY is None:
        _READY = AVAILABLE and _self_test()
        if AVAILABLE and not _READY:
            log.warning("the compiled scoring kernels failed their self-test (%s): scoring uses the numpy "
                        "reference functions (same numbers, slower)", _SELF_TEST_ERROR)
    return _READY


def self_test_error() -> str:
    """Why the self-test failed ("" if it passed or has not run)."""
    return _SELF_TEST_ERROR


def _self_test() -> bool:
    global _SELF_TEST_ERROR
    from predict.column_kernels import basis, compile_columns, cond_mean

    try:
        fo = {"roots": np.array([0], np.int32), "feat": np.array([0], np.int32), "thr": np.array([0.5]),
              "nanch": np.array([-2], np.int32), "mtype": np.array([2], np.int8), "left": np.array([-1], np.int32),
              "right": np.array([-2], np.int32), "leafv": np.array([1.0, 2.0]), "has_zero": False,
              "ch": np.array([-1, -2], np.int32)}
        X = np.array([[0.0, 0.0], [1.0, 0.0], [np.nan, 0.0]])
        ok = forest_raw(fo, X).tolist() == [1.0, 2.0, 2.0]
        ok &= _forest_raw(X, *_forest_args(fo)).tolist() == [1.0, 2.0, 2.0]
        cc = compile_columns([{"feature": 0, "kind": "linear", "loc": 1.0, "scale": 2.0},
                              {"feature": 0, "kind": "rcs", "knots": [0.0, 1.0, 2.0], "term": 0, "loc": 0.0,
                               "scale": 1.0},
                              {"feature": 1, "kind": "onehot", "level": 1.0, "loc": 0.0, "scale": 1.0}])
        B = basis(cc, np.array([[3.0, 1.0]]))
        ok &= np.allclose(B, [[1.0, (27.0 - 8.0 * 2.0 + 1.0 * 1.0) / 4.0, 1.0]])
        CM = cond_mean(np.array([[np.nan, 2.0]]), np.array([0.0, 1.0]), np.array([[[0.0, 0.0], [0.5, 0.0]]]),
                       np.array([0]))
        ok &= CM.tolist() == [[0.5, 2.0]]
        if not ok:
            _SELF_TEST_ERROR = "wrong numbers on the self-test case"
        return bool(ok)
    except Exception as exc:  # noqa: BLE001 - any failure: the plain path, logged by ready()
        _SELF_TEST_ERROR = f"{type(exc).__name__}: {exc}"
        return False
