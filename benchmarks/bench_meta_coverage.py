"""Statistical validation of the one-stage IPD meta-analysis on the simulator (known truth).

For each of ``--seeds`` seeds (default 50) of a scenario: simulate the pooled IPD
(``training.simulate.simulate_dataset``), write it, load it, harmonise it, and fit with the
package's one-stage models (``training.meta.design.build_design`` + ``training.meta.fit.fit_model``):

(a) the overall effect at short term for pain and function (REML LMM) and global recovery
    (Laplace GLMM, log-OR), exercise vs ``no_treatment_usual_care`` and vs ``other_conservative``;
(b) within-trial treatment x covariate interactions (comparison ``any_non_exercise``, short term):
    pain x {age, female, BMI, heavy physical work, fear-avoidance, medication, baseline pain},
    pain x medication adjusted for age and sex, function x {heavy work, medication, baseline
    function}, recovery x {heavy work, medication}.

For each target it reports the true value, the mean estimate, the bias with its Monte-Carlo SE
(MCSE = SD/sqrt(S)), whether |bias| < 2 MCSE, the Wald-z 95% CI coverage with its MCSE
(sqrt(c(1-c)/S)) against the 93-97% target, the coverage of a small-sample t_{k-1} interval
(est +/- t_{0.975,k-1} * SE, k = trials in the model), the ratio of the mean model SE to the
empirical SD of the estimates, the mean tau, the share of singular (boundary) fits and the mean
fit time. Output: a printed table plus ``<out>/meta_coverage_<scenario>.csv`` / ``.md`` and the
per-seed rows ``meta_coverage_<scenario>_seeds.csv`` (estimates only; no participant data).

Estimands (derived from the data-generating model, ``docs/simulator.md``)
--------------------------------------------------------------------------
Simulator, short term, participant i in trial j, outcome o, class c (comparator set S)::

    Y = nc_o + a_j + b_j (y0 - centre) + cross (y0_other - centre) + prog_o(x)
        + L[c,o] + u_{j,c} + share_c * mod_o(x) + e                     (latent)
    observed = round_h(clip(Y, 0, 100))

with L[exercise] = 0 and share = 1 for exercise, 0 for the comparators, ``mod_o`` the sum of the
scenario's exercise x covariate terms, each centred at its population mean, and L[c,o] solved
so that the population-average *observed-scale* difference is the scenario's ``effects[c][o]``
(exercise minus c; negative favours exercise). Hence the latent individual effect (exercise
minus c) is  delta_i = -L[c,o] - u_{j,c} + mod_o(x_i).

* ``param`` (the simulator parameter): overall continuous effects -> ``effects[c][o]`` (the
  modifier terms evaluated at their centres are 0 by construction); interactions on a linear
  modifier -> its coefficient x ``modifier_scale`` (a latent-scale parameter); global recovery
  has no parameter (it is derived from pain and function), so ``param`` is empty.
* ``truth`` (what the fitted coefficient estimates on this trial design; the reference for bias
  and coverage): computed per seed from the exact data-generating model with the class random
  effects u set to 0 (they are the model's b_0j, mean 0), on the *observed* scale: for every
  analysed participant the exact expected harmonised score under exercise and under the trial's
  comparator(s) (E[round_h(clip(Y))], ``training.simulate.truth.rounded_clipped_mean``; global
  recovery: the exact recovery probability, ``truth.recovery_probability``), conditional on the
  participant's complete covariates and recorded baselines, in their trial (a_j, b_j).
  Then, per target:
    - overall, continuous: trial effect D_j = mean over the trial's analysed participants of
      E_ex,i - sum_c pi_jc E_c,i (pi_jc: share of the trial's comparator participants in class c;
      randomisation makes this the estimand of the trial's baseline-adjusted ANCOVA), pooled with
      the random-effects weights the model would use if it knew tau:
      w_j = 1 / (sigma^2 (1/n1_j + 1/n0_j) + tau_o^2), sigma the pooled within-trial residual SD
      of the data given arm and baseline, tau_o the scenario's heterogeneity SD. This is the
      scenario effect plus the modifier terms averaged over the analysed trials' case-mix (which
      is not the population's: e.g. a pinned trial with mean age 60), on the observed scale;
    - interactions, continuous: the pooled within-trial least-squares slope of the individual
      effect on the trial-centred modifier (plus trial-centred age and sex when adjusted),
      the large-sample value of gamma_W (the model has no random interaction slope);
    - global recovery (conditional log-OR): the large-sample limit (KL projection) of the fitted
      model itself: a logistic regression with the model's fixed part (trial intercepts,
      trial-specific baseline-function slopes = the limit of the random slope, trial-specific
      treatment effects for interaction models, a common treatment effect for the overall model)
      fitted to the true probabilities of both potential outcomes of every analysed participant,
      weighted by the trial's allocation (n1_j/n_j, n0_j/n_j). This is the conditional log-OR,
      given trial and baseline function, the GLMM targets; it is not the marginal log-OR
      (non-collapsibility) and not a simulator parameter. For the overall model the pooled
      log-OR is information-weighted (tau = 0: the GLMM's tau estimate is mostly 0 here, see the
      singular share).
  ``truth`` in the table is the mean of the per-seed values (it varies with the seed only
  through the case-mix of the trials; its MCSE is reported); coverage is computed against it.
* ``truth_latent`` (continuous only): the same estimand computed on the latent scale (no clipping,
  no rounding). ``truth - truth_latent`` quantifies how much clipping to 0-100 and instrument
  rounding move the estimand; ``bias_vs_param`` = mean estimate - param is the total departure of
  the estimate from the simulator parameter (case-mix of the analysed trials + scale + estimator).

Which scenario for which question: the default ``hayden2020`` has correlated covariates and a
joint (non-linear in BMI) modifier model, so one-at-a-time interactions are *not* simulator
parameters there (their ``truth`` above still is the exact one-at-a-time estimand, and
``bias_vs_param`` shows the leakage). ``benchmarks/scenarios/independent_linear.yaml`` has
independent covariates and linear modifiers, so there the interaction estimands are the simulator
coefficients up to the clipping/rounding attenuation (and, for age, a small dependence the
simulator builds in: episode duration is capped at 12 (age - 14) months).
``hayden2020`` also *centres* the realised trial random effects u (participant-weighted, per
class), so the pooled estimate carries almost no between-trial variance while the model (rightly,
for real trials) adds tau^2: its overall-effect CIs over-cover there by construction.
``benchmarks/scenarios/hayden2020_uncentred.yaml`` draws u independently, as the random-effects
model assumes; it is the scenario that tests the coverage of the overall effects.

Assumptions/approximations: sporadic (MCAR) missing items mean that 1% of participants have
recovery decided by one outcome in the data but by both in the truth (as in the simulator's own
truth table); the latent offsets and term centres are Monte-Carlo constants of the simulator.

Usage::

    python benchmarks/bench_meta_coverage.py --seeds 50 --scenario hayden2020 --out benchmarks/results
    python benchmarks/bench_meta_coverage.py --seeds 50 --scenario benchmarks/scenarios/independent_linear.yaml
    python benchmarks/bench_meta_coverage.py --seeds 200 --scenario benchmarks/scenarios/hayden2020_uncentred.yaml
    python benchmarks/bench_meta_coverage.py --from-seeds benchmarks/results/meta_coverage_hayden2020_seeds.csv  # re-summarise
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from training.config import load_config  # noqa: E402
from training.dataset import load_dataset  # noqa: E402
from training.harmonise import RECOVERY, harmonise  # noqa: E402
from training.meta.design import ModelSpec, build_design  # noqa: E402
from training.meta.fit import fit_model  # noqa: E402
from training.simulate import model as sim_model  # noqa: E402
from training.simulate import simulate_dataset  # noqa: E402
from training.simulate import truth as sim_truth  # noqa: E402
from training.simulate.population import tobit_mean  # noqa: E402
from training.simulate.scenario import LATENT, OUTCOMES, load_scenario  # noqa: E402

FOLLOW_UP = "short"


@dataclass(frozen=True)
class Target:
    outcome: str
    comparison: str
    modifier: str | None = None
    adjusted: bool = False

    @property
    def label(self) -> str:
        m = "overall" if self.modifier is None else f"x {self.modifier}" + (" (adj)" if self.adjusted else "")
        return f"{self.outcome} {m} vs {self.comparison}"


OVERALL = [Target(o, c) for o in ("pain", "function", RECOVERY) for c in ("no_treatment_usual_care", "other_conservative")]
INTERACTIONS = [
    Target("pain", "any_non_exercise", "age"),
    Target("pain", "any_non_exercise", "female"),
    Target("pain", "any_non_exercise", "bmi"),
    Target("pain", "any_non_exercise", "heavy_physical_work"),
    Target("pain", "any_non_exercise", "fear_avoidance"),
    Target("pain", "any_non_exercise", "lbp_medication"),
    Target("pain", "any_non_exercise", "lbp_medication", adjusted=True),
    Target("pain", "any_non_exercise", "baseline_pain"),
    Target("function", "any_non_exercise", "heavy_physical_work"),
    Target("function", "any_non_exercise", "lbp_medication"),
    Target("function", "any_non_exercise", "baseline_function"),
    Target(RECOVERY, "any_non_exercise", "heavy_physical_work"),
    Target(RECOVERY, "any_non_exercise", "lbp_medication"),
]
TARGETS = OVERALL + INTERACTIONS


# ----------------------------------------------------------------------------------------------
# True expected outcomes (u = 0) for every simulated participant
# ----------------------------------------------------------------------------------------------
def true_expectations(sim) -> dict:
    """Exact short-term expectations under every class for every participant, class random
    effects set to 0. Returns {'index': MultiIndex(trial, participant), 'classes': [...],
    (o, 'obs'|'clip'|'latent'): (n, C) for pain/function, (RECOVERY, 'obs'): (n, C)}."""
    scen = sim.scenario
    comp = sim.complete
    trials = scen.trials
    trial_ids = [t.id for t in trials]
    tidx = comp["trial"].cat.codes.to_numpy().astype(np.int64)
    te_df = sim.trial_effects.set_index(["trial", "outcome"])
    inter = np.array([[te_df.loc[(t, o), "intercept"] for o in OUTCOMES] for t in trial_ids], float)
    slope = np.array([[te_df.loc[(t, o), "baseline_slope"] for o in OUTCOMES] for t in trial_ids], float)
    te = sim_model.TrialEffects(inter, slope, np.zeros((len(trials), len(scen.classes), 2)))
    x = {v: comp[v].to_numpy(float) for v in LATENT}
    base = {o: comp[f"baseline_{o}"].to_numpy(float) for o in OUTCOMES}
    means = sim_model.expected_latent(scen, x, base, tidx, te)
    out = {"index": pd.MultiIndex.from_arrays([comp["trial"].astype(str).to_numpy(), comp["participant"].astype(str).to_numpy()]),
           "classes": list(scen.classes)}
    cfg = scen.config
    zs = {}
    for o in OUTCOMES:
        mu = means.mu[(o, FOLLOW_UP)]
        sd = means.sd[(o, FOLLOW_UP)]
        codes = [t.instruments[o] for t in trials]
        h = np.array([scen.grid_step(c) for c in codes])[tidx]
        out[(o, "latent")] = mu
        out[(o, "clip")] = tobit_mean(mu, sd, 0.0, 100.0)
        out[(o, "obs")] = sim_truth.rounded_clipped_mean(mu, sd, h[:, None])
        z = np.empty(mu.shape)
        code_arr = np.array([c if c is not None else "" for c in codes], dtype=object)[tidx]
        for code in np.unique(code_arr):
            m = code_arr == code
            if code == "":
                z[m] = sim_truth.recovery_z(mu[m], sd, base[o][m], float(cfg.recovery_relative),
                                            float(cfg.outcomes[o].recovery_min_points), None, 0.0)
            else:
                grid = sim_truth.grid_values(code, scen.precision(code))
                z[m] = sim_truth.recovery_z(mu[m], sd, base[o][m], float(cfg.recovery_relative),
                                            float(cfg.outcomes[o].recovery_min_points), grid, scen.grid_step(code))
        zs[o] = z
    mp = np.array([t.measures("pain", FOLLOW_UP) for t in trials])
    mf = np.array([t.measures("function", FOLLOW_UP) for t in trials])
    none = ~mp & ~mf
    rho = float((scen.raw.get("residual_correlation") or {}).get("pain_function", 0.0))
    out[(RECOVERY, "obs")] = sim_truth.recovery_probability(zs["pain"], zs["function"], rho, (mp | none)[tidx], (mf | none)[tidx])
    return out


def _potential_outcomes(design, analysis: pd.DataFrame, exp: dict, scale: str):
    """For the design's rows: (E under exercise, E under the trial's comparator mix, treat, trial)."""
    rows = analysis.loc[design.X.index]
    key = pd.MultiIndex.from_arrays([rows["trial"].astype(str).to_numpy(), rows["participant"].astype(str).to_numpy()])
    pos = exp["index"].get_indexer(key)
    if (pos < 0).any():
        raise RuntimeError("analysed participant not found in the simulator's complete table")
    E = exp[(design.spec.outcome, scale)][pos]
    classes = exp["classes"]
    col = {c: i for i, c in enumerate(classes)}
    treat = rows["treat"].to_numpy(int)
    trial = rows["trial"].astype(str).to_numpy()
    e_ex = E[:, col["exercise"]]
    e_c = np.empty(len(rows))
    for j in np.unique(trial):
        m = trial == j
        comp = rows.loc[m & (treat == 0), "treatment"].astype(str).value_counts(normalize=True)
        e_c[m] = sum(p * E[m, col[c]] for c, p in comp.items())
    return e_ex, e_c, treat, trial


def _pooled_sigma(design) -> float:
    """Pooled within-trial residual SD given arm and baseline (per-trial OLS)."""
    ss, df = 0.0, 0
    y = design.y
    t = design.X["treat"].to_numpy()
    b = design.X["baseline_c"].to_numpy() if "baseline_c" in design.X else np.zeros(len(y))
    for j in np.unique(design.groups):
        m = design.groups == j
        A = np.column_stack([np.ones(m.sum()), t[m], b[m]])
        coef, *_ = np.linalg.lstsq(A, y[m], rcond=None)
        r = y[m] - A @ coef
        ss += float(r @ r)
        df += int(m.sum()) - 3
    return math.sqrt(ss / max(df, 1))


def _logit_fit(X: np.ndarray, p: np.ndarray, w: np.ndarray, col: int) -> float:
    """Weighted fractional-response logistic regression by Newton's method; returns coef[col]."""
    beta = np.zeros(X.shape[1])
    for _ in range(100):
        eta = X @ beta
        mu = 1.0 / (1.0 + np.exp(-eta))
        g = X.T @ (w * (p - mu))
        H = (X * (w * mu * (1 - mu))[:, None]).T @ X
        step = np.linalg.solve(H + 1e-10 * np.eye(len(beta)), g)
        beta += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(beta[col])


