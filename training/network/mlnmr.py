"""Multilevel network meta-regression (ML-NMR; Phillippo et al. 2020, JRSS A 183:1189; the R
package multinma), fitted by NUTS with NumPyro on JAX (CPU).

Individual model (participant i of trial j on treatment k, covariates x centred at ``centre``):

    η_jk(x) = μ_j + (d_k − d_b(j)) + δ_jk + x'β + x'γ_class(k)

μ_j the trial's baseline-arm intercept (b(j) its earliest treatment in network order), d_k the
treatment effects vs the reference (d_ref = 0; consistency), β prognostic effects shared by all
trials, γ_c the treatment–covariate interactions of interaction class c (γ = 0 for the reference's
class; ``classes`` puts treatments in a class to share effect modifiers — the shared effect
modifier assumption — or, by default, each treatment is its own class). Random effects: δ_jk =
τ/√2·(u_jk − u_jb), u ~ N(0, 1) per arm — exactly δ_jk ~ N(0, τ²) with the usual ½ correlation
between the contrasts of a multi-arm trial; fixed effects: δ = 0.

* ``continuous`` (identity link; 0–100 scores): IPD y ~ N(η, σ_j²), σ_j per IPD trial; aggregate
  arm mean ȳ ~ N(η̄, se²) with η̄ the mean of η over the arm's integration points.
* ``binary`` (``logit`` or ``probit`` link): IPD y ~ Bernoulli(p(η)); aggregate events r of n use
  multinma's two-parameter binomial approximation (``bernoulli2``) of the sum of non-identical
  Bernoullis: p̄ = mean p, p̄₂ = mean p² over the integration points, r ~ Bin(n p̄²/p̄₂, p̄₂/p̄)
  (continuous n' through lgamma), or ``bernoulli`` r ~ Bin(n, p̄).

Priors (stated; :class:`Priors`): μ_j ~ N(0, s_μ²), d_k ~ N(0, s_d²), β, γ ~ N(0, s_β²),
τ ~ half-N(0, s_τ²), σ_j ~ half-N(0, s_σ²). Unrelated mean effects (``consistency="ume"``): every
compared pair (b, k) present in the data gets its own effect instead of d_k − d_b.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from predict.errors import LbpError
from training.network.mlnmr_data import NetworkData


class ConvergenceError(LbpError):
    """The sampler's diagnostics failed (R-hat, bulk/tail ESS or divergences); ``.diagnostics``."""

    def __init__(self, msg: str, diagnostics: dict):
        super().__init__(msg)
        self.diagnostics = diagnostics


@dataclass(frozen=True)
class Priors:
    intercept: float = 100.0  # μ_j ~ N(0, s²)
    trt: float = 100.0        # d_k ~ N(0, s²)
    reg: float = 10.0         # β, γ ~ N(0, s²)
    het: float = 10.0         # τ ~ half-N(0, s²)
    aux: float = 50.0         # σ_j ~ half-N(0, s²) (continuous)

    def describe(self) -> str:
        return (f"mu_j ~ N(0, {self.intercept:g}^2); d_k ~ N(0, {self.trt:g}^2); beta, gamma ~ N(0, {self.reg:g}^2); "
                f"tau ~ half-N(0, {self.het:g}^2); sigma_j ~ half-N(0, {self.aux:g}^2)")


@dataclass(frozen=True)
class Thresholds:
    rhat: float = 1.01      # Vehtari et al. 2021 (rank-normalised split R-hat)
    ess_bulk: float = 400.0  # 100 per chain with 4 chains
    ess_tail: float = 400.0
    divergences: int = 0


