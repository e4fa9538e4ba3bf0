"""Is the effect model's common prior SD s the bottleneck? PEHE against the truth over a grid of fixed
s, beside the s that trial-grouped CV of the R-loss picks (the default) and the s that the REML
evidence picks (``effect_ard`` with ``groups="common"``, ``scale="ml2"``) — issue 23, session 11 (i23m).

Per scenario x seed (the data of ``bench_learners.py``: pain at short term, ``pain_task``; new trials
from seed + 10000 or the scenario after ``>``), the effect model (``make_learner`` settings, no
bootstrap) is fitted at each s of ``GRID`` and with its CV; reported: root PEHE of the fitted
participants vs the average-trial truth (``avg``) and, with each trial's empirical-Bayes deviation, vs
their trial-specific truth (``in_trial``), and of the new trials' participants (``new``); the CV's
R-loss per grid value of the default fit (``cv_r_loss``).

``--cv-tables``: instead, the CV's R-loss per s (grid 0-16) of the effect model fitted to the observed
outcomes y and to the noise-free outcomes y* (each participant's expected outcome under their own arm):
does the criterion itself prefer the truth's s once the outcome noise is gone?

``--fold-check``: five trial-grouped folds (public API: fit on the other trials at s = 1 and s = 4,
predict the held-out ones): the held-out R-loss (trial-centred outcomes, no prognostic score) beside
the held-out truth PEHE (vs the trial-specific and the average-trial truth) and the R-loss change the
truth implies, e(1 - e) x change of PEHE^2 with e(1 - e) = 0.25.

Usage::

    python benchmarks/diag_effect_sd.py --fold-check --scenarios curvilinear interaction --seeds 2 4 \
        --out benchmarks/results/effect_sd_folds_i23m_s11.csv
    python benchmarks/diag_effect_sd.py --out benchmarks/results/effect_sd_i23m_s11.csv --seeds 1 2 3 4
    python benchmarks/diag_effect_sd.py --cv-tables --out benchmarks/results/effect_sd_cv_i23m_s11.csv --seeds 1 2 3 4
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.grid import run_grid  # noqa: E402

GRID = (0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 8.0)


def run(scenario: str, seed: int) -> list:
    from benchmarks.bench_effect_variants import pain_task
    from training.iecv import _benefit_mix
    from training.learners.trial_specific import InTrialBenefit
    from training.train import make_learner

    d = pain_task(scenario, seed)

    def rms(a, ok):
        return float(np.sqrt(np.mean(a[ok] ** 2)))

    rows = []

    def record(variant, m, sec, **extra):
        b = _benefit_mix(m.predict(d.X), d.trial, d.cls, d.cfg.active, d.comps)
        bn = _benefit_mix(m.predict(d.NX), d.ntrial, d.ncls, d.cfg.active, d.ncomps)
        bi = _benefit_mix(InTrialBenefit(m).fit(d.X, d.y).predict(d.X), d.trial, d.cls, d.cfg.active, d.comps)
        rows.append({"scenario": scenario, "seed": seed, "variant": variant, "avg": rms(b - d.t_avg, d.ok),
                     "in_trial": rms(bi - d.t_mix, d.ok), "new": rms(bn - d.nt_mix, d.nok), "cpu_seconds": sec, **extra})

    t0 = time.process_time()
    m = make_learner("effect_model", "continuous", d.cfg, seed, n_boot=0).fit(d.X.copy(), d.y)
    cv = {f"cv_r_loss_{r.interaction_sd:g}": r.r_loss for r in m.cv_.itertuples()}
    record("cv", m, time.process_time() - t0, sd=m.interaction_sd_, **cv)
    t0 = time.process_time()
    a = make_learner("effect_ard", "continuous", d.cfg, seed, n_boot=0)
    a.set_params(groups="common", scale="ml2")
    a.fit(d.X.copy(), d.y)
    sd_ml2 = max(a.ard_["prior_sd"].values()) if a.ard_.get("prior_sd") else 0.0
    record("ml2_common", a, time.process_time() - t0, sd=sd_ml2)
    for s in GRID:
        t0 = time.process_time()
        f = make_learner("effect_model", "continuous", d.cfg, seed, n_boot=0)
        f.set_params(interaction_sd=s)
        f.fit(d.X.copy(), d.y)
        record(f"sd{s:g}", f, time.process_time() - t0, sd=s)
    r = rows[0]
    print(f"{scenario} s{seed}: CV s {r['sd']:g} avg {r['avg']:.3f}; ML-II s {rows[1]['sd']:.2f} avg {rows[1]['avg']:.3f}; "
          + " ".join(f"{x['sd']:g}:{x['avg']:.2f}" for x in rows[2:]), flush=True)
    return rows


def cv_tables(scenario: str, seed: int) -> list:
    """The CV's R-loss per s (relative to its minimum) for fits to y and to the noise-free y*."""
    from benchmarks.bench_effect_variants import pain_task
    from training.train import make_learner

    d = pain_task(scenario, seed)
    y_nf = np.array([d.truth[f"expected_{c}"].iloc[i] for i, c in enumerate(d.cls)])
    rows = []
    for lab, yy in (("y", d.y), ("y_noise_free", y_nf)):
        m = make_learner("effect_model", "continuous", d.cfg, seed, n_boot=0)
        m.set_params(interaction_grid=(0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0))
        m.fit(d.X.copy(), yy)
        base = float(m.cv_["r_loss"].min())
        rows += [{"scenario": scenario, "seed": seed, "outcome": lab, "sd": r.interaction_sd, "r_loss": r.r_loss,
                  "r_loss_minus_min": r.r_loss - base, "chosen": r.interaction_sd == m.interaction_sd_}
                 for r in m.cv_.itertuples()]
        print(f"{scenario} s{seed} {lab}: chosen s {m.interaction_sd_:g}; "
              + " ".join(f"{r.interaction_sd:g}:{r.r_loss - base:+.3f}" for r in m.cv_.itertuples()), flush=True)
    return rows


