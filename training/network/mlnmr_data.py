"""Data of a multilevel network meta-regression (ML-NMR): IPD rows, aggregate arms and the
quasi-Monte Carlo integration points of every aggregate arm's covariate distribution.

Inputs (pandas tables; see docs/network.md, "ML-NMR input"):

* **IPD** — one row per participant: ``trial``, ``treatment``, the outcome column (0–100 score
  for ``continuous``, 0/1 for ``binary``) and every covariate.
* **Aggregate arms** — one row per arm: ``trial``, ``treatment``, ``n`` and the outcome summary
  (``mean`` and ``sd`` — or ``se`` — for continuous; ``r`` events of ``n`` for binary), plus the
  covariate summaries: ``<cov>_mean`` and ``<cov>_sd`` for a continuous covariate, ``<cov>_mean``
  (a proportion in [0, 1]) for a binary one. A summary missing on an arm is taken from the
  trial's other arms (n-weighted mean; SD pooled); missing on every arm of a trial is an error
  naming the trial and column.

Integration (Phillippo et al. 2020, JRSS A 183:1189): ``n_int`` scrambled Sobol points (scipy
``qmc.Sobol``, fixed seed) in [0,1]^p are correlated through a Gaussian copula with correlation R
and mapped through each covariate's marginal quantile function: ``normal`` (mean, sd), ``gamma``
(mean, sd; shape (m/s)², scale s²/m), ``logitnormal`` (mean, sd on the 0–1 scale, the normal
parameters solved numerically) or ``bernoulli`` (proportion). The same points serve every arm (as
multinma does). R is assumed: by default the n-weighted mean of the IPD trials' within-trial
Spearman correlations, turned into the copula's normal correlation by 2·sin(π r/6)
(``cor_adjust = "spearman"`` in multinma; for a binary covariate this is an approximation).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, special, stats
from scipy.stats import qmc

from predict.errors import LbpError

MARGINS = ("normal", "gamma", "logitnormal", "bernoulli")
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(60)
_GH_W = _GH_W / _GH_W.sum()


def _logitnorm_params(mean: float, sd: float) -> tuple[float, float]:
    """(mu, sigma) of the normal whose expit has this mean and SD (Gauss–Hermite moments)."""
    if not (0 < mean < 1) or not (0 < sd < np.sqrt(mean * (1 - mean))):
        raise LbpError(f"logit-normal margin: mean {mean} / sd {sd} impossible on (0, 1)")

    def f(p):
        mu, ls = p
        v = special.expit(mu + np.exp(ls) * _GH_X)
        m1 = _GH_W @ v
        return [m1 - mean, np.sqrt(max(_GH_W @ v ** 2 - m1 ** 2, 1e-300)) - sd]

    sol = optimize.root(f, [special.logit(mean), np.log(max(sd / (mean * (1 - mean)), 1e-3))], method="hybr")
    if not sol.success or max(abs(np.asarray(f(sol.x)))) > 1e-6:
        raise LbpError(f"logit-normal margin: could not match mean {mean} / sd {sd}")
    return float(sol.x[0]), float(np.exp(sol.x[1]))


def quantile(kind: str, u: np.ndarray, mean: float, sd: float | None = None) -> np.ndarray:
    """Marginal quantile function (``kind`` in MARGINS) at probabilities ``u``."""
    if kind == "normal":
        return stats.norm.ppf(u, mean, sd)
    if kind == "gamma":
        if mean <= 0 or sd <= 0:
            raise LbpError(f"gamma margin needs mean > 0 and sd > 0 (got {mean}, {sd})")
        return stats.gamma.ppf(u, (mean / sd) ** 2, scale=sd ** 2 / mean)
    if kind == "logitnormal":
        mu, s = _logitnorm_params(mean, sd)
        return special.expit(stats.norm.ppf(u, mu, s))
    if kind == "bernoulli":
        if not 0 <= mean <= 1:
            raise LbpError(f"bernoulli margin needs a proportion in [0, 1] (got {mean})")
        return (u > 1.0 - mean).astype(float)
    raise LbpError(f"unknown margin {kind!r} (one of {', '.join(MARGINS)})")


def copula_correlation(ipd: pd.DataFrame, covariates: list[str]) -> np.ndarray:
    """Gaussian-copula correlation: n-weighted mean of the IPD trials' within-trial Spearman
    correlations, adjusted by 2·sin(π r/6); identity without IPD or with one covariate."""
    p = len(covariates)
    if ipd is None or ipd.empty or p < 2:
        return np.eye(p)
    acc, w = np.zeros((p, p)), 0.0
    for _, g in ipd.groupby("trial", sort=True):
        if len(g) < 3:
            continue
        r = g[covariates].rank().corr().to_numpy()
        r = np.where(np.isfinite(r), r, 0.0)
        np.fill_diagonal(r, 1.0)
        acc += len(g) * r
        w += len(g)
    if w == 0:
        return np.eye(p)
    r = 2.0 * np.sin(np.pi * (acc / w) / 6.0)
    np.fill_diagonal(r, 1.0)
    ev, V = np.linalg.eigh(r)  # nearest positive-definite (eigenvalue clipping)
    if ev.min() < 1e-6:
        r = V @ np.diag(np.clip(ev, 1e-6, None)) @ V.T
        d = np.sqrt(np.diag(r))
        r = r / np.outer(d, d)
    return r


def sobol_normals(n_int: int, corr: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n_int, p) copula uniforms: scrambled Sobol points correlated through a Gaussian copula."""
    p = corr.shape[0]
    if p == 0:
        return np.zeros((n_int, 0))
    u = qmc.Sobol(d=p, scramble=True, seed=seed).random(n_int)
    z = stats.norm.ppf(np.clip(u, 1e-12, 1 - 1e-12)) @ np.linalg.cholesky(corr).T
    return stats.norm.cdf(z)


