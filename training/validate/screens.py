"""The top of the validation report: one screen per outcome and comparator.

Each screen leads with the verdict sentence (:mod:`training.verdicts`), then the few metrics that
decide it, each with its 95% CI and a plain reading of what the interval says, then the
calibration-for-benefit and decision-curve plots. The case-mix and the full metric table follow
in :mod:`training.validate.report`.
"""
from __future__ import annotations

import base64
import html
import math

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1100px;margin:auto;padding:0 12px;
 line-height:1.4;color:#222}
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:1.6em}
.screen{border:1px solid #ccd;border-radius:8px;padding:10px 16px;margin:18px 0;background:#fbfbfe}
.verdict{font-size:1.08em;padding:8px 12px;border-left:6px solid #888;background:#fff}
.verdict.supported{border-color:#2a7a2a}.verdict.inconclusive{border-color:#c90}
.verdict.not_supported,.verdict.not_assessable{border-color:#a33}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#eef}.key td:nth-child(2){white-space:nowrap}
.plots{display:flex;flex-wrap:wrap;gap:8px}.plots img{flex:1 1 420px;max-width:100%;min-width:0;height:auto}
img{max-width:100%;height:auto}.warn{color:#a40}ul.warn{padding-left:1.2em}
.small{font-size:12px;color:#555}.screen h2{margin-top:.3em}
.plots img{max-height:380px;object-fit:contain}
@media (max-width:640px){.screen{padding:6px 8px}table.key,table.key tbody,table.key tr,table.key td{display:block;
 border:0}table.key tr:first-child{display:none}table.key tr{border-top:1px solid #ccc;padding:4px 0}
 table.key td{padding:1px 2px}table.key td:nth-child(2){font-weight:bold}}
"""


def _num(v, d=2) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{d}f}"


def _ci(est, lo, hi, d=2) -> str:
    if est is None or lo is None or hi is None:
        return "not estimable"
    return f"{_num(est, d)} [{_num(lo, d)}, {_num(hi, d)}]"


def _reading(lo, hi, null, above: str, below: str, spans: str) -> str:
    if lo is None or hi is None:
        return "not estimable on these data"
    if lo > null:
        return above
    if hi < null:
        return below
    return spans


def key_metrics(b: dict, active: str, units: str) -> list[tuple[str, str, str]]:
    """(metric, estimate [95% CI], plain reading) for the metrics that decide the verdict."""
    rows = []
    c = b.get("c_for_benefit", {})
    rows.append(("c-for-benefit", _ci(c.get("c_for_benefit"), c.get("ci_low"), c.get("ci_high")),
                 _reading(c.get("ci_low"), c.get("ci_high"), 0.5,
                          "ranks who benefits more better than chance",
                          "ranks who benefits more worse than chance",
                          "includes 0.5: ranking no better than chance")))
    cal = b.get("calibration_for_benefit", {})
    slope = (cal.get("slope"), cal.get("slope_ci_low"), cal.get("slope_ci_high"))
    r = _reading(slope[1], slope[2], 0.0, "predicted differences in benefit show up in the outcomes",
                 "predicted differences point the wrong way", "includes 0: predicted differences not confirmed")
    if slope[2] is not None and slope[2] < 1:
        r += "; below 1: predictions spread too widely"
    rows.append(("calibration-for-benefit slope (1 = right size)", _ci(*slope), r))
    rt = b.get("rank_average_treatment_effect", {})
    rows.append(("RATE AUTOC", _ci(rt.get("autoc"), rt.get("autoc_ci_low"), rt.get("autoc_ci_high"), 3),
                 _reading(rt.get("autoc_ci_low"), rt.get("autoc_ci_high"), 0.0,
                          "treating those predicted to benefit most first gains more than treating at random",
                          "prioritising by the prediction does worse than random",
                          "includes 0: prioritising by the prediction gains nothing shown")))
    rows.append((f"average effect of {active} ({units}; positive = better)",
                 _ci(rt.get("ate"), rt.get("ate_ci_low"), rt.get("ate_ci_high")),
                 _reading(rt.get("ate_ci_low"), rt.get("ate_ci_high"), 0.0, f"on average better with {active}",
                          f"on average worse with {active}", "no average difference shown")))
    nb = (b.get("net_benefit") or {}).get("at_smallest_worthwhile")
    if nb:
        lo, hi = nb["difference_vs_all_ci"]
        rows.append((f"net benefit of the model vs treating all, at the smallest worthwhile effect ({nb['rule']})",
                     _ci(nb["difference_vs_all"], lo, hi, 3),
                     _reading(lo, hi, 0.0, "using the model beats treating everyone",
                              "treating everyone beats using the model", "no gain over treating everyone shown")))
    return rows


def _img(name: str, png: bytes | None) -> str:
    if png is None:
        return ""
    return (f"<img alt='{html.escape(name)}' title='{html.escape(name)}' src='data:image/png;base64,"
            f"{base64.b64encode(png).decode('ascii')}'>")


def _not_scored(excluded: list[dict]) -> str:
    """The task's participants with its outcome who could not be scored, by reason."""
    if not excluded:
        return ""
    return ("<p class='small'>Not scored for this outcome: "
            + "; ".join(f"{e['participants']} ({html.escape(e['reason'])})" for e in excluded) + "</p>")


def _imputed(imputed: list[dict]) -> str:
    """The task's scored participants with a baseline the task does not require imputed, by baselines."""
    if not imputed:
        return ""
    return ("<p class='small'>Scored with a baseline imputed (not required by this outcome): "
            + "; ".join(f"{e['participants']} ({html.escape(e['baselines'])})" for e in imputed) + "</p>")


def screens(result: dict, pngs: dict[str, bytes], active: str) -> list[str]:
    """HTML of one screen per task (outcome x follow-up) and comparator with benefit metrics."""
    parts = []
    for task, t in result["tasks"].items():
        units = "points" if t.get("outcome_type") == "continuous" else "risk difference"
        title = f"{t['outcome'].replace('_', ' ')}, {t['follow_up'].replace('_', ' ')}"
        for comp, b in t["benefit_predictions"].items():
            head = f"<h2>{html.escape(title)}: {html.escape(active)} vs {html.escape(comp.replace('_', ' '))}</h2>"
            if b.get("status") != "ok":
                parts.append(f"<section class='screen'>{head}<p class='verdict not_assessable'>Benefit metrics "
                             f"refused: {html.escape(b.get('reason', ''))}</p></section>")
                continue
            v = b.get("verdict", {})
            rows = "".join(f"<tr><td>{html.escape(m)}</td><td>{html.escape(e)}</td><td>{html.escape(r)}</td></tr>"
                           for m, e, r in key_metrics(b, active, units))
            warns = "".join(f"<li>{html.escape(w)}</li>" for w in b.get("warnings", []))
            plots = "".join(_img(n, pngs.get(f"{task}__{comp}__{n}"))
                            for n in ("calibration_for_benefit", "decision_curve"))
            parts.append(
                f"<section class='screen'>{head}"
                f"<p class='verdict {html.escape(v.get('level', ''))}'>{html.escape(v.get('sentence', ''))}</p>"
                f"<p class='small'>{b.get('n', 0)} participants ({b.get('n_active', 0)} {html.escape(active)}, "
                f"{b.get('n_comparator', 0)} {html.escape(comp)})</p>"
                + _not_scored(t.get("excluded") or []) + _imputed(t.get("imputed_baseline") or [])
                + (f"<ul class='warn'>{warns}</ul>" if warns else "")
                + "<div class='scroll'><table class='key'><tr><th>metric</th><th>estimate [95% CI]</th>"
                  f"<th>what it says</th></tr>{rows}</table></div>"
                + (f"<div class='plots'>{plots}</div>" if plots else "") + "</section>")
    return parts
