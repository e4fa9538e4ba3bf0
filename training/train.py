"""The training run: fit every benefit learner per outcome x follow-up, run IECV, select or
stack by the held-out benefit loss, and write a run folder.

Run folder::

    run.json                 settings, seed, synthetic flag, versions, timings, machine, selection
    report.md                readable summary (selection, pooled IECV metrics, class support)
    tasks.csv                per task: participants, trials, comparator trials, learners, selected
    class_support.csv        per task x comparator class: trials, participants, 'sparse' flag, own_weight
    models/<task>/<learner>.json    exported learners (plain JSON + LightGBM text; no pickle); a task without
                             IECV selection (effect model deployed) has no tree-learner exports
                             (TrainSettings.fit_unselectable)
    models/<task>/selected.json     the selected (or stacked) model
    summaries/<task>__effect_model.csv, __risk_model.csv   coefficients with bootstrap SEs
    summaries/<task>__trial_effects.csv   each trial's own effect beyond the selected model
                             (empirical-Bayes deviation per trial x comparator class)
    iecv/<task>/per_trial.csv, pooled.csv, r_loss.csv, stack_weights.json, folds.json, skipped.csv
    plots/<task>__iecv_forest.png, <task>__benefit_calibration.png
    network/<task>.json, <task>__card_network.json, status.json   the comparator network per continuous
                             task (settings.network; training.network.benefit_model)

``<task>`` = ``<outcome>__<follow_up>``. No participant-level data is written.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from training.determinism import training_environment
from training.learners.base import feature_spec_from_config, outcome_type_of, task_frame
from training.learners.effect_model import ConstantEffect, EffectModel
from training.learners.member_corr import REF_ROWS
from training.recovery_structure import attach as attach_structural
from training.learners.boosted import CrossFitCache, DRLearner, TLearner, XLearner, accepts_crossfit_cache
from training.learners.risk_model import RiskModel
from training.selection import (DEFAULT_LEARNERS, deployed_without_selection, learners_for, select_model, selectable,
                                without_inputs)
from training.train_plots import plots_and_subgroups
from training.train_network import NetworkStage
from training.train_report import write_iecv, write_report
from training.train_warnings import boundary_classes, separable_trials

LEARNERS = DEFAULT_LEARNERS  # owned by training.selection
# accepted by --learner, not fitted by default (BENCHMARKS.md: measured, not adopted)
OPTIONAL_LEARNERS = ("effect_ard",)
@dataclass
class TrainSettings:
    seed: int = 1
    learners: Sequence[str] = LEARNERS
    iecv_follow_ups: Sequence[str] | None = None  # default: the first (short-term) window
    # other windows (with IECV not disabled): IECV of the learner deployed there alone (no selection is made
    # for them, so the other learners' held-out predictions would not be used): the deployed model's
    # performance for every task at a fraction of the cost
    iecv_deployed_elsewhere: bool = True
    select: str = "stack"  # 'stack' | 'best' | 'best1se'
    n_boot_linear: int = 100
    n_boot_trees: int = 10
    iecv_metrics_boot: int = 30
    min_holdout_trials: int = 3
    iecv_max_folds: int | None = 20  # more held-out trials than this: held out in this many groups (training.iecv)
    workers: int = 2
    subgroup_boot: int = 50  # bootstrap replicates for IECV subgroup performance (0: skip it)
    network: bool = True  # also fit the one-stage IPD network model per continuous task (docs/network.md)
    network_method: str = "ipd"  # "ml-nmr": Bayesian ML-NMR of the IPD + network_aggregate (docs/network.md)
    network_aggregate: str | None = None  # aggregate arm CSV for ML-NMR ("default": the simulator's physio set)
    # with workers > 1: the network stage in a spawned process of its own, started before the IECV folds and final
    # fits and collected after them (training.train_network); same files either way
    network_concurrent: bool = True
    gate_z: float | None = 1.645  # keep a stack only if its cross-validated held-out gain over the average-effect
    # model exceeds gate_z trial-clustered SEs (training.learners.stack_gate); None: no gate
    # tasks without IECV selection deploy the effect model: the tree learners (T/X/DR, ~half the training
    # CPU) cannot be selected there and are not fitted unless fit_unselectable (their exports for the record)
    fit_unselectable: bool = False
    # the extrapolation widening of the deployed continuous models calibrated on the IECV held-out trials
    # (training.learners.support_calibration, session 12 s12e); False: the stated rule max(1, d / d_cut)^2
    calibrate_widening: bool = False
    # a stack's estimation SE: "sum" the members' SEs added (rho = 1, the rule before session 13); "joint"
    # sqrt(w' Sigma w) with the members' error correlation from the IECV folds' leave-one-trial-out refits
    # (training.learners.member_corr; exported as interval.member_corr)
    stack_se: str = "sum"


@dataclass
class TrainResult:
    out: Path
    tasks: pd.DataFrame
    selected: dict
    iecv: dict = field(default_factory=dict)
    seconds: float = 0.0


def make_learner(name: str, outcome_type: str, cfg, seed: int, n_boot: int | None = None, boot_trees: int = 10,
                 boot_linear: int = 100):
    """A fresh learner by name with the study's classes and features."""
    common = dict(outcome_type=outcome_type, active=cfg.active, classes=list(cfg.treatment_classes),
                  features=feature_spec_from_config(cfg), random_state=seed)
    bl = boot_linear if n_boot is None else n_boot
    bt = boot_trees if n_boot is None else n_boot
    opts = getattr(cfg, "train", None) or {}
    shrink = dict(class_shrinkage=bool(opts.get("class_shrinkage", True)),
                  class_groups=[list(v) for v in getattr(cfg, "comparisons", {}).values()] or None)
    if name == "constant":
        return ConstantEffect(n_boot=bl, **shrink, **common)
    if name in ("effect_model", "effect_adaptive", "effect_pairs"):
        # effect_adaptive: the same model with feature-wise prior SDs (training.learners.adaptive), a second,
        # differently shrunk candidate for the stack and the heterogeneity gate (BENCHMARKS.md, issue 23);
        # effect_pairs: plus product columns of screened modifier pairs (training.learners.pairs)
        return EffectModel(n_boot=bl, missing=opts.get("missing", "conditional_mean"),
                           n_imputations=int(opts.get("imputations", 5)),
                           adaptive="always" if name == "effect_adaptive" else False,
                           pairs=name == "effect_pairs", **shrink, **common)
    if name == "effect_ard":
        # a candidate member outside the default: per-feature prior variances by marginal likelihood
        # (training.learners.ard; BENCHMARKS.md, issue 23 session 9)
        from training.learners.ard import ARDEffectModel

        return ARDEffectModel(n_boot=bl, missing=opts.get("missing", "conditional_mean"),
                              n_imputations=int(opts.get("imputations", 5)), **shrink, **common)
    if name == "risk_model":
        return RiskModel(n_boot=bl, **common)
    if name == "t_learner":
        return TLearner(n_boot=bt, **common)
    folds = 3 if n_boot == 0 else 5  # inside IECV: 3 trial-grouped cross-fitting folds
    if name == "x_learner":
        return XLearner(n_boot=bt, boot_folds=2, n_folds=folds, **common)
    if name == "dr_learner":
        return DRLearner(n_boot=bt, boot_folds=2, n_folds=folds, **common)
    raise ValueError(f"unknown learner {name!r}; choose from {', '.join(LEARNERS + OPTIONAL_LEARNERS)}")


