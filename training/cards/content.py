"""The card's sections, each as Markdown lines and JSON-able data built from the same numbers.

Every section is built from :class:`training.cards.inputs.CardInputs` (the run's report folder
and the artifact manifest) plus the fixed wording in :mod:`training.cards.text`. Only aggregate
numbers enter (per trial, per task, per subgroup); no participant-level data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from training.cards import text as T
from training.cards.inputs import CardInputs

NA = "not available"

SECTION_ORDER = [
    ("model_details", "Model details and version"),
    ("intended_use", "Intended use, users and settings"),
    ("out_of_scope", "Out-of-scope uses"),
    ("training_data", "Training data"),
    ("modifiers", "Candidate modifiers and how each entered"),
    ("methods", "Methods"),
    ("performance", "IECV performance (95% CIs, between-trial heterogeneity)"),
    ("figures", "Calibration for benefit and IECV forest plots"),
    ("subgroups", "Subgroup performance (sex, age, BMI, work status)"),
    ("limitations", "Limitations and caveats"),
    ("ethics", "Ethical considerations"),
    ("point_of_care", "What a clinician sees: intervals and the smallest-worthwhile verdict"),
    ("organisation", "Developer, funding, oversight, monitoring and updates"),
    ("tripod_ai", "TRIPOD+AI checklist"),
    ("hti1", "ONC HTI-1 predictive DSI source attributes"),
    ("card_format", "About this card"),
]
SECTION_IDS = [s for s, _ in SECTION_ORDER]


@dataclass
class Section:
    id: str
    title: str
    md: list[str] = field(default_factory=list)
    data: Any = None


# ----------------------------------------------------------------------------- formatting
def fnum(x: Any, d: int = 3) -> str:
    """Fixed decimals; '–' for missing or non-finite; never '-0.000'."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(v):
        return "–"
    s = f"{v:.{d}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s


def _sig(x: Any, n: int = 5) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    return f"{v:.{n}g}" if math.isfinite(v) else "–"


def fci(est, lo, hi, d: int = 3) -> str:
    e = fnum(est, d)
    if e == "–":
        return "–"
    if fnum(lo, d) == "–" or fnum(hi, d) == "–":
        return e
    return f"{e} ({fnum(lo, d)} to {fnum(hi, d)})"


