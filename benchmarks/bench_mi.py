"""Missing data in the linear benefit learners: multilevel multiple imputation (``missing='mi'``)
against today's conditional-mean imputation, vs the simulator's truth.

Per scenario x seed: simulate, harmonise, take one task (default pain at short term), fit the
constant model, the effect model with conditional-mean imputation (``effect_model``, the default)
and with M multilevel multiple imputations that include outcome and treatment (``effect_model_mi``,
pooled by Rubin's rules), optionally the class-shrunk effect model. Metrics as in bench_learners.py:
root PEHE against each fitted participant's trial-specific truth (``pehe``), against the truth in an
average trial (``pehe_avg_trial``, the learners' estimand), on new trials of the same process
(``pehe_new``, seed + 10000), per comparator class (``pehe_<class>``, with the true class mean as a
predictor beside it: ``classmean_<class>``), 95% CI coverage of the average-trial truth, 95% PI
coverage of the trial-specific truth, within-trial spread of the predictions and fit time.

Usage::

    python benchmarks/bench_mi.py --scenarios sysmiss hayden2020 strong none --seeds 5 --workers 2 \
        --out benchmarks/results/mi.csv
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _variants(cfg, seed, n_boot, m):
    from training.train import make_learner

    out = {"constant": make_learner("constant", "continuous", cfg, seed, n_boot=n_boot),
           "effect_model": make_learner("effect_model", "continuous", cfg, seed, n_boot=n_boot),
           "effect_model_mi": make_learner("effect_model", "continuous", cfg, seed, n_boot=n_boot).set_params(
               missing="mi", n_imputations=m)}
    em = out["effect_model"]
    if "class_shrinkage" in em.get_params():  # the shrunk class effects (training.learners.shrinkage)
        groups = [list(v) for v in cfg.comparisons.values()]
        out["effect_model_classes"] = make_learner("effect_model", "continuous", cfg, seed, n_boot=n_boot).set_params(
            class_shrinkage=True, class_groups=groups)
        out["constant_classes"] = make_learner("constant", "continuous", cfg, seed, n_boot=n_boot).set_params(
            class_shrinkage=True, class_groups=groups)
    return out


def one(args) -> list:
    scenario, seed, outcome, follow_up, n_boot, m = args
    from threadpoolctl import threadpool_limits

    from bench_learners import load_task, within_trial_sd
    from training.iecv import _benefit_mix
    from training.learners.stacking import comparator_mix

    warnings.simplefilter("ignore")
    rows = []
    with threadpool_limits(1):
        df, truth, cfg, recols = load_task(scenario, seed, outcome, follow_up)
        ndf, ntruth, _, _ = load_task(scenario, seed + 10_000, outcome, follow_up)
        feats = [c for c in (cfg.covariates.names + [f"baseline_{o}" for o in cfg.outcomes]) if c in df.columns]
        X = df[["trial", "treatment"] + feats]
        y = df["value"].to_numpy(float)
        cls = df["treatment"].astype(str).to_numpy()
        trial = df["trial"].astype(str).to_numpy()
        comps = sorted(set(cls) - {cfg.active})
        ok = np.array([len(set(cls[trial == t]) - {cfg.active}) > 0 and (cls[trial == t] == cfg.active).any()
                       for t in trial])
        W = comparator_mix(trial, cls, cfg.active, comps)
        t_mix = sum(W[:, i] * truth[f"benefit_vs_{c}"].to_numpy() for i, c in enumerate(comps))
        t_avg = t_mix - sum(W[:, i] * recols[c] for i, c in enumerate(comps))
        NX = ndf[["trial", "treatment"] + feats].assign(trial=lambda d: "new:" + d["trial"].astype(str))
        ncls = ndf["treatment"].astype(str).to_numpy()
        ntrial = ndf["trial"].astype(str).to_numpy()
        ncomps = sorted(set(ncls) - {cfg.active})
        nok = np.array([len(set(ncls[ntrial == t]) - {cfg.active}) > 0 and (ncls[ntrial == t] == cfg.active).any()
                        for t in ntrial])
        nW = comparator_mix(ntrial, ncls, cfg.active, ncomps)
        nt_mix = sum(nW[:, i] * ntruth[f"benefit_vs_{c}"].to_numpy() for i, c in enumerate(ncomps))
        miss = float(np.isnan(X[feats].to_numpy(float)).mean())
        for name, lr in _variants(cfg, seed, n_boot, m).items():
            t0 = time.time()
            lr.fit(X, y)
            secs = time.time() - t0
            p = lr.predict_interval(X)
            b = _benefit_mix(p, trial, cls, cfg.active, comps)
            hit_ci, hit_pi, per = [], [], {}
            for i, c in enumerate(comps):
                msk = ok & (W[:, i] > 0)
                tc = truth[f"benefit_vs_{c}"].to_numpy()[msk]
                ta = tc - recols[c][msk]
                hit_ci.append((ta >= p[f"benefit_vs_{c}_ci_low"].to_numpy()[msk]) & (ta <= p[f"benefit_vs_{c}_ci_high"].to_numpy()[msk]))
                hit_pi.append((tc >= p[f"benefit_vs_{c}_pi_low"].to_numpy()[msk]) & (tc <= p[f"benefit_vs_{c}_pi_high"].to_numpy()[msk]))
                # per class: prediction vs the class-specific trial truth, and the true class mean as predictor
                pc = p[f"benefit_vs_{c}"].to_numpy()[msk]
                per[f"pehe_{c}"] = float(np.sqrt(np.mean((pc - tc) ** 2)))
                per[f"classmean_{c}"] = float(np.sqrt(np.mean((tc - tc.mean()) ** 2)))
                per[f"n_{c}"] = int(msk.sum())
            pn = lr.predict_interval(NX)
            bn = _benefit_mix(pn, ntrial, ncls, cfg.active, ncomps)
            hit_pin = []
            for i, c in enumerate(ncomps):
                if f"benefit_vs_{c}_pi_low" not in pn:
                    continue
                msk = nok & (nW[:, i] > 0)
                tc = ntruth[f"benefit_vs_{c}"].to_numpy()[msk]
                hit_pin.append((tc >= pn[f"benefit_vs_{c}_pi_low"].to_numpy()[msk]) & (tc <= pn[f"benefit_vs_{c}_pi_high"].to_numpy()[msk]))
            err = b[ok] - t_mix[ok]
            mi = lr.export_["meta"].get("missing", {}).get("rubin") or {}
            rows.append({"scenario": scenario, "seed": seed, "learner": name,
                         "pehe": float(np.sqrt(np.mean(err ** 2))),
                         "pehe_avg_trial": float(np.sqrt(np.mean((b[ok] - t_avg[ok]) ** 2))),
                         "pehe_new": float(np.sqrt(np.mean((bn[nok] - nt_mix[nok]) ** 2))),
                         "bias": float(np.mean(err)), "coverage_ci_avg": float(np.concatenate(hit_ci).mean()),
                         "coverage_pi": float(np.concatenate(hit_pi).mean()),
                         "coverage_pi_new": float(np.concatenate(hit_pin).mean()) if hit_pin else np.nan,
                         "ci_width": float(np.mean(p[f"benefit_vs_{comps[0]}_ci_high"] - p[f"benefit_vs_{comps[0]}_ci_low"])),
                         "spread": within_trial_sd(b[ok], trial[ok]), "sd_true": float(np.std(t_mix[ok])),
                         "fit_seconds": secs, "missing_share": miss, "interaction_sd": lr.export_["meta"].get("interaction_sd"),
                         "mi_lambda_median": mi.get("lambda_median", np.nan), "n": int(ok.sum()), **per})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mi.csv"))
    ap.add_argument("--scenarios", nargs="*", default=["sysmiss", "hayden2020", "strong", "none"])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--outcome", default="pain")
    ap.add_argument("--follow-up", default="short")
    ap.add_argument("--n-boot", type=int, default=100)
    ap.add_argument("--imputations", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    jobs = [(sc, s, a.outcome, a.follow_up, a.n_boot, a.imputations) for sc in a.scenarios for s in range(1, a.seeds + 1)]
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0, rows = time.time(), []
    if a.workers > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(a.workers) as pool:
            for r in pool.imap_unordered(one, jobs):
                rows += r
                pd.DataFrame(rows).to_csv(out, index=False)
                print(f"[{time.time() - t0:6.0f}s] {r[0]['scenario']} seed {r[0]['seed']} done", flush=True)
    else:
        for j in jobs:
            rows += one(j)
            pd.DataFrame(rows).to_csv(out, index=False)
            print(f"[{time.time() - t0:6.0f}s] {j[0]} seed {j[1]} done", flush=True)
    res = pd.DataFrame(rows)
    res.to_csv(out, index=False)
    num = [c for c in res.columns if c not in ("scenario", "seed", "learner") and res[c].dtype.kind in "fi"]
    s = res.groupby(["scenario", "learner"])[num].mean().reset_index()
    s.insert(2, "seeds", res.groupby(["scenario", "learner"])["seed"].nunique().to_numpy())
    s.to_csv(out.with_name(out.stem + "_summary.csv"), index=False)
    meta = {"seconds": round(time.time() - t0, 1), "nproc": os.cpu_count(), "loadavg_end": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "imputations": a.imputations, "n_boot": a.n_boot}
    out.with_name(out.stem + "_meta.json").write_text(json.dumps(meta, indent=1))
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(s[["scenario", "learner", "seeds", "pehe", "pehe_avg_trial", "pehe_new", "coverage_ci_avg", "coverage_pi",
                 "coverage_pi_new", "spread", "sd_true", "fit_seconds"]].round(3).to_string(index=False))
    print(meta)


if __name__ == "__main__":
    main()
