"""Result object shared by :func:`fit_lmm` and :func:`fit_glmm_binomial`.

Fixed-effect inference is Wald: z = estimate / SE, two-sided normal p-values and normal
confidence intervals (no small-sample degrees-of-freedom correction).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

STATUSES = ("ok", "singular", "not converged")


def _num(x):
    """Plain JSON-able number (NaN/inf -> None)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def labelled_fields(d, m: int, beta, vcov, G, sd, corr, re_sd_se, vc_names: list, vc_vals, vc_cov, blups) -> dict:
    """The :class:`MixedResult` fields both fitters fill the same way: names, counts, and the
    estimates as Series/DataFrames labelled by the design ``d``'s fixed and random names, group
    labels and the variance-component names. One Index per axis, shared by every frame (building
    an Index from a list of strings costs ~0.1 ms; a result needs a dozen)."""
    fi, ri_, vi, li = pd.Index(d.fixed_names), pd.Index(d.random_names), pd.Index(vc_names), pd.Index(d.labels)
    return dict(
        fixed_names=d.fixed_names, random_names=d.random_names, group_labels=list(d.labels), nobs=d.n, ngroups=m,
        params=pd.Series(beta, index=fi, name="params"),
        vcov=pd.DataFrame(vcov, index=fi, columns=fi),
        re_cov=pd.DataFrame(G, index=ri_, columns=ri_),
        re_sd=pd.Series(sd, index=ri_, name="sd"),
        re_corr=pd.DataFrame(corr, index=ri_, columns=ri_),
        re_sd_se=pd.Series(re_sd_se, index=ri_, name="sd_se"),
        vc_params=pd.Series(vc_vals, index=vi),
        vc_vcov=pd.DataFrame(vc_cov, index=vi, columns=vi),
        blups=pd.DataFrame(blups, index=li, columns=ri_),
    )