def fold_check(scenario: str, seed: int) -> list:
    """Held-out R-loss vs held-out truth PEHE at s = 1 and s = 4 (see module docstring)."""
    from benchmarks.bench_effect_variants import pain_task
    from training.iecv import _benefit_mix
    from training.learners.base import allocation_share
    from training.learners.stacking import r_loss
    from training.train import make_learner

    d = pain_task(scenario, seed)
    perm = np.random.default_rng(seed).permutation(np.unique(d.trial[d.ok]))
    folds = [perm[i::5] for i in range(5)]
    active = d.cls == d.cfg.active
    _, code = np.unique(d.trial, return_inverse=True)
    e = allocation_share(code, active, ~active)
    rows = []
    for s in (1.0, 4.0):
        bm = np.full(d.y.size, np.nan)
        for hold in folds:
            te = np.isin(d.trial, hold)
            m = make_learner("effect_model", "continuous", d.cfg, seed, n_boot=0)
            m.set_params(interaction_sd=s)
            m.fit(d.X[~te].copy(), d.y[~te])
            bm[te] = _benefit_mix(m.predict(d.X[te]), d.trial[te], d.cls[te], d.cfg.active, d.comps)
        ok = d.ok & np.isfinite(bm)
        rows.append({"scenario": scenario, "seed": seed, "sd": s,
                     "r_loss": r_loss(bm[ok], -d.y[ok], active[ok].astype(float), d.trial[ok], e[ok]),  # pain: lower = better
                     "pehe_trial": float(np.sqrt(np.mean((bm[ok] - d.t_mix[ok]) ** 2))),
                     "pehe_avg": float(np.sqrt(np.mean((bm[ok] - d.t_avg[ok]) ** 2)))})
    a, b = rows
    b["r_loss_change"] = b["r_loss"] - a["r_loss"]
    b["implied_by_truth"] = 0.25 * (b["pehe_trial"] ** 2 - a["pehe_trial"] ** 2)
    print(f"{scenario} s{seed}: held-out R-loss s=4 minus s=1 {b['r_loss_change']:+.3f}, implied by the truth "
          f"{b['implied_by_truth']:+.3f}; PEHE trial {a['pehe_trial']:.3f} -> {b['pehe_trial']:.3f}", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", nargs="+", default=["interaction", "plateau>edge_trial", "curvilinear",
                                                        "hayden2020", "none"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cv-tables", action="store_true", help="the CV's R-loss per s for y and noise-free y*")
    ap.add_argument("--fold-check", action="store_true", help="held-out R-loss vs held-out truth at s = 1, 4")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    if a.fold_check:
        run_grid(fold_check, a.scenarios, a.seeds, a.out)
        return 0
    if a.cv_tables:
        run_grid(cv_tables, a.scenarios, a.seeds, a.out)
        return 0
    df = run_grid(run, a.scenarios, a.seeds, a.out)
    summ = df.groupby(["scenario", "variant"], sort=False)[["sd", "avg", "in_trial", "new"]].mean().round(3)
    summ.to_csv(a.out.with_name(a.out.stem + "_summary.csv"))
    print(summ.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
