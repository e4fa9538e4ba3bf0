"""Variants of the effect model, each fitted alone (no stack), against the simulator's truth.

A quick screen before a candidate enters ``bench_learners.py`` as a stack member: per scenario x
seed, the same data as ``bench_learners.py`` (``load_task``: pain at short term; new trials from
seed + 10000, or from the scenario after ``>``), each variant fitted with ``--n-boot`` trial-cluster
bootstrap replicates; root PEHE vs the fitted participants' trial-specific truth (``pehe``), vs the
average-trial truth (``pehe_avg``), on the new trials (``pehe_new``); 95% CI coverage of the
average-trial truth (``cov_ci_avg``), 95% new-setting PI coverage of the new trials' truth
(``cov_pi_new``); mean within-trial SD of the predicted benefit (``spread``); fit seconds.

Variants (``--variants``): ``effect_model`` / ``effect_adaptive`` (as the default ``train`` makes
them), ``em_k4`` / ``em_k5`` (the effect model with 4 / 5-knot modifier splines), ``em_fine`` (the common
prior SD's CV grid in sqrt(2) steps), ``em_shape`` (spline columns' prior SD = r x the linear ones', (s, r)
by the same CV), ``effect_pairs`` / ``ep_n<k>`` (screened modifier pairs, k kept instead of 3) / ``ep_f<k>`` (k CV folds
instead of 5), ``em_kcv<k>`` (each continuous
modifier's spline 3 or k knots, chosen feature by feature by the CV), ``ard_<scale>_<g><k>``
(``training.learners.ard``: scale ``ml2``, ``cv`` or ``hier``, groups ``f`` feature / ``s`` shape, k knots,
optionally ``_<hyper_sd>``), e.g. ``ard_ml2_f4``, ``ard_hier_f3_0.5``.

Usage::

    python benchmarks/bench_effect_variants.py --out benchmarks/results/effect_variants.csv \
        --scenarios curvilinear interaction 'plateau>edge_trial' hayden2020 none --seeds 1 2 \
        --variants effect_model em_k4 ard_ml2_f4
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


FINE_GRID = (0.0, 0.35, 0.5, 0.71, 1.0, 1.41, 2.0, 2.83, 4.0, 5.66, 8.0)
SHAPE_RATIOS = (0.0, 0.5, 1.0, 2.0)


def _shape_cv():
    from training.learners.effect_model import GAUSSIAN_GRID, LOGIT_GRID, EffectModel

    class ShapeCV(EffectModel):
        """The effect model with the prior SD of the non-linear (spline) modifier columns = r x that of
        the linear ones, (s, r) chosen jointly by the model's own trial-grouped CV of the R-loss."""

        def modifier_prior(self, d, P, M, Mcols, lam_main, sigma2, prog):
            sd, w, s2 = super().modifier_prior(d, P, M, Mcols, lam_main, sigma2, prog)
            if M.shape[1] == 0 or self.interaction_sd is not None:
                return sd, w, s2
            grid = self.interaction_grid or (GAUSSIAN_GRID if d.family == "gaussian" else LOGIT_GRID)
            nonlin = np.array([c["kind"] == "rcs" for c in Mcols])
            best = (float(self.cv_["r_loss"].min()), 1.0, sd)
            for r in SHAPE_RATIOS:
                if r == 1.0:
                    continue
                wr = np.where(nonlin, r, 1.0)
                s_r, tab = self._select_sd(d, P, M * wr, grid, lam_main, sigma2, prog)
                loss = float(tab["r_loss"].min())
                if loss < best[0]:
                    best = (loss, r, s_r)
            self.shape_ratio_ = best[1]
            if best[1] == 1.0 or best[2] == 0.0:
                return sd, w, s2
            return best[2], np.where(nonlin, best[1], 1.0), s2

    return ShapeCV


