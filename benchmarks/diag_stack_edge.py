"""Can the training data see a stack's shared extrapolation error? Held-out evidence per member (issue 23).

On a shifted new trial (``bench_learners.py`` scenario ``TRAIN>NEW``, e.g. ``hayden2020>edge_trial_h``) a
stack dominated by tree learners can over-predict the benefit together with all its tree members, which
its interval (members' SEs + their disagreement, ``training.learners.stacking``) cannot see. This script
asks whether any signal available at training time would have warned, using the same held-out predictions
as ``bench_learners.py`` (5 trial-grouped folds, ``run_iecv``, members without intervals) for seed s:

1. **R-loss by support band**: each member's held-out R-loss gain over the average-effect model (the
   stacking criterion, ``training.learners.stacking``) over all held-out participants and over the 20% / 10%
   furthest from the pooled covariate centre (squared Mahalanobis distance over the numeric covariates,
   missing = at the mean), with the convex stack weights refitted on each band.
2. **Transport across held-out trials**: per held-out trial with a comparator, calibration-in-the-large of
   the benefit (the trial's difference in mean oriented outcome, active minus comparator, minus the mean
   predicted benefit), pooled by DerSimonian-Laird: mean and between-trial SD (the IECV transportability
   measure of Riley et al. 2016, BMJ 353:i3140).
3. **Uncertainty of the stack weights**: a trial-cluster bootstrap (``--boot`` resamples of the held-out
   trials) of the convex weights; with ``--dump DIR`` (``bench_learners.py --dump-new DIR`` of the same
   scenario and seed) the new trial's PI coverage of the selected stack before / after adding
   ``b' Cov(w) b`` (times the support widening squared) to its variance, inside / beyond the support cut.

4. **Two point candidates, offline on the dumped new trial** (with ``--dump``): the one-SE move of the
   weights towards the effect model (``training.learners.stack_gate.shrink_to_primary``: ``one_se_lambda``,
   ``stack_1se_shrunk``) and (c) moving the tree members' weight, by ``1 - 1/factor`` beyond the support
   cut, to the stack's bounded-extrapolation members (``stack_tree_blend``; its PI = the dumped PI moved
   with the point, an approximation).

The stack analysed is the convex stack of the held-out predictions, *before* the heterogeneity gate: where
the gate deployed the effect model instead (``bench_learners.py``'s ``weights`` column) the stack rows are
hypothetical, while the ``selected:dumped`` coverage is the deployed model's. Checked against
``bench_learners.py`` on hayden2020 > edge_trial_h seed 6: ``pehe_new_all``/``bias_new_all`` of the stack
and ``pi_new_*`` of ``selected:dumped`` equal the bench's ``pehe_new``/``bias_new``/``coverage_pi_new*``.

Output: one CSV row per (scenario, seed, analysis, learner). Usage::

    python benchmarks/diag_stack_edge.py --scenario 'hayden2020>edge_trial_h' --seeds 6 4 \\
        [--dump DIR] --out benchmarks/results/stack_edge_i23w.csv
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_learners import OURS, load_task, make_member  # noqa: E402
from training.iecv import run_iecv  # noqa: E402
from training.learners.folds import trial_folds  # noqa: E402
from training.learners.stack_gate import shrink_to_primary  # noqa: E402
from training.learners.stacking import r_loss_parts, stack_weights  # noqa: E402
from training.orientation import higher_is_better, orient  # noqa: E402
from training.train import learners_for  # noqa: E402

Z95 = 1.959963984540054


def cv_predictions(scenario: str, seed: int):
    """Held-out benefit predictions of the default members, exactly as ``bench_learners.one`` makes them."""
    df, _, cfg, _ = load_task(scenario, seed, "pain", "short")
    members = tuple(learners_for(OURS, "continuous", default=True))
    feats = [c for c in (cfg.covariates.names + [f"baseline_{o}" for o in cfg.outcomes]) if c in df.columns]
    X = df[["trial", "treatment"] + feats]
    y = df["value"].to_numpy(float)
    cls, trial = df["treatment"].astype(str).to_numpy(), df["trial"].astype(str).to_numpy()
    ok = np.array([len(set(cls[trial == t]) - {cfg.active}) > 0 and (cls[trial == t] == cfg.active).any() for t in trial])
    tcodes = pd.factorize(df["trial"])[0]
    has = np.array([ok[tcodes == k].any() for k in range(tcodes.max() + 1)])
    labels = pd.factorize(df["trial"])[1]
    folds = [[labels[k] for k in f] for f in trial_folds(tcodes, has, 5, seed)]
    factories = {n: (lambda n=n: make_member(n, "continuous", cfg, seed, n_boot=0)) for n in members}
    cv = run_iecv(X.assign(_y=y), "_y", factories, "continuous", cfg.active, metrics=False, groups=folds, workers=1)
    num = [c for c in cfg.covariates.names if c in df.columns and pd.api.types.is_numeric_dtype(df[c])]
    return cv.predictions, df[num].to_numpy(float)


def distance2(F: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance from the pooled mean (missing inputs at the mean)."""
    mu = np.nanmean(F, axis=0)
    C = np.where(np.isnan(F), 0.0, F - mu)
    return np.einsum("ij,jk,ik->i", C, np.linalg.pinv(np.cov(C.T)), C)


