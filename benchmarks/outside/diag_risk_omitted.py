"""What the risk model's omitted-interaction allowance would do to a deployed stack's intervals on the
outside simulator (s12v, issue 23). Reads a ``bench_outside.py`` run and the per-row parts that
``diag_se_parts.py`` wrote for it (``<root>/se_parts_<outcome>_<tag>_rows.csv``); refits the
deployed stack's risk model on the run's training rows twice (as deployed, checked equal to the
artifact's theta; and with ``omitted_interactions=True``), evaluates both SEs at the scored rows and
recomposes the served SE with the risk member's SE replaced (the stack's rule otherwise unchanged:
members' SEs added with the weights, between-member variance, missing-input variance, the served
support widening), and without the between-member variance. The PI keeps its tau part:
PI_se^2 = served PI_se^2 + (what-if SE^2 - served SE^2). Coverage of the average-trial truth (CI)
and of the trial-specific truth (PI), with a 95% trial-cluster bootstrap interval (participants for
the single new trial). Also the risk model on its own (rules ``risk_alone_*``: its own benefit, SE and
missing-input variance; CI only).

    python benchmarks/outside/diag_risk_omitted.py --root /tmp/s12i_outside --seeds 1 2 --outcome pain \
        --parts-tag s12i --tag s12v
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_outside as bo  # noqa: E402
import diag_se_parts as dsp  # noqa: E402
import simulate_outside as so  # noqa: E402

Z = 1.959963984540054


def risk_ses(seed: int, root: Path, outcome: str, target: str):
    """(rows with the deployed risk member's SE refitted as deployed and with the allowance, its stack
    weight, the allowance's estimate); (None, 0, None) when the stack has no risk model."""
    from predict import model_format as mf
    from predict.artifact import load_artifact
    from predict.impute import impute_mean
    from predict.learner_model import build
    from predict.scorer import Scorer
    from predict.uncertainty import estimation_se
    from training.train import make_learner

    d = root / f"seed{seed}"
    pr = pd.read_csv(d / f"preds_{outcome}_{target}_lbp_benefit.csv", dtype={"participant": str})
    rows = pr.merge(bo.pairs(bo.harmonised_table(d / ("train" if target == "fitted" else "new"))),
                    on=["trial", "participant", "comparator"], how="left")
    rows = rows[rows.pred.notna()].reset_index(drop=True)
    art = d / "run" / "artifact"
    sc = Scorer.load(art, compiled=False)
    vm = mf.verify(load_artifact(art, supported=mf.READABLE_VERSIONS, required=("card.md", "card.json")))
    L = build(next(vt.export for vt in vm.tasks if vt.entry.task == f"{outcome}__short"))
    w, members = L.stack
    names = list(L.names)
    if "risk_model" not in names:
        return None, 0.0, None
    k = names.index("risk_model")
    F, _ = sc.validate(rows[[*so.COVARIATES, "baseline_pain", "baseline_function"]], required=set())
    Fimp = impute_mean(L.imputer, F)
    fits = dsp.refits(d, outcome, seed, [])
    X, y = fits["__xy__"]
    cfg = dsp.load_cfg(d)
    full = make_learner("risk_model", "continuous", cfg, seed).fit(X, y)
    th_art, th_new = np.asarray(members[k].linear.theta), np.asarray(full.export_["linear"]["theta"])
    if th_art.shape != th_new.shape or np.max(np.abs(th_art - th_new)) > 1e-6:
        raise RuntimeError(f"seed {seed}: the risk model refit differs from the artifact")
    om = make_learner("risk_model", "continuous", cfg, seed)
    om.omitted_interactions = True
    om = om.fit(X, y)
    out = []
    for c, idx in rows.groupby("comparator").indices.items():
        if c not in L.comparators:
            continue
        r = rows.iloc[idx]
        se0 = estimation_se(full.to_export(), F[idx], Fimp[idx], [c])[c]
        se1 = estimation_se(om.to_export(), F[idx], Fimp[idx], [c])[c]
        out.append(pd.DataFrame({"trial": r.trial.to_numpy(), "participant": r.participant.to_numpy(),
                                 "comparator": c, "se_risk_refit": se0, "se_risk_omitted": se1}))
    info = om.to_export()["interval"]["omitted_interactions"]
    return pd.concat(out, ignore_index=True), float(w[k]), info


def cluster_ci(hit: np.ndarray, cl: np.ndarray, B: int = 2000) -> tuple:
    rng = np.random.default_rng(0)
    u, code = np.unique(cl, return_inverse=True)
    if u.size < 5:  # one new trial: participants
        code, u = np.arange(hit.size), np.arange(hit.size)
    s, n = np.bincount(code, hit.astype(float)), np.bincount(code)
    bs = [(s[i].sum() / n[i].sum()) for i in (rng.integers(0, u.size, u.size) for _ in range(B))]
    return float(np.quantile(bs, 0.025)), float(np.quantile(bs, 0.975))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--outcome", default="pain")
    ap.add_argument("--parts-tag", default="s12i")
    ap.add_argument("--tag", default="s12v")
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    parts = pd.read_csv(a.root / f"se_parts_{a.outcome}_{a.parts_tag}_rows.csv")
    res = []
    for s in a.seeds:
        for t in ("fitted", "new"):
            got = risk_ses(s, a.root, a.outcome, t)
            if got[0] is None:
                continue
            rr, wk, info = got
            p = parts[(parts.seed == s) & (parts.target == t)].reset_index(drop=True)
            if len(p) != len(rr) or not np.allclose(p.se_risk_model.to_numpy(), rr.se_risk_refit.to_numpy(), rtol=1e-3, atol=1e-4):
                # the same rows in the same order as diag_se_parts (its CSV keeps 5 significant digits)
                raise RuntimeError(f"seed {s} {t}: rows or risk SEs differ from the parts file: {len(p)} v {len(rr)}; "
                                   f"max |d se| {np.max(np.abs(p.se_risk_model.to_numpy() - rr.se_risk_refit.to_numpy())) if len(p) == len(rr) else None}")
            within1 = p.within + wk * (rr.se_risk_omitted - rr.se_risk_refit)
            e, et = (p.pred - p.t_avg).abs(), (p.pred - p.t_trial).abs()
            for rule, wi, bt in (("served", p.within, True), ("risk_omitted", within1, True),
                                 ("risk_omitted_no_between", within1, False), ("no_between", p.within, False)):
                se = p.widen * np.sqrt(wi ** 2 + (p.between if bt else 0.0) + p.var_m)
                pis = np.sqrt(np.clip(p.pi_served ** 2 + se ** 2 - p.se_served ** 2, 0, None))
                hit, hitp = (e <= Z * se).to_numpy(), (et <= Z * pis).to_numpy()
                lo, hi = cluster_ci(hit, p.trial.to_numpy())
                plo, phi = cluster_ci(hitp, p.trial.to_numpy())
                res.append({"seed": s, "target": t, "rule": rule, "risk_weight": wk, "m2": info["m2"], "n": len(p),
                            "rmse_avg": float(np.sqrt(np.mean(e ** 2))), "se_rms": float(np.sqrt(np.mean(se ** 2))),
                            "ci_cov": hit.mean(), "ci_lo": lo, "ci_hi": hi, "pi_cov": hitp.mean(), "pi_lo": plo,
                            "pi_hi": phi, "risk_se_rms": float(np.sqrt(np.mean(rr.se_risk_refit ** 2))),
                            "risk_se_omitted_rms": float(np.sqrt(np.mean(rr.se_risk_omitted ** 2)))})
            # the risk model as a learner on its own (own SE: estimation + its own missing-input variance)
            er = (p.b_risk_model - p.t_avg).abs().to_numpy()
            for rule, ser in (("risk_alone_deployed", rr.se_risk_refit), ("risk_alone_omitted", rr.se_risk_omitted)):
                se = np.sqrt(ser.to_numpy() ** 2 + p.vm_risk_model.to_numpy())
                hit = er <= Z * se
                lo, hi = cluster_ci(hit, p.trial.to_numpy())
                res.append({"seed": s, "target": t, "rule": rule, "risk_weight": wk, "m2": info["m2"], "n": len(p),
                            "rmse_avg": float(np.sqrt(np.mean(er ** 2))), "se_rms": float(np.sqrt(np.mean(se ** 2))),
                            "ci_cov": hit.mean(), "ci_lo": lo, "ci_hi": hi})
    out = pd.DataFrame(res).round(4)
    path = ROOT / "benchmarks" / "results" / f"outside_risk_omitted_{a.outcome}_{a.tag}.csv"
    out.to_csv(path, index=False)
    print(out.to_string())


if __name__ == "__main__":
    main()
