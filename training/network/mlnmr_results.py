"""What an ML-NMR fit says: relative effects in any population (each trial's, a target, one
patient) with credible and predictive intervals, rankings (posterior rank probabilities, SUCRA),
the evidence behind each comparison, model fit (residual deviance, DIC) and the consistency vs
unrelated-mean-effects (UME) check.

Predictive interval for a new trial: draws of d_k(x) + τ·z with z ~ N(0, 1) drawn once with a
fixed seed (no sampling beyond that). Rankings: at each draw treatments are ranked by their effect
(``lower_better`` if lower outcomes are better); SUCRA = (T − mean rank)/(T − 1). DIC = D̄ + pD
with pD = var(D)/2 (Gelman et al. 2004), D the deviance at each draw.
"""
from __future__ import annotations

import numpy as np

from training.network.mlnmr import MLNMRFit

Z_SEED = 20240229


def _q(a: np.ndarray, lv: float = 0.95) -> tuple[float, float]:
    lo, hi = np.quantile(a, [(1 - lv) / 2, (1 + lv) / 2])
    return float(lo), float(hi)


def fixed_normals(n: int, seed: int = Z_SEED) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


def effects_table(fit: MLNMRFit, x, reference: str | None = None, level: float = 0.95) -> list:
    """Every treatment vs ``reference`` (default: the network reference) at covariates ``x``:
    posterior mean, SD, CrI, predictive interval (random effects), P(effect < 0)."""
    D = fit.data
    re = fit.relative_effects(x)
    r = D.treatments.index(reference) if reference else 0
    rel = re - re[:, [r]]
    tau = fit.tau()
    z = fixed_normals(rel.shape[0])
    out = []
    for j, t in enumerate(D.treatments):
        if j == r:
            continue
        v = rel[:, j]
        pred = v + tau * z
        out.append({"treatment": t, "vs": D.treatments[r], "mean": float(v.mean()), "sd": float(v.std(ddof=1)),
                    "cri": _q(v, level), "pri": _q(pred, level), "p_below_0": float((v < 0).mean())})
    return out


def rankings(fit: MLNMRFit, x, lower_better: bool = True) -> dict:
    """Posterior rank probabilities (treatment -> list over ranks 1..T), mean rank and SUCRA at ``x``."""
    re = fit.relative_effects(x)
    T = re.shape[1]
    order = np.argsort(re if lower_better else -re, axis=1, kind="stable")
    ranks = np.empty_like(order)
    ranks[np.arange(re.shape[0])[:, None], order] = np.arange(1, T + 1)
    out = {}
    for j, t in enumerate(fit.data.treatments):
        probs = [float((ranks[:, j] == k).mean()) for k in range(1, T + 1)]
        mr = float(ranks[:, j].mean())
        out[t] = {"rank_probabilities": probs, "mean_rank": mr, "sucra": (T - mr) / (T - 1) if T > 1 else 1.0}
    return out


def evidence(fit: MLNMRFit, reference: str | None = None) -> dict:
    """Per treatment vs the reference: ``direct (IPD)`` if an IPD trial compares them,
    ``direct (aggregate only)`` if only aggregate trials do, else ``indirect only``; with the
    numbers of trials and participants on that treatment."""
    D = fit.data
    ref = reference or D.treatments[0]
    ri = D.treatments.index(ref)
    arms_of = {}
    for a, (s, t) in enumerate(zip(D.arm_study, D.arm_trt)):
        arms_of.setdefault(int(s), set()).add(int(t))
    n_arm = np.zeros(len(D.arm_trt))
    np.add.at(n_arm, D.ipd_arm, 1.0)
    np.add.at(n_arm, D.agd_arm, D.agd_n)
    out = {}
    for j, t in enumerate(D.treatments):
        if j == ri:
            continue
        direct = [s for s, ts in arms_of.items() if {j, ri} <= ts]
        src = {D.source[D.studies[s]] for s in direct}
        kind = "direct (IPD)" if "ipd" in src else ("direct (aggregate only)" if src else "indirect only")
        trials = [s for s, ts in arms_of.items() if j in ts]
        out[t] = {"evidence": kind, "direct_trials": len(direct),
                  "direct_ipd_trials": sum(D.source[D.studies[s]] == "ipd" for s in direct),
                  "trials": len(trials), "participants": int(n_arm[D.arm_trt == j].sum())}
    return out


