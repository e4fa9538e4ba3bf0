"""CDS Hooks cards from a prediction and its input report.

One card per call: the summary gives the predicted benefit of exercise vs the default comparator
with its 95% CI and its smallest-worthwhile verdict (fewer than 140 characters, as the
specification requires: "<140-character"); the Markdown detail says what the intervals and the verdict mean, gives a table of the
benefit vs every comparator, then per comparator each outcome's expected value under each arm
(recovery as people per 100) with intervals, the benefit with its CI and PI, the verdict with its
probability (predict/verdict.py) and that comparator's own warnings; then the explanation from the
entered inputs only, the imputed inputs that moved the prediction listed apart, the inputs used
with their sources and conversions, the missing inputs and what in the record was not used and
why, the synthetic-data warning first when it applies. ``source`` links to the model card.
Text that comes from the record is escaped so it cannot inject Markdown or HTML.
"""
from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Any

from predict import verdict as verdicts
from predict.clinical_warnings import warning_kind
from predict.results import FACTORS_UNCERTAINTY
from serving.cds.fhir_map import MapResult

SUMMARY_MAX = 139  # CDS Hooks: a "<140-character summary"
HORIZON = {"short": "~3 months", "moderate": "~6 months", "long": "~12 months"}
OUTCOME_ORDER = ("pain", "function", "global_recovery")
PROBLEM_KINDS = ("contradictory", "wrong_unit", "out_of_range", "invalid", "other_patient", "fetch_failed",
                 "incomplete", "deceased")
KIND_LABEL = {"contradictory": "contradictory", "wrong_unit": "wrong unit", "out_of_range": "out of range",
              "invalid": "invalid", "unknown": "unknown", "stale": "too old", "ignored": "not used",
              "not_provided": "not provided", "other_site": "other body site", "other_patient": "another patient",
              "fetch_failed": "could not be fetched", "not_sent": "not sent", "incomplete": "incomplete",
              "deceased": "deceased", "implausible": "implausible", "approximate": "approximate"}
_MD = re.compile(r"([\\`*_{}\[\]<>|#!~])")


def md(text: Any) -> str:
    """Escape record-derived text for GitHub-flavoured Markdown (no links, HTML or table breaks)."""
    return _MD.sub(r"\\\1", " ".join(str(text).split()))


def comparator_label(name: str) -> str:
    return {"other_conservative": "other conservative care"}.get(name, name.replace("_", " "))


def _fmt_benefit(outcome: str, est: float, lo: float | None, hi: float | None) -> str:
    if outcome == "global_recovery":  # a difference in people per 100, not a relative "%"
        f = lambda x: f"{100 * x:+.0f}"  # noqa: E731
        unit = " per 100"
    else:
        f = lambda x: f"{x:+.1f}"  # noqa: E731
        unit = ""
    ci = f" (95% CI {f(lo)} to {f(hi)})" if lo is not None and hi is not None else ""
    return f"{f(est)}{unit}{ci}"


def _iv(iv: Any, f) -> str | None:
    return f"{f(iv[0])} to {f(iv[1])}" if iv and iv[0] is not None and iv[1] is not None else None


def _per100(x: float) -> str:
    return f"{100 * x:.0f}"


def _benefit_text(o: dict) -> str:
    """The benefit with both intervals (and the verdict for pain/function), in words."""
    b = o["benefit"]
    rec = o.get("outcome") == "global_recovery"
    f = (lambda x: f"{100 * x:+.0f}") if rec else (lambda x: f"{x:+.1f}")
    unit = " per 100" if rec else " points"
    ci, pi = _iv(b.get("ci"), f), _iv(b.get("prediction_interval"), f)
    ivs = []
    ivs.append(f"95% CI {ci}" if ci else "no confidence interval available")
    if b.get("pi_equals_ci") and pi:
        ivs.append("PI the same (τ = 0)")
    else:
        ivs.append(f"95% PI {pi}" if pi else "no prediction interval available")
    text = f"difference {f(b['estimate'])}{unit} ({'; '.join(ivs)})"
    v = o.get("verdict")
    if v and v["level"] == "uncertain":  # the words are predict/verdict.py's
        text += (f"; smallest worthwhile effect {v['threshold']:.1f}: **{v['words']}**: {verdicts.UNCERTAIN_REASON} "
                 f"({verdicts.probability_words(v)})")
    elif v:
        text += (f"; smallest worthwhile effect {o['verdict']['threshold']:.1f}: **{v['words']}** "
                 f"to clear it ({verdicts.probability_words(v)})")
    if v and v.get("confidence_text"):
        text += f"; {v['confidence_text']}"
    return text


