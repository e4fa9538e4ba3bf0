"""Optimisation helpers shared by the fitters."""
from __future__ import annotations

import numpy as np
from scipy import optimize


def fd_jacobian(fun, x, h_rel=1e-5):
    """Central-difference Jacobian of a vector function."""
    x = np.asarray(x, float)
    cols = []
    for i in range(len(x)):
        h = h_rel * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = h
        cols.append((np.asarray(fun(x + e)) - np.asarray(fun(x - e))) / (2 * h))
    return np.column_stack(cols) if cols else np.zeros((0, 0))


def fd_jacobian_forward(fun, x, f0=None, h_rel=1e-6):
    """Forward-difference Jacobian (half the evaluations of :func:`fd_jacobian`; error O(h))."""
    x = np.asarray(x, float)
    f0 = np.asarray(fun(x) if f0 is None else f0)
    cols = []
    for i in range(len(x)):
        h = h_rel * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = h
        cols.append((np.asarray(fun(x + e)) - f0) / h)
    return np.column_stack(cols) if cols else np.zeros((0, 0))


DELTAS = (1e-2, 0.2)


def _default_perturb(x, j):
    out = []
    for delta in DELTAS:
        xt = np.array(x, float)
        xt[j] = delta
        out.append(xt)
    return out


def chol_perturbation(q, ri, ci):
    """Candidate moves "inward" from a boundary point with G_jj = 0, for G = L L' (L from the
    first entries of x at rows ri, cols ci): G_jj = delta^2 and, for each other k with G_kk > 0,
    correlations rho in {0, +-0.5, +-0.99} between j and k (a boundary optimum with |corr| ~ 1
    is reached this way, not by raising the variance alone). Returns perturb(x, j) -> list of x."""

    def perturb(x, j):
        L = np.zeros((q, q))
        L[ri, ci] = x[: len(ri)]
        G0 = L @ L.T
        jj = ri[j]
        others = [k for k in range(q) if k != jj and G0[k, k] > 1e-12]
        cands = []
        for delta in DELTAS:
            moves = [(None, 0.0)] + [(k, rho) for k in others for rho in (-0.99, -0.5, 0.5, 0.99)]
            for k, rho in moves:
                G = G0.copy()
                G[jj, jj] += delta ** 2
                if k is not None:
                    G[jj, k] = G[k, jj] = rho * delta * np.sqrt(G0[k, k])
                try:
                    Ln = np.linalg.cholesky(G + 1e-12 * max(1.0, np.trace(G)) * np.eye(q))
                except np.linalg.LinAlgError:
                    continue
                xn = np.array(x, float)
                xn[: len(ri)] = Ln[ri, ci]
                cands.append(xn)
        return cands

    return perturb


NEAR_ZERO = 1e-3  # a diagonal element this small is probed for a descent into the interior
INWARD_H = 1e-6
LINE = 1e-6 * 2.0 ** np.arange(22)  # 1e-6 .. ~2.1: trial values of a probed diagonal element


def inward_slope(fun_grad, x, j, h=INWARD_H):
    """Derivative of the criterion into the interior at ``x`` with ``x[j] = 0``, per unit of
    ``x[j]**2`` (the variance direction).

    In a Cholesky parametrisation the criterion is even in a diagonal element at 0 (for a
    diagonal G; for an unstructured G when the rest of its column is 0), so its first derivative
    there is exactly 0 and a point on the boundary is a minimum in that coordinate only if the
    second-order term is >= 0. With f(x_j) = f0 + s x_j^2 + O(x_j^4), g_j(h) / (2h) = s + O(h^2),
    from one analytic gradient. A positive first derivative (an unstructured column with other
    entries) shows up as a large positive value, a negative one as a large negative value.
    """
    xt = np.array(x, float)
    xt[j] = h
    _, g = fun_grad(xt)
    return float(g[j]) / (2 * h)


def boundary_descent(fun_grad, x, f, diag_idx, fun=None, near=NEAR_ZERO):
    """A point better than ``x`` (value ``f``) reached by raising one near-zero diagonal element
    (``x[j] <= near``) whose inward slope (:func:`inward_slope`) is negative, or None.

    This is the check that a boundary point (or a point where the optimiser stalled close to
    the boundary, where the gradient is ~0 as well) is a minimum: a negative slope into the
    interior means it is a saddle. The element is set along a geometric grid (``LINE``) with the
    others fixed; the best value below ``f`` is returned as (x, f)."""
    fun = fun or (lambda z: fun_grad(z)[0])
    best_x, best_f = None, f - 1e-13 * (1 + abs(f))
    for j in diag_idx:
        if x[j] > near:
            continue
        xs = np.array(x, float)
        xs[j] = 0.0
        if not inward_slope(fun_grad, xs, j) < -1e-10 * (1 + abs(f)):
            continue
        for h in LINE:
            xt = xs.copy()
            xt[j] = h
            ft = fun(xt)
            if ft < best_f:
                best_x, best_f = xt, ft
    return (best_x, best_f) if best_x is not None else None


