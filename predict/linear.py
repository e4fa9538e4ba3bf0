"""Linear terms: restricted cubic splines, standardised basis columns, a linear block's design
matrix and the learners' linear predictors

    eta_c = intercept + offset_c + P beta;  eta_active = intercept + P beta + (M - center) gamma

with ``theta`` = [intercept, offsets..., beta..., gamma...] (:func:`theta_split`).
"""
from __future__ import annotations

import numpy as np



def _pos3(v: np.ndarray) -> np.ndarray:
    """max(v, 0) cubed (as v*v*v: much faster than ** 3 on large arrays)."""
    u = np.maximum(v, 0.0)
    return u * u * u


def rcs(x: np.ndarray, knots) -> np.ndarray:
    """Restricted cubic spline non-linear terms (Harrell), scaled by (t_k - t_1)^2: (n, k-2)."""
    t = np.asarray(knots, float)
    k = t.size
    norm = (t[-1] - t[0]) ** 2
    cols = []
    for j in range(k - 2):
        c = (_pos3(x - t[j])
             - _pos3(x - t[k - 2]) * (t[k - 1] - t[j]) / (t[k - 1] - t[k - 2])
             + _pos3(x - t[k - 1]) * (t[k - 2] - t[j]) / (t[k - 1] - t[k - 2]))
        cols.append(c / norm)
    return np.column_stack(cols) if cols else np.zeros((x.size, 0))


def basis(cols: list, F: np.ndarray) -> np.ndarray:
    """Standardised basis columns (complete F). The spline terms of one feature and knot set
    are computed once per call."""
    out = np.empty((F.shape[0], len(cols)))
    splines: dict = {}
    for i, c in enumerate(cols):
        x = F[:, c["feature"]]
        if c["kind"] == "linear":
            v = x
        elif c["kind"] == "rcs":
            key = (c["feature"], tuple(c["knots"]))
            R = splines.get(key)
            if R is None:
                R = splines[key] = rcs(x, c["knots"])
            v = R[:, c["term"]]
        elif c["kind"] == "onehot":
            v = (x == c["level"]).astype(float)
        else:
            raise ValueError(f"unknown basis kind {c['kind']!r}")
        out[:, i] = (v - c["loc"]) / c["scale"]
    return out


def compile_basis(cols: list) -> dict:
    """Arrays to evaluate :func:`basis` in a few vectorised steps (same arithmetic)."""
    lin_pos, lin_feat, oh_pos, oh_feat, oh_level = [], [], [], [], []
    r_pos, r_feat, r_tj, r_t2, r_t1, r_c1, r_c2, r_d, r_norm = [], [], [], [], [], [], [], [], []
    for i, c in enumerate(cols):
        if c["kind"] == "linear":
            lin_pos.append(i)
            lin_feat.append(c["feature"])
        elif c["kind"] == "onehot":
            oh_pos.append(i)
            oh_feat.append(c["feature"])
            oh_level.append(c["level"])
        elif c["kind"] == "rcs":
            t = np.asarray(c["knots"], float)
            k, j = t.size, c["term"]
            r_pos.append(i)
            r_feat.append(c["feature"])
            r_tj.append(t[j])
            r_t2.append(t[k - 2])
            r_t1.append(t[k - 1])
            r_c1.append(t[k - 1] - t[j])
            r_c2.append(t[k - 2] - t[j])
            r_d.append(t[k - 1] - t[k - 2])
            r_norm.append((t[-1] - t[0]) ** 2)
        else:
            raise ValueError(f"unknown basis kind {c['kind']!r}")
    a = lambda v, dt=float: np.asarray(v, dt)  # noqa: E731
    return {"n": len(cols), "lin_pos": a(lin_pos, np.intp), "lin_feat": a(lin_feat, np.intp),
            "oh_pos": a(oh_pos, np.intp), "oh_feat": a(oh_feat, np.intp), "oh_level": a(oh_level),
            "r_pos": a(r_pos, np.intp), "r_feat": a(r_feat, np.intp), "r_tj": a(r_tj), "r_t2": a(r_t2),
            "r_t1": a(r_t1), "r_c1": a(r_c1), "r_c2": a(r_c2), "r_d": a(r_d), "r_norm": a(r_norm),
            "loc": a([c["loc"] for c in cols]), "scale": a([c["scale"] for c in cols])}