def _knots_cv(alt_knots: int = 4):
    from predict.linear import basis
    from training.learners.effect_model import GAUSSIAN_GRID, LOGIT_GRID, EffectModel
    from training.learners.linear import make_basis

    class KnotsCV(EffectModel):
        """The effect model with each continuous modifier's spline given 3 or ``alt_knots`` knots, chosen
        feature by feature (one greedy pass) by the model's own trial-grouped CV of the R-loss."""

        def _design(self, d, Fi=None):
            Pcols, Mcols, P, M = super()._design(d, Fi)
            mods = d.spec["names"] if self.modifiers is None else list(self.modifiers)
            alt = [c for c in make_basis(d.Fi, d.spec, alt_knots, self.splines, only=mods) if c["kind"] == "rcs"]
            F = d.Fi if Fi is None else Fi
            self.alt_ = np.array([False] * len(Mcols) + [True] * len(alt))
            return Pcols, Mcols + alt, P, np.hstack([M, basis(alt, F)]) if alt else M

        def modifier_prior(self, d, P, M, Mcols, lam_main, sigma2, prog):
            self.cv_, self.adaptive_, self.adaptive_weights_ = None, None, None
            self.knots_ = {}
            if M.shape[1] == 0 or self.interaction_sd is not None:
                sd = 0.0 if M.shape[1] == 0 else float(self.interaction_sd)
                return sd, (~self.alt_).astype(float), sigma2
            grid = self.interaction_grid or (GAUSSIAN_GRID if d.family == "gaussian" else LOGIT_GRID)
            feat = np.array([c["feature"] for c in Mcols])
            rcs = np.array([c["kind"] == "rcs" for c in Mcols])
            w = (~self.alt_).astype(float)
            sd, tab = self._select_sd(d, P, M * w, grid, lam_main, sigma2, prog)
            best = float(tab["r_loss"].min())
            for f in np.unique(feat[self.alt_]):
                cand = w.copy()
                cand[(feat == f) & rcs & ~self.alt_] = 0.0
                cand[(feat == f) & self.alt_] = 1.0
                s_c, tab_c = self._select_sd(d, P, M * cand, grid, lam_main, sigma2, prog)
                if float(tab_c["r_loss"].min()) < best:
                    w, sd, best = cand, s_c, float(tab_c["r_loss"].min())
                    self.knots_[d.spec["names"][f]] = alt_knots
            self.cv_ = tab
            return sd, w, sigma2

    return KnotsCV


def make_variant(name: str, cfg, seed: int, n_boot: int):
    from training.train import make_learner

    if name in ("effect_model", "effect_adaptive", "effect_pairs"):
        return make_learner(name, "continuous", cfg, seed, n_boot=n_boot)
    if name == "em_fine":  # the common prior SD's CV grid in steps of sqrt(2) instead of 2
        m = make_learner("effect_model", "continuous", cfg, seed, n_boot=n_boot)
        return m.set_params(interaction_grid=FINE_GRID)
    if name == "em_shape":  # the spline columns' prior SD relative to the linear ones by the same CV
        m = make_learner("effect_model", "continuous", cfg, seed, n_boot=n_boot)
        return _shape_cv()(**m.get_params())
    if name.startswith("em_kcv"):  # per-feature 3 or k knots (em_kcv4, em_kcv5) by the CV
        m = make_learner("effect_model", "continuous", cfg, seed, n_boot=n_boot)
        return _knots_cv(int(name[len("em_kcv"):]))(**m.get_params())
    if name.startswith("ep_f"):  # effect_pairs with k trial-grouped CV folds (default 5) for its SDs and pair screens
        m = make_learner("effect_pairs", "continuous", cfg, seed, n_boot=n_boot)
        return m.set_params(n_folds=int(name[len("ep_f"):]))
    if name.startswith("ep_n"):  # effect_pairs keeping the n best-screened pairs (default 3)
        m = make_learner("effect_pairs", "continuous", cfg, seed, n_boot=n_boot)
        m.n_pairs = int(name[len("ep_n"):])
        return m
    if name.startswith("em_k"):
        m = make_learner("effect_model", "continuous", cfg, seed, n_boot=n_boot)
        m.modifier_knots = int(name[len("em_k"):])  # the effect model's modifier-knots hook
        return m
    if name.startswith("ard_"):
        _, scale, gk, *tau = name.split("_")  # e.g. ard_hier_f4_0.5: hyperprior SD 0.5
        base = make_learner("effect_ard", "continuous", cfg, seed, n_boot=n_boot)
        extra = {"hyper_sd": float(tau[0])} if tau else {}
        return base.set_params(scale=scale, groups={"f": "feature", "s": "shape"}[gk[0]], modifier_knots=int(gk[1:]),
                               **extra)
    raise ValueError(f"unknown variant {name!r}")