def _jax():
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def _arrays(data: NetworkData, consistency: str):
    import jax.numpy as jnp

    comps = []
    arm_comp = np.full(len(data.arm_trt), -1)
    for a in range(len(data.arm_trt)):
        b, k = data.arm_trt[data.arm_base[a]], data.arm_trt[a]
        if b != k:
            if (b, k) not in comps:
                comps.append((b, k))
            arm_comp[a] = comps.index((b, k))
    ipd_sid = data.arm_study[data.ipd_arm]
    ipd_studies = sorted(set(ipd_sid.tolist()))
    sig_ix = np.searchsorted(np.array(ipd_studies, int), ipd_sid) if len(ipd_sid) else np.zeros(0, int)
    # covariates are sampled on a standardised scale (x - centre) / scale, so that the regression
    # coefficients have posterior scales like the other parameters (NUTS step sizes, mass matrix)
    p_ = len(data.covariates)
    scale = np.ones(p_)
    if p_:
        parts = [data.ipd_X - data.centre] + ([(data.agd_X - data.centre).reshape(-1, p_)] if len(data.agd_arm) else [])
        allx = np.concatenate(parts, 0)
        sd = allx.std(0) if len(allx) > 1 else np.ones(p_)
        scale = np.where(sd > 1e-8, sd, 1.0)
    suff = None
    if data.outcome_type == "continuous" and len(data.ipd_y):
        arms = np.unique(data.ipd_arm)
        Xc = (data.ipd_X - data.centre) / scale
        y = data.ipd_y
        grp = np.searchsorted(arms, data.ipd_arm)
        k = len(arms)
        p = Xc.shape[1]
        n = np.bincount(grp, minlength=k).astype(float)
        Sy, Syy = np.bincount(grp, y, k), np.bincount(grp, y * y, k)
        Sx = np.zeros((k, p))
        Sxy = np.zeros((k, p))
        Sxx = np.zeros((k, p, p))
        np.add.at(Sx, grp, Xc)
        np.add.at(Sxy, grp, Xc * y[:, None])
        np.add.at(Sxx, grp, Xc[:, :, None] * Xc[:, None, :])
        sig_arm = np.searchsorted(np.array(ipd_studies, int), data.arm_study[arms])
        suff = {"arm": jnp.asarray(arms), "n": jnp.asarray(n), "Sy": jnp.asarray(Sy), "Syy": jnp.asarray(Syy),
                "Sx": jnp.asarray(Sx), "Sxy": jnp.asarray(Sxy), "Sxx": jnp.asarray(Sxx), "sig": jnp.asarray(sig_arm)}
    return {
        "suff": suff,
        "arm_study": jnp.asarray(data.arm_study), "arm_trt": jnp.asarray(data.arm_trt),
        "arm_base": jnp.asarray(data.arm_base), "base_trt": jnp.asarray(data.arm_trt[data.arm_base]),
        "arm_cls": jnp.asarray(data.cls[data.arm_trt]), "arm_comp": jnp.asarray(np.maximum(arm_comp, 0)),
        "arm_is_base": jnp.asarray(arm_comp < 0), "ipd_arm": jnp.asarray(data.ipd_arm),
        "scale": scale, "ipd_X": jnp.asarray((data.ipd_X - data.centre) / scale), "ipd_y": jnp.asarray(data.ipd_y),
        "sig_ix": jnp.asarray(sig_ix), "n_sig": len(ipd_studies), "agd_arm": jnp.asarray(data.agd_arm),
        "agd_X": jnp.asarray((data.agd_X - data.centre) / scale), "agd_y": jnp.asarray(data.agd_y),
        "agd_se": jnp.asarray(data.agd_se), "agd_n": jnp.asarray(data.agd_n), "comps": comps,
    }