def dersimonian_laird(r: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """(pooled mean, between-trial SD) of estimates r with variances v."""
    w = 1.0 / v
    mu = float(np.sum(w * r) / np.sum(w))
    q = float(np.sum(w * (r - mu) ** 2))
    t2 = max(0.0, (q - (r.size - 1)) / (w.sum() - np.sum(w ** 2) / w.sum()))
    w2 = 1.0 / (v + t2)
    return float(np.sum(w2 * r) / np.sum(w2)), float(np.sqrt(t2))


def analyse(scenario: str, seed: int, n_boot: int, dump: str | None) -> list[dict]:
    train = scenario.split(">")[0]
    pred, F = cv_predictions(train, seed)
    wide = pred.pivot_table(index="row", columns="learner", values="benefit", aggfunc="first")
    info = pred.drop_duplicates("row").set_index("row").loc[wide.index]
    names, B = list(wide.columns), wide.to_numpy(float)
    g = orient(info["y"].to_numpy(float), higher_is_better("continuous"))
    tr, t, e = info["trial"].astype(str).to_numpy(), info["treat"].to_numpy(float), info["e"].to_numpy(float)
    gt, tt, ok = r_loss_parts(g, t, tr, e)
    ok &= np.isfinite(B).all(axis=1)
    w0 = stack_weights(B[ok], g[ok], t[ok], tr[ok], e[ok])
    names_s = names + ["stack"]
    Bs = np.column_stack([B, B @ w0])
    d2 = distance2(F)[wide.index.to_numpy()]
    rows = []
    base = dict(scenario=scenario, seed=seed)
    for band, q in (("all", 0.0), ("far20", 0.8), ("far10", 0.9)):
        m = ok & (d2 >= np.quantile(d2[ok], q))
        loss = {n: float(np.mean((gt[m] - tt[m] * Bs[m, i]) ** 2)) for i, n in enumerate(names_s)}
        wb = dict(zip(names, stack_weights(B[m], g[m], t[m], tr[m], e[m])))
        for n in names_s:
            rows.append({**base, "analysis": f"rloss_gain_{band}", "learner": n, "value": loss["constant"] - loss[n],
                         "weight": wb.get(n, np.nan), "n": int(m.sum())})
    # transport: calibration-in-the-large of the benefit per held-out trial
    per = []
    for h in np.unique(tr[ok]):
        m = ok & (tr == h)
        a, c = g[m & (t == 1)], g[m & (t == 0)]
        if a.size < 2 or c.size < 2:
            continue
        per.append((a.mean() - c.mean(), a.var(ddof=1) / a.size + c.var(ddof=1) / c.size, Bs[m].mean(axis=0)))
    obs, var = np.array([p[0] for p in per]), np.array([p[1] for p in per])
    P = np.array([p[2] for p in per])
    for i, n in enumerate(names_s):
        mu, tau = dersimonian_laird(obs - P[:, i], var)
        rows += [{**base, "analysis": "citl_mean", "learner": n, "value": mu, "n": len(per)},
                 {**base, "analysis": "citl_tau", "learner": n, "value": tau, "n": len(per)}]
    # the stack weights' uncertainty: trial-cluster bootstrap
    ut = np.unique(tr[ok])
    rng = np.random.default_rng(seed)
    W = []
    for _ in range(n_boot):
        pick = rng.integers(0, ut.size, ut.size)
        idx = np.concatenate([np.flatnonzero(ok & (tr == ut[k])) for k in pick])
        lab = np.concatenate([np.full((ok & (tr == ut[k])).sum(), f"{j}") for j, k in enumerate(pick)])
        W.append(stack_weights(B[idx], g[idx], t[idx], lab, e[idx]))
    W = np.array(W)
    for i, n in enumerate(names):
        rows += [{**base, "analysis": "weight", "learner": n, "value": float(w0[i])},
                 {**base, "analysis": "weight_boot_mean", "learner": n, "value": float(W[:, i].mean())},
                 {**base, "analysis": "weight_boot_sd", "learner": n, "value": float(W[:, i].std(ddof=1))}]
    # the one-SE move towards the primary (effect) model (training.learners.stack_gate.shrink_to_primary)
    lam = shrink_to_primary(pred, {n: float(v) for n, v in zip(names, w0) if v > 0}, "continuous", PRIMARY)[1]["lambda"]
    rows.append({**base, "analysis": "one_se_lambda", "learner": "stack", "value": lam})
    if dump:
        rows += weight_variance_coverage(base, Path(dump), scenario, seed, names, np.cov(W.T))
        rows += shrink_new_trial(base, Path(dump), scenario, seed, names, w0, lam)
        rows += tree_blend_new_trial(base, Path(dump), scenario, seed, names, w0)
    return rows


TREES = ("t_learner", "x_learner", "dr_learner")  # piecewise-constant: flat beyond the data


def tree_blend(M: np.ndarray, names: list, w0: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Candidate (c): beyond the support cut the tree members' weight moves, by lambda = 1 - 1/factor, to
    the stack's bounded-extrapolation members in proportion to their weights (to the primary model if
    the stack has none). ``M``: members' benefits (patients x members)."""
    tree = np.array([n in TREES for n in names])
    wt, wb = np.where(tree, w0, 0.0), np.where(tree, 0.0, w0)
    if wb.sum() <= 0:
        wb = np.zeros_like(w0)
        wb[names.index(PRIMARY)] = 1.0
    lam = 1.0 - 1.0 / np.maximum(factor, 1.0)
    return M @ w0 + lam * (wt.sum() * (M @ (wb / wb.sum())) - M @ wt)


def tree_blend_new_trial(base, dump, scenario, seed, names, w0) -> list[dict]:
    """New-trial root PEHE / bias (mixed benefit) and PI coverage (the dumped PI moved with the point,
    same half-width: an approximation) of candidate (c) vs the stack as dumped, all / beyond the cut."""
    d = pd.read_csv(dump / f"new_{scenario.replace('>', '-')}_seed{seed}.csv.gz")
    d = d[d["ok"]]
    fac = d["selected:support_factor"].to_numpy()
    far = fac > 1
    M = d[names].to_numpy(float)
    truth = d["truth_mix"].to_numpy()
    rows = []
    for lab, b in (("stack", M @ w0), ("stack_tree_blend", tree_blend(M, names, w0, fac))):
        err = b - truth
        for band, sel in (("all", np.ones_like(far)), ("beyond", far)):
            if sel.any():
                rows += [{**base, "analysis": f"pehe_new_{band}", "learner": lab, "value": float(np.sqrt(np.mean(err[sel] ** 2)))},
                         {**base, "analysis": f"bias_new_{band}", "learner": lab, "value": float(np.mean(err[sel]))}]
    hits, bands = [], []
    for c in sorted(set(d["treatment"].astype(str))):
        col = f"selected:benefit_vs_{c}_pi_low"
        if col not in d or d[col].isna().all():
            continue
        m = d.groupby("trial")["treatment"].transform(lambda s, c=c: (s.astype(str) == c).any()).to_numpy()
        Mc = np.column_stack([(d[f"{n}:benefit_vs_{c}_pi_low"] + d[f"{n}:benefit_vs_{c}_pi_high"]).to_numpy()[m] / 2
                              for n in names])
        shift = tree_blend(Mc, names, w0, fac[m]) - Mc @ w0
        lo, hi = d[col].to_numpy()[m] + shift, d[f"selected:benefit_vs_{c}_pi_high"].to_numpy()[m] + shift
        t = d[f"benefit_vs_{c}"].to_numpy()[m]
        hits.append((t >= lo) & (t <= hi))
        bands.append(far[m])
    h, f = np.concatenate(hits), np.concatenate(bands)
    for band, sel in (("all", np.ones_like(f)), ("beyond", f)):
        if sel.any():
            rows.append({**base, "analysis": f"pi_new_{band}", "learner": "selected:tree_blend_moved_pi",
                         "value": float(h[sel].mean()), "n": int(sel.sum())})
    return rows


PRIMARY = "effect_model"


def shrink_new_trial(base, dump, scenario, seed, names, w0, lam) -> list[dict]:
    """New-trial root PEHE and bias (mixed benefit vs the trial-specific truth) of the stack, as fitted
    and shrunk towards the primary model by ``lam``."""
    d = pd.read_csv(dump / f"new_{scenario.replace('>', '-')}_seed{seed}.csv.gz")
    d = d[d["ok"]]
    M = d[names].to_numpy(float)
    w = (1 - lam) * w0
    w[names.index(PRIMARY)] += lam
    err = M @ w - d["truth_mix"].to_numpy()  # (the stack itself: tree_blend_new_trial)
    return [{**base, "analysis": "pehe_new_all", "learner": "stack_1se_shrunk", "value": float(np.sqrt(np.mean(err ** 2)))},
            {**base, "analysis": "bias_new_all", "learner": "stack_1se_shrunk", "value": float(np.mean(err))}]


def weight_variance_coverage(base: dict, dump: Path, scenario: str, seed: int, names: list, C: np.ndarray) -> list[dict]:
    """The dumped new trial's selected-PI coverage of the class truth (classes of the participant's trial),
    as dumped and with b' Cov(w) b added (members' per-class benefits = their PI centres)."""
    f = dump / f"new_{scenario.replace('>', '-')}_seed{seed}.csv.gz"
    d = pd.read_csv(f)
    d = d[d["ok"]]
    fac = d["selected:support_factor"].to_numpy()
    hits = {"dumped": [], "with_weight_variance": []}
    far, extra = [], []
    for c in sorted(set(d["treatment"].astype(str))):
        col = f"selected:benefit_vs_{c}_pi_low"
        if col not in d or d[col].isna().all():
            continue
        # participants of a trial with this comparator class
        m = d.groupby("trial")["treatment"].transform(lambda s, c=c: (s.astype(str) == c).any()).to_numpy()
        lo, hi = d[col].to_numpy()[m], d[f"selected:benefit_vs_{c}_pi_high"].to_numpy()[m]
        truth = d[f"benefit_vs_{c}"].to_numpy()[m]
        M = np.column_stack([(d[f"{n}:benefit_vs_{c}_pi_low"] + d[f"{n}:benefit_vs_{c}_pi_high"]).to_numpy()[m] / 2
                             for n in names])
        v = np.maximum(np.einsum("ij,jk,ik->i", M, C, M), 0.0)
        mid, hw = (lo + hi) / 2, (hi - lo) / 2
        hw2 = np.sqrt(hw ** 2 + (Z95 * fac[m]) ** 2 * v)
        hits["dumped"].append((truth >= lo) & (truth <= hi))
        hits["with_weight_variance"].append((truth >= mid - hw2) & (truth <= mid + hw2))
        far.append(fac[m] > 1)
        extra.append(hw2 / hw)
    far = np.concatenate(far)
    rows = []
    for k, h in hits.items():
        h = np.concatenate(h)
        for band, sel in (("all", np.ones_like(far)), ("inside", ~far), ("beyond", far)):
            rows.append({**base, "analysis": f"pi_new_{band}", "learner": f"selected:{k}",
                         "value": float(h[sel].mean()) if sel.any() else np.nan, "n": int(sel.sum())})
    rows.append({**base, "analysis": "pi_width_ratio_median", "learner": "selected:with_weight_variance",
                 "value": float(np.median(np.concatenate(extra)))})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--dump", default=None)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    from threadpoolctl import threadpool_limits

    rows = []
    with threadpool_limits(1):
        for s in a.seeds:
            rows += analyse(a.scenario, s, a.boot, a.dump)
            print(f"{a.scenario} seed {s} done", flush=True)
    res = pd.DataFrame(rows)
    res.to_csv(a.out, index=False)
    with pd.option_context("display.width", 250, "display.max_rows", 400, "display.max_columns", 30):
        print(res.pivot_table(index=["seed", "analysis"], columns="learner", values="value").round(3))


if __name__ == "__main__":
    main()
