"""Coverage of the intervals of a stacked binary model (global recovery) against the simulator's truth.

What the default model deploys for short-term recovery is a stack of logistic and tree learners
(constant, effect model, risk model, DR-learner). Per seed: simulate the default scenario
(hayden2020), fit those four learners with their bootstrap (100 linear / 10 tree replicates, as
``train``), weight them by convex R-loss stacking on trial-grouped 5-fold held-out predictions
(``train`` uses leave-one-trial-out; 5 folds to bound the time), and score the complete
covariate profiles of an independent dataset (seed + 10000: new trials, new participants).

Estimands and truths (``average_truth``, via ``training.simulate.generator.design_averaged_truth``: the
average trial *of each training set* as a logistic model with trial intercepts defines it - per
training trial its design (instrument rounding, which outcomes decide recovery) and its own random
intercept and baseline slope, no class deviation, averaged on the logit scale with the trials' sizes
in the task; until 2026-12-07 ``true_expected``: intercept 0, continuous thresholds and both outcomes
for every profile, about 0.03 above what the trials measure):

- per-arm 95% CI (``predict.arm_intervals``): P(recovery | arm, x) in the average trial, for
  exercise and for every comparator class of the profile's own trial;
- benefit 95% CI: P(recovery | exercise, x) - P(recovery | comparator, x) in the average trial;
- benefit 95% PI: the same benefit in the profile's own (new) trial (the simulator's truth table of
  the independent dataset: trial effects included), vs each comparator class of that trial.

Profiles are complete (the missing-input part of the intervals is then 0): this checks the
estimation part. The evaluation profiles are the same for every training seed (an independent
dataset, seed 99999), each against its own trial's first comparator class, so that the spread of
the estimates over training seeds can be compared with the reported SEs (``*_honesty.csv``: the
SD ratio and the coverage of the estimator's mean, i.e. the intervals' honesty about estimation
without the bias against the simulator's truth). Rows: one per seed x model (the stack, and each
member alone, scored the same way).

    python benchmarks/bench_binary_stack.py --seeds 8 --out benchmarks/results/binary_stack.csv
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MEMBERS = ("constant", "effect_model", "risk_model", "dr_learner")
OUTCOME, FOLLOW_UP = "global_recovery", "short"
Z = 1.959963984540054


SCENARIO = "hayden2020"


def dataset(seed: int, scenario: str | None = None):
    from training.dataset import load_dataset
    from training.harmonise import harmonise
    from training.learners.base import task_frame
    from training.simulate import simulate_dataset

    sim = simulate_dataset(scenario or SCENARIO, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        sim.write(Path(tmp))
        h = harmonise(load_dataset(Path(tmp)))
    return sim, task_frame(h.analysis, OUTCOME, FOLLOW_UP), h.config


def fit_models(seed: int, n_boot_linear: int, n_boot_trees: int):
    """(models {name: fitted learner}, stack weights, config, seconds)."""
    from training.iecv import run_iecv
    from training.learners.folds import trial_folds
    from training.learners.stacking import StackedLearner
    from training.train import make_learner

    sim, df, cfg = dataset(seed)
    feats = [c for c in (cfg.covariates.names + [f"baseline_{o}" for o in cfg.outcomes]) if c in df.columns]
    X = df[["trial", "treatment"] + feats]
    y = df["value"].to_numpy(float)
    t0 = time.time()
    cls = df["treatment"].astype(str).to_numpy()
    trial = df["trial"].astype(str).to_numpy()
    tcodes = pd.factorize(df["trial"])[0]
    has = np.array([len(set(cls[trial == t]) - {cfg.active}) > 0 for t in pd.factorize(df["trial"])[1]])
    labels = pd.factorize(df["trial"])[1]
    folds = [[labels[k] for k in f] for f in trial_folds(tcodes, has, 5, seed)]
    factories = {n: (lambda n=n: make_learner(n, "binary", cfg, seed, n_boot=0)) for n in MEMBERS}
    cv = run_iecv(X.assign(_y=y), "_y", factories, "binary", cfg.active, metrics=False, groups=folds, workers=1)
    fitted = {n: make_learner(n, "binary", cfg, seed, boot_trees=n_boot_trees, boot_linear=n_boot_linear).fit(X, y)
              for n in MEMBERS}
    w = {k: v for k, v in cv.stack_weights.items() if v > 1e-6}
    models = dict(fitted)
    models["stack"] = StackedLearner.from_fitted([fitted[k] for k in w], list(w.values()), list(w))
    return models, w, cfg, time.time() - t0, sim, df


def evaluation_set(n_profiles: int, seed: int = 99_999):
    """Complete covariate profiles of an independent dataset (new trials), the same for every
    training seed: (profiles, comparator per profile (its trial's first comparator class), truth in
    the average trial per class (of the evaluation data's own trials; per training seed
    :func:`average_truth` replaces it by that of the training trials), truth of the benefit in the
    profile's own trial, the evaluation dataset)."""
    sim, df, cfg = dataset(seed)
    comp = sim.complete.copy()
    trial = comp["trial"].astype(str).to_numpy()
    classes = {t: sorted(set(comp.loc[trial == t, "treatment"].astype(str)) - {cfg.active}) for t in np.unique(trial)}
    comp["comparator"] = [classes[t][0] if classes[t] else "" for t in trial]
    comp = comp[comp["comparator"] != ""]
    rng = np.random.default_rng(seed)
    comp = comp.iloc[np.sort(rng.choice(len(comp), size=min(n_profiles, len(comp)), replace=False))].reset_index(drop=True)

    def rows_of(tt):
        tt = tt[(tt["outcome"].astype(str) == OUTCOME) & (tt["follow_up"].astype(str) == FOLLOW_UP)]
        return comp[["trial", "participant"]].astype(str).merge(
            tt.drop(columns=["treatment"]).assign(trial=tt["trial"].astype(str), participant=tt["participant"].astype(str)),
            on=["trial", "participant"], how="left")
    tt = rows_of(sim.truth)
    c = comp["comparator"].to_numpy()
    ta, tc = average_truth(sim, comp, c, cfg, sim, df)
    tb_trial = np.array([tt[f"benefit_vs_{k}"].to_numpy()[i] for i, k in enumerate(c)])
    return comp, c, ta, tc, tb_trial, sim


def average_truth(ev_sim, comp, c, cfg, train_sim, train_df):
    """P(recovery) under exercise and under each profile's comparator in the *average trial of the
    training data as a logistic model with trial intercepts defines it*: per training trial, the
    truth with that trial's design (instruments, which outcomes decide) and its own random
    intercept and baseline slope but no class deviation, averaged on the logit scale with the
    trials' sizes in the task (``design_averaged_truth`` with ``trial_effects``)."""
    from training.simulate.generator import design_averaged_truth, trial_effects_of

    w = train_df["trial"].astype(str).value_counts().to_dict()
    av = pd.concat([ev_sim.complete[["trial", "participant"]].astype(str).reset_index(drop=True),
                    design_averaged_truth(ev_sim, OUTCOME, FOLLOW_UP, w, design=train_sim.scenario,
                                          trial_effects=trial_effects_of(train_sim))], axis=1)
    av = comp[["trial", "participant"]].astype(str).merge(av, on=["trial", "participant"], how="left")
    return (av[f"expected_{cfg.active}"].to_numpy(),
            np.array([av[f"expected_{k}"].to_numpy()[i] for i, k in enumerate(c)]))


def predictions(models: dict, ev) -> dict:
    """Per model: arrays over the evaluation profiles (arm estimates and 95% bounds, logit-scale SD;
    benefit estimate, CI and PI)."""
    from predict import arm_intervals as A

    comp, c, *_ = ev
    out = {}
    for name, m in models.items():
        exp = m.to_export()
        names = exp["features"]["names"]
        F = comp[names].to_numpy(float)
        pi = m.predict_interval(comp[["trial", "treatment"] + names].assign(trial=lambda d: "new:" + d["trial"].astype(str)))
        r = {k: np.full(len(comp), np.nan) for k in ("pa", "pc", "lo_a", "hi_a", "lo_c", "hi_c", "sd_a", "sd_c",
                                                      "b", "lo", "hi", "plo", "phi")}
        for k in np.unique(c):
            msk = c == k
            parts = A.binary_parts(exp, F[msk], k)
            if parts is None:
                continue
            (ea, sa), (ec, sc) = parts
            lo_a, hi_a, lo_c, hi_c = A.binary_interval(parts, Z)
            vals = {"pa": 1 / (1 + np.exp(-ea)), "pc": 1 / (1 + np.exp(-ec)), "lo_a": lo_a, "hi_a": hi_a,
                    "lo_c": lo_c, "hi_c": hi_c, "sd_a": sa, "sd_c": sc,
                    "b": pi[f"benefit_vs_{k}"].to_numpy()[msk], "lo": pi[f"benefit_vs_{k}_ci_low"].to_numpy()[msk],
                    "hi": pi[f"benefit_vs_{k}_ci_high"].to_numpy()[msk],
                    "plo": pi[f"benefit_vs_{k}_pi_low"].to_numpy()[msk], "phi": pi[f"benefit_vs_{k}_pi_high"].to_numpy()[msk]}
            for key, v in vals.items():
                r[key][msk] = v
        out[name] = r
    return out


def _inside(t, lo, hi) -> float:
    ok = np.isfinite(lo) & np.isfinite(hi)
    return float(np.mean((t[ok] >= lo[ok]) & (t[ok] <= hi[ok]))) if ok.any() else np.nan


def seed_rows(pred: dict, ev, seed: int, w: dict, secs: float) -> list[dict]:
    _, _, ta, tc, tbt, _ = ev
    rows = []
    for name, r in pred.items():
        rows.append({"seed": seed, "model": name, "fit_seconds": round(secs, 1),
                     "weights": ";".join(f"{k}={v:.2f}" for k, v in w.items()) if name == "stack" else "",
                     "coverage_arm_ex": _inside(ta, r["lo_a"], r["hi_a"]), "coverage_arm_c": _inside(tc, r["lo_c"], r["hi_c"]),
                     "coverage_ben_ci": _inside(ta - tc, r["lo"], r["hi"]), "coverage_ben_pi": _inside(tbt, r["plo"], r["phi"]),
                     "bias_arm_ex": float(np.nanmean(r["pa"] - ta)), "bias_arm_c": float(np.nanmean(r["pc"] - tc)),
                     "bias_ben": float(np.nanmean(r["b"] - (ta - tc))),
                     "width_arm_ex": float(np.nanmean(r["hi_a"] - r["lo_a"])), "width_arm_c": float(np.nanmean(r["hi_c"] - r["lo_c"])),
                     "width_ben_ci": float(np.nanmean(r["hi"] - r["lo"])), "width_ben_pi": float(np.nanmean(r["phi"] - r["plo"])),
                     "n": int(np.isfinite(r["lo_a"]).sum())})
    return rows


def honesty(all_pred: list[dict]) -> pd.DataFrame:
    """Across training seeds, per model: is the interval as wide as the estimator's own sampling
    spread? ``sd_ratio_*``: SD over seeds of the estimate (per profile, then root-mean-square over
    profiles) / root-mean-square reported SD (arms: logit scale; benefit: CI half-width / z);
    ``coverage_mean_*``: share of (seed, profile) intervals covering the mean estimate over seeds
    (the estimator's expectation: coverage without the bias against the simulator's truth)."""
    rows = []
    for name in all_pred[0]:
        R = {k: np.stack([p[name][k] for p in all_pred]) for k in all_pred[0][name]}
        la, lc = np.log(R["pa"] / (1 - R["pa"])), np.log(R["pc"] / (1 - R["pc"]))
        se_b = (R["hi"] - R["lo"]) / (2 * Z)
        row = {"model": name, "seeds": len(all_pred)}
        for key, est, sd in (("arm_ex", la, R["sd_a"]), ("arm_c", lc, R["sd_c"]), ("ben_ci", R["b"], se_b)):
            row[f"sd_ratio_{key}"] = float(np.sqrt(np.nanmean(np.nanvar(est, axis=0, ddof=1))) / np.sqrt(np.nanmean(sd ** 2)))
        ma, mc, mb = np.nanmean(R["pa"], 0), np.nanmean(R["pc"], 0), np.nanmean(R["b"], 0)
        row["coverage_mean_arm_ex"] = float(np.nanmean((ma >= R["lo_a"]) & (ma <= R["hi_a"])))
        row["coverage_mean_arm_c"] = float(np.nanmean((mc >= R["lo_c"]) & (mc <= R["hi_c"])))
        row["coverage_mean_ben_ci"] = float(np.nanmean((mb >= R["lo"]) & (mb <= R["hi"])))
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--scenario", default=SCENARIO, help="simulator scenario (default hayden2020; e.g. strong)")
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--profiles", type=int, default=1500)
    ap.add_argument("--n-boot-linear", type=int, default=100)
    ap.add_argument("--n-boot-trees", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "binary_stack.csv"))
    a = ap.parse_args(argv)
    globals()["SCENARIO"] = a.scenario  # dataset() reads it (also in the evaluation set)
    import lbp_benefit.blas  # noqa: F401  (the CLI's BLAS pinning)
    from threadpoolctl import threadpool_limits

    warnings.simplefilter("ignore")
    rows, all_pred = [], []
    with threadpool_limits(1):
        ev = evaluation_set(a.profiles)
        for s in range(a.first_seed, a.first_seed + a.seeds):
            models, w, cfg, secs, tsim, tdf = fit_models(s, a.n_boot_linear, a.n_boot_trees)
            pred = predictions(models, ev)
            all_pred.append(pred)
            ta, tc = average_truth(ev[5], ev[0], ev[1], cfg, tsim, tdf)  # this training set's average trial
            r = seed_rows(pred, (ev[0], ev[1], ta, tc, ev[4], ev[5]), s, w, secs)
            rows += r
            pd.DataFrame(rows).to_csv(a.out, index=False)
            st = next(x for x in r if x["model"] == "stack")
            print(f"seed {s}: {st['weights']} arm CI ex {st['coverage_arm_ex']:.3f} c {st['coverage_arm_c']:.3f} "
                  f"benefit CI {st['coverage_ben_ci']:.3f} PI {st['coverage_ben_pi']:.3f} ({secs:.0f} s)", flush=True)
    df = pd.DataFrame(rows)
    summ = df.groupby("model")[[c for c in df.columns if c.startswith(("coverage_", "bias_", "width_"))]].mean()
    hon = honesty(all_pred).set_index("model")
    hon.to_csv(Path(a.out).with_name(Path(a.out).stem + "_honesty.csv"))
    pd.set_option("display.width", 250)
    print(summ.round(3).T.to_string())
    print(hon.round(3).T.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
