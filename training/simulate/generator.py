"""``simulate_dataset``: one synthetic pooled IPD dataset with its truth.

Order of work (each stage has its own random stream, spawned from the seed, so the stages
do not shift one another): trial effects → case-mix locations → participants (arm
allocation, latent covariates) → baseline recording → residuals and follow-up scores →
missingness → truth. Everything is vectorised over participants; loops run over trials,
outcomes and follow-ups only.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from training.instruments import BUILTIN
from training.simulate import model, outcomes, population, truth
from training.simulate.scenario import (COVARIATES, FOLLOW_UPS, LATENT, OUTCOMES, RECOVERY, SYNTHETIC_NOTE,
                                        Scenario, load_scenario)
from training.simulate.writer import write_dataset

TRUTH_CHUNK = 100_000  # participants per truth block (blocks run in threads; results do not depend on it)


@dataclass
class SimulatedData:
    """A simulated dataset.

    * ``participants``, ``outcomes``: the tables of the data format (what ``write`` saves).
    * ``truth``: one row per participant × follow-up × outcome with ``expected_<class>`` for
      every class and ``benefit_vs_<class>`` (positive = exercise better); never an input.
    * ``complete``: every participant's complete covariates (before missingness) and the
      baselines the model used (0–100), with trial, participant and treatment.
    * ``followup``: the reference harmonisation (one row per participant × follow-up: the
      0–100 pain and function the harmonisation should select, NaN where not observed,
      observed baselines and global recovery).
    * ``trial_effects``: per trial and outcome, the intercept, baseline slope and the random
      effect of every class.
    """

    scenario: Scenario
    seed: int
    participants: pd.DataFrame
    outcomes: pd.DataFrame
    truth: pd.DataFrame
    complete: pd.DataFrame
    followup: pd.DataFrame
    trial_effects: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def write(self, folder: str | Path, report: pd.DataFrame | None = None) -> Path:
        return write_dataset(self, Path(folder), report)


def _streams(seed: int) -> list[np.random.Generator]:
    ss = np.random.SeedSequence([int(seed), 20200]).spawn(6)
    return [np.random.default_rng(s) for s in ss]


def simulate_dataset(scenario: str | Scenario = "hayden2020", seed: int = 1,
                     n_participants: int | None = None) -> SimulatedData:
    """Simulate the scenario's trials (all arms resized to ``n_participants`` in total if given)."""
    scen = load_scenario(scenario).scaled(n_participants)
    r_trial, r_mix, r_part, r_out, r_miss, r_extra = _streams(seed)
    trials = scen.trials
    T = len(trials)
    sizes = np.array([t.size for t in trials], np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    n = int(starts[-1])

    te = model.draw_trial_effects(scen, r_trial)
    loc_t = population.trial_locations(scen, r_mix)

    # Participants: trial index, arm (randomly ordered within trial), class.
    tidx = np.repeat(np.arange(T), sizes)
    arm_label, arm_class, arm_sub = [], [], []
    for t in trials:
        lab = np.concatenate([np.full(a.n, j) for j, a in enumerate(t.arms)])
        arm_label.append(r_part.permutation(lab))
    arm_j = np.concatenate(arm_label)
    classes = list(scen.classes)
    arm_tab = [[(a.label, classes.index(a.treatment), a.subtype or "") for a in t.arms] for t in trials]
    flat = {(ti, j): v for ti, t in enumerate(arm_tab) for j, v in enumerate(t)}
    keys = tidx * 16 + arm_j
    uniq, inv = np.unique(keys, return_inverse=True)
    lab_u = np.array([flat[(k // 16, k % 16)][0] for k in uniq], dtype=object)
    cls_u = np.array([flat[(k // 16, k % 16)][1] for k in uniq])
    sub_u = np.array([flat[(k // 16, k % 16)][2] for k in uniq], dtype=object)
    cls = cls_u[inv]

    z = population.draw_latent(n, scen, r_part)
    x = population.transform(scen, z, {v: loc_t[v][tidx] for v in LATENT})

    # Baselines: recorded on the trial's instrument (rounded) where measured.
    instr_of = {o: [t.instruments[o] for t in trials] for o in OUTCOMES}
    base_used, base_raw = {}, {}
    for o in OUTCOMES:
        lat = np.clip(x[f"baseline_{o}"], 0.0, 100.0)
        used = lat.copy()
        raw = np.full(n, np.nan)
        for ti, code in enumerate(instr_of[o]):
            if code is None:
                continue
            sl = slice(starts[ti], starts[ti + 1])
            vals, _ = outcomes.to_raw(lat[sl], code, scen.precision(code))
            raw[sl] = vals
            used[sl] = BUILTIN[code].to_0_100(vals)
        base_used[o], base_raw[o] = used, raw
    x_model = dict(x)
    for o in OUTCOMES:
        x_model[f"baseline_{o}"] = base_used[o]

    means = model.expected_latent(scen, x_model, base_used, tidx, te)
    L = np.linalg.cholesky(model.residual_cov(scen))
    eps = r_out.standard_normal((n, 6)) @ L.T
    y_main = {}
    k = 0
    for f in FOLLOW_UPS:
        for o in OUTCOMES:
            y_main[(o, f)] = means.mu[(o, f)][np.arange(n), cls] + eps[:, k]
            k += 1

    # Missingness (MCAR within trial).
    obs = scen.raw.get("observation") or {}
    vm = obs.get("visit_missing") or {}
    im = float(obs.get("item_missing", 0.0))
    window_missing = {f: r_miss.random(n) < float(vm.get(f, 0.0)) for f in FOLLOW_UPS}
    item_missing = {(o, f): r_miss.random(n) < im for f in FOLLOW_UPS for o in OUTCOMES}
    base_missing = {o: r_miss.random(n) < float(scen.raw["covariates"][f"baseline_{o}"].get("missing_within", 0.0))
                    for o in OUTCOMES}
    cov_missing = {}
    for v in COVARIATES:
        within = r_miss.random(n) < float(scen.raw["covariates"][v].get("missing_within", 0.0))
        measured = np.array([t.id in scen.availability[v] for t in trials])[tidx]
        cov_missing[v] = within | ~measured

    rows = outcomes.long_rows(scen, starts, y_main, base_raw, base_missing, window_missing, item_missing, r_extra)

    trial_ids = np.array([t.id for t in trials], dtype=object)
    pid = np.concatenate([np.arange(1, s + 1, dtype=np.int64) for s in sizes])
    trial_cat = pd.Categorical.from_codes(tidx, categories=list(trial_ids))
    treat_cat = pd.Categorical.from_codes(cls, categories=classes)

    part = {"trial": trial_cat, "participant": pid,
            "arm": lab_u[inv], "treatment": treat_cat, "subtype": sub_u[inv]}
    for v in COVARIATES:
        val = x[v].astype(float).copy()
        val[cov_missing[v]] = np.nan
        if scen.raw["covariates"][v]["kind"] == "binary":
            part[v] = pd.array(np.where(np.isnan(val), 0, val).astype(np.int8), dtype="Int8")
            part[v][cov_missing[v]] = pd.NA
        else:
            part[v] = val
    participants = pd.DataFrame(part)
    participants.attrs["synthetic"] = SYNTHETIC_NOTE

    out_df = pd.DataFrame({
        "trial": pd.Categorical.from_codes(rows["trial"], categories=list(trial_ids)),
        "participant": rows["participant"],
        "outcome": pd.Categorical.from_codes(rows["outcome"].astype(np.int64), categories=list(OUTCOMES)),
        "instrument": pd.Categorical.from_codes(rows["instrument"].astype(np.int64), categories=list(BUILTIN)),
        "week": rows["week"],
        "value": rows["value"],
    })
    out_df.attrs["synthetic"] = SYNTHETIC_NOTE

    comp = {"trial": trial_cat, "participant": pid, "treatment": treat_cat}
    for v in COVARIATES:
        comp[v] = x[v]
    for o in OUTCOMES:
        comp[f"baseline_{o}"] = base_used[o]
    complete = pd.DataFrame(comp)

    truth_df, recov_obs = _truth(scen, means, base_used, tidx, cls, starts, trial_cat, pid, treat_cat)

    # Reference harmonisation of what was observed (for the report and tests).
    fu = []
    for f in FOLLOW_UPS:
        d = {"trial": trial_cat, "participant": pid, "treatment": treat_cat, "follow_up": f}
        vals = {}
        for o in OUTCOMES:
            measured = np.array([t.measures(o, f) for t in trials])[tidx]
            v = np.full(n, np.nan)
            for ti, code in enumerate(instr_of[o]):
                if code is None or not trials[ti].weeks.get(f):
                    continue
                sl = slice(starts[ti], starts[ti + 1])
                raw, _ = outcomes.to_raw(y_main[(o, f)][sl], code, scen.precision(code))
                v[sl] = BUILTIN[code].to_0_100(raw)
            v[~measured | window_missing[f] | item_missing[(o, f)]] = np.nan
            b = np.where(np.isnan(base_raw[o]) | base_missing[o], np.nan, base_used[o])
            vals[o] = v
            d[o] = v
            d[f"baseline_{o}"] = b
        d[RECOVERY] = recov_obs(vals, d)
        fu.append(pd.DataFrame(d))
    followup = pd.concat(fu, ignore_index=True)

    te_rows = []
    for ti, t in enumerate(trials):
        for oi, o in enumerate(OUTCOMES):
            r = {"trial": t.id, "outcome": o, "intercept": te.intercept[ti, oi], "baseline_slope": te.slope[ti, oi]}
            for ci, c in enumerate(classes):
                r[f"re_{c}"] = te.class_re[ti, ci, oi]
            te_rows.append(r)
    return SimulatedData(scen, int(seed), participants, out_df, truth_df, complete, followup,
                         pd.DataFrame(te_rows), {"n": n, "starts": starts})


def _truth(scen: Scenario, means: model.Means, base_used: dict, tidx: np.ndarray, cls: np.ndarray,
           starts: np.ndarray, trial_cat, pid, treat_cat):
    """Truth table (rows ordered trial, participant, follow-up, outcome) and the observed-recovery rule."""
    cfg = scen.config
    rel = float(cfg.recovery_relative)
    pts = {o: float(cfg.outcomes[o].recovery_min_points) for o in OUTCOMES}
    rho = float((scen.raw.get("residual_correlation") or {}).get("pain_function", 0.0))
    trials = scen.trials
    n = len(tidx)
    C = len(scen.classes)
    classes = list(scen.classes)
    active = classes.index(cfg.active)
    h = {o: np.array([scen.grid_step(t.instruments[o]) for t in trials])[tidx] for o in OUTCOMES}
    grids = {}
    for t in trials:
        for o in OUTCOMES:
            code = t.instruments[o]
            if code is not None and code not in grids:
                grids[code] = truth.grid_values(code, scen.precision(code))

    n_out = 3
    F = len(FOLLOW_UPS)
    n_ben = C - 1
    # One float block: expected_<class> for every class, then benefit_vs_<class> (non-active).
    block = np.empty((n, F, n_out, C + n_ben))
    measured = np.zeros((n, F, n_out), np.int8)
    code_of = {o: np.array([list(grids).index(t.instruments[o]) if t.instruments[o] else -1 for t in trials])[tidx]
               for o in OUTCOMES}
    grid_list = list(grids)
    others = [ci for ci in range(C) if ci != active]
    sign = np.array([1.0, 1.0, -1.0])  # pain/function: E_c - E_ex ; recovery: p_ex - p_c

    def work(lo: int, hi: int) -> None:
        """Truth for participants lo..hi (independent per participant; run in threads)."""
        for fi, f in enumerate(FOLLOW_UPS):
            zs = {}
            for oi, o in enumerate(OUTCOMES):
                mu = means.mu[(o, f)][lo:hi]
                sd = means.sd[(o, f)]
                block[lo:hi, fi, oi, :C] = truth.rounded_clipped_mean(mu, sd, h[o][lo:hi, None])
                z = np.empty(mu.shape)
                codes = code_of[o][lo:hi]
                b = base_used[o][lo:hi]
                for k in np.unique(codes):
                    m = codes == k
                    if k < 0:
                        z[m] = truth.recovery_z(mu[m], sd, b[m], rel, pts[o], None, 0.0)
                    else:
                        code = grid_list[k]
                        z[m] = truth.recovery_z(mu[m], sd, b[m], rel, pts[o], grids[code], scen.grid_step(code))
                zs[o] = z
            block[lo:hi, fi, 2, :C] = truth.recovery_probability(zs["pain"], zs["function"], rho,
                                                                 use[f][0][lo:hi], use[f][1][lo:hi])
            for oi in range(n_out):
                e = block[lo:hi, fi, oi, :C]
                block[lo:hi, fi, oi, C:] = sign[oi] * (e[:, others] - e[:, [active]])

    use = {}
    for fi, f in enumerate(FOLLOW_UPS):
        mp = np.array([t.measures("pain", f) for t in trials])
        mf = np.array([t.measures("function", f) for t in trials])
        none = ~mp & ~mf
        use[f] = ((mp | none)[tidx], (mf | none)[tidx])
        for oi, o in enumerate(OUTCOMES):
            measured[:, fi, oi] = np.array([t.measures(o, f) for t in trials], np.int8)[tidx]
        measured[:, fi, 2] = (mp | mf)[tidx]
    bounds = list(range(0, n, TRUTH_CHUNK)) + [n]
    pairs = list(zip(bounds[:-1], bounds[1:]))
    if len(pairs) > 1:
        with ThreadPoolExecutor(min(os.cpu_count() or 1, 8)) as pool:
            list(pool.map(lambda p: work(*p), pairs))
    elif pairs:
        work(*pairs[0])

    rows = n * F * n_out
    names = [f"expected_{c}" for c in classes] + [f"benefit_vs_{classes[ci]}" for ci in others]
    truth_df = pd.DataFrame(block.reshape(rows, C + n_ben), columns=names, copy=False)
    lead = {
        "trial": pd.Categorical.from_codes(np.repeat(tidx, 9), categories=list(trial_cat.categories)),
        "participant": np.repeat(pid, 9),
        "treatment": pd.Categorical.from_codes(np.repeat(cls, 9), categories=classes),
        "follow_up": pd.Categorical.from_codes(np.tile(np.repeat(np.arange(3), 3), n), categories=list(FOLLOW_UPS)),
        "outcome": pd.Categorical.from_codes(np.tile(np.arange(3), 3 * n), categories=list(OUTCOMES) + [RECOVERY]),
        "measured": measured.reshape(rows),
    }
    for i, (k, v) in enumerate(lead.items()):
        truth_df.insert(i, k, v)
    truth_df.attrs["synthetic"] = SYNTHETIC_NOTE

    def recov_obs(vals: dict, d: dict) -> np.ndarray:
        crit = []
        for o in OUTCOMES:
            b = d[f"baseline_{o}"]
            y = vals[o]
            imp = b - y
            met = (imp >= rel * b) & (imp >= pts[o])
            crit.append(np.where(np.isnan(b) | np.isnan(y), np.nan, met.astype(float)))
        crit = np.column_stack(crit)
        ev = ~np.isnan(crit)
        anyev = ev.any(1)
        return np.where(anyev, (np.where(ev, crit, 0).sum(1) > 0).astype(float), np.nan)

    return truth_df, recov_obs


def trial_effects_of(sim: SimulatedData) -> model.TrialEffects:
    """The trial random effects of ``sim`` (its ``trial_effects`` table) as arrays, in trial order."""
    scen = sim.scenario
    ids = [t.id for t in scen.trials]
    te = sim.trial_effects.assign(trial=sim.trial_effects["trial"].astype(str), outcome=sim.trial_effects["outcome"].astype(str))
    te = te.set_index(["trial", "outcome"])
    T, C = len(ids), len(scen.classes)
    a, b, u = np.zeros((T, 2)), np.zeros((T, 2)), np.zeros((T, C, 2))
    for ti, t in enumerate(ids):
        for oi, o in enumerate(OUTCOMES):
            r = te.loc[(str(t), o)]
            a[ti, oi], b[ti, oi] = r["intercept"], r["baseline_slope"]
            u[ti, :, oi] = [r[f"re_{c}"] for c in scen.classes]
    return model.TrialEffects(a, b, u)


def truth_with_trial_effects(sim: SimulatedData, te: model.TrialEffects) -> pd.DataFrame:
    """The truth table of ``sim`` (same rows and columns as ``sim.truth``) recomputed with the trial
    random effects ``te`` in place of the drawn ones; everything else is the participant's own:
    complete covariates, recorded baselines, and the design of the participant's trial (instruments
    and their rounding, which outcomes decide recovery). With ``trial_effects_of(sim)`` it
    reproduces ``sim.truth``."""
    scen = sim.scenario
    comp = sim.complete
    trial_cat = pd.Categorical(comp["trial"])
    treat_cat = pd.Categorical(comp["treatment"])
    tidx = np.asarray(trial_cat.codes, np.int64)
    cls = np.array([list(scen.classes).index(c) for c in treat_cat.categories])[treat_cat.codes]
    treat_cat = pd.Categorical.from_codes(cls, categories=list(scen.classes))
    base_used = {o: comp[f"baseline_{o}"].to_numpy(float) for o in OUTCOMES}
    x = {v: comp[v].to_numpy(float) for v in LATENT}
    means = model.expected_latent(scen, x, base_used, tidx, te)
    tdf, _ = _truth(scen, means, base_used, tidx, cls, sim.meta["starts"], trial_cat,
                    comp["participant"].to_numpy(), treat_cat)
    return tdf


def average_trial_truth(sim: SimulatedData) -> pd.DataFrame:
    """The truth in the *average trial*, per participant: :func:`truth_with_trial_effects` with every
    trial's random effects at their population mean (intercept 0, mean baseline slope, no class
    deviation: ``model.TrialEffects.population``) and the participant's own trial design. This is
    the estimand of the learners' confidence intervals (trial effects at their mean, not averaged
    over the trial distribution: for a binary outcome the two differ, the logit/probit link being
    non-linear); the trial-specific ``sim.truth`` is that of the prediction intervals."""
    return truth_with_trial_effects(sim, model.TrialEffects.population(sim.scenario, len(sim.scenario.trials)))


def design_averaged_truth(sim: SimulatedData, outcome: str, follow_up: str, weights: dict,
                          design: Scenario | None = None, trial_effects: "model.TrialEffects | None" = None) -> pd.DataFrame:
    """Per participant of ``sim`` (rows of ``sim.complete``): the expected outcome under every class
    and the benefits in the *average trial of a set of trial designs*, as a model with trial-specific
    intercepts defines it: every random effect at its mean, and the trial designs (instruments and
    their rounding, which outcomes decide recovery) of ``design``'s trials (default ``sim``'s own)
    averaged with ``weights`` ({trial id: weight}, e.g. the trial sizes of the training data; trials
    that do not measure the outcome at ``follow_up`` are left out) on the link scale - the logit for
    global recovery (a logistic model's average trial is the weighted mean of its trial intercepts on
    that scale), identity for pain and function. With ``trial_effects`` (e.g. ``trial_effects_of(design
    data)``) each design trial keeps its own intercept and baseline slope (class deviations still 0):
    the average over the realised trials on the link scale, which is what a fitted model's average of
    its trial intercepts estimates (the logit of a mean latent shift is not the mean of the logits).
    Columns ``expected_<class>``, ``benefit_vs_<class>``."""
    scen = sim.scenario
    dscen = design if design is not None else scen
    comp = sim.complete
    n = len(comp)
    x = {v: comp[v].to_numpy(float) for v in LATENT}
    base_used = {o: comp[f"baseline_{o}"].to_numpy(float) for o in OUTCOMES}
    pop = model.TrialEffects.population(scen, 1)
    means = model.expected_latent(scen, x, base_used, np.zeros(n, np.int64), pop)
    classes = list(scen.classes)
    if list(dscen.classes) != classes:
        raise ValueError("design_averaged_truth: the design scenario has other treatment classes")
    ids = [str(t.id) for t in dscen.trials]
    fi, oi = FOLLOW_UPS.index(follow_up), (list(OUTCOMES) + [RECOVERY]).index(outcome)
    binary = outcome == RECOVERY
    acc, wsum = np.zeros((n, len(classes))), 0.0
    cls = np.zeros(n, np.int64)
    treat_cat = pd.Categorical.from_codes(cls, categories=classes)
    for d, tid in enumerate(ids):
        w = float(weights.get(tid, 0.0))
        if w <= 0:
            continue
        tidx = np.full(n, d, np.int64)
        if trial_effects is not None:  # this trial's own intercept and slope, no class deviation
            own = model.TrialEffects(trial_effects.intercept[d:d + 1], trial_effects.slope[d:d + 1], pop.class_re)
            means = model.expected_latent(scen, x, base_used, np.zeros(n, np.int64), own)
        tdf, _ = _truth(dscen, means, base_used, tidx, cls, None, pd.Categorical.from_codes(tidx, categories=ids),
                        np.arange(n), treat_cat)
        rows = tdf.iloc[np.arange(n) * 9 + fi * 3 + oi]
        if not rows["measured"].to_numpy(bool).all():
            continue
        e = rows[[f"expected_{c}" for c in classes]].to_numpy(float)
        if binary:
            q = np.clip(e, 1e-12, 1 - 1e-12)
            e = np.log(q / (1 - q))
        acc += w * e
        wsum += w
    if wsum == 0:
        raise ValueError(f"design_averaged_truth: no weighted trial measures {outcome} at {follow_up}")
    e = acc / wsum
    if binary:
        e = 1.0 / (1.0 + np.exp(-e))
    out = pd.DataFrame(e, columns=[f"expected_{c}" for c in classes])
    act = classes.index(scen.config.active)
    for ci, c in enumerate(classes):
        if ci != act:
            diff = e[:, ci] - e[:, act]
            out[f"benefit_vs_{c}"] = -diff if binary else diff
    return out
