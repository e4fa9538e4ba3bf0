"""Fixed wording of the model card: intended use, out-of-scope uses, limitations (including those
the seed paper names), ethical considerations, the TRIPOD+AI items and the ONC HTI-1 source
attributes. Kept apart from the code that fills in the run's numbers."""
from __future__ import annotations

SEED_PAPER = ("Hayden JA et al. Individual participant data meta-analysis of exercise therapy for persistent "
              "non-specific low back pain (27 randomised trials, 3514 participants); protocol "
              "doi:10.1186/2046-4053-1-64")
SEED_SHORT = "Hayden et al. (the seed IPD meta-analysis)"

SYNTHETIC_BANNER = ("**SYNTHETIC — NOT FOR CLINICAL USE.** This model was trained on synthetic data from the "
                    "package's calibrated simulator (scenario `hayden2020`), not on real patients. Its predictions, "
                    "performance figures and subgroup results describe the simulator only and must not inform the "
                    "care of any patient.")
REAL_NOTICE = ("Decision support only: the predictions inform, and never replace, a clinician's judgement "
               "shared with the patient.")

INTENDED_USE = [
    "Estimate, for one adult with persistent (> 12 weeks) non-specific low back pain, the expected "
    "benefit of exercise therapy compared with each comparator class the training trials contain "
    "(no treatment, usual care, placebo, other conservative care), on pain, functional limitations "
    "(0–100, higher = worse) and global recovery, at short-, moderate- and long-term follow-up "
    "(about 3, 6 and 12 months), with 95% intervals.",
    "Support a conversation between a clinician and a patient about whether exercise therapy is likely "
    "to help this patient more or less than it helps the average trial participant.",
    "Research: explore heterogeneity of the effect of exercise therapy and plan trials that test "
    "candidate effect modifiers prospectively.",
]
INTENDED_USERS = [
    "Physiotherapists, general practitioners, sports and musculoskeletal physicians and other "
    "clinicians who manage persistent low back pain, through an EHR-integrated CDS Hooks card or a "
    "calculator.",
    "Researchers and guideline developers studying treatment-effect heterogeneity.",
]
INTENDED_SETTINGS = [
    "Primary care, outpatient physiotherapy and secondary care settings comparable to those of the "
    "pooled randomised trials.",
    "Decision-making role: informs. The output does not replace or automate any decision.",
]
OUT_OF_SCOPE = [
    "Any clinical use of a model trained on synthetic data (the default model).",
    "Acute (< 6 weeks) or subacute low back pain; specific low back pain (fracture, infection, "
    "malignancy, cauda equina syndrome, inflammatory disease), radiculopathy needing surgical "
    "assessment, pregnancy-related pain: not in the trials' populations.",
    "Children and adolescents (< 18 years).",
    "Screening for red flags or diagnosing the cause of back pain; the model assumes the diagnosis.",
    "Choosing between types of exercise (e.g. yoga vs strengthening): the model compares exercise "
    "therapy as a class with non-exercise care.",
    "Comparator classes that no training trial compared with exercise (reported as unavailable), "
    "and over-reliance on classes flagged sparse.",
    "Withholding or rationing exercise therapy, coverage or reimbursement decisions, or any "
    "automated decision made without a clinician.",
    "Predicting the natural course of back pain without treatment (prognosis alone) or outcomes "
    "beyond the trained follow-ups.",
    "Patients whose covariate values fall outside the plausible ranges of the feature schema "
    "(the scorer refuses them) or who differ markedly from trial participants.",
]

# (short name, text) - the limitations the seed paper names, attributed to it
SEED_LIMITATIONS = [
    ("inconsistent covariate availability",
     "Inconsistent availability and measurement of participant characteristics across trials, which "
     "limited the assessment of candidate modifiers; some were measured in only a small subset of trials "
     "(e.g. heavy physical demands at work in 8 trials, 1386 participants; medication use for low back "
     "pain in 13 trials, 1774 participants)."),
    ("small trials",
     "Small included trials: not individually powered to detect a meaningful treatment or moderating "
     "effect, possibly of lower quality, or reflecting publication bias."),
    ("exploratory modifier findings",
     "Treatment-effect-modifier findings are exploratory and should be tested prospectively; the "
     "trials were not powered for effect modification."),
    ("risk of bias and representativeness",
     "Trials were selected as moderate to low risk of bias (Cochrane Back and Neck criteria) but other "
     "sources of bias may have been missed; IPD were received for about half of the requested trials."),
    ("comparisons",
     "Almost 40% of trials compared exercise types only (no non-exercise comparison); modifiers could "
     "not be explored for specific exercise types, specific non-exercise comparisons, or no treatment "
     "separately from placebo or usual care."),
    ("unmeasured modifiers",
     "Some planned modifiers could not be studied because few trials measured them: comorbidities, "
     "alcohol use and socioeconomic status."),
    ("linearity",
     "The paper assumed linear interactions for continuous variables and may have missed non-linear "
     "relationships."),
    ("heterogeneity and age of data",
     "Heterogeneity was not lower than in earlier aggregate-data meta-analyses; the trials were "
     "published before 2013."),
]

