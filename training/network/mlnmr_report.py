"""``lbp-benefit network --method ml-nmr|nma-bayesian``: the Bayesian network report.

* ``ml-nmr``: IPD (individual likelihood) + aggregate arms (integrated over their covariate
  distributions), covariates and effect modifiers (training.network.mlnmr_lbp).
* ``nma-bayesian``: the same Bayesian machinery without covariates on arm-level summaries: IPD
  trials enter as their arms' n / mean / SD (an aggregate-data NMA; compare ``nma-frequentist``).

Written to ``--out``: ``report.html``, ``network.png``, ``forest.png`` (effects vs the reference in
the target population, 95% CrI and predictive interval), ``effects_by_trial.csv`` (every
treatment vs the reference in each trial's population), ``effects_target.csv``, ``ranking.csv``
(rank probabilities, SUCRA), ``evidence.csv``, ``ume.csv``, ``prior_sensitivity.csv``,
``diagnostics.csv`` and ``network.json`` (all of it).
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from predict.errors import LbpError
from training.network.data import rows_of
from training.network.mlnmr import MLNMRFit, Priors, fit_mlnmr
from training.network.mlnmr_data import NetworkData, build_network
from training.network.mlnmr_lbp import DEFAULT_COVARIATES, PRIORS, network_data
from training.network.mlnmr_results import deviance, effects_table, evidence, rankings, ume_check
from training.network.report import network_plot

SENSITIVITY = Priors(intercept=100.0, trt=10.0, reg=2.5, het=2.5, aux=25.0)


def arm_summaries(analysis: pd.DataFrame, outcome: str, follow_up: str) -> pd.DataFrame:
    """IPD reduced to arm summaries (trial, treatment = node, n, mean, sd) for ``nma-bayesian``."""
    d = analysis[(analysis["outcome"] == outcome) & (analysis["follow_up"] == follow_up)].dropna(subset=["value"])
    g = d.groupby(["trial", "node"], observed=True, sort=True)["value"]
    out = g.agg(n="count", mean="mean", sd="std").reset_index().rename(columns={"node": "treatment"})
    return out[out["n"] >= 2].assign(outcome=outcome, follow_up=follow_up)


def build(method: str, analysis, aggregate, outcome: str, follow_up: str, reference: str, covariates) -> NetworkData:
    if method == "ml-nmr":
        return network_data(analysis, aggregate, outcome, follow_up, covariates, reference=reference)
    if method != "nma-bayesian":
        raise LbpError(f"unknown Bayesian method {method!r}")
    parts = [arm_summaries(analysis, outcome, follow_up)] if analysis is not None else []
    if aggregate is not None:
        a = rows_of(aggregate, outcome, follow_up)
        if parts:
            a = a[~a["trial"].astype(str).isin(set(parts[0]["trial"].astype(str)))]
        parts.append(a[["trial", "treatment", "n", "mean", "sd"]])
    if not parts:
        raise LbpError("nma-bayesian needs IPD or aggregate arms")
    agd = pd.concat(parts, ignore_index=True)
    return build_network(None, agd, reference=reference if reference in set(agd["treatment"]) else None)


def _forest(rows: list, ref: str, path: Path, label: str) -> None:
    fig = Figure(figsize=(7.5, 0.45 * len(rows) + 1.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    for i, r in enumerate(rows):
        y = len(rows) - i
        ax.plot(r["pri"], [y, y], color="#bbb", lw=6, solid_capstyle="butt")
        ax.plot(r["cri"], [y, y], color="#1f4e79", lw=2)
        ax.plot([r["mean"]], [y], "o", color="#1f4e79")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows), 0, -1), [r["treatment"] for r in rows])
    ax.set_xlabel(f"{label}: treatment − {ref} (95% CrI; grey: predictive interval)")
    fig.savefig(path, dpi=110, bbox_inches="tight")


def _graph(D: NetworkData, path: Path) -> None:
    studies = []
    n_arm = np.zeros(len(D.arm_trt))
    np.add.at(n_arm, D.ipd_arm, 1.0)
    np.add.at(n_arm, D.agd_arm, D.agd_n)
    for s in range(len(D.studies)):
        arms = np.flatnonzero(D.arm_study == s)
        studies.append(SimpleNamespace(treatments=[D.treatments[D.arm_trt[a]] for a in arms],
                                       n={D.treatments[D.arm_trt[a]]: int(n_arm[a]) for a in arms}))
    network_plot(SimpleNamespace(treatments=D.treatments, studies=studies), path)


def _fmt(m, lo, hi) -> str:
    return f"{m:.2f} ({lo:.2f} to {hi:.2f})"


def run_report(method: str, analysis, aggregate, outcome: str, follow_up: str, out: Path, *, reference: str = "exercise",
               covariates=DEFAULT_COVARIATES, target: dict | None = None, effects: str = "random",
               samples: int = 500, chains: int = 4, seed: int = 1, lower_better: bool = True, checks: bool = True,
               synthetic: bool = False, truth: dict | None = None) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    D = build(method, analysis, aggregate, outcome, follow_up, reference, covariates)
    ref = D.treatments[0]
    kw = dict(effects=effects, num_warmup=samples, num_samples=samples, num_chains=chains, chain_method="vectorized",
              seed=seed, check=False, dense_mass=True)
    fit = fit_mlnmr(D, priors=PRIORS, **kw)
    x_t = D.centre.copy()
    for k, v in (target or {}).items():
        if k not in D.covariates:
            raise LbpError(f"--target: {k!r} is not a covariate of the model ({', '.join(D.covariates) or 'none'})")
        x_t[D.covariates.index(k)] = float(v)
    tgt = effects_table(fit, x_t)
    by_trial = []
    for s in D.studies:
        for r in effects_table(fit, D.study_means[s]):
            by_trial.append({"trial": s, "source": D.source[s], "treatment": r["treatment"], "vs": ref, "mean": r["mean"],
                             "cri_low": r["cri"][0], "cri_high": r["cri"][1]})
    rk = rankings(fit, x_t, lower_better)
    ev = evidence(fit)
    summ = {"method": method, "outcome": outcome, "follow_up": follow_up, "reference": ref, "effects": effects,
            "priors": PRIORS.describe(), "data": D.summary(), "target": dict(zip(D.covariates, map(float, x_t))),
            "effects_target": tgt, "effects_by_trial": by_trial, "ranking": rk, "evidence": ev,
            "diagnostics": {k: v for k, v in fit.diagnostics.items() if k != "by_parameter"},
            "parameters": fit.summary(("d", "beta", "gamma", "tau")), "fit": deviance(fit), "synthetic": synthetic}
    if truth:
        summ["truth_vs_reference"] = truth
    if checks:
        ume = fit_mlnmr(D, priors=PRIORS, consistency="ume", **kw)
        summ["ume"] = ume_check(fit, ume)
        summ["ume"]["diagnostics"] = {k: v for k, v in ume.diagnostics.items() if k != "by_parameter"}
        sens = fit_mlnmr(D, priors=SENSITIVITY, **kw)
        alt = {r["treatment"]: r for r in effects_table(sens, x_t)}
        summ["prior_sensitivity"] = {"alternative_priors": SENSITIVITY.describe(), "rows": [
            {"treatment": r["treatment"], "default_mean": r["mean"], "default_cri": r["cri"],
             "alternative_mean": alt[r["treatment"]]["mean"], "alternative_cri": alt[r["treatment"]]["cri"],
             "shift_in_sd": (alt[r["treatment"]]["mean"] - r["mean"]) / max(r["sd"], 1e-12)} for r in tgt],
            "tau_default": float(np.median(fit.tau())), "tau_alternative": float(np.median(sens.tau())),
            "diagnostics_ok": sens.diagnostics["ok"]}
    _write(out, fit, summ, lower_better)
    if not fit.diagnostics["ok"]:
        raise LbpError(f"{method}: sampler diagnostics failed ({'; '.join(fit.diagnostics['problems'])}); the report "
                       f"in {out}/ is marked NOT CONVERGED — rerun with more --samples")
    return summ


def _write(out: Path, fit: MLNMRFit, summ: dict, lower_better: bool) -> None:
    D = fit.data
    ref = summ["reference"]
    _graph(D, out / "network.png")
    _forest(summ["effects_target"], ref, out / "forest.png", "Mean difference (0–100)")
    et = pd.DataFrame([{"treatment": r["treatment"], "vs": r["vs"], "mean": r["mean"], "sd": r["sd"],
                        "cri_low": r["cri"][0], "cri_high": r["cri"][1], "pri_low": r["pri"][0], "pri_high": r["pri"][1],
                        "p_below_0": r["p_below_0"]} for r in summ["effects_target"]])
    et.to_csv(out / "effects_target.csv", index=False)
    bt = pd.DataFrame(summ["effects_by_trial"])
    bt.to_csv(out / "effects_by_trial.csv", index=False)
    T = len(D.treatments)
    rk = pd.DataFrame([{"treatment": t, "sucra": v["sucra"], "mean_rank": v["mean_rank"],
                        **{f"p_rank_{k + 1}": p for k, p in enumerate(v["rank_probabilities"])}}
                       for t, v in summ["ranking"].items()]).sort_values("sucra", ascending=False)
    rk.to_csv(out / "ranking.csv", index=False)
    ev = pd.DataFrame([{"treatment": t, "vs": ref, **e} for t, e in summ["evidence"].items()])
    ev.to_csv(out / "evidence.csv", index=False)
    dg = pd.DataFrame([{"parameter": k, **v} for k, v in fit.diagnostics["by_parameter"].items()])
    dg.to_csv(out / "diagnostics.csv", index=False)
    ume_html = sens_html = "<p>Not run (--no-checks).</p>"
    if "ume" in summ:
        u = pd.DataFrame(summ["ume"]["comparisons"])
        u.to_csv(out / "ume.csv", index=False)
        uc, uu = summ["ume"]["consistency"], summ["ume"]["ume"]
        ume_html = (f"<p>DIC consistency {uc['DIC']:.1f} (pD {uc['pD']:.1f}); UME {uu['DIC']:.1f} (pD {uu['pD']:.1f}); "
                    f"difference {summ['ume']['dic_difference_ume_minus_consistency']:.1f}. {html.escape(summ['ume']['reading'])}</p>"
                    + u.to_html(index=False, border=0, classes="t", float_format=lambda x: f"{x:.2f}"))
    if "prior_sensitivity" in summ:
        ps = pd.DataFrame(summ["prior_sensitivity"]["rows"])
        ps.to_csv(out / "prior_sensitivity.csv", index=False)
        sens_html = (f"<p>Alternative priors: {html.escape(summ['prior_sensitivity']['alternative_priors'])}; τ median "
                     f"{summ['prior_sensitivity']['tau_default']:.2f} (default) vs {summ['prior_sensitivity']['tau_alternative']:.2f}.</p>"
                     + ps.to_html(index=False, border=0, classes="t", float_format=lambda x: f"{x:.2f}"))
    (out / "network.json").write_text(json.dumps(summ, indent=2, default=float), "utf-8")
    dgs = summ["diagnostics"]
    bad = "" if dgs["ok"] else f"<p class='warn'><b>NOT CONVERGED</b>: {html.escape('; '.join(dgs['problems']))}</p>"
    warn = "<p class='warn'><b>SYNTHETIC DATA</b>: not for clinical use.</p>" if summ["synthetic"] else ""
    pw = bt.assign(effect=[_fmt(m, lo, hi) for m, lo, hi in zip(bt["mean"], bt["cri_low"], bt["cri_high"])]) \
        .pivot(index=["trial", "source"], columns="treatment", values="effect").reset_index() if len(bt) else bt
    tgt_txt = ", ".join(f"{k} = {v:.3g}" for k, v in summ["target"].items()) or "no covariates"
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>{summ['method']}</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:2em auto}} table.t{{border-collapse:collapse;font-size:12px}}
table.t td,table.t th{{padding:2px 6px;border-bottom:1px solid #ddd}} .warn{{color:#a00}}</style></head><body>
<h1>Bayesian network meta-analysis ({summ['method']}): {summ['outcome']}, {summ['follow_up']} term</h1>{warn}{bad}
<p>{summ['data']['trials']} trials ({summ['data']['ipd_trials']} IPD, {summ['data']['aggregate_trials']} aggregate),
{T} treatments, {summ['effects']} effects; covariates: {', '.join(D.covariates) or 'none'}. Priors: {html.escape(summ['priors'])}.
Sampler: {dgs['chains']} chains × {dgs['samples']} draws (warm-up {dgs['warmup']}), max R-hat {dgs['max_rhat']:.3f},
min bulk/tail ESS {dgs['min_ess_bulk']:.0f}/{dgs['min_ess_tail']:.0f}, {dgs['divergences']} divergences, {dgs['seconds']:.0f} s.</p>
<h2>Network</h2><img src="network.png" width="520">
<h2>Relative effects in the target population ({html.escape(tgt_txt)})</h2><img src="forest.png" width="760">
{et.to_html(index=False, border=0, classes="t", float_format=lambda x: f"{x:.2f}")}
<h2>Relative effects in each trial's population (mean, 95% CrI vs {html.escape(ref)})</h2>
{pw.to_html(index=False, border=0, classes="t") if len(bt) else ''}
<h2>Ranking ({'lower' if lower_better else 'higher'} values better; target population)</h2>
{rk.to_html(index=False, border=0, classes="t", float_format=lambda x: f"{x:.3f}")}
<h2>Evidence behind each comparison with {html.escape(ref)}</h2>{ev.to_html(index=False, border=0, classes="t")}
<h2>Inconsistency: consistency vs unrelated mean effects</h2>{ume_html}
<h2>Prior sensitivity</h2>{sens_html}
<h2>Parameters and diagnostics</h2>{pd.DataFrame(summ['parameters']).to_html(index=False, border=0, classes="t", float_format=lambda x: f"{x:.3f}")}
</body></html>"""
    (out / "report.html").write_text(body, "utf-8")
