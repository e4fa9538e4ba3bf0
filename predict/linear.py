"""Linear terms: restricted cubic splines, standardised basis columns, a linear block's design
matrix and the learners' linear predictors

    eta_c = intercept + offset_c + P beta;  eta_active = intercept + P beta + (M - center) gamma

with ``theta`` = [intercept, offsets..., beta..., gamma...] (:func:`theta_split`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from predict.expected_basis import EXPECTED, Spread, expect_columns
from predict.numeric import frozen_array, rcs_term


def rcs(x: np.ndarray, knots) -> np.ndarray:
    """Restricted cubic spline non-linear terms (Harrell), scaled by (t_k - t_1)^2: (n, k-2)."""
    t = np.asarray(knots, float)
    k = t.size
    norm = (t[-1] - t[0]) ** 2
    cols = []
    for j in range(k - 2):
        cols.append(rcs_term(x, t[j], t[k - 2], t[k - 1], t[k - 1] - t[j], t[k - 2] - t[j], t[k - 1] - t[k - 2],
                             norm))
    return np.column_stack(cols) if cols else np.zeros((x.size, 0))


def product(xa: np.ndarray, xb: np.ndarray, origin_a: float, origin_b: float) -> np.ndarray:
    """A product column's raw value: (x_a - o_a)(x_b - o_b), the two features measured from their
    origins (fixed at training: the features' means)."""
    return (xa - origin_a) * (xb - origin_b)


def basis(cols: list, F: np.ndarray) -> np.ndarray:
    """Standardised basis columns (complete F): ``linear`` x, ``rcs`` a restricted cubic spline
    term, ``onehot`` 1[x = level], ``product`` (x_a - o_a)(x_b - o_b) of ``feature`` (a) and
    ``feature2`` (b) with their origins ``origin``/``origin2``; each (value - loc) / scale. The
    spline terms of one feature and knot set are computed once per call."""
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
        elif c["kind"] == "product":
            v = product(x, F[:, c["feature2"]], c["origin"], c["origin2"])
        else:
            raise ValueError(f"unknown basis kind {c['kind']!r}")
        out[:, i] = (v - c["loc"]) / c["scale"]
    return out


class BasisPlan(NamedTuple):
    """A block's basis columns as arrays, to evaluate :func:`basis` in a few vectorised steps
    (:func:`basis_compiled`; same arithmetic): positions and features of the linear, one-hot,
    spline and product columns, the splines' knot constants, the products' second features and
    origins, and every column's location and scale."""

    n: int
    lin_pos: np.ndarray
    lin_feat: np.ndarray
    oh_pos: np.ndarray
    oh_feat: np.ndarray
    oh_level: np.ndarray
    r_pos: np.ndarray
    r_feat: np.ndarray
    r_tj: np.ndarray
    r_t2: np.ndarray
    r_t1: np.ndarray
    r_c1: np.ndarray
    r_c2: np.ndarray
    r_d: np.ndarray
    r_norm: np.ndarray
    loc: np.ndarray
    scale: np.ndarray
    x_pos: np.ndarray
    x_feat: np.ndarray
    x_feat2: np.ndarray
    x_origin: np.ndarray
    x_origin2: np.ndarray


def compile_basis(cols: list) -> BasisPlan:
    """The :class:`BasisPlan` of a block's basis columns."""
    lin_pos, lin_feat, oh_pos, oh_feat, oh_level = [], [], [], [], []
    r_pos, r_feat, r_tj, r_t2, r_t1, r_c1, r_c2, r_d, r_norm = [], [], [], [], [], [], [], [], []
    x_pos, x_feat, x_feat2, x_o, x_o2 = [], [], [], [], []
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
        elif c["kind"] == "product":
            x_pos.append(i)
            x_feat.append(c["feature"])
            x_feat2.append(c["feature2"])
            x_o.append(c["origin"])
            x_o2.append(c["origin2"])
        else:
            raise ValueError(f"unknown basis kind {c['kind']!r}")
    a = lambda v, dt=float: np.asarray(v, dt)  # noqa: E731
    return BasisPlan(len(cols), a(lin_pos, np.intp), a(lin_feat, np.intp), a(oh_pos, np.intp), a(oh_feat, np.intp),
                     a(oh_level), a(r_pos, np.intp), a(r_feat, np.intp), a(r_tj), a(r_t2), a(r_t1), a(r_c1),
                     a(r_c2), a(r_d), a(r_norm), a([c["loc"] for c in cols]), a([c["scale"] for c in cols]),
                     a(x_pos, np.intp), a(x_feat, np.intp), a(x_feat2, np.intp), a(x_o), a(x_o2))


def basis_compiled(plan: BasisPlan, F: np.ndarray) -> np.ndarray:
    out = np.empty((F.shape[0], plan.n))
    if plan.lin_pos.size:
        out[:, plan.lin_pos] = F[:, plan.lin_feat]
    if plan.oh_pos.size:
        out[:, plan.oh_pos] = (F[:, plan.oh_feat] == plan.oh_level).astype(float)
    if plan.r_pos.size:
        out[:, plan.r_pos] = rcs_term(F[:, plan.r_feat], plan.r_tj, plan.r_t2, plan.r_t1, plan.r_c1, plan.r_c2,
                                      plan.r_d, plan.r_norm)
    if plan.x_pos.size:
        out[:, plan.x_pos] = product(F[:, plan.x_feat], F[:, plan.x_feat2], plan.x_origin, plan.x_origin2)
    return (out - plan.loc) / plan.scale


def feature_slots(cols: list) -> tuple:
    """The block's columns of one feature each (all but products) grouped by "slot" (the k-th
    column of every feature), in order: a tuple of (column positions, their features) arrays, to
    add the columns up per feature in column order a slot at a time (:mod:`predict.explain`)."""
    seen: dict = {}
    by_slot: dict = {}
    for i, c in enumerate(cols):
        if c["kind"] == "product":
            continue
        k = seen.get(c["feature"], 0)
        seen[c["feature"]] = k + 1
        by_slot.setdefault(k, ([], []))
        by_slot[k][0].append(i)
        by_slot[k][1].append(c["feature"])
    return tuple((np.asarray(a, np.intp), np.asarray(b, np.intp)) for _, (a, b) in sorted(by_slot.items()))


@dataclass(frozen=True, eq=False)
class Block:
    """A linear block made ready to score (immutable): ``type`` "basis" (standardised basis
    columns) or "index" (one column: the basis weighted by ``beta``), its column specs, the centre
    the modifier terms are measured from, its :class:`BasisPlan` and :func:`feature_slots`."""

    type: str
    basis: tuple
    center: np.ndarray | None
    beta: np.ndarray | None
    plan: BasisPlan
    slots: tuple

    @classmethod
    def of(cls, b: "Block | dict") -> "Block":
        """``b`` as a Block (a block of a learner export: converted)."""
        if isinstance(b, Block):
            return b
        cols = tuple(b["basis"])
        return cls(b["type"], cols, None if b.get("center") is None else frozen_array(b["center"]),
                   None if b.get("beta") is None else frozen_array(b["beta"]), compile_basis(list(cols)),
                   feature_slots(cols))


@dataclass(frozen=True, eq=False)
class Linear:
    """A learner's linear part made ready to score (immutable): link, prognostic and modifier
    blocks, ``theta`` = [intercept, offsets..., beta..., gamma...] and its split for the learner's
    ``n_classes`` comparators (:func:`theta_split`). ``expected``: its blocks see the expected basis
    of a patient with missing inputs, E[B(X) | observed] (the export's ``missing`` = "expected",
    :mod:`predict.expected_basis`), when the caller passes the rows' :class:`Spread`; else (and in
    artifacts before 2026-12-07) the basis at the conditional mean."""

    link: str
    prog: Block
    modifier: Block | None
    theta: np.ndarray
    n_prog: int
    n_mod: int
    n_classes: int
    split: tuple
    expected: bool = False

    @classmethod
    def of(cls, lin: "Linear | dict", n_classes: int) -> "Linear":
        if isinstance(lin, Linear):
            return lin
        theta = frozen_array(lin["theta"])
        mod = lin.get("modifier")
        n_prog, n_mod = int(lin["n_prog"]), int(lin["n_mod"])
        missing = lin.get("missing")
        if missing not in (None, EXPECTED):
            raise ValueError(f"linear part missing={missing!r} is not known to this version of lbp-benefit (known: "
                             f"{EXPECTED!r}); the artifact is newer than the scorer or corrupt")
        return cls(lin["link"], Block.of(lin["prog"]), None if mod is None else Block.of(mod), theta, n_prog, n_mod,
                   n_classes, _theta_split_impl(theta, n_prog, n_mod, n_classes), missing == EXPECTED)

    def spread_of(self, spread: Spread | None) -> Spread | None:
        """``spread`` if this part uses the expected basis, else None (the conditional-mean basis)."""
        return spread if self.expected else None


def block_matrix(block: Block | dict | None, F: np.ndarray, centred: bool = True,
                 spread: Spread | None = None) -> np.ndarray:
    """The block's design at F (the conditional means of missing inputs); with ``spread`` (the rows'
    conditional distribution) the expected basis E[B(X) | observed] (:mod:`predict.expected_basis`)."""
    if block is None:
        return np.zeros((F.shape[0], 0))
    block = Block.of(block)
    B = expect_columns(block.plan, basis_compiled(block.plan, F), F, spread)
    if block.type == "index":
        B = B @ block.beta[:, None]
    if centred:
        B = B - block.center
    return B


def linear_parts(lin: Linear | dict, comparators: list, F: np.ndarray, spread: Spread | None = None):
    """Per class, the linear predictor and its gradient in theta:
    eta_c = intercept + offset_c + P beta; eta_active = intercept + P beta + (M - center) gamma.
    ``lin``: a :class:`Linear` or an export's ``linear`` dict; ``spread``: see :func:`block_matrix`
    (used if the part takes the expected basis)."""
    lin = Linear.of(lin, len(comparators))
    sp = lin.spread_of(spread)
    P = block_matrix(lin.prog, F, centred=False, spread=sp)
    M = block_matrix(lin.modifier, F, spread=sp)
    theta = lin.theta
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


def theta_split(lin: Linear, C: int):
    """(theta, intercept, offsets, beta, gamma) for C comparators (made once per linear part)."""
    return lin.split if C == lin.n_classes else _theta_split_impl(lin.theta, lin.n_prog, lin.n_mod, C)


def _theta_split_impl(theta: np.ndarray, n_prog: int, n_mod: int, C: int):
    k = theta.size
    return theta, theta[0], theta[1:1 + C], theta[k - n_mod - n_prog: k - n_mod], theta[k - n_mod:]


def linear_eta(lin: Linear | dict, comparators: list, F: np.ndarray, spread: Spread | None = None) -> dict:
    """The linear predictors of :func:`linear_parts` without building the design matrices."""
    C = len(comparators)
    lin = Linear.of(lin, C)
    theta, b0, offs, beta, gamma = theta_split(lin, C)
    sp = lin.spread_of(spread)
    P = block_matrix(lin.prog, F, centred=False, spread=sp)
    M = block_matrix(lin.modifier, F, spread=sp)
    if P.shape[1] != beta.size or M.shape[1] != gamma.size or theta.size != 1 + C + beta.size + gamma.size:
        eta, _ = linear_parts(lin, comparators, F, spread)  # unexpected layout: the general form
        return eta
    base = b0 + (P @ beta if beta.size else 0.0)
    if np.ndim(base) == 0:
        base = np.full(F.shape[0], float(base))
    eta = {"__active__": base + (M @ gamma if gamma.size else 0.0)}
    for i, c in enumerate(comparators):
        eta[c] = base + offs[i]
    return eta