# Recovery at moderate and long term on the default design (BENCHMARKS.md "session 13 (s13b)",
# benchmarks/results/recovery_pooling_s13b_summary.csv, variant "dl+tau0.5": the effect model as train fits it since
# session 13, "dl": with the REML plug-in tau before, 4 seeds; "own": recovery_pooling_s13b_own_centred_summary.csv;
# short term: recovery_pooling_s13b_short_summary.csv, 2 seeds).
RECOVERY_LATER = (
    "These figures are for short-term recovery. At moderate and long term on the default design (two of the "
    "three comparator classes with 2-3 trials; the cross-validation kept little or no effect modification) "
    "the 95% CI covered the patient's benefit in an average trial for 77% (moderate) and 83% (long) of "
    "patients and the 95% prediction interval the benefit in a new trial for 85% and 91% (4 seeds; the "
    "between-trial SD of a binary outcome from its posterior under a half-normal prior on the log-odds scale, "
    "train's default since 2026-12-08, where the REML plug-in before gave 81% and 82%; in the same benchmark "
    "at short term it moved the PI from 89% to 91% and left the CI unchanged). Most of the CI's miss is not "
    "the class averages' pooling (with each class fitted on its own trials alone the CI covered 76% and 84%) "
    "but how the benefit varies between patients beyond what the model represents, and at long term the "
    "classes with 2 trials being off their truth; read recovery's CI at those follow-ups as too narrow, and "
    "its PI at moderate term as somewhat too narrow."
)

PACKAGE_LIMITATIONS = [
    "Individual benefit is not observable: each prediction is a conditional average effect for "
    "patients like this one in an average trial, not a guarantee for the individual.",
    "Effect modification is shared across comparator classes; each class has its own average effect "
    "only. Classes with few trials or participants are flagged sparse and their average effect rests "
    "on little data.",
    "Missing covariates are imputed from a two-level normal model that does not include outcome and "
    "treatment, so interactions estimated from imputed values are attenuated towards zero.",
    "Internal-external cross-validation (leave one trial out) re-uses the same trials: it is not an "
    "external validation, and selection or stacking weights estimated on the same held-out predictions "
    "make the best held-out figures slightly optimistic.",
    "c-for-benefit is not a proper scoring rule and depends on the matching; read it with the "
    "calibration for benefit.",
    "Tasks outside the IECV follow-ups (moderate and long term by default) use the effect model without "
    "selection; their performance is that of the effect model cross-validated alone (or, in a run with IECV "
    "switched off, not cross-validated by trial: the Performance section lists such tasks).",
]
# Binary (recovery) tasks: what the benefit intervals were measured to cover on the simulator's known
# truth (BENCHMARKS.md, "2026-12-07 session 9 (i23r)"; benchmarks/bench_learners.py --outcome
# global_recovery, benchmarks/bench_binary_coverage.py). Shown in the card (What a clinician sees,
# Limitations) of every model with a binary task.
BINARY_INTERVALS = (
    "Recovery (binary) benefit intervals are too narrow, and this package cannot yet make them honest. On "
    "simulated data with known truth (2 seeds per design) the 95% CI of the benefit covered the patient's "
    "benefit in an average trial for 80% of patients and the 95% prediction interval the benefit in a new "
    "trial for 81% where effect modification is strong; on the default design 87% and 86%. (There the "
    "stack does not beat the average effect and the CV-shrunk effect model is deployed; the average-effect "
    "model, deployed in that case until session 9, covered 49% and 60%.) They are honest about what they "
    "measure, the "
    "estimation error (they covered the learners' own large-sample values for 90-100% of patients); they "
    "miss bias: a logit-additive model fitted on conditionally imputed covariates (50-75% missing) cannot "
    "represent 'recovered on pain or on function', the spread over the missing inputs is understated by the "
    "attenuated fit, and a new trial's deviation "
    "varies between its patients (one between-trial SD per comparator cannot follow it; mapping a log-odds "
    "SD through each patient's risks was tried and did not help). The errors were 1.4 (default design) to "
    "1.6 (strong modification) times the intervals' standard errors (3.3 with the average-effect model): "
    "read recovery's CI and PI as too narrow."
)
# The same, for models whose recovery tasks carry the structural missing-input allowance (the manifest's
# ``structural_missing`` lists them; predict/recovery_structure.py): figures of BENCHMARKS.md "2026-12-07
# session 11 (i23r)", benchmarks/results/recovery_allowance_i23r_summary.csv (the effect model, 2 seeds).
BINARY_INTERVALS_STRUCTURAL = (
    "Recovery (binary) benefit intervals include, for a patient with missing inputs, how much recovery's own "
    "definition (improvement in pain or in function) varies through the pain and function models over the "
    "values the missing inputs could take (a structural allowance; a patient with every input entered gets "
    "the recovery model's interval alone). On simulated data with known truth (2 seeds per design) the 95% CI "
    "of the benefit covered the patient's benefit in an average trial for 92% of patients and the 95% "
    "prediction interval the benefit in a new trial for 90% on the default design (87% and 86% without the "
    "allowance); where effect modification is strong 89% and 88% (82% and 81%), and with heavy, systematic "
    "missingness of the modifiers 86% and 86% (77% and 77%). Where modification is strong they are still "
    "short of 95%: the errors are not a shift (mean error -0.03 to 0.00) but the recovery model's misfit per "
    "patient (a logit-additive model cannot represent 'recovered on pain or on function' exactly), which no "
    "interval of this package carries; read recovery's CI and PI there as somewhat too narrow. "
    + RECOVERY_LATER
)