def _tasks(analysis: pd.DataFrame, cfg, empty: list | None = None) -> list:
    """(outcome, follow-up, rows) of every task with data; tasks of the config that cannot be formed
    are appended to ``empty`` as task rows saying why."""
    out = []
    named = list(getattr(cfg, "all_outcomes", cfg.outcomes))
    outcomes = list(dict.fromkeys(named + sorted(set(analysis["outcome"]) - set(named))))
    for o in outcomes:
        spec = cfg.outcome(o) if hasattr(cfg, "outcome") else None
        for w in cfg.window_names:
            if spec is not None and spec.follow_up is not None and w not in spec.follow_up:
                continue
            df = task_frame(analysis, o, w)
            if len(df) == 0:
                if empty is not None and spec is not None:
                    need = " and a baseline" if cfg.has_baseline(o) else ""
                    empty.append({"task": f"{o}__{w}", "outcome": o, "follow_up": w, "outcome_type": cfg.outcome_type(o),
                                  "participants": 0, "trials": 0, "comparator_trials": 0,
                                  "status": f"not formed: no participant has a measurement in window {w!r}{need}"})
                continue
            out.append((o, w, df))
    return out


def _xy(df: pd.DataFrame, cfg):
    feats = feature_spec_from_config(cfg)["names"]
    cols = ["trial", "treatment"] + [c for c in feats if c in df.columns]
    return df[cols].copy(), df["value"].to_numpy(float)


