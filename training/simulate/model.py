"""The outcome model: expected follow-up pain and function (0–100, higher = worse) under
every treatment class, before noise, clipping and rounding.

For participant i in trial t, outcome o, follow-up f and treatment class c::

    mu = natural_course[o,f] + A_f * MD_nt[o]              (exercise level at the centres)
         + a_t[o] + b_t[o] * (baseline_o - centre_o) + cross_o * (baseline_other - centre_other)
         + prognostic_o(x)                                  (all arms)
         + L[c,o,f] + A_f * u_t,c[o]                        (class offset vs exercise)
         + A_f * share_c * modifiers_o(x)                   (exercise x covariate effects)

L[exercise] = 0. For the other classes L is solved (``class_offsets``) so that the
population-average difference on the *observed* 0–100 scale, E[clip(Y_c)] − E[clip(Y_ex)],
equals −A_f·MD_c, MD_c being the published mean difference exercise minus c (negative
favours exercise): clipping at 0 would otherwise shrink the effect by about a point. A_f is
the attenuation of effects at later follow-ups; u_t,c the trial's random deviation of class
c (between-trial heterogeneity). Every prognostic and modifier term is centred at its
population mean (computed once per scenario by Monte Carlo on 60 000 synthetic
individuals, fixed seed), so the scenario's MD is the population-average effect.

Why this form: it is the one-stage IPD model of the paper (trial-specific intercepts and
baseline slopes, random treatment effects, treatment x covariate interactions) plus strong
prognostic effects so that prognostic models have something to learn; effect modification is
a few points against residual noise of 13–16 points (total follow-up SD about 20), as in the
benefit-learning notes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.simulate.population import generate_population
from training.simulate.scenario import FOLLOW_UPS, LATENT, OUTCOMES, Scenario

CENTRE_N = 60_000
CENTRE_SEED = 20200101
CALIBRATION_N = 20_000


def _terms(scen: Scenario, key: str) -> list[dict]:
    terms = list(scen.raw.get(key) or [])
    if key == "modifiers":
        terms += list(scen.raw.get("extra_modifiers") or [])
    return terms


def term_value(term: dict, x: dict[str, np.ndarray], outcome: str) -> np.ndarray:
    """One term's contribution (before centring) for an outcome."""
    kind = term["term"]
    if kind == "linear":
        return float(term.get(outcome, 0.0)) * x[term["var"]]
    if kind == "poly2":
        d = x[term["var"]] - float(term["at"])
        return float(term["linear"].get(outcome, 0.0)) * d + float(term["quadratic"].get(outcome, 0.0)) * d * d
    if kind == "log1p":
        return float(term.get(outcome, 0.0)) * np.log1p(x[term["var"]])
    if kind == "hinge":
        d = x[term["var"]] - float(term["knot"])
        d = -d if term.get("below", False) else d
        return float(term.get(outcome, 0.0)) * np.maximum(d, 0.0)
    if kind == "product":
        a, b = term["vars"]
        ca, cb = term.get("at", [0.0, 0.0])
        return float(term.get(outcome, 0.0)) * (x[a] - float(ca)) * (x[b] - float(cb))
    raise ValueError(kind)


_CENTRES: dict = {}
_OFFSETS: dict = {}


_POPULATION: dict = {}


def _reference_population(scen: Scenario) -> dict[str, np.ndarray]:
    """The fixed-seed synthetic population used for centring and effect calibration."""
    key = scen.digest.split("/")[0]
    if key not in _POPULATION:
        pop = generate_population(CENTRE_N, CENTRE_SEED, scen)
        _POPULATION.clear()  # keep one scenario's population at most
        _POPULATION[key] = {v: pop[v].to_numpy(float) for v in LATENT}
    return _POPULATION[key]


def centres(scen: Scenario) -> dict:
    """Population means of every term (and of the baselines), cached per scenario digest."""
    key = scen.digest.split("/")[0]
    if key not in _CENTRES:
        x = _reference_population(scen)
        out = {"baseline": {o: float(x[f"baseline_{o}"].mean()) for o in OUTCOMES}}
        for k in ("modifiers", "prognostic"):
            out[k] = [{o: float(term_value(t, x, o).mean()) for o in OUTCOMES} for t in _terms(scen, k)]
        _CENTRES[key] = out
    return _CENTRES[key]