def pain_task(scenario: str, seed: int) -> SimpleNamespace:
    """Pain at 3 months of a bench_learners scenario (``train>new`` or one design; new trials from
    seed + 10000), with the simulator's truth: the learners' inputs ``X``, ``y`` and ``NX``, each
    participant's class ``cls`` and ``trial`` (``ncls``, ``ntrial`` for the new trials), the
    comparators ``comps``/``ncomps``, who is in a comparative trial ``ok``/``nok``, the comparator
    mixes ``W``/``nW``, and the truths mixed the same way: ``t_mix`` (trial-specific), ``t_avg``
    (average trial), ``nt_mix`` (new trials); also ``cfg``, ``truth``, ``recols``, ``ntruth``, ``feats``."""
    from benchmarks.bench_learners import load_task
    from training.learners.stacking import comparator_mix

    train_s, _, new_s = scenario.partition(">")
    df, truth, cfg, recols = load_task(train_s, seed, "pain", "short")
    ndf, ntruth, _, _ = load_task(new_s or train_s, seed + 10_000, "pain", "short")
    feats = [c for c in (cfg.covariates.names + [f"baseline_{o}" for o in cfg.outcomes]) if c in df.columns]
    X, y = df[["trial", "treatment"] + feats], df["value"].to_numpy(float)
    cls, trial = df["treatment"].astype(str).to_numpy(), df["trial"].astype(str).to_numpy()
    comps = sorted(set(cls) - {cfg.active})
    ok = np.array([len(set(cls[trial == t]) - {cfg.active}) > 0 and (cls[trial == t] == cfg.active).any() for t in trial])
    W = comparator_mix(trial, cls, cfg.active, comps)
    t_mix = sum(W[:, i] * truth[f"benefit_vs_{c}"].to_numpy() for i, c in enumerate(comps))
    t_avg = t_mix - sum(W[:, i] * recols[c] for i, c in enumerate(comps))
    ncls, ntrial = ndf["treatment"].astype(str).to_numpy(), ndf["trial"].astype(str).to_numpy()
    ncomps = sorted(set(ncls) - {cfg.active})
    nok = np.array([len(set(ncls[ntrial == t]) - {cfg.active}) > 0 and (ncls[ntrial == t] == cfg.active).any()
                    for t in ntrial])
    nW = comparator_mix(ntrial, ncls, cfg.active, ncomps)
    nt_mix = sum(nW[:, i] * ntruth[f"benefit_vs_{c}"].to_numpy() for i, c in enumerate(ncomps))
    NX = ndf[["trial", "treatment"] + feats].assign(trial=lambda d: "new:" + d["trial"].astype(str))
    return SimpleNamespace(cfg=cfg, truth=truth, recols=recols, ntruth=ntruth, feats=feats, X=X, y=y, cls=cls,
                           trial=trial, comps=comps, ok=ok, W=W, t_mix=t_mix, t_avg=t_avg, NX=NX, ncls=ncls,
                           ntrial=ntrial, ncomps=ncomps, nok=nok, nW=nW, nt_mix=nt_mix)


