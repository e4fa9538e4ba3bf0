"""The outside new trial's pain over-prediction split into additive parts, every learner's bias, what moved the
deployed members, and what the extrapolation widening could do (after bench_outside.py; read-only on its folder).

Per seed, on the new trial's (usual care) participants, with ``pred`` the product's short-term pain benefit:

    mean(pred - t_trial) = mean(t_avg - t_trial)                         trial level: the new trial's own random
                                                                          effect + the simulator's case-mix term g
                         + (const - mean t_avg[fitted, class])           class effect: the constant model's class
                                                                          offset vs the fitted participants' truth
                         + (mean t_avg[fitted, class] - mean t_avg[new])  the truth's change with the new case mix
                                                                          (modifiers no learner captured)
                         + mean(pred - const)                            the deployed model's departure from the
                                                                          constant (its members' modification)

(``const`` the fitted constant learner of the run: one number per class.) Also: every fitted learner of the task on
the same rows (bias vs the trial-specific and the average-trial truth); per deployed member, the change of its mean
per-feature contribution (``predict.explain``) from the fitted participants of the class to the new trial's; and the
new trial's CI / PI coverage if the intervals were widened by the distance over other feature sets (today's: the
heaviest member's importance-selected features; the union over the weighted members; all features), each support
fitted exactly as ``predict.support.fit_support`` does (pooled mean and covariance of the deployed imputer, the
training participants' quantiles).

    python benchmarks/outside/diag_shift_parts.py --out /tmp/outside --seeds 4 --tag s12a
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_outside as bo  # noqa: E402
import simulate_outside as so  # noqa: E402

from predict.evaluate import point  # noqa: E402
from predict.explain import explain_from_export  # noqa: E402
from predict.features import feature_matrix  # noqa: E402
from predict.learner_model import as_learner  # noqa: E402
from predict.support import fit_support, support_scores  # noqa: E402

KEY = ["trial", "participant", "comparator"]


def data_dir(d: Path, seed: int, scratch: Path) -> Path:
    """The seed's written data (re-simulated into ``scratch`` when the run folder no longer holds it)."""
    if (d / "train" / "participants.csv").exists():
        return d
    s = scratch / f"seed{seed}"
    if not (s / "train" / "participants.csv").exists():
        so.write(s, seed)
    return s