def class_offsets(scen: Scenario) -> np.ndarray:
    """Latent class offsets L[c, o, f] (vs exercise) that make the population-average
    *observed-scale* difference E[clip(Y_c)] - E[clip(Y_exercise)] equal -A_f * MD_c.

    Clipping at 0 and 100 compresses differences (by about 1 point of 10 here), and the
    published MDs were estimated on the observed scale, so the latent offsets are solved for
    (Newton's method; population of CALIBRATION_N synthetic individuals in synthetic trials
    with the scenario's intercept and slope spread; fixed seed). With ``effect_scale: latent``
    the offsets are simply -A_f * MD_c."""
    key = scen.digest.split("/")[0]
    if key in _OFFSETS:
        return _OFFSETS[key]
    levels = class_levels(scen)
    att = attenuation(scen)
    C = len(scen.classes)
    L = np.zeros((C, 2, 3))
    for fi, f in enumerate(FOLLOW_UPS):
        L[:, :, fi] = att[f] * levels
    if scen.raw.get("effect_scale", "observed") == "observed":
        from training.simulate.population import tobit_mean
        from scipy import special

        n = CALIBRATION_N
        x = {v: a[:n] for v, a in _reference_population(scen).items()}
        rng = np.random.default_rng(CENTRE_SEED + 2)
        te = draw_population_trials(scen, n, rng)
        means = expected_latent(scen, x, {o: x[f"baseline_{o}"] for o in OUTCOMES}, np.arange(n), te,
                                offsets=np.zeros((C, 2, 3)))
        shares = class_shares(scen)
        active = list(scen.classes).index(scen.config.active)
        for oi, o in enumerate(OUTCOMES):
            mod = term_sum(scen, "modifiers", x, o, n)
            for fi, f in enumerate(FOLLOW_UPS):
                mu0 = means.mu[(o, f)][:, active]  # exercise (offset 0)
                sd = means.sd[(o, f)]
                e_ex = tobit_mean(mu0, sd, 0.0, 100.0).mean()
                done: dict = {}
                for ci in range(C):
                    if ci == active:
                        continue
                    ck = (L[ci, oi, fi], shares[ci])
                    if ck in done:  # classes with the same effect and share (no treatment, placebo, usual care)
                        L[ci, oi, fi] = done[ck]
                        continue
                    base = mu0 + att[f] * (shares[ci] - shares[active]) * mod
                    target = e_ex + L[ci, oi, fi]
                    lv = L[ci, oi, fi]
                    for _ in range(30):
                        mu = base + lv
                        g = tobit_mean(mu, sd, 0.0, 100.0).mean() - target
                        dg = (special.ndtr((100 - mu) / sd) - special.ndtr(-mu / sd)).mean()
                        step = g / max(dg, 1e-6)
                        lv -= step
                        if abs(step) < 1e-10:
                            break
                    L[ci, oi, fi] = lv
                    done[ck] = lv
    _OFFSETS[key] = L
    return L


def draw_population_trials(scen: Scenario, n: int, rng: np.random.Generator) -> "TrialEffects":
    """Intercepts and slopes of n synthetic trials (no class random effects)."""
    out_spec = scen.raw["outcomes"]
    sd_a = np.array([float(out_spec[o].get("trial_sd", 0.0)) for o in OUTCOMES])
    a = rng.standard_normal((n, 2)) * sd_a
    b = np.array([float(out_spec[o]["baseline_slope"]) for o in OUTCOMES]) + rng.standard_normal((n, 2)) * np.array(
        [float(out_spec[o].get("baseline_slope_trial_sd", 0.0)) for o in OUTCOMES])
    return TrialEffects(a, b, np.zeros((n, len(scen.classes), 2)))


def term_sum(scen: Scenario, key: str, x: dict[str, np.ndarray], outcome: str, n: int) -> np.ndarray:
    """Centred sum of a term list (``modifiers`` scaled by ``modifier_scale``)."""
    c = centres(scen)[key]
    total = np.zeros(n)
    for t, cen in zip(_terms(scen, key), c):
        total += term_value(t, x, outcome) - cen[outcome]
    if key == "modifiers":
        total *= float(scen.raw.get("modifier_scale", 1.0))
    return total


@dataclass
class TrialEffects:
    """Trial-level random parameters (arrays indexed by trial, then outcome / class)."""

    intercept: np.ndarray  # (T, 2) a_t
    slope: np.ndarray  # (T, 2) b_t
    class_re: np.ndarray  # (T, C, 2) u_t,c (0 for the active class)

    @classmethod
    def population(cls, scen: Scenario, n_trials: int = 1) -> "TrialEffects":
        """The average trial: a_t = 0, b_t = mean slope, u = 0."""
        slope = np.array([[float(scen.raw["outcomes"][o]["baseline_slope"]) for o in OUTCOMES]] * n_trials)
        return cls(np.zeros((n_trials, 2)), slope, np.zeros((n_trials, len(scen.classes), 2)))


def _normal2(rng: np.random.Generator, sd: np.ndarray, r: float, size: tuple) -> np.ndarray:
    """Bivariate normal draws (last axis: pain, function) with SDs ``sd`` (zeros allowed) and correlation r."""
    z = rng.standard_normal(size + (2,))
    out = np.empty_like(z)
    out[..., 0] = sd[0] * z[..., 0]
    out[..., 1] = sd[1] * (r * z[..., 0] + np.sqrt(1 - r * r) * z[..., 1])
    return out


