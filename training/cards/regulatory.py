"""The card's standards sections: what a clinician sees (intervals and the verdict), the owner's
organisational statements, the TRIPOD+AI checklist (all 52 items, each answered with where) and
the 31 ONC HTI-1 source attributes (each answered with where).

Owner statements (developer contact, funding, conflicts, ethics, monitoring, updates …) come from
the owner's file (training/cards/owner.py); a card built without one says "not stated by the model
owner" for them, never invents them.
"""
from __future__ import annotations

from typing import Any

from predict import verdict as V
from predict.results import FACTORS_UNCERTAINTY
from training.cards import text as T
from training.cards.data_sections import comparator_flags
from training.cards.format import fci, md_table
from training.cards.section import (NA, SECTION_ORDER, Section, feature_schema, headline_learner, n_trials_manifest,
                                    outcome_type_of)
from training.cards.inputs import CardInputs
from training.cards.study import NOT_RECORDED, binary_text, measured_text, study_words

NOT_STATED = "Not stated by the model owner (no owner file was given to `lbp-benefit card --owner`)"
ANSWERED, NOT_APPLICABLE = "answered", "not_applicable"

ARM_METHOD = ("The expected outcome under each arm (recovery: the probability) has a 95% CI of its value for "
              "patients like this one in an average trial. A single learner: the trial-cluster bootstrap (delta "
              "method on the coefficients' covariance; tree learners: the bootstrap's per-arm variance model). A "
              "stack: its members' per-arm standard errors added with the stack's weights as if perfectly correlated "
              "(conservative; the benefit's own SE may instead use the members' estimated error correlation, see "
              "Uncertainty), plus the spread over the conditional draws of inputs not entered; probabilities get "
              "the interval on the logit scale, so it stays within 0-100%. Checked against the simulator's truth "
              "(benchmarks/bench_binary_stack.py, BENCHMARKS.md, 2026-12-07): for the default design the stacked "
              "recovery model's arm CIs covered the true average-trial probability in 80% (exercise) and 85% "
              "(comparator) of cases, below 95% (they covered the estimate's own mean over seeds for 96-98%: the "
              "miss is bias, shared by every learner); read recovery's per-arm intervals as too narrow.")

# Result paths (predict.Scorer.score) of the outputs the card says have an interval, per task; tested
# against scored patients (tests/test_card_standards.py).
def interval_claims(inp: CardInputs) -> tuple[list[dict], list[dict]]:
    """(with, without): [{"path", "tasks", "what"}] built from the manifest (``arm_intervals``: per
    task whether the learner holds per-arm uncertainty, recorded at export)."""
    tasks = inp.task_names()
    arms = inp.manifest.get("arm_intervals")
    arm_yes = [t for t in tasks if isinstance(arms, dict) and arms.get(t) is True]
    arm_no = [t for t in tasks if t not in arm_yes]
    with_iv = [
        {"path": "benefit.ci", "tasks": tasks, "what": "benefit vs every comparator, network comparators included "
         "(95% CI: the average patient like this)"},
        {"path": "benefit.prediction_interval", "tasks": tasks, "what": "benefit vs every comparator (95% PI: a new "
         "clinic)"},
    ]
    if arm_yes:
        with_iv += [{"path": "intervention.interval", "tasks": arm_yes, "what": "expected outcome (binary outcomes: "
                     "probability) under the intervention (95% CI)"},
                    {"path": "comparator.interval", "tasks": arm_yes, "what": "expected outcome (binary outcomes: "
                     "probability) under the comparator (95% CI; conservative for network comparators)"}]
    without = []
    if arm_no:
        why = ("the task's learner holds no per-arm uncertainty for it (a tree learner exported without the "
               "bootstrap's per-arm variance model)" if isinstance(arms, dict) else "not recorded in this artifact's manifest")
        without.append({"path": "intervention.interval / comparator.interval", "tasks": arm_no,
                        "what": f"expected outcome under each arm: no interval ({why}); the result says so "
                                "(`interval_note`) and the difference has its CI and PI"})
    without.append({"path": "top_factors / imputed_factors", "tasks": tasks,
                    "what": f"the factors behind the benefit: {FACTORS_UNCERTAINTY}"})
    return with_iv, without