def jnum(x: Any) -> float | None:
    """A JSON number, rounded to 6 significant digits (stable across platforms), or None."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(v):
        return None
    return float(f"{v:.6g}")


def md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return out


def _records(df: pd.DataFrame | None, cols: list[str] | None = None) -> list[dict]:
    if df is None:
        return []
    d = df[cols] if cols else df
    out = []
    for r in d.to_dict("records"):
        rec = {}
        for k, v in r.items():
            if isinstance(v, (float, np.floating)):
                rec[k] = jnum(v)
            elif isinstance(v, (np.integer,)):
                rec[k] = int(v)
            elif isinstance(v, (np.bool_,)):
                rec[k] = bool(v)
            elif v is None or (isinstance(v, float) and np.isnan(v)):
                rec[k] = None
            else:
                rec[k] = v
        out.append(rec)
    return out


# ----------------------------------------------------------------------------- helpers on inputs
def headline_learner(inp: CardInputs, task: str) -> str | None:
    """The learner whose IECV numbers represent the selected model: the selected learner, or
    for a stack its best single learner (the stack itself is not re-validated)."""
    sel = inp.selection.get(task, {})
    it = inp.iecv.get(task)
    have = set(it.pooled["learner"]) if it is not None and it.pooled is not None else set()
    for cand in (sel.get("best_single"), sel.get("model")):
        if cand and cand in have:
            return cand
    if have:
        for cand in ("effect_model", "constant"):
            if cand in have:
                return cand
        return sorted(have)[0]
    return None


def n_trials_manifest(m: dict) -> tuple[int | None, int | None]:
    td = m.get("training_data") or {}
    trials = td.get("trials") or {}
    n = td.get("n_participants")
    if n is None and trials:
        n = sum(int((v or {}).get("participants", 0)) for v in trials.values())
    return (len(trials) if trials else None), n


def feature_schema(m: dict) -> list[dict]:
    fs = m.get("feature_schema") or []
    if isinstance(fs, dict):  # {name: spec}
        fs = [{"name": k, **(v or {})} for k, v in fs.items()]
    return [f for f in fs if isinstance(f, dict) and f.get("name")]


def _names(x) -> list[str]:
    if x is None:
        return []
    if isinstance(x, dict):
        return [str(k) for k in x]
    if isinstance(x, (list, tuple)):
        out = []
        for v in x:
            out.append(str(v.get("name") or v.get("task") or v) if isinstance(v, dict) else str(v))
        return out
    return [str(x)]


# ----------------------------------------------------------------------------- sections
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
        "study": run.get("study"),
        "learners_fitted": list(run.get("learners") or []),
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
                   "exercise and under each comparator, with a 95% CI for pain and function (none for the "
                   "probability of recovery under each arm, which is said); unavailable classes are reported as such."),
        "how_predictions_are_calculated": ("The artifact stores each task's selected model as plain JSON (linear "
                                           "coefficients, imputation model) and LightGBM text; the runtime scorer "
                                           "(`predict`) evaluates it; the HTTP API and CDS Hooks service serve it."),
        "input_handling": ("Requests are validated against the feature schema: values outside the plausible range or "
                           "of the wrong type are refused with a message; missing covariates are allowed and imputed "
                           "(conditional mean under the pooled two-level normal model); the card and API say so."),
    }
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
        ["license", data["license"]],
        ["developer", data["developer"] + (f" ({data['contact']})" if data["contact"] else "")],
    ])
    s.md += ["", "**Output.** " + data["output"], "",
             "**How predictions are calculated.** " + data["how_predictions_are_calculated"], "",
             "**Input handling at deployment.** " + data["input_handling"], "",
             "**Selected model per task** (outcome × follow-up):", ""]
    s.md += md_table(["task", "selected model", "rule"], sel_rows)
    return s


def s_intended_use(inp: CardInputs) -> Section:
    s = Section("intended_use", dict(SECTION_ORDER)["intended_use"])
    s.data = {"uses": list(T.INTENDED_USE), "users": list(T.INTENDED_USERS), "settings": list(T.INTENDED_SETTINGS),
              "decision_role": "informs", "expertise": "A clinician who manages low back pain; the output needs no "
              "statistical training; every number is shown with its intervals and their meaning."}
    if inp.synthetic:
        s.md += ["Because this model is synthetic, the uses below describe what the *method* is for; this "
                 "model itself is for demonstration, testing and methods research only.", ""]
    s.md += ["**Uses**", ""] + [f"- {x}" for x in T.INTENDED_USE]
    s.md += ["", "**Users**", ""] + [f"- {x}" for x in T.INTENDED_USERS]
    s.md += ["", "**Settings**", ""] + [f"- {x}" for x in T.INTENDED_SETTINGS]
    s.md += ["", "**Expertise.** " + s.data["expertise"]]
    return s


def s_out_of_scope(inp: CardInputs) -> Section:
    s = Section("out_of_scope", dict(SECTION_ORDER)["out_of_scope"])
    items = list(T.OUT_OF_SCOPE)
    if not inp.synthetic:
        items = items[1:]
    unavailable, sparse = comparator_flags(inp)
    if unavailable:
        items.append("Comparator classes with no trial in the training data (no prediction): " + ", ".join(unavailable) + ".")
    s.data = {"items": items}
    s.md += [f"- {x}" for x in items]
    return s


def comparator_flags(inp: CardInputs) -> tuple[list[str], list[str]]:
    m = inp.manifest
    sparse = _names(m.get("sparse_comparators"))
    comps = _names(m.get("comparators"))
    unavailable: list[str] = []
    cs = inp.class_support
    if cs is not None and len(cs):
        tot = cs.groupby("comparator")["trials"].sum()
        unavailable = sorted(str(c) for c, v in tot.items() if v == 0)
        if not sparse and "sparse" in cs.columns:
            sp = cs[cs["sparse"].astype(str).str.lower() == "true"]
            sparse = sorted(set(map(str, sp["comparator"])) - set(unavailable))
    if comps:
        unavailable = [c for c in unavailable if c not in comps] or unavailable
    return unavailable, sparse


def s_training_data(inp: CardInputs) -> Section:
    m = inp.manifest
    s = Section("training_data", dict(SECTION_ORDER)["training_data"])
    k, n = n_trials_manifest(m)
    td = m.get("training_data") or {}
    trials = td.get("trials") or {}
    unavailable, sparse = comparator_flags(inp)
    comps = _names(m.get("comparators"))
    fus = m.get("follow_ups")
    fu_names = _names(fus)
    outcomes = _names(m.get("outcomes"))
    data: dict[str, Any] = {
        "synthetic": inp.synthetic,
        "source": ("the package's calibrated simulator (scenario hayden2020), reproducing the design and "
                   "published summaries of " + T.SEED_SHORT) if inp.synthetic else
                  "pooled individual participant data (IPD) of randomised trials supplied by the user",
        "n_trials": k, "n_participants": n, "fingerprint": td.get("fingerprint"),
        "comparators": comps, "sparse_comparators": sparse, "unavailable_comparators": unavailable,
        "outcomes": outcomes, "follow_ups": fus if isinstance(fus, (list, dict)) else fu_names,
        "trials": {str(t): {"participants": (v or {}).get("participants"), "by_class": (v or {}).get("by_class")}
                   for t, v in sorted(trials.items())},
    }
    s.md += [("**Synthetic data.** " if inp.synthetic else "**Real data.** ") + data["source"][0].upper()
             + data["source"][1:] + ".", ""]
    s.md += [f"- Trials: {k if k is not None else NA}; participants: {n if n is not None else NA}.",
             f"- Outcomes: {', '.join(outcomes) or NA}; follow-ups: {', '.join(fu_names) or NA}.",
             f"- Comparator classes with a prediction: {', '.join(comps) or NA}.",
             f"- Sparse comparator classes (< 2 trials or < 60 participants): {', '.join(sparse) or 'none'}.",
             f"- Comparator classes without any trial (no prediction): {', '.join(unavailable) or 'none'}.",
             f"- Data fingerprint: `{data['fingerprint']}`." if data["fingerprint"] else "- Data fingerprint: not available.",
             "- Eligibility (" + ("the simulated design follows " if inp.synthetic else "design of ") + T.SEED_SHORT
             + "): " + T.SEED_ELIGIBILITY + ".",
             "- Settings and participants (as reported by the seed paper): " + T.SEED_SETTINGS + ".",
             "- Accrual and follow-up dates: not recorded in the data format (" + NA + ").",
             "- Data availability: " + ("synthetic data are regenerated by `lbp-benefit simulate --seed SEED`." if inp.synthetic
                                        else "the IPD are held by the trialists; not distributed with the model."),
             ""]
    # per task: participants / trials / comparator trials
    rows = []
    for r in inp.tasks.to_dict("records"):
        rows.append([r.get("task"), r.get("participants", "–"), r.get("trials", "–"), r.get("comparator_trials", "–")])
    s.md += ["**Participants analysed per task** (with baseline and follow-up in the window):", ""]
    s.md += md_table(["task", "participants", "trials", "trials with a comparator arm"], rows)
    data["tasks"] = _records(inp.tasks[[c for c in ("task", "outcome", "follow_up", "outcome_type", "participants",
                                                     "trials", "comparator_trials", "status") if c in inp.tasks.columns]])
    s.md += [""]
    # class support
    cs = inp.class_support
    if cs is not None and len(cs):
        piv = cs.pivot_table(index="task", columns="comparator", values="trials", aggfunc="sum").fillna(0).astype(int)
        pp = cs.pivot_table(index="task", columns="comparator", values="participants", aggfunc="sum").fillna(0).astype(int)
        cols = list(piv.columns)
        s.md += ["**Comparator support per task** (trials / participants in the comparator arms):", ""]
        s.md += md_table(["task"] + cols, [[t] + [f"{piv.loc[t, c]} / {pp.loc[t, c]}" for c in cols]
                                            for t in piv.index])
        s.md += [""]
        data["class_support"] = _records(cs)
    else:
        s.md += ["Comparator support per task: not available (class_support.csv missing).", ""]
        data["class_support"] = None
    # trials
    if trials:
        classes = sorted({c for v in trials.values() for c in ((v or {}).get("by_class") or {})})
        s.md += ["**Trials** (participants by treatment class):", ""]
        s.md += md_table(["trial", "participants"] + classes,
                         [[t, (v or {}).get("participants", "–")] + [((v or {}).get("by_class") or {}).get(c, 0) for c in classes]
                          for t, v in sorted(trials.items())])
        s.md += [""]
    else:
        s.md += ["Per-trial participants: not available in the manifest.", ""]
    # attrition
    a = inp.attrition
    if a is not None and len(a):
        an = [c for c in a.columns if c.startswith("analysed_")]
        agg = a.groupby("outcome", sort=False)[["received", "valid"] + [c for c in ("not_collected", "missing_baseline", "with_baseline") if c in a.columns] + an].sum()
        s.md += ["**Attrition** (summed over trials; from the harmonisation report):", ""]
        s.md += md_table(["outcome"] + list(agg.columns), [[o] + [int(v) for v in agg.loc[o]] for o in agg.index])
        s.md += [""]
        data["attrition_by_outcome"] = {str(o): {c: int(agg.loc[o, c]) for c in agg.columns} for o in agg.index}
    else:
        s.md += ["Attrition: not available (attrition.csv missing).", ""]
        data["attrition_by_outcome"] = None
    # covariate availability
    cov = covariate_summary(inp)
    if cov is not None:
        s.md += ["**Covariate availability and missingness** (trials that collected the covariate; % missing among all "
                 "participants and among participants of collecting trials):", ""]
        s.md += md_table(["covariate", "trials collecting", "participants observed", "% missing (all)",
                          "% missing (collecting trials)"],
                         [[r["covariate"], f"{r['trials_collecting']}/{r['trials']}", r["observed"],
                           fnum(r["pct_missing_all"], 1), fnum(r["pct_missing_collecting"], 1)] for r in cov])
        data["covariate_availability"] = cov
    else:
        s.md += ["Covariate availability and missingness: not available (covariate_availability.csv missing)."]
        data["covariate_availability"] = None
    comp = s_comparators(inp)
    s.md += ["", f"### {comp.title}", ""] + comp.md
    data["comparators_evidence"] = comp.data
    s.data = data
    return s


def s_comparators(inp: CardInputs) -> Section:
    """Every comparator of the treatment network vs exercise: direct evidence (trials randomising
    it against exercise) or indirect evidence only, per task with trials and participants
    (manifest ``network_comparators``, written by the exporter from the run's network models)."""
    m = inp.manifest
    s = Section("comparators", "Comparators and evidence")  # a sub-section of "Training data" (numbering unchanged)
    nc = m.get("network_comparators")
    active = m.get("active") or "exercise"
    if not nc:
        s.md += ["Comparator network: not available (the model was trained without the one-stage IPD network model, "
                 "`lbp-benefit train --no-network`); only the learners' classes can be scored: "
                 + (", ".join(_names(m.get("comparators"))) or NA) + ".", ""]
        s.data = {"available": False, "comparators": [], "direct": [], "indirect_only": []}
        return s
    direct = [c["node"] for c in nc if c.get("evidence") == "direct"]
    indirect = [c["node"] for c in nc if c.get("evidence") == "indirect only"]
    mixed = [c["node"] for c in nc if c["node"] not in direct + indirect]
    net = m.get("network") or {}
    s.md += [f"Every comparator in the treatment network (nodes from the data's class and subtype) against {active}. "
             f"**Direct** evidence: trials that randomised the comparator against {active}; **indirect only**: no such "
             f"trial, the comparison runs through other treatments of the network and assumes consistency. Comparators "
             "scored by `learner` get the benefit learners' predictions; those scored by `ipd_network` get the one-stage "
             "IPD network model's (node effects and exercise-content interactions, delta-method CI, prediction interval "
             "with the network's tau; docs/network.md).", "",
             f"- Direct evidence: {', '.join(direct) or 'none'}.",
             f"- Indirect evidence only: {', '.join(indirect) or 'none'}.",
             f"- Direct in some tasks, indirect only in others: {', '.join(mixed) or 'none'}.", ""]
    rows = []
    for c in nc:
        for task, e in sorted((c.get("tasks") or {}).items()):
            rows.append([c["node"], c.get("scored_by", "–"), task, e.get("evidence", "–"),
                         f"{e.get('direct_trials', '–')} / {e.get('direct_participants', '–')}",
                         f"{e.get('trials', '–')} / {e.get('participants', '–')}"])
    s.md += md_table(["comparator", "scored by", "task", "evidence vs " + active,
                      f"direct trials / participants (both arms)", "trials / participants on the comparator"], rows)
    st = net.get("tasks") or {}
    if st:
        s.md += ["", "**Network model per task:**", ""]
        s.md += md_table(["task", "network model", "modifiers"],
                         [[t, v.get("status", "–") + (f" ({v['reason']})" if v.get("reason") else "")
                           + (f"; {v['modifier_status']}" if v.get("modifier_status") else ""),
                           ", ".join(v.get("modifiers") or []) or "none"] for t, v in sorted(st.items())])
    s.md += [""]
    s.data = {"available": True, "reference": active, "comparators": nc, "direct": direct, "indirect_only": indirect,
              "mixed": mixed, "network_tasks": st}
    return s


def covariate_summary(inp: CardInputs) -> list[dict] | None:
    c = inp.covariate_availability
    if c is None or not len(c):
        return None
    c = c.copy()
    c["collected"] = c["collected"].astype(str).str.lower().isin(["true", "1"])
    out = []
    for cov, g in c.groupby("covariate", sort=False):
        part = int(g["participants"].sum())
        obs = int(g["observed"].sum())
        gc = g[g["collected"]]
        pc = int(gc["participants"].sum())
        out.append({"covariate": str(cov), "trials": int(g["trial"].nunique()), "trials_collecting": int(gc["trial"].nunique()),
                    "participants": part, "observed": obs,
                    "pct_missing_all": jnum(100 * (1 - obs / part)) if part else None,
                    "pct_missing_collecting": jnum(100 * (1 - obs / pc)) if pc else None})
    return out


def _entry_text(f: dict) -> str:
    typ = f.get("type", "continuous")
    if typ == "continuous":
        return "linear + spline (RCS, 3 knots)"
    if typ == "categorical":
        return "one indicator per category"
    return "linear (0/1)"


def _learner_entry(learners: list[str]) -> str:
    parts = []
    if "effect_model" in learners or not learners:
        parts.append("the effect model includes exercise × (modifier − its trial mean) for every modifier (continuous: "
                     "linear + restricted cubic spline with 3 knots; binary: linear), shrunk by a ridge penalty chosen by "
                     "trial-grouped CV")
    if "risk_model" in learners:
        parts.append("the risk model uses all modifiers through one prognostic index (exercise × centred index)")
    if "constant" in learners:
        parts.append("the constant model uses them for prognosis only")
    if any(x in learners for x in ("t_learner", "x_learner", "dr_learner")):
        parts.append("the tree learners (LightGBM) use the raw values")
    return "; ".join(parts)


def s_modifiers(inp: CardInputs) -> Section:
    m = inp.manifest
    s = Section("modifiers", dict(SECTION_ORDER)["modifiers"])
    fs = feature_schema(m)
    learners = list(inp.run.get("learners") or [])
    cov = {r["covariate"]: r for r in (covariate_summary(inp) or [])}
    baselines = _names(m.get("baselines"))
    # effect-model interactions for the primary task (first IECV task, else first task)
    prim = (inp.iecv_tasks() or inp.task_names() or [None])[0]
    inter: dict[str, dict] = {}
    if prim and prim in inp.summaries and "effect_model" in inp.summaries[prim]:
        sm = inp.summaries[prim]["effect_model"]
        otype = _otype(inp, prim)
        for r in sm.to_dict("records"):
            term = str(r.get("term", ""))
            if not term.startswith("active x ["):
                continue
            name = term[len("active x ["):-1]
            base, _, extra = name.partition(":")
            sign = -1.0 if otype == "continuous" else 1.0
            d = inter.setdefault(base, {})
            d["spline" if extra else "linear"] = {"benefit_per_sd": jnum(sign * float(r["coef"])), "se": jnum(r.get("se"))}
    scale = "points (0–100) of benefit per SD" if _otype(inp, prim) == "continuous" else "log-odds ratio of recovery per SD"
    rows, data = [], []
    names_seen = []
    for f in fs:
        nm = f["name"]
        names_seen.append(nm)
        c = cov.get(nm)
        unit = f.get("unit") or ""
        rng = f.get("range")
        entry = _entry_text(f)
        lin = inter.get(nm, {}).get("linear")
        data.append({"name": nm, "label": f.get("label"), "type": f.get("type"), "unit": unit or None,
                     "range": list(rng) if rng else None, "missing": f.get("missing"),
                     "trials_collecting": c["trials_collecting"] if c else None,
                     "pct_missing_all": c["pct_missing_all"] if c else None,
                     "entered": entry, "effect_model_interaction": inter.get(nm)})
        rows.append([f"`{nm}`", f.get("label") or "", f.get("type", "") + (f" ({unit})" if unit else ""),
                     f"{c['trials_collecting']}/{c['trials']}" if c else NA,
                     fnum(c["pct_missing_all"], 1) if c else NA,
                     entry,
                     (fci(lin["benefit_per_sd"], lin["benefit_per_sd"] - 1.96 * lin["se"], lin["benefit_per_sd"] + 1.96 * lin["se"], 2)
                      if lin and lin["benefit_per_sd"] is not None and lin["se"] is not None else NA)])
    for b in baselines:
        nm = b if b.startswith("baseline_") else f"baseline_{b}"
        if nm in names_seen:
            continue
        lin = inter.get(nm, {}).get("linear")
        entry = _entry_text({"type": "continuous"})
        data.append({"name": nm, "label": f"Baseline {b.replace('baseline_', '')} (0–100)", "type": "continuous",
                     "unit": "0-100", "range": [0, 100], "missing": "allowed", "trials_collecting": None,
                     "pct_missing_all": None, "entered": entry, "effect_model_interaction": inter.get(nm)})
        rows.append([f"`{nm}`", f"Baseline {b.replace('baseline_', '')} (0–100, higher = worse)", "continuous (0–100)",
                     "outcome table", "see attrition", entry,
                     fci(lin["benefit_per_sd"], lin["benefit_per_sd"] - 1.96 * lin["se"], lin["benefit_per_sd"] + 1.96 * lin["se"], 2)
                     if lin and lin["benefit_per_sd"] is not None and lin["se"] is not None else NA])
    s.md += [f"{len(data)} candidate modifiers: the study config's covariates"
             + (" (the 17 participant characteristics of " + T.SEED_SHORT + ")" if len(fs) == 17 else "")
             + " and the baseline score of each outcome. All are candidates in every learner; none was pre-selected "
             "on the outcome. How they entered: " + _learner_entry(learners) + ". Interactions are estimated within trials. "
             "Missing values: imputed (two-level normal model) for the linear learners, native missing-value "
             "splits in LightGBM.", ""]
    if inter:
        s.md += [f"Last column: the effect model's linear interaction for `{prim}`, as {scale} (positive = more benefit "
                 "from exercise), with a normal 95% interval from the bootstrap SE; the spline term, where present, is in "
                 "the JSON. Exploratory: the trials were not powered for effect modification.", ""]
    if not fs:
        s.md += ["Feature schema: not available in the manifest.", ""]
    s.md += md_table(["modifier", "label", "type (unit)", "trials collecting", "% missing",
                      "form in the effect model", f"interaction ({prim or NA})"], rows)
    s.data = {"modifiers": data, "interaction_task": prim if inter else None, "interaction_scale": scale if inter else None}
    return s


def _otype(inp: CardInputs, task: str | None) -> str:
    if task is None:
        return "continuous"
    r = inp.tasks[inp.tasks["task"] == task]
    if len(r) and "outcome_type" in r.columns:
        return str(r.iloc[0]["outcome_type"])
    return "binary" if "recovery" in task else "continuous"


def s_methods(inp: CardInputs) -> Section:
    run = inp.run
    s = Section("methods", dict(SECTION_ORDER)["methods"])
    learners = list(run.get("learners") or [])
    data = {
        "framework": "PATH (Kent et al., Ann Intern Med 2020): effect modelling (effect_model, meta-learners) and risk "
                     "modelling (risk_model); constant-effect model as the reference",
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
                        "LightGBM native missing-value splits",
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
    sel_text = {"stack": "convex (non-negative, sum-to-one) R-loss stacking of the learners on the IECV held-out predictions",
                "best": "the learner with the lowest pooled held-out R-loss",
                "best1se": "the simplest learner within one trial-clustered SE of the lowest held-out R-loss"}.get(
        str(run.get("select")), str(run.get("select") or NA))
    s.md += [
        f"- **Approach.** {data['framework']}.",
        f"- **Estimand.** {data['estimand']}. Positive = exercise better.",
        f"- **Harmonisation.** {data['harmonisation']}.",
        f"- **Treatments.** {data['treatments']}.",
        f"- **Learners fitted.** {', '.join(learners) or NA} (docs/learners.md).",
        f"- **Trials.** {data['trial_handling']}.",
        f"- **Missing data.** {data['missing_data']}.",
        f"- **Validation.** {data['validation']}; IECV follow-ups: {', '.join(run.get('iecv_follow_ups') or []) or 'none'}.",
        f"- **Metrics.** {data['metrics']} (docs/metrics.md).",
        f"- **Selection.** {sel_text}; tasks without IECV use the effect model (penalty by trial-grouped CV).",
        f"- **Uncertainty.** Trial-cluster bootstrap of the final models ({run.get('n_boot_linear', NA)} replicates for "
        f"linear learners, {run.get('n_boot_trees', NA)} for tree learners) gives the 95% intervals of predictions.",
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
        if sel.get("model") == "stacked":
            note = (f" The selected model is a stack; the numbers are its best single learner `{lr}` (the stack "
                    "itself is not re-validated by nested IECV).")
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
        rl = it.r_loss
        if rl is not None and len(rl):
            s.md += ["", "Held-out R-loss by learner (lower is better; gain vs the constant-effect model):", ""]
            s.md += md_table(["learner", "R-loss", "gain vs constant"],
                             [[r["learner"], _sig(r["r_loss"]),
                               (fnum(r.get("gain_vs_constant_pct"), 2) + "%") if fnum(r.get("gain_vs_constant_pct")) != "–" else "–"]
                              for r in rl.to_dict("records")])
        s.md += [""]
        per = it.per_trial
        data["tasks"][task] = {
            "headline_learner": lr,
            "selected": sel.get("model"),
            "pooled": _records(pooled.sort_values(["learner", "metric"], kind="mergesort")),
            "per_trial_learner": lr,
            "per_trial": _records(per[(per["metric"] != "r_loss") & (per["learner"] == lr)][["learner", "trial", "metric", "estimate", "ci_low", "ci_high"]
                                                                 + (["n"] if "n" in per.columns else [])]
                                  .sort_values(["learner", "metric", "trial"], kind="mergesort")) if per is not None else None,
            "r_loss": _records(rl) if rl is not None else None,
            "stack_weights": {k: jnum(v) for k, v in sorted((it.stack_weights or {}).items())} or None,
        }
    no_iecv = [t for t in inp.task_names() if t not in tasks]
    if no_iecv:
        s.md += [f"Not cross-validated by trial (no IECV run): {', '.join(no_iecv)}."]
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
        rows = []
        for k in keys.to_dict("records"):
            gg = g[(g["subgroup_variable"] == k["subgroup_variable"]) & (g["subgroup_level"] == k["subgroup_level"])].set_index("metric")
            row = [SUBGROUP_LABEL.get(str(k["subgroup_variable"]), str(k["subgroup_variable"])), str(k["subgroup_level"]),
                   f"{int(k['n'])} / {int(k['n_trials'])}"]
            dig = 3 if _otype(inp, str(task)) == "binary" else 2
            for mname in metrics:
                row.append(fci(gg.loc[mname, "estimate"], gg.loc[mname, "ci_low"], gg.loc[mname, "ci_high"], dig)
                           if mname in gg.index else "–")
            rows.append(row)
        s.md += md_table(["subgroup", "level", "n / trials"] + [T.METRICS[m][0] for m in metrics], rows) + [""]
    s.data = {"available": True,
              "rows": _records(sp.sort_values(["task", "subgroup_variable", "subgroup_level", "metric"], kind="mergesort"))}
    return s


def s_limitations(inp: CardInputs) -> Section:
    s = Section("limitations", dict(SECTION_ORDER)["limitations"])
    pkg = ([T.SYNTHETIC_LIMITATION] if inp.synthetic else []) + list(T.PACKAGE_LIMITATIONS)
    unavailable, sparse = comparator_flags(inp)
    if sparse:
        pkg.append("Sparse comparator classes in this model: " + ", ".join(sparse) + ".")
    if not inp.available.get("subgroup_performance.csv"):
        pkg.append("Subgroup performance was not computed for this model.")
    pkg.append("No external validation and no local validation have been done.")
    s.md += ["**Named by the seed paper** (" + T.SEED_SHORT + "; they apply to the trials this model's design "
             "follows):", ""]
    s.md += [f"- *{name}.* {txt}" for name, txt in T.SEED_LIMITATIONS]
    s.md += ["", "**Of this model and method:**", ""] + [f"- {x}" for x in pkg]
    s.data = {"seed_paper": T.SEED_PAPER,
              "seed_paper_limitations": [{"name": n, "description": d} for n, d in T.SEED_LIMITATIONS],
              "model_limitations": pkg}
    return s


def s_ethics(inp: CardInputs) -> Section:
    s = Section("ethics", dict(SECTION_ORDER)["ethics"])
    s.md += [f"- **{n}.** {m}" for n, m in T.ETHICS]
    s.data = [{"name": n, "mitigation_strategy": m} for n, m in T.ETHICS]
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
