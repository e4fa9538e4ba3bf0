"""The network report: network graph, forest plot vs a reference, league table, ranking,
inconsistency results and the direct/indirect evidence table (PNG, HTML, JSON, CSV).

``card_network.json`` (:func:`card_summary`) is the compact section for the model card / exporter.
``network.json`` is the machine-readable summary for the model card and exporter: every node's
effect vs the reference (estimate, CI, prediction interval), P-scores, heterogeneity, the
design-by-treatment test, node-splits and, per pair, whether the comparison rests on direct
evidence, on indirect evidence only, or on both.
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from training.network.inconsistency import design_by_treatment, node_split
from training.network.nma import NMAResult, direct_evidence


def _num(x):
    if x is None:
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return x
    return x if math.isfinite(x) else None


def _records(df: pd.DataFrame) -> list[dict]:
    return [{k: _num(v) if not isinstance(v, str) else v for k, v in r.items()} for r in df.to_dict("records")]


def network_plot(res: NMAResult, path: Path) -> None:
    """Nodes on a circle (size ∝ participants), edges width ∝ trials comparing the pair directly."""
    treats = res.treatments
    k = len(treats)
    ang = np.pi / 2 - 2 * np.pi * np.arange(k) / k
    pos = {t: (math.cos(a), math.sin(a)) for t, a in zip(treats, ang)}
    n = {t: 0 for t in treats}
    edges: dict = {}
    for s in res.studies:
        for t in s.treatments:
            n[t] += int(s.n.get(t, 0))
        for i, a in enumerate(s.treatments):
            for b in s.treatments[i + 1:]:
                key = tuple(sorted((a, b)))
                edges[key] = edges.get(key, 0) + 1
    fig = Figure(figsize=(7, 7))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    for (a, b), w in edges.items():
        (x1, y1), (x2, y2) = pos[a], pos[b]
        ax.plot([x1, x2], [y1, y2], color="#5a7fb5", lw=1 + 1.2 * w, alpha=0.7, zorder=1)
        ax.text((x1 + x2) / 2, (y1 + y2) / 2, str(w), fontsize=8, ha="center", va="center",
                bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none"), zorder=3)
    top = max(max(n.values()), 1)
    for t in treats:
        x, y = pos[t]
        ax.scatter([x], [y], s=150 + 1200 * n[t] / top, color="#e07b39", zorder=2)
        ax.text(1.18 * x, 1.18 * y, f"{t}\n(n={n[t]})" if n[t] else t, ha="center", va="center", fontsize=9)
    ax.set_xlim(-1.55, 1.55)
    ax.set_ylim(-1.45, 1.45)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("Network of trials (edge labels: trials comparing the pair directly)", fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def forest(res: NMAResult, reference: str, path: Path, label: str) -> None:
    v = res.versus(reference)
    m = len(v)
    fig = Figure(figsize=(8, 0.45 * m + 1.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    for i, r in enumerate(v.itertuples()):
        y = m - i
        ax.plot([r.pi_low, r.pi_high], [y, y], color="#bbbbbb", lw=4, solid_capstyle="butt")
        ax.plot([r.ci_low, r.ci_high], [y, y], color="black", lw=1.3)
        ax.plot([r.estimate], [y], "s", color="#1f5fa8", ms=6)
        ax.text(1.02, y, f"{r.estimate:.1f} ({r.ci_low:.1f} to {r.ci_high:.1f})", transform=ax.get_yaxis_transform(),
                va="center", fontsize=8)
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(range(m, 0, -1))
    ax.set_yticklabels(list(v["treatment"]), fontsize=9)
    ax.set_xlabel(f"{label}: treatment − {reference} (95% CI; grey: 95% prediction interval)")
    ax.set_title(f"Network estimates vs {reference} (τ = {res.tau:.2f}, {res.method})", fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def summarise(res: NMAResult, reference: str | None = None) -> dict:
    """Everything the report shows, as plain data (the content of network.json)."""
    ref = reference or res.reference
    dbt = design_by_treatment(res)
    ns = node_split(res)
    ev = direct_evidence(res)
    ps = res.pscores()
    v = res.versus(ref)
    classes = []
    for t in res.treatments:
        row = {"node": t, "p_score": float(ps[t]),
               "trials": sum(t in s.treatments for s in res.studies),
               "participants": int(sum(s.n.get(t, 0) for s in res.studies))}
        if t != ref:
            r = v[v["treatment"] == t].iloc[0]
            row.update({f"vs_{ref}": {k: _num(r[k]) for k in ("estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high")}})
        classes.append(row)
    return {
        "measure": res.measure, "method": res.method, "reference": ref, "small_values": res.small_values,
        "trials": len(res.studies), "treatments": res.treatments,
        "sources": {k: sum(s.source == k for s in res.studies) for k in ("ipd", "aggregate")},
        "heterogeneity": {"tau": res.tau, "tau2": res.tau2, "Q": res.Q, "Q_df": res.Q_df, "I2": res.I2},
        "classes": classes,
        "pairwise": _records(res.pairwise()),
        "evidence": _records(ev),
        "design_by_treatment": {k: _num(v_) if not isinstance(v_, str) else v_ for k, v_ in dbt.items()},
        "node_split": _records(ns),
        "notes": list(res.notes),
    }


def card_summary(summ: dict) -> dict:
    """Compact card/exporter section: every comparator node's effect vs the reference and whether
    that comparison rests on direct evidence, on indirect evidence only, or on both."""
    ref = summ["reference"]
    ev = {frozenset((e["treatment"], e["comparator"])): e for e in summ["evidence"]}
    comps = []
    for c in summ["classes"]:
        if c["node"] == ref:
            continue
        e = ev[frozenset((c["node"], ref))]
        comps.append({"node": c["node"], "effect_vs_reference": c[f"vs_{ref}"], "p_score": c["p_score"],
                      "evidence": e["evidence"], "direct_trials": e["direct_trials"],
                      "direct_proportion": e["direct_proportion"]})
    dbt = summ["design_by_treatment"]
    return {"reference": ref, "measure": summ["measure"], "outcome": summ.get("outcome"),
            "follow_up": summ.get("follow_up"), "effect_definition": f"node minus {ref} (lower = node better when small values are good)",
            "small_values": summ["small_values"], "tau": summ["heterogeneity"]["tau"], "comparators": comps,
            "indirect_only": sorted(f"{e['treatment']} vs {e['comparator']}" for e in summ["evidence"] if e["evidence"] == "indirect only"),
            "consistency": {"design_by_treatment_chi2": dbt.get("chi2"), "df": dbt.get("df"), "p": dbt.get("p")}}


def _table_html(df: pd.DataFrame, digits: int = 2) -> str:
    return df.to_html(index=False, float_format=lambda x: f"{x:.{digits}f}", border=0, classes="t", na_rep="")


def write_report(res: NMAResult, out: str | Path, reference: str | None = None, label: str = "Mean difference (0–100)",
                 title: str = "Network meta-analysis", extra: dict | None = None, synthetic: bool = False) -> dict:
    """Write network.png, forest.png, league/pairwise/ranking/evidence/node_split CSVs,
    network.json and report.html into ``out``; returns the summary dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ref = reference or res.reference
    summ = summarise(res, ref)
    if extra:
        summ.update(extra)
    network_plot(res, out / "network.png")
    forest(res, ref, out / "forest.png", label)
    if synthetic:  # every figure of synthetic data says so
        from training.synthetic_label import label_png

        for name in ("network.png", "forest.png"):
            (out / name).write_bytes(label_png((out / name).read_bytes()))
    league = res.league()
    league.to_csv(out / "league.csv")
    pw = res.pairwise()
    pw.to_csv(out / "pairwise.csv", index=False)
    rank = res.pscores().rename_axis("treatment").reset_index()
    rank.to_csv(out / "ranking.csv", index=False)
    ev = pd.DataFrame(summ["evidence"])
    ev.to_csv(out / "evidence.csv", index=False)
    ns = pd.DataFrame(summ["node_split"])
    ns.to_csv(out / "node_split.csv", index=False)
    (out / "network.json").write_text(json.dumps(summ, indent=2, default=_num), "utf-8")
    (out / "card_network.json").write_text(json.dumps(card_summary(summ), indent=2, default=_num), "utf-8")
    dbt = summ["design_by_treatment"]
    h = summ["heterogeneity"]
    warn = "<p class='warn'><b>SYNTHETIC DATA</b>: not for clinical use.</p>" if synthetic else ""
    dbt_txt = (f"χ² = {dbt['chi2']:.2f} on {dbt['df']} df, p = {dbt['p']:.3f} (τ² under inconsistency "
               f"{dbt['tau2_inconsistency']:.3f}); common-effect Q between designs {dbt['Q_between']:.2f}, "
               f"within designs {dbt['Q_within']:.2f}" if dbt.get("chi2") is not None else html.escape(dbt.get("note", "")))
    ev_show = ev[["treatment", "comparator", "direct_trials", "evidence", "direct_proportion"]] if len(ev) else ev
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}} table.t{{border-collapse:collapse;font-size:12px}}
table.t td,table.t th{{padding:2px 6px;border-bottom:1px solid #ddd}} .warn{{color:#a00}}</style></head><body>
<h1>{html.escape(title)}</h1>{warn}
<p>{summ['trials']} trials ({summ['sources']['ipd']} as IPD contrasts, {summ['sources']['aggregate']} aggregate),
{len(res.treatments)} treatments; {res.measure}; {res.method} random-effects contrast model;
τ = {h['tau']:.3f}, Q = {h['Q']:.2f} on {h['Q_df']} df, I² = {100 * h['I2']:.0f}%.</p>
<h2>Network</h2><img src="network.png" width="520">
<h2>Estimates vs {html.escape(ref)}</h2><img src="forest.png" width="760">
<h2>League table</h2><p>Cell = row − column (95% CI).</p>{league.to_html(border=0, classes="t")}
<h2>Ranking (P-scores, {'lower' if res.small_values == 'good' else 'higher'} values better)</h2>{_table_html(rank, 3)}
<h2>Inconsistency</h2><p>Design-by-treatment interaction (random effects): {dbt_txt}.</p>
<h3>Node-splitting (direct vs indirect)</h3>{_table_html(ns) if len(ns) else '<p>No comparison has both direct and indirect evidence.</p>'}
<h2>Direct and indirect evidence</h2>{_table_html(ev_show)}
</body></html>"""
    (out / "report.html").write_text(body, "utf-8")
    return summ
