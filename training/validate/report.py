"""Write a validation report folder: ``report.html`` (embedded PNG plots), ``report.json``
(every number; snake_case keys), ``metrics.csv`` (one row per metric with estimate and 95% CI),
``case_mix.csv`` and ``curves/*.csv`` (calibration, grouped calibration for benefit, decision
curve, TOC), ``plots/*.png``. Aggregates only: no participant-level row is written.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from training.metrics import plots as P
from training.validate.screens import CSS, screens

METRIC_FIELDS = {  # (json path in a section, metric name, estimate key, ci low key, ci high key)
    "performance": [("citl", "citl"), ("slope", "slope"), ("r2", "r2"), ("c_statistic", "c_statistic"), ("brier", "brier")],
    "calibration_curve": [("ici", "ici")],
    "c_for_benefit": [("c_for_benefit", "ci")],
    "calibration_for_benefit": [("slope", "slope"), ("intercept", "intercept"), ("citl", "citl")],
    "e_for_benefit": [("e_avg", "e_avg"), ("e50", "e50"), ("e90", "e90")],
    "rank_average_treatment_effect": [("autoc", "autoc"), ("qini", "qini"), ("ate", "ate")],
}


def _clean(o):
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return [_clean(v) for v in o.tolist()]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating, float)):
        return float(o) if math.isfinite(float(o)) else None
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def metric_rows(result: dict) -> pd.DataFrame:
    """Flatten the report's metrics to one row each (section, task, comparator, metric, estimate, CI)."""
    rows = []

    def add(section, task, comp, name, d, est, ci):
        lo = d.get(f"{ci}_ci_low", d.get("ci_low")) if ci != "ci" else d.get("ci_low")
        hi = d.get(f"{ci}_ci_high", d.get("ci_high")) if ci != "ci" else d.get("ci_high")
        if est in d and not (section == "outcome_predictions" and d.get(est) is None):
            rows.append({"section": section, "task": task, "comparator": comp, "metric": name, "estimate": d.get(est),
                         "ci_low": lo, "ci_high": hi, "n": d.get("n")})

    cm = result["case_mix"]["membership"]
    rows.append({"section": "case_mix", "task": "", "comparator": "", "metric": "membership_c_statistic",
                 "estimate": cm.get("c_statistic"), "ci_low": cm.get("ci_low"), "ci_high": cm.get("ci_high"),
                 "n": (cm.get("n_new") or 0) + (cm.get("n_training") or 0) or None})
    for task, t in result["tasks"].items():
        o = t["outcome_predictions"]
        for key in ("performance", "calibration_curve"):
            d = o.get(key, {})
            for est, ci in METRIC_FIELDS[key]:
                add("outcome_predictions", task, "", f"outcome_{est}", d, est, ci)
        for comp, b in t["benefit_predictions"].items():
            if b.get("status") != "ok":
                continue
            for key in ("c_for_benefit", "calibration_for_benefit", "e_for_benefit", "rank_average_treatment_effect"):
                d = b.get(key, {})
                for est, ci in METRIC_FIELDS[key]:
                    name = est if key == "c_for_benefit" else f"{key}_{est}" if key != "e_for_benefit" else f"{est}_for_benefit"
                    add("benefit_predictions", task, comp, name, {"n": b.get("n"), **d}, est, ci)
            nb = (b.get("net_benefit") or {}).get("at_smallest_worthwhile")
            if nb:
                at = "smallest_worthwhile"  # the outcome's configured rule (absolute or relative): in report.json
                rows.append({"section": "decision", "task": task, "comparator": comp,
                             "metric": f"net_benefit_model_at_{at}", "estimate": nb["net_benefit_model"],
                             "ci_low": nb["ci"][0], "ci_high": nb["ci"][1], "n": b.get("n")})
                rows.append({"section": "decision", "task": task, "comparator": comp,
                             "metric": f"net_benefit_model_minus_treat_all_at_{at}",
                             "estimate": nb["difference_vs_all"], "ci_low": nb["difference_vs_all_ci"][0],
                             "ci_high": nb["difference_vs_all_ci"][1], "n": b.get("n")})
    return pd.DataFrame(rows, columns=["section", "task", "comparator", "metric", "estimate", "ci_low", "ci_high", "n"])


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def make_plots(task: str, units: str, objs: dict, result_nb: dict | None = None) -> dict[str, bytes]:
    """PNG bytes per plot name for one task (outcome calibration + per comparator benefit plots).
    ``result_nb``: {task: {comparator: the net benefit's at_smallest_worthwhile record}} (its
    ``kind`` says whether thresholds are fractions of the baseline)."""
    result_nb = result_nb or {}
    out = {}
    o = objs.get("outcome", {})
    if o.get("curve") is not None:
        out[f"{task}__outcome_calibration"] = _png(P.plot_outcome_calibration(o["curve"], o["pred"], units=units,
                                                                              title=textwrap.fill(f"Outcome calibration: {task}", 48)))
    for comp, b in objs.get("benefit", {}).items():
        if b.get("groups") is not None:
            out[f"{task}__{comp}__calibration_for_benefit"] = _png(P.plot_calibration_for_benefit(
                b["groups"], b.get("pairs"), units=units, title=textwrap.fill(f"Calibration for benefit: {task} vs {comp}", 48)))
        if b.get("rate") is not None:
            out[f"{task}__{comp}__toc"] = _png(P.plot_toc(b["rate"], units=units, title=textwrap.fill(f"TOC: {task} vs {comp}", 48)))
        if b.get("decision") is not None:
            relative = ((result_nb.get(task, {}).get(comp) or {}).get("kind", "relative") == "relative")
            dec_units = "x baseline" if units.startswith("points") and relative else units
            out[f"{task}__{comp}__decision_curve"] = _png(P.plot_decision_curve(
                b["decision"], units=dec_units, title=textwrap.fill(f"Decision curve: {task} vs {comp}", 48)))
    return out