@dataclass
class NetworkData:
    """Arrays of one ML-NMR network. Treatment 0 is the reference; ``cls[t]`` the interaction class
    of treatment t (class 0 = the reference's class, whose interactions are 0). Arms: every
    (trial, treatment) pair, ``arm_base[a]`` the arm of its trial's baseline treatment (the trial's
    earliest treatment in network order)."""

    outcome_type: str
    treatments: list
    studies: list
    covariates: list
    class_names: list
    cls: np.ndarray
    centre: np.ndarray
    study_base: np.ndarray
    arm_study: np.ndarray
    arm_trt: np.ndarray
    arm_base: np.ndarray
    ipd_arm: np.ndarray
    ipd_X: np.ndarray
    ipd_y: np.ndarray
    agd_arm: np.ndarray
    agd_X: np.ndarray
    agd_y: np.ndarray
    agd_se: np.ndarray
    agd_n: np.ndarray
    source: dict
    margins: dict
    corr: np.ndarray
    n_int: int
    excluded: dict = field(default_factory=dict)
    study_means: dict = field(default_factory=dict)
    agd_xmean: np.ndarray | None = None  # (aggregate arms, p) reported covariate means (exact for the identity link)

    @property
    def ipd_study(self) -> np.ndarray:
        return self.arm_study[self.ipd_arm]

    @property
    def ipd_studies(self) -> list:
        return [s for s in self.studies if self.source[s] == "ipd"]

    def summary(self) -> dict:
        return {"treatments": list(self.treatments), "trials": len(self.studies),
                "ipd_trials": sum(v == "ipd" for v in self.source.values()),
                "aggregate_trials": sum(v == "aggregate" for v in self.source.values()),
                "ipd_participants": int(len(self.ipd_y)), "aggregate_participants": int(self.agd_n.sum()),
                "covariates": list(self.covariates), "margins": dict(self.margins), "n_int": self.n_int,
                "copula_correlation": np.round(self.corr, 4).tolist(), "excluded": dict(self.excluded),
                "centre": dict(zip(self.covariates, map(float, self.centre)))}


def _num(df: pd.DataFrame, col: str, what: str) -> np.ndarray:
    v = pd.to_numeric(df[col], errors="coerce")
    bad = v.isna() & df[col].notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise LbpError(f"{what}: column {col!r} row {i + 1} (trial {df['trial'].iloc[i]}): {df[col].iloc[i]!r} is not a number")
    return np.array(v.to_numpy(float), dtype=float)