@dataclass
class MixedResult:
    """A fitted mixed model.

    Attributes
    ----------
    model, method : description of the model ("linear mixed model", "binomial GLMM (logit)")
        and estimation method ("REML", "ML", "Laplace", "AGQ(n)").
    params, bse : fixed effects and their standard errors (pandas Series by fixed-effect name).
    vcov : covariance matrix of the fixed effects (DataFrame); see ``vcov_note``.
    re_cov, re_sd, re_corr : random-effect covariance G, SDs and correlation matrix.
    re_sd_se : approximate SEs of the random-effect SDs (observed information; NaN at a boundary).
    vc_params, vc_vcov : variance-component parameters (SDs, correlations, residual SDs) and
        their approximate covariance (inverse observed information, delta method).
    sigma : residual SD (LMM, common residual; for ``residual="by_group"`` None) ;
    sigma_by_group : residual SD per group (LMM, ``residual="by_group"``), else None.
    loglik : maximised (restricted, for REML) log-likelihood, on lme4's scale.
    reml_criterion, deviance : -2 loglik for REML / ML (Laplace/AGQ) fits (None otherwise).
    blups : predicted random effects per group (DataFrame, groups x random effects);
    blup_cond_var : their conditional covariance matrices (array groups x q x q).
    status : "ok", "singular" (boundary fit: SD ~ 0, |corr| ~ 1 or G not positive definite)
        or "not converged"; ``messages`` explains.
    """

    model: str
    method: str
    fixed_names: list
    random_names: list
    group_labels: list
    nobs: int
    ngroups: int
    params: pd.Series
    vcov: pd.DataFrame
    vcov_note: str
    re_cov: pd.DataFrame
    re_sd: pd.Series
    re_corr: pd.DataFrame
    re_sd_se: pd.Series
    vc_params: pd.Series
    vc_vcov: pd.DataFrame
    sigma: float | None
    sigma_by_group: pd.Series | None
    loglik: float
    reml_criterion: float | None
    deviance: float | None
    blups: pd.DataFrame
    blup_cond_var: np.ndarray
    converged: bool
    status: str
    messages: list = field(default_factory=list)
    n_iter: int = 0
    n_fev: int = 0
    optimizer: str = ""
    re_cov_structure: str = "unstructured"
    residual: str = "common"
    theta: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    # ---- fixed-effect inference -------------------------------------------------------
    @property
    def bse(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.params.index, name="bse")

    @property
    def zvalues(self) -> pd.Series:
        return (self.params / self.bse).rename("z")

    tvalues = zvalues

    @property
    def pvalues(self) -> pd.Series:
        return pd.Series(2 * stats.norm.sf(np.abs(self.zvalues.to_numpy())), index=self.params.index, name="pvalues")

    def cov_params(self) -> pd.DataFrame:
        return self.vcov

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wald (normal) confidence intervals for the fixed effects."""
        z = stats.norm.ppf(1 - alpha / 2)
        se = self.bse
        return pd.DataFrame({"lower": self.params - z * se, "upper": self.params + z * se})

    def re_sd_conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wald intervals for the random-effect SDs on the log scale (NaN where no SE)."""
        z = stats.norm.ppf(1 - alpha / 2)
        sd, se = self.re_sd.to_numpy(), self.re_sd_se.to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.exp(z * se / sd)
        return pd.DataFrame({"lower": sd / f, "upper": sd * f}, index=self.re_sd.index)

    @property
    def n_params(self) -> int:
        return len(self.params) + len(self.vc_params)

    @property
    def aic(self) -> float:
        return -2 * self.loglik + 2 * self.n_params

    @property
    def bic(self) -> float:
        return -2 * self.loglik + math.log(self.nobs) * self.n_params

    # ---- reporting ---------------------------------------------------------------------
    def summary(self) -> str:
        lines = [
            f"Model: {self.model}",
            f"Method: {self.method}    Optimizer: {self.optimizer}",
            f"Observations: {self.nobs}    Groups: {self.ngroups}    "
            f"Random-effect covariance: {self.re_cov_structure}    Residual: {self.residual}",
            f"Log-likelihood: {self.loglik:.4f}"
            + (f"    REML criterion: {self.reml_criterion:.4f}" if self.reml_criterion is not None else "")
            + (f"    Deviance: {self.deviance:.4f}" if self.deviance is not None else ""),
            f"Status: {self.status}    Converged: {self.converged}    Iterations: {self.n_iter}",
            "",
            "Fixed effects (Wald z):",
        ]
        ci = self.conf_int()
        tab = pd.DataFrame({"estimate": self.params, "SE": self.bse, "z": self.zvalues, "p": self.pvalues,
                            "[0.025": ci["lower"], "0.975]": ci["upper"]})
        lines.append(tab.to_string(float_format=lambda v: f"{v:.5g}"))
        lines.append(f"  ({self.vcov_note})")
        lines += ["", "Random effects:"]
        re = pd.DataFrame({"SD": self.re_sd, "SE(SD)": self.re_sd_se, "variance": np.diag(self.re_cov.to_numpy())})
        lines.append(re.to_string(float_format=lambda v: f"{v:.5g}"))
        q = len(self.random_names)
        if q > 1 and self.re_cov_structure == "unstructured":
            lines.append("Correlations:")
            lines.append(self.re_corr.to_string(float_format=lambda v: f"{v:.4f}"))
        if self.sigma is not None:
            lines.append(f"Residual SD: {self.sigma:.5g}")
        if self.sigma_by_group is not None:
            s = self.sigma_by_group
            lines.append(f"Residual SD by group: min {s.min():.5g}, median {s.median():.5g}, max {s.max():.5g}")
        if self.messages:
            lines += ["", "Messages:"] + [f"  - {m}" for m in self.messages]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict:
        """Plain JSON-able summary (NaN -> None)."""
        ci = self.conf_int()

        def ser(s):
            return {str(k): _num(v) for k, v in s.items()}

        def mat(df):
            return [[_num(v) for v in row] for row in df.to_numpy()]

        return {
            "model": self.model,
            "method": self.method,
            "status": self.status,
            "converged": bool(self.converged),
            "messages": list(self.messages),
            "nobs": int(self.nobs),
            "ngroups": int(self.ngroups),
            "re_cov_structure": self.re_cov_structure,
            "residual": self.residual,
            "fixed_names": list(self.fixed_names),
            "random_names": list(self.random_names),
            "params": ser(self.params),
            "bse": ser(self.bse),
            "pvalues": ser(self.pvalues),
            "conf_int_95": {str(k): [_num(ci.loc[k, "lower"]), _num(ci.loc[k, "upper"])] for k in ci.index},
            "vcov": mat(self.vcov),
            "vcov_note": self.vcov_note,
            "re_sd": ser(self.re_sd),
            "re_sd_se": ser(self.re_sd_se),
            "re_corr": mat(self.re_corr),
            "re_cov": mat(self.re_cov),
            "vc_params": ser(self.vc_params),
            "sigma": _num(self.sigma),
            "sigma_by_group": None if self.sigma_by_group is None else ser(self.sigma_by_group),
            "loglik": _num(self.loglik),
            "reml_criterion": _num(self.reml_criterion),
            "deviance": _num(self.deviance),
            "aic": _num(self.aic),
            "bic": _num(self.bic),
            "n_iter": int(self.n_iter),
            "n_fev": int(self.n_fev),
            "optimizer": self.optimizer,
            "extra": {k: (_num(v) if isinstance(v, (int, float, np.floating)) else v)
                      for k, v in self.extra.items() if isinstance(v, (int, float, str, np.floating))},
        }


def boundary_messages(lam_std: np.ndarray, re_sd: np.ndarray, re_corr: np.ndarray, names: list,
                      tol: float = 1e-4) -> list[str]:
    """Describe a boundary (singular) random-effect covariance; empty list if none.

    ``lam_std`` is the relative Cholesky factor for unit-RMS Z columns (scale free):
    a diagonal entry below ``tol`` means G is singular.
    """
    msgs = []
    q = lam_std.shape[0]
    diag = np.abs(np.diag(lam_std))
    rel_sd = np.sqrt((lam_std ** 2).sum(axis=1))
    for j in range(q):
        if rel_sd[j] < tol:
            msgs.append(f"singular fit: random-effect SD of {names[j]!r} is ~0 (boundary of the parameter space)")
    for i in range(q):
        for j in range(i):
            if rel_sd[i] >= tol and rel_sd[j] >= tol and abs(re_corr[i, j]) > 1 - 1e-4:
                msgs.append(f"singular fit: correlation between random effects {names[j]!r} and {names[i]!r} "
                            f"is {re_corr[i, j]:+.4f} (|corr| ~ 1)")
    if not msgs and (diag < tol).any():
        msgs.append("singular fit: random-effect covariance matrix is not positive definite")
    return msgs