def positive_curvature_step(H, g):
    """Newton step -H^-1 g restricted to the directions of positive curvature of H.

    A plain Newton step on an indefinite H goes *up* along a direction of negative curvature
    (towards a saddle or a maximum, e.g. to 0 in a variance coordinate whose 0 is a saddle);
    those directions are left to the optimiser and the boundary probes. Returns (step,
    whether any direction was dropped)."""
    Hs = 0.5 * (H + H.T)
    if not np.all(np.isfinite(Hs)):
        raise np.linalg.LinAlgError("non-finite Hessian")
    lam, V = np.linalg.eigh(Hs)
    keep = lam > 0
    if keep.all():
        return np.linalg.solve(Hs, g), False
    coef = (V.T @ g)[keep] / lam[keep]
    return V[:, keep] @ coef, bool((~keep).any())


def lbfgsb_escape(fun_grad, x0, bounds, diag_idx, options, max_rounds=5, perturb=None, fun=None):
    """L-BFGS-B with a check of boundary stationary points.

    With a Cholesky parametrisation the deviance is even in each diagonal element at 0, so its
    gradient there is exactly 0 and a bounded quasi-Newton method that lands on the bound stops,
    even when moving inside would lower the deviance (a saddle, not a minimum). After each run,
    for every diagonal element at 0 a set of inward moves is tried (``perturb(x, j)`` -> list of
    candidate points; default: x[j] = a few small values); if the deviance drops the optimisation
    restarts from the best candidate. When none of those moves helps, every near-zero diagonal
    element (also one where L-BFGS-B stalled just above 0, where the gradient vanishes as well) is
    checked for a negative slope into the interior (:func:`boundary_descent`). ``fun`` (value
    only) is used for the candidates if given.

    Returns (x, f, last scipy result, total iterations, number of restarts).
    """
    perturb = perturb or _default_perturb
    fun = fun or (lambda z: fun_grad(z)[0])
    x = np.asarray(x0, float)
    nit = 0
    restarts = 0
    res = None
    for _ in range(max_rounds):
        res = optimize.minimize(fun_grad, x, jac=True, method="L-BFGS-B", bounds=bounds, options=options)
        x, f = res.x.copy(), float(res.fun)
        nit += int(res.nit)
        at0 = [j for j in diag_idx if x[j] <= 1e-10]
        best_x, best_f = None, f - 1e-10 * (1 + abs(f))
        for j in at0:
            for xt in perturb(x, j):
                ft = fun(xt)
                if ft < best_f:
                    best_x, best_f = xt, ft
        if best_x is None:
            # No candidate of the coarse moves: is every near-zero element a minimum in its
            # variance direction? (L-BFGS-B also stalls *near* 0 at a saddle: the gradient
            # vanishes there too.)
            found = boundary_descent(fun_grad, x, f, diag_idx, fun=fun)
            if found is None:
                break
            best_x = found[0]
        x, f = best_x, fun(best_x)
        restarts += 1
    return x, f, res, nit, restarts


def lbfgsb_probed(fun_grad, x0, bounds, diag_idx, options, probe=True, perturb=None, fun=None):
    """:func:`lbfgsb_escape` plus boundary probes for an unstructured G.

    The (restricted) likelihood of an unstructured G can have a local optimum inside the
    parameter space and a better one on its boundary (a rank-deficient G, |corr| = 1). From an
    interior optimum, each diagonal element of the Cholesky factor is set to 0 in turn and the
    optimisation restarted; the best optimum is kept. Returns
    (x, f, scipy result, iterations, message or None).
    """
    x, f, res, nit, _ = lbfgsb_escape(fun_grad, x0, bounds, diag_idx, options, perturb=perturb, fun=fun)
    msg = None
    if not probe or len(diag_idx) < 2:
        return x, f, res, nit, msg
    if any(x[i] <= 1e-10 for i in diag_idx):  # already a boundary optimum
        return x, f, res, nit, msg
    f_first = f
    for j in diag_idx:
        xs = x.copy()
        xs[j] = 0.0
        xp, fp, rp, nitp, _ = lbfgsb_escape(fun_grad, xs, bounds, diag_idx, options, perturb=perturb, fun=fun)
        nit += nitp
        if fp < f - 1e-8 * (1 + abs(f)):
            x, f, res = xp, fp, rp
    if f < f_first - 1e-8 * (1 + abs(f_first)):
        msg = (f"a boundary start reached a better optimum than the interior one "
               f"(objective {f:.8g} vs {f_first:.8g}); the better one is reported")
    return x, f, res, nit, msg


