"""Linear mixed model by REML or ML with per-group (block) algebra.

Model, for group (trial) g with n_g rows:

    y_g = X_g beta + Z_g b_g + e_g,   b_g ~ N(0, G),   e_g ~ N(0, sigma_g^2 I),

b_g and e_g independent, groups independent. G is unstructured (any positive semi-definite
q x q matrix) or diagonal; sigma_g is common (sigma_g = sigma) or group-specific
(``residual="by_group"``, as Stata ``residuals(ind, by(trial))`` / nlme ``varIdent``).

Estimation. Write G = sigma^2 L L' (L lower triangular, the *relative* Cholesky factor as in
lme4) and sigma_g^2 = sigma^2 d_g (d_ref = 1 for the largest group). beta (GLS) and sigma^2 are
profiled out of the (restricted) likelihood; the profiled deviance is minimised over the entries
of L (diagonal >= 0, so boundary fits are reachable) and log sqrt(d_g) by L-BFGS-B with analytic
gradients, then polished by Newton steps on a finite-difference Hessian of the analytic gradient.
Safeguards (see ``_optim``): a boundary point where the optimiser stops, or a point where it
stalls just above the boundary, is checked for a descent direction into the interior (the
gradient vanishes there in this parametrisation, so only the slope in the variance direction
tells a minimum from a saddle), also after the Newton polish, which never takes a step that raises
the criterion or follows a direction of negative curvature; for unstructured G an interior
optimum is compared with optima reached from boundary starts (rank-deficient G); the best is kept
and a message says so. :func:`profiled_criterion` exposes the criterion for such checks.
Everything is computed from per-group cross-products (X_g'X_g, X_g'Z_g, Z_g'Z_g, ...) with the
Woodbury identity  (d I + Z L L'Z')^{-1} = (I - Z L M^{-1} L'Z')/d,  M = L'Z'Z L + d I,
so no n x n (or even n_g x n_g) matrix is formed and the cost per evaluation does not depend on n.

Reported: beta with vcov = sigma^2 (X' W X)^{-1} = (X'V^{-1}X)^{-1} at the optimum (REML or ML
estimate of the variance parameters plugged in, as in lme4); Wald z tests and intervals; G,
SDs, correlations; BLUPs E[b_g | y] with conditional covariance Var(b_g | y) = sigma_g^2 L M^{-1} L'
(plug-in, beta treated as known, as lme4's condVar); the (RE)ML log-likelihood on lme4's scale;
approximate covariance of the variance components (SDs, correlations, residual SDs) from the
observed information of the un-profiled (restricted) likelihood by the delta method.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import linalg

from predict.errors import LbpError

from ._inputs import Design, check_choice, prepare, tril_index
from ._lapack import cho_factor_upper, cho_solve_upper
from ._optim import fd_jacobian as _fd_jacobian
from ._optim import boundary_descent, chol_perturbation, lbfgsb_escape, lbfgsb_probed, newton_polish
from ._threads import single_threaded_blas
from .results import MixedResult, boundary_messages, labelled_fields

LOG2PI = math.log(2 * math.pi)
SINGULAR_TOL = 1e-4


class _LmmProblem:
    """Cross-products and the (profiled) deviance with its gradient."""

    def __init__(self, d: Design, reml: bool, re_cov: str, by_group: bool):
        self.d, self.reml, self.by_group = d, reml, by_group
        m, p, q = d.m, d.p, d.q
        self.ri, self.ci = tril_index(q, re_cov)
        self.k_theta = len(self.ri)
        self.is_diag = self.ri == self.ci
        self.XtX_g = np.empty((m, p, p))
        self.XtZ_g = np.empty((m, p, q))
        self.ZtZ_g = np.empty((m, q, q))
        self.Xty_g = np.empty((m, p))
        self.Zty_g = np.empty((m, q))
        self.yty_g = np.empty(m)
        for g, (s, n_g) in enumerate(zip(d.starts, d.sizes)):
            Xg, Zg, yg = d.X[s:s + n_g], d.Z[s:s + n_g], d.y[s:s + n_g]
            self.XtX_g[g] = Xg.T @ Xg
            self.XtZ_g[g] = Xg.T @ Zg
            self.ZtZ_g[g] = Zg.T @ Zg
            self.Xty_g[g] = Xg.T @ yg
            self.Zty_g[g] = Zg.T @ yg
            self.yty_g[g] = yg @ yg
        self.ZtX_g = np.ascontiguousarray(self.XtZ_g.transpose(0, 2, 1))
        self.XtZ_flat = self.XtZ_g.transpose(1, 0, 2).reshape(p, m * q)  # (p, m*q) copy, fixed
        self.XtX = self.XtX_g.sum(0)
        self.Xty = self.Xty_g.sum(0)
        self.n_g = d.sizes.astype(float)
        self.ref = int(np.argmax(d.sizes))
        self.free_g = np.array([g for g in range(m) if g != self.ref], dtype=int) if by_group else np.zeros(0, int)
        self.k = self.k_theta + len(self.free_g)
        self.eye_p, self.eye_q = np.eye(p), np.eye(q)
        self.nfev = 0
        self._memo: dict = {}

    # -- parameters -----------------------------------------------------------------------
    def unpack(self, phi):
        q = self.d.q
        lam = np.zeros((q, q))
        lam[self.ri, self.ci] = phi[: self.k_theta]
        eta = np.zeros(self.d.m)
        if self.by_group:
            eta[self.free_g] = phi[self.k_theta: self.k]
        return lam, eta

    def bounds(self):
        b = [(0.0, None) if dg else (None, None) for dg in self.is_diag]
        return b + [(-15.0, 15.0)] * len(self.free_g)

    # -- core -----------------------------------------------------------------------------
    def evaluate(self, phi, sigma2=None, want_grad=True, want_parts=False):
        """Deviance (-2 log L, REML or ML) profiled over beta, and over sigma^2 unless given.

        With ``sigma2`` given, phi carries log(sigma^2) as its last element's partner: the
        gradient then has an extra entry d dev / d log sigma^2.

        Memoised per point: the optimiser, its boundary probes, the Newton polish and the final
        summary revisit ~20% of points, and the deviance is a pure function of phi.
        """
        memo = self._memo.setdefault((np.asarray(phi, float).tobytes(), sigma2), {})
        kind = "parts" if want_parts else "grad" if want_grad else "value"
        if kind not in memo:
            # A fuller evaluation at the same point answers a lighter request.
            if kind == "grad" and "parts" in memo:
                memo["grad"] = memo["parts"][:2]
            elif kind == "value" and ("grad" in memo or "parts" in memo):
                memo["value"] = memo.get("grad", memo.get("parts"))[0]
            else:
                memo[kind] = self._evaluate(phi, sigma2, want_grad, want_parts)
        out = memo[kind]
        if isinstance(out, tuple) and out[1] is not None:  # callers get their own gradient
            return (out[0], out[1].copy()) + out[2:]
        return out

    def _evaluate(self, phi, sigma2, want_grad, want_parts):
        self.nfev += 1
        d = self.d
        n, p, q = d.n, d.p, d.q
        lam, eta = self.unpack(phi)
        dg = np.exp(2 * eta)
        invd = 1.0 / dg
        # With a common residual d_g = 1: the scalings by d_g and 1/d_g below are skipped
        # (multiplying by 1.0 is exact, so the result is bit-identical, with fewer array passes).
        common = not self.by_group
        ZtZL = self.ZtZ_g @ lam
        M = lam.T @ ZtZL + (self.eye_q if common else dg[:, None, None] * self.eye_q)
        try:
            Lc = np.linalg.cholesky(M)
        except np.linalg.LinAlgError:
            return (np.inf, None) if want_grad else np.inf
        logdetM = 2 * np.log(np.diagonal(Lc, axis1=1, axis2=2)).sum(1)
        Minv = np.linalg.inv(M)
        K = lam @ Minv @ lam.T
        B = self.XtZ_g @ K
        if not common:
            B *= invd[:, None, None]
        mq = d.m * q
        if self.by_group:
            XtWX = np.tensordot(invd, self.XtX_g, axes=1)
            XtWy = invd @ self.Xty_g
        else:
            XtWX = self.XtX.copy()
            XtWy = self.Xty.copy()
        XtWX -= B.transpose(1, 0, 2).reshape(p, mq) @ self.XtZ_flat.T
        XtWy -= np.einsum("gpq,gq->p", B, self.Zty_g)
        KZty = np.einsum("gab,gb->ga", K, self.Zty_g)
        ytWy = invd @ (self.yty_g - (self.Zty_g * KZty).sum(1))
        logdetV = ((self.n_g - q) * 2 * eta).sum() + logdetM.sum()
        try:
            cf = cho_factor_upper(XtWX)
        except linalg.LinAlgError:
            return (np.inf, None) if want_grad else np.inf
        beta = cho_solve_upper(cf, XtWy)
        r2 = ytWy - beta @ XtWy
        if not np.isfinite(r2) or r2 <= 0:
            return (np.inf, None) if want_grad else np.inf
        logdetP = 2 * np.log(np.abs(np.diag(cf))).sum()
        nu = n - p if self.reml else n
        profiled = sigma2 is None
        if profiled:
            sigma2 = r2 / nu
        dev = logdetV + n * math.log(sigma2) + r2 / sigma2 + nu * LOG2PI
        if self.reml:
            dev += logdetP - p * math.log(sigma2)
        if not want_grad and not want_parts:
            return dev

        Ztr = self.Zty_g - self.ZtX_g @ beta
        ZtZK = self.ZtZ_g @ K
        S = self.ZtZ_g - ZtZK @ self.ZtZ_g
        u = Ztr - np.einsum("gab,gb->ga", ZtZK, Ztr)
        if not common:
            S *= invd[:, None, None]
            u *= invd[:, None]
        A = S - u[:, :, None] * u[:, None, :] / sigma2
        Pinv = None
        if self.reml or want_parts:
            Pinv = cho_solve_upper(cf, self.eye_p)
        if self.reml:
            T = self.ZtX_g - ZtZK @ self.ZtX_g
            if not common:
                T *= invd[:, None, None]
            A = A - (T @ Pinv) @ T.transpose(0, 2, 1)
        Gm = 2 * A.sum(0) @ lam
        grad = [Gm[self.ri, self.ci]]
        if self.by_group:
            trW = (self.n_g - np.einsum("gab,gba->g", K, self.ZtZ_g)) * invd
            rr = self.yty_g - 2 * self.Xty_g @ beta + (self.XtX_g @ beta) @ beta
            Kr = np.einsum("gab,gb->ga", K, Ztr)
            Wr2 = (rr - 2 * (Ztr * Kr).sum(1) + np.einsum("ga,gab,gb->g", Kr, self.ZtZ_g, Kr)) * invd ** 2
            ge = trW - Wr2 / sigma2
            if self.reml:
                tPX = self.XtX_g.reshape(d.m, -1) @ Pinv.ravel()
                N = self.ZtX_g @ (Pinv @ self.XtZ_g)
                t2 = np.einsum("gab,gba->g", K, N)
                t3 = np.einsum("gab,gba->g", K @ self.ZtZ_g @ K, N)
                ge = ge - (tPX - 2 * t2 + t3) * invd ** 2
            grad.append((2 * dg * ge)[self.free_g])
        if not profiled:
            grad.append(np.array([nu - r2 / sigma2]))
        grad = np.concatenate(grad)
        if want_parts:
            parts = dict(beta=beta, Pinv=Pinv, sigma2=sigma2, r2=r2, lam=lam, dg=dg, K=K, Ztr=Ztr)
            return dev, grad, parts
        return dev, grad

    # -- starting values -------------------------------------------------------------------
    def start(self):
        """Relative Cholesky factor 0.5 I (for unit-RMS Z columns); with ``residual="by_group"``
        log residual-SD ratios from OLS residuals per group."""
        theta0 = np.where(self.is_diag, 0.5, 0.0)
        if not self.by_group:
            return theta0
        beta = np.linalg.solve(self.XtX, self.Xty)
        rss = self.yty_g - 2 * self.Xty_g @ beta + (self.XtX_g @ beta) @ beta
        v = np.maximum(rss, 1e-12 * max(rss.max(), 1e-300)) / self.n_g
        eta = 0.5 * np.log(v / v[self.ref])
        return np.concatenate([theta0, np.clip(eta[self.free_g], -10, 10)])


def _minimise(fun_grad, x0, bounds, free_fn, probe=False, perturb=None, max_newton=4, fun=None, max_rounds=4):
    """L-BFGS-B (with boundary checks, see :mod:`._optim`), then Newton polishing on the free
    (non-boundary) coordinates, then a check that no near-zero variance coordinate has a negative
    slope into the interior (a saddle); if one has, the optimisation restarts from the better
    point. ``fun`` (value only) serves the boundary probes, which need no gradient. Returns
    (x, f, scipy result, iterations, probe message)."""
    diag_idx = [i for i, b in enumerate(bounds) if b[0] == 0.0]
    opts = dict(maxiter=5000, maxfun=20000, ftol=1e-15, gtol=1e-10, maxcor=20)
    x, f, res, nit, msg = lbfgsb_probed(fun_grad, x0, bounds, diag_idx, opts, probe=probe, perturb=perturb, fun=fun)
    for _ in range(max_rounds):
        x, f, nit_polish = newton_polish(fun_grad, x, f, bounds, free_fn, max_newton)
        nit += nit_polish
        found = boundary_descent(fun_grad, x, f, diag_idx, fun=fun)
        if found is None:
            break
        x, f, res, nit_more, _ = lbfgsb_escape(fun_grad, found[0], bounds, diag_idx, opts, perturb=perturb, fun=fun)
        nit += nit_more
    return x, f, res, nit, msg


def profiled_criterion(y, X, Z, groups, *, method: str = "REML", re_cov: str = "unstructured"):
    """The criterion :func:`fit_lmm` minimises (common residual variance), for independent checks.

    Returns ``f(theta) -> (criterion, gradient)``: -2 x the (restricted) log-likelihood on
    lme4's scale (``-2 * MixedResult.loglik`` at the fitted ``theta``), profiled over beta and
    sigma^2, as a function of ``theta`` = :attr:`MixedResult.theta` (the relative Cholesky factor
    of G / sigma^2 on the scale of the Z columns, lme4's theta), with its analytic gradient.
    """
    check_choice(method, "method", ("REML", "ML"))
    check_choice(re_cov, "re_cov", ("unstructured", "diagonal"))
    d = prepare(y, X, Z, groups)
    prob = _LmmProblem(d, method == "REML", re_cov, False)
    scale = d.z_scale[prob.ri]

    def f(theta):
        dev, grad = prob.evaluate(np.asarray(theta, float) * scale)
        return dev, (None if grad is None else grad * scale)

    return f


def _vc_names(random_names, re_cov):
    q = len(random_names)
    names = [f"sd[{r}]" for r in random_names]
    if re_cov == "unstructured":
        names += [f"corr[{random_names[j]},{random_names[i]}]" for j in range(q) for i in range(j + 1, q)]
    return names


def _sd_corr(G, re_cov):
    sd = np.sqrt(np.maximum(np.diag(G), 0))
    q = len(sd)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = G / np.outer(sd, sd)
    corr[~np.isfinite(corr)] = np.nan
    np.fill_diagonal(corr, 1.0)
    vals = list(sd)
    if re_cov == "unstructured":
        vals += [corr[i, j] for j in range(q) for i in range(j + 1, q)]
    return sd, corr, np.asarray(vals)


@single_threaded_blas
def fit_lmm(y, X, Z, groups, *, method: str = "REML", re_cov: str = "unstructured", residual: str = "common",
            fixed_names=None, random_names=None, compute_vc_vcov: bool = True) -> MixedResult:
    """Fit a linear mixed model by REML or ML (see the module docstring for model and method).

    Parameters
    ----------
    y : (n,) response.  X : (n, p) fixed-effect design (full column rank; include an intercept
        or trial dummies yourself).  Z : (n, q) random-effect design (the same columns for every
        group; b_g enters as Z_g b_g).  groups : (n,) group (trial) labels, >= 2 distinct.
    method : "REML" (default) or "ML".
    re_cov : "unstructured" or "diagonal" covariance G of b_g.
    residual : "common" (one sigma) or "by_group" (sigma_g per group).
    fixed_names, random_names : column labels (default: DataFrame columns or x0.., z0..).
    compute_vc_vcov : also compute the approximate covariance of the variance components.

    Returns a :class:`MixedResult`. Boundary (singular) fits are reported in ``status`` and
    ``messages``, never silently.
    """
    check_choice(method, "method", ("REML", "ML"))
    check_choice(re_cov, "re_cov", ("unstructured", "diagonal"))
    check_choice(residual, "residual", ("common", "by_group"))
    d = prepare(y, X, Z, groups, fixed_names, random_names)
    if d.n - d.p <= 0:
        raise LbpError("too few observations for the number of fixed effects")
    by_group = residual == "by_group"
    if by_group and (d.sizes < 2).any():
        small = [str(d.labels[g]) for g in np.flatnonzero(d.sizes < 2)][:10]
        raise LbpError("residual='by_group' needs at least 2 rows per group; groups with fewer: " + ", ".join(small))
    prob = _LmmProblem(d, method == "REML", re_cov, by_group)

    def fg(phi):
        f, g = prob.evaluate(phi)
        if g is None:
            return 1e300, np.zeros_like(phi)
        return f, g

    def free_fn(phi):
        fr = np.ones(len(phi), bool)
        fr[: prob.k_theta] = ~(prob.is_diag & (phi[: prob.k_theta] <= 1e-10))
        return fr

    def f_only(phi):  # the same value as fg(phi)[0], without the gradient
        f = prob.evaluate(phi, want_grad=False)
        return f if np.isfinite(f) else 1e300

    phi, dev, res, nit, probe_msg = _minimise(fg, prob.start(), prob.bounds(), free_fn,
                                              probe=re_cov == "unstructured",
                                              perturb=chol_perturbation(d.q, prob.ri, prob.ci), fun=f_only)
    extra_msgs = [probe_msg] if probe_msg else []
    dev, grad, parts = prob.evaluate(phi, want_parts=True)
    free = free_fn(phi)
    pg = np.abs(grad[free]).max() if free.any() else 0.0
    converged = bool(np.isfinite(dev) and (res.success or pg < 1e-4))

    q, m = d.q, d.m
    sigma2 = parts["sigma2"]
    beta = parts["beta"]
    vcov = sigma2 * parts["Pinv"]
    lam_std = parts["lam"]
    lam = lam_std / d.z_scale[:, None]
    G = sigma2 * lam @ lam.T
    sd, corr, vc_re = _sd_corr(G, re_cov)
    dg = parts["dg"]
    Ktil = parts["K"]
    b = np.einsum("gab,gb->ga", Ktil, parts["Ztr"]) / d.z_scale
    cv = sigma2 * dg[:, None, None] * Ktil / np.outer(d.z_scale, d.z_scale)

    messages = boundary_messages(lam_std, sd, corr, d.random_names, SINGULAR_TOL) + extra_msgs
    status = "ok"
    if any(mm.startswith("singular") for mm in messages):
        status = "singular"
    if not converged:
        status = "not converged"
        messages.insert(0, f"optimizer did not converge: {res.message} (max |gradient| {pg:.3g})")

    rn = d.random_names
    vc_names = _vc_names(rn, re_cov)
    if by_group:
        sig_g = np.sqrt(sigma2 * dg)
        vc_names += [f"sigma[{lab}]" for lab in d.labels]
        vc_vals = np.concatenate([vc_re, sig_g])
    else:
        vc_names += ["sigma"]
        vc_vals = np.concatenate([vc_re, [math.sqrt(sigma2)]])
    vc_cov = np.full((len(vc_names), len(vc_names)), np.nan)
    if compute_vc_vcov and converged:
        vc_cov = _vc_covariance(prob, phi, sigma2, free, re_cov, lam_std, d, messages)

    re_sd_se = np.sqrt(np.maximum(np.diag(vc_cov)[:q], 0))
    re_sd_se[~np.isfinite(np.diag(vc_cov)[:q])] = np.nan
    method_label = method
    result = MixedResult(
        model="linear mixed model",
        method=method_label,
        **labelled_fields(d, m, beta, vcov, G, sd, corr, re_sd_se, vc_names, vc_vals, vc_cov, b),
        vcov_note="vcov = (X' V^-1 X)^-1 at the " + method + " estimates of the variance parameters",
        sigma=None if by_group else math.sqrt(sigma2),
        sigma_by_group=pd.Series(np.sqrt(sigma2 * dg), index=pd.Index(d.labels), name="sigma") if by_group else None,
        loglik=-0.5 * dev,
        reml_criterion=dev if method == "REML" else None,
        deviance=dev if method == "ML" else None,
        blup_cond_var=cv,
        converged=converged,
        status=status,
        messages=messages,
        n_iter=nit,
        n_fev=prob.nfev,
        optimizer="L-BFGS-B (analytic gradient) + Newton polish",
        re_cov_structure=re_cov,
        residual=residual,
        theta=lam[prob.ri, prob.ci],
        extra={"max_abs_gradient": float(pg)},
    )
    return result


def _vc_covariance(prob: _LmmProblem, phi, sigma2, free, re_cov, lam_std, d: Design, messages):
    """Delta-method covariance of (SDs, correlations, residual SDs) from the observed
    information of the un-profiled (restricted) deviance in (theta, log d_g, log sigma^2)."""
    full = np.concatenate([phi, [math.log(sigma2)]])
    free_full = np.concatenate([free, [True]])

    def grad_free(z):
        x = full.copy()
        x[free_full] = z
        _, g = prob.evaluate(x[:-1], sigma2=math.exp(x[-1]))
        return g[free_full]

    q = d.q

    def psi(x):
        lam, eta = prob.unpack(x[:-1])
        s2 = math.exp(x[-1])
        lam = lam / d.z_scale[:, None]
        _, _, vals = _sd_corr(s2 * lam @ lam.T, re_cov)
        if prob.by_group:
            return np.concatenate([vals, np.sqrt(s2) * np.exp(eta)])
        return np.concatenate([vals, [math.sqrt(s2)]])

    n_out = len(psi(full))
    out = np.full((n_out, n_out), np.nan)
    try:
        H = _fd_jacobian(grad_free, full[free_full], 1e-5)
        H = 0.5 * (H + H.T)
        cov_phi = 2 * np.linalg.inv(H)
        if not np.all(np.isfinite(cov_phi)) or np.any(np.diag(cov_phi) <= 0):
            raise np.linalg.LinAlgError

        def psi_free(z):
            x = full.copy()
            x[free_full] = z
            return psi(x)

        J = _fd_jacobian(psi_free, full[free_full], 1e-6)
        out = J @ cov_phi @ J.T
    except np.linalg.LinAlgError:
        messages.append("variance-component standard errors unavailable (information matrix not positive definite)")
        return out
    # SDs at ~0 or correlations at +-1 have no Wald SE.
    rel_sd = np.sqrt((lam_std ** 2).sum(axis=1))
    bad = [j for j in range(q) if rel_sd[j] < SINGULAR_TOL]
    idx = q
    if re_cov == "unstructured":
        for j in range(q):
            for i in range(j + 1, q):
                if i in bad or j in bad:
                    bad.append(idx)
                idx += 1
    for j in set(bad):
        out[j, :] = np.nan
        out[:, j] = np.nan
    return out