def make_model(data: NetworkData, effects: str, link: str, priors: Priors, consistency: str, likelihood: str,
               marginal: bool = False):
    """The NumPyro model function (closure over the data arrays). ``marginal`` (continuous outcomes,
    identity link): μ_j and δ_jk integrated out exactly (training.network.mlnmr_gauss)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from jax.scipy.special import expit, gammaln, log_ndtr

    A = _arrays(data, consistency)
    ns, nt, p, nc = len(data.studies), len(data.treatments), len(data.covariates), len(data.class_names)
    narm = len(data.arm_trt)
    if marginal:
        from training.network.mlnmr_gauss import arm_statistics
        from training.network.mlnmr_marginal import model_and_args

        if data.outcome_type != "continuous" or link != "identity":
            raise LbpError("the marginalised ML-NMR is for continuous outcomes on the identity link")
        A["gauss"] = arm_statistics(data, A["scale"])
        return model_and_args(data, A, effects, consistency, priors), A

    def model():
        mu = numpyro.sample("mu", dist.Normal(0.0, priors.intercept).expand([ns]))
        if consistency == "ume":
            c = numpyro.sample("c", dist.Normal(0.0, priors.trt).expand([max(len(A["comps"]), 1)]))
            rel = jnp.where(A["arm_is_base"], 0.0, c[A["arm_comp"]])
        else:
            dr = numpyro.sample("d", dist.Normal(0.0, priors.trt).expand([nt - 1]))
            d = jnp.concatenate([jnp.zeros(1), dr])
            rel = d[A["arm_trt"]] - d[A["base_trt"]]
        eta_arm = mu[A["arm_study"]] + rel
        if effects == "random":
            tau = numpyro.sample("tau", dist.HalfNormal(priors.het))
            u = numpyro.sample("u", dist.Normal(0.0, 1.0).expand([narm]))
            eta_arm = eta_arm + tau / math.sqrt(2.0) * (u - u[A["arm_base"]])
        if p:
            sc = jnp.asarray(A["scale"])  # priors are on the original covariate scale
            beta = numpyro.sample("beta", dist.Normal(0.0, priors.reg * sc))
            if nc > 1:
                g = numpyro.sample("gamma", dist.Normal(0.0, priors.reg * jnp.broadcast_to(sc, (nc - 1, p))))
                slope = beta + jnp.concatenate([jnp.zeros((1, p)), g])[A["arm_cls"]]  # (arms, p)
            else:
                slope = jnp.broadcast_to(beta, (narm, p))
        if len(data.ipd_y):
            eta = eta_arm[A["ipd_arm"]]
            if p and data.outcome_type != "continuous":
                eta = eta + jnp.sum(A["ipd_X"] * slope[A["ipd_arm"]], -1)
            if data.outcome_type == "continuous":
                # exact Gaussian likelihood from per-arm sufficient statistics (O(arms·p²), not O(N·p))
                sigma = numpyro.sample("sigma", dist.HalfNormal(priors.aux).expand([A["n_sig"]]))
                st = A["suff"]
                a_ = eta_arm[st["arm"]]
                sq = st["Syy"] - 2 * a_ * st["Sy"] + st["n"] * a_ ** 2
                if p:
                    s_ = slope[st["arm"]]
                    sq = sq - 2 * jnp.sum(s_ * st["Sxy"], -1) + 2 * a_ * jnp.sum(s_ * st["Sx"], -1) \
                        + jnp.einsum("ap,apq,aq->a", s_, st["Sxx"], s_)
                sg = sigma[st["sig"]]
                numpyro.factor("y_ipd", jnp.sum(-st["n"] * (jnp.log(sg) + 0.5 * math.log(2 * math.pi)) - sq / (2 * sg ** 2)))
            elif link == "probit":
                y = A["ipd_y"]
                numpyro.factor("y_ipd", jnp.sum(y * log_ndtr(eta) + (1 - y) * log_ndtr(-eta)))
            else:
                numpyro.sample("y_ipd", dist.Bernoulli(logits=eta), obs=A["ipd_y"])
        if len(data.agd_y):
            eta = eta_arm[A["agd_arm"]][:, None]
            if p:
                eta = eta + jnp.einsum("aip,ap->ai", A["agd_X"], slope[A["agd_arm"]])
            if data.outcome_type == "continuous":
                numpyro.sample("y_agd", dist.Normal(eta.mean(1), A["agd_se"]), obs=A["agd_y"])
            else:
                from jax.scipy.special import ndtr

                pr = ndtr(eta) if link == "probit" else expit(eta)
                pr = jnp.clip(pr, 1e-12, 1 - 1e-12)
                pbar, p2 = pr.mean(1), (pr ** 2).mean(1)
                n, r = A["agd_n"], A["agd_y"]
                if likelihood == "bernoulli2":
                    n, q = n * pbar ** 2 / p2, p2 / pbar
                else:
                    q = pbar
                ll = gammaln(n + 1) - gammaln(r + 1) - gammaln(jnp.maximum(n - r, 1e-9) + 1) + r * jnp.log(q) \
                    + (n - r) * jnp.log1p(-q)
                numpyro.factor("y_agd", jnp.sum(ll))

    return model, A


@dataclass
class MLNMRFit:
    """Posterior draws (``draws``: name -> array (chains, draws, ...)), diagnostics and the data."""

    data: NetworkData
    effects: str
    link: str
    consistency: str
    likelihood: str
    priors: Priors
    draws: dict
    diagnostics: dict
    seconds: float
    comps: list = field(default_factory=list)

    def flat(self, name: str) -> np.ndarray:
        a = self.draws[name]
        return a.reshape((-1,) + a.shape[2:])

    def d(self) -> np.ndarray:
        """(S, treatments) treatment effects vs the reference (0 for the reference)."""
        dr = self.flat("d")
        return np.concatenate([np.zeros((dr.shape[0], 1)), dr], 1)

    def gamma(self) -> np.ndarray:
        """(S, treatments, p) interactions of each treatment vs the reference."""
        S, p = self.d().shape[0], len(self.data.covariates)
        if p == 0 or "gamma" not in self.draws:
            return np.zeros((S, len(self.data.treatments), p))
        g = np.concatenate([np.zeros((S, 1, p)), self.flat("gamma")], 1)
        return g[:, self.data.cls, :]

    def tau(self) -> np.ndarray:
        return self.flat("tau") if "tau" in self.draws else np.zeros(self.d().shape[0])

    def relative_effects(self, x) -> np.ndarray:
        """(S, treatments) effects vs the reference on the linear-predictor scale at covariate
        values ``x`` (uncentred; a population's mean covariates or one patient)."""
        d = self.d()
        if not len(self.data.covariates):
            return d
        xc = np.asarray(x, float) - self.data.centre
        return d + np.einsum("stp,p->st", self.gamma(), xc)

    def summary(self, names=("d", "beta", "gamma", "tau")) -> list:
        """Posterior mean, SD, 2.5/50/97.5% and the diagnostics of each scalar parameter."""
        rows = []
        for name in names:
            if name not in self.draws:
                continue
            a = self.flat(name).reshape(self.flat(name).shape[0], -1)
            labels = param_labels(self, name, a.shape[1])
            for j, lab in enumerate(labels):
                v = a[:, j]
                q = np.quantile(v, [0.025, 0.5, 0.975])
                dg = self.diagnostics["by_parameter"].get(lab, {})
                rows.append({"parameter": lab, "mean": float(v.mean()), "sd": float(v.std(ddof=1)),
                             "q2.5": float(q[0]), "median": float(q[1]), "q97.5": float(q[2]), **dg})
        return rows


def param_labels(fit: MLNMRFit, name: str, k: int) -> list:
    D = fit.data
    if name == "d":
        return [f"d[{t}]" for t in D.treatments[1:]]
    if name == "beta":
        return [f"beta[{c}]" for c in D.covariates]
    if name == "gamma":
        return [f"gamma[{c}:{cl}]" for cl in D.class_names[1:] for c in D.covariates]
    if name == "c":
        return [f"ume[{D.treatments[k2]} vs {D.treatments[b]}]" for b, k2 in fit.comps] or ["ume[none]"]
    if name == "mu":
        return [f"mu[{s}]" for s in D.studies]
    if name == "sigma":
        return [f"sigma[{s}]" for s in D.ipd_studies]
    return [name] if k == 1 else [f"{name}[{i}]" for i in range(k)]


def diagnose(draws: dict, diverging: np.ndarray, labels_of, thr: Thresholds) -> dict:
    """R-hat (rank-normalised split), bulk and tail ESS (ArviZ) of every monitored scalar, and the
    divergent transitions; ``ok`` and the list of ``problems``."""
    import warnings

    import arviz as az

    by = {}
    for name, a in draws.items():
        if name in ("u", "delta"):  # per-arm random effects: reported through tau
            continue
        flat = a.reshape(a.shape[0], a.shape[1], -1)
        labels = labels_of(name, flat.shape[2])
        for j, lab in enumerate(labels):
            x = flat[:, :, j]
            if np.ptp(x) == 0:
                continue
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                r, eb, et = float(az.rhat(x)), float(az.ess(x, method="bulk")), float(az.ess(x, method="tail"))
            by[lab] = {"rhat": r if math.isfinite(r) else float("inf"), "ess_bulk": eb if math.isfinite(eb) else 0.0,
                       "ess_tail": et if math.isfinite(et) else 0.0}
    ndiv = int(np.sum(diverging))
    problems = []
    if by:
        worst_r = max(by.items(), key=lambda kv: kv[1]["rhat"])
        low_b = min(by.items(), key=lambda kv: kv[1]["ess_bulk"])
        low_t = min(by.items(), key=lambda kv: kv[1]["ess_tail"])
        if not worst_r[1]["rhat"] <= thr.rhat:
            problems.append(f"R-hat {worst_r[1]['rhat']:.3f} > {thr.rhat} ({worst_r[0]})")
        if not low_b[1]["ess_bulk"] >= thr.ess_bulk:
            problems.append(f"bulk ESS {low_b[1]['ess_bulk']:.0f} < {thr.ess_bulk:g} ({low_b[0]})")
        if not low_t[1]["ess_tail"] >= thr.ess_tail:
            problems.append(f"tail ESS {low_t[1]['ess_tail']:.0f} < {thr.ess_tail:g} ({low_t[0]})")
    if ndiv > thr.divergences:
        problems.append(f"{ndiv} divergent transitions (> {thr.divergences})")
    vals = list(by.values())
    return {"ok": not problems, "problems": problems, "divergences": ndiv,
            "max_rhat": max((v["rhat"] for v in vals), default=float("nan")),
            "min_ess_bulk": min((v["ess_bulk"] for v in vals), default=float("nan")),
            "min_ess_tail": min((v["ess_tail"] for v in vals), default=float("nan")),
            "thresholds": asdict(thr), "by_parameter": by}


def fit_mlnmr(data: NetworkData, *, effects: str = "random", link: str | None = None, priors: Priors = Priors(),
              consistency: str = "consistency", likelihood: str = "bernoulli2", num_warmup: int = 500,
              num_samples: int = 500, num_chains: int = 4, chain_method: str = "sequential", seed: int = 0,
              thresholds: Thresholds = Thresholds(), check: bool = True, target_accept: float = 0.9,
              dense_mass: bool = False, marginal: bool | None = None, max_samples: int | None = None) -> MLNMRFit:
    """Fit the ML-NMR by NUTS. Raises :class:`ConvergenceError` when ``check`` and the diagnostics
    fail (``thresholds``); with ``check=False`` the problems are only reported in ``diagnostics``.
    ``marginal`` (default: every continuous outcome): sample with μ_j and δ_jk integrated out
    (training.network.mlnmr_gauss) and draw them afterwards from their exact conditional posterior.
    ``chain_method="sequential"`` (default): chains one after the other by one compiled loop
    (training.network.mlnmr_nuts); with ``max_samples`` > ``num_samples`` a fit whose R-hat or
    ESS misses the thresholds (and has no divergence) continues every chain for ``num_samples``
    more draws, up to ``max_samples`` per chain, before the thresholds are applied to all its draws.
    ``"vectorized"`` / ``"parallel"``: NumPyro's MCMC driver, no extension."""
    if effects not in ("random", "fixed"):
        raise LbpError(f"effects must be random or fixed (got {effects!r})")
    if consistency not in ("consistency", "ume"):
        raise LbpError(f"consistency must be consistency or ume (got {consistency!r})")
    link = link or ("identity" if data.outcome_type == "continuous" else "logit")
    ok_links = ("identity",) if data.outcome_type == "continuous" else ("logit", "probit")
    if link not in ok_links:
        raise LbpError(f"link {link!r} is not available for a {data.outcome_type} outcome ({', '.join(ok_links)})")
    if likelihood not in ("bernoulli", "bernoulli2"):
        raise LbpError(f"likelihood must be bernoulli or bernoulli2 (got {likelihood!r})")
    jax = _jax()
    import numpyro

    numpyro.set_host_device_count(1)
    if marginal is None:
        marginal = data.outcome_type == "continuous"
    if marginal and link != "identity":
        raise LbpError("the marginalised ML-NMR is for continuous outcomes on the identity link")
    t0 = time.perf_counter()
    if marginal:  # compiled once per model structure (training.network.mlnmr_marginal)
        from training.network.mlnmr_gauss import arm_statistics
        from training.network.mlnmr_marginal import drop_padding, model_for, sampler

        A = _arrays(data, consistency)
        A["gauss"] = arm_statistics(data, A["scale"])
        if chain_method == "sequential":
            chains, args, compiled = sampler(data, A, effects, consistency, priors, num_warmup=num_warmup,
                                             num_samples=num_samples, target_accept=target_accept, dense_mass=dense_mass)
            args = ({k: jax.numpy.asarray(v) for k, v in args.items()},)
        else:
            model, a = model_for(data, A, effects, consistency, priors)
            args, compiled = ({k: jax.numpy.asarray(v) for k, v in a.items()},), True
    else:
        model, A = make_model(data, effects, link, priors, consistency, likelihood)
        args, compiled = (), True
        if chain_method == "sequential":
            from training.network.mlnmr_nuts import Chains

            chains = Chains(model, num_warmup=num_warmup, block=num_samples, target_accept=target_accept,
                            dense_mass=dense_mass)
    extensions = 0
    if chain_method == "sequential":
        run = chains.run(seed, args, num_chains)
    else:
        draws, div, steps = _mcmc(model, args, num_warmup, num_samples, num_chains, chain_method, seed,
                                  target_accept, dense_mass)
    while True:
        if chain_method == "sequential":
            draws, div, steps = dict(run.draws), run.diverging, run.num_steps
        if marginal:
            draws = drop_padding(draws, A, len(data.treatments))
            draws.update(_recover_intercepts(data, A, draws, effects, consistency, priors, seed))
        for k in ("beta", "gamma"):  # back to the original covariate scale
            if k in draws:
                draws[k] = draws[k] / A["scale"]
        fit = MLNMRFit(data, effects, link, consistency, likelihood, priors, draws, {}, 0.0, A["comps"])
        fit.diagnostics = diagnose(draws, div, lambda n, k: param_labels(fit, n, k), thresholds)
        more = chain_method == "sequential" and (1 + extensions) * num_samples < (max_samples or num_samples)
        if fit.diagnostics["ok"] or fit.diagnostics["divergences"] > thresholds.divergences or not more:
            break
        chains.extend(run)  # R-hat / ESS short: more draws from where the chains are (same adaptation)
        extensions += 1
    fit.seconds = secs = time.perf_counter() - t0
    fit.diagnostics.update({"marginalised": bool(marginal), "dense_mass": bool(dense_mass), "compiled": bool(compiled),
                            "mean_leapfrog_steps": round(float(steps.mean()), 1), "chains": num_chains, "warmup": num_warmup,
                            "samples": int(div.shape[1]), "samples_first": num_samples, "extensions": extensions,
                            "chain_method": chain_method, "seconds": round(secs, 2)})
    if check and not fit.diagnostics["ok"]:
        raise ConvergenceError("ML-NMR did not converge: " + "; ".join(fit.diagnostics["problems"])
                               + " — more warmup/samples, stronger priors or fixed effects may help", fit.diagnostics)
    return fit


def _mcmc(model, args: tuple, num_warmup: int, num_samples: int, num_chains: int, chain_method: str, seed: int,
          target_accept: float, dense_mass: bool) -> tuple:
    """NumPyro's own MCMC driver (``vectorized`` or ``parallel`` chains): draws, diverging, num_steps."""
    import jax
    from numpyro.infer import MCMC, NUTS, init_to_uniform

    kernel = NUTS(model, target_accept_prob=target_accept, init_strategy=init_to_uniform(radius=0.1),
                  dense_mass=dense_mass)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method=chain_method, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), *args, extra_fields=("diverging", "num_steps"))
    draws = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    ex = mcmc.get_extra_fields(group_by_chain=True)
    return draws, np.asarray(ex["diverging"]), np.asarray(ex["num_steps"])