def newton_polish(fun_grad, x, f, bounds, free_fn, max_newton):
    """Newton steps on the free coordinates (finite-difference Hessian of the analytic gradient),
    restricted to directions of positive curvature; a step is taken only if it does not raise the
    criterion (beyond rounding, and then only towards a smaller gradient and never onto a bound).
    Returns (x, f, steps)."""
    lo = np.array([b[0] if b[0] is not None else -np.inf for b in bounds])
    hi = np.array([b[1] if b[1] is not None else np.inf for b in bounds])
    nit = 0
    for _ in range(max_newton):
        free = free_fn(x)
        if not free.any():
            break
        _, g = fun_grad(x)
        if g is None or np.max(np.abs(g[free])) < 1e-9:
            break

        def gfree(z, free=free):
            xx = x.copy()
            xx[free] = z
            return fun_grad(xx)[1][free]

        H = fd_jacobian(gfree, x[free], 1e-6)
        try:
            step, _ = positive_curvature_step(H, g[free])
        except np.linalg.LinAlgError:
            break
        improved = False
        gmax = np.max(np.abs(g[free]))
        for t in (1.0, 0.5, 0.25, 0.1):
            xn = x.copy()
            raw = x[free] - t * step
            xn[free] = np.clip(raw, lo[free], hi[free])
            fn, gn = fun_grad(xn)
            # A step is taken if it lowers the criterion; within rounding of it (1e-12 relative) only
            # if it also brings the gradient closer to 0 and does not end on a bound (a step onto a
            # bound that raises the criterion, even slightly, is how a boundary saddle was reached).
            noise = (fn <= f + 1e-12 * max(1.0, abs(f)) and gn is not None
                     and np.max(np.abs(gn[free])) < gmax and np.array_equal(raw, xn[free]))
            if np.isfinite(fn) and (fn <= f or noise):
                x, f, improved = xn, fn, True
                break
        nit += 1
        if not improved:
            break
    return x, f, nit


def hessian_fd(fun, x, h=1e-4):
    """Symmetric second-difference Hessian of a scalar function."""
    k = len(x)
    H = np.empty((k, k))
    f0 = fun(x)
    fp = np.empty(k)
    fm = np.empty(k)
    for i in range(k):
        e = np.zeros(k)
        e[i] = h
        fp[i], fm[i] = fun(x + e), fun(x - e)
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h ** 2
    for i in range(k):
        for j in range(i):
            ei = np.zeros(k)
            ej = np.zeros(k)
            ei[i] = h
            ej[j] = h
            H[i, j] = H[j, i] = (fun(x + ei + ej) - fun(x + ei - ej) - fun(x - ei + ej) + fun(x - ei - ej)) / (4 * h * h)
    return H


def put(x, mask, vals):
    """A copy of ``x`` with ``x[mask] = vals``."""
    xx = x.copy()
    xx[mask] = vals
    return xx


def newton_polish_hessian(fun_val, grad_x, x, bounds, free_fn, hess=None, max_newton=3):
    """The GLMM's Newton polish: like :func:`newton_polish` on the free coordinates, but with a
    Hessian from ``hess`` (or forward differences of the gradient) that is also returned, for the
    standard errors; returns the point, the Hessian (free coordinates) at it, and the steps taken."""
    lo = np.array([b[0] if b[0] is not None else -np.inf for b in bounds])
    hi = np.array([b[1] if b[1] is not None else np.inf for b in bounds])

    def hessian(xx, fr):
        if hess is not None:
            return hess(xx, fr)
        # Forward differences of the analytic gradient: half the Laplace evaluations of central
        # differences (the Hessian is ~40% of a fit's cost); SEs agree with lme4 to well under 1e-3.
        Hh = fd_jacobian_forward(lambda zz: grad_x(put(xx, fr, zz))[fr], xx[fr], h_rel=1e-6)
        return 0.5 * (Hh + Hh.T)

    f = fun_val(x)
    fr = free_fn(x)
    H = hessian(x, fr)
    steps = 0
    for _ in range(max_newton):
        g = grad_x(x)[fr]
        if not fr.any() or np.abs(g).max() < 1e-8:
            break
        try:
            step, _ = positive_curvature_step(H, g)
        except np.linalg.LinAlgError:
            break
        moved = False
        for t in (1.0, 0.5, 0.25):
            xn = x.copy()
            xn[fr] = np.clip(x[fr] - t * step, lo[fr], hi[fr])
            fn = fun_val(xn)
            if fn <= f:
                moved = True
                break
        if not moved:
            break
        size = np.abs(xn - x).max()
        x, f = xn, fn
        steps += 1
        fr = free_fn(x)
        if size > 1e-3 or len(H) != fr.sum():
            H = hessian(x, fr)
        if size < 1e-9:
            break
    return x, H, steps