def swe_words(manifest: dict) -> tuple[str, str, str | None]:
    """The smallest worthwhile effects of the model's outcomes, from its manifest
    (:func:`predict.outcome_text.definitions`): (rule for the JSON, the sentence, the sentence on
    outcomes without a rule or None). The default study: 20% of the baseline for pain and function,
    none for global recovery."""
    from predict import outcome_text as W
    from types import SimpleNamespace

    base = set(manifest.get("baselines") or [])
    tasks = []
    for t in manifest.get("tasks") or []:
        if not isinstance(t, dict):  # a bare task name (partial manifests): <outcome>__<follow_up>
            o = str(t).split("__")[0]
            t = {"outcome": o, "outcome_type": "binary" if o == "global_recovery" else "continuous"}
        o, kind = t.get("outcome"), t.get("outcome_type", "continuous")
        tasks.append(SimpleNamespace(outcome=o, outcome_type=kind,
                                     baseline=f"baseline_{o}" if f"baseline_{o}" in base and kind != "binary" else None))
    defs = W.definitions(manifest, tasks)
    rules: dict[str, list[str]] = {}
    for o, d in defs.items():
        r = W.rule_text(d)
        if r:
            rules.setdefault(r, []).append(o.replace("_", " "))
    none = [o.replace("_", " ") for o, d in defs.items() if not d.get("smallest_worthwhile")]
    js = "; ".join(f"{r} ({', '.join(os_)})" for r, os_ in rules.items()) or "none configured"
    if len(rules) == 1 and next(iter(rules)).endswith("of the patient's baseline score"):
        r, os_ = next(iter(rules.items()))
        md = r.replace("baseline score", f"baseline {' or '.join(os_)} score")
    else:
        md = "; ".join(f"{', '.join(os_)}: {r}" for r, os_ in rules.items()) or "none configured"
    return js, md, (" and ".join(none) if none else None)


def owner_or(owner: dict | None, key: str) -> str:
    return owner[key] if owner and owner.get(key) else NOT_STATED


def _title(sid: str) -> str:
    return dict(SECTION_ORDER).get(sid, sid)


