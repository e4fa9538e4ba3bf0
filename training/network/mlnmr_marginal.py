"""NUTS on the marginalised continuous ML-NMR (training.network.mlnmr_gauss), compiled once per
model structure.

The data enter the NumPyro model as an argument of the compiled sampling loop, padded to bucketed
sizes (arms to a multiple of 16, trials to a multiple of 8, arms per trial to at least 4, IPD
trials to a multiple of 8), and the sampler (training.network.mlnmr_nuts.Chains: its loop is
compiled once and run for every chain) is kept per structure (treatments, covariates, interaction
classes, random/fixed effects, priors, sampler settings, padded sizes). The networks of one
training run (outcomes × follow-ups) then share one compiled sampler instead of compiling one
each — compiling is most of the CPU time of a fit. Padding adds nothing to the likelihood:
padded arms belong to no trial and are not IPD arms, padded trials have no arms (their block is
the identity with zero residuals), and padded IPD residual SDs σ have no data (they are sampled
from their prior and dropped).
"""
from __future__ import annotations

import numpy as np

_CACHE: dict = {}
_CACHE_MAX = 4
ARM_FIELDS = {"m": 0.0, "xbar": 0.0, "n": 1.0, "agd_var": 1.0, "is_ipd": False, "sig": 0, "wyy": 0.0, "wxy": 0.0,
              "wxx": 0.0, "arm_trt": 0, "base_trt": 0, "arm_cls": 0, "arm_comp": 0, "arm_is_base": True}