def _arms_text(o: dict, comparator: str) -> str:
    """Expected outcome (or recovery as absolute risks) under each arm, each with its interval."""
    rec = o.get("outcome") == "global_recovery"
    parts = []
    for arm, label in (("intervention", "exercise"), ("comparator", comparator_label(comparator))):
        a = o.get(arm) or {}
        v = a.get("expected")
        if v is None:
            return ""
        iv = a.get("interval")
        if rec:
            ivt = f" (95% CI {_iv(iv, _per100)})" if _iv(iv, _per100) else " (no interval available)"
            parts.append(f"{_per100(v)} of 100{ivt} recover with {label}")
        else:
            g = lambda x: f"{x:.1f}"  # noqa: E731
            ivt = f" (95% CI {_iv(iv, g)})" if _iv(iv, g) else " (no interval available)"
            parts.append(f"expected {g(v)}{ivt} with {label}")
    return ", ".join(parts)


def _tasks(result: dict) -> list[tuple[str, dict]]:
    """Available tasks, pain first, shortest follow-up first."""
    items = [(k, v) for k, v in (result.get("outcomes") or {}).items() if v.get("available", True) and v.get("benefit")]
    order = {w: i for i, w in enumerate(HORIZON)}
    return sorted(items, key=lambda kv: (OUTCOME_ORDER.index(kv[1]["outcome"]) if kv[1].get("outcome") in OUTCOME_ORDER
                                         else 9, order.get(kv[1].get("follow_up"), 9)))


def _summary(result: dict, comparator: str, synthetic: bool, unusual: bool = False) -> str:
    tasks = _tasks(result)
    tail = ("; patient unlike the trials" if unusual else "") + ("; SYNTHETIC, not for clinical use" if synthetic else "")
    if not tasks:
        return f"Exercise therapy benefit vs {comparator_label(comparator)}: no outcome available{tail}"[:SUMMARY_MAX]
    _, t = tasks[0]
    b = t["benefit"]
    ci = b.get("ci") or [None, None]
    what = "recovery" if t["outcome"] == "global_recovery" else f"{t['outcome']}/100"
    v = t.get("verdict")
    worth = f"; {v.get('short') or v['words'] + ' worthwhile'}" if v else ""
    text = (f"Exercise vs {comparator_label(comparator)}: {what} benefit {_fmt_benefit(t['outcome'], b['estimate'], *ci)}"
            f" at {HORIZON.get(t.get('follow_up'), t.get('follow_up', ''))}{worth}{tail}")
    if len(text) > SUMMARY_MAX and worth:
        text = text.replace(worth, "")
    if len(text) > SUMMARY_MAX and synthetic:  # the flags stay whole; the long synthetic words go first
        text = text.replace("; SYNTHETIC, not for clinical use", "; SYNTHETIC")
    return text if len(text) <= SUMMARY_MAX else text[:SUMMARY_MAX - 1] + "…"


def _comparator_block(result: dict, comparator: str, keys: list[str], synthetic_warning_words: str) -> list[str]:
    """One comparator: each outcome's arms and benefit with intervals and verdict, then its warnings."""
    lines = ["", f"**vs {comparator_label(comparator)}**", ""]
    outs = result.get("outcomes") or {}
    for key in keys:
        o = outs.get(key) or {}
        name = "global recovery" if o.get("outcome") == "global_recovery" else f"{o.get('outcome', key)} (0-100)"
        horizon = HORIZON.get(o.get("follow_up"), o.get("follow_up") or "")
        b = o.get("benefit") or {}
        if not o.get("available", True) or b.get("estimate") is None:
            lines.append(f"- {name}, {horizon}: no prediction against this comparator")
            continue
        arms = _arms_text(o, comparator)
        lines.append(f"- {name}, {horizon}: {arms + '; ' if arms else ''}{_benefit_text(o)}")
    # this comparator's own warnings; those about the patient's inputs are said once (_patient_block)
    warns = [w for w in result.get("warnings") or [] if synthetic_warning_words not in w and not _about_patient(w)]
    for w in warns:
        lines.append(f"- warning: {md(w)}")
    return lines


UNUSUAL = ("rare_patient", "outside_training_range")
"""Kinds of input warning (predict.clinical_warnings) that make the card a warning and its summary
say the patient is unlike the trials: the prediction extrapolates."""


PER_COMPARATOR = ("outside_scale",)
"""Kinds of input warning that name a comparator's own prediction (an arm's predicted outcome past
0-100): kept in that comparator's block."""


def _about_patient(w: str) -> bool:
    """A warning about the patient's inputs that reads the same against every comparator."""
    kind = warning_kind(w)
    return kind is not None and kind not in PER_COMPARATOR