# ----------------------------------------------------------------------------- what a clinician sees
def s_point_of_care(inp: CardInputs) -> Section:
    s = Section("point_of_care", _title("point_of_care"))
    W = study_words(inp.manifest, inp.synthetic)
    with_iv, without = interval_claims(inp)
    rule_js, rule_md, no_rule = swe_words(inp.manifest)
    levels = [{"level": k, "words": w, "from_probability": lo} for lo, k, w in V.LEVELS]
    s.data = {"verdict_definition": V.DEFINITION, "verdict_basis": V.BASIS, "verdict_rationale": V.RATIONALE,
              "levels": levels, "threshold_rule": rule_js,
              "uncertain": {"level": V.UNCERTAIN, "words": V.UNCERTAIN_WORDS, "text": V.UNCERTAIN_TEXT,
                            "when_both_probabilities_at_least": V.PLAUSIBLE,
                            "probabilities": ["P(benefit > threshold)", "P(benefit < -threshold)"]},
              "interval_labels": {"ci": V.CI_LABEL, "prediction_interval": V.PI_LABEL, "pi_equals_ci": V.SAME_LABEL},
              "outputs_with_interval": with_iv, "outputs_without_interval": without, "arm_interval_method": measured_text(ARM_METHOD, W),
              "explanations": "from entered inputs only; imputed inputs listed apart (imputed_factors)",
              "imputation_warning": "a warning when more than 50% of the effect modifiers were imputed"}
    s.md += ["The API, the web calculator, the CDS Hooks card and this card use the same definitions "
             "(`predict/verdict.py`). Every number is shown with its intervals; nothing has to be switched on.", "",
             "**Intervals.** " + V.CI_LABEL[0].upper() + V.CI_LABEL[1:] + ". " + V.PI_LABEL[0].upper() + V.PI_LABEL[1:]
             + ". Where the trials showed no between-trial heterogeneity (τ = 0) " + V.SAME_LABEL.split(" because ")[0]
             + ", and every surface says so, because it is not a range for the individual patient.", "",
             f"**Smallest worthwhile effect.** {rule_md[0].upper() + rule_md[1:]}. The verdict is "
             "not a yes/no on the point estimate but the probability that the benefit exceeds it: "
             + V.DEFINITION + ".", "",
             "**Why.** " + V.RATIONALE, ""]
    s.md += md_table(["words", "probability that the benefit exceeds the smallest worthwhile effect"],
                     [["very likely", "≥ 90%"], ["likely", "66% to < 90%"], ["possibly", "33% to < 66%"],
                      ["unlikely", "< 33%"],
                      ["uncertain (the model cannot tell)", f"≥ {V.PLAUSIBLE:.0%}, and P(benefit < −threshold) "
                       f"≥ {V.PLAUSIBLE:.0%} too (replaces the word above)"]])
    s.md += ["", (f"No verdict is given for {no_rule} (no smallest worthwhile difference is defined for it); "
                  "its difference has a CI and a PI.") if no_rule else "Every outcome has a verdict.", "", "**Per-arm intervals.** " + measured_text(ARM_METHOD, W), "",
             "**Outputs with an interval**", ""]
    s.md += [f"- `{c['path']}`: {c['what']}; tasks: {', '.join(c['tasks'])}" for c in with_iv]
    s.md += ["", "**Outputs without an interval** (said explicitly wherever shown)", ""]
    s.md += [f"- `{c['path']}`: {c['what']}; tasks: {', '.join(c['tasks'])}" for c in without] or ["- none"]
    binary = [t for t in inp.task_names() if outcome_type_of(inp, str(t)) == "binary"]
    if binary:
        s.md += ["", f"**{'Recovery' + chr(39) + 's' if W.default else 'Binary outcomes' + chr(39)} intervals ({', '.join(binary)}).** "
                 + binary_text(T.binary_intervals(inp.manifest, binary), W)]
    s.data["binary_interval_coverage"] = binary_text(T.binary_intervals(inp.manifest, binary), W) if binary else None
    s.md += ["", "**Explanations** (\"why\") come from the inputs that were entered only; the contributions of "
             "imputed inputs are listed apart and are not reasons about the patient. When more than half of the "
             "model's effect modifiers were not entered, a warning says the prediction is close to that of an "
             "average patient with the same baseline scores. The CDS card lists the warnings of every comparator "
             "it shows."]
    return s


# ----------------------------------------------------------------------------- organisation
OWNER_ROWS = [
    ("developer", "Developer"), ("developer_contact", "Contact"), ("funding", "Funding"),
    ("conflicts_of_interest", "Conflicts of interest"), ("ethics_approval", "Ethics approval"),
    ("registration", "Registration"), ("patient_public_involvement", "Patient and public involvement"),
    ("stakeholders_consulted", "Stakeholders consulted"), ("external_validation", "External validation"),
    ("external_validation_party", "Who tested externally"), ("outcome_evaluation", "Evaluation on patient outcomes"),
    ("monitoring_plan", "Monitoring of validity and fairness"), ("local_validation", "Local validation"),
    ("update_plan", "Updates"), ("correction_frequency", "Correction when risks are found"),
    ("release_stage", "Release stage"), ("global_availability", "Availability"),
    ("regulatory_approval", "Regulatory approval"), ("clinical_risk_level", "Clinical risk level"),
    ("ehr_compatibility", "EHR compatibility"), ("reimbursement", "Reimbursement"),
    ("patient_consent_or_disclosure", "Patient consent or disclosure"), ("security", "Security"),
]


def s_organisation(inp: CardInputs, owner: dict | None) -> Section:
    s = Section("organisation", _title("organisation"))
    s.data = {k: owner_or(owner, k) for k, _ in OWNER_ROWS}
    s.data["source"] = "the model owner's file" if owner else "none given"
    s.md += ["Statements of the model's owner (`lbp-benefit card --owner FILE`; keys in "
             "`training/cards/owner_default.yaml`, which holds the synthetic default model's)." , ""]
    s.md += md_table(["item", "statement"], [[lab, s.data[k]] for k, lab in OWNER_ROWS])
    return s