def _arm_summaries(agd: pd.DataFrame, cov: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-arm (mean, sd) of a covariate, filled from the trial's other arms when missing."""
    m = _num(agd, f"{cov}_mean", "aggregate arms") if f"{cov}_mean" in agd else np.full(len(agd), np.nan)
    s = _num(agd, f"{cov}_sd", "aggregate arms") if f"{cov}_sd" in agd else np.full(len(agd), np.nan)
    n = np.array(agd["n"].to_numpy(float), dtype=float)
    for t, idx in agd.groupby("trial", sort=False).indices.items():
        ok = np.isfinite(m[idx])
        if not ok.any():
            raise LbpError(f"aggregate arms: trial {t} has no '{cov}_mean' (covariate summaries are needed for ML-NMR)")
        m[idx[~ok]] = np.average(m[idx[ok]], weights=n[idx[ok]])
        if kind != "bernoulli":
            oks = np.isfinite(s[idx])
            if not oks.any():
                raise LbpError(f"aggregate arms: trial {t} has no '{cov}_sd'")
            s[idx[~oks]] = np.sqrt(np.average(s[idx[oks]] ** 2, weights=n[idx[oks]]))
    return m, s


def build_network(ipd: pd.DataFrame | None, agd: pd.DataFrame | None, *, outcome: str = "value",
                  outcome_type: str = "continuous", covariates: tuple = (), margins: dict | None = None,
                  reference: str | None = None, classes: dict | None = None, n_int: int = 64,
                  corr: np.ndarray | None = None, seed: int = 0, treatments: list | None = None) -> NetworkData:
    """The arrays of an ML-NMR. ``classes`` maps a treatment to its interaction class (default:
    each treatment its own class, i.e. independent interactions; the reference's class has none).
    ``margins`` maps each covariate to one of MARGINS (default normal; 0/1 IPD columns bernoulli)."""
    if outcome_type not in ("continuous", "binary"):
        raise LbpError(f"outcome_type must be continuous or binary (got {outcome_type!r})")
    covariates = list(covariates)
    excluded = {}
    if ipd is not None and len(ipd):
        need = ["trial", "treatment", outcome] + covariates
        miss = [c for c in need if c not in ipd.columns]
        if miss:
            raise LbpError(f"IPD: missing column(s) {', '.join(miss)}")
        ipd = ipd[need].copy()
        ipd["trial"], ipd["treatment"] = ipd["trial"].astype(str), ipd["treatment"].astype(str)
        n0 = len(ipd)
        ipd = ipd.dropna(subset=[outcome] + covariates)
        excluded["ipd_missing_outcome_or_covariate"] = n0 - len(ipd)
    else:
        ipd = None
    if agd is not None and len(agd):
        need = ["trial", "treatment", "n"] + (["mean"] if outcome_type == "continuous" else ["r"])
        miss = [c for c in need if c not in agd.columns]
        if outcome_type == "continuous" and "sd" not in agd.columns and "se" not in agd.columns:
            miss.append("sd (or se)")
        if miss:
            raise LbpError(f"aggregate arms: missing column(s) {', '.join(miss)}")
        agd = agd.copy()
        agd["trial"], agd["treatment"] = agd["trial"].astype(str), agd["treatment"].astype(str)
        if ipd is not None:
            both = sorted(set(agd["trial"]) & set(ipd["trial"]))
            agd = agd[~agd["trial"].isin(both)]
            excluded["aggregate_trials_given_as_ipd"] = len(both)
    else:
        agd = None
    if ipd is None and agd is None:
        raise LbpError("ML-NMR: no IPD and no aggregate data")
    margins = dict(margins or {})
    for c in covariates:
        if c not in margins:
            binary = ipd is not None and set(pd.unique(ipd[c])) <= {0, 1, 0.0, 1.0, True, False}
            margins[c] = "bernoulli" if binary else "normal"
        if margins[c] not in MARGINS:
            raise LbpError(f"covariate {c!r}: unknown margin {margins[c]!r}")
    # treatments and studies
    seen = list(ipd["treatment"].unique() if ipd is not None else []) + list(agd["treatment"].unique() if agd is not None else [])
    trts = list(treatments) if treatments else sorted(set(seen))
    if reference is not None:
        if reference not in trts:
            raise LbpError(f"reference treatment {reference!r} is not in the network")
        trts = [reference] + [t for t in trts if t != reference]
    tix = {t: i for i, t in enumerate(trts)}
    classes = dict(classes or {})
    cname = [classes.get(trts[0], trts[0])]
    for t in trts[1:]:
        c = classes.get(t, t)
        if c not in cname:
            cname.append(c)
    cls = np.array([cname.index(classes.get(t, t)) for t in trts])
    studies, source = [], {}
    arms = []  # (study, trt)
    for df, src in ((ipd, "ipd"), (agd, "aggregate")):
        if df is None:
            continue
        for s, g in df.groupby("trial", sort=True):
            ts = sorted(set(g["treatment"]), key=tix.get)
            if len(ts) < 2:
                excluded.setdefault(f"{src}_single_arm_trials", 0)
                excluded[f"{src}_single_arm_trials"] += 1
                continue
            studies.append(s)
            source[s] = src
            arms += [(s, t) for t in ts]
    six = {s: i for i, s in enumerate(studies)}
    aix = {a: i for i, a in enumerate(arms)}
    arm_study = np.array([six[s] for s, _ in arms])
    arm_trt = np.array([tix[t] for _, t in arms])
    study_base = np.array([min(tix[t] for s2, t in arms if s2 == s) for s in studies])
    arm_base = np.array([aix[(s, trts[study_base[six[s]]])] for s, _ in arms])
    p = len(covariates)
    if ipd is not None:
        ipd = ipd[ipd["trial"].isin(six)]
        ipd_arm = np.array([aix[(s, t)] for s, t in zip(ipd["trial"], ipd["treatment"])], dtype=int)
        ipd_X = ipd[covariates].to_numpy(float).reshape(len(ipd), p)
        ipd_y = ipd[outcome].to_numpy(float)
        if outcome_type == "binary" and not np.isin(ipd_y, (0.0, 1.0)).all():
            raise LbpError(f"IPD: binary outcome {outcome!r} must be 0/1")
    else:
        ipd_arm, ipd_X, ipd_y = np.zeros(0, int), np.zeros((0, p)), np.zeros(0)
    R = copula_correlation(ipd, covariates) if corr is None else np.asarray(corr, float)
    if agd is not None:
        agd = agd[agd["trial"].isin(six)].reset_index(drop=True)
        U = sobol_normals(n_int, R, seed)
        agd_arm = np.array([aix[(s, t)] for s, t in zip(agd["trial"], agd["treatment"])], dtype=int)
        n = _num(agd, "n", "aggregate arms")
        if np.any(~np.isfinite(n)) or np.any(n < 1):
            raise LbpError("aggregate arms: column 'n' must be a positive count on every row")
        agd_X = np.zeros((len(agd), n_int, p))
        agd_xmean = np.zeros((len(agd), p))
        for j, c in enumerate(covariates):
            m, s = _arm_summaries(agd, c, margins[c])
            agd_xmean[:, j] = m
            for a in range(len(agd)):
                agd_X[a, :, j] = quantile(margins[c], U[:, j], m[a], s[a])
        if outcome_type == "continuous":
            y = _num(agd, "mean", "aggregate arms")
            se = _num(agd, "se", "aggregate arms") if "se" in agd else _num(agd, "sd", "aggregate arms") / np.sqrt(n)
            if np.any(~np.isfinite(y)) or np.any(~(se > 0)):
                raise LbpError("aggregate arms: every arm needs a finite 'mean' and a positive 'sd' (or 'se')")
        else:
            y = _num(agd, "r", "aggregate arms")
            se = np.zeros(len(agd))
            if np.any(~np.isfinite(y)) or np.any((y < 0) | (y > n)):
                raise LbpError("aggregate arms: 'r' must be a count between 0 and n on every row")
    else:
        agd_arm, agd_X, y, se, n = np.zeros(0, int), np.zeros((0, n_int, p)), np.zeros(0), np.zeros(0), np.zeros(0)
        agd_xmean = np.zeros((0, p))
    # centring: IPD rows weight 1, each aggregate arm's integration points weight n / n_int (multinma)
    wsum = len(ipd_y) + n.sum()
    centre = (ipd_X.sum(0) + np.einsum("a,aip->p", n / n_int, agd_X)) / wsum if p else np.zeros(0)
    means = {}
    for s in studies:
        if source[s] == "ipd":
            means[s] = ipd_X[arm_study[ipd_arm] == six[s]].mean(0)
        else:
            sel = arm_study[agd_arm] == six[s]
            means[s] = np.einsum("a,aip->p", n[sel], agd_X[sel]) / (n[sel].sum() * n_int)
    return NetworkData(outcome_type, trts, studies, covariates, cname, cls, centre, study_base, arm_study, arm_trt,
                       arm_base, ipd_arm, ipd_X, ipd_y, agd_arm, agd_X, y, se, n, source, margins, R, n_int,
                       excluded, {s: v.tolist() for s, v in means.items()}, agd_xmean)
