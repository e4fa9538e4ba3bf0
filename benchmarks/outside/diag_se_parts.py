"""Where does the served SE of a benefit come from, and how large is it against the actual error? (s12i, issue 23)

On the outside simulator's data (``simulate_outside.py``; a model trained and scored by ``bench_outside.py``,
whose per-row files ``preds_<outcome>_<target>_lbp_benefit.csv`` carry the served CI/PI and the truths), the
deployed model of one continuous outcome (short term) is taken apart per participant x comparator:

  se_served   the served CI's half-width / z (what ``score`` returned; clipping ignored)
  se_est      the estimation SE (``predict.uncertainty.estimation_se``: delta method on the bootstrap
              covariance for linear learners, the variance model for trees, a stack's weighted member SEs
              with the between-member variance under the root)
  within      a stack's member SEs combined (weighted sum; with ``interval.member_corr`` sqrt(s' R s));
              ``between``: its between-member variance
  var_m       the missing-input variance (the draws' variance of the benefit)
  widen       served half-width / unwidened half-width (the support widening, ``predict.support``)
  tau         the new-setting tau of the comparator class

For every linear member (effect model family) the training fit is redone on the same rows with the same
settings (``training.train.make_learner``, the run's seed; theta checked equal to the artifact's), twice
more with parts switched off, to split its coefficient covariance V = T (V_boot + V_shrink) T' + E into:

  se_boot     V from the trial-cluster bootstrap alone (shrinkage_bias off; class shrinkage still on)
  se_full     the artifact's V (bootstrap + the ridge shrinkage-bias covariance, Nychka 1988)

For the X/DR members the allowance's reference (``training.learners.missing_allowance.reference_variance``,
refitted on the same rows) is evaluated at the scored rows: ``vref`` (its expected draw variance), ``coef``
(the coefficient term tr(S V) inside it) and ``allow`` = max(0, vref - the member's own draw variance); the
member's bootstrap part is then about se^2 - allow (its variance model was fitted to bootstrap + allowance).

The error e = prediction - average-trial truth (the CI's estimand). Outputs (benchmarks/results/):
``se_parts_<outcome>_<tag>.csv``: by comparator class and by the number of missing covariates, root mean e^2,
root mean of each variance part, coverage of the served CI/PI and of what-ifs with the same points (the X/DR
SE without the coefficient term, the stack without its between-member variance, neither);
``..._members.csv``: each member as a learner on its own (error, own SE, own coverage, error correlations);
``..._trials.csv``: per training trial x class, the trial's own ANCOVA estimate against its own truth (z).
Per-row parts go to ``<root>/se_parts_<outcome>_<tag>_rows.csv``. Self-checks: every refit reproduces the
artifact's theta (1e-6) and the stack's SE recomposes from its parts (1e-9).

    python benchmarks/outside/diag_se_parts.py --root /tmp/outside --seeds 1 2 --outcome pain --tag s12i
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
import simulate_outside as so  # noqa: E402

Z = 1.959963984540054


def load_cfg(d: Path):
    from training.config import resolve_config

    return resolve_config(d / "train", None)


def refits(d: Path, outcome: str, seed: int, names: list) -> dict:
    """{member kind: {variant: fitted learner}} on the run's training rows of ``outcome`` (short)."""
    from training.dataset import load_dataset
    from training.harmonise import harmonise
    from training.learners.base import task_frame
    from training.train import make_learner

    ds = load_dataset(d / "train")
    h = harmonise(ds)
    cfg = ds.config
    df = task_frame(h.analysis, outcome, "short")
    feats = make_learner("effect_model", "continuous", cfg, seed).features["names"]
    X = df[["trial", "treatment"] + [c for c in feats if c in df.columns]].copy()
    y = df["value"].to_numpy(float)
    out = {"__xy__": (X, y)}
    for n in names:
        out[n] = {}
        for variant, sb in (("full", True), ("boot", False)):
            lr = make_learner(n, "continuous", cfg, seed)
            lr.shrinkage_bias = sb
            out[n][variant] = lr.fit(X, y)
    return out