def linear_predictors(fit: MLNMRFit, max_draws: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(draw index, η of every IPD row (S, n_ipd), η of every aggregate arm's points (S, arms, n_int))."""
    D = fit.data
    S = fit.flat("mu").shape[0]
    idx = np.linspace(0, S - 1, min(S, max_draws)).astype(int)
    mu = fit.flat("mu")[idx]
    if fit.consistency == "ume":
        c = fit.flat("c")[idx]
        comp = {bk: i for i, bk in enumerate(fit.comps)}
        rel = np.zeros((len(idx), len(D.arm_trt)))
        for a in range(len(D.arm_trt)):
            b, k = D.arm_trt[D.arm_base[a]], D.arm_trt[a]
            if b != k:
                rel[:, a] = c[:, comp[(b, k)]]
    else:
        d = fit.d()[idx]
        rel = d[:, D.arm_trt] - d[:, D.arm_trt[D.arm_base]]
    eta_arm = mu[:, D.arm_study] + rel
    if fit.effects == "random" and "delta" in fit.draws:  # marginalised fit: δ drawn from its conditional
        eta_arm = eta_arm + fit.flat("delta")[idx]
    elif fit.effects == "random":
        u = fit.flat("u")[idx]
        eta_arm = eta_arm + fit.tau()[idx, None] / np.sqrt(2.0) * (u - u[:, D.arm_base])
    p = len(D.covariates)
    if p:
        beta = fit.flat("beta")[idx]
        g = np.zeros((len(idx), len(D.class_names), p))
        if "gamma" in fit.draws:
            g[:, 1:] = fit.flat("gamma")[idx]
        slope = beta[:, None, :] + g[:, D.cls[D.arm_trt], :]  # (S, arms, p)
    e_ipd = eta_arm[:, D.ipd_arm]
    e_agd = np.repeat(eta_arm[:, D.agd_arm][:, :, None], D.n_int, axis=2) if len(D.agd_arm) else np.zeros((len(idx), 0, D.n_int))
    if p:
        e_ipd = e_ipd + np.einsum("np,snp->sn", D.ipd_X - D.centre, slope[:, D.ipd_arm])
        if len(D.agd_arm):
            e_agd = e_agd + np.einsum("aip,sap->sai", D.agd_X - D.centre, slope[:, D.agd_arm])
    return idx, e_ipd, e_agd


def deviance(fit: MLNMRFit, max_draws: int = 1000) -> dict:
    """Posterior mean residual deviance contributions and DIC (pD = var(D)/2)."""
    from scipy import special, stats

    D = fit.data
    idx, e_ipd, e_agd = linear_predictors(fit, max_draws)
    if D.outcome_type == "continuous":
        ll = np.zeros(len(idx))
        if len(D.ipd_y):
            sig = fit.flat("sigma")[idx]
            six = np.searchsorted(np.array(sorted(set(D.ipd_study.tolist()))), D.ipd_study)
            ll += stats.norm.logpdf(D.ipd_y, e_ipd, sig[:, six]).sum(1)
        if len(D.agd_y):
            ll += stats.norm.logpdf(D.agd_y, e_agd.mean(2), D.agd_se).sum(1)
    else:
        def pr(e):
            return special.ndtr(e) if fit.link == "probit" else special.expit(e)
        ll = np.zeros(len(idx))
        if len(D.ipd_y):
            p = np.clip(pr(e_ipd), 1e-12, 1 - 1e-12)
            ll += (D.ipd_y * np.log(p) + (1 - D.ipd_y) * np.log1p(-p)).sum(1)
        if len(D.agd_y):
            p = np.clip(pr(e_agd), 1e-12, 1 - 1e-12)
            pbar, p2 = p.mean(2), (p ** 2).mean(2)
            n, r = D.agd_n, D.agd_y
            if fit.likelihood == "bernoulli2":
                n, q = n * pbar ** 2 / p2, p2 / pbar
            else:
                q = pbar
            ll += (special.gammaln(n + 1) - special.gammaln(r + 1) - special.gammaln(np.maximum(n - r, 1e-9) + 1)
                   + r * np.log(q) + (n - r) * np.log1p(-q)).sum(1)
    dev = -2.0 * ll
    pd_ = float(dev.var(ddof=1) / 2.0)
    return {"mean_deviance": float(dev.mean()), "pD": pd_, "DIC": float(dev.mean() + pd_), "draws": len(idx)}


def ume_check(fit: MLNMRFit, ume: MLNMRFit) -> dict:
    """Consistency vs UME: DIC of both, and per directly compared pair its UME effect beside the
    consistency model's (at the centring values)."""
    D = fit.data
    d = fit.d()
    c = ume.flat("c")
    rows = []
    for i, (b, k) in enumerate(ume.comps):
        cons = d[:, k] - d[:, b]
        rows.append({"comparison": f"{D.treatments[k]} vs {D.treatments[b]}", "ume_mean": float(c[:, i].mean()),
                     "ume_cri": _q(c[:, i]), "consistency_mean": float(cons.mean()), "consistency_cri": _q(cons)})
    dc, du = deviance(fit), deviance(ume)
    return {"consistency": dc, "ume": du, "dic_difference_ume_minus_consistency": du["DIC"] - dc["DIC"],
            "comparisons": rows,
            "reading": "UME DIC clearly lower (by > ~3-5) than the consistency model's, or UME estimates far from "
                       "the consistency estimates, suggests inconsistency (Dias et al. 2013, NICE DSU TSD 4)."}