def design_estimand(design, analysis: pd.DataFrame, exp: dict, tau: float, scale: str = "obs") -> float:
    """The value the one-stage coefficient estimates on this design (see the module docstring)."""
    spec = design.spec
    e_ex, e_c, treat, trial = _potential_outcomes(design, analysis, exp, scale)
    delta = e_ex - e_c
    trials = np.unique(trial)
    m = spec.modifier
    if not spec.binary_outcome:
        if m is None:
            sigma = _pooled_sigma(design)
            num = den = 0.0
            for j in trials:
                s = trial == j
                n1, n0 = int((treat[s] == 1).sum()), int((treat[s] == 0).sum())
                w = 1.0 / (sigma**2 * (1 / n1 + 1 / n0) + tau**2)
                num += w * delta[s].mean()
                den += w
            return num / den
        zc = _centred(analysis.loc[design.X.index, m].to_numpy(float), trial)
        cols = [zc] + [design.X[f"{a}_c"].to_numpy() for a in ("age", "female") if spec.adjusted and f"{a}_c" in design.X]
        dc = delta - pd.Series(delta).groupby(trial).transform("mean").to_numpy()
        A = np.column_stack(cols)
        coef, *_ = np.linalg.lstsq(A, dc, rcond=None)
        return float(coef[0])
    # Global recovery: large-sample limit of the logistic model's fixed part.
    n = len(trial)
    D = (trial[:, None] == trials[None, :]).astype(float)
    y0c = design.X["baseline_c"].to_numpy() if "baseline_c" in design.X else np.zeros(n)
    base_cols = [D, D * y0c[:, None]]
    if m is not None:
        zc = _centred(analysis.loc[design.X.index, m].to_numpy(float), trial)
        adj = [design.X[f"{a}_c"].to_numpy() for a in ("age", "female") if spec.adjusted and f"{a}_c" in design.X]
        covs = ([] if np.allclose(zc, y0c) else [zc]) + adj
        X0 = np.column_stack(base_cols + [np.column_stack(covs)] if covs else base_cols)
        tcols = [zc] + adj
        X1 = np.column_stack([X0, D, np.column_stack(tcols)])
        X0f = np.column_stack([X0, np.zeros_like(D), np.zeros((n, len(tcols)))])
        col = X0.shape[1] + D.shape[1]
    else:
        X0 = np.column_stack(base_cols)
        X1 = np.column_stack([X0, np.ones(n)])
        X0f = np.column_stack([X0, np.zeros(n)])
        col = X0.shape[1]
    share1 = pd.Series(treat).groupby(trial).transform("mean").to_numpy()
    X = np.vstack([X1, X0f])
    p = np.concatenate([e_ex, e_c])
    w = np.concatenate([share1, 1 - share1])
    keep = np.abs(X).sum(0) > 0
    col = int(np.cumsum(keep)[col] - 1)
    return _logit_fit(X[:, keep], p, w, col)


