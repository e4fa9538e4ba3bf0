"""The product vs peers on the outside simulator (benchmarks/outside/simulate_outside.py).

Per seed: write the data; run `lbp-benefit train` on it through the command line, as a user would
(default LBP config: the data folder has no study.yaml); score every fitted participant (against
each comparator of their trial) and the new trial with `lbp-benefit score`; fit the peers on the
same rows (EconML DRLearner and CausalForestDML, CausalML X-learner, a ridge interaction model:
not project dependencies, they must be installed in the venv); score all against the truth.

Peers see what a user of those libraries would build: covariates with missing values filled by the
trial's mean (else the pooled mean) plus a missing indicator per covariate, the harmonised baselines,
the comparator class one-hot; outcome = harmonised short-term pain (the visit in 0-19.5 weeks closest
to 13), rows without it dropped; a three-arm trial's exercise arm enters once per comparator.

Metrics (short-term pain benefit, points; positive favours exercise), each with a 95% bootstrap
interval over trials (fitted) or participants (new trial):
  pehe_trial  root mean squared error vs the trial-specific truth (fitted) / the new trial's truth
  pehe_avg    the same vs the average-trial truth
  bias        mean(prediction - trial-specific truth)
  cov_ci      share of the 95% CI covering the average-trial truth
  cov_pi      share of the 95% new-setting PI covering the trial-specific truth
  unscored    rows the product refused (and why, from its error column)

    python benchmarks/outside/bench_outside.py --seeds 1 2 --out /tmp/outside --tag i23o
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import simulate_outside as so  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


# (between_sd, between_scoring) for `train` (--between): the effect-model family's opt-in within/between-trial
# interactions (training.learners.between), set as class attributes in the CLI's process (fork pools inherit them)
TRAIN_BETWEEN: tuple | None = None
# (spread, prior) for `train` (--class-spread): the class shrinkage's spread estimate and prior scale
# (training.learners.shrinkage SPREAD, PRIOR), set as module attributes in the CLI's process
TRAIN_SPREAD: tuple | None = None
TRAIN_EXTRA: list = []  # extra `train` arguments (--stack-se joint: the stack SE from the members' joint covariance, s13w)
PAIN_ONLY = False  # --pain-only: score short-term pain only (no function, recovery, nor the CLI default's all outcomes)


def cli(*args, log: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "lbp_benefit", *args]
    if args[0] == "train" and TRAIN_BETWEEN is not None:
        sd, scoring = TRAIN_BETWEEN
        cmd = [sys.executable, "-c", "from training.learners.effect_model import EffectModel as E; "
               f"E.between_sd = {float(sd)!r}; E.between_scoring = {scoring!r}; "
               "from lbp_benefit.cli import main; main()", *args]
    if args[0] == "train" and TRAIN_SPREAD is not None:
        pre = cmd[2] if cmd[1] == "-c" else "from lbp_benefit.cli import main; main()"
        cmd = [sys.executable, "-c", "from training.learners import shrinkage as S; "
               f"S.SPREAD, S.PRIOR = {TRAIN_SPREAD[0]!r}, {TRAIN_SPREAD[1]!r}; " + pre,
               *args]
    with open(log, "a") as fh:
        r = subprocess.run(cmd, env=env, stdout=fh, stderr=fh)
    if r.returncode != 0:
        raise RuntimeError(f"lbp-benefit {args[0]} failed ({r.returncode}); see {log}")
    return time.perf_counter() - t0


def harmonised_table(data: Path) -> pd.DataFrame:
    """One row per participant: covariates, baseline pain/function and short-term pain, 0-100."""
    part = pd.read_csv(data / "participants.csv", dtype={"participant": str})
    out = pd.read_csv(data / "outcomes.csv", dtype={"participant": str})
    table = {**so.PAIN_INSTR, **so.FUNC_INSTR}
    out["v"] = out["value"] * out["instrument"].map(table)
    key = ["trial", "participant"]
    for o in ("pain", "function"):
        b = out[(out.outcome == o) & (out.week == 0)][key + ["v"]].rename(columns={"v": f"baseline_{o}"})
        part = part.merge(b, on=key, how="left")
    s = out[(out.outcome == "pain") & (out.week > 0) & (out.week <= 19.5)].copy()
    s["d"] = (s.week - 13).abs() + 1e-3 * (s.week > 13)
    s = s.sort_values("d").drop_duplicates(key)[key + ["v"]].rename(columns={"v": "y_pain"})
    return part.merge(s, on=key, how="left")


def pairs(tab: pd.DataFrame) -> pd.DataFrame:
    """(participant, comparator) rows: each participant against every comparator of their trial."""
    comps = tab[tab.treatment != "exercise"].groupby("trial").treatment.unique()
    rows = []
    for c in so.CLASS_BASE_PAIN:
        trials = [t for t, cs in comps.items() if c in cs]
        sub = tab[tab.trial.isin(trials) & tab.treatment.isin(["exercise", c])].copy()
        sub["comparator"] = c
        rows.append(sub)
    return pd.concat(rows, ignore_index=True)


# outcome scored -> (truth outcome, column prefix of the benefit in the score output)
PRODUCT_OUTCOMES = {"pain": ("pain", "pain_short_benefit"), "function": ("function", "function_short_benefit"),
                    "global_recovery": ("recovery", "recovery_short_ard")}


def score_product(run: Path, rows: pd.DataFrame, work: Path, log: Path, tag: str, outcome: str | None):
    """The CLI's scores of `rows` (per comparator), for one outcome (None: all, the CLI default)."""
    cols = ["trial", "participant", *so.COVARIATES, "baseline_pain", "baseline_function"]
    res = []
    for c, sub in rows.groupby("comparator"):
        inp, outp = work / f"score_in_{tag}_{c}.csv", work / f"score_out_{tag}_{c}_{outcome or 'all'}.csv"
        sub[cols].to_csv(inp, index=False, float_format="%.10g")
        cli("score", "--model", str(run / "artifact"), "--input", str(inp), "--comparator", c,
            *(["--outcome", outcome] if outcome else []), "--output", str(outp), log=log)
        sc = pd.read_csv(outp, dtype={"participant": str})
        sc["comparator"] = c
        res.append(sc)
    return pd.concat(res, ignore_index=True)


