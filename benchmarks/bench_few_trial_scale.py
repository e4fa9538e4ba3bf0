"""Recovery (binary) intervals before/after putting the effect model's few-trial variance tau^2 / k on
the offsets' log-odds scale (issue 23, session 12 s12b; the option: ``FEW_TRIAL_SCALE`` / ``few_trial_variance`` in
training/learners/intervals.py, used for ``few`` in ``EffectModel.fit``).

Per design ``SCENARIO:FOLLOW_UP`` and seed (the data of bench_learners, ``load_task``; new trials of seed +
10,000): the binary effect model as ``train`` fits it (``make_learner``, default bootstrap), fitted twice on
the same data - "before" (``FEW_TRIAL_SCALE = "risk"``, train's default, the earlier formula) and "after"
("link": tau divided by the fit's mean p (1 - p)) - each scored as deployed (with recovery's structural missing-input field built from the pain and
function effect models of the same data). Only classes with fewer than 3 trials get a few-trial term (and
their comparison set through the shrinkage weights); the other classes can move only through the set.
Per comparator class: CI vs the average-trial truth on the fitted participants, PI vs the new trials' truth,
mean width, RMS error, root PEHE vs the trial-specific truth.

Usage: PYTHONPATH=. python benchmarks/bench_few_trial_scale.py --designs hayden2020:moderate hayden2020:long
  sparse_placebo:short --seeds 1 2 --out benchmarks/results/few_trial_scale_s12b.csv
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lbp_benefit.blas import pin_blas_kernels  # noqa: E402
from benchmarks.recovery_task import comparisons, recovery_task, source_models  # noqa: E402

pin_blas_kernels()


def _fit(variant: str, cfg, seed: int, X, y):
    """The binary effect model as train fits it, with the few-trial term on the risk scale ("before":
    train's default, ``FEW_TRIAL_SCALE = "risk"``) or on the log-odds scale ("after": "link"); "carried":
    "link" and the term also added to the offsets' covariance that ``shrink_offsets`` maps (a diagnostic
    of what the interval lacks; not an option of train)."""
    from training.learners import intervals
    from training.train import make_learner

    from training.learners import shrinkage

    orig, orig_shrink = intervals.FEW_TRIAL_SCALE, shrinkage.shrink_offsets
    intervals.FEW_TRIAL_SCALE = "risk" if variant == "before" else "link"

    def carried(theta, cov, comps, groups=None, extra_var=None, **kw):
        """(diagnostic, not in train) the few-trial variance in the covariance that shrink_offsets maps"""
        cov = np.array(np.atleast_2d(cov), float)
        if extra_var is not None:
            i = np.arange(1, 1 + len(comps))
            cov[i, i] += np.asarray(extra_var, float)
        return orig_shrink(theta, cov, comps, groups, None, **kw)

    if variant == "carried":
        shrinkage.shrink_offsets = carried
    try:
        m = make_learner("effect_model", "binary", cfg, seed).fit(X, y)
    finally:
        intervals.FEW_TRIAL_SCALE, shrinkage.shrink_offsets = orig, orig_shrink
    return m, getattr(m, "few_trial_var_", None)


def run(design: str, seed: int, variants=("before", "after")) -> list[dict]:
    from threadpoolctl import threadpool_limits

    from predict.runtime import predict_from_export
    from training.recovery_structure import structural_field

    scenario, follow_up = design.split(":")
    rows = []
    with threadpool_limits(1):
        task = recovery_task(scenario, seed, follow_up)
        df, truth, cfg, recols, ndf, ntruth, X, NX = (task.df, task.truth, task.cfg, task.recols, task.ndf,
                                                      task.ntruth, task.X, task.NX)
        y = df["value"].to_numpy(float)
        cont = source_models(task, scenario, seed, follow_up)
        trials = df.groupby("treatment")["trial"].nunique().to_dict()
        for variant in variants:
            t0 = time.time()
            m, few = _fit(variant, cfg, seed, X, y)
            exp = m.to_export()
            field, why = structural_field(cfg, exp, cont)
            if field is not None:
                exp = {**exp, "structural_missing": field}
            shr = exp["meta"].get("class_shrinkage", {})
            print(f"{design} seed {seed} {variant}: fitted in {time.time() - t0:.0f} s; few {few}", flush=True)
            for what, data, tr, XX in (("fitted", df, truth, X), ("new", ndf, ntruth, NX)):
                comps, ok, W = comparisons(data, cfg.active)
                pr = predict_from_export(exp, XX)
                for i, c in enumerate(comps):
                    if c not in exp["comparators"]:
                        continue
                    msk = ok & (W[:, i] > 0)
                    n = int(msk.sum())
                    if n == 0:
                        continue
                    tc = tr[f"benefit_vs_{c}"].to_numpy()
                    target = tc - recols[c] if what == "fitted" else tc
                    k = ("ci_low", "ci_high") if what == "fitted" else ("pi_low", "pi_high")
                    b = pr[f"benefit_vs_{c}"].to_numpy()
                    lo, hi = pr[f"benefit_vs_{c}_{k[0]}"].to_numpy(), pr[f"benefit_vs_{c}_{k[1]}"].to_numpy()
                    cov = (lo <= target) & (target <= hi)
                    e = (b - target)[msk]
                    rows.append({"design": design, "seed": seed, "variant": variant, "data": what, "comparator": c,
                                 "trials_fitted": int(trials.get(c, 0)), "few_var": (few or {}).get(c, np.nan),
                                 "weight_own": shr.get(c, {}).get("weight_own", np.nan),
                                 "structural": field is not None, "n": n,
                                 "interval": "CI vs average trial" if what == "fitted" else "PI vs new trial",
                                 "covered": int(cov[msk].sum()), "cover": float(cov[msk].mean()),
                                 "mean_width": float((hi - lo)[msk].mean()), "rms_err": float(np.sqrt(np.mean(e ** 2))),
                                 "bias": float(e.mean()),
                                 "pehe_trial_truth": float(np.sqrt(np.mean((b - tc)[msk] ** 2)))})
    return rows


Z = 1.959963984540054


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Coverage pooled over classes (all; those with < 3 fitted trials) per design, interval and variant,
    Wilson 95% over participants (ignores clustering: the seed columns show the honest noise)."""
    rows = []
    for name, sub in (("all classes", df), ("classes with <3 trials", df[df["trials_fitted"] < 3])):
        for (design, interval, variant), g in sub.groupby(["design", "interval", "variant"]):
            n, k = int(g["n"].sum()), int(g["covered"].sum())
            p, d = k / n, 1 + Z ** 2 / n
            c, h = (p + Z ** 2 / (2 * n)) / d, Z * np.sqrt(p * (1 - p) / n + Z ** 2 / (4 * n ** 2)) / d
            w = g["n"] / n
            seed_cover = {f"cover_seed{s}": gs["covered"].sum() / gs["n"].sum() for s, gs in g.groupby("seed")}
            rows.append({"classes": name, "design": design, "interval": interval, "variant": variant, "n": n,
                         "cover": p, "cover_lo": c - h, "cover_hi": c + h, **seed_cover,
                         "mean_width": float((w * g["mean_width"]).sum()),
                         "rms_err": float(np.sqrt((w * g["rms_err"] ** 2).sum())),
                         "pehe_trial_truth": float(np.sqrt((w * g["pehe_trial_truth"] ** 2).sum()))})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--designs", nargs="+", default=["hayden2020:moderate", "hayden2020:long", "sparse_placebo:short"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--variants", nargs="+", default=["before", "after"], choices=["before", "after", "carried"])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/few_trial_scale_s12b.csv"))
    a = ap.parse_args(argv)
    rows = []
    for design in a.designs:
        for seed in a.seeds:
            rows += run(design, seed, tuple(a.variants))
            pd.DataFrame(rows).to_csv(a.out, index=False)  # partial results survive a stop
    g = summary(pd.DataFrame(rows))
    g.to_csv(a.out.with_name(a.out.stem + "_summary.csv"), index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(g.round(3).to_string())


if __name__ == "__main__":
    main()