def basis_compiled(plan: dict, F: np.ndarray) -> np.ndarray:
    out = np.empty((F.shape[0], plan["n"]))
    if plan["lin_pos"].size:
        out[:, plan["lin_pos"]] = F[:, plan["lin_feat"]]
    if plan["oh_pos"].size:
        out[:, plan["oh_pos"]] = (F[:, plan["oh_feat"]] == plan["oh_level"]).astype(float)
    if plan["r_pos"].size:
        X = F[:, plan["r_feat"]]
        d = plan["r_d"]
        out[:, plan["r_pos"]] = (_pos3(X - plan["r_tj"])
                                 - _pos3(X - plan["r_t2"]) * plan["r_c1"] / d
                                 + _pos3(X - plan["r_t1"]) * plan["r_c2"] / d) / plan["r_norm"]
    return (out - plan["loc"]) / plan["scale"]


def block_matrix(block: dict | None, F: np.ndarray, centred: bool = True) -> np.ndarray:
    if block is None:
        return np.zeros((F.shape[0], 0))
    plan = block.get("_plan")
    B = basis_compiled(plan, F) if plan is not None else basis(block["basis"], F)
    if block["type"] == "index":
        B = B @ np.asarray(block["beta"], float)[:, None]
    if centred:
        B = B - np.asarray(block["center"], float)
    return B


def linear_parts(lin: dict, comparators: list, F: np.ndarray):
    """Per class, the linear predictor and its gradient in theta:
    eta_c = intercept + offset_c + P beta; eta_active = intercept + P beta + (M - center) gamma."""
    P = block_matrix(lin["prog"], F, centred=False)
    M = block_matrix(lin.get("modifier"), F)
    theta = np.asarray(lin["theta"], float)
    C = len(comparators)
    n = F.shape[0]
    ones = np.ones((n, 1))
    eta, grad = {}, {}
    offs = np.zeros((n, C))
    g_act = np.hstack([ones, offs, P, M])
    eta["__active__"] = g_act @ theta
    grad["__active__"] = g_act
    for i, c in enumerate(comparators):
        o = np.zeros((n, C))
        o[:, i] = 1
        g = np.hstack([ones, o, P, np.zeros_like(M)])
        eta[c] = g @ theta
        grad[c] = g
    return eta, grad


def theta_split(lin: dict, C: int):
    hit = lin.get("_split")
    if hit is not None and hit[0] == C and hit[1] is lin["theta"]:
        return hit[2]
    out = _theta_split_impl(lin, C)
    if isinstance(lin["theta"], np.ndarray):  # prepared (prepare_export): cache with the array it came from
        lin["_split"] = (C, lin["theta"], out)
    return out


def _theta_split_impl(lin: dict, C: int):
    theta = np.asarray(lin["theta"], float)
    n_prog, n_mod = lin["n_prog"], lin["n_mod"]
    k = theta.size
    return theta, theta[0], theta[1:1 + C], theta[k - n_mod - n_prog: k - n_mod], theta[k - n_mod:]


def linear_eta(lin: dict, comparators: list, F: np.ndarray) -> dict:
    """The linear predictors of :func:`linear_parts` without building the design matrices."""
    C = len(comparators)
    theta, b0, offs, beta, gamma = theta_split(lin, C)
    P = block_matrix(lin["prog"], F, centred=False)
    M = block_matrix(lin.get("modifier"), F)
    if P.shape[1] != beta.size or M.shape[1] != gamma.size or theta.size != 1 + C + beta.size + gamma.size:
        eta, _ = linear_parts(lin, comparators, F)  # unexpected layout: the general form
        return eta
    base = b0 + (P @ beta if beta.size else 0.0)
    if np.ndim(base) == 0:
        base = np.full(F.shape[0], float(base))
    eta = {"__active__": base + (M @ gamma if gamma.size else 0.0)}
    for i, c in enumerate(comparators):
        eta[c] = base + offs[i]
    return eta


LINEAR_KINDS = ("constant", "effect_model", "risk_model")
