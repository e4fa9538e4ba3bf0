"""The card's sections, each as Markdown lines and JSON-able data built from the same numbers.

Every section is built from :class:`training.cards.inputs.CardInputs` (the run's report folder
and the artifact manifest) plus the fixed wording in :mod:`training.cards.text`. Only aggregate
numbers enter (per trial, per task, per subgroup); no participant-level data.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from training.cards import text as T
from training.cards.format import fci, fnum, jnum, md_table, records, sig  # noqa: F401 - shared with regulatory
from training.cards.data_sections import (comparator_flags, covariate_summary, s_comparators,  # noqa: F401
                                          s_modifiers, s_training_data)
from training.cards.inputs import CardInputs
from training.selection import fitted_labels
from training.cards.study import binary_text, study_words
from training.cards.interpret import interpret
from training.cards.section import (NA, SECTION_IDS, SECTION_ORDER, Section, feature_schema,  # noqa: F401
                                    headline_learner, n_trials_manifest, names, outcome_type_of)


def s_model_details(inp: CardInputs) -> Section:
    m, run = inp.manifest, inp.run
    s = Section("model_details", dict(SECTION_ORDER)["model_details"])
    sel_rows, sel_data = [], {}
    for task in inp.task_names():
        how = inp.selection.get(task)
        row = inp.tasks[inp.tasks["task"] == task].iloc[0]
        status = str(row.get("status", "ok"))
        if how is None:
            sel_rows.append([task, NA if status == "ok" else f"not trained: {status}", ""])
            sel_data[task] = {"status": status}
            continue
        w = how.get("weights")
        wtxt = ", ".join(f"{k} {v:.2f}" for k, v in sorted(w.items())) if w else ""
        sel_rows.append([task, how.get("model", NA) + (f" ({wtxt})" if wtxt else ""), how.get("rule", "")])
        sel_data[task] = {"model": how.get("model"), "rule": how.get("rule"),
                          "weights": {k: jnum(v) for k, v in sorted((w or {}).items())} or None,
                          "best_single": how.get("best_single")}
    data = {
        "model_id": m.get("model_id"),
        "created": m.get("created"),
        "package": "lbp-benefit",
        "package_version": m.get("package_version"),
        "artifact_schema_version": m.get("schema_version"),
        "git_commit": m.get("git_commit"),
        "seed": m.get("seed", run.get("seed")),
        "synthetic": inp.synthetic,
        "training_data_fingerprint": (m.get("training_data") or {}).get("fingerprint"),
        "training_environment": m.get("training_environment"),
        "study": run.get("study"),
        "learners_fitted": fitted_labels(list(run.get("learners") or [])),
        "selection_rule": run.get("select"),
        "selected_by_task": sel_data,
        "license": m.get("license", "Apache-2.0"),
        "developer": m.get("developer", "lbp-benefit developers"),
        "contact": m.get("contact"),
        "output": ("Per patient, outcome and follow-up: predicted benefit of exercise therapy vs each available "
                   "comparator class (positive = exercise better; 0–100 points for pain and function, risk "
                   "difference for global recovery) with a 95% confidence interval (the average patient like this) "
                   "and a 95% prediction interval (a new clinic); for pain and function the probability that the "
                   "benefit exceeds the smallest worthwhile effect in four verdict words; the expected outcome under "
                   "exercise and under each comparator (recovery: the probability, as people per 100), with a 95% "
                   "CI wherever the task's learner holds per-arm uncertainty (every task of a model trained with the "
                   "default bootstrap; which tasks: What a clinician sees) and 'no interval available' said "
                   "otherwise; unavailable classes are reported as such."),
        "how_predictions_are_calculated": ("The artifact stores each task's selected model as plain JSON (linear "
                                           "coefficients, imputation model) and LightGBM text; the runtime scorer "
                                           "(`predict`) evaluates it; the HTTP API and CDS Hooks service serve it."),
        "input_handling": ("Requests are validated against the feature schema: values outside the plausible range or "
                           "of the wrong type are refused with a message; missing covariates are allowed and imputed "
                           "(conditional mean under the pooled two-level normal model); the card and API say so."),
    }
    W = study_words(m, inp.synthetic)
    if not W.default:  # a user's study: its intervention and outcome kinds, not the default study's
        iv = W.intervention
        data["output"] = (f"Per patient, outcome and follow-up: predicted benefit of {iv} vs each available comparator "
                          f"class (positive = {iv} better; 0–100 points for continuous outcomes, a risk difference of the "
                          "good result for binary ones) with a 95% confidence interval (the average patient like this) "
                          "and a 95% prediction interval (a new clinic); the probability that the benefit exceeds the "
                          "outcome's smallest worthwhile effect in four verdict words, where the study config sets one; "
                          f"the expected outcome under {iv} and under each comparator (binary outcomes: the probability, "
                          "as people per 100), with a 95% CI wherever the task's learner holds per-arm uncertainty and "
                          "'no interval available' said otherwise; unavailable classes are reported as such.")
        data["study_keywords"] = list(W.keywords)
    s.data = data
    s.md += md_table(["item", "value"], [
        ["model id", f"`{data['model_id']}`"],
        ["created", data["created"]],
        ["package version", data["package_version"] or NA],
        ["artifact schema", data["artifact_schema_version"] or NA],
        ["git commit", f"`{data['git_commit']}`" if data["git_commit"] else NA],
        ["seed", data["seed"] if data["seed"] is not None else NA],
        ["training data", "SYNTHETIC (calibrated simulator)" if inp.synthetic else "real pooled trial IPD"],
        ["training data fingerprint", f"`{data['training_data_fingerprint']}`" if data["training_data_fingerprint"] else NA],
        ["study config", data["study"] or NA],
        ["learners fitted", ", ".join(data["learners_fitted"]) or NA],
        ["build", build_text(data["training_environment"])],
        ["license", data["license"]],
        ["developer", data["developer"] + (f" ({data['contact']})" if data["contact"] else "")],
    ])
    s.md += ["", "**Output.** " + data["output"], "",
             "**How predictions are calculated.** " + data["how_predictions_are_calculated"], "",
             "**Input handling at deployment.** " + data["input_handling"], "",
             "**Selected model per task** (outcome × follow-up):", ""]
    s.md += md_table(["task", "selected model", "rule"], sel_rows)
    return s


def build_text(env: dict | None) -> str:
    """Which build the card describes: the packages and BLAS kernels the model was trained with, and
    how far another build may differ (training/determinism.py)."""
    if not env:
        return NA + " (trained before the training environment was recorded)"
    pk = env.get("packages") or {}
    versions = ", ".join(f"{k} {v}" for k, v in pk.items() if k in ("numpy", "scipy", "scikit-learn", "lightgbm") and v)
    kernels = sorted({str(b.get("architecture")) for b in env.get("blas") or [] if b.get("architecture")})
    how = ("the pinned OpenBLAS kernels (" + ", ".join(kernels) + ")" if env.get("blas_kernels_pinned")
           else "OpenBLAS kernels " + (", ".join(kernels) or "unknown") + " (not the pinned ones)")
    return (f"Python {env.get('python')} on {env.get('machine')}; {versions}; {how}. Training with the versions of "
            "requirements.lock and the pinned kernels (x86_64 with AVX2) rebuilds this model id; other package "
            "versions or BLAS kernels give another model id: the rounding of the fits differs (on the small test "
            "model three kernel families gave three ids whose scores differed by at most 2e-11 points), and a "
            "choice made by comparing near-equal values (penalty, stacking weights) can then flip.")


def s_intended_use(inp: CardInputs) -> Section:
    s = Section("intended_use", dict(SECTION_ORDER)["intended_use"])
    W = study_words(inp.manifest, inp.synthetic)
    s.data = {"uses": list(W.intended_use), "users": list(W.intended_users), "settings": list(W.intended_settings),
              "decision_role": "informs", "expertise": W.expertise}
    if inp.synthetic:
        s.md += ["Because this model is synthetic, the uses below describe what the *method* is for; this "
                 "model itself is for demonstration, testing and methods research only.", ""]
    s.md += ["**Uses**", ""] + [f"- {x}" for x in W.intended_use]
    s.md += ["", "**Users**", ""] + [f"- {x}" for x in W.intended_users]
    s.md += ["", "**Settings**", ""] + [f"- {x}" for x in W.intended_settings]
    s.md += ["", "**Expertise.** " + s.data["expertise"]]
    return s


def s_out_of_scope(inp: CardInputs) -> Section:
    s = Section("out_of_scope", dict(SECTION_ORDER)["out_of_scope"])
    items = list(study_words(inp.manifest, inp.synthetic).out_of_scope)
    if not inp.synthetic:
        items = items[1:]
    unavailable, sparse = comparator_flags(inp)
    if unavailable:
        items.append("Comparator classes with no trial in the training data (no prediction): " + ", ".join(unavailable) + ".")
    s.data = {"items": items}
    s.md += [f"- {x}" for x in items]
    return s


def s_methods(inp: CardInputs) -> Section:
    run = inp.run
    s = Section("methods", dict(SECTION_ORDER)["methods"])
    learners = list(run.get("learners") or [])
    data = {
        "framework": "PATH (Kent et al., Ann Intern Med 2020): effect modelling (effect_model, meta-learners) and risk "
                     "modelling (risk_model, binary outcomes); constant-effect model as the reference",
        "estimand": "benefit_vs_c(x) = E[Y | c, x] − E[Y | exercise, x] for pain/function (0–100, higher = worse); "
                    "P(recover | exercise, x) − P(recover | c, x) for global recovery; in an average trial",
        "harmonisation": "outcomes converted to 0–100 (higher = worse); per follow-up window the measurement closest to "
                         "13, 26 and 52 weeks; global recovery = improvement ≥ 30% of baseline and ≥ 20 (pain) or ≥ 10 "
                         "(function) points for pain or function",
        "treatments": "treatment arms mapped to classes (exercise; no treatment, placebo, usual care, other conservative "
                      "care, combined); each comparator class has its own average effect, effect modification is shared; "
                      "trials comparing exercise types only inform the prognostic parts; randomisation probabilities are "
                      "each trial's allocation share (known, not estimated)",
        "learners": learners,
        "trial_handling": "trial fixed effects; interactions on modifiers centred at trial means (within-trial information)",
        "missing_data": "two-level multivariate normal imputation (trial means, within- and between-trial covariance); "
                        "LightGBM native missing-value splits (an input never missing in training: its conditional "
                        "mean)",
        "validation": "internal-external cross-validation: leave one trial with a comparator arm out, fit on the rest, "
                      "score the held-out trial; metrics per held-out trial pooled by REML random-effects meta-analysis "
                      "(95% CI, 95% prediction interval, tau, I²)",
        "iecv_follow_ups": run.get("iecv_follow_ups"),
        "metrics": "c-for-benefit (benefit matching, within trial), calibration for benefit (slope, intercept, "
                   "calibration-in-the-large; trial intercepts, CR1 SEs), E-for-benefit, AUTOC/Qini with known "
                   "propensities, outcome calibration (citl, slope, R² or C-statistic); held-out R-loss for selection",
        "selection": run.get("select"),
        "class_imbalance": "not applicable: no classifier thresholds; global recovery is modelled as a probability",
        "development_vs_evaluation": "IECV folds refit every learner without the held-out trial (inner tuning by trial-"
                                     "grouped CV on the training trials only); the final model is refit on all trials",
        "bootstrap": {"linear": run.get("n_boot_linear"), "trees": run.get("n_boot_trees")},
        "seed": run.get("seed"),
        "software": run.get("versions"),
        "seconds": run.get("seconds"),
    }
    W = study_words(inp.manifest, inp.synthetic)
    if not W.default:  # a user's study: its own classes and outcome kinds
        iv = W.intervention
        classes = [str(inp.manifest.get("active") or iv)] + names(inp.manifest.get("comparators"))
        data["estimand"] = (f"benefit_vs_c(x) = E[Y | c, x] − E[Y | {iv}, x] for continuous outcomes (0–100, higher = "
                            f"worse); P(good result | {iv}, x) − P(good result | c, x) for binary outcomes; in an "
                            "average trial")
        data["harmonisation"] = ("outcomes converted to 0–100 (higher = worse) by each instrument's declared range and "
                                 "direction; per follow-up window the measurement closest to the window's target week "
                                 "(study config)")
        data["treatments"] = (f"treatment arms mapped to classes ({', '.join(classes)}); each comparator class has its "
                              "own average effect, effect modification is shared; randomisation probabilities are each "
                              "trial's allocation share (known, not estimated)")
        data["class_imbalance"] = "not applicable: no classifier thresholds; binary outcomes are modelled as probabilities"
    stacked = [str(t.get("task")) for t in inp.manifest.get("tasks") or [] if isinstance(t, dict)
               and t.get("learner") == "stacked"]
    joint = [t for t in stacked if any(isinstance(e, dict) and e.get("task") == t and e.get("stack_se") == "joint"
                                       for e in inp.manifest.get("tasks") or [])]
    dep = [t for t in inp.task_names() if (inp.selection.get(t) or {}).get("iecv") == "deployed learner only"]
    data["iecv_deployed_learner_only"] = dep
    sel_text = {"stack": "convex (non-negative, sum-to-one) R-loss stacking of the learners on the IECV held-out predictions",
                "best": "the learner with the lowest pooled held-out R-loss",
                "best1se": "the simplest learner within one trial-clustered SE of the lowest held-out R-loss"}.get(
        str(run.get("select")), str(run.get("select") or NA))
    s.md += [
        f"- **Approach.** {data['framework']}.",
        f"- **Estimand.** {data['estimand']}. Positive = {W.intervention} better.",
        f"- **Harmonisation.** {data['harmonisation']}.",
        f"- **Treatments.** {data['treatments']}.",
        f"- **Learners fitted.** {', '.join(fitted_labels(learners)) or NA} (docs/learners.md).",
        f"- **Trials.** {data['trial_handling']}.",
        f"- **Missing data.** {data['missing_data']}.",
        f"- **Validation.** {data['validation']}; IECV of every learner (for selection and stacking): "
        f"{', '.join(run.get('iecv_follow_ups') or []) or 'none'} follow-up; "
        + (f"IECV of the deployed learner alone (no selection made): {', '.join(dep)}." if dep else
           "no other task was cross-validated."),
        f"- **Metrics.** {data['metrics']} (docs/metrics.md).",
        f"- **Selection.** {sel_text}; tasks outside those follow-ups use the effect model (penalty by trial-grouped "
        "CV) without selection.",
        f"- **Uncertainty.** Trial-cluster bootstrap of the final models ({run.get('n_boot_linear', NA)} replicates for "
        f"linear learners, {run.get('n_boot_trees', NA)} for tree learners) gives the 95% intervals of predictions."
        + (f" Stacked tasks ({', '.join(stacked)}): the benefit's CI and prediction interval also include the "
           "disagreement between the stack's learners for that patient (the weighted variance of their predicted "
           "benefits, the model-averaging variance), so they widen where the learners extrapolate differently, "
           "e.g. for patients unlike the trials', and not where they are wrong together; nothing is added where a "
           "stack holds one learner (docs/artifact.md). " + T.stack_se_words(stacked, joint) if stacked else ""),
        f"- **Class imbalance.** {data['class_imbalance']}.",
        f"- **Development vs evaluation.** {data['development_vs_evaluation']}.",
        f"- **Software.** " + (", ".join(f"{k} {v}" for k, v in sorted((run.get("versions") or {}).items())) or NA)
        + f"; seed {run.get('seed', NA)}.",
    ]
    s.data = data
    return s


PERF_ORDER = ["c_for_benefit", "calibration_slope_for_benefit", "calibration_intercept_for_benefit", "citl_for_benefit",
              "e_avg_for_benefit", "autoc", "qini", "outcome_citl", "outcome_slope", "outcome_r2", "outcome_c_statistic"]


def s_performance(inp: CardInputs) -> Section:
    s = Section("performance", dict(SECTION_ORDER)["performance"])
    tasks = inp.iecv_tasks()
    data: dict[str, Any] = {"tasks": {}}
    if not tasks:
        s.md += ["IECV results: not available (no `iecv/<task>/pooled.csv` in the report)."]
        s.data = data
        return s
    s.md += ["Pooled over held-out trials by REML random-effects meta-analysis: estimate (95% CI), 95% prediction "
             "interval for a new trial, between-trial SD (tau, on the analysis scale: logit for C statistics) and I².", ""]
    for task in tasks:
        it = inp.iecv[task]
        lr = headline_learner(inp, task)
        sel = inp.selection.get(task, {})
        pooled = it.pooled
        p = pooled[pooled["learner"] == lr].set_index("metric")
        note = ""
        if sel.get("model") == "stacked" and lr == "stacked":
            note = (" These are the deployed stack's own held-out numbers (its members' predictions combined with "
                    "its weights). The weights were chosen on these same held-out predictions, so they are slightly "
                    "optimistic (not nested cross-validation); each member's numbers are in the card's JSON.")
        elif sel.get("model") == "stacked" and set(k for k, v in (sel.get("weights") or {}).items() if v > 1e-6) == {lr}:
            note = (f" The selected stack gives all its weight to `{lr}`, so these are the deployed model's own "
                    "held-out numbers.")
        elif sel.get("model") == "stacked":
            note = (f" The selected model is a stack; the numbers are its best single learner `{lr}` (this run did "
                    "not compute the stack's own held-out performance).")
        elif sel.get("iecv") == "deployed learner only" and lr == sel.get("model"):
            note = (" The deployed model's own held-out numbers: this task deploys the effect model without any "
                    "selection, so only it was cross-validated (not optimistic by selection).")
        s.md += [f"### {task}", "", f"Learner: `{lr}`.{note}", ""]
        rows = []
        for mname in PERF_ORDER:
            if mname not in p.index:
                continue
            r = p.loc[mname]
            lab, ideal = T.METRICS.get(mname, (mname, ""))
            pi = "–"
            if "pi_low" in r and fnum(r.get("pi_low")) != "–":
                pi = f"{fnum(r['pi_low'])} to {fnum(r['pi_high'])}"
            rows.append([lab, ideal, fci(r["estimate"], r["ci_low"], r["ci_high"]), pi,
                         fnum(r.get("tau")), fnum(100 * r["i2"], 0) + "%" if fnum(r.get("i2")) != "–" else "–",
                         int(r["k"]) if "k" in r and pd.notna(r.get("k")) else "–"])
        s.md += md_table(["metric", "ideal", "estimate (95% CI)", "95% PI", "tau", "I²", "trials"], rows) if rows else \
            ["No pooled metric for this learner."]
        meaning = [interpret(mname, p.loc[mname]["estimate"], p.loc[mname]["ci_low"], p.loc[mname]["ci_high"])
                   for mname in PERF_ORDER if mname in p.index]
        meaning = [x for x in meaning if x]
        if meaning:
            s.md += ["", "**What this means for a clinician.** " + "; ".join(meaning) + "."]
        rl = it.r_loss
        if rl is not None and len(rl):
            s.md += ["", "Held-out R-loss by learner (lower is better; gain vs the constant-effect model):", ""]
            s.md += md_table(["learner", "R-loss", "gain vs constant"],
                             [[r["learner"], sig(r["r_loss"]),
                               (fnum(r.get("gain_vs_constant_pct"), 2) + "%") if fnum(r.get("gain_vs_constant_pct")) != "–" else "–"]
                              for r in rl.to_dict("records")])
        s.md += [""]
        per = it.per_trial
        data["tasks"][task] = {
            "headline_learner": lr,
            "selected": sel.get("model"),
            "pooled": records(pooled.sort_values(["learner", "metric"], kind="mergesort")),
            "per_trial_learner": lr,
            "per_trial": records(per[(per["metric"] != "r_loss") & (per["learner"] == lr)][["learner", "trial", "metric", "estimate", "ci_low", "ci_high"]
                                                                 + (["n"] if "n" in per.columns else [])]
                                  .sort_values(["learner", "metric", "trial"], kind="mergesort")) if per is not None else None,
            "r_loss": records(rl) if rl is not None else None,
            "stack_weights": {k: jnum(v) for k, v in sorted((it.stack_weights or {}).items())} or None,
        }
    no_iecv = [t for t in inp.task_names() if t not in tasks]
    if no_iecv:
        fus = inp.run.get("iecv_follow_ups")
        why = (f"the training run validated the follow-up window(s) {', '.join(fus)} only (`iecv_follow_ups`), to "
               "bound training time" if fus else "the training run did not validate them")
        s.md += [f"Not cross-validated by trial: {', '.join(no_iecv)}, because {why}. Their intervals are "
                 "model-based only; read them as less well checked."]
    data["tasks_without_iecv"] = no_iecv
    s.data = data
    return s


def s_figures(inp: CardInputs, figures: dict[str, bytes], prefix: str) -> Section:
    s = Section("figures", dict(SECTION_ORDER)["figures"])
    listed = []
    for task in inp.task_names():
        for kind, cap in (("benefit_calibration", "Calibration for benefit: held-out predicted vs observed benefit by "
                                                 "quintile of predicted benefit (within-trial effects, 95% CI); "
                                                 "ideal = identity line."),
                          ("iecv_forest", "IECV forest plot: c-for-benefit and calibration slope for benefit per "
                                          "held-out trial, with the pooled random-effects estimate.")):
            name = f"{task}__{kind}.png"
            if name in figures:
                s.md += [f"**{task}** — {cap}", "", f"![{task} {kind.replace('_', ' ')}]({prefix}{name})", ""]
                listed.append({"name": name, "task": task, "kind": kind, "caption": cap})
    for name in sorted(figures):
        if name.endswith("__subgroups.png"):
            task = name[: -len("__subgroups.png")]
            cap = "Subgroup performance: c-for-benefit and calibration slope for benefit by subgroup (95% CI)."
            s.md += [f"**{task}** — {cap}", "", f"![{task} subgroups]({prefix}{name})", ""]
            listed.append({"name": name, "task": task, "kind": "subgroups", "caption": cap})
    if not listed:
        s.md += ["Figures: not available (no IECV plots or the data to draw them in the report)."]
    s.data = {"figures": listed, "path_prefix": prefix}
    return s


SUBGROUP_ORDER = {"all": 0, "sex": 1, "age_band": 2, "bmi_band": 3, "work_status": 4}
SUBGROUP_LABEL = {"all": "all held-out", "sex": "sex", "age_band": "age (years)", "bmi_band": "BMI (kg/m²)",
                  "work_status": "work status"}


def s_subgroups(inp: CardInputs) -> Section:
    s = Section("subgroups", dict(SECTION_ORDER)["subgroups"])
    sp = inp.subgroup_performance
    if sp is None or not len(sp):
        s.md += ["Subgroup performance: not available (the report has no subgroup_performance.csv). It is computed "
                 "from the IECV held-out predictions by `training.cards.subgroups.subgroup_performance`."]
        s.data = {"available": False, "rows": None}
        return s
    s.md += ["Held-out (IECV) predictions pooled over held-out trials within each subgroup; comparisons within trial "
             "(matching, trial intercepts) and CIs respecting clustering by trial. Estimate (95% CI); n participants / "
             "trials. Small cells give wide or no estimates.", ""]
    metrics = [m for m in ("c_for_benefit", "calibration_slope_for_benefit", "citl_for_benefit", "outcome_slope",
                           "outcome_citl") if m in set(sp["metric"])]
    for task, g in sp.groupby("task", sort=True):
        s.md += [f"### {task}" if str(task) else "### (task not named)", ""]
        keys = g[["subgroup_variable", "subgroup_level", "n", "n_trials"]].drop_duplicates(["subgroup_variable", "subgroup_level"])
        keys = keys.assign(_o=keys["subgroup_variable"].map(lambda v: SUBGROUP_ORDER.get(str(v), 9)))
        keys = keys.sort_values(["_o"], kind="mergesort")
        rows, flags = [], []
        for k in keys.to_dict("records"):
            gg = g[(g["subgroup_variable"] == k["subgroup_variable"]) & (g["subgroup_level"] == k["subgroup_level"])].set_index("metric")
            row = [SUBGROUP_LABEL.get(str(k["subgroup_variable"]), str(k["subgroup_variable"])), str(k["subgroup_level"]),
                   f"{int(k['n'])} / {int(k['n_trials'])}"]
            dig = 3 if outcome_type_of(inp, str(task)) == "binary" else 2
            for mname in metrics:
                row.append(fci(gg.loc[mname, "estimate"], gg.loc[mname, "ci_low"], gg.loc[mname, "ci_high"], dig)
                           if mname in gg.index else "–")
            rows.append(row)
            if "calibration_slope_for_benefit" in gg.index and str(k["subgroup_variable"]) != "all":
                e = gg.loc["calibration_slope_for_benefit", "estimate"]
                if pd.notna(e) and (e < 0.5 or e > 2.0):
                    flags.append(f"{SUBGROUP_LABEL.get(str(k['subgroup_variable']), k['subgroup_variable'])} "
                                 f"{k['subgroup_level']}: " + interpret("calibration_slope_for_benefit", e,
                                                                    gg.loc["calibration_slope_for_benefit", "ci_low"],
                                                                    gg.loc["calibration_slope_for_benefit", "ci_high"]))
        s.md += md_table(["subgroup", "level", "n / trials"] + [T.METRICS[m][0] for m in metrics], rows) + [""]
        if flags:
            s.md += ["**Where the model is miscalibrated for benefit** (slope below 0.5 or above 2): "
                     + "; ".join(flags) + ". For these patients read the predicted benefit's size with extra "
                     "caution.", ""]
    s.data = {"available": True,
              "rows": records(sp.sort_values(["task", "subgroup_variable", "subgroup_level", "metric"], kind="mergesort"))}
    return s


def s_limitations(inp: CardInputs) -> Section:
    s = Section("limitations", dict(SECTION_ORDER)["limitations"])
    pkg = ([T.SYNTHETIC_LIMITATION] if inp.synthetic else []) + list(T.PACKAGE_LIMITATIONS)
    unavailable, sparse = comparator_flags(inp)
    if sparse:
        pkg.append("Sparse comparator classes in this model: " + ", ".join(sparse) + ".")
    if not inp.available.get("subgroup_performance.csv"):
        pkg.append("Subgroup performance was not computed for this model.")
    if "separation" in inp.tasks.columns:  # train found a class with all or no events (training.train_warnings)
        for r in inp.tasks.dropna(subset=["separation"]).to_dict("records"):
            pkg.append(f"{r['task']}: {r['separation']}. The logistic maximum-likelihood fit does not exist for "
                       "such data (separation); where the learners' logistic fits found it they used Firth's "
                       "bias-reduced estimate (about half an event added), so that class's probability is not 0 or 1, "
                       "but its predictions and intervals still rest on a few dozen participants without a single "
                       "event (or non-event); `replicate` reports such an effect as not estimable.")
    binary = [t for t in inp.task_names() if outcome_type_of(inp, str(t)) == "binary"]
    if binary:
        pkg.append(binary_text(T.binary_intervals(inp.manifest, binary), study_words(inp.manifest, inp.synthetic)))
    pkg.append("No external validation and no local validation have been done.")
    W = study_words(inp.manifest, inp.synthetic)
    if W.seed_limitations:
        s.md += ["**Named by the seed paper** (" + str(W.seed_short) + "; they apply to the trials this model's design "
                 "follows):", ""]
        s.md += [f"- *{name}.* {txt}" for name, txt in W.seed_limitations]
        s.md += [""]
    else:  # a user's study: the trials' own limitations are not in the data format
        pkg.insert(0, "The limitations of the training trials themselves (risk of bias, eligibility, settings, "
                      "outcome assessment) are not recorded in the data format; read them in the trials' own reports.")
    s.md += ["**Of this model and method:**", ""] + [f"- {x}" for x in pkg]
    s.data = {"seed_paper": W.seed_paper,
              "seed_paper_limitations": [{"name": n, "description": d} for n, d in W.seed_limitations],
              "model_limitations": pkg}
    return s


def s_ethics(inp: CardInputs) -> Section:
    s = Section("ethics", dict(SECTION_ORDER)["ethics"])
    ethics = study_words(inp.manifest, inp.synthetic).ethics
    s.md += [f"- **{n}.** {m}" for n, m in ethics]
    s.data = [{"name": n, "mitigation_strategy": m} for n, m in ethics]
    return s


def s_card_format(inp: CardInputs) -> Section:
    s = Section("card_format", dict(SECTION_ORDER)["card_format"])
    s.md += ["Generated by `lbp-benefit card` (training.cards) from the training run's report files and the artifact "
             "manifest; regenerate with `lbp-benefit card --model PATH`. The JSON twin (`card.json`) holds a "
             "[Google Model Card Toolkit](https://github.com/tensorflow/model-card-toolkit) **schema v0.0.2** "
             "document under `model_card` (validates unchanged against `model_card.schema.json` v0.0.2), and what that "
             "schema cannot carry — confidence and prediction intervals, between-trial heterogeneity, subgroup results, "
             "the TRIPOD+AI items and the HTI-1 attributes — under the namespaced `extensions` keys "
             "`lbp_benefit`, `tripod_ai` and `onc_hti1`. See docs/model-card.md.",
             "", "Report files used: " + ", ".join(f"{k} ({'yes' if v else 'not available'})" for k, v in sorted(inp.available.items())) + "."]
    s.data = {"generator": "training.cards", "mct_schema_version": "0.0.2",
              "inputs_available": dict(sorted(inp.available.items()))}
    return s


def build_sections(inp: CardInputs, figures: dict[str, bytes], figure_prefix: str = "",
                   owner: dict | None = None) -> list[Section]:
    """Every section in :data:`SECTION_ORDER`; ``owner``: the model owner's statements
    (training/cards/owner.py; None = not stated)."""
    from training.cards.regulatory import s_hti1, s_organisation, s_point_of_care, s_tripod

    secs: dict[str, Section] = {}
    secs["model_details"] = s_model_details(inp)
    secs["intended_use"] = s_intended_use(inp)
    secs["out_of_scope"] = s_out_of_scope(inp)
    secs["training_data"] = s_training_data(inp)
    secs["modifiers"] = s_modifiers(inp)
    secs["methods"] = s_methods(inp)
    secs["performance"] = s_performance(inp)
    secs["figures"] = s_figures(inp, figures, figure_prefix)
    secs["subgroups"] = s_subgroups(inp)
    secs["limitations"] = s_limitations(inp)
    secs["ethics"] = s_ethics(inp)
    secs["point_of_care"] = s_point_of_care(inp)
    secs["organisation"] = s_organisation(inp, owner)
    secs["tripod_ai"] = s_tripod(inp, secs, owner)
    secs["hti1"] = s_hti1(inp, secs, owner)
    secs["card_format"] = s_card_format(inp)
    return [secs[i] for i in SECTION_IDS]

