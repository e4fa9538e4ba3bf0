"""Binomial (logistic) generalised linear mixed model by maximum likelihood.

Model, for row i in group g:

    y_i | b_g ~ Binomial(n_i, p_i),   logit p_i = x_i' beta + z_i' b_g,   b_g ~ N(0, G),

groups independent; G unstructured or diagonal. b_g = L u_g with u_g ~ N(0, I) and L the
lower-triangular Cholesky factor of G (diagonal >= 0), as in lme4.

Estimation: the marginal likelihood  prod_g  int prod_i f(y_i | u) phi(u) du  is approximated by

* ``method="laplace"`` (lme4 ``nAGQ=1``): for each group the conditional mode u_g of
  log f(y_g | u) - |u|^2/2 is found by Newton's method (penalised IRLS, all groups at once,
  step-halving), and the Laplace approximation is taken there. (beta, L) are optimised jointly by
  L-BFGS-B with the analytic gradient of the Laplace approximation (including the dependence of
  the modes and of the curvature on the parameters), then polished by a Newton step on a
  finite-difference Hessian of that gradient (never a step that raises the criterion or follows
  a direction of negative curvature); a variance at (or stalled near) zero is then checked for a
  descent into the interior, and the optimisation restarts from the better point if there is one.
* ``method="agq"``: adaptive Gauss-Hermite quadrature centred at the conditional modes and
  scaled by the Cholesky factor of the curvature there, with a product rule of ``n_agq`` points
  per dimension (q <= 3). Started from the Laplace fit; gradients by finite differences.

The reported log-likelihood includes the binomial constant sum log C(n_i, y_i) (as lme4's
``logLik`` for nAGQ = 1).

Standard errors (``vcov``): inverse of the finite-difference Hessian of the approximate deviance
in (theta, beta) at the optimum, beta block (lme4's default ``vcov(use.hessian=TRUE)``). The
theta-conditional version (lme4 ``use.hessian=FALSE``, from the penalised-IRLS information at the
optimum) is in ``extra["vcov_conditional"]`` / ``extra["bse_conditional"]``.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import linalg, special

from predict.errors import LbpError

from ._inputs import Design, check_choice, prepare, tril_index
from ._lapack import solve_upper
from .glm import binomial_sizes, logistic_glm
from ._optim import fd_jacobian as _fd_jacobian
from ._optim import (boundary_descent, chol_perturbation, hessian_fd, lbfgsb_escape, lbfgsb_probed,
                     newton_polish_hessian, put)
from .lmm import _sd_corr, _vc_names
from ._threads import single_threaded_blas
from .results import MixedResult, boundary_messages, labelled_fields

SINGULAR_TOL = 1e-4
LOG2PI = math.log(2 * math.pi)


class _GlmmProblem:
    MEMO_SIZE = 64  # evaluated points kept (a fit revisits points up to ~p + 2 evaluations apart)

    def __init__(self, d: Design, ntr: np.ndarray, re_cov: str):
        self.d, self.ntr = d, ntr
        self.y = d.y
        self.ri, self.ci = tril_index(d.q, re_cov)
        self.k_theta = len(self.ri)
        self.is_diag = self.ri == self.ci
        self.lchoose = float((special.gammaln(ntr + 1) - special.gammaln(self.y + 1)
                              - special.gammaln(ntr - self.y + 1)).sum())
        self.u = np.zeros((d.m, d.q))
        self.nfev = 0
        self.eye = np.eye(d.q)
        # Fixed per fit: Z_a Z_b per row, and whether every binomial size is 1 (Bernoulli), in
        # which case the n_i factors (exact multiplications by 1.0) are skipped.
        self.ZZ = d.Z[:, :, None] * d.Z[:, None, :]
        self.bernoulli = bool(np.all(ntr == 1))
        self._memo: dict = {}

    def times_n(self, a):
        """n_i * a_i (a itself for Bernoulli data: bit-identical, fewer array passes)."""
        return a if self.bernoulli else self.ntr * a

    def gsum(self, a):
        return np.add.reduceat(a, self.d.starts, axis=0)

    def lam(self, theta):
        lam = np.zeros((self.d.q, self.d.q))
        lam[self.ri, self.ci] = theta
        return lam

    # -- conditional modes ------------------------------------------------------------------
    def modes(self, beta, lam):
        """Newton (penalised IRLS) for the conditional modes u_g; returns dict of pieces at the modes."""
        d, y, nx = self.d, self.y, self.times_n
        eta0 = d.X @ beta
        ZL = d.Z @ lam
        ZLZL = ZL[:, :, None] * ZL[:, None, :]  # fixed while lam is
        gi = d.gidx

        def hval(u):
            eta = eta0 + np.einsum("nq,nq->n", ZL, u[gi])
            ll = y * eta - nx(np.logaddexp(0.0, eta))
            return -self.gsum(ll) + 0.5 * (u * u).sum(1), eta

        u = self.u.copy()
        if not np.all(np.isfinite(u)) or np.abs(u).max() > 50:
            u = np.zeros_like(u)
        h, eta = hval(u)
        converged = False
        for _ in range(200):
            p = special.expit(eta)
            w = nx(p) * (1 - p)
            grad = u - self.gsum(ZL * (y - nx(p))[:, None])
            H = self.eye + self.gsum(ZLZL * w[:, None, None])
            step = np.linalg.solve(H, grad[..., None])[..., 0]
            smax = np.abs(step).max()
            if smax < 1e-11:  # converged; the remaining step changes h by O(1e-22)
                converged = True
                break
            t = np.ones(d.m)
            un = u - step
            hn, etan = hval(un)
            for _ in range(40):
                bad = ~(hn <= h + 1e-11 * (1 + np.abs(h)))
                if not bad.any():
                    break
                t[bad] *= 0.5
                un = u - t[:, None] * step
                hn, etan = hval(un)
            u, h, eta = un, hn, etan
        self.u = u
        p = special.expit(eta)
        w = nx(p) * (1 - p)
        return dict(u=u, h=h, eta=eta, eta0=eta0, p=p, w=w, ZL=ZL, converged=converged)

    # -- Laplace ------------------------------------------------------------------------------
    def laplace(self, beta, theta, want_grad=True):
        """-log L (Laplace; without the lchoose constant) and its gradient in (theta, beta).

        Memoised per point (the optimiser, boundary probes, Newton polish and final summary
        revisit ~20% of points). A revisit also restores the conditional modes found there, as
        re-solving from them would (the modes warm-start the next evaluation).
        """
        memo = self._memo.setdefault((beta.tobytes(), theta.tobytes()), {})
        if "grad" in memo or ("value" in memo and not want_grad):
            out = memo["grad"] if "grad" in memo else memo["value"]
            md = out[-1]
            self.u = md["u"]
            if want_grad:
                return out[0], out[1].copy(), md
            return out[0], md
        out = self._laplace(beta, theta, want_grad)
        memo["grad" if want_grad else "value"] = out
        if len(self._memo) > self.MEMO_SIZE:  # bounded: each entry holds O(n) arrays
            del self._memo[next(iter(self._memo))]
        return (out[0], out[1].copy(), out[2]) if want_grad else out

    def _laplace(self, beta, theta, want_grad):
        self.nfev += 1
        d = self.d
        lam = self.lam(theta)
        md = self.modes(beta, lam)
        u, w, p, ZL = md["u"], md["w"], md["p"], md["ZL"]
        Z = d.Z
        ZtWZ = self.gsum(self.ZZ * w[:, None, None])
        H = self.eye + lam.T @ ZtWZ @ lam
        C = np.linalg.cholesky(H)
        F = md["h"].sum() + np.log(np.diagonal(C, axis1=1, axis2=2)).sum()
        if not want_grad:
            return F, md
        Hinv = np.linalg.inv(H)
        gi = d.gidx
        r = self.y - self.times_n(p)
        wp = w * (1 - 2 * p)
        a = np.einsum("nq,nqr,nr->n", ZL, Hinv[gi], ZL)
        v = a * wp
        s = self.gsum(ZL * v[:, None])
        t = np.einsum("gab,gb->ga", Hinv, s)
        c = -r + 0.5 * (v - w * (ZL * t[gi]).sum(1))
        g_beta = d.X.T @ c
        Ztr = self.gsum(Z * r[:, None])
        Ztv = self.gsum(Z * v[:, None])
        ZWZL = ZtWZ @ lam
        Gm = (-(Ztr[:, :, None] * u[:, None, :]) + ZWZL @ Hinv + 0.5 * Ztv[:, :, None] * u[:, None, :]
              + 0.5 * Ztr[:, :, None] * t[:, None, :]
              - 0.5 * np.einsum("gab,gb->ga", ZWZL, t)[:, :, None] * u[:, None, :]).sum(0)
        return F, np.concatenate([Gm[self.ri, self.ci], g_beta]), md

    # -- adaptive Gauss-Hermite ---------------------------------------------------------------
    def agq(self, beta, theta, z, logw):
        """-log L by adaptive Gauss-Hermite quadrature (product rule nodes z (K, q), log weights)."""
        self.nfev += 1
        d = self.d
        lam = self.lam(theta)
        md = self.modes(beta, lam)
        u, w, ZL = md["u"], md["w"], md["ZL"]
        H = self.eye + self.gsum(ZL[:, :, None] * ZL[:, None, :] * w[:, None, None])
        C = np.linalg.cholesky(H)
        CinvT = np.linalg.inv(C).transpose(0, 2, 1)
        U = u[:, None, :] + np.einsum("gab,kb->gka", CinvT, z)  # (m, K, q)
        eta = md["eta0"][:, None] + np.einsum("nq,nkq->nk", ZL, U[d.gidx])
        ll = self.gsum(self.y[:, None] * eta - self.ntr[:, None] * np.logaddexp(0.0, eta))
        q = d.q
        terms = logw[None, :] + 0.5 * (z * z).sum(1)[None, :] + ll - 0.5 * (U * U).sum(2) - 0.5 * q * LOG2PI
        logL = -np.log(np.diagonal(C, axis1=1, axis2=2)).sum(1) + special.logsumexp(terms, axis=1)
        return -logL.sum(), md


@single_threaded_blas
def fit_glmm_binomial(y, X, Z, groups, *, trials_n=None, method: str = "laplace", n_agq: int = 9,
                      re_cov: str = "unstructured", fixed_names=None, random_names=None,
                      compute_vc_vcov: bool = True) -> MixedResult:
    """Fit a logistic GLMM by maximum likelihood (Laplace or adaptive Gauss-Hermite quadrature).

    Parameters
    ----------
    y : (n,) successes: 0/1 (Bernoulli, default) or counts 0..trials_n.
    X : (n, p) fixed-effect design (full column rank).  Z : (n, q) random-effect design.
    groups : (n,) group (trial) labels, >= 2 distinct.
    trials_n : (n,) binomial sizes (default 1).
    method : "laplace" (lme4 nAGQ=1) or "agq" (adaptive Gauss-Hermite, ``n_agq`` points per
        random-effect dimension, product rule; q <= 3).
    re_cov : "unstructured" or "diagonal" G.

    Returns a :class:`MixedResult` (``sigma`` is None; ``deviance`` = -2 loglik).
    See the module docstring for the estimator and the standard errors reported.
    """
    check_choice(method, "method", ("laplace", "agq"))
    check_choice(re_cov, "re_cov", ("unstructured", "diagonal"))
    n = len(np.asarray(y)) if np.ndim(y) else 0
    ntr0 = binomial_sizes(y, trials_n, n)
    d = prepare(y, X, Z, groups, fixed_names, random_names)
    ntr = ntr0[d.order]
    if method == "agq":
        if not isinstance(n_agq, (int, np.integer)) or n_agq < 1:
            raise LbpError("n_agq must be a positive integer")
        if d.q > 3:
            raise LbpError(f"adaptive quadrature is supported for up to 3 random effects per group; got {d.q}")
        if n_agq ** d.q > 20000:
            raise LbpError(f"n_agq={n_agq} with {d.q} random effects gives {n_agq ** d.q} nodes; use fewer points")

    prob = _GlmmProblem(d, ntr, re_cov)
    beta0, info0 = logistic_glm(d.X, d.y, ntr)
    R = np.linalg.cholesky(info0).T  # beta = beta0 + R^-1 gamma
    kt = prob.k_theta

    def to_beta(x):
        return beta0 + solve_upper(R, x[kt:])

    def fg(x):
        F, g, _ = prob.laplace(to_beta(x), x[:kt])
        g = np.concatenate([g[:kt], solve_upper(R, g[kt:], trans=1)])
        if not np.isfinite(F):
            return 1e300, np.zeros_like(x)
        return F, g

    bounds = [(0.0, None) if dg else (None, None) for dg in prob.is_diag] + [(None, None)] * d.p
    x0 = np.concatenate([np.where(prob.is_diag, 0.5, 0.0), np.zeros(d.p)])

    def free_fn(x):
        fr = np.ones(len(x), bool)
        fr[:kt] = ~(prob.is_diag & (x[:kt] <= 1e-10))
        return fr

    diag_idx = list(np.flatnonzero(prob.is_diag))
    perturb = chol_perturbation(d.q, prob.ri, prob.ci)
    opts = dict(maxiter=5000, maxfun=20000, ftol=1e-15, gtol=1e-9, maxcor=30)
    x, _, res, nit, probe_msg = lbfgsb_probed(fg, x0, bounds, diag_idx, opts,
                                              probe=re_cov == "unstructured", perturb=perturb,
                                              fun=lambda xx: prob.laplace(to_beta(xx), xx[:kt], want_grad=False)[0])
    ok_opt = bool(res.success)
    opt_msg = str(res.message)

    if method == "laplace":
        def grad_x(xx):
            return fg(xx)[1]

        fun_val = lambda xx: fg(xx)[0]  # noqa: E731
        x, H, nit2 = newton_polish_hessian(fun_val, grad_x, x, bounds, free_fn)
        for _ in range(3):  # a saddle on (or stalled near) the boundary: restart from the better point
            found = boundary_descent(fg, x, fun_val(x), diag_idx, fun=fun_val)
            if found is None:
                break
            x, _, res, nit_more, _ = lbfgsb_escape(fg, found[0], bounds, diag_idx, opts, perturb=perturb, fun=fun_val)
            ok_opt, opt_msg = bool(res.success), str(res.message)
            x, H, nit_more2 = newton_polish_hessian(fun_val, grad_x, x, bounds, free_fn)
            nit += nit_more + nit_more2
        method_label = "Laplace"
    else:
        gh_z, gh_w = np.polynomial.hermite_e.hermegauss(n_agq)
        grids = np.meshgrid(*([gh_z] * d.q), indexing="ij")
        z = np.column_stack([gg.ravel() for gg in grids])
        wgrids = np.meshgrid(*([np.log(gh_w)] * d.q), indexing="ij")
        logw = sum(gg.ravel() for gg in wgrids)

        def fun_val(xx):
            F, _ = prob.agq(to_beta(xx), xx[:kt], z, logw)
            return F if np.isfinite(F) else 1e300

        def grad_x(xx, h=1e-6):
            g = np.empty(len(xx))
            fr = free_fn(xx)
            for i in range(len(xx)):
                e = np.zeros(len(xx))
                e[i] = h
                if fr[i]:
                    g[i] = (fun_val(xx + e) - fun_val(xx - e)) / (2 * h)
                else:  # one-sided at the boundary
                    g[i] = (fun_val(xx + e) - fun_val(xx)) / h
            return g

        def hess_agq(xx, fr):
            return hessian_fd(lambda zz: fun_val(put(xx, fr, zz)), xx[fr], 1e-4)

        # Newton from the Laplace optimum (usually 1-2 steps); L-BFGS-B only if that fails.
        x, H, nit2 = newton_polish_hessian(fun_val, grad_x, x, bounds, free_fn, hess=hess_agq, max_newton=6)
        fr = free_fn(x)
        if np.abs(grad_x(x)[fr]).max() > 1e-5:
            x, _, res, nit_agq, _ = lbfgsb_escape(lambda xx: (fun_val(xx), grad_x(xx)), x, bounds, diag_idx,
                                                  dict(maxiter=1000, ftol=1e-15, gtol=1e-8), perturb=perturb)
            nit += nit_agq
            ok_opt = bool(res.success) or ok_opt
            opt_msg = str(res.message)
            x, H, nit3 = newton_polish_hessian(fun_val, grad_x, x, bounds, free_fn, hess=hess_agq)
            nit2 += nit3
        method_label = f"AGQ({n_agq})"
    nit += nit2

    # final quantities
    beta = to_beta(x)
    theta = x[:kt]
    if method == "laplace":
        F, g_final, md = prob.laplace(beta, theta)
        g_final = np.concatenate([g_final[:kt], linalg.solve_triangular(R, g_final[kt:], trans="T")])
    else:
        F, md = prob.agq(beta, theta, z, logw)
        g_final = grad_x(x)
    free = free_fn(x)
    pg = float(np.abs(g_final[free]).max()) if free.any() else 0.0
    converged = bool(np.isfinite(F) and (ok_opt or pg < 1e-4) and pg < 1e-2 and md["converged"])

    p_, q, m = d.p, d.q, d.m
    fr_idx = np.flatnonzero(free)
    vcov = np.full((p_, p_), np.nan)
    cov_x = None
    messages = []
    try:
        Hf = H
        cov_free = np.linalg.inv(Hf)
        if not np.all(np.isfinite(cov_free)) or np.any(np.diag(cov_free) <= 0):
            raise np.linalg.LinAlgError
        cov_x = np.zeros((len(x), len(x)))
        cov_x[np.ix_(fr_idx, fr_idx)] = cov_free
        Rinv = linalg.solve_triangular(R, np.eye(p_))
        vcov = Rinv @ cov_x[kt:, kt:] @ Rinv.T
    except np.linalg.LinAlgError:
        messages.append("Hessian of the deviance is not positive definite: standard errors unavailable")

    lam_std = prob.lam(theta)
    lam = lam_std / d.z_scale[:, None]
    G = lam @ lam.T
    sd, corr, vc_vals = _sd_corr(G, re_cov)

    # theta-conditional (penalised IRLS) vcov
    w, ZL = md["w"], md["ZL"]
    XtWX = (d.X * w[:, None]).T @ d.X
    Hm = np.eye(q) + prob.gsum(ZL[:, :, None] * ZL[:, None, :] * w[:, None, None])
    Hinv = np.linalg.inv(Hm)
    for gg in range(m):
        s, ng = d.starts[gg], d.sizes[gg]
        B = (d.X[s:s + ng] * w[s:s + ng, None]).T @ ZL[s:s + ng]
        XtWX -= B @ Hinv[gg] @ B.T
    try:
        vcov_cond = np.linalg.inv(XtWX)
    except np.linalg.LinAlgError:
        vcov_cond = np.full((p_, p_), np.nan)

    blups = (lam @ md["u"].T).T
    cond_var = lam[None] @ Hinv @ lam.T[None]

    messages = boundary_messages(lam_std, sd, corr, d.random_names, SINGULAR_TOL) + messages
    if probe_msg:
        messages.append(probe_msg)
    status = "singular" if any(mm.startswith("singular") for mm in messages) else "ok"
    if not converged:
        status = "not converged"
        messages.insert(0, f"optimizer did not converge: {opt_msg} (max |gradient| {pg:.3g})"
                        + ("" if md["converged"] else "; conditional modes did not converge"))
    bse_tmp = np.sqrt(np.abs(np.diag(vcov)))
    if np.any(np.abs(beta) > 15) or np.any(bse_tmp > 1e3):
        messages.append("some fixed effects are very large on the logit scale or have huge SEs: "
                        "possible (quasi-)separation, e.g. a trial with no events in one arm")

    vc_names = _vc_names(d.random_names, re_cov)
    vc_cov = np.full((len(vc_names), len(vc_names)), np.nan)
    if compute_vc_vcov and cov_x is not None:
        def psi(th):
            L = prob.lam(th) / d.z_scale[:, None]
            return _sd_corr(L @ L.T, re_cov)[2]

        fr_t = free[:kt]
        if fr_t.any():
            J = _fd_jacobian(lambda tt: psi(put(theta, fr_t, tt)), theta[fr_t], 1e-6)
            vc_cov = J @ cov_x[np.ix_(np.flatnonzero(fr_t), np.flatnonzero(fr_t))] @ J.T
        rel_sd = np.sqrt((lam_std ** 2).sum(axis=1))
        bad = [j for j in range(q) if rel_sd[j] < SINGULAR_TOL]
        idx = q
        if re_cov == "unstructured":
            for j in range(q):
                for i in range(j + 1, q):
                    if i in bad or j in bad or abs(corr[i, j]) > 1 - 1e-4:
                        bad.append(idx)
                    idx += 1
        for j in set(bad):
            vc_cov[j, :] = np.nan
            vc_cov[:, j] = np.nan
    re_sd_se = np.sqrt(np.diag(vc_cov)[:q])

    loglik = -F + prob.lchoose
    fields = labelled_fields(d, m, beta, vcov, G, sd, corr, re_sd_se, vc_names, vc_vals, vc_cov, blups)
    fi = fields["params"].index
    return MixedResult(
        model="binomial GLMM (logit link)",
        method=method_label,
        **fields,
        vcov_note="vcov = beta block of the inverse finite-difference Hessian of the deviance in (theta, beta) "
                  "(lme4 default); theta-conditional version in extra['bse_conditional']",
        sigma=None,
        sigma_by_group=None,
        loglik=loglik,
        reml_criterion=None,
        deviance=-2 * loglik,
        blup_cond_var=cond_var,
        converged=converged,
        status=status,
        messages=messages,
        n_iter=nit,
        n_fev=prob.nfev,
        optimizer="L-BFGS-B (analytic Laplace gradient) + Newton polish"
        + ("; AGQ: L-BFGS-B (finite-difference gradient)" if method == "agq" else ""),
        re_cov_structure=re_cov,
        residual="binomial",
        theta=lam[prob.ri, prob.ci],
        extra={"max_abs_gradient": pg, "lchoose_constant": prob.lchoose,
               "vcov_conditional": pd.DataFrame(vcov_cond, index=fi, columns=fi),
               "bse_conditional": pd.Series(np.sqrt(np.diag(vcov_cond)), index=fi, name="bse_conditional")},
    )


def laplace_criterion(y, X, Z, groups, *, re_cov: str = "unstructured", trials_n=None):
    """The criterion :func:`fit_glmm_binomial` (Laplace) minimises, for independent checks:
    ``f(theta, beta) -> -2 log L`` (Laplace; ``-2 * MixedResult.loglik`` at the fit) with ``theta`` =
    :attr:`MixedResult.theta` (Cholesky factor of G on the scale of the Z columns) and ``beta`` =
    the fixed effects in the order of the X columns."""
    check_choice(re_cov, "re_cov", ("unstructured", "diagonal"))
    n = len(np.asarray(y)) if np.ndim(y) else 0
    ntr0 = binomial_sizes(y, trials_n, n)
    d = prepare(y, X, Z, groups)
    prob = _GlmmProblem(d, ntr0[d.order], re_cov)
    scale = d.z_scale[prob.ri]

    def f(theta, beta):
        F, _ = prob.laplace(np.asarray(beta, float), np.asarray(theta, float) * scale, want_grad=False)
        return 2 * (F - prob.lchoose)

    return f