def _patient_warnings(results: dict[str, dict]) -> list[str]:
    """The warnings about the patient's own inputs (the same against every comparator), in order."""
    out: list[str] = []
    for r in results.values():
        out += [w for w in r.get("warnings") or [] if _about_patient(w) and w not in out]
    return out


def _patient_block(warns: list[str]) -> list[str]:
    if not warns:
        return []
    return ["", "**About this patient's inputs** (every comparator)", ""] + [f"- warning: {md(w)}" for w in warns]


def _table(results: dict[str, dict], comparators: list[str]) -> list[str]:
    first = results[comparators[0]]
    head = "| outcome | horizon | " + " | ".join(f"vs {comparator_label(c)}" for c in comparators) + " |"
    lines = [head, "|" + "---|" * (2 + len(comparators))]
    for key, t in _tasks(first):
        cells = []
        for c in comparators:
            o = (results[c].get("outcomes") or {}).get(key) or {}
            b = o.get("benefit")
            cell = (_fmt_benefit(t["outcome"], b["estimate"], *(b.get("ci") or [None, None]))
                    if b and b.get("estimate") is not None else "n/a")
            v = o.get("verdict")
            cells.append(cell + (f", {v.get('short') or v['words'] + ' worthwhile'}" if v else ""))
        name = "global recovery (difference per 100)" if t["outcome"] == "global_recovery" else f"{t['outcome']} (0-100)"
        lines.append(f"| {name} | {HORIZON.get(t.get('follow_up'), t.get('follow_up'))} | " + " | ".join(cells) + " |")
    return lines


def _inputs_section(mapped: MapResult, labels: dict[str, str], today: date | None = None) -> list[str]:
    out = ["", "**Inputs read from the record**", ""]
    for u in mapped.used:
        dated = u.when and u.source.startswith(("Observation", "QuestionnaireResponse", "computed"))
        days = (today - u.when).days if dated and today else 0
        when = (f", {u.when.isoformat()}" + (f", {days} days before today" if days > 0 else "")) if dated else ""
        value = f"{u.value:g}" if isinstance(u.value, float) else str(u.value)
        out.append(f"- {md(labels.get(u.feature, u.feature))} = {value}: {md(u.detail)} ({md(u.source)}{when})")
    if not mapped.used:
        out.append("- none")
    return out


def _findings_section(mapped: MapResult) -> list[str]:
    out = []
    if mapped.warnings:
        out += ["", f"**Used, but check the record** ({len(mapped.warnings)} warning"
                    f"{'s' if len(mapped.warnings) > 1 else ''})", ""]
        out += [f"- [{KIND_LABEL.get(f.kind, f.kind)}] {md(f.where)}: {md(f.message)}" for f in mapped.warnings]
    if mapped.findings:
        out += ["", "**Not used from the record** (never guessed; correct the record to use them)", ""]
        out += [f"- [{KIND_LABEL.get(f.kind, f.kind)}] {md(f.where)}: {md(f.message)}" for f in mapped.findings]
    return out


def _indicator(mapped: MapResult, unusual: bool = False) -> str:
    """``warning`` when the patient is unlike the trials, the record has a problem (PROBLEM_KINDS) or a
    used value should be checked; else ``info``."""
    problem = any(f.kind in PROBLEM_KINDS for f in mapped.findings)
    return "warning" if unusual or problem or mapped.warnings else "info"


def _missing_lines(missing: list[dict], mapped: MapResult, labels: dict[str, str]) -> list[str]:
    """The model's missing inputs, those the record had but could not be used apart from those it lacks."""
    unusable = {f.feature for f in mapped.findings if f.feature}
    bad = [m for m in missing if m["name"] in unusable]
    absent = [m for m in missing if m["name"] not in unusable]
    names = lambda ms: ", ".join(md(labels.get(m["name"], m["name"])) for m in ms)  # noqa: E731
    parts = []
    if bad:
        parts.append(f"not usable in the record ({len(bad)}, see **Not used** below): {names(bad)}")
    if absent:
        parts.append(f"not in the record ({len(absent)}): {names(absent)}")
    return ["", f"**Missing inputs** ({len(missing)}): " + "; ".join(parts) + ".", "",
            f"How the model handles them: {md(missing[0].get('handled_as', 'imputed'))}."]


def _base(summary: str, indicator: str, detail: list[str], source: dict) -> dict:
    return {"uuid": str(uuid.uuid4()), "summary": summary, "indicator": indicator, "detail": "\n".join(detail).strip(),
            "source": source, "links": [{"label": "Model card", "url": source["url"], "type": "absolute"}]}