def _centred(v: np.ndarray, trial: np.ndarray) -> np.ndarray:
    return v - pd.Series(v).groupby(trial).transform("mean").to_numpy()


def scenario_param(scen, target: Target) -> float:
    """The simulator parameter behind a target (NaN when there is none)."""
    if target.outcome == RECOVERY:
        return float("nan")
    if target.modifier is None:
        eff = scen.raw["effects"]
        comps = load_config().comparisons[target.comparison]
        vals = {float(eff[c][target.outcome]) for c in comps if c in eff}
        return vals.pop() if len(vals) == 1 else float("nan")
    terms = [t for t in list(scen.raw.get("modifiers") or []) + list(scen.raw.get("extra_modifiers") or [])
             if t.get("var") == target.modifier or target.modifier in (t.get("vars") or [])]
    if len(terms) != 1 or terms[0]["term"] != "linear":
        return float("nan")  # non-linear or several terms: no single coefficient
    return float(terms[0].get(target.outcome, 0.0)) * float(scen.raw.get("modifier_scale", 1.0))


# ----------------------------------------------------------------------------------------------
# One seed
# ----------------------------------------------------------------------------------------------
def run_seed(scenario: str, seed: int, n_participants: int | None = None, targets: list[Target] | None = None) -> list[dict]:
    """Simulate, harmonise and fit every target for one seed; one row per target."""
    targets = TARGETS if targets is None else targets
    scen = load_scenario(scenario)
    sim = simulate_dataset(scen, seed=seed, n_participants=n_participants)
    with tempfile.TemporaryDirectory(prefix="lbp_cov_") as d:
        sim.write(d)
        h = harmonise(load_dataset(d))
    analysis = h.analysis
    cfg = h.config
    exp = true_expectations(sim)
    het = scen.raw.get("heterogeneity") or {}
    rows = []
    for tg in targets:
        spec = ModelSpec(tg.outcome, FOLLOW_UP, tg.comparison, tuple(cfg.comparisons[tg.comparison]), tg.modifier,
                         tg.adjusted, tg.outcome == RECOVERY)
        row = {"target": tg.label, "outcome": tg.outcome, "comparison": tg.comparison,
               "modifier": tg.modifier or "", "adjusted": tg.adjusted, "seed": seed}
        try:
            design = build_design(analysis, spec)
        except Exception as exc:  # not estimable in this seed
            rows.append({**row, "status": "not estimable", "message": str(exc)})
            continue
        t0 = time.perf_counter()
        fit = fit_model(design)
        row["fit_time"] = time.perf_counter() - t0
        tau = float(het.get(tg.outcome, 0.0)) if tg.outcome != RECOVERY else 0.0
        row["truth"] = design_estimand(design, analysis, exp, tau, "obs")
        if tg.outcome != RECOVERY:
            row["truth_clip"] = design_estimand(design, analysis, exp, tau, "clip")
            row["truth_latent"] = design_estimand(design, analysis, exp, tau, "latent")
        row.update({k: fit[k] for k in ("studies", "participants", "estimate", "se", "ci_low", "ci_high", "tau", "status", "message")})
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------
# Summary
# ----------------------------------------------------------------------------------------------
def summarise(per_seed: pd.DataFrame, scen) -> pd.DataFrame:
    out = []
    for tg in TARGETS:
        d = per_seed[per_seed["target"] == tg.label]
        ok = d[d["status"].isin(["ok", "singular"]) & np.isfinite(d["estimate"].astype(float))]
        S = len(ok)
        r = {"target": tg.label, "seeds": len(d), "fits": S, "param": scenario_param(scen, tg)}
        if S == 0:
            out.append(r)
            continue
        est = ok["estimate"].to_numpy(float)
        se = ok["se"].to_numpy(float)
        truth = float(ok["truth"].mean())
        k = ok["studies"].to_numpy(float)
        bias = est.mean() - truth
        sd = float(est.std(ddof=1)) if S > 1 else float("nan")
        bias_mcse = sd / math.sqrt(S)
        z = stats.norm.ppf(0.975)
        cover = float(np.mean(np.abs(est - truth) <= z * se))
        tq = stats.t.ppf(0.975, np.maximum(k - 1, 1))
        cover_t = float(np.mean(np.abs(est - truth) <= tq * se))
        r.update({
            "truth": truth,
            "truth_mcse": float(ok["truth"].std(ddof=1) / math.sqrt(S)) if S > 1 else float("nan"),
            "truth_latent": float(ok["truth_latent"].mean()) if "truth_latent" in ok and ok["truth_latent"].notna().any() else float("nan"),
            "mean_estimate": float(est.mean()),
            "bias": float(bias), "bias_mcse": float(bias_mcse),
            "unbiased": bool(abs(bias) < 2 * bias_mcse),
            "bias_vs_param": float(est.mean() - r["param"]) if np.isfinite(r["param"]) else float("nan"),
            "emp_sd": sd, "mean_se": float(se.mean()),
            "se_ratio": float(se.mean() / sd),
            "coverage": cover, "coverage_mcse": math.sqrt(cover * (1 - cover) / S),
            "coverage_ok": bool(0.93 <= cover <= 0.97),
            "coverage_t": cover_t,
            "studies": float(k.mean()),
            "tau_mean": float(ok["tau"].astype(float).mean()),
            "singular_share": float((ok["status"] == "singular").mean()),
            "tau_zero_share": float((ok["tau"].astype(float) < 1e-6).mean()),
            "failed": int(len(d) - S),
            "fit_time_s": float(ok["fit_time"].astype(float).mean()),
        })
        out.append(r)
    return pd.DataFrame(out)