# ----------------------------------------------------------------------------- TRIPOD+AI
# TRIPOD+AI 2024 (Collins et al., BMJ 2024;385:e078378): all 52 items, (item, topic, section id)
TRIPOD_ITEMS = [
    ("1", "Title: development/evaluation of a prediction model, population and outcome", "model_details"),
    ("2", "Abstract", "card_format"),
    ("3a", "Background: healthcare context and rationale, existing models", "intended_use"),
    ("3b", "Target population, place in the care pathway, intended users", "intended_use"),
    ("3c", "Known health inequalities between groups", "ethics"),
    ("4", "Objectives: development and/or validation", "model_details"),
    ("5a", "Data sources, and why", "training_data"),
    ("5b", "Dates of accrual and end of follow-up", "training_data"),
    ("6a", "Setting(s) and centres", "training_data"),
    ("6b", "Eligibility criteria of participants", "training_data"),
    ("6c", "Treatments received and how they were handled", "methods"),
    ("7", "Data preparation and quality checking", "methods"),
    ("8a", "Outcome definition, time horizon, how and when assessed, rationale", "methods"),
    ("8b", "Qualifications and demographics of outcome assessors", "methods"),
    ("8c", "Blinding of outcome assessment", "methods"),
    ("9a", "Choice of predictors", "modifiers"),
    ("9b", "Predictor definitions and measurement", "modifiers"),
    ("9c", "Qualifications and demographics of predictor assessors", "modifiers"),
    ("10", "Sample size", "training_data"),
    ("11", "Handling of missing data", "methods"),
    ("12a", "How the data were used (partitioning for evaluation)", "methods"),
    ("12b", "Handling of predictors in the analysis", "modifiers"),
    ("12c", "Model type, building and hyperparameter tuning", "methods"),
    ("12d", "Heterogeneity across clusters (trials)", "performance"),
    ("12e", "Performance measures and their rationale", "methods"),
    ("12f", "Model updating arising from the evaluation", "methods"),
    ("12g", "How model predictions were calculated", "model_details"),
    ("13", "Class imbalance", "methods"),
    ("14", "Fairness approaches", "subgroups"),
    ("15", "Model output and thresholds", "point_of_care"),
    ("16", "Differences between development and evaluation data", "methods"),
    ("17", "Ethics approval and consent", "organisation"),
    ("18a", "Funding", "organisation"),
    ("18b", "Conflicts of interest", "organisation"),
    ("18c", "Protocol", "organisation"),
    ("18d", "Registration", "organisation"),
    ("18e", "Data availability", "training_data"),
    ("18f", "Code availability", "model_details"),
    ("19", "Patient and public involvement", "organisation"),
    ("20a", "Flow of participants, numbers with and without the outcome", "training_data"),
    ("20b", "Participant characteristics", "training_data"),
    ("20c", "Comparison of development and evaluation data distributions", "training_data"),
    ("21", "Numbers of participants and outcome events per analysis", "training_data"),
    ("22", "Full model specification", "model_details"),
    ("23a", "Performance with CIs, calibration plots", "performance"),
    ("23b", "Performance in subgroups and between-trial heterogeneity", "subgroups"),
    ("24", "Results of model updating", "performance"),
    ("25", "Interpretation of the main results, fairness", "performance"),
    ("26", "Limitations", "limitations"),
    ("27a", "Handling of poor-quality, missing or out-of-range input at deployment", "model_details"),
    ("27b", "User interaction and expertise required", "intended_use"),
    ("27c", "Future research, next steps, generalisability", "limitations"),
]


