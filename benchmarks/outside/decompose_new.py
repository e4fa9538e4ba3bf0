"""Where the product's short-term pain error on the outside simulator comes from (after bench_outside.py).

Reads a bench_outside output folder (``--out`` of that run: per seed the written data, the trained run
and ``preds_pain_{fitted,new}_lbp_benefit.csv``) and decomposes the root PEHE against the
trial-specific truth, per target (fitted participants / the shifted new trial):

  pehe^2 = bias^2 + shape^2     bias = mean(pred - truth), shape = SD(pred - truth)

and the truth itself into the average-trial truth + the trial-level part (trial effect, case mix:
``t_trial - t_avg``), so ``pred - t_trial = (pred - t_avg) - (t_trial - t_avg)``. Also:
- per comparator class (bias, shape, PEHE, the true class mean and the predicted one);
- by distance from the training support: Mahalanobis distance of the participant's features (the
  deployed model's conditional-mean imputation of missing inputs) from the training participants'
  mean, in thirds of the new trial's distances and beyond the 99th percentile of the training rows';
- per member of the deployed pain stack: each member's benefit on the same rows (the predict
  runtime's numpy reference on the member's export), its bias / shape / PEHE and stack weight, and
  a check that the weighted members reproduce the CLI's prediction.

Intervals: 95% bootstrap over trials (fitted) or participants (new trial), 400 draws.

    python benchmarks/outside/decompose_new.py --out /tmp/outside --seeds 1 2 3 --tag s12x
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_outside as bo  # noqa: E402

from predict.evaluate import point  # noqa: E402
from predict.features import feature_matrix  # noqa: E402
from predict.impute import impute_mean  # noqa: E402
from predict.learner_model import as_learner  # noqa: E402

RESULTS = bo.RESULTS


def boot_ci(err: np.ndarray, cluster: np.ndarray | None, stat, rng, n_boot: int = 400) -> tuple[float, float]:
    """95% percentile interval of ``stat(err)`` resampling clusters (None: rows)."""
    keys, inv = np.unique(np.arange(err.size) if cluster is None else cluster, return_inverse=True)
    rows = [np.flatnonzero(inv == k) for k in range(keys.size)]
    vals = []
    for _ in range(n_boot):
        pick = rng.integers(0, keys.size, keys.size)
        vals.append(stat(err[np.concatenate([rows[i] for i in pick])]))
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def parts(err: np.ndarray, cluster, rng) -> dict:
    b, s = float(err.mean()), float(err.std())
    lo, hi = boot_ci(err, cluster, np.mean, rng)
    plo, phi = boot_ci(err, cluster, lambda e: np.sqrt(np.mean(e ** 2)), rng)
    return {"n": int(err.size), "pehe": float(np.sqrt(np.mean(err ** 2))), "pehe_lo": plo, "pehe_hi": phi,
            "bias": b, "bias_lo": lo, "bias_hi": hi, "shape": s}


def member_benefits(run: Path, rows: pd.DataFrame) -> tuple[dict, dict, np.ndarray]:
    """({member: benefit per row}, {member: weight}, the stack's benefit) on the rows (per comparator)."""
    sel = json.loads((run / "models" / "pain__short" / "selected.json").read_text())
    if sel["kind"] == "stacked":
        names, weights, exports = sel["members"]["names"], sel["members"]["weights"], sel["members"]["exports"]
    else:
        names, weights, exports = [sel["kind"]], [1.0], [sel]
    out = {n: np.full(len(rows), np.nan) for n in names}
    stack = np.full(len(rows), np.nan)
    L = as_learner(sel)
    for c in rows.comparator.unique():
        m = (rows.comparator == c).to_numpy()
        F = feature_matrix(sel["features"], rows[m])
        if c in sel["comparators"]:
            stack[m] = point(L, F)[1][c]
            for n, e in zip(names, exports):
                out[n][m] = point(as_learner(e), F)[1][c]
    return out, dict(zip(names, np.asarray(weights) / np.sum(weights))), stack


def distance(run: Path, train_rows: pd.DataFrame, rows: pd.DataFrame) -> tuple[np.ndarray, float]:
    """(Mahalanobis distance of each row's features from the training rows' mean, the training
    rows' 99th percentile), features imputed by the deployed model's conditional means."""
    sel = json.loads((run / "models" / "pain__short" / "selected.json").read_text())
    imp = as_learner(sel).imputer
    Ft = impute_mean(imp, feature_matrix(sel["features"], train_rows.drop_duplicates(["trial", "participant"])))
    F = impute_mean(imp, feature_matrix(sel["features"], rows))
    mu, S = np.nanmean(Ft, axis=0), np.cov(np.nan_to_num(Ft - np.nanmean(Ft, axis=0)), rowvar=False)
    Si = np.linalg.pinv(S)

    def dist(A):
        D = np.nan_to_num(A - mu)
        return np.sqrt(np.einsum("ij,jk,ik->i", D, Si, D))
    return dist(F), float(np.percentile(dist(Ft), 99))


def unmeasured_term(root: Path, seed: int) -> dict:
    """The new trial's pain benefit term of an input that trial never measured (fear-avoidance:
    the simulator's ``5 x 1[fear > 60]``, read from ``simulate_outside.benefit``): its SD over the
    new trial's participants (the latent values, captured while re-simulating the seed), a floor on
    the shape error of any model that sees only the measured inputs (up to what they correlate
    with it), and the R^2 of that term on the measured inputs (least squares on the new trial)."""
    import simulate_outside as so

    seen = []
    orig = so.covariates

    def capture(rng, d):
        x = orig(rng, d)
        if d["trial"] == "NEW":
            seen.append(x.copy())
        return x
    so.covariates = capture
    try:
        so.simulate(seed)  # the same draws as the written data (mc_draws changes the stream)
    finally:
        so.covariates = orig
    x = seen[0]
    written = pd.read_csv(root / f"seed{seed}" / "new" / "participants.csv")
    if not np.allclose(written["age"].to_numpy(), x["age"].to_numpy()):
        raise RuntimeError("re-simulated new trial differs from the written one")
    term = 5.0 * (x["fear_avoidance"].to_numpy() > 60)
    obs = x[[c for c in x.columns if c not in ("fear_avoidance",) and not c.startswith("_")] + ["_p0", "_f0"]]
    A = np.column_stack([np.ones(len(x)), obs.to_numpy(float)])
    fit = A @ np.linalg.lstsq(A, term, rcond=None)[0]
    return {"sd_term": float(term.std()), "share_high": float((term > 0).mean()),
            "r2_on_measured": float(1 - np.var(term - fit) / np.var(term)),
            "sd_left": float(np.std(term - fit))}


def one_seed(root: Path, seed: int) -> list[dict]:
    d = root / f"seed{seed}"
    rng = np.random.default_rng(seed)
    train_tab, new_tab = bo.harmonised_table(d / "train"), bo.harmonised_table(d / "new")
    rows_by = {"fitted": bo.pairs(train_tab), "new": bo.pairs(new_tab)}
    key = ["trial", "participant", "comparator"]
    recs = []
    for target, rows in rows_by.items():
        rows = rows.assign(participant=rows.participant.astype(str)).reset_index(drop=True)
        p = pd.read_csv(d / f"preds_pain_{target}_lbp_benefit.csv", dtype={"participant": str})
        p = rows[key].merge(p, on=key, how="left")
        members, weights, stack = member_benefits(d / "run", rows)
        ok = p.pred.notna().to_numpy() & np.isfinite(stack)
        cl = p.trial.to_numpy() if target == "fitted" else None
        base = {"seed": seed, "target": target}
        recs.append({**base, "part": "check", "what": "stack of members - CLI prediction (max abs)",
                     "value": float(np.max(np.abs(stack[ok] - p.pred.to_numpy()[ok])))})
        err, t_level = (p.pred - p.t_trial).to_numpy()[ok], (p.t_trial - p.t_avg).to_numpy()[ok]
        clo = None if cl is None else cl[ok]
        recs.append({**base, "part": "all", "what": "vs trial-specific truth", **parts(err, clo, rng)})
        recs.append({**base, "part": "all", "what": "vs average-trial truth", **parts(err + t_level, clo, rng)})
        recs.append({**base, "part": "all", "what": "trial-level truth (t_trial - t_avg)",
                     **parts(t_level, clo, rng)})
        for c in sorted(p.comparator[ok].unique()):
            m = (p.comparator.to_numpy()[ok] == c)
            recs.append({**base, "part": "class", "what": c, **parts(err[m], None if clo is None else clo[m], rng),
                         "true_mean": float(p.t_trial.to_numpy()[ok][m].mean()),
                         "pred_mean": float(p.pred.to_numpy()[ok][m].mean())})
        dist, q99 = distance(d / "run", rows_by["fitted"], rows)
        dist = dist[ok]
        if target == "new":
            cuts = np.percentile(dist, [100 / 3, 200 / 3])
            bins = np.digitize(dist, cuts)
            for b, lab in enumerate(("nearest third", "middle third", "farthest third")):
                m = bins == b
                recs.append({**base, "part": "distance", "what": f"{lab} (D {dist[m].min():.1f}-{dist[m].max():.1f})",
                             **parts(err[m], None, rng)})
        m = dist > q99
        if m.sum() >= 5:
            recs.append({**base, "part": "distance", "what": f"beyond training 99th pct (D > {q99:.1f})",
                         **parts(err[m], None if clo is None else clo[m], rng)})
        if target == "new":
            u = unmeasured_term(root, seed)
            recs.append({**base, "part": "unmeasured", "what": "fear-avoidance term 5x1[fear>60] (never measured "
                         f"in the new trial; share > 60: {u['share_high']:.2f}; R2 on the measured inputs "
                         f"{u['r2_on_measured']:.2f})", "value": u["sd_term"], "shape": u["sd_left"]})
        for n, b in members.items():
            e = (b - p.t_trial.to_numpy())[ok]
            recs.append({**base, "part": "member", "what": n, "weight": weights[n], **parts(e, clo, rng)})
    return recs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="bench_outside.py's --out folder")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--tag", default="s12x")
    a = ap.parse_args(argv)
    recs = []
    for s in a.seeds:
        recs += one_seed(a.out, s)
    df = pd.DataFrame(recs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / f"outside_decompose_{a.tag}.csv", index=False, float_format="%.4f")
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_rows", 500):
        print(df.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