def parts(seed: int, root: Path, outcome: str, target: str, do_refit: bool) -> pd.DataFrame:
    from predict.evaluate import benefit_only, linear_spread
    from predict.impute import impute_mean
    from predict import model_format as mf
    from predict.artifact import load_artifact
    from predict.learner_model import LinearLearner, StackedLearner, build
    from predict.scorer import Scorer
    from predict.uncertainty import between_variance, delta_se, estimation_se, missing_variance_fast, stack_within_se

    d = root / f"seed{seed}"
    pr = pd.read_csv(d / f"preds_{outcome}_{target}_lbp_benefit.csv", dtype={"participant": str})
    tab = bo.harmonised_table(d / ("train" if target == "fitted" else "new"))
    rows = bo.pairs(tab)
    key = ["trial", "participant", "comparator"]
    rows = pr.merge(rows, on=key, how="left")
    rows = rows[rows.pred.notna()].reset_index(drop=True)
    art = d / "run" / "artifact"
    sc = Scorer.load(art, compiled=False)  # for its input validation (the feature matrix as scored)
    vm = mf.verify(load_artifact(art, supported=mf.READABLE_VERSIONS, required=("card.md", "card.json")))
    L = build(next(vt.export for vt in vm.tasks if vt.entry.task == f"{outcome}__short"))
    cols = [*so.COVARIATES, "baseline_pain", "baseline_function"]
    F, _ = sc.validate(rows[cols], required=set())
    Fimp = impute_mean(L.imputer, F)
    w, members = L.stack
    names = list(L.names) if isinstance(L, StackedLearner) else [L.kind]
    lin_names = [n for n, m in zip(names, members) if isinstance(m, LinearLearner) and m.interval.method == "delta"
                 and n.startswith("effect")]
    tree_names = [n for n in names if n in ("x_learner", "dr_learner")]
    fits = refits(d, outcome, seed, lin_names) if do_refit else {}
    ref = None
    if do_refit and tree_names:  # the X/DR missing-input allowance's reference at the scored rows
        from training.learners.missing_allowance import reference_variance
        from training.train import make_learner

        X, y = fits["__xy__"]
        lr = make_learner(tree_names[0], "continuous", load_cfg(d), seed)
        ref = reference_variance(lr, X, y, F, list(L.comparators))
    out = []
    for c, idx in rows.groupby("comparator").indices.items():
        if c not in L.comparators:
            continue
        Fc, Fic = F[idx], Fimp[idx]
        r = rows.iloc[idx]
        rec = pd.DataFrame({"seed": seed, "target": target, "trial": r.trial.to_numpy(), "comparator": c,
                            "pred": r.pred.to_numpy(), "t_avg": r.t_avg.to_numpy(), "t_trial": r.t_trial.to_numpy(),
                            "se_served": ((r.hi - r.lo) / (2 * Z)).to_numpy(),
                            "pi_served": ((r.phi - r.plo) / (2 * Z)).to_numpy(),
                            "n_missing_cov": np.isnan(Fc[:, :len(so.COVARIATES)]).sum(1)})
        rec["se_est"] = estimation_se(L, Fc, Fic, [c])[c]
        rec["var_m"] = missing_variance_fast(L, Fc, c)
        rec["tau"] = L.interval.tau_of(c)
        mses = [estimation_se(m, Fc, Fic, [c])[c] for m in members]
        R = (L.interval.member_corr or {}).get(c) if L.interval is not None else None  # interval.member_corr (s13w)
        rec["within"] = stack_within_se(w, mses, R)
        rec["between"] = between_variance(L, Fc, Fic, [c])[c] if len(members) > 1 else 0.0
        for n, m, s in zip(names, members, mses):
            rec[f"se_{n}"] = s
            rec[f"b_{n}"] = benefit_only(m, Fc, Fic, c)
            rec[f"vm_{n}"] = missing_variance_fast(m, Fc, c)
            if n in tree_names and ref is not None:
                rec[f"vref_{n}"] = ref[c][idx]
                rec[f"coef_{n}"] = np.broadcast_to(ref["__coef__"], (F.shape[0],))[idx]
                rec[f"allow_{n}"] = np.clip(ref[c][idx] - rec[f"vm_{n}"], 0.0, None)
            if n in fits:
                th_art = np.asarray(m.linear.theta)
                th_new = np.asarray(fits[n]["full"].export_["linear"]["theta"])
                if th_art.shape != th_new.shape or np.max(np.abs(th_art - th_new)) > 1e-6:
                    raise RuntimeError(f"seed {seed}: refit of {n} differs from the artifact (max |d theta| "
                                       f"{np.max(np.abs(th_art - th_new)) if th_art.shape == th_new.shape else 'shape'})")
                sp = linear_spread(m, Fc)
                for v in ("full", "boot"):
                    V = np.asarray(fits[n][v].export_["interval"]["theta_cov"])
                    rec[f"se_{n}_{v}"] = delta_se(m.linear, list(m.comparators), Fic, V, c, None, sp)
        # what-ifs (same points): the X/DR members' SE without the coefficient term tr(S V) of their
        # missing-input allowance's reference; the stack without its between-member variance; both
        mses_nc = list(mses)
        for n, m in zip(names, members):
            if f"allow_{n}" in rec:
                no_coef = np.clip(rec[f"vref_{n}"] - rec[f"coef_{n}"] - rec[f"vm_{n}"], 0.0, None)
                mses_nc[names.index(n)] = np.sqrt(np.clip(rec[f"se_{n}"] ** 2 - rec[f"allow_{n}"], 0.0, None) + no_coef)
        wnc = stack_within_se(w, mses_nc, R)
        for tag, wi, bt in (("no_coef", wnc, True), ("no_between", rec.within, False), ("neither", wnc, False)):
            rec[f"se_{tag}"] = np.sqrt(wi ** 2 + (rec.between if bt else 0.0) + rec.var_m)  # x widen below
        recomposed = np.sqrt(rec.within ** 2 + rec.between)
        if np.max(np.abs(recomposed - rec.se_est)) > 1e-9:
            raise RuntimeError("the stack's SE is not (sqrt(s'R s))^2 + between under the root: the rule changed")
        half = np.sqrt(rec.se_est ** 2 + rec.var_m)
        rec["widen"] = rec.se_served / half
        for tag in ("no_coef", "no_between", "neither"):
            rec[f"se_{tag}"] = rec[f"se_{tag}"] * rec.widen
        if all(f"se_{n}_full" in rec for n in lin_names) and lin_names:
            # the served SE with the linear members' shrinkage-bias parts removed (member SEs add linearly)
            within = stack_within_se(w, [rec[f"se_{n}_boot"] if n in lin_names else s for n, s in zip(names, mses)], R)
            est = np.sqrt(within ** 2 + rec.between)
            rec["se_noshrinkbias"] = rec.widen * np.sqrt(est ** 2 + rec.var_m)
        out.append(rec)
    return pd.concat(out, ignore_index=True), names


