"""An outside simulator of pooled exercise-therapy IPD for low back pain, written blind.

Written without reading the project's own simulator (training/simulate), scenarios or learner code:
only the user-facing data format (docs/data-format.md) and published magnitudes (Hayden et al.:
pain benefit vs no treatment/usual care about 10 points on 0-100, vs other conservative care about
-4; trials of 28-264 participants). It writes a dataset exactly as a user would bring it
(participants.csv + outcomes.csv in raw instrument units, no study.yaml: the default LBP config) and
keeps the truth apart.

Generating model (short-term pain and function, 0-100, higher = worse), per trial k and patient i:

    Y0 = mu0(x, k) + e          comparator outcome (before the instrument's 0-100 clip)
    Y1 = Y0 - tau(x, c, k)      exercise outcome; tau > 0 favours exercise
    tau(x, c, k) = class_base[c] + s(x) + g(case mix of k) + u_k

with e ~ N(0, sigma_k) (pain and function residuals correlated 0.5) and the effect-modification
shapes s(x) (pain; function has its own coefficients):

    plateau      0.25 * (min(P0, 70) - 58)            baseline pain helps up to 70, flat above
    threshold    +5 if fear_avoidance > 60            only high fear-avoidance gains more
    inverted U   0.6 - 0.006 * (age - 45)^2            the middle-aged gain most
    interaction  -6 if heavy_physical_work and BMI > 30
    interaction  -3 if leg_pain and episode > 60 months
    linear       -2 if physically_active
    case mix     g = -6 * (share of heavy physical work in trial k - 0.25)   (trial level)
    trial        u_k ~ N(0, 2.5)

Truth (kept in truth/): the expected benefit on the harmonised 0-100 scale, the expectation taken
over e with the 0-100 clip in closed form (instrument rounding ignored: a mean-preserving error
far below the noise):
  * trial-specific: with trial k's intercept, residual SD, g_k and u_k;
  * average-trial: the same patient in an average trial (intercept at its mean, u = 0, g = 0,
    residual SD at its mean).
Global recovery (the default config's derived outcome: pain or function improves >= 30% of
baseline and >= 20 / 10 points) gets its risk difference by Monte Carlo with common random
numbers (the default 2000 draws: MC SE about 0.01).

Missingness, heavy and systematic: each trial measures a random subset of the covariates (age and
sex always); 4 trials never measure function, 1 never measures pain; 1 trial has no short-term
visit; within trials covariates are missing at random given baseline pain and age; short-term
dropout depends on baseline pain, age and arm (MAR). The new trial (`new/`) shifts the case mix:
older (62 v 45), heavier (BMI 31 v 26.5), heavy physical work 60% v 10-40%.

    python benchmarks/outside/simulate_outside.py --seed 1 --out DIR
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

CLASS_BASE_PAIN = {"no_treatment": 12.0, "usual_care": 9.0, "placebo": 6.0, "other_conservative": -3.0}
CLASS_BASE_FUNC = {"no_treatment": 11.0, "usual_care": 8.0, "placebo": 5.0, "other_conservative": -1.0}
CLASS_RESPONSE = {"no_treatment": 0.0, "usual_care": -2.0, "placebo": -5.0, "other_conservative": -8.0}
SUBTYPES = ["manual_therapy", "education", "psychological", "electrotherapy", "passive_physio"]
PAIN_INSTR = {"vas_0_10": 10.0, "nrs_0_10": 10.0, "vas_0_100": 1.0}     # raw = 0-100 / factor
FUNC_INSTR = {"rmdq_0_24": 100 / 24, "odi_0_100": 1.0, "odi_0_50": 2.0, "qbpds_0_100": 1.0}
RAW_STEP = {"vas_0_10": 0.1, "nrs_0_10": 1.0, "vas_0_100": 1.0, "rmdq_0_24": 1.0,
            "odi_0_100": 2.0, "odi_0_50": 1.0, "qbpds_0_100": 1.0}
COVARIATES = ["age", "female", "education_beyond_high_school", "current_smoker", "physically_active",
              "bmi", "lbp_history", "employed", "sick_leave_12m", "heavy_physical_work", "general_health",
              "mental_health", "fear_avoidance", "social_support", "episode_months", "leg_pain",
              "lbp_medication"]
# probability that a trial measures the covariate at all (age, female: always)
P_MEASURED = {"education_beyond_high_school": 0.6, "current_smoker": 0.7, "physically_active": 0.6,
              "bmi": 0.8, "lbp_history": 0.7, "employed": 0.85, "sick_leave_12m": 0.6,
              "heavy_physical_work": 0.6, "general_health": 0.6, "mental_health": 0.5,
              "fear_avoidance": 0.45, "social_support": 0.35, "episode_months": 0.7, "leg_pain": 0.75,
              "lbp_medication": 0.6}
TAU_U_SD = 2.5
SIGMA_MEAN = 16.5
INTERCEPT_MEAN = 12.0


def trial_designs(rng: np.random.Generator, n_trials: int) -> list[dict]:
    """Per-trial design: size, arms, case mix, measured covariates, instruments, visits, effects."""
    designs = []
    classes = list(CLASS_BASE_PAIN)
    for k in range(n_trials):
        n = int(np.clip(np.round(np.exp(rng.normal(np.log(105), 0.5))), 28, 264))
        comparators = [classes[rng.choice(4, p=[0.2, 0.35, 0.15, 0.3])]]
        if rng.random() < 0.12:       # a three-arm trial: a second, different comparator
            comparators.append(str(rng.choice([c for c in classes if c != comparators[0]])))
        designs.append(_case_mix(rng, f"X{k + 1:02d}", n, comparators, age=rng.normal(45, 5),
                                 bmi=rng.normal(26.5, 1.5), p_heavy=rng.uniform(0.1, 0.4),
                                 fear=rng.normal(45, 8)))
    # systematic gaps: no function in 4 trials, no pain in 1, no short-term visit in 1
    order = rng.permutation(n_trials)
    for k in order[:4]:
        designs[k]["function"] = False
    designs[order[4]]["pain"] = False
    designs[order[5]]["short_week"] = None
    return designs


def _case_mix(rng, name, n, comparators, *, age, bmi, p_heavy, fear, all_measured=False) -> dict:
    measured = {c: True for c in ("age", "female")}
    for c, p in P_MEASURED.items():
        measured[c] = bool(all_measured or rng.random() < p)
    return dict(
        trial=name, n=n, comparators=comparators, m_age=float(age), m_bmi=float(bmi),
        p_heavy=float(p_heavy), m_fear=float(fear), p_female=float(rng.uniform(0.45, 0.75)),
        measured=measured, pain=True, function=True,
        pain_instr=str(rng.choice(list(PAIN_INSTR))), func_instr=str(rng.choice(list(FUNC_INSTR))),
        short_week=float(rng.choice([6, 8, 12, 13, 16])), moderate=bool(rng.random() < 0.5),
        intercept=float(rng.normal(INTERCEPT_MEAN, 5.0)), sigma=float(rng.uniform(14, 19)),
        u_pain=float(rng.normal(0, TAU_U_SD)), u_func=float(rng.normal(0, TAU_U_SD)))


def covariates(rng: np.random.Generator, d: dict) -> pd.DataFrame:
    n = d["n"]
    age = np.clip(rng.normal(d["m_age"], 11, n), 18, 90).round()
    employed = rng.random(n) < 1 / (1 + np.exp(-(0.8 - 0.06 * (age - 45))))
    # heavy work only among the employed: scale so the trial's share is p_heavy overall
    p_hw_emp = np.clip(d["p_heavy"] / max(employed.mean(), 0.05), 0, 1)
    heavy = employed & (rng.random(n) < p_hw_emp)
    bmi = np.clip(rng.normal(d["m_bmi"] + 1.5 * heavy, 4.5, n), 15, 55).round(1)
    fear = np.clip(rng.normal(d["m_fear"], 18, n), 0, 100).round()
    p0 = np.clip(rng.normal(58 + 0.15 * (fear - 45), 17, n), 5, 100)
    f0 = np.clip(0.6 * p0 + rng.normal(7, 14, n), 0, 100)
    ghealth = np.clip(rng.normal(68 - 0.3 * (age - 45) - 0.5 * (bmi - 26.5), 17, n), 0, 100).round()
    mhealth = np.clip(rng.normal(70 - 0.1 * (fear - 45), 17, n), 0, 100).round()
    return pd.DataFrame({
        "age": age, "female": (rng.random(n) < d["p_female"]).astype(int),
        "education_beyond_high_school": (rng.random(n) < 0.5).astype(int),
        "current_smoker": (rng.random(n) < 0.22).astype(int),
        "physically_active": (rng.random(n) < 0.45).astype(int), "bmi": bmi,
        "lbp_history": (rng.random(n) < 0.7).astype(int), "employed": employed.astype(int),
        "sick_leave_12m": (rng.random(n) < np.where(employed, 0.3, 0.05)).astype(int),
        "heavy_physical_work": heavy.astype(int), "general_health": ghealth, "mental_health": mhealth,
        "fear_avoidance": fear, "social_support": (rng.random(n) < 0.8).astype(int),
        "episode_months": np.clip(np.exp(rng.normal(np.log(24), 1.0, n)), 3, 480).round(),
        "leg_pain": (rng.random(n) < 0.45).astype(int), "lbp_medication": (rng.random(n) < 0.5).astype(int),
        "_p0": p0, "_f0": f0})


def benefit(x: pd.DataFrame, p0, f0, comparator: np.ndarray, g: float, u_pain: float, u_func: float):
    """True benefit (points, > 0 favours exercise) before the clip, pain and function."""
    hw_obese = (x["heavy_physical_work"].to_numpy() == 1) & (x["bmi"].to_numpy() > 30)
    leg_long = (x["leg_pain"].to_numpy() == 1) & (x["episode_months"].to_numpy() > 60)
    age = x["age"].to_numpy()
    fear = x["fear_avoidance"].to_numpy()
    active = x["physically_active"].to_numpy() == 1
    base_p = np.array([CLASS_BASE_PAIN[c] for c in comparator])
    base_f = np.array([CLASS_BASE_FUNC[c] for c in comparator])
    tau_p = (base_p + 0.25 * (np.minimum(p0, 70) - 58) + 5.0 * (fear > 60) + 0.6 - 0.006 * (age - 45) ** 2
             - 6.0 * hw_obese - 3.0 * leg_long - 2.0 * active + g + u_pain)
    tau_f = (base_f + 0.2 * (np.minimum(f0, 55) - 40) + 6.0 * (fear > 55) + 0.5 - 0.005 * (age - 45) ** 2
             - 4.0 * hw_obese - 1.5 * active + 0.8 * g + u_func)
    return tau_p, tau_f


def comparator_mean(x: pd.DataFrame, p0, f0, comparator, intercept):
    resp = np.array([CLASS_RESPONSE[c] for c in comparator])
    common = (intercept + 0.1 * (x["fear_avoidance"].to_numpy() - 45) + 2.0 * x["sick_leave_12m"].to_numpy()
              - 0.1 * (x["mental_health"].to_numpy() - 70) + 0.08 * (x["age"].to_numpy() - 45) + resp)
    return common + 0.55 * p0, 0.8 * common + 0.55 * f0


def clipped_mean(mu, sd):
    """E[clip(Y, 0, 100)] for Y ~ N(mu, sd^2)."""
    a, b = (0 - mu) / sd, (100 - mu) / sd
    return mu * (norm.cdf(b) - norm.cdf(a)) + sd * (norm.pdf(a) - norm.pdf(b)) + 100 * norm.sf(b)


def to_raw(v, instr, table):
    step = RAW_STEP[instr]
    return np.round(np.clip(v, 0, 100) / table[instr] / step) * step


def harmonised(raw, instr, table):
    return raw * table[instr]


def recovery_rd(p0h, f0h, mu0p, mu0f, tau_p, tau_f, sd, rng, draws):
    """P(recovered | exercise) - P(recovered | comparator), default rule (any of pain, function).
    A missing baseline (NaN) makes that criterion unevaluable (the other decides)."""
    out = np.empty(len(p0h))
    for s in range(0, len(p0h), 200):
        sl = slice(s, s + 200)
        e1 = rng.standard_normal((draws, 1))
        e2 = 0.5 * e1 + np.sqrt(0.75) * rng.standard_normal((draws, 1))
        ep, ef = e1 * sd[sl], e2 * sd[sl]
        probs = []
        for arm_tau_p, arm_tau_f in ((tau_p[sl], tau_f[sl]), (0.0, 0.0)):
            yp = np.clip(mu0p[sl] - arm_tau_p + ep, 0, 100)
            yf = np.clip(mu0f[sl] - arm_tau_f + ef, 0, 100)
            rp = (p0h[sl] - yp >= np.maximum(0.3 * p0h[sl], 20)) & ~np.isnan(p0h[sl])
            rf = (f0h[sl] - yf >= np.maximum(0.3 * f0h[sl], 10)) & ~np.isnan(f0h[sl])
            probs.append((rp | rf).mean(axis=0))
        out[sl] = probs[0] - probs[1]
    return out


def simulate_trial(rng: np.random.Generator, d: dict, mc_draws: int):
    x = covariates(rng, d)
    n = d["n"]
    arms = ["exercise"] + d["comparators"]
    arm_idx = rng.permutation(np.arange(n) % len(arms))
    treatment = np.array([arms[i] for i in arm_idx])
    g = -6.0 * (x["heavy_physical_work"].mean() - 0.25)
    p0, f0 = x.pop("_p0").to_numpy(), x.pop("_f0").to_numpy()
    # observed baselines, on the instrument and harmonised back (what every model sees)
    p0_raw, f0_raw = to_raw(p0, d["pain_instr"], PAIN_INSTR), to_raw(f0, d["func_instr"], FUNC_INSTR)
    p0h, f0h = harmonised(p0_raw, d["pain_instr"], PAIN_INSTR), harmonised(f0_raw, d["func_instr"], FUNC_INSTR)
    e_p = rng.standard_normal(n)
    e_f = 0.5 * e_p + np.sqrt(0.75) * rng.standard_normal(n)
    rows, truth = [], []
    own_comp = np.where(treatment == "exercise", np.array(d["comparators"][0]), treatment)
    mu0p, mu0f = comparator_mean(x, p0h, f0h, own_comp, d["intercept"])
    tp, tf = benefit(x, p0h, f0h, own_comp, g, d["u_pain"], d["u_func"])
    is_ex = treatment == "exercise"
    y_p = np.clip(mu0p - is_ex * tp + d["sigma"] * e_p, 0, 100)
    y_f = np.clip(mu0f - is_ex * tf + d["sigma"] * e_f, 0, 100)
    # truth for every (participant, comparator of the trial)
    for c in d["comparators"]:
        comp = np.full(n, c)
        for kind, intercept, sd, gg, up, uf in (("trial", d["intercept"], d["sigma"], g, d["u_pain"], d["u_func"]),
                                                 ("avg", INTERCEPT_MEAN, SIGMA_MEAN, 0.0, 0.0, 0.0)):
            m0p, m0f = comparator_mean(x, p0h, f0h, comp, intercept)
            bp, bf = benefit(x, p0h, f0h, comp, gg, up, uf)
            sdv = np.full(n, sd)
            t = {"pain": clipped_mean(m0p, sd) - clipped_mean(m0p - bp, sd),
                 "function": clipped_mean(m0f, sd) - clipped_mean(m0f - bf, sd),
                 "recovery": recovery_rd(p0h, f0h, m0p, m0f, bp, bf, sdv, rng, mc_draws)}
            for o, v in t.items():
                truth.append(pd.DataFrame({"trial": d["trial"], "participant": np.arange(1, n + 1).astype(str),
                                           "comparator": c, "kind": kind, "outcome": o, "truth": v}))
    # missingness: systematic, then MAR within the trial
    lin = -2.6 + 0.03 * (p0h - 58) + 0.03 * (x["age"].to_numpy() - 45)
    for c in COVARIATES:
        if not d["measured"][c]:
            x[c] = np.nan
        elif c not in ("age", "female"):
            x.loc[rng.random(n) < 1 / (1 + np.exp(-lin)), c] = np.nan
    part = x.copy()
    part.insert(0, "trial", d["trial"])
    part.insert(1, "participant", np.arange(1, n + 1).astype(str))
    part.insert(2, "arm", [f"{t}_{d['trial'].lower()}" for t in treatment])
    part.insert(3, "treatment", treatment)
    sub = rng.choice(SUBTYPES)
    part.insert(4, "subtype", np.where(np.isin(treatment, ["other_conservative"]), sub, ""))
    drop = rng.random(n) < 1 / (1 + np.exp(-(-1.9 + 0.02 * (p0h - 58) + 0.5 * ~is_ex - 0.02 * (x["age"].to_numpy() - 45))))
    drop &= d.get("dropout", True)
    base_missing = rng.random(n) < 0.02
    for o, instr, table, b_raw, y, flag in (("pain", d["pain_instr"], PAIN_INSTR, p0_raw, y_p, d["pain"]),
                                            ("function", d["func_instr"], FUNC_INSTR, f0_raw, y_f, d["function"])):
        if not flag:
            continue
        visits = [(0.0, b_raw, ~base_missing)]
        if d["short_week"] is not None:
            wk = d["short_week"] + rng.integers(-1, 2, n) * (d["short_week"] > 6)
            visits.append((wk, to_raw(y, instr, table), ~drop))
        if d["moderate"]:   # a 26-week visit: benefit faded to 60%
            y26 = np.clip(y + is_ex * 0.4 * (tp if o == "pain" else tf) + 4 * rng.standard_normal(n), 0, 100)
            visits.append((26.0, to_raw(y26, instr, table), ~drop & (rng.random(n) > 0.15)))
        for wk, val, keep in visits:
            wk = np.broadcast_to(wk, (n,))
            rows.append(pd.DataFrame({"trial": d["trial"], "participant": part["participant"], "outcome": o,
                                      "instrument": instr, "week": wk, "value": val})[keep])
    return part, pd.concat(rows), pd.concat(truth)


def simulate(seed: int, n_trials: int = 30, new_n: int = 300, mc_draws: int = 2000):
    """(train participants, outcomes, truth), (new ...), trial designs; deterministic in seed."""
    rng = np.random.default_rng([seed, 2026])
    designs = trial_designs(rng, n_trials)
    new = _case_mix(rng, "NEW", new_n, ["usual_care"], age=62, bmi=31, p_heavy=0.6, fear=55,
                    all_measured=True)
    new["measured"]["fear_avoidance"] = False     # the shifted site does not use the questionnaire
    out = {}
    for name, ds in (("train", designs), ("new", [new])):
        parts = [simulate_trial(rng, d, mc_draws) for d in ds]
        out[name] = tuple(pd.concat([p[i] for p in parts], ignore_index=True) for i in range(3))
    return out, designs + [new]


def write(out_dir: Path, seed: int, **kw) -> dict:
    out, designs = simulate(seed, **kw)
    for name, (part, outc, truth) in out.items():
        d = out_dir / name
        d.mkdir(parents=True, exist_ok=True)
        part.to_csv(d / "participants.csv", index=False, float_format="%.10g")
        outc.to_csv(d / "outcomes.csv", index=False, float_format="%.10g")
        t = out_dir / "truth"
        t.mkdir(exist_ok=True)
        truth.to_csv(t / f"{name}_truth.csv", index=False, float_format="%.6f")
    pd.DataFrame([{k: v for k, v in d.items() if k != "measured"} | {
        "not_measured": " ".join(c for c, m in d["measured"].items() if not m)} for d in designs]
    ).to_csv(out_dir / "truth" / "designs.csv", index=False)
    return {k: len(v[0]) for k, v in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--trials", type=int, default=30)
    a = ap.parse_args(argv)
    print(write(a.out, a.seed, n_trials=a.trials))


if __name__ == "__main__":
    main()