def tripod_answers(inp: CardInputs, sections: dict[str, Section], owner: dict | None) -> list[dict]:
    k, n = n_trials_manifest(inp.manifest)
    iecv = inp.iecv_tasks()
    no_iecv = [t for t in inp.task_names() if t not in iecv]
    syn = inp.synthetic
    o = lambda key: owner_or(owner, key)  # noqa: E731
    ans = {
        "1": f"Model card of {inp.manifest.get('model_id')}: individual benefit of exercise therapy vs alternatives "
             "for persistent low back pain, developed from pooled randomised-trial IPD" + (" (SYNTHETIC)." if syn else "."),
        "2": "Not applicable to a model card (no journal abstract); the opening paragraph summarises the model.",
        "3a": "Exercise therapy helps persistent low back pain on average by a small amount; whether some patients "
              "benefit more is the question of the seed IPD meta-analysis (" + T.SEED_SHORT + "). No individual-"
              "benefit model for this decision was found to build on.",
        "3b": "Adults with persistent non-specific low back pain considering exercise therapy; clinicians (see Intended use).",
        "3c": "Sex, age, BMI and work status are the only equity-relevant variables in the data; race, ethnicity and "
              "socioeconomic position beyond employment and education were not collected (Ethical considerations).",
        "4": "Development with internal-external cross-validation by trial; no external validation.",
        "5a": ("Synthetic trials from the calibrated simulator" if syn else "Pooled randomised trials")
              + f": {k if k is not None else NA} trials, because randomised comparisons identify treatment benefit.",
        "5b": "Not applicable to simulated data (no accrual dates)." if syn else
              "Accrual and follow-up dates are not part of the data format; see the trials' own reports.",
        "6a": "Trial settings of the seed paper: " + T.SEED_SETTINGS + ".",
        "6b": T.SEED_ELIGIBILITY + ".",
        "6c": "Arms mapped to treatment classes; class-specific average effects, shared effect modification; "
              "exercise-only trials train prognosis.",
        "7": "Outcomes harmonised to 0–100 (higher = worse), follow-up closest to 3/6/12 months, global recovery "
             "dichotomised; `lbp-benefit check` validates every value and counts every excluded row (attrition report).",
        "8a": "Pain, functional limitations (0–100) and global recovery at ~13, 26 and 52 weeks (closest assessment "
              "in each window), the outcomes of the seed meta-analysis and of clinical decisions about exercise.",
        "8b": "Patient-reported outcomes (no assessor)." + (" Simulated here." if syn else ""),
        "8c": "Patient-reported outcomes in trials where patients know their treatment: outcome assessment is not "
              "blinded." + (" Simulated here." if syn else ""),
        "9a": "All candidate modifiers of the study config, chosen a priori by the seed protocol, not selected on the outcome.",
        "9b": "Feature schema: type, unit, plausible range and label per modifier.",
        "9c": "Patient-reported or routinely measured inputs (no assessor)." + (" Simulated here." if syn else ""),
        "10": f"No formal sample-size calculation; all {n if n is not None else NA} available participants used "
              "(per-task counts in Training data); precision is shown by every interval.",
        "11": "Two-level normal conditional-mean imputation (its variance added to the intervals) for linear learners; "
              "LightGBM native missing handling (an input never missing in training: its conditional mean).",
        "12a": "Leave one trial out (internal-external cross-validation)" + (
            f"; not run for {', '.join(no_iecv)} (the run's `iecv_follow_ups` setting)." if no_iecv else "."),
        "12b": "Continuous modifiers linear + restricted cubic spline in the effect model; centred within trial.",
        "12c": "Learners and selection/stacking rule in Methods; penalties tuned by trial-grouped CV of the R-loss.",
        "12d": "Per-trial metrics pooled by REML random effects with tau, I² and prediction intervals." if iecv else
               "No IECV was run, so heterogeneity of performance is not estimated.",
        "12e": "c-for-benefit, calibration for benefit, E-for-benefit, AUTOC/Qini, outcome calibration (Methods).",
        "12f": "Not applicable: no updating was done; `lbp-benefit validate --update` recalibrates on a new trial.",
        "12g": "Exported JSON/LightGBM text evaluated by the runtime scorer; HTTP API and CDS Hooks service.",
        "13": "Not applicable: no classification; recovery is modelled as a probability without resampling.",
        "14": "Subgroup performance by sex, age band, BMI band and work status" +
              ("." if inp.available.get("subgroup_performance.csv") else " (not computed for this model)."),
        "15": "Continuous benefit with 95% CI and PI; the smallest worthwhile effect (20% of baseline) is applied as a "
              "probability with four verdict words (What a clinician sees).",
        "16": "IECV refits all steps without the held-out trial; held-out trials differ in setting and case-mix as the "
              "trials do (per-trial results and prediction intervals show the spread).",
        "17": o("ethics_approval") + ".",
        "18a": o("funding") + ".",
        "18b": o("conflicts_of_interest") + ".",
        "18c": "Seed meta-analysis protocol: doi:10.1186/2046-4053-1-64. " + o("registration") + ".",
        "18d": o("registration") + ".",
        "18e": "Synthetic data reproducible from the seed (`lbp-benefit simulate`)." if syn else "IPD held by the trialists.",
        "18f": "Open source (lbp-benefit, Apache-2.0); git commit in Model details.",
        "19": o("patient_public_involvement") + ".",
        "20a": "Participants and exclusions per trial and outcome in the attrition table of Training data.",
        "20b": "Aggregate availability per covariate and participants per trial and class in Training data.",
        "20c": "Not applicable: no separate evaluation data set (IECV holds out each training trial in turn).",
        "21": "Participants and trials per task, attrition per outcome and window in Training data.",
        "22": "The artifact holds the full model (coefficients, trees, imputation model); interactions in Candidate modifiers.",
        "23a": ("Pooled IECV metrics with 95% CIs and calibration-for-benefit plots" + (
            f"; not available for {', '.join(no_iecv)} (no IECV)." if no_iecv else ".")) if iecv else
               "Not available: no IECV was run for this model.",
        "23b": "Subgroups and between-trial heterogeneity (tau, I², prediction intervals, forest plots).",
        "24": "Not applicable: no model updating was done.",
        "25": "Each metric is followed by a sentence saying what it means for a clinician (IECV performance).",
        "26": "Limitations and caveats, including the seed paper's.",
        "27a": "Out-of-range or mistyped inputs refused; missing covariates imputed and listed; a warning when most "
               "effect modifiers are imputed.",
        "27b": "Clinician reads an information card; no statistical expertise required; intervals and the verdict "
               "words are shown with their meaning.",
        "27c": ("Retrain on real IPD and validate externally before any clinical use." if syn else
                "External and prospective validation in the deployment setting before routine use."),
    }
    W = study_words(inp.manifest, syn)
    ans.update(W.tripod)  # a user's study: its own words, not the default study's condition and seed paper
    if not W.default:
        ans["26"] = "Limitations and caveats (the trials' own limitations are not recorded in the data format)."
    out = []
    for item, topic, sid in TRIPOD_ITEMS:
        a = ans[item]
        st = NOT_APPLICABLE if a.startswith("Not applicable") else ("not_stated" if NOT_STATED in a else ANSWERED)
        out.append({"item": item, "topic": topic, "section": sid, "section_title": _title(sid), "status": st,
                    "answer": a})
    return out


