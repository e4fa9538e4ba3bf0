"""Case-mix: correlated baseline covariates and baseline pain/function (SYNTHETIC).

Model (a Gaussian copula with trial-level shifts). Every variable v is a transform of one
coordinate z_v of a latent normal vector z ~ N(0, R) (R: the scenario's ``correlations``):

* ``normal``     x = clip(m_t + sd · z, range)                  (age, 0–100 scores, baseline scores)
* ``binary``     x = 1[z + m_t > 0], so P(x = 1) = Φ(m_t)         (the yes/no covariates)
* ``lognormal``  x = clip(exp(m_t + sdlog · z), range)            (BMI, right-skewed)
* ``shifted_lognormal`` x = shift + exp(m_t + sdlog · z)          (episode duration, > 3 months)

m_t is the trial's location: the scenario's target plus a trial shift (SD ``trial_sd``), so
trials differ in case-mix as real trials do (published trial mean ages 37–60, 0–78% female).
A trial's ``casemix`` pins its location (mean, proportion or median). The unpinned shifts are
drawn per seed and then offset so that the participant-weighted expected value over the
trials that measured the covariate equals the published Table 3 target exactly (mean,
proportion, or median for episode duration); the sample then differs from the target only
by sampling error, which is what the calibration report's tolerances allow for.

``generate_population`` draws individuals from the population without trial structure: each
individual gets their own draw of the trial shift, so the population spans the between-trial
case-mix variation, with the same targets.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, special

from training.simulate.scenario import COVARIATES, LATENT, Scenario, load_scenario



def ndtr(x):
    return special.ndtr(x)


def latent_cholesky(scen: Scenario) -> np.ndarray:
    key = "chol"
    if key not in scen._cache:
        names = list(LATENT)
        R = np.eye(len(names))
        for a, b, r in scen.raw.get("correlations") or []:
            R[names.index(a), names.index(b)] = R[names.index(b), names.index(a)] = float(r)
        scen._cache[key] = np.linalg.cholesky(R)
    return scen._cache[key]


def _spec(scen: Scenario, v: str) -> dict:
    return scen.raw["covariates"][v]


def tobit_mean(mu, sd, lo, hi):
    """E[clip(Y, lo, hi)] for Y ~ N(mu, sd²) (the censored-normal mean)."""
    mu = np.asarray(mu, float)
    a = (lo - mu) / sd
    b = (hi - mu) / sd
    pa, pb = ndtr(a), ndtr(b)
    da = np.exp(-0.5 * a * a) / np.sqrt(2 * np.pi)
    db = np.exp(-0.5 * b * b) / np.sqrt(2 * np.pi)
    return lo * pa + hi * (1 - pb) + mu * (pb - pa) + sd * (da - db)


def nominal_location(s: dict) -> float:
    """Population location: with individual shifts N(0, trial_sd²) the population hits the target."""
    k, tsd = s["kind"], float(s.get("trial_sd", 0.0))
    if k == "normal":
        return float(s["mean"])
    if k == "binary":
        return float(special.ndtri(float(s["p"])) * np.sqrt(1 + tsd**2))
    if k == "lognormal":
        return float(np.log(s["mean"]) - (s["sdlog"] ** 2 + tsd**2) / 2)
    return float(np.log(s["median"] - s["shift"]))


def pinned_location(s: dict, value: float) -> float:
    """Location that gives a trial the pinned mean (normal, lognormal), proportion (binary)
    or median (shifted lognormal)."""
    k = s["kind"]
    if k == "normal":
        return float(value)
    if k == "binary":
        return float(special.ndtri(min(max(value, 0.0), 1.0)))  # 0 -> -inf (nobody), 1 -> +inf
    if k == "lognormal":
        return float(np.log(value) - s["sdlog"] ** 2 / 2)
    return float(np.log(value - s["shift"]))


def _expected_stat(s: dict, loc: np.ndarray, w: np.ndarray) -> float:
    """The participant-weighted statistic whose target is published (mean / proportion / CDF at the median)."""
    k = s["kind"]
    if k == "normal":
        lo, hi = s.get("range", (-np.inf, np.inf))
        return float(np.sum(w * tobit_mean(loc, s["sd"], lo, hi)))
    if k == "binary":
        return float(np.sum(w * ndtr(loc)))
    if k == "lognormal":
        return float(np.sum(w * np.exp(loc + s["sdlog"] ** 2 / 2)))
    return float(np.sum(w * ndtr((np.log(s["median"] - s["shift"]) - loc) / s["sdlog"])))


def _target(s: dict) -> float:
    k = s["kind"]
    return float({"normal": s.get("mean"), "binary": s.get("p"), "lognormal": s.get("mean"), "shifted_lognormal": 0.5}[k])


def trial_locations(scen: Scenario, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per variable, the location m_t of every trial (pins, random shifts, calibration offset)."""
    trials = scen.trials
    sizes = np.array([t.size for t in trials], float)
    cm = scen.raw.get("casemix_model") or {}
    random_shifts = bool(cm.get("random_shifts", True))
    calibrate = bool(cm.get("calibrate", True))
    z = rng.standard_normal((len(LATENT), len(trials)))  # drawn for every variable, used or not
    out = {}
    for i, v in enumerate(LATENT):
        s = _spec(scen, v)
        base = _calibration_start(s) if (calibrate or not random_shifts) else nominal_location(s)
        loc = base + (float(s.get("trial_sd", 0.0)) * z[i] if random_shifts else np.zeros(len(trials)))
        pinned = np.zeros(len(trials), bool)
        for j, t in enumerate(trials):
            if v in t.casemix:
                loc[j] = pinned_location(s, float(t.casemix[v]))
                pinned[j] = True
        avail = scen.availability.get(v)
        inset = np.array([avail is None or t.id in avail for t in trials])
        free = inset & ~pinned
        if calibrate and free.any():
            w = np.where(inset, sizes, 0.0)
            w = w / w.sum()
            target = _target(s)

            def gap(off: float) -> float:
                trial_loc = np.where(free, loc + off, loc)
                return _expected_stat(s, trial_loc[inset], w[inset]) - target

            lo, hi = -1.0, 1.0
            scale = float(s.get("sd", 1.0)) if s["kind"] == "normal" else 1.0
            lo, hi = lo * 20 * scale, hi * 20 * scale
            if gap(lo) * gap(hi) < 0:
                off = optimize.brentq(gap, lo, hi, xtol=1e-12)
                loc = np.where(free, loc + off, loc)
        out[v] = loc
    return out