def _recover_intercepts(data: NetworkData, A: dict, draws: dict, effects: str, consistency: str, priors: Priors,
                        seed: int) -> dict:
    """μ (chains, draws, trials) and δ (chains, draws, arms) of a marginalised fit, drawn from their
    exact conditional posterior at every draw (on the sampler's standardised covariate scale)."""
    from training.network.mlnmr_gauss import conditional_draws

    ch, nd = next(iter(draws.values())).shape[:2]
    S, narm, p = ch * nd, len(data.arm_trt), len(data.covariates)
    flat = {k: v.reshape((S,) + v.shape[2:]) for k, v in draws.items()}
    if consistency == "ume":
        comp = np.asarray(A["arm_comp"])
        rel = np.where(np.asarray(A["arm_is_base"])[None], 0.0, flat["c"][:, comp])
    else:
        d = np.concatenate([np.zeros((S, 1)), flat["d"]], 1)
        rel = d[:, data.arm_trt] - d[:, data.arm_trt[data.arm_base]]
    slope = np.zeros((S, narm, p))
    if p:
        slope = np.repeat(flat["beta"][:, None, :], narm, 1)
        if "gamma" in flat:
            g = np.concatenate([np.zeros((S, 1, p)), flat["gamma"]], 1)
            slope = slope + g[:, data.cls[data.arm_trt], :]
    tau = flat["tau"] if effects == "random" else np.zeros(S)
    mu, delta = conditional_draws(A["gauss"], rel, slope, flat.get("sigma"), tau, priors.intercept, seed=seed + 1)
    out = {"mu": mu.reshape(ch, nd, -1)}
    if effects == "random":
        out["delta"] = delta.reshape(ch, nd, -1)
    return out