def s_tripod(inp: CardInputs, sections: dict[str, Section], owner: dict | None) -> Section:
    s = Section("tripod_ai", _title("tripod_ai"))
    items = tripod_answers(inp, sections, owner)
    s.md += ["TRIPOD+AI (Collins et al., BMJ 2024;385:e078378): every item of the checklist, its answer for this "
             "model and the section of this card that holds it (item numbers as transcribed; check against the "
             "published checklist).", ""]
    s.md += md_table(["item", "topic", "answer", "where in this card"],
                     [[i["item"], i["topic"], i["answer"], i["section_title"]] for i in items])
    s.data = {"standard": "TRIPOD+AI 2024 (Collins GS et al., BMJ 2024;385:e078378)", "items": items}
    return s


# ----------------------------------------------------------------------------- ONC HTI-1
def _headline(inp: CardInputs) -> list[str]:
    out = []
    for t in inp.iecv_tasks():
        lr = headline_learner(inp, t)
        p = inp.iecv[t].pooled
        r = p[(p["learner"] == lr) & (p["metric"] == "c_for_benefit")]
        r2 = p[(p["learner"] == lr) & (p["metric"] == "calibration_slope_for_benefit")]
        part = f"{t}: c-for-benefit {fci(*r.iloc[0][['estimate', 'ci_low', 'ci_high']])}" if len(r) else f"{t}: c-for-benefit {NA}"
        if len(r2):
            part += f", calibration slope for benefit {fci(*r2.iloc[0][['estimate', 'ci_low', 'ci_high']])}"
        out.append(part + f" (learner {lr})")
    return out


