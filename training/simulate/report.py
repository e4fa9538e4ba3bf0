"""Calibration report: simulated vs published, side by side, each row with its tolerance.

One row per quantity, columns ``section, quantity, published, simulated, lower, upper,
tolerance, within`` (``within`` = lower <= simulated <= upper). Rows can be appended by
later checks (e.g. mixed-model fits) with :func:`row`; keep ``lower``/``upper`` as the
accepted interval and ``tolerance`` as the words that explain it.

Tolerances (why each is what it is):

* design (participants, arms, groups, trial sizes, trials per covariate, follow-up
  availability): **exact**; the design is copied from the paper. With ``n_participants``
  the counts are rescaled and rounding of each arm is allowed for.
* Table 3 n recorded: ±2% (at least 10). The trials that measured a covariate are fixed; only
  the within-trial 2% missingness is random (its binomial SD is < 0.5% of n).
* Table 3 missing %: ±1 percentage point (same reason).
* Table 3 means and percentages: ±3 standard errors of the published estimate (SE from the
  published 95% CI, or binomial for percentages). The case-mix model hits the target in
  expectation, so only sampling error remains; 3 SE keeps the false-alarm rate per row ~0.3%.
* Episode duration median and quartiles: ±20% (relative): about 3 SE of a sample quantile
  of this skewed variable (log-scale SE ~0.055 for n = 1692).
* Analysed participants per covariate (Tables 4–5 adjusted n): ±8%. They also depend on missed
  short-term visits (MCAR, 7%) and on which trials lack pain or function; the published counts
  imply slightly different losses per covariate than one missingness rate gives.
* Effects from the truth (population-average benefit; marginal recovery OR): the published
  95% CI (±0.05 for the printed rounding).
* Effects and interactions fitted on the simulated data (fixed trial effects; the lead's
  mixed-model fits will be appended): the published 95% CI. A correctly calibrated simulator
  puts ~95% of these inside by chance, so a few fitted interaction rows outside are expected;
  the ``fit`` rows are informative, the others are asserted by the tests.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from training.simulate.scenario import COVARIATES, FOLLOW_UPS, OUTCOMES, RECOVERY

COLUMNS = ["section", "quantity", "published", "simulated", "lower", "upper", "tolerance", "within"]
NTUC = ("no_treatment", "placebo", "usual_care")
OC = ("other_conservative",)


def row(section: str, quantity: str, published, simulated, lower, upper, tolerance: str, slack: float = 0.0) -> dict:
    """One report row; ``within`` is computed (NaN simulated or bounds -> False). ``slack``
    widens the accepted interval by the rounding of the printed bounds (half a last digit)."""
    vals = [published, simulated, lower, upper]
    published, simulated, lower, upper = [float("nan") if v is None else float(v) for v in vals]
    lower, upper = lower - slack, upper + slack
    within = bool(np.isfinite(simulated) and lower - 1e-9 <= simulated <= upper + 1e-9)
    return {"section": section, "quantity": quantity, "published": published, "simulated": simulated,
            "lower": lower, "upper": upper, "tolerance": tolerance, "within": within}


def _abs(section, q, pub, sim, tol, words):
    return row(section, q, pub, sim, pub - tol, pub + tol, words)


def calibration_report(sim, fits: bool = True) -> pd.DataFrame:
    """Simulated vs published for a simulated dataset (rows only where the scenario has
    published targets). ``fits=False`` leaves out the rows fitted on the simulated data."""
    pub = sim.scenario.published or {}
    rows: list[dict] = []
    factor = len(sim.participants) / float(pub.get("participants", len(sim.participants)) or 1)
    if pub.get("participants") and len(sim.scenario.trials) == pub.get("trials"):
        rows += _design(sim, pub, factor)
        rows += _table3(sim, pub, factor)
        rows += _studies(sim, pub, factor)
    rows += _truth_effects(sim, pub)
    if fits and pub.get("overall"):
        rows += _fitted_effects(sim, pub)
        if pub.get("interactions"):
            rows += _fitted_interactions(sim, pub)
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.attrs["synthetic"] = "Calibration report for SYNTHETIC data (lbp-benefit simulator)."
    return df


# ----------------------------------------------------------------------------------------- design
def _design(sim, pub, factor) -> list[dict]:
    p = sim.participants
    scen = sim.scenario
    exact = factor == 1.0
    out = []

    def count(q, published, simulated, groups=1):
        tol = 0.0 if exact else 0.5 * groups + 0.01 * published * factor
        out.append(_abs("design", q, published * factor, simulated, tol, "exact" if exact else "rescaled; arm rounding"))

    count("participants", pub["participants"], len(p), 63)
    out.append(_abs("design", "trials", pub["trials"], p["trial"].nunique(), 0, "exact"))
    tr = p["treatment"].astype(str)
    bc = pub["by_class"]
    count("participants: exercise", bc["exercise"], (tr == "exercise").sum(), 46)
    count("participants: no treatment/placebo", bc["no_treatment_placebo"], tr.isin(["no_treatment", "placebo"]).sum(), 3)
    count("participants: usual care", bc["usual_care"], (tr == "usual_care").sum(), 4)
    count("participants: other conservative", bc["other_conservative"], (tr == "other_conservative").sum(), 10)
    arms = [(t.id, a.treatment) for t in scen.trials for a in t.arms]
    g = pub["groups"]
    for cls, lab in (("exercise", "exercise"), ("no_treatment", "no treatment/placebo"), ("usual_care", "usual care"),
                     ("other_conservative", "other conservative")):
        classes = ("no_treatment", "placebo") if cls == "no_treatment" else (cls,)
        out.append(_abs("design", f"groups: {lab}", g[cls], sum(1 for _, c in arms if c in classes), 0, "exact"))
    n_ex = [sum(a.treatment == "exercise" for a in t.arms) for t in scen.trials]
    n_cmp = [sum(a.treatment != "exercise" for a in t.arms) for t in scen.trials]
    for k, v in pub["exercise_groups_per_trial"].items():
        out.append(_abs("design", f"trials with {k} exercise group(s)", v, sum(x == int(k) for x in n_ex), 0, "exact"))
    for k, v in pub["comparison_groups_per_trial"].items():
        out.append(_abs("design", f"trials with {k} comparison group(s)", v, sum(x == int(k) for x in n_cmp), 0, "exact"))
    sizes = p.groupby("trial", observed=True).size().to_numpy()
    ts = pub["trial_size"]
    qs = {"min": sizes.min(), "q1": np.percentile(sizes, 25), "median": np.median(sizes),
          "q3": np.percentile(sizes, 75), "max": sizes.max()}
    for k in ("min", "q1", "median", "q3", "max"):
        tol = 0.0 if exact else 0.02 * ts[k] * factor + 2
        out.append(_abs("design", f"trial size {k}", ts[k] * factor, qs[k], tol, "exact" if exact else "rescaled"))
    rep = pub["trials_reporting"]
    out.append(_abs("design", "trials reporting pain", rep["pain"], sum(t.measures("pain") for t in scen.trials), 0, "exact"))
    out.append(_abs("design", "trials reporting function", rep["function"], sum(t.measures("function") for t in scen.trials), 0, "exact"))
    for f in FOLLOW_UPS:
        v = sum(bool(t.weeks.get(f)) for t in scen.trials)
        out.append(_abs("design", f"trials with {f}-term follow-up", rep[f], v, 0, "exact"))
    return out


# ----------------------------------------------------------------------------------------- Table 3
def _observed(sim, v) -> np.ndarray:
    if v.startswith("baseline_"):
        fu = sim.followup
        s = fu[fu["follow_up"] == "short"]
        return s[v].to_numpy(float)
    return sim.participants[v].to_numpy(dtype=float, na_value=np.nan)


def _table3(sim, pub, factor) -> list[dict]:
    out = []
    N = len(sim.participants)
    for v, t in pub["table3"].items():
        x = _observed(sim, v)
        rec = x[~np.isnan(x)]
        n = len(rec)
        pn = t["n"] * factor
        out.append(_abs("table3", f"{v}: n recorded", pn, n, max(10.0, 0.02 * pn), "±2% (≥10)"))
        out.append(_abs("table3", f"{v}: missing %", t["missing_pct"], 100 * (1 - n / N), 1.0, "±1 point"))
        if "mean" in t:
            se = (t["ci"][1] - t["ci"][0]) / 3.92 / math.sqrt(factor)
            out.append(_abs("table3", f"{v}: mean", t["mean"], rec.mean(), 3 * se, "±3 SE (published CI)"))
        elif "pct" in t:
            p = t["pct"] / 100
            se = 100 * math.sqrt(p * (1 - p) / pn)
            out.append(_abs("table3", f"{v}: % yes", t["pct"], 100 * rec.mean(), 3 * se, "±3 SE (binomial)"))
        elif "median" in t:
            q1, med, q3 = np.percentile(rec, [25, 50, 75])
            out.append(row("table3", f"{v}: median", t["median"], med, 0.8 * t["median"], 1.2 * t["median"], "±20%"))
            out.append(row("table3", f"{v}: 25th percentile", t["iqr"][0], q1, 0.8 * t["iqr"][0], 1.2 * t["iqr"][0], "±20%"))
            out.append(row("table3", f"{v}: 75th percentile", t["iqr"][1], q3, 0.8 * t["iqr"][1], 1.2 * t["iqr"][1], "±20%"))
    return out


def _studies(sim, pub, factor) -> list[dict]:
    out = []
    p = sim.participants
    fu = sim.followup
    s = fu[fu["follow_up"] == "short"].reset_index(drop=True)
    age_ok = ~np.isnan(p["age"].to_numpy(dtype=float, na_value=np.nan))
    sex_ok = ~np.isnan(p["female"].to_numpy(dtype=float, na_value=np.nan))
    for v, t in (pub.get("covariate_studies") or {}).items():
        x = p[v].to_numpy(dtype=float, na_value=np.nan)
        trials = p.loc[~np.isnan(x), "trial"].nunique()
        out.append(_abs("studies", f"{v}: trials with it", t["trials"], trials, 0, "exact"))
        for o in OUTCOMES:
            ok = ~np.isnan(x) & age_ok & sex_ok & ~np.isnan(s[o].to_numpy()) & ~np.isnan(s[f"baseline_{o}"].to_numpy())
            pn = t[f"{o}_n"] * factor
            out.append(_abs("studies", f"{v}: analysed, {o} (short term)", pn, int(ok.sum()), 0.08 * pn, "±8%"))
    return out


# ----------------------------------------------------------------------------------------- effects
def _truth_effects(sim, pub) -> list[dict]:
    out = []
    ov = pub.get("overall") or {}
    tr = sim.truth
    s = tr[tr["follow_up"] == "short"]
    for o in OUTCOMES + (RECOVERY,):
        so = s[s["outcome"] == o]
        for comp, classes, key in (("no treatment/usual care", NTUC, "no_treatment_usual_care"),
                                   ("other conservative", OC, "other_conservative")):
            pk = f"{'recovery' if o == RECOVERY else o}_vs_{key}"
            if o == RECOVERY:
                pe = so["expected_exercise"].mean()
                pc = np.mean([so[f"expected_{c}"].mean() for c in classes])
                val = (pe / (1 - pe)) / (pc / (1 - pc))
                q = f"recovery OR vs {comp} (truth, marginal)"
            else:
                val = -np.mean([so[f"benefit_vs_{c}"].mean() for c in classes])  # MD exercise minus class
                q = f"{o} MD vs {comp} (truth, population average)"
            if pk in ov:
                lo, hi = ov[pk]["ci"]
                out.append(row("effects (truth)", q, ov[pk]["estimate"], val, lo, hi, "published 95% CI", slack=0.05))
            else:
                out.append(row("effects (truth)", q, None, val, None, None, "no published target"))
    return out


def _group_sums(codes: np.ndarray, T: int, v: np.ndarray) -> np.ndarray:
    """Per-trial sums of v (n,) or of each column of v (n, k)."""
    if v.ndim == 1:
        return np.bincount(codes, v, minlength=T)
    return np.stack([np.bincount(codes, v[:, j], minlength=T) for j in range(v.shape[1])], axis=1)


def _dense(codes: np.ndarray) -> tuple[np.ndarray, int]:
    u, inv = np.unique(codes, return_inverse=True)
    return inv.astype(np.int64), len(u)


def ols(codes: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS with fixed trial intercepts (absorbed by within-trial demeaning); (coefficients, SEs)."""
    codes, T = _dense(codes)
    cnt = np.bincount(codes, minlength=T).astype(float)
    Xd = X - (_group_sums(codes, T, X) / cnt[:, None])[codes]
    yd = y - (_group_sums(codes, T, y) / cnt)[codes]
    XtX = Xd.T @ Xd
    beta = np.linalg.solve(XtX, Xd.T @ yd)
    resid = yd - Xd @ beta
    dof = max(len(y) - T - X.shape[1], 1)
    cov = np.linalg.inv(XtX) * (resid @ resid / dof)
    return beta, np.sqrt(np.abs(np.diag(cov)))


