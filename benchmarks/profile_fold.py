"""Where the CPU of one IECV fold of ``lbp-benefit train`` goes (issue 23 speed work): the fold is
planned exactly as ``train`` plans it (same learners, metrics bootstrap, grouped hold-outs) and run
in this process with one BLAS thread, once under cProfile with a CPU-time timer (shares by part,
robust to the machine's load; cProfile inflates Python-heavy parts such as the metric bootstraps),
and once without the profiler, timing only ``training.iecv.trial_metrics`` (its plain CPU share).

    PYTHONPATH=. .venv/bin/python benchmarks/profile_fold.py --data DIR --task pain__short [--fold 0]
        [--out benchmarks/results/profile_fold.csv]

``--data``: a dataset folder (e.g. ``lbp-benefit simulate --scenario large60 --participants 17000
--out DIR``); default: the embedded default data.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path

import pandas as pd

# (label, file fragment, function): cumulative CPU of every call of that function (parts nest)
PARTS = [
    ("fold total (run_fold)", "training/iecv.py", "run_fold"),
    ("effect-model family fits (EffectModel.fit)", "training/learners/effect_model.py", "fit"),
    ("  of which the modifier prior (penalty CVs)", "training/learners/effect_model.py", "modifier_prior"),
    ("    effect_adaptive's own CV (cv_adaptive)", "training/learners/adaptive.py", "cv_adaptive"),
    ("    effect_pairs' screen + CV (select_pairs)", "training/learners/pairs.py", "select_pairs"),
    ("    common prior SD CV (_select_sd)", "training/learners/effect_model.py", "_select_sd"),
    ("  shared design/constant fit (shared_work.shared)", "training/learners/shared_work.py", "shared"),
    ("logistic Newton (logistic_strata)", "training/learners/strata_fit.py", "logistic_strata"),
    ("  of which Hessian blocks", "training/learners/strata_fit.py", "hessian_blocks"),
    ("Gaussian within-trial fits (_fit_within)", "training/learners/linear.py", "_fit_within"),
    ("tree learners T/X/DR (boosted _fit)", "training/learners/boosted.py", "_fit"),
    ("  LightGBM training", "lightgbm/engine.py", "train"),
    ("risk model", "training/learners/risk_model.py", "fit"),
    ("IECV per-trial metrics (trial_metrics)", "training/iecv.py", "trial_metrics"),
    ("  c-for-benefit", "training/metrics/benefit.py", "c_for_benefit"),
    ("  E-for-benefit", "training/metrics/benefit.py", "e_for_benefit"),
    ("    of which loess", "training/metrics/_stats.py", "loess"),
    ("  calibration-for-benefit", "training/metrics/benefit_calibration.py", "calibration_for_benefit"),
    ("  RATE", "training/metrics/rate.py", "rank_average_treatment_effect"),
    ("  outcome performance", "training/metrics/outcome.py", "outcome_performance"),
    ("conditional-mean imputation (impute_mean)", "predict/impute.py", "impute_mean"),
    ("expected basis (expect_columns)", "predict/expected_basis.py", "expect_columns"),
]


def plan_task(data: Path | None, task: str, ref_rows: int = 0):
    """The IECV plan of ``task`` on ``data`` (None: the embedded default) with train's default learners and
    settings; ``ref_rows``: the reference rows every fold's learners also predict (member_corr)."""
    from lbp_benefit.data_source import load_source
    from training.harmonise import harmonise
    from training.iecv import plan_iecv
    from training.learners.base import outcome_type_of, task_frame
    from training.selection import learners_for
    from training.train import TrainSettings, _xy, make_learner

    ds, _ = load_source(data, None, 1)
    cfg = ds.config
    outcome, fu = task.split("__")
    df = task_frame(harmonise(ds).analysis, outcome, fu)
    otype = outcome_type_of(outcome, cfg)
    X, y = _xy(df, cfg)
    s = TrainSettings()
    fac = {n: (lambda n=n: make_learner(n, otype, cfg, s.seed, n_boot=0)) for n in learners_for(s.learners, otype, default=True)}
    return plan_iecv(X.assign(_y=y), "_y", fac, otype, cfg.active, n_boot=s.iecv_metrics_boot, seed=s.seed,
                     min_trial_size=int(getattr(cfg, "min_trial_size", 1)), max_folds=s.iecv_max_folds,
                     ref_rows=ref_rows)


def main() -> None:
    from threadpoolctl import threadpool_limits

    import training.iecv as iecv

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--task", default="pain__short")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    plan = plan_task(a.data, a.task)
    load0 = os.getloadavg()
    with threadpool_limits(1):
        pr = cProfile.Profile(time.process_time)
        pr.enable()
        iecv.run_fold(plan, a.fold)
        pr.disable()
        orig, spent = iecv.trial_metrics, [0.0]

        def timed(*args, **kw):
            c = time.process_time()
            try:
                return orig(*args, **kw)
            finally:
                spent[0] += time.process_time() - c

        iecv.trial_metrics = timed
        try:
            c0 = time.process_time()
            iecv.run_fold(plan, a.fold)
            plain = time.process_time() - c0
        finally:
            iecv.trial_metrics = orig
    with tempfile.TemporaryDirectory() as td:
        pr.dump_stats(Path(td) / "fold.prof")
        st = pstats.Stats(str(Path(td) / "fold.prof")).stats
    tot = max(v[3] for (f, _, fn), v in st.items() if f.endswith("training/iecv.py") and fn == "run_fold")
    rows = [{"task": a.task, "fold": a.fold, "part": label,
             "cpu_s": round(sum(v[3] for (f, _, fn), v in st.items() if f.endswith(frag) and fn == name), 2)}
            for label, frag, name in PARTS]
    res = pd.DataFrame(rows).assign(share=lambda d: (d["cpu_s"] / tot).round(3))
    print(res.to_string(index=False))
    print(f"without the profiler: fold {plain:.2f} CPU-s, of which trial_metrics {spent[0]:.2f} "
          f"({spent[0] / plain:.1%}); load average {load0[0]:.1f} -> {os.getloadavg()[0]:.1f}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        plain_rows = pd.DataFrame([{"task": a.task, "fold": a.fold, "part": "no profiler: fold total",
                                    "cpu_s": round(plain, 2), "share": 1.0},
                                   {"task": a.task, "fold": a.fold, "part": "no profiler: trial_metrics",
                                    "cpu_s": round(spent[0], 2), "share": round(spent[0] / plain, 3)}])
        pd.concat([res, plain_rows]).to_csv(a.out, index=False)


if __name__ == "__main__":
    main()