def hti1_answers(inp: CardInputs, sections: dict[str, Section], owner: dict | None) -> list[dict]:
    m = inp.manifest
    syn = inp.synthetic
    names = [f["name"] for f in feature_schema(m)]
    demo = [f"{n}: {T.HTI1_DEMOGRAPHIC[n]}" for n in names if n in T.HTI1_DEMOGRAPHIC]
    iecv = inp.iecv_tasks()
    no_iecv = [t for t in inp.task_names() if t not in iecv]
    sp = inp.subgroup_performance
    rep = None
    if sp is not None and len(sp):
        k = sp[sp["metric"] == "c_for_benefit"].drop_duplicates(["task", "subgroup_variable", "subgroup_level"])
        first = sorted(set(k["task"]))[0] if len(k) else None
        if first is not None:
            kk = k[(k["task"] == first) & (k["subgroup_variable"] != "all")]
            rep = f"held-out participants in {first}: " + "; ".join(
                f"{r['subgroup_variable']} {r['subgroup_level']} n={int(r['n'])}" for r in kk.to_dict("records"))
    unavailable, _ = comparator_flags(inp)
    W = study_words(m, syn)
    trials_settings = ("Seed paper's trials: " + T.SEED_SETTINGS) if W.default else ("Trial settings: " + NOT_RECORDED)
    o = lambda key: owner_or(owner, key) + "."  # noqa: E731
    S: dict[int, tuple[str, str]] = {
        1: (o("developer") + " Contact: " + o("developer_contact"), "organisation"),
        2: (o("funding"), "organisation"),
        3: (sections["model_details"].data["output"] + " Verdict: " + V.DEFINITION + ".", "point_of_care"),
        4: ("Prediction (of individual treatment benefit and of outcomes under each treatment).", "model_details"),
        5: (("SYNTHETIC model for demonstration and testing only; the method is intended to " if syn else "To ")
            + "estimate how much an adult with persistent low back pain is expected to benefit from exercise therapy vs "
              "alternatives, to inform shared decisions.", "intended_use"),
        6: ("Adults (> 18 years) with non-specific persistent (> 12 weeks) low back pain, alone or with leg pain.",
            "intended_use"),
        7: ("Clinicians managing low back pain (physiotherapists, GPs, musculoskeletal physicians); researchers.",
            "intended_use"),
        8: ("Informs clinical management; does not augment or replace it.", "intended_use"),
        9: (" ".join(sections["out_of_scope"].data["items"]), "out_of_scope"),
        10: ("Limitations and caveats: " + "; ".join(n for n, _ in T.SEED_LIMITATIONS) + "; "
             + ("synthetic training data; " if syn else "") + "no external validation.", "limitations"),
        11: (("Synthetic participants generated to match the design of " + T.SEED_SHORT + ". " if syn else "")
             + "Randomised trials of exercise therapy in adults with persistent non-specific low back pain at moderate "
               "to low risk of bias; per task, participants with a baseline and a follow-up in the window; comparator "
               "classes without any trial excluded" + (f" ({', '.join(unavailable)})" if unavailable else "") + ".",
             "training_data"),
        12: ("Inputs: " + ("; ".join(demo) if demo else "none of these") + ". Health status: baseline pain and "
             "function scores (required) and fear-avoidance beliefs are health status assessments. Not used: "
             + T.HTI1_NOT_USED + " (the CDS service reads birthDate only to compute age).", "modifiers"),
        13: ((f"Aggregate counts by subgroup, {rep}." if rep else "Subgroup counts were not computed for this model.")
             + " " + trials_settings + "."
             + (" Synthetic: the simulator reproduces these summaries only." if syn else "")
             + " Race and ethnicity are not in the data.", "subgroups"),
        14: (("None: synthetic data have no relevance to any deployed setting. " if syn else "")
             + trials_settings + ". Trial participants may differ from routine-care "
               "patients; deployers should compare their population.", "training_data"),
        15: ("Candidate modifiers include sex, age, BMI and employment only as effect modifiers; performance is "
             "reported by subgroup; no fairness constraint is imposed on the model.", "ethics"),
        16: ("Within-trial estimation (trial fixed effects, modifiers centred at trial means), known randomisation "
             "probabilities, trial-grouped tuning and leave-one-trial-out validation; trials at moderate to low "
             "risk of bias.", "methods"),
        17: (o("external_validation"), "organisation"),
        18: (o("external_validation_party"), "organisation"),
        19: (o("external_validation") + " So there are no external data whose representativeness could be described.",
             "organisation"),
        20: (o("external_validation") + " Internal-external cross-validation by trial is internal, not external.",
             "organisation"),
        21: (("Internal-external cross-validation (leave one trial out), pooled: " + "; ".join(_headline(inp)) + "."
              + (f" Not cross-validated: {', '.join(no_iecv)}." if no_iecv else "")
              + (" Synthetic data." if syn else "")) if iecv else "No IECV was run for this model.", "performance"),
        22: ("Subgroup performance (sex, age, BMI, work status) on IECV held-out predictions."
             if inp.available.get("subgroup_performance.csv") else
             "Subgroup performance was not computed for this model.", "subgroups"),
        23: (o("external_validation"), "organisation"),
        24: (o("external_validation") + " No fairness assessment on external data exists.", "organisation"),
        25: (o("outcome_evaluation"), "organisation"),
        26: (o("monitoring_plan"), "organisation"),
        27: (o("local_validation"), "organisation"),
        28: (o("monitoring_plan"), "organisation"),
        29: (o("local_validation") + " No local fairness assessment exists.", "organisation"),
        30: (o("update_plan"), "organisation"),
        31: (o("correction_frequency"), "organisation"),
    }
    for k, v in W.hti1.items():  # a user's study: its own words, not the default study's condition
        S[k] = (v, S[k][1])
    if not W.default:
        S[10] = ("Limitations and caveats: the trials' own limitations are " + NOT_RECORDED + "; "
                 + ("synthetic training data; " if syn else "") + "no external validation.", "limitations")
        S[12] = ("Inputs: " + ("; ".join(demo) if demo else "none of these") + ". Health status: the outcomes' "
                 "baseline scores where the study has them. Not used: any characteristic the study config does not "
                 "declare.", "modifiers")
        S[15] = ("The study's covariates enter only as candidate effect modifiers; performance is reported by "
                 "subgroup where computed; no fairness constraint is imposed on the model.", "ethics")
    out = []
    for num, cat, attr in T.HTI1_ATTRIBUTES:
        answer, sid = S[num]
        status = "not_stated" if NOT_STATED in answer else ANSWERED
        out.append({"number": num, "paragraph": T.HTI1_PARAGRAPH[num], "category": cat, "attribute": attr,
                    "status": status, "answer": answer,
                    "section": sid, "section_title": _title(sid)})
    return out