def _fmt(v, nd=3):
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "NO"
    if isinstance(v, (float, np.floating)):
        return "" if not np.isfinite(v) else f"{v:.{nd}f}"
    return str(v)


MD_COLUMNS = [("target", "target"), ("studies", "k"), ("fits", "fits"), ("param", "param"), ("truth", "truth"),
              ("truth_latent", "truth latent"), ("mean_estimate", "mean est"), ("bias", "bias"), ("bias_mcse", "MCSE"),
              ("unbiased", "|bias|<2MCSE"), ("bias_vs_param", "est-param"), ("se_ratio", "SE/SD"),
              ("coverage", "cover z"), ("coverage_mcse", "MCSE"), ("coverage_ok", "93-97%"), ("coverage_t", "cover t(k-1)"),
              ("tau_mean", "tau mean"), ("tau_zero_share", "tau=0"), ("singular_share", "singular"), ("fit_time_s", "fit s")]


def markdown(summary: pd.DataFrame) -> str:
    head = "| " + " | ".join(h for _, h in MD_COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in MD_COLUMNS) + "|"
    lines = [head, sep]
    for _, r in summary.iterrows():
        cells = []
        for c, _ in MD_COLUMNS:
            v = r.get(c, float("nan"))
            nd = 1 if c == "studies" else 2 if c in ("coverage", "coverage_t", "singular_share", "tau_zero_share", "fit_time_s", "se_ratio") else 3
            cells.append(_fmt(v, nd) if c not in ("fits",) else str(int(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=50, help="number of seeds (1..S)")
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--scenario", default="hayden2020", help="scenario name or YAML path")
    ap.add_argument("--participants", type=int, default=None, help="resize every trial to this total (default: as published)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--from-seeds", default=None, help="re-summarise a per-seed CSV written earlier (no fitting)")
    args = ap.parse_args(argv)
    scen = load_scenario(args.scenario)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()
    t0 = time.time()
    print(f"meta coverage: scenario {scen.name}, {len(seeds)} seeds, {args.workers} workers, nproc {os.cpu_count()}, "
          f"load {load0[0]:.2f}", flush=True)
    rows: list[dict] = []
    if args.from_seeds:
        rows = pd.read_csv(args.from_seeds).to_dict("records")
        seeds = sorted({int(r["seed"]) for r in rows})
    elif args.workers <= 1:
        for s in seeds:
            rows += run_seed(args.scenario, s, args.participants)
            print(f"  seed {s} done ({time.time() - t0:.0f} s)", flush=True)
    else:
        with ProcessPoolExecutor(args.workers) as pool:
            futs = {pool.submit(run_seed, args.scenario, s, args.participants): s for s in seeds}
            for i, f in enumerate(as_completed(futs), 1):
                rows += f.result()
                print(f"  seed {futs[f]} done [{i}/{len(seeds)}] ({time.time() - t0:.0f} s)", flush=True)
    per_seed = pd.DataFrame(rows).sort_values(["seed", "target"], kind="mergesort").reset_index(drop=True)
    summary = summarise(per_seed, scen)
    wall = time.time() - t0
    load1 = os.getloadavg()
    stem = f"meta_coverage_{scen.name}"
    per_seed.drop(columns=["message"], errors="ignore").to_csv(out / f"{stem}_seeds.csv", index=False)
    summary.to_csv(out / f"{stem}.csv", index=False)
    md = markdown(summary)
    run = f"re-summarised from {args.from_seeds}" if args.from_seeds else f"workers {args.workers}, wall {wall:.0f} s"
    header = (f"Scenario `{scen.name}`, seeds {seeds[0]}-{seeds[-1]} ({len(seeds)}), short term, "
              f"{datetime.date.today().isoformat()}, nproc {os.cpu_count()}, CPU {_cpu()}, {run}, "
              f"load average {load0[0]:.2f} -> {load1[0]:.2f}, Python {sys.version.split()[0]}.\n\n")
    (out / f"{stem}.md").write_text(header + md + "\n", "utf-8")
    print()
    print(header + md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