def draw_trial_effects(scen: Scenario, rng: np.random.Generator) -> TrialEffects:
    """Trial intercepts, baseline slopes and class random effects. Random effects of a class
    are centred (participant-weighted) separately over the trials that contain the class and
    over those that do not, when ``heterogeneity.centre`` is true."""
    T = len(scen.trials)
    C = len(scen.classes)
    out_spec = scen.raw["outcomes"]
    rc = scen.raw.get("residual_correlation") or {}
    r_int = float(rc.get("intercepts", 0.0))
    sd_a = np.array([float(out_spec[o].get("trial_sd", 0.0)) for o in OUTCOMES])
    a = _normal2(rng, sd_a, r_int, (T,))
    zb = rng.standard_normal((T, 2))
    b = np.array([float(out_spec[o]["baseline_slope"]) for o in OUTCOMES]) + zb * np.array(
        [float(out_spec[o].get("baseline_slope_trial_sd", 0.0)) for o in OUTCOMES])
    het = scen.raw.get("heterogeneity") or {}
    tau = np.array([float(het.get(o, 0.0)) for o in OUTCOMES])
    r = float(het.get("correlation", 0.0))
    u = _normal2(rng, tau, r, (T, C))
    u[:, list(scen.classes).index(scen.config.active), :] = 0.0
    if het.get("centre", True) and T > 1:
        sizes = np.array([t.size for t in scen.trials], float)
        for ci, c in enumerate(scen.classes):
            has = np.array([any(a_.treatment == c for a_ in t.arms) for t in scen.trials])
            for grp in (has, ~has):
                if grp.sum() >= 2:
                    w = sizes[grp] / sizes[grp].sum()
                    u[grp, ci, :] -= (w[:, None] * u[grp, ci, :]).sum(0)
    return TrialEffects(a, b, u)


def class_levels(scen: Scenario) -> np.ndarray:
    """(C, 2): level_c = -(MD exercise minus c), 0 for exercise."""
    eff = scen.raw["effects"]
    lv = np.zeros((len(scen.classes), 2))
    for ci, c in enumerate(scen.classes):
        if c != scen.config.active:
            lv[ci] = [-float(eff[c][o]) for o in OUTCOMES]
    return lv


def class_shares(scen: Scenario) -> np.ndarray:
    sh = scen.raw.get("modifier_share") or {scen.config.active: 1.0}
    return np.array([float(sh.get(c, 0.0)) for c in scen.classes])


def attenuation(scen: Scenario) -> dict[str, float]:
    att = scen.raw.get("attenuation") or {}
    return {f: float(att.get(f, 1.0)) for f in FOLLOW_UPS}


@dataclass
class Means:
    """Expected latent outcomes: ``mu[(o, f)]`` has shape (n, C), one column per class."""

    mu: dict
    sd: dict  # (o, f) -> residual SD


def expected_latent(scen: Scenario, x: dict[str, np.ndarray], baseline_used: dict[str, np.ndarray],
                    trial_index: np.ndarray, te: TrialEffects, offsets: np.ndarray | None = None) -> Means:
    """Latent means for every class. ``x``: complete covariates (and latent baselines);
    ``baseline_used``: the baseline values the model conditions on (the recorded, rounded
    baseline where the trial measured it)."""
    n = len(trial_index)
    levels = class_levels(scen)
    offsets = class_offsets(scen) if offsets is None else offsets
    shares = class_shares(scen)
    att = attenuation(scen)
    cen = centres(scen)
    nt = list(scen.classes).index("no_treatment") if "no_treatment" in scen.classes else None
    mu, sd = {}, {}
    for oi, o in enumerate(OUTCOMES):
        spec = scen.raw["outcomes"][o]
        other = OUTCOMES[1 - oi]
        prog = term_sum(scen, "prognostic", x, o, n)
        mod = term_sum(scen, "modifiers", x, o, n)
        common = (te.intercept[trial_index, oi]
                  + te.slope[trial_index, oi] * (baseline_used[o] - cen["baseline"][o])
                  + float(spec.get("cross_baseline", 0.0)) * (baseline_used[other] - cen["baseline"][other])
                  + prog)
        eff = te.class_re[trial_index, :, oi] + shares[None, :] * mod[:, None]  # (n, C)
        md_nt = -levels[nt, oi] if nt is not None else 0.0
        for fi, f in enumerate(FOLLOW_UPS):
            A = att[f]
            base = float(spec["natural_course"][f]) + A * md_nt + common
            mu[(o, f)] = base[:, None] + offsets[None, :, oi, fi] + A * eff
            sd[(o, f)] = float(spec["sd"][f])
    return Means(mu, sd)


def residual_cov(scen: Scenario) -> np.ndarray:
    """6 × 6 covariance of the residuals, ordered (pain, function) within (short, moderate, long)."""
    rc = scen.raw.get("residual_correlation") or {}
    r_of = float(rc.get("pain_function", 0.0))
    r_ff = float(rc.get("follow_ups", 0.0))
    Ro = np.array([[1, r_of], [r_of, 1]])
    Rf = np.full((3, 3), r_ff) + (1 - r_ff) * np.eye(3)
    R = np.kron(Rf, Ro)
    sds = np.array([float(scen.raw["outcomes"][o]["sd"][f]) for f in FOLLOW_UPS for o in OUTCOMES])
    return R * np.outer(sds, sds)