def s_hti1(inp: CardInputs, sections: dict[str, Section], owner: dict | None) -> Section:
    s = Section("hti1", _title("hti1"))
    items = hti1_answers(inp, sections, owner)
    s.md += ["Source attributes a predictive decision support intervention exposes under ONC HTI-1 "
             "(45 CFR 170.315(b)(11)(iv)(B)), each answered with where in this card. Organisational facts come "
             "from the model owner's statements (Developer, funding, oversight). " + T.HTI1_NOTE, ""]
    s.md += md_table(["#", "paragraph", "category", "attribute", "answer", "where in this card"],
                     [[i["number"], i["paragraph"].replace("170.315(b)(11)(iv)", ""), i["category"], i["attribute"],
                       i["answer"], i["section_title"]] for i in items])
    s.data = {"regulation": "ONC HTI-1, 45 CFR 170.315(b)(11)(iv)(B)", "note": T.HTI1_NOTE, "attributes": items}
    return s


def all_answers(card_json: dict) -> dict[str, Any]:
    """{'tripod_ai': items, 'onc_hti1': attributes} of a built card's JSON."""
    ext = card_json["extensions"]
    return {"tripod_ai": ext["tripod_ai"]["items"], "onc_hti1": ext["onc_hti1"]["attributes"]}