def binary_intervals(manifest: dict, tasks: list[str]) -> str:
    """What the card says about the binary ``tasks``' intervals: the structural allowance's figures if
    every one of them carries it (manifest ``structural_missing``), else :data:`BINARY_INTERVALS`."""
    with_field = set((manifest or {}).get("structural_missing") or ())
    return BINARY_INTERVALS_STRUCTURAL if tasks and set(tasks) <= with_field else BINARY_INTERVALS


BORROWED_BELOW = 0.5  # a class whose own share of its average effect is below this is said to borrow it


def borrowed_classes(support: "pd.DataFrame | None") -> str | None:
    """One sentence naming, per task, the comparator classes whose average effect the effect model took
    mostly from their comparison set (own share ``own_weight`` < :data:`BORROWED_BELOW` after class
    shrinkage, class_support.csv), or None when none did or the column is absent. The share is the weight
    w of the class's own estimate in mu + w (a_c - mu) (training.learners.shrinkage)."""
    if support is None or "own_weight" not in support.columns:
        return None
    b = support[support["own_weight"].notna() & (support["own_weight"] < BORROWED_BELOW) & (support["trials"] > 0)]
    if not len(b):
        return None
    parts = [f"{task}: " + ", ".join(f"{r.comparator} ({int(r.trials)} trial{'s' * (int(r.trials) != 1)}, "
                                     f"own share {round(100 * float(r.own_weight))}%)" for r in g.itertuples())
             for task, g in b.groupby("task", sort=False)]
    return ("Borrowed class effects: where a comparator class's own trials could not tell its average effect "
            "apart from the other classes of its comparison set, the effect model used mostly the set's shared "
            "effect, and the benefit against that class is then largely that of the set (" + "; ".join(parts)
            + "). At an own share of 0% the classes' estimates showed no spread at all, and the interval then "
            "carries only the estimation error of the shared effect, not how far the class's own effect may lie "
            "from it.")


SYNTHETIC_LIMITATION = ("Trained on synthetic data: the simulator reproduces the published trial design and "
                        "summaries, and its own assumed effect modifiers; performance here measures how well the "
                        "learners recover the simulator's truth, not real-world validity.")