def run_training(analysis: pd.DataFrame, cfg, out: Path, settings: TrainSettings | None = None,
                 synthetic: bool = False, progress: Callable | None = None, log: Callable | None = None) -> TrainResult:
    """Fit, cross-validate (IECV), select and write the run folder ``out``."""
    from threadpoolctl import threadpool_limits

    from training.iecv import assemble_iecv, holdout_trials, plan_iecv

    s = settings or TrainSettings()
    say = log or (lambda msg: None)
    t_start = time.time()
    out = Path(out)
    for sub in ("models", "iecv", "summaries", "plots"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    iecv_fus = list(s.iecv_follow_ups) if s.iecv_follow_ups is not None else cfg.window_names[:1]
    task_rows, support_rows, selected, iecv_res, pooled_all, timings = [], [], {}, {}, [], {}
    deployed_iecv: dict = {}  # task -> IECV of the learner deployed without selection (iecv_deployed_elsewhere)
    jobs, task_info, task_xy, plans = [], {}, {}, {}  # plans: (task, "all" | "deployed") -> IECV plan
    with threadpool_limits(1), contextlib.ExitStack() as stack:
        for outcome, fu, df in _tasks(analysis, cfg, task_rows):
            task = f"{outcome}__{fu}"
            otype = outcome_type_of(outcome, cfg)
            min_size = int(getattr(cfg, "min_trial_size", 1))
            hold = holdout_trials(df, cfg.active, min_size)
            row = {"task": task, "outcome": outcome, "follow_up": fu, "outcome_type": otype,
                   "participants": len(df), "trials": df["trial"].nunique(), "comparator_trials": len(hold)}
            if not holdout_trials(df, cfg.active):
                task_rows.append({**row, "status": "no trial compares the active class with a comparator"})
                continue
            X, y = _xy(df, cfg)
            sep = boundary_classes(df, otype)
            if sep:  # separation: said, and recorded for the card's limitations
                row["separation"] = "; ".join(sep)
                say(f"{task}: {row['separation']}: separation (no maximum-likelihood logistic fit); the learners' "
                    "logistic fits use Firth's bias-reduced estimate there, whose intervals still rest on few participants")
            learners = learners_for(s.learners, otype, default=tuple(s.learners) == LEARNERS)
            if len(learners) < len(s.learners):
                only = "binary" if otype == "continuous" else "continuous"
                say(f"{task}: {', '.join(n for n in s.learners if n not in learners)} not fitted ({only} outcomes "
                    "only)")
            bare = without_inputs(learners, X.shape[1] - 2)  # X: trial, treatment and the task's candidate modifiers
            if bare:
                learners = [n for n in learners if n not in bare]
                say(f"{task}: {', '.join(bare)} not fitted (no candidate modifier: the study declares no covariates "
                    "and the outcome has no baseline; the model predicts the average effect)")
            if fu in iecv_fus and len(hold) >= s.min_holdout_trials:
                grouped = s.iecv_max_folds is not None and len(hold) > s.iecv_max_folds
                say(f"IECV {task}: {len(hold)} held-out trials" + (f" in {s.iecv_max_folds} groups" if grouped else "")
                    + f" x {len(learners)} learners")
                factories = {n: (lambda n=n, otype=otype: make_learner(n, otype, cfg, s.seed, n_boot=0))
                             for n in learners}
                plans[(task, "all")] = plan_iecv(X.assign(_y=y), "_y", factories, otype, cfg.active,
                                                 n_boot=s.iecv_metrics_boot, seed=s.seed, min_trial_size=min_size,
                                                 max_folds=s.iecv_max_folds,
                                                 ref_rows=REF_ROWS if s.stack_se == "joint" and s.select == "stack" else 0)
            elif iecv_fus and s.iecv_deployed_elsewhere and len(hold) >= s.min_holdout_trials:
                name = deployed_without_selection(learners)
                say(f"IECV {task}: {len(hold)} held-out trials x the learner deployed without selection ({name})")
                plans[(task, "deployed")] = plan_iecv(
                    X.assign(_y=y), "_y", {name: (lambda otype=otype: make_learner(name, otype, cfg, s.seed, n_boot=0))},
                    otype, cfg.active, n_boot=s.iecv_metrics_boot, seed=s.seed, min_trial_size=min_size)
            task_info[task] = (outcome, fu, otype, row, None)
            task_xy[task] = (X, y)
            here = selectable(learners, (task, "all") in plans or s.fit_unselectable)
            if len(here) < len(learners):
                say(f"{task}: no IECV selection, the effect model is deployed; not fitted (cannot be selected): "
                    + ", ".join(n for n in learners if n not in here))
            for group in _groups(here):
                jobs.append((task, otype, group, X, y))
        say(f"IECV folds and final fits: {sum(len(p['hold']) for p in plans.values())} folds and {len(jobs)} "
            f"fit jobs on {s.workers} worker(s)")
        network = None
        if s.network:  # it reads only the tasks' data: started first, it runs beside the folds and fits
            net_tasks = [(o, fu, otype, task_frame(analysis, o, fu)) for t, (o, fu, otype, _r, _res) in task_info.items()]
            concurrent = s.network_concurrent and s.workers > 1
            if concurrent:
                say(f"network stage ({s.network_method}): {len(net_tasks)} task(s) in a separate process, beside "
                    "the IECV folds and final fits")
            network = NetworkStage(concurrent, out, analysis, net_tasks, feature_spec_from_config(cfg),
                                   s.network_method, s.network_aggregate, s.seed)
            stack.callback(network.close)  # a run failing before it collects the stage stops its process
        t_fit = time.time()
        # a plan whose folds are all in is assembled (pooling, the stack's per-trial metrics) by this process
        # while the pool runs the remaining folds and fits: the same call on the same outputs, off the critical path
        assembled: dict = {}

        def _assemble(key, outs_k):
            t = time.time()
            assembled[key] = assemble_iecv(plans[key], outs_k)
            timings["iecv_assembled_during_pool_s"] = round(timings.get("iecv_assembled_during_pool_s", 0.0)
                                                            + time.time() - t, 2)

        fold_outs, fold_secs, fitted_all = _run_all(plans, jobs, cfg, s, progress, on_plan=_assemble)
        fit_seconds = time.time() - t_fit
        for (task, kind), plan in plans.items():
            res = assembled.pop((task, kind), None)
            if res is None:  # a plan without folds
                res = assemble_iecv(plan, fold_outs[(task, kind)])
            timings[task] = {"iecv_s": round(fold_secs[(task, kind)], 2)}
            if kind == "all":
                iecv_res[task] = res
                write_iecv(out / "iecv" / task, res)
                pooled_all.append(res.pooled.assign(task=task))
                task_info[task] = task_info[task][:4] + (res,)
            else:
                deployed_iecv[task] = res
        sg_parts = []
        for task, (outcome, fu, otype, row, res) in task_info.items():
            fitted = {n: fitted_all[(task, n)] for n in s.learners if (task, n) in fitted_all}
            failed = {n: fitted_all[("__failed__", task, n)] for n in s.learners if ("__failed__", task, n) in fitted_all}
            for n, why in failed.items():
                say(f"{task}: learner {n} not fitted ({why})")
            if not fitted:
                task_rows.append({**row, "status": "no learner could be fitted: " + "; ".join(f"{n}: {w}" for n, w in failed.items())})
                continue
            mdir = out / "models" / task
            mdir.mkdir(parents=True, exist_ok=True)
            for n, lr in fitted.items():
                exp = lr.to_export()
                exp["meta"].update({"outcome": outcome, "follow_up": fu, "learner": n})
                (mdir / f"{n}.json").write_text(json.dumps(exp), "utf-8")
                if n in ("effect_model", "risk_model", "constant"):
                    lr.summary().to_csv(out / "summaries" / f"{task}__{n}.csv", index=False)
            # the effect model's own share of each class's average effect after class shrinkage (the card
            # says which classes' effects are mostly borrowed from their comparison set)
            shr = fitted["effect_model"].export_["meta"].get("class_shrinkage") or {} if "effect_model" in fitted else {}
            for c, v in next(iter(fitted.values())).export_["meta"]["support"].items():
                own = {"own_weight": float(shr[c]["weight_own"])} if "weight_own" in shr.get(c, {}) else {}
                support_rows.append({"task": task, "comparator": c, **v, **own})
            sel, how = select_model(fitted, res, s)
            if res is None and task in deployed_iecv and deployed_iecv[task].pooled is not None \
                    and how["model"] in set(deployed_iecv[task].pooled["learner"]):
                res = deployed_iecv[task]  # the deployed model's own held-out performance (it selected nothing)
                how = {**how, "rule": "effect model without selection (penalty by grouped CV); its own IECV "
                                      "(this learner alone)", "iecv": "deployed learner only"}
                iecv_res[task] = res
                write_iecv(out / "iecv" / task, res)
                pooled_all.append(res.pooled.assign(task=task))
            sexp = sel.to_export()
            if s.calibrate_widening:  # the extrapolation widening fitted on the held-out trials
                from training.learners.support_calibration import calibrate_selected, with_inflation

                field = calibrate_selected(sexp, task_xy[task][0], res, how, cfg.active, s.seed)
                if field is not None:
                    sexp = with_inflation(sexp, field)
                    how = {**how, "support_calibration": {k: v for k, v in field.items() if k != "form"}}
            sexp.setdefault("meta", {}).update({"outcome": outcome, "follow_up": fu, "selection": how})
            (mdir / "selected.json").write_text(json.dumps(sexp), "utf-8")
            _trial_effects(sel, *task_xy[task]).to_csv(out / "summaries" / f"{task}__trial_effects.csv", index=False)
            selected[task] = how
            timings.setdefault(task, {})["fit_s"] = round(sum(fitted_all.get(("__t__", task, n), 0.0) for n in s.learners), 2)
            task_rows.append({**row, "status": "ok", "selected": how["model"], "iecv": res is not None,
                              "iecv_learners": ("deployed learner only" if how.get("iecv") else "all learners (selection)")
                              if res is not None else "",
                              **({"learners_not_fitted": "; ".join(f"{n}: {w}" for n, w in failed.items())} if failed else {})})
            if res is not None:
                sg_parts.append((out / "plots", task, res, how, otype))
        sg_parts = plots_and_subgroups(sg_parts, s.workers, s.subgroup_boot, s.seed)
        if sg_parts:
            pd.concat(sg_parts, ignore_index=True).to_csv(out / "subgroup_performance.csv", index=False)
        timings["iecv_and_final_fits_wall_s"] = round(fit_seconds, 1)
        network_status = None
        if network is not None:
            t_wait = time.time()
            network_status, lines, net_s = network.result()
            for ln in lines:
                say(ln)
            timings["network_s"] = round(net_s, 2)
            if network.concurrent:  # how long the run waited for it after everything else was done
                timings["network_wait_s"] = round(time.time() - t_wait, 2)
    attach_structural(out, cfg, task_info, say)  # recovery's structural missing-input allowance (issue 23)
    tasks = pd.DataFrame(task_rows)
    tasks.to_csv(out / "tasks.csv", index=False)
    pd.DataFrame(support_rows).to_csv(out / "class_support.csv", index=False)
    pooled = pd.concat(pooled_all, ignore_index=True) if pooled_all else pd.DataFrame()
    secs = time.time() - t_start
    run = {
        "command": "lbp-benefit train", "seed": s.seed, "synthetic": synthetic, "study": cfg.name,
        "config_source": cfg.source, "learners": list(s.learners), "select": s.select,
        "iecv_follow_ups": iecv_fus, "iecv_max_folds": s.iecv_max_folds, "n_boot_linear": s.n_boot_linear, "n_boot_trees": s.n_boot_trees,
        "selection": selected, "network": network_status, "timings": timings, "seconds": round(secs, 1), "machine": _machine(),
        "versions": _versions(), "training_environment": training_environment(),
    }
    (out / "run.json").write_text(json.dumps(run, indent=2, default=str), "utf-8")
    held = sorted({h for r in iecv_res.values() for h in r.folds})
    case_mix = separable_trials(analysis, held, feature_spec_from_config(cfg)["names"]) if held else {}
    write_report(out, tasks, pooled, iecv_res, selected, support_rows, synthetic, secs, case_mix)
    return TrainResult(out, tasks, selected, iecv_res, secs)


def _trial_effects(model, X: pd.DataFrame, y: np.ndarray) -> pd.DataFrame:
    """Each training trial's own effect beyond the selected model (empirical-Bayes deviation per
    trial x comparator class; ``training.learners.trial_specific``): trial-level, no participants."""
    from training.learners.trial_specific import InTrialBenefit

    return InTrialBenefit(model).fit(X, y).summary()


def _groups(learners) -> list:
    """Jobs: the linear learners together, and the tree learners together (T, X and DR share
    their outcome boosters and cross-fits through one ``CrossFitCache``)."""
    lin = [n for n in learners if n in ("constant", "effect_model", "effect_adaptive", "effect_ard", "effect_pairs",
                                        "risk_model")]
    xdr = [n for n in learners if n in ("t_learner", "x_learner", "dr_learner")]
    rest = [n for n in learners if n not in lin + xdr]
    return [g for g in [lin, xdr] + [[n] for n in rest] if g]


_JOBS: dict = {}


def _fit_job(i: int):
    task, otype, group, X, y = _JOBS["jobs"][i]
    cfg, s = _JOBS["cfg"], _JOBS["settings"]
    out = {}
    from threadpoolctl import threadpool_limits

    cache = CrossFitCache()  # the group's boosted learners share outcome boosters and cross-fits
    with threadpool_limits(1):
        for n in group:
            t = time.time()
            lr = make_learner(n, otype, cfg, s.seed, boot_trees=s.n_boot_trees, boot_linear=s.n_boot_linear)
            try:
                if accepts_crossfit_cache(lr):
                    lr.fit(X, y, crossfit_cache=cache)
                else:
                    lr.fit(X, y)
            except (ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
                # One learner that cannot be fitted on these data (e.g. tree learners on tiny trials)
                # is left out of this task with the reason; the others go on.
                out[("__failed__", task, n)] = f"{type(exc).__name__}: {exc}"
                continue
            for attr in ("boot_predictions_", "boot_arm_predictions_"):
                if hasattr(lr, attr):
                    delattr(lr, attr)
            out[(task, n)] = lr
            out[("__t__", task, n)] = time.time() - t
    return out


def _run_item(item: tuple):
    """One unit of :func:`_run_all`: ("fold", plan key, k) or ("fit", job index)."""
    from threadpoolctl import threadpool_limits

    from training.iecv import run_fold

    t = time.time()
    if item[0] == "fold":
        with threadpool_limits(1):
            out = run_fold(_JOBS["plans"][item[1]], item[2])
    else:
        out = _fit_job(item[1])
    return item, out, time.time() - t


def _run_all(plans: dict, jobs: list, cfg, s: TrainSettings, progress, on_plan: Callable | None = None):
    """Every IECV fold of every task and every final-fit job in one pool of ``s.workers`` forked
    processes, longest first (tree-learner fits, linear fits, six-learner folds, single-learner
    folds), so that no worker waits at a task's end for the other's last fold. Every unit is
    deterministic on its own (its own seeds), so the results do not depend on the schedule.
    ``on_plan(key, outputs in fold order)`` is called in this process as soon as the last fold of
    plan ``key`` is in (while the pool works on), e.g. to assemble the plan's IECV result.
    Returns (fold outputs per plan in fold order, worker seconds per plan, fitted learners)."""
    global _JOBS
    trees = ("x_learner", "dr_learner", "t_learner")
    fits = sorted(range(len(jobs)), key=lambda i: -sum(n in trees for n in jobs[i][2]))
    folds = [("fold", key, k) for key, p in plans.items() for k in range(len(p["hold"]))]
    folds.sort(key=lambda it: -len(plans[it[1]]["learners"]))  # stable: task order within a size
    items = [("fit", i) for i in fits] + folds
    _JOBS = {"jobs": jobs, "cfg": cfg, "settings": s, "plans": plans}
    outs: dict = {}
    left = {key: len(p["hold"]) for key, p in plans.items()}

    def take(r):
        outs[r[0]] = r[1:]
        if r[0][0] == "fold" and on_plan is not None:
            key = r[0][1]
            left[key] -= 1
            if left[key] == 0:
                on_plan(key, [outs[("fold", key, k)][0] for k in range(len(plans[key]["hold"]))])

    try:
        if s.workers > 1 and len(items) > 1:
            import multiprocessing as mp

            with mp.get_context("fork").Pool(s.workers) as pool:
                it = pool.imap_unordered(_run_item, items)
                for r in (it if progress is None else progress(it, "IECV and final fits", total=len(items))):
                    take(r)
        else:
            for item in (items if progress is None else progress(items, "IECV and final fits")):
                take(_run_item(item))
    finally:
        _JOBS = {}
    fitted: dict = {}
    for i in fits:
        fitted.update(outs[("fit", i)][0])
    fold_outs = {key: [outs[("fold", key, k)][0] for k in range(len(p["hold"]))] for key, p in plans.items()}
    fold_secs = {key: sum(outs[("fold", key, k)][1] for k in range(len(p["hold"]))) for key, p in plans.items()}
    return fold_outs, fold_secs, fitted


def _machine() -> dict:
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = None
    cpu = ""
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:  # pragma: no cover
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "loadavg": load, "python": platform.python_version()}


def _versions() -> dict:
    import lightgbm
    import sklearn

    return {"numpy": np.__version__, "pandas": pd.__version__, "lightgbm": lightgbm.__version__,
            "scikit-learn": sklearn.__version__}
