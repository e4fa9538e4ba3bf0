"""Per comparator class on the outside simulator (pain, short term): the product against the true class mean
("no class worse than its own average effect", issue 23) and two runs' class-shrinkage variants against
each other, from the per-row predictions `bench_outside.py` leaves in its run folders.

Per run root, seed, target (fitted / new) and comparator: rows, root PEHE vs the trial-specific truth, the
same for the true class mean of the training truth (the oracle average-effect model), bias, 95% CI coverage of
the average-trial truth, 95% PI coverage of the trial-specific truth; with two roots, the candidate / base
ratio of root PEHE with a paired bootstrap interval (trials resampled for fitted participants, participants
for the new trial). Also each run's class-shrinkage report of the pain effect model (own -> shrunk estimate,
weight_own, the set's spread, the prior scale) read from the trained artifact.

    python benchmarks/outside/diag_class_parts.py --roots base=/tmp/out_base cand=/tmp/out_int --seeds 3 \
        --out benchmarks/results/outside_s13k_perclass.csv
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd


def rows(root: Path, seed: int, target: str, learner: str = "lbp_benefit") -> pd.DataFrame:
    return pd.read_csv(root / f"seed{seed}" / f"preds_pain_{target}_{learner}.csv")


def stats(d: pd.DataFrame) -> dict:
    e = d.pred - d.t_trial
    r = {"pehe": float(np.sqrt((e ** 2).mean())), "bias": float(e.mean())}
    if "lo" in d and d.lo.notna().all():
        r["cov_ci"] = float(((d.lo <= d.t_avg) & (d.t_avg <= d.hi)).mean())
    if "plo" in d and d.plo.notna().all():
        r["cov_pi"] = float(((d.plo <= d.t_trial) & (d.t_trial <= d.phi)).mean())
    return r


def paired_ratio(a: pd.DataFrame, b: pd.DataFrame, cluster: str | None, rng, n_boot: int = 400) -> tuple:
    """root PEHE of b / a on the same rows, with a 95% bootstrap interval."""
    ea, eb = (a.pred - a.t_trial).to_numpy() ** 2, (b.pred - b.t_trial).to_numpy() ** 2
    groups = a.groupby(cluster).indices if cluster else {i: [i] for i in range(len(a))}
    keys = list(groups)
    boot = []
    for _ in range(n_boot):
        idx = np.concatenate([groups[keys[i]] for i in rng.choice(len(keys), len(keys))])
        boot.append(np.sqrt(eb[idx].mean() / ea[idx].mean()))
    return float(np.sqrt(eb.mean() / ea.mean())), *np.percentile(boot, [2.5, 97.5])


def shrink_report(root: Path, seed: int, model: str = "effect_model") -> dict:
    """comparator -> the class-shrinkage report of the run's pain short-term ``model`` (its export's meta)."""
    f = root / f"seed{seed}" / "run" / "models" / "pain__short" / f"{model}.json"
    if not f.exists():
        return {}
    return json.loads(f.read_text()).get("meta", {}).get("class_shrinkage") or {}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--roots", nargs="+", required=True, help="name=run root of bench_outside.py (first: the base)")
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    roots = dict(r.split("=", 1) for r in a.roots)
    roots = {k: Path(v) for k, v in roots.items()}
    base = next(iter(roots))
    recs = []
    for seed in a.seeds:
        rng = np.random.default_rng(seed)
        reports = {k: shrink_report(r, seed) for k, r in roots.items()}
        for target in ("fitted", "new"):
            orc = rows(roots[base], seed, target, "oracle_class_mean")
            got = {k: rows(r, seed, target) for k, r in roots.items()}
            for comp in sorted(orc.comparator.unique()):
                m = (orc.comparator == comp).to_numpy() & np.all([g.pred.notna().to_numpy() for g in got.values()], 0)
                o = orc[m]
                for k, g in got.items():
                    rep = reports[k].get(comp, {})
                    rec = {"seed": seed, "target": target, "comparator": comp, "run": k, "n": int(m.sum()),
                           **stats(g[m]), "pehe_class_mean": stats(o)["pehe"],
                           **{f"shrink_{f}": rep.get(f) for f in ("estimate_own", "estimate_shrunk", "weight_own",
                                                                  "s_set", "prior_scale")}}
                    if k != base:
                        rec["ratio_vs_base"], rec["ratio_lo"], rec["ratio_hi"] = paired_ratio(
                            got[base][m], g[m], "trial" if target == "fitted" else None, rng)
                    recs.append(rec)
    out = pd.DataFrame(recs)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(a.out, index=False, float_format="%.4f")
    print(out.to_string(float_format="%.3f"))


if __name__ == "__main__":
    main()