ETHICS = [
    ("Misuse of a synthetic model",
     "The card, the artifact manifest and every API response carry a synthetic flag; the card's first "
     "line says SYNTHETIC — NOT FOR CLINICAL USE."),
    ("Withholding an effective treatment",
     "Exercise therapy is recommended on average by guidelines. A low predicted benefit is not a reason "
     "to withhold it; the output informs a shared decision and shows its uncertainty (95% intervals)."),
    ("Unequal performance across groups",
     "Sex, age, BMI and employment enter as inputs because they are candidate effect modifiers; "
     "performance is reported by sex, age band, BMI band and work status. Race, ethnicity, language, "
     "sexual orientation and gender identity are not inputs and were not available for fairness checks."),
    ("Representativeness of trial participants",
     "Trial participants may differ from routine-care patients (e.g. comorbidity, socioeconomic "
     "status); deployers should compare their population with the training data before use."),
    ("Automation bias",
     "The output is information for a clinician (CDS Hooks 'info' cards only), never an order or an "
     "automated decision."),
    ("Privacy",
     "The artifact and the card hold aggregate numbers and model parameters only; no participant-level "
     "data. The scoring service does not log patient values."),
]

# the TRIPOD+AI checklist (all items) lives in training/cards/regulatory.py

# ONC HTI-1 predictive DSI source attributes, 45 CFR 170.315(b)(11)(iv)(B): (number, category, attribute), in the
# order and wording of the regulation's paragraphs (B)(1)(i) ... (B)(9)(ii) (see HTI1_NOTE for the source read)
_C = ["Details and output of the intervention", "Purpose of the intervention",
      "Cautioned out-of-scope use of the intervention", "Intervention development details and input features",
      "Process used to ensure fairness in development of the intervention", "External validation process",
      "Quantitative measures of performance", "Ongoing maintenance of intervention implementation and use",
      "Update and continued validation or fairness assessment schedule"]
_V = "the variables in paragraph (b)(11)(iv)(A)(5)-(13)"
_A = [
    (1, ["Name and contact information for the intervention developer",
         "Funding source of the technical implementation for the intervention(s) development",
         "Description of value that the intervention produces as an output",
         "Whether the intervention output is a prediction, classification, recommendation, evaluation, analysis, or "
         "other type of output"]),
    (2, ["Intended use of the intervention", "Intended patient population(s) for the intervention's use",
         "Intended user(s)",
         "Intended decision-making role for which the intervention was designed to be used/for (e.g., informs, "
         "augments, replaces clinical management)"]),
    (3, ["Description of tasks, situations, or populations where a user is cautioned against applying the "
         "intervention", "Known risks, inappropriate settings, inappropriate uses, or known limitations"]),
    (4, ["Exclusion and inclusion criteria that influenced the training data set",
         f"Use of {_V} as input features (race, ethnicity, language, sexual orientation, gender identity, sex, date "
         "of birth, social determinants of health, health status assessments)",
         f"Description of demographic representativeness according to {_V} including, at a minimum, those used as "
         "input features in the intervention",
         "Description of relevance of training data to intended deployed setting"]),
    (5, ["Description of the approach the intervention developer has taken to ensure that the intervention's "
         "output is fair", "Description of approaches to manage, reduce, or eliminate bias"]),
    (6, ["Description of the data source, clinical setting, or environment where an intervention's validity and "
         "fairness has been assessed, other than the source of training and testing data",
         "Party that conducted the external testing",
         f"Description of demographic representativeness of external data according to {_V} including, at a "
         "minimum, those used as input features in the intervention",
         "Description of external validation process"]),
    (7, ["Validity of intervention in test data derived from the same source as the initial training data",
         "Fairness of intervention in test data derived from the same source as the initial training data",
         "Validity of intervention in data external to or from a different source than the initial training data",
         "Fairness of intervention in data external to or from a different source than the initial training data",
         "References to evaluation of use of the intervention on outcomes, including bibliographic citations or "
         "hyperlinks to evaluations of how well the intervention reduced morbidity, mortality, length of stay, or "
         "other outcomes"]),
    (8, ["Description of process and frequency by which the intervention's validity is monitored over time",
         "Validity of intervention in local data",
         "Description of the process and frequency by which the intervention's fairness is monitored over time",
         "Fairness of intervention in local data"]),
    (9, ["Description of process and frequency by which the intervention is updated",
         "Description of frequency by which the intervention's performance is corrected when risks related to "
         "validity and fairness are identified"]),
]
_ROMAN = ["i", "ii", "iii", "iv", "v"]
HTI1_ATTRIBUTES = []
HTI1_PARAGRAPH: dict[int, str] = {}
for _k, _items in _A:
    for _j, _text in enumerate(_items):
        HTI1_ATTRIBUTES.append((len(HTI1_ATTRIBUTES) + 1, _C[_k - 1], _text))
        HTI1_PARAGRAPH[len(HTI1_ATTRIBUTES)] = f"170.315(b)(11)(iv)(B)({_k})({_ROMAN[_j]})"