def source_of(model_id: str, synthetic: bool, card_url: str) -> dict:
    label = f"lbp-benefit model {model_id}" + (" (synthetic data, not for clinical use)" if synthetic else "")
    return {"label": label, "url": card_url}


INTRO = ("**Predicted benefit of exercise therapy** (comparator minus exercise; positive favours exercise). "
         "Pain and function on 0-100 (higher = worse); global recovery as people per 100. Every prediction has its "
         "95% intervals: **CI** = the average for patients like this one; **PI** = for such a patient treated in a "
         "new clinic (adds the differences between trials; the same as the CI where the trials showed none, τ = 0). "
         "**Smallest worthwhile effect** = 20% of the patient's baseline score; the verdict is the "
         f"{verdicts.MODEL_BASED} (from the PI) that the benefit exceeds it in a new clinic: very likely ≥ 90%, likely 66-90%, possibly 33-66%, unlikely < 33%; "
         "**uncertain** (the model cannot tell) where a worthwhile benefit and a worthwhile harm (a benefit below "
         "minus the smallest worthwhile effect) are both at least 10% likely.")
SYNTHETIC_WORDS = "synthetic (simulated) data"


def outcome_label(outcome: str) -> str:
    return "global recovery" if outcome == "global_recovery" else f"{outcome} (0-100)"


def prediction_card(results: dict[str, dict], comparators: list[str], mapped: MapResult, labels: dict[str, str],
                    source: dict, synthetic: bool, synthetic_warning: str,
                    not_predicted: list[str] | None = None, today: date | None = None) -> dict:
    """The card for a scored patient; ``results`` maps each comparator (default first) to its result.
    ``not_predicted``: lines (already escaped) on the outcomes the record did not allow, shown after
    the predictions (nothing is added when every outcome was predicted)."""
    primary = results[comparators[0]]
    detail: list[str] = []
    if synthetic:
        detail += [f"> **Synthetic data: not for clinical use.** {md(synthetic_warning)}", ""]
    detail += [INTRO, ""]
    detail += _table(results, comparators)
    patient_warns = _patient_warnings(results)
    detail += _patient_block(patient_warns)
    keys = [k for k, _ in _tasks(primary)]
    for c in comparators:
        detail += _comparator_block(results[c], c, keys, SYNTHETIC_WORDS)
    if not_predicted:
        detail += ["", "**Not predicted** (the record lacks the baseline score these outcomes need; record it to "
                       "predict them)", ""] + [f"- {line}" for line in not_predicted]
    factors = primary.get("top_factors") or []
    ex = primary.get("explained") or {}
    if factors:
        detail += ["", f"**Why**, from the inputs that were entered "
                       f"({md(ex.get('units', 'contribution to the benefit'))}; "
                       f"{md(FACTORS_UNCERTAINTY)})", ""]
        for f in factors:
            detail.append(f"- {md(f.get('label') or f['name'])}: {f['contribution']:+.1f} (favours {md(f.get('favours', '?'))})")
    imputed = primary.get("imputed_factors") or []
    if imputed:
        detail += ["", "**Imputed inputs that moved the prediction** (not entered: filled in from the entered ones; "
                       "not a reason about this patient)", ""]
        for f in imputed:
            detail.append(f"- {md(f.get('label') or f['name'])}: {f['contribution']:+.1f} (imputed)")
    detail += _inputs_section(mapped, labels, today)
    missing = primary.get("missing") or []
    if missing:
        detail += _missing_lines(missing, mapped, labels)
    detail += _findings_section(mapped)
    unusual = any(warning_kind(w) in UNUSUAL for w in patient_warns)
    return _base(_summary(primary, comparators[0], synthetic, unusual), _indicator(mapped, unusual), detail, source)


def unavailable_card(reason: str, mapped: MapResult, labels: dict[str, str], source: dict, synthetic: bool,
                     synthetic_warning: str, how_to_fix: list[str], today: date | None = None) -> dict:
    """The card when no prediction can be made (e.g. a baseline score is missing)."""
    detail: list[str] = []
    if synthetic:
        detail += [f"> **Synthetic data: not for clinical use.** {md(synthetic_warning)}", ""]
    detail += [f"**No prediction:** {md(reason)}", ""] + [f"- {line}" for line in how_to_fix]
    detail += _inputs_section(mapped, labels, today) + _findings_section(mapped)
    indicator = _indicator(mapped)
    summary = "Exercise therapy benefit: not computed, " + reason
    if len(summary) > SUMMARY_MAX:
        summary = summary[:SUMMARY_MAX - 1] + "…"
    return _base(summary, indicator, detail, source)