def run(scenario: str, seed: int, variants: list, n_boot: int) -> list:
    from benchmarks.bench_learners import within_trial_sd
    from training.iecv import _benefit_mix

    d = pain_task(scenario, seed)
    cfg, truth, recols, ntruth = d.cfg, d.truth, d.recols, d.ntruth
    X, y, cls, trial, comps, ok, W, t_avg = d.X, d.y, d.cls, d.trial, d.comps, d.ok, d.W, d.t_avg
    NX, ncls, ntrial, ncomps, nok, nW, nt_mix, t_mix = d.NX, d.ncls, d.ntrial, d.ncomps, d.nok, d.nW, d.nt_mix, d.t_mix
    rows = []
    for name in variants:
        t0 = time.process_time()
        m = make_variant(name, cfg, seed, n_boot).fit(X, y)
        sec = time.process_time() - t0
        p = m.predict_interval(X)
        b = _benefit_mix(p, trial, cls, cfg.active, comps)
        hits = []
        for i, c in enumerate(comps):
            msk = ok & (W[:, i] > 0)
            ta = truth[f"benefit_vs_{c}"].to_numpy()[msk] - recols[c][msk]
            hits.append((ta >= p[f"benefit_vs_{c}_ci_low"].to_numpy()[msk]) & (ta <= p[f"benefit_vs_{c}_ci_high"].to_numpy()[msk]))
        pn = m.predict_interval(NX)
        bn = _benefit_mix(pn, ntrial, ncls, cfg.active, ncomps)
        hp = []
        for i, c in enumerate(ncomps):
            msk = nok & (nW[:, i] > 0)
            tc = ntruth[f"benefit_vs_{c}"].to_numpy()[msk]
            hp.append((tc >= pn[f"benefit_vs_{c}_pi_low"].to_numpy()[msk]) & (tc <= pn[f"benefit_vs_{c}_pi_high"].to_numpy()[msk]))
        rows.append({"scenario": scenario, "seed": seed, "variant": name,
                     "pehe": float(np.sqrt(np.mean((b[ok] - t_mix[ok]) ** 2))),
                     "pehe_avg": float(np.sqrt(np.mean((b[ok] - t_avg[ok]) ** 2))),
                     "pehe_new": float(np.sqrt(np.mean((bn[nok] - nt_mix[nok]) ** 2))),
                     "cov_ci_avg": float(np.concatenate(hits).mean()), "cov_pi_new": float(np.concatenate(hp).mean()),
                     "spread": within_trial_sd(b[ok], trial[ok]), "cpu_seconds": sec,
                     "interaction_sd": float(getattr(m, "interaction_sd_", np.nan)),
                     "shape_ratio": float(getattr(m, "shape_ratio_", np.nan)),
                     "more_knots": ";".join(sorted(getattr(m, "knots_", {}) or {}))})
        print(f"{scenario} seed {seed} {name}: pehe {rows[-1]['pehe']:.3f} avg {rows[-1]['pehe_avg']:.3f} "
              f"new {rows[-1]['pehe_new']:.3f}", flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--scenarios", nargs="+", default=["curvilinear", "interaction", "plateau>edge_trial", "hayden2020", "none"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--variants", nargs="+", default=["effect_model", "em_k4", "ard_ml2_f4"])
    ap.add_argument("--n-boot", type=int, default=50)
    a = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    warnings.simplefilter("ignore")
    rows = []
    with threadpool_limits(1):
        for sc in a.scenarios:
            for s in a.seeds:
                rows += run(sc, s, a.variants, a.n_boot)
    res = pd.DataFrame(rows)
    res.to_csv(a.out, index=False)
    summ = res.groupby(["scenario", "variant"], sort=False).mean(numeric_only=True).drop(columns="seed")
    summ.to_csv(a.out.replace(".csv", "_summary.csv"))
    print(summ.round(3).to_string())


if __name__ == "__main__":
    main()