def _calibration_start(s: dict) -> float:
    """Starting location for calibrated trial shifts (the offset is solved afterwards)."""
    k = s["kind"]
    if k == "binary":
        return float(special.ndtri(float(s["p"])))
    if k == "lognormal":
        return float(np.log(s["mean"]) - s["sdlog"] ** 2 / 2)
    return nominal_location(s)


def draw_latent(n: int, scen: Scenario, rng: np.random.Generator) -> np.ndarray:
    """n × len(LATENT) correlated standard normals."""
    L = latent_cholesky(scen)
    return rng.standard_normal((n, len(LATENT))) @ L.T


def transform(scen: Scenario, z: np.ndarray, loc: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Complete (no missingness) covariate values from latent normals and per-person locations."""
    out = {}
    for i, v in enumerate(LATENT):
        s = _spec(scen, v)
        k = s["kind"]
        zi = z[:, i]
        m = loc[v]
        if k == "binary":
            x = (zi + m > 0).astype(float)
        elif k == "normal":
            x = m + float(s["sd"]) * zi
        elif k == "lognormal":
            x = np.exp(m + float(s["sdlog"]) * zi)
        else:
            x = float(s["shift"]) + np.exp(m + float(s["sdlog"]) * zi)
        if k != "binary":
            if "range" in s:
                x = np.clip(x, s["range"][0], s["range"][1])
            if "decimals" in s:
                x = np.round(x, int(s["decimals"])) + 0.0
        out[v] = x
    # Episode duration cannot exceed the adult lifetime (months since age 14).
    if "episode_months" in out and "age" in out:
        lo = float(_spec(scen, "episode_months").get("range", (3, 720))[0])
        out["episode_months"] = np.minimum(out["episode_months"], np.maximum(lo, 12.0 * (out["age"] - 14.0)))
    return out


def generate_population(n: int, seed: int = 1, scenario: str | Scenario = "hayden2020") -> pd.DataFrame:
    """``n`` synthetic individuals from the scenario's population (no trial structure):
    the 17 covariates plus ``baseline_pain`` and ``baseline_function`` on 0–100 (higher =
    worse; continuous, not rounded to an instrument). Complete data (no missingness).
    Vectorised; memory and time linear in ``n``."""
    scen = load_scenario(scenario)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
    shifts = rng.standard_normal((n, len(LATENT)))
    loc = {}
    for i, v in enumerate(LATENT):
        s = _spec(scen, v)
        loc[v] = nominal_location(s) + float(s.get("trial_sd", 0.0)) * shifts[:, i]
    z = draw_latent(n, scen, rng)
    vals = transform(scen, z, loc)
    df = pd.DataFrame({v: vals[v] for v in LATENT})
    for v in COVARIATES:
        if _spec(scen, v)["kind"] == "binary":
            df[v] = df[v].astype(np.int8)
    df.attrs["synthetic"] = f"SYNTHETIC population (lbp-benefit simulator, scenario {scen.name}, seed {seed})"
    return df