def _up(n: int, step: int) -> int:
    return max(step, -(-n // step) * step)


def padded_sizes(st: dict) -> tuple[int, int, int, int]:
    """(arms, trials, arms per trial, IPD trials) after bucketing."""
    ns, K = st["idx"].shape
    return _up(len(st["m"]), 16), _up(ns, 8), max(K, 4), _up(st["n_sig"], 8) if st["n_sig"] else 0


def padded_args(st: dict, index: dict, scale: np.ndarray, sizes: tuple) -> dict:
    """The model's argument: :func:`mlnmr_gauss.arm_statistics` plus the arms' treatment indices
    (``index``), padded to ``sizes`` (numpy)."""
    narm_p, ns_p, K_p, _ = sizes
    narm = len(st["m"])
    src = {**st, **index}
    out = {}
    for k, fill in ARM_FIELDS.items():
        a = np.asarray(src[k])
        pad = np.full((narm_p - narm,) + a.shape[1:], fill, dtype=a.dtype)
        out[k] = np.concatenate([a, pad], 0)
    ns, K = st["idx"].shape
    idx = np.full((ns_p, K_p), narm_p)
    idx[:ns, :K] = np.where(st["idx"] == narm, narm_p, st["idx"])
    out["idx"] = idx
    for k in ("sig_delta", "ones"):
        a = np.zeros((ns_p, K_p, K_p))
        a[:ns, :K, :K] = st[k]
        out[k] = a
    out["n_valid"] = np.asarray(float(st["n_valid"]))
    out["scale"] = np.asarray(scale, float)
    return out


def _model(effects: str, consistency: str, priors, nt: int, p: int, nc: int, ncomp: int, nsig_p: int):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    from training.network.mlnmr_gauss import loglik

    def model(a):
        if consistency == "ume":
            c = numpyro.sample("c", dist.Normal(0.0, priors.trt).expand([max(ncomp, 1)]))
            rel = jnp.where(a["arm_is_base"], 0.0, c[a["arm_comp"]])
        else:
            dr = numpyro.sample("d", dist.Normal(0.0, priors.trt).expand([nt - 1]))
            d = jnp.concatenate([jnp.zeros(1), dr])
            rel = d[a["arm_trt"]] - d[a["base_trt"]]
        tau = numpyro.sample("tau", dist.HalfNormal(priors.het)) if effects == "random" else 0.0
        narm = a["m"].shape[0]
        slope = jnp.zeros((narm, 0))
        if p:
            beta = numpyro.sample("beta", dist.Normal(0.0, priors.reg * a["scale"]))  # prior on the original scale
            slope = jnp.broadcast_to(beta, (narm, p))
            if nc > 1:
                g = numpyro.sample("gamma", dist.Normal(0.0, priors.reg * jnp.broadcast_to(a["scale"], (nc - 1, p))))
                slope = beta + jnp.concatenate([jnp.zeros((1, p)), g])[a["arm_cls"]]
        sigma = numpyro.sample("sigma", dist.HalfNormal(priors.aux).expand([nsig_p])) if nsig_p else None
        numpyro.factor("y", loglik(a, rel, slope, sigma, tau, priors.intercept))

    return model


def structure(data, A: dict, effects: str, consistency: str, priors, sizes: tuple | None = None) -> tuple:
    """(cache key of the structure, padded numpy argument). ``sizes``: (treatments, arms, trials,
    arms per trial, IPD trials) to pad to (default: this network's bucketed sizes)."""
    st = A["gauss"]
    nt, p, nc = len(data.treatments), len(data.covariates), len(data.class_names)
    sizes = sizes or (nt,) + padded_sizes(st)
    index = {k: np.asarray(A[k]) for k in ("arm_trt", "base_trt", "arm_cls", "arm_comp", "arm_is_base")}
    args = padded_args(st, index, A["scale"], sizes[1:])
    ncomp = len(A["comps"]) if consistency == "ume" else 0
    key = (effects, consistency, priors, sizes[0], p, nc, ncomp) + tuple(sizes[1:])
    return key, args


MAX_PAD = 3  # a cached sampler serves a smaller network if no padded size exceeds 3x the network's own


def _holds(cached: tuple, need: tuple) -> bool:
    return all(n <= c <= MAX_PAD * max(n, 1) for c, n in zip(cached, need))


def sampler(data, A: dict, effects: str, consistency: str, priors, *, num_warmup: int, num_samples: int,
            target_accept: float, dense_mass: bool) -> tuple:
    """(the cached :class:`training.network.mlnmr_nuts.Chains` of this structure and settings, the
    padded numpy argument, whether the sampler was built now). A cached sampler of the same model
    and settings whose padded sizes hold this network (treatments included: extra treatments have
    no arms, their effects are sampled from the prior and dropped) serves it, so the networks of a
    training run (outcomes x follow-ups; fewer trials at long follow-up) share one compiled sampler."""
    from training.network.mlnmr_nuts import Chains

    key, args = structure(data, A, effects, consistency, priors)
    settings = (num_warmup, num_samples, target_accept, dense_mass)
    need = (key[3],) + key[7:]
    for k in reversed(list(_CACHE)):
        same = k[:3] == key[:3] and k[4:7] == key[4:7] and k[-4:] == settings
        if same and _holds((k[3],) + k[7:-4], need) and (consistency != "ume" or k[3] == key[3]):
            key, args = structure(data, A, effects, consistency, priors, sizes=(k[3],) + k[7:-4])
            return _CACHE[k], args, False
    key = key + settings
    model = _model(effects, consistency, priors, key[3], key[4], key[5], key[6], key[10])
    ch = Chains(model, num_warmup=num_warmup, block=num_samples, target_accept=target_accept, dense_mass=dense_mass)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = ch
    return ch, args, True


def drop_padding(draws: dict, A: dict, n_treatments: int) -> dict:
    """The draws without the padded IPD trials' residual SDs and the padded treatments' effects."""
    draws = dict(draws)
    if "sigma" in draws:
        draws["sigma"] = draws["sigma"][..., :A["gauss"]["n_sig"]]
    if "d" in draws:
        draws["d"] = draws["d"][..., :n_treatments - 1]
    return draws


def model_for(data, A: dict, effects: str, consistency: str, priors) -> tuple:
    """(the model taking the padded argument, that argument (numpy)) — for NumPyro's own MCMC."""
    key, args = structure(data, A, effects, consistency, priors)
    return _model(effects, consistency, priors, len(data.treatments), len(data.covariates), len(data.class_names),
                  key[6], key[10]), args


def model_and_args(data, A: dict, effects: str, consistency: str, priors):
    """The model closed over its padded argument (for log-density checks)."""
    import jax.numpy as jnp

    key, args = structure(data, A, effects, consistency, priors)
    model = _model(effects, consistency, priors, len(data.treatments), len(data.covariates), len(data.class_names),
                   key[6], key[10])
    a = {k: jnp.asarray(v) for k, v in args.items()}
    return lambda: model(a)