def _curves(objs: dict, task: str) -> dict[str, pd.DataFrame]:
    out = {}
    c = objs.get("outcome", {}).get("curve")
    if c is not None:
        out[f"{task}__outcome_calibration"] = pd.DataFrame({"predicted": c.grid, "observed": c.observed,
                                                            "ci_low": c.ci_low, "ci_high": c.ci_high})
    for comp, b in objs.get("benefit", {}).items():
        if b.get("groups") is not None:
            out[f"{task}__{comp}__calibration_for_benefit_groups"] = b["groups"].to_frame()
        if b.get("decision") is not None:
            out[f"{task}__{comp}__decision_curve"] = b["decision"].to_frame()
        if b.get("rate") is not None:
            r = b["rate"]
            out[f"{task}__{comp}__toc"] = pd.DataFrame({"q": r.q, "toc": r.toc, "ci_low": r.toc_ci_low, "ci_high": r.toc_ci_high})
    return out


def _fmt(v, d=3) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else (f"{v:.{d}g}" if isinstance(v, float) else html.escape(str(v)))


def _gap(band: dict) -> str:
    """A band's observed − predicted benefit with its 95% CI (the observed effect's, shifted by the
    mean prediction: no number without its interval)."""
    d, ci, pred = band.get("observed_minus_predicted"), band.get("observed_ci"), band.get("predicted_mean")
    if d is None or not ci or pred is None:
        return _fmt(d)
    return f"{_fmt(d)} [{_fmt(ci[0] - pred)}, {_fmt(ci[1] - pred)}]"


def _coverage(band: dict) -> str:
    """A band's PI coverage of the true benefit with its Wilson 95% CI and n."""
    cov, ci = band.get("coverage_pi_true_benefit"), band.get("coverage_pi_true_benefit_ci")
    if cov is None or not ci:
        return _fmt(cov)
    return f"{_fmt(cov)} [{_fmt(ci[0])}, {_fmt(ci[1])}] (n {band.get('n_truth', band.get('n'))})"