def summary(df: pd.DataFrame, names: list) -> pd.DataFrame:
    e = df.pred - df.t_avg
    df = df.assign(e2=e ** 2, bins=pd.cut(df.n_missing_cov, [-1, 3, 7, 11, 15], labels=["0-3", "4-7", "8-11", "12-15"]))
    rows = []
    for by in ("comparator", "bins", None):
        groups = df.groupby(by, observed=True) if by else [("all", df)]
        for k, g in groups:
            ee = np.sqrt(g.e2)
            rec = {"seed": int(g.seed.iloc[0]), "target": g.target.iloc[0], "by": by or "all", "group": str(k),
                   "n": len(g), "bias": float((g.pred - g.t_avg).mean()), "rmse_avg": float(np.sqrt(g.e2.mean())),
                   "se_served": float(np.sqrt((g.se_served ** 2).mean())),
                   "se_est": float(np.sqrt((g.se_est ** 2).mean())), "sd_m": float(np.sqrt(g.var_m.mean())),
                   "within": float(np.sqrt((g.within ** 2).mean())), "sd_between": float(np.sqrt(np.mean(g.between))),
                   "widen_mean": float(g.widen.mean()), "cov_served": float((ee <= Z * g.se_served).mean()),
                   "cov_pi_served": float((np.abs(g.pred - g.t_trial) <= Z * g.pi_served).mean())}
            for n in names:
                if f"se_{n}_full" in g:
                    sf, sb = g[f"se_{n}_full"], g[f"se_{n}_boot"]
                    rec[f"{n}_se_full"] = float(np.sqrt((sf ** 2).mean()))
                    rec[f"{n}_se_boot"] = float(np.sqrt((sb ** 2).mean()))
            if "se_noshrinkbias" in g:
                rec["se_noshrinkbias"] = float(np.sqrt((g.se_noshrinkbias ** 2).mean()))
                rec["cov_noshrinkbias"] = float((ee <= Z * g.se_noshrinkbias).mean())
                rec["cov_pi_noshrinkbias"] = float(
                    (np.abs(g.pred - g.t_trial) <= Z * np.sqrt(g.se_noshrinkbias ** 2 + g.widen ** 2 * g.tau ** 2)).mean())
            rec["cov_no_missing_part"] = float((ee <= Z * g.widen * g.se_est).mean())
            et = np.abs(g.pred - g.t_trial)
            for tag in ("no_coef", "no_between", "neither"):
                se = g[f"se_{tag}"]
                rec[f"se_{tag}"] = float(np.sqrt((se ** 2).mean()))
                rec[f"cov_{tag}"] = float((ee <= Z * se).mean())
                rec[f"cov_pi_{tag}"] = float((et <= Z * np.sqrt(se ** 2 + (g.widen * g.tau) ** 2)).mean())
            rows.append(rec)
    return pd.DataFrame(rows)