def peer_design(tab: pd.DataFrame, ref: pd.DataFrame) -> pd.DataFrame:
    """Covariates filled by trial mean (else the training mean of `ref`) + missing indicators."""
    X = pd.DataFrame(index=tab.index)
    for c in [*so.COVARIATES, "baseline_pain", "baseline_function"]:
        v = tab[c].astype(float)
        X[c] = v.fillna(tab.groupby("trial")[c].transform("mean")).fillna(ref[c].mean())
        X[c + "_na"] = v.isna().astype(float)
    for c in so.CLASS_BASE_PAIN:
        X["cmp_" + c] = (tab["comparator"] == c).astype(float)
    return X


def fit_peers(train: pd.DataFrame, targets: dict[str, pd.DataFrame], seed: int) -> dict[str, dict]:
    """Benefit predictions (points, > 0 favours exercise) of each peer on each target frame."""
    from lightgbm import LGBMClassifier, LGBMRegressor
    from sklearn.linear_model import LogisticRegression, RidgeCV

    tr = train[train.y_pain.notna()].reset_index(drop=True)
    X = peer_design(tr, train)
    T = (tr.treatment == "exercise").astype(int).to_numpy()
    Y = tr.y_pain.to_numpy()
    W = pd.get_dummies(tr.trial, dtype=float).to_numpy()
    Xt = {k: peer_design(v, train) for k, v in targets.items()}
    lgb = dict(n_estimators=300, learning_rate=0.03, num_leaves=15, min_child_samples=30,
               subsample=0.8, subsample_freq=1, colsample_bytree=0.8, verbose=-1, n_jobs=1, random_state=seed)
    out: dict[str, dict] = {}
    times = {}

    from econml.dml import CausalForestDML
    from econml.dr import DRLearner
    t0 = time.perf_counter()
    cf = CausalForestDML(model_y=LGBMRegressor(**lgb), model_t=LogisticRegression(max_iter=2000),
                         discrete_treatment=True, n_estimators=400, min_samples_leaf=20, cv=3,
                         random_state=seed, n_jobs=1)
    cf.fit(Y, T, X=X.to_numpy(), W=W)
    out["econml_cf"] = {}
    for k, x in Xt.items():
        lo, hi = cf.effect_interval(x.to_numpy(), alpha=0.05)
        out["econml_cf"][k] = (-cf.effect(x.to_numpy()), -hi, -lo)
    times["econml_cf"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    dr = DRLearner(model_propensity=LogisticRegression(max_iter=2000), model_regression=LGBMRegressor(**lgb),
                   model_final=LGBMRegressor(**(lgb | dict(n_estimators=150, min_child_samples=60))),
                   cv=3, random_state=seed)
    dr.fit(Y, T, X=X.to_numpy(), W=W)
    out["econml_dr"] = {k: (-dr.effect(x.to_numpy()), None, None) for k, x in Xt.items()}
    times["econml_dr"] = time.perf_counter() - t0

    from causalml.inference.meta import BaseXRegressor
    t0 = time.perf_counter()
    xl = BaseXRegressor(learner=LGBMRegressor(**lgb))
    p = np.full(len(T), T.mean())
    xl.fit(X.to_numpy(), T, Y, p=p)
    out["causalml_x"] = {k: (-np.ravel(xl.predict(x.to_numpy(), p=np.full(len(x), T.mean()))), None, None)
                         for k, x in Xt.items()}
    times["causalml_x"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    Z = np.hstack([X.to_numpy(), T[:, None], T[:, None] * X.to_numpy(), W])
    mu, sd = Z.mean(0), Z.std(0) + 1e-9
    rr = RidgeCV(alphas=np.logspace(-2, 3, 20)).fit((Z - mu) / sd, Y)

    def ridge_pred(x):
        x = x.to_numpy()
        w0 = np.zeros((len(x), W.shape[1])) + W.mean(0)
        z1 = np.hstack([x, np.ones((len(x), 1)), x, w0])
        z0 = np.hstack([x, np.zeros((len(x), 1)), 0 * x, w0])
        return rr.predict((z0 - mu) / sd) - rr.predict((z1 - mu) / sd)
    out["ridge_interaction"] = {k: (ridge_pred(x), None, None) for k, x in Xt.items()}
    times["ridge_interaction"] = time.perf_counter() - t0
    return out, times


def metrics(df: pd.DataFrame, cluster: str, rng: np.random.Generator, n_boot: int = 400) -> dict:
    """df: pred, lo, hi, plo, phi, t_trial, t_avg (scored rows only)."""
    def stats(d):
        e = d.pred - d.t_trial
        r = {"pehe_trial": np.sqrt((e ** 2).mean()), "pehe_avg": np.sqrt(((d.pred - d.t_avg) ** 2).mean()),
             "bias": e.mean()}
        if d.lo.notna().all():
            r["cov_ci"] = ((d.lo <= d.t_avg) & (d.t_avg <= d.hi)).mean()
        if d.plo.notna().all():
            r["cov_pi"] = ((d.plo <= d.t_trial) & (d.t_trial <= d.phi)).mean()
        return r
    point = stats(df)
    groups = df.groupby(cluster).indices if cluster else {i: [i] for i in range(len(df))}
    keys = list(groups)
    boots = []
    for _ in range(n_boot):
        pick = rng.choice(len(keys), len(keys))
        idx = np.concatenate([groups[keys[i]] for i in pick])
        boots.append(stats(df.iloc[idx]))
    res = {}
    for k, v in point.items():
        b = np.array([x[k] for x in boots])
        res[k], res[k + "_lo"], res[k + "_hi"] = v, *np.percentile(b, [2.5, 97.5])
    return res


def one_seed(seed: int, root: Path, workers: int, peers: bool, reuse: bool):
    d = root / f"seed{seed}"
    n = so.write(d, seed)
    log = d / "cli.log"
    train_tab, new_tab = harmonised_table(d / "train"), harmonised_table(d / "new")
    fit_rows, new_rows = pairs(train_tab), pairs(new_tab)
    truth = {k: pd.read_csv(d / "truth" / f"{k}_truth.csv", dtype={"participant": str}) for k in ("train", "new")}
    rows_by = {"fitted": (fit_rows, truth["train"]), "new": (new_rows, truth["new"])}
    if reuse and (d / "run" / "artifact").exists():
        t_train = float(json.loads((d / "train_seconds.json").read_text())["seconds"])
    else:
        log.write_text("")
        t_train = cli("train", "--data", str(d / "train"), "--out", str(d / "run"), "--seed", str(seed),
                      "--workers", str(workers), *TRAIN_EXTRA, log=log)
        (d / "train_seconds.json").write_text(json.dumps({"seconds": t_train}))
    key = ["trial", "participant", "comparator"]
    outcomes = {o: v for o, v in PRODUCT_OUTCOMES.items() if not PAIN_ONLY or o == "pain"}
    preds = {o: {} for o in outcomes}
    default_unscored = {}
    for target, (rows, _) in rows_by.items():
        for outcome, (_, col) in outcomes.items():
            m = rows[key].merge(score_product(d / "run", rows, d, log, target, outcome), on=key, how="left")
            preds[outcome].setdefault("lbp_benefit", {})[target] = tuple(
                m[col + sfx].to_numpy() for sfx in ("", "_low", "_high", "_pi_low", "_pi_high")) + (
                m["error"].to_numpy() if "error" in m else None,)
        if PAIN_ONLY:
            default_unscored[target] = -1  # not scored with the CLI default (--pain-only)
            continue
        m = rows[key].merge(score_product(d / "run", rows, d, log, target, None), on=key, how="left")
        default_unscored[target] = int(m.pain_short_benefit.isna().sum())
    times = {"lbp_benefit": t_train}
    if peers:
        pp, pt = fit_peers(fit_rows, {k: v[0] for k, v in rows_by.items()}, seed)
        times.update(pt)
        for name, by in pp.items():
            preds["pain"][name] = {k: (p, lo, hi, None, None, None) for k, (p, lo, hi) in by.items()}
    rng = np.random.default_rng(seed)
    recs = []
    for outcome, (t_name, _) in outcomes.items():
        for target, (rows, tr) in rows_by.items():
            tt = tr[tr.outcome == t_name].assign(kind=lambda t: "t_" + t.kind) \
                .pivot_table(index=key, columns="kind", values="truth").reset_index()
            base = rows[key].merge(tt, on=key, how="left")
            # the oracle average-effect model: true class means of the training truth
            tr0 = truth["train"]
            cm = tr0[(tr0.outcome == t_name) & (tr0.kind == "trial")].groupby("comparator").truth.mean()
            preds[outcome].setdefault("oracle_class_mean", {})[target] = (base.comparator.map(cm).to_numpy(),)
            for name, by in preds[outcome].items():
                p, lo, hi, plo, phi, err = (list(by[target]) + [None] * 6)[:6]
                df = base.assign(pred=p, lo=lo, hi=hi, plo=plo, phi=phi)
                df.assign(learner=name).to_csv(d / f"preds_{outcome}_{target}_{name}.csv", index=False,
                                               float_format="%.5g")     # per row, for paired comparisons
                r = metrics(df[df.pred.notna()], "trial" if target == "fitted" else None, rng)
                reasons = ""
                if err is not None:
                    e = pd.Series(err)[df.pred.isna().to_numpy()]
                    reasons = "; ".join(f"{k[:90]} x{v}" for k, v in e.fillna("no error text").value_counts().items())
                recs.append({"seed": seed, "outcome": outcome, "target": target, "learner": name,
                             "n_rows": len(df), "unscored": int(df.pred.isna().sum()),
                             "unscored_all_outcomes": default_unscored[target] if name == "lbp_benefit" else 0,
                             "unscored_reasons": reasons, "seconds": times.get(name, np.nan), **r})
    return recs, n


def paired_ratios(root: Path, seeds: list[int], n_boot: int = 400) -> pd.DataFrame:
    """Root PEHE of the product / each peer on the same rows (pain), with a paired bootstrap
    interval (trials resampled for fitted participants, participants for the new trial)."""
    out = []
    for seed in seeds:
        d = root / f"seed{seed}"
        rng = np.random.default_rng(seed)
        for target in ("fitted", "new"):
            ours = pd.read_csv(d / f"preds_pain_{target}_lbp_benefit.csv")
            for f in sorted(d.glob(f"preds_pain_{target}_*.csv")):
                peer = pd.read_csv(f)
                name = peer.learner.iloc[0]
                if name == "lbp_benefit":
                    continue
                ok = ours.pred.notna().to_numpy() & peer.pred.notna().to_numpy()
                e1 = (ours.pred - ours.t_trial).to_numpy()[ok] ** 2
                e2 = (peer.pred - peer.t_trial).to_numpy()[ok] ** 2
                cl = ours.trial.to_numpy()[ok] if target == "fitted" else np.arange(ok.sum())
                keys, inv = np.unique(cl, return_inverse=True)
                s1, s2 = np.bincount(inv, e1), np.bincount(inv, e2)
                b = rng.integers(0, len(keys), (n_boot, len(keys)))
                boot = np.sqrt(s1[b].sum(1) / s2[b].sum(1))
                out.append({"seed": seed, "target": target, "peer": name, "rows": int(ok.sum()),
                            "ratio": np.sqrt(e1.sum() / e2.sum()), "lo": np.percentile(boot, 2.5),
                            "hi": np.percentile(boot, 97.5)})
    return pd.DataFrame(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=Path("/tmp/outside"))
    ap.add_argument("--tag", default="i23o")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="reuse a seed's trained run folder under --out")
    ap.add_argument("--between", nargs=2, metavar=("SD_RATIO", "SCORING"), default=None,
                    help="train with the effect-model family's within/between-trial interactions "
                         "(training.learners.between): prior SD ratio and scoring (average|reliability|own)")
    ap.add_argument("--stack-se", choices=["sum", "joint"], default=None,
                    help="train --stack-se: a stack's SE from its members' SEs added (sum) or their joint covariance "
                         "(joint; training.learners.member_corr); default: train's default")
    ap.add_argument("--pain-only", action="store_true",
                    help="score short-term pain only (function, recovery and the CLI default's unscored count skipped)")
    ap.add_argument("--class-spread", nargs=2, metavar=("SPREAD", "PRIOR"), default=None,
                    help="train with the class shrinkage's spread estimate (dl|posterior|integrated) and half-normal "
                         "prior scale (tau|outcome) (training.learners.shrinkage; s13k)")
    a = ap.parse_args(argv)
    global TRAIN_BETWEEN, PAIN_ONLY, TRAIN_SPREAD
    if a.class_spread:
        TRAIN_SPREAD = tuple(a.class_spread)
    PAIN_ONLY = a.pain_only
    if a.stack_se:
        TRAIN_EXTRA[:] = ["--stack-se", a.stack_se]
    if a.between:
        TRAIN_BETWEEN = (float(a.between[0]), a.between[1])
    recs = []
    for s in a.seeds:
        r, n = one_seed(s, a.out, a.workers, not a.no_peers, a.reuse)
        print(f"seed {s}: {n}", flush=True)
        recs += r
        df = pd.DataFrame(recs)
        RESULTS.mkdir(parents=True, exist_ok=True)
        df.to_csv(RESULTS / f"outside_{a.tag}.csv", index=False, float_format="%.4f")
        if not a.no_peers:
            pr = paired_ratios(a.out, a.seeds[:a.seeds.index(s) + 1])
            pr.to_csv(RESULTS / f"outside_{a.tag}_ratios.csv", index=False, float_format="%.4f")
            print(pr.to_string(float_format="%.3f"), flush=True)
        print(df[["seed", "outcome", "target", "learner", "unscored", "unscored_all_outcomes", "pehe_trial", "pehe_avg", "bias", "cov_ci", "cov_pi",
                  "seconds"]].to_string(float_format="%.3f"), flush=True)


if __name__ == "__main__":
    main()
