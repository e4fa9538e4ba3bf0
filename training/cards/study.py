"""What the card says about the study a model was trained for: the condition, the intervention, the
population and the seed paper.

The default study (``lbp_default``: exercise therapy for persistent low back pain, designed after
the seed IPD meta-analysis) has the fixed wording of :mod:`training.cards.text`. A user's own study
(bring your own IPD, any condition) knows only what its config and data say: the intervention and
comparator labels, the comparator classes, the outcomes and follow-ups. Its card is worded from
those, and says where the data format records nothing (eligibility, settings), instead of
describing another condition's trials, population and literature.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from training.cards import text as T

DEFAULT_STUDY = "lbp_default"
NOT_RECORDED = "not recorded in the data format (see the trials' own reports)"


@dataclass(frozen=True)
class StudyWords:
    default: bool
    title: str
    overview: str
    intended_use: list[str]
    intended_users: list[str]
    intended_settings: list[str]
    expertise: str
    out_of_scope: list[str]  # the first item: synthetic models only
    eligibility: str | None  # None: not recorded
    settings: str | None
    seed_short: str | None
    seed_paper: str | None
    seed_limitations: list[tuple[str, str]]
    ethics: list[tuple[str, str]]
    intervention: str = "exercise"
    tripod: dict[str, str] = field(default_factory=dict)  # TRIPOD+AI answers replacing the default study's
    hti1: dict[int, str] = field(default_factory=dict)  # HTI-1 attribute answers replacing the default study's
    keywords: tuple[str, ...] = ("low back pain", "exercise therapy", "individual treatment benefit",
                                 "IPD meta-analysis", "prediction interval")


def is_default(manifest: dict) -> bool:
    return str(manifest.get("study") or DEFAULT_STUDY) == DEFAULT_STUDY


def _join(xs) -> str:
    xs = [str(x) for x in xs if str(x)]
    return ", ".join(xs[:-1]) + " and " + xs[-1] if len(xs) > 1 else (xs[0] if xs else "not available")


def study_words(manifest: dict, synthetic: bool) -> StudyWords:
    """The card's wording of the study of ``manifest`` (an artifact manifest)."""
    if is_default(manifest):
        ethics = list(T.ETHICS) if synthetic else [e for e in T.ETHICS if e[0] != "Misuse of a synthetic model"]
        return StudyWords(
            default=True,
            title=("Individual benefit of exercise therapy vs alternatives for persistent low back pain, predicted from "
                   "pooled randomised-trial individual participant data."),
            overview=("Predicts an individual's benefit of exercise therapy vs no treatment, usual care, placebo or other "
                      "conservative care for persistent low back pain, from pooled randomised-trial IPD."),
            intended_use=list(T.INTENDED_USE), intended_users=list(T.INTENDED_USERS),
            intended_settings=list(T.INTENDED_SETTINGS),
            expertise=("A clinician who manages low back pain; the output needs no statistical training; every number is "
                       "shown with its intervals and their meaning."),
            out_of_scope=list(T.OUT_OF_SCOPE), eligibility=T.SEED_ELIGIBILITY, settings=T.SEED_SETTINGS,
            seed_short=T.SEED_SHORT, seed_paper=T.SEED_PAPER, seed_limitations=list(T.SEED_LIMITATIONS), ethics=ethics)
    labels = manifest.get("labels") or {}
    active = str(manifest.get("active") or "the intervention")
    iv = str(labels.get("intervention") or active)
    cv = str(labels.get("comparator") or "the comparators")
    comps = [str(c.get("name") if isinstance(c, dict) else c) for c in manifest.get("comparators") or []]
    defs = manifest.get("outcome_definitions") or {}
    outs = [str((defs.get(o) or {}).get("label") or o) for o in manifest.get("outcomes") or []]
    fus = [str(f.get("name") if isinstance(f, dict) else f) for f in manifest.get("follow_ups") or []]
    study = str(manifest.get("study"))
    ethics = ([T.ETHICS[0]] if synthetic else []) + [
        ("Withholding an effective treatment",
         f"A low predicted benefit of {iv} is not by itself a reason to withhold it; the output informs a shared "
         "decision and shows its uncertainty (95% intervals)."),
        ("Unequal performance across groups",
         "The study's covariates enter as inputs because they are candidate effect modifiers; characteristics the "
         "study does not record (e.g. race, ethnicity, language, sexual orientation, gender identity) are not inputs "
         "and were not available for fairness checks."),
        T.ETHICS[3], T.ETHICS[4]]
    uses = [
        f"Estimate, for one patient like the participants of the training trials, the expected benefit of {iv} "
        f"compared with each comparator class the training trials contain ({_join(comps)}), on {_join(outs)} at the "
        f"trained follow-ups ({_join(fus)}), with 95% intervals.",
        f"Support a conversation between a clinician and a patient about whether {iv} is likely to help this patient "
        "more or less than it helps the average trial participant.",
        f"Research: explore heterogeneity of the effect of {iv} and plan trials that test candidate effect modifiers "
        "prospectively."]
    users = [f"Clinicians who decide about {iv} for patients like the trials' participants, through an EHR-integrated "
             "CDS Hooks card or a calculator.", T.INTENDED_USERS[1]]
    settings = ["Settings comparable to those of the pooled randomised trials (the data format does not record them: "
                "see the trials' own reports).", T.INTENDED_SETTINGS[1]]
    scope = [T.OUT_OF_SCOPE[0],
             "Patients outside the eligibility criteria of the training trials (" + NOT_RECORDED + "), and conditions, "
             "populations or settings the trials did not include.",
             f"Comparator classes that no training trial compared with {iv} (reported as unavailable), and "
             "over-reliance on classes flagged sparse.",
             f"Withholding or rationing {iv}, coverage or reimbursement decisions, or any automated decision made "
             "without a clinician.",
             "Predicting the outcome without treatment (prognosis alone) or outcomes beyond the trained follow-ups.",
             T.OUT_OF_SCOPE[-1]]
    title = (f"Individual benefit of {iv} vs {cv} (study `{study}`), predicted from pooled randomised-trial individual "
             "participant data.")
    tripod = {
        "1": f"Model card of {manifest.get('model_id')}: individual benefit of {iv} vs {cv} (study `{study}`), "
             "developed from pooled randomised-trial IPD" + (" (SYNTHETIC)." if synthetic else "."),
        "3a": f"Whether some patients benefit more from {iv} than others: the study's own rationale is not part of "
              "the data format (see the trials' own reports).",
        "3b": f"Patients like the participants of the training trials considering {iv}; clinicians (see Intended use).",
        "3c": "The equity-relevant variables are those among the study's covariates (Candidate modifiers); others "
              "were not collected (Ethical considerations).",
        "6a": "Trial settings: " + NOT_RECORDED + ".",
        "6b": "Eligibility of participants: " + NOT_RECORDED + ".",
        "6c": "Arms mapped to treatment classes; class-specific average effects, shared effect modification.",
        "7": "Outcomes harmonised to 0–100 (higher = worse) by each instrument's declared range and direction, per "
             "follow-up window the measurement closest to its target week; `lbp-benefit check` validates every value "
             "and counts every excluded row (attrition report).",
        "8a": f"{_join(outs)} at the follow-ups {_join(fus)} of the study config (closest assessment in each window).",
        "8b": "How outcomes were assessed: " + NOT_RECORDED + ".",
        "8c": "Blinding of outcome assessment: " + NOT_RECORDED + ".",
        "9a": "All covariates of the study config and each outcome's baseline, not selected on the outcome.",
        "15": "Benefit with 95% CI and PI; each outcome's smallest worthwhile effect (study config) is applied as a "
              "probability with four verdict words (What a clinician sees).",
        "13": "Not applicable: no classification; binary outcomes are modelled as probabilities without resampling.",
        "18c": "Protocol registration: " + NOT_RECORDED + ".",
    }
    hti1 = {
        5: ("SYNTHETIC model for demonstration and testing only; the method is intended to " if synthetic else "To ")
        + f"estimate how much a patient like the training trials' participants is expected to benefit from {iv} vs "
          f"{cv}, to inform shared decisions.",
        6: "Patients like the participants of the training trials; their eligibility criteria are " + NOT_RECORDED + ".",
        7: f"Clinicians who decide about {iv}; researchers.",
        11: ("Randomised trials supplied by the user (study `" + study + "`); per task, participants with a follow-up "
             "in the window (and a baseline where the outcome has one); eligibility " + NOT_RECORDED + "."),
    }
    return StudyWords(
        default=False, title=title,
        overview=f"Predicts an individual's benefit of {iv} vs {_join(comps)} on {_join(outs)}, from pooled "
                 f"randomised-trial IPD (study `{study}`).",
        intended_use=uses, intended_users=users, intended_settings=settings,
        expertise="A clinician who makes this treatment decision; the output needs no statistical training; every "
                  "number is shown with its intervals and their meaning.",
        out_of_scope=scope, eligibility=None, settings=None, seed_short=None, seed_paper=None, seed_limitations=[],
        ethics=ethics, intervention=iv, tripod=tripod, hti1=hti1,
        keywords=(iv, "individual treatment benefit", "IPD meta-analysis", "prediction interval"))


# the package's own measurements, made on the default study's simulator, worded for a user's study
_MEASURED = (("(recovery: the probability)", "(binary outcomes: the probability)"),
             ("the stacked recovery model's arm CIs", "the default study's stacked recovery model's arm CIs"),
             ("80% (exercise)", "80% (its intervention arm)"),
             ("read recovery's per-arm intervals as too narrow", "read binary outcomes' per-arm intervals as too narrow"))


def measured_text(text: str, words: StudyWords) -> str:
    """``text`` (a statement of what the package measured on the default study's simulator) for the card of
    ``words``' study: unchanged for the default study, else without the default study's outcome words."""
    if words.default:
        return text
    for old, new in _MEASURED:
        text = text.replace(old, new)
    return text


def binary_text(text: str, words: StudyWords) -> str:
    """What the package measured of binary (recovery) intervals, for a user study's binary outcomes."""
    if words.default:
        return text
    return ("Binary outcomes: what the package measured on its only binary check, the default study's simulated "
            "global recovery (a user's binary outcome has not been checked): " + text)