def trial_check(root: Path, seed: int, outcome: str) -> pd.DataFrame:
    """Per training trial x comparator class: the trial's own ANCOVA estimate of the benefit (short-term
    outcome on arm + both baselines, the visit in 0-19.5 weeks closest to 13, as bench_outside picks pain),
    its SE, the trial's mean trial-specific truth over the same participants, and z = (estimate - truth) / SE:
    whether the trials of a class happen to show an effect away from their own truth (chance)."""
    d = root / f"seed{seed}"
    tab = bo.harmonised_table(d / "train")
    out = pd.read_csv(d / "train" / "outcomes.csv", dtype={"participant": str})
    out["v"] = out["value"] * out["instrument"].map({**so.PAIN_INSTR, **so.FUNC_INSTR})
    key = ["trial", "participant"]
    s = out[(out.outcome == outcome) & (out.week > 0) & (out.week <= 19.5)].copy()
    s["d"] = (s.week - 13).abs() + 1e-3 * (s.week > 13)
    s = s.sort_values("d").drop_duplicates(key)[key + ["v"]].rename(columns={"v": "y"})
    tab = tab.merge(s, on=key, how="left")
    tr = pd.read_csv(d / "truth" / "train_truth.csv", dtype={"participant": str})
    tr = tr[(tr.outcome == outcome) & (tr.kind == "trial")]
    rows = []
    for (t, c), g in bo.pairs(tab).groupby(["trial", "comparator"]):
        g = g.dropna(subset=["y", "baseline_pain", f"baseline_{outcome}"])
        if (g.treatment == "exercise").sum() < 2 or (g.treatment == c).sum() < 2:
            continue
        bases = [g.baseline_pain] + ([g[f"baseline_{outcome}"]] if outcome != "pain" else [])
        Xd = np.column_stack([np.ones(len(g)), (g.treatment == c).astype(float), *bases])
        beta, *_ = np.linalg.lstsq(Xd, g.y.to_numpy(float), rcond=None)
        r = g.y.to_numpy(float) - Xd @ beta
        cov = np.linalg.inv(Xd.T @ Xd) * (r @ r) / max(len(g) - Xd.shape[1], 1)
        truth = g[key].assign(comparator=c).merge(tr, on=key + ["comparator"], how="left").truth.mean()
        rows.append({"seed": seed, "outcome": outcome, "trial": t, "comparator": c, "n": len(g), "estimate": beta[1],
                     "se": float(np.sqrt(cov[1, 1])), "truth": truth, "z": (beta[1] - truth) / np.sqrt(cov[1, 1])})
    return pd.DataFrame(rows)