def _html(result: dict, metrics: pd.DataFrame, cm: pd.DataFrame, pngs: dict[str, bytes]) -> str:
    """Top-down: warnings in a few lines, one screen per outcome and comparator (verdict, deciding
    metrics, calibration-for-benefit and decision-curve plots), then the case-mix, then every
    metric and the remaining plots."""
    m = result["model"]
    active = str(m.get("active") or "intervention").replace("_", " ")
    parts = ["<!doctype html><html><head><meta charset='utf-8'>"
             "<meta name='viewport' content='width=device-width, initial-scale=1'><title>Validation report</title>",
             f"<style>{CSS}</style></head><body>",
             f"<h1>Validation of model {html.escape(m['model_id'])} on {html.escape(result['data']['name'])}</h1>"]
    if m.get("synthetic"):
        parts.append("<p class='warn'><b>The model was trained on SYNTHETIC (simulated) data: not for clinical use.</b></p>")
    if result["data"].get("label"):
        parts.append(f"<p>{html.escape(result['data']['label'])}</p>")
    general = [w for w in result["warnings"] if " vs " not in w.split(":")[0] and not w.startswith("the model was trained on synthetic")]
    if general:
        parts.append("<ul class='warn'>" + "".join(f"<li>{html.escape(w)}</li>" for w in general) + "</ul>")
    parts += screens(result, pngs, active)
    ext = [(t, c, b["extrapolation"]) for t, tt in result["tasks"].items()
           for c, b in tt["benefit_predictions"].items() if (b.get("extrapolation") or {}).get("status") == "ok"]
    if ext:
        parts.append("<h2>Extrapolation: participants beyond the training support</h2><div class='scroll'><table><tr><th>task</th><th>vs</th>"
                     "<th>share beyond</th><th>share rare</th><th>observed − predicted [95% CI] (within / beyond)</th>"
                     "<th>PI coverage of the true benefit [95% Wilson CI, participants as independent] "
                     "(within / beyond; simulated data)</th></tr>")
        for t, c, ex in ext:
            bd = {b["band"]: b for b in ex.get("bands", [])}
            w, o = bd.get("within_support", {}), bd.get("beyond_support", {})
            parts.append(f"<tr><td>{html.escape(t)}</td><td>{html.escape(c)}</td><td>{_fmt(ex.get('share_beyond_support'))}</td>"
                         f"<td>{_fmt(ex.get('share_rare'))}</td><td>{_gap(w)} / {_gap(o)}</td>"
                         f"<td>{_coverage(w)} / {_coverage(o)}</td></tr>")
        parts.append("</table></div>")
    mc = result["case_mix"]["membership"]
    parts.append("<h2>Case-mix: the new data against the training data</h2>")
    parts.append(f"<p>Membership-model C-statistic (0.5: the same case-mix; 1: completely separable): "
                 f"{_fmt(mc.get('c_statistic'))} [{_fmt(mc.get('ci_low'))}, {_fmt(mc.get('ci_high'))}] "
                 f"{html.escape(mc.get('reason', ''))}</p>")
    lack = result["case_mix"]["lacking"]
    parts.append(f"<p>Covariates the new data lack: {html.escape(', '.join(lack) or 'none')}</p>")
    parts.append("<div class='scroll'>" + cm.to_html(index=False, na_rep="–", float_format=lambda x: f"{x:.3g}") + "</div>")
    parts.append("<h2>Every metric (estimate, 95% CI)</h2><div class='scroll'>"
                 + metrics.to_html(index=False, na_rep="–", float_format=lambda x: f"{x:.4g}") + "</div>")
    if result.get("update"):
        parts.append("<h2>Recalibration update (reported separately; the shipped model is unchanged)</h2>"
                     "<details><summary>the update's coefficients (JSON)</summary><div class='scroll'><pre>"
                     + html.escape(json.dumps(result["update"], indent=1)) + "</pre></div></details>")
    shown = {f"{t}__{c}__{n}" for t, tt in result["tasks"].items() for c in tt["benefit_predictions"]
             for n in ("calibration_for_benefit", "decision_curve")}
    rest = {k: v for k, v in pngs.items() if k not in shown}
    if rest:
        parts.append("<h2>Outcome calibration and TOC curves</h2><div class='plots'>")
        for name, png in rest.items():
            parts.append(f"<img alt='{html.escape(name)}' title='{html.escape(name)}' src='data:image/png;base64,"
                         f"{base64.b64encode(png).decode('ascii')}'>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out: Path, result: dict, objs: dict, units: dict) -> dict:
    """Write the folder; returns {'json', 'html', 'csv'} paths."""
    out = Path(out)
    (out / "curves").mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    cm = result["case_mix"].pop("table")
    result["case_mix"]["covariates"] = cm.to_dict(orient="records")
    clean = _clean(result)
    (out / "report.json").write_text(json.dumps(clean, indent=2, sort_keys=False) + "\n", "utf-8")
    metrics = metric_rows(clean)
    from predict.synthetic_marker import mark_table

    syn = bool((clean.get("model") or {}).get("synthetic"))  # every table of a synthetic model says so per row
    mark_table(metrics, syn).to_csv(out / "metrics.csv", index=False, lineterminator="\n")
    mark_table(cm, syn).to_csv(out / "case_mix.csv", index=False, lineterminator="\n")
    pngs = {}
    for task, o in objs.items():
        for name, df in _curves(o, task).items():
            mark_table(df, syn).to_csv(out / "curves" / f"{name}.csv", index=False, lineterminator="\n")
        nb = {task: {c: (b.get("net_benefit") or {}).get("at_smallest_worthwhile")
                     for c, b in clean["tasks"].get(task, {}).get("benefit_predictions", {}).items()}}
        pngs.update(make_plots(task, units.get(task, ""), o, nb))
    if (clean.get("model") or {}).get("synthetic"):  # every figure of a synthetic model says so
        from training.synthetic_label import label_png

        pngs = {k: label_png(v) for k, v in pngs.items()}
    for name, png in pngs.items():
        (out / "plots" / f"{name}.png").write_bytes(png)
    (out / "report.html").write_text(_html(clean, metrics, cm, pngs), "utf-8")
    return {"json": out / "report.json", "html": out / "report.html", "csv": out / "metrics.csv"}
