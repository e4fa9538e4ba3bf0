"""Recovery (binary) intervals with the deployed structural missing-input allowance, before and after
(issue 23, session 11 i23r; the rule: predict/recovery_structure.py, the export: training/recovery_structure.py).

Per scenario and seed (the data of bench_learners: ``load_task``, short-term global recovery): the
binary effect model as ``train`` fits it (default bootstrap), the continuous pain and function effect
models of the same data and window as ``train`` fits them (their point fits and residual SDs are what
the export takes; no bootstrap needed), the field built by ``training.recovery_structure.structural_field``
and the intervals scored by ``predict.runtime.predict_from_export`` with and without it (the export the
artifact carries; the scorer's two paths are held equal to it by tests/test_recovery_structure.py).
Coverage pooled over the comparator classes (participants of comparator trials x their trial's
classes): CI vs the average-trial truth on the fitted participants, PI vs the new trial's truth on
new trials of seed + 10000; root PEHE of the point prediction (unchanged by construction: checked);
split by whether the participant has a missing input.

Usage: PYTHONPATH=. python benchmarks/bench_recovery_allowance.py --scenarios hayden2020 strong sysmiss
  --seeds 1 2 --out benchmarks/results/recovery_allowance_i23r.csv
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
from benchmarks.grid import run_grid  # noqa: E402
from benchmarks.recovery_task import comparisons, recovery_task  # noqa: E402

pin_blas_kernels()

Z = 1.959963984540054


def _wilson(k: float, n: int) -> tuple[float, float]:
    if n == 0:
        return np.nan, np.nan
    p = k / n
    d = 1 + Z ** 2 / n
    c = (p + Z ** 2 / (2 * n)) / d
    h = Z * np.sqrt(p * (1 - p) / n + Z ** 2 / (4 * n ** 2)) / d
    return c - h, c + h


class WithStructural:
    """A fitted binary learner scored with recovery's structural allowance (for bench_learners:
    ``predict_interval`` of its export with the field, as the artifact carries it)."""

    def __init__(self, model, field: dict):
        self.model, self.field = model, field
        self.comparators_ = model.comparators_

    def predict_interval(self, X):
        from predict.runtime import predict_from_export

        return predict_from_export({**self.model.export_, "structural_missing": self.field}, X)

    def support_scores(self, X):
        return self.model.support_scores(X)


def structural_for(scenario: str, seed: int, follow_up: str, cfg, recovery_export: dict, feats: list,
                   n_participants=None) -> dict:
    """The field ``train`` writes for recovery on these data: the pain and function effect models of the
    same seed and window (``training.recovery_structure.structural_field``)."""
    from benchmarks.bench_learners import load_task
    from training.recovery_structure import structural_field
    from training.train import make_learner

    cont = {}
    for o in cfg.recovery_sources:
        odf = load_task(scenario, seed, o, follow_up, n_participants=n_participants)[0]
        cont[o] = make_learner("effect_model", "continuous", cfg, seed, n_boot=0).fit(
            odf[["trial", "treatment"] + feats], odf["value"].to_numpy(float)).to_export()
    field, why = structural_field(cfg, recovery_export, cont)
    assert field is not None, why
    return field


def run(scenario: str, seed: int) -> list[dict]:
    from threadpoolctl import threadpool_limits

    from predict.features import feature_matrix
    from predict.runtime import predict_from_export
    from training.train import make_learner

    rows = []
    with threadpool_limits(1):
        rt = recovery_task(scenario, seed)
        df, truth, cfg, recols, ndf, ntruth, feats, X, NX = (rt.df, rt.truth, rt.cfg, rt.recols, rt.ndf, rt.ntruth,
                                                            rt.feats, rt.X, rt.NX)
        t0 = time.time()
        own = make_learner("effect_model", "binary", cfg, seed).fit(X, df["value"].to_numpy(float))
        exp = own.to_export()
        field = structural_for(scenario, seed, "short", cfg, exp, feats)
        with_field = {**exp, "structural_missing": field}
        print(f"{scenario} seed {seed}: fitted in {time.time() - t0:.0f} s", flush=True)
        for what, data, tr, XX in (("fitted", df, truth, X), ("new", ndf, ntruth, NX)):
            comps, ok, W = comparisons(data, cfg.active)
            miss = np.isnan(feature_matrix(exp["features"], XX)).any(axis=1)
            p = {"as before": predict_from_export(exp, XX), "with allowance": predict_from_export(with_field, XX)}
            for i, c in enumerate(comps):
                if c not in exp["comparators"]:
                    continue
                msk = ok & (W[:, i] > 0)
                tc = tr[f"benefit_vs_{c}"].to_numpy()
                target = tc - recols[c] if what == "fitted" else tc  # CI: average trial; PI: the new trial
                lo_hi = ("ci_low", "ci_high") if what == "fitted" else ("pi_low", "pi_high")
                for variant, pr in p.items():
                    b = pr[f"benefit_vs_{c}"].to_numpy()
                    lo, hi = pr[f"benefit_vs_{c}_{lo_hi[0]}"].to_numpy(), pr[f"benefit_vs_{c}_{lo_hi[1]}"].to_numpy()
                    cov = (lo <= target) & (target <= hi)
                    for part, sub in (("all", msk), ("missing input", msk & miss), ("complete", msk & ~miss)):
                        n = int(sub.sum())
                        e = (b - target)[sub]
                        rows.append({"scenario": scenario, "seed": seed, "data": what, "comparator": c,
                                     "variant": variant, "rows": part, "n": n,
                                     "interval": "CI vs average trial" if what == "fitted" else "PI vs new trial",
                                     "covered": int(cov[sub].sum()), "cover": float(cov[sub].mean()) if n else np.nan,
                                     "mean_width": float((hi - lo)[sub].mean()) if n else np.nan,
                                     "rms_err": float(np.sqrt(np.mean(e ** 2))) if n else np.nan,
                                     "bias": float(e.mean()) if n else np.nan,
                                     "pehe_trial_truth": float(np.sqrt(np.mean((b - tc)[sub] ** 2))) if n else np.nan})
    return rows


def summary(df: pd.DataFrame) -> pd.DataFrame:
    def agg(d):
        n, k = int(d["n"].sum()), int(d["covered"].sum())
        lo, hi = _wilson(k, n)
        w = d["n"] / max(n, 1)
        return pd.Series({"n": n, "cover": k / n if n else np.nan, "cover_lo": lo, "cover_hi": hi,
                          "mean_width": float((w * d["mean_width"].fillna(0)).sum()),
                          "rms_err": float(np.sqrt((w * d["rms_err"].fillna(0) ** 2).sum())),
                          "pehe_trial_truth": float(np.sqrt((w * d["pehe_trial_truth"].fillna(0) ** 2).sum()))})

    return df.groupby(["scenario", "interval", "rows", "variant"]).apply(agg, include_groups=False)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", nargs="+", default=["hayden2020", "strong", "sysmiss"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/recovery_allowance_i23r.csv"))
    a = ap.parse_args(argv)
    g = summary(run_grid(run, a.scenarios, a.seeds, a.out))
    g.to_csv(a.out.with_name(a.out.stem + "_summary.csv"))
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(g.round(3).to_string())


if __name__ == "__main__":
    main()