def logit(codes: np.ndarray, X: np.ndarray, y: np.ndarray, iters: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression with fixed trial intercepts: Newton–Raphson with the intercept block
    eliminated by its Schur complement (cost linear in n); (coefficients, SEs)."""
    codes, T = _dense(codes)
    a = np.zeros(T)
    beta = np.zeros(X.shape[1])
    ridge = 1e-6
    for _ in range(iters):
        eta = np.clip(a[codes] + X @ beta, -30, 30)
        p = 1.0 / (1.0 + np.exp(-eta))
        W = p * (1 - p)
        r = y - p
        Dg = np.bincount(codes, W, minlength=T) + ridge
        B = _group_sums(codes, T, X * W[:, None])
        C = X.T @ (X * W[:, None])
        ga = np.bincount(codes, r, minlength=T) - ridge * a
        gb = X.T @ r
        S = C - B.T @ (B / Dg[:, None])
        db = np.linalg.solve(S, gb - B.T @ (ga / Dg))
        da = (ga - B @ db) / Dg
        beta += db
        a += da
        if np.abs(db).max() < 1e-10:
            break
    return beta, np.sqrt(np.abs(np.diag(np.linalg.inv(S))))


def _short(sim) -> dict:
    """Short-term analysis arrays (reference harmonisation) with observed covariates."""
    fu = sim.followup
    s = fu[fu["follow_up"] == "short"]
    tr = s["treatment"].astype(str).to_numpy()
    d = {"codes": s["trial"].cat.codes.to_numpy().astype(np.int64),
         "ntuc": np.isin(tr, NTUC).astype(float), "oc": np.isin(tr, OC).astype(float),
         "treat": (tr == "exercise").astype(float)}
    for c in OUTCOMES + (RECOVERY,) + tuple(f"baseline_{o}" for o in OUTCOMES):
        d[c] = s[c].to_numpy(float)
    for v in COVARIATES:
        d[v] = sim.participants[v].to_numpy(dtype=float, na_value=np.nan)
    return d


def _fitted_effects(sim, pub) -> list[dict]:
    out = []
    ov = pub["overall"]
    s = _short(sim)
    for o in OUTCOMES + (RECOVERY,):
        base = "baseline_function" if o == RECOVERY else f"baseline_{o}"
        ok = ~np.isnan(s[o]) & ~np.isnan(s[base])
        if ok.sum() < 50:
            continue
        codes = s["codes"][ok]
        X = np.column_stack([s["ntuc"][ok], s["oc"][ok]])
        b0 = s[base][ok] - s[base][ok].mean()
        if o == RECOVERY:
            b, _ = logit(codes, np.column_stack([X, b0]), s[o][ok])
            vals = np.exp(-b[:2])
            name = "recovery OR"
        else:
            dense, T = _dense(codes)
            slopes = np.zeros((len(b0), T))
            slopes[np.arange(len(b0)), dense] = b0  # trial-specific baseline slopes
            b, _ = ols(codes, np.column_stack([X, slopes]), s[o][ok])
            vals = -b[:2]
            name = f"{o} MD"
        for v, (comp, key) in zip(vals, (("no treatment/usual care", "no_treatment_usual_care"),
                                          ("other conservative", "other_conservative"))):
            pk = f"{'recovery' if o == RECOVERY else o}_vs_{key}"
            lo, hi = ov[pk]["ci"]
            out.append(row("effects (fit)", f"{name} vs {comp} (short term; fixed trial effects)",
                           ov[pk]["estimate"], v, lo, hi, "published 95% CI", slack=0.05))
    return out


def _fitted_interactions(sim, pub) -> list[dict]:
    """Adjusted interaction per covariate (one at a time, as the paper): outcome on fixed trial
    intercepts, baseline, exercise, trial-centred covariate and its interaction with exercise,
    adjusted for trial-centred age and sex; exercise vs any non-exercise comparison, in the
    trials that have one."""
    out = []
    s = _short(sim)
    inter = pub["interactions"]
    T = int(s["codes"].max()) + 1
    n_ex = np.bincount(s["codes"], s["treat"], minlength=T)
    n_all = np.bincount(s["codes"], minlength=T)
    has_cmp = ((n_ex > 0) & (n_ex < n_all))[s["codes"]]
    for o in OUTCOMES + (RECOVERY,):
        base = "baseline_function" if o == RECOVERY else f"baseline_{o}"
        table = inter.get(o if o != RECOVERY else "recovery") or {}
        for v, t in table.items():
            need = list(dict.fromkeys([o, base, "age", "female", v]))
            ok = has_cmp.copy()
            for c in need:
                ok &= ~np.isnan(s[c])
            if ok.sum() < 50:
                continue
            codes = s["codes"][ok]
            cnt = np.bincount(codes, minlength=T).astype(float)
            cnt[cnt == 0] = 1

            def centred(c):
                x = s[c][ok]
                return x - (np.bincount(codes, x, minlength=T) / cnt)[codes]

            xc = centred(v)
            treat = s["treat"][ok]
            cols = [treat, treat * xc, xc] + ([s[base][ok]] if base != v else []) + [
                centred(c) for c in ("age", "female") if c != v]
            X = np.column_stack(cols)
            if o == RECOVERY:
                b, _ = logit(codes, X, s[o][ok])
                val = math.exp(b[1])
            else:
                b, _ = ols(codes, X, s[o][ok])
                val = b[1]
            est, lo, hi = t
            if est is None:
                out.append(row("interactions (fit)", f"{o} x {v}", None, val, None, None, "published value unresolved"))
            else:
                out.append(row("interactions (fit)", f"{o} x {v}", est, val, lo, hi,
                               "published 95% CI ±0.005 rounding (~5% outside by chance)", slack=0.005))
    return out


def report_markdown(df: pd.DataFrame, sim=None) -> str:
    """The report as a Markdown table, with a synthetic-data header."""
    lines = ["# Calibration report (SYNTHETIC data)", ""]
    if sim is not None:
        lines += [f"Scenario `{sim.scenario.name}`, seed {sim.seed}, {len(sim.participants)} participants. "
                  "Simulated vs published (Hayden et al. IPD meta-analysis); see docs/simulator.md for the tolerances.", ""]
    asserted = df[df["section"] != "interactions (fit)"]
    lines += [f"Rows within tolerance: {int(df['within'].sum())} of {len(df)} "
              f"(excluding fitted interactions: {int(asserted['within'].sum())} of {len(asserted)}).", ""]
    lines.append("| section | quantity | published | simulated | accepted | tolerance | within |")
    lines.append("|---|---|---|---|---|---|---|")

    def f(x):
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"

    for r in df.itertuples(index=False):
        acc = "" if math.isnan(r.lower) else f"{f(r.lower)} to {f(r.upper)}"
        lines.append(f"| {r.section} | {r.quantity} | {f(r.published)} | {f(r.simulated)} | {acc} | {r.tolerance} | "
                     f"{'yes' if r.within else '**no**'} |")
    return "\n".join(lines) + "\n"