SEED_ELIGIBILITY = ("Randomised trials of any form of exercise therapy compared with any or no other intervention in "
                    "adults (> 18 years) with non-specific persistent (> 12 weeks) low back pain, alone or with leg "
                    "pain, rated moderate to low risk of bias (at least 6 of 12 Cochrane Back and Neck items at low risk)")
SEED_SETTINGS = ("Trials in Australia and Denmark (4 each), Italy and the Netherlands (3 each), the UK, USA and Finland "
                 "(2 each), Hong Kong, Spain, Switzerland, Sweden, Norway and Brazil (1 each) and one multicountry trial; "
                 "10 in secondary care, 6 in primary care, 5 in occupational and 6 in general-population or mixed "
                 "settings; mean age by trial 37.0–60.1 years; 0–78% female participants")

HTI1_NOTE = ("Attribute names and order follow the regulatory text of 45 CFR 170.315(b)(11)(iv)(B)(1)-(9) as "
             "adopted by the ONC HTI-1 final rule (89 FR 1192, 9 January 2024; 31 attributes in 9 categories). "
             "Source read: the final rule's amendatory text for part 170 was found (a copy of the Federal Register "
             "text), but its paragraph (b)(11) could not be opened in the environment that wrote this card; the "
             "wording was taken from two independent transcriptions of the regulation that agree where both were "
             "readable (OpenEMR's list of the ONC predictive DSI source attributes; Aidbox's (b)(11) documentation); "
             "the nine category headings as Aidbox and two hospitals' HTI-1 disclosure pages list them. Check "
             "against the eCFR before relying on it for certification.")

# features that HTI-1 attribute 12 asks about, as named in the default study config
HTI1_DEMOGRAPHIC = {
    "female": "sex",
    "age": "age (derived from date of birth; date of birth itself is not an input)",
    "education_beyond_high_school": "social determinant of health (education)",
    "employed": "social determinant of health (employment)",
    "heavy_physical_work": "social determinant of health (occupational demands)",
    "sick_leave_12m": "social determinant of health (work absence)",
    "social_support": "social determinant of health (social support)",
    "general_health": "health status assessment",
    "mental_health": "health status assessment",
    "current_smoker": "health behaviour",
    "physically_active": "health behaviour",
}
HTI1_NOT_USED = "race, ethnicity, language, sexual orientation, gender identity, date of birth"

METRICS = {
    "c_for_benefit": ("c-for-benefit", "0.5 = no discrimination, higher better"),
    "calibration_slope_for_benefit": ("calibration slope for benefit", "1"),
    "calibration_intercept_for_benefit": ("calibration intercept for benefit", "0"),
    "citl_for_benefit": ("calibration-in-the-large for benefit", "0"),
    "e_avg_for_benefit": ("E-for-benefit (Eavg)", "0"),
    "autoc": ("AUTOC (RATE)", "> 0"),
    "qini": ("Qini (RATE)", "> 0"),
    "outcome_citl": ("outcome calibration-in-the-large", "0"),
    "outcome_slope": ("outcome calibration slope", "1"),
    "outcome_r2": ("outcome R²", "higher better"),
    "outcome_c_statistic": ("outcome C-statistic", "higher better"),
}

REFERENCES = [
    "https://doi.org/10.1186/2046-4053-1-64",
    "https://doi.org/10.1136/bmj-2023-078378",
    "https://arxiv.org/abs/1810.03993",
    "https://github.com/tensorflow/model-card-toolkit",
]


def stack_se_words(stacked: list, joint: list) -> str:
    """How the stacked tasks' benefit SE combines its learners' own SEs (``interval.member_corr``)."""
    plain = [t for t in stacked if t not in joint]
    out = []
    if joint:
        out.append(f"In {', '.join(joint)} the learners' own standard errors are combined with their estimated "
                   "error correlation (from the cross-validation refits that leave one trial out, shrunk towards 1 "
                   "when trials are few; training.learners.member_corr).")
    if plain:
        out.append(f"In {', '.join(plain)} they are added as if perfectly correlated (conservative: the widest "
                   "any correlation allows).")
    return " ".join(out)