def member_summary(df: pd.DataFrame, names: list) -> pd.DataFrame:
    """Per member (as a learner on its own): root mean squared error vs the average-trial truth, its own
    SE (estimation and missing inputs, unwidened), the coverage of its own 95% CI, and the correlation
    of its errors with each other member's (over rows)."""
    rows = []
    for t, g in df.groupby("target"):
        err = {n: (g[f"b_{n}"] - g.t_avg).to_numpy() for n in names}
        for n in names:
            se = np.sqrt(g[f"se_{n}"] ** 2 + g[f"vm_{n}"])
            rec = {"seed": int(g.seed.iloc[0]), "target": t, "member": n, "n": len(g),
                   "bias": float(err[n].mean()), "rmse_avg": float(np.sqrt((err[n] ** 2).mean())),
                   "se_est": float(np.sqrt((g[f"se_{n}"] ** 2).mean())), "sd_m": float(np.sqrt(g[f"vm_{n}"].mean())),
                   "se_own": float(np.sqrt((se ** 2).mean())), "cov_own": float((np.abs(err[n]) <= Z * se).mean())}
            if f"allow_{n}" in g:  # X/DR: its SE^2 = bootstrap variance (varmodel) + allowance, approximately
                allow, coef = g[f"allow_{n}"], g[f"coef_{n}"]
                no_coef = np.clip(g[f"vref_{n}"] - coef - g[f"vm_{n}"], 0.0, None)
                boot = np.clip(g[f"se_{n}"] ** 2 - allow, 0.0, None)
                rec.update({"sd_allow": float(np.sqrt(allow.mean())), "sd_coef": float(np.sqrt(coef.mean())),
                            "sd_boot_approx": float(np.sqrt(boot.mean())),
                            "cov_own_no_coef": float((np.abs(err[n]) <= Z * np.sqrt(boot + no_coef + g[f"vm_{n}"])).mean()),
                            "cov_own_no_allow": float((np.abs(err[n]) <= Z * np.sqrt(boot + g[f"vm_{n}"])).mean())})
            for k in names:
                rec[f"corr_err_{k}"] = float(np.corrcoef(err[n], err[k])[0, 1])
            rows.append(rec)
    return pd.DataFrame(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--outcome", default="pain")
    ap.add_argument("--targets", nargs="+", default=["fitted", "new"])
    ap.add_argument("--tag", default="s12i")
    ap.add_argument("--no-refit", action="store_true")
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    allrows, summ, memb = [], [], []
    for s in a.seeds:
        for t in a.targets:
            df, names = parts(s, a.root, a.outcome, t, not a.no_refit)
            print(f"seed {s} {t}: deployed {names}", flush=True)
            allrows.append(df)
            summ.append(summary(df, names))
            memb.append(member_summary(df, names))
    res = bo.RESULTS
    res.mkdir(parents=True, exist_ok=True)
    pd.concat(allrows).to_csv(a.root / f"se_parts_{a.outcome}_{a.tag}_rows.csv", index=False, float_format="%.5g")
    S = pd.concat(summ, ignore_index=True)
    S.to_csv(res / f"se_parts_{a.outcome}_{a.tag}.csv", index=False, float_format="%.4f")
    Mb = pd.concat(memb, ignore_index=True)
    T = pd.concat([trial_check(a.root, s, a.outcome) for s in a.seeds], ignore_index=True)
    T.to_csv(res / f"se_parts_{a.outcome}_{a.tag}_trials.csv", index=False, float_format="%.4f")
    print(T.groupby(["seed", "comparator"]).agg(trials=("z", "size"), mean_z=("z", "mean"),
                                                 sum_z_over_root_k=("z", lambda z: z.sum() / np.sqrt(len(z)))).to_string(float_format="%.2f"))
    Mb.to_csv(res / f"se_parts_{a.outcome}_{a.tag}_members.csv", index=False, float_format="%.4f")
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(S.to_string(float_format="%.3f"))
        print(Mb.to_string(float_format="%.3f"))


if __name__ == "__main__":
    main()