def rows_preds(d: Path, data: Path, target: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = bo.pairs(bo.harmonised_table(data / ("train" if target == "fitted" else "new"))).reset_index(drop=True)
    rows = rows.assign(participant=rows.participant.astype(str))
    p = pd.read_csv(d / f"preds_pain_{target}_lbp_benefit.csv", dtype={"participant": str})
    return rows, rows[KEY].merge(p, on=KEY, how="left")


def benefits(e: dict, rows: pd.DataFrame) -> np.ndarray:
    b = np.full(len(rows), np.nan)
    for c in rows.comparator.unique():
        m = (rows.comparator == c).to_numpy()
        if c in e["comparators"]:
            b[m] = point(as_learner(e), feature_matrix(e["features"], rows[m]))[1][c]
    return b


def one_seed(d: Path, data: Path, seed: int) -> list[dict]:
    models = d / "run" / "models" / "pain__short"
    sel = json.loads((models / "selected.json").read_text())
    learners = {f.stem: json.loads(f.read_text()) for f in sorted(models.glob("*.json"))}
    fr, fp = rows_preds(d, data, "fitted")
    nr, npd = rows_preds(d, data, "new")
    cls = str(nr.comparator.iloc[0])
    okf = fp.pred.notna().to_numpy() & (fr.comparator == cls).to_numpy()
    okn = npd.pred.notna().to_numpy()
    base = {"seed": seed, "class": cls}
    recs = []
    const = float(np.nanmean(benefits(learners["constant"], nr)[okn]))
    pred, t_trial, t_avg = (npd[c].to_numpy()[okn] for c in ("pred", "t_trial", "t_avg"))
    fit_avg = float(fp.t_avg.to_numpy()[okf].mean())
    per_row = {"trial level (t_avg - t_trial)": t_avg - t_trial,
               "class effect (constant model - fitted participants' average-trial truth)": np.full(t_avg.size, const - fit_avg),
               "truth's change with the case mix (fitted - new average-trial truth)": fit_avg - t_avg,
               "deployed model - constant model (members' modification)": pred - const,
               "total = mean(pred - t_trial)": pred - t_trial}
    rng = np.random.default_rng(seed)
    boot = rng.integers(0, t_avg.size, (400, t_avg.size))  # the new trial's participants resampled (the
    # fitted participants' average-trial truth and the constant model's offset held fixed)
    for k, v in per_row.items():
        lo, hi = np.percentile(v[boot].mean(axis=1), [2.5, 97.5])
        recs.append({**base, "part": "bias part", "what": k, "value": float(v.mean()), "lo": float(lo), "hi": float(hi)})
    for name, e in learners.items():
        for target, rows, p, ok in (("fitted", fr, fp, okf), ("new", nr, npd, okn)):
            b = benefits(e, rows)[ok]
            recs.append({**base, "part": "learner", "target": target, "what": name, "value": float(b.mean()),
                         "bias": float(np.mean(b - p.t_trial.to_numpy()[ok])),
                         "bias_avg": float(np.mean(b - p.t_avg.to_numpy()[ok])),
                         "pehe": float(np.sqrt(np.mean((b - p.t_trial.to_numpy()[ok]) ** 2))),
                         "weight": dict(zip(sel["members"]["names"], sel["members"]["weights"])).get(name, np.nan)
                         if sel["kind"] == "stacked" else float(name == sel["kind"])})
    members = (zip(sel["members"]["names"], sel["members"]["exports"]) if sel["kind"] == "stacked"
               else [(sel["kind"], sel)])
    for name, e in members:
        ef = explain_from_export(copy.deepcopy(e), fr[okf], cls).mean(numeric_only=True)
        en = explain_from_export(copy.deepcopy(e), nr[okn], cls).mean(numeric_only=True)
        for col, v in (en - ef).items():
            if col in e["features"]["names"] and abs(v) >= 0.1:
                recs.append({**base, "part": "member shift (new - fitted mean contribution)", "what": f"{name}: {col}",
                             "value": float(v)})
    # the widening on other feature sets
    Ft = feature_matrix(sel["features"], bo.harmonised_table(data / "train"))
    imp = sel["imputer"]
    w = dict(zip(sel["members"]["names"], sel["members"]["weights"])) if sel["kind"] == "stacked" else {sel["kind"]: 1.0}
    exps = dict(zip(sel["members"]["names"], sel["members"]["exports"])) if sel["kind"] == "stacked" else {sel["kind"]: sel}
    union = sorted({j for n, e in exps.items() if w[n] > 0 for j in (e.get("support") or {}).get("features", [])})
    sups = {"today (heaviest member's features)": sel.get("support"),
            "union of the weighted members' features": fit_support(imp["mean"], imp["cov"], Ft, union) if union else None,
            "all features": fit_support(imp["mean"], imp["cov"], Ft, None)}
    names = sel["features"]["names"]
    for target, rows, p, ok in (("fitted", fr, fp, fp.pred.notna().to_numpy()), ("new", nr, npd, okn)):
        F = feature_matrix(sel["features"], rows[ok])
        q = p[ok]
        f0 = support_scores(sel.get("support"), F)["factor"]
        hw_pi, hw_ci = (q.phi - q.plo).to_numpy() / 2 / f0, (q.hi - q.lo).to_numpy() / 2 / f0  # unwidened
        for lab, s in sups.items():
            sc = support_scores(s, F)
            f = sc["factor"]
            feats = [names[j] for j in (s or {}).get("features", [])]
            recs.append({**base, "part": "widening", "target": target, "what": f"{lab}: {' '.join(feats)}",
                         "share_beyond_cut": float(np.mean(f > 1)), "share_rare": float(np.mean(sc["rare"])),
                         "mean_factor": float(f.mean()),
                         "cov_ci": float(np.mean(np.abs(q.t_avg - q.pred).to_numpy() <= f * hw_ci)),
                         "cov_pi": float(np.mean(np.abs(q.t_trial - q.pred).to_numpy() <= f * hw_pi)),
                         "pi_half_width": float(np.mean(f * hw_pi))})
    tau = sel.get("interval", {}).get("tau", {})
    recs.append({**base, "part": "interval", "what": f"deployed tau of {cls}", "value": float(tau.get(cls, np.nan))})
    recs.append({**base, "part": "interval", "what": "mean PI half-width on the new trial",
                 "value": float(np.mean((npd.phi - npd.plo).to_numpy()[okn]) / 2)})
    recs.append({**base, "part": "interval", "what": "mean CI half-width on the new trial",
                 "value": float(np.mean((npd.hi - npd.lo).to_numpy()[okn]) / 2)})
    return recs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="bench_outside.py's --out folder (read only)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[4])
    ap.add_argument("--tag", default="s12a")
    a = ap.parse_args(argv)
    recs = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in a.seeds:
            d = a.out / f"seed{s}"
            recs += one_seed(d, data_dir(d, s, Path(tmp)), s)
    df = pd.DataFrame(recs)
    bo.RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(bo.RESULTS / f"outside_shift_parts_{a.tag}.csv", index=False, float_format="%.4f")
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_rows", 500,
                           "display.max_colwidth", 90):
        print(df.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
