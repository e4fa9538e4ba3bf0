"""CDS Hooks cards from a prediction and its input report.

One card per call: the summary gives the predicted benefit of exercise vs the default comparator
with its 95% interval (< 140 characters, as the specification requires); the Markdown detail gives
the benefit vs every comparator, the explanation (top factors), the inputs used with their sources
and conversions, the missing inputs, what in the record was not used and why, and the model's
warnings, the synthetic-data warning first when it applies. ``source`` links to the model card.
Text that comes from the record is escaped so it cannot inject Markdown or HTML.
"""
from __future__ import annotations

import re
import uuid
from typing import Any

from serving.cds.fhir_map import MapResult

SUMMARY_MAX = 140
HORIZON = {"short": "~3 months", "moderate": "~6 months", "long": "~12 months"}
OUTCOME_ORDER = ("pain", "function", "global_recovery")
PROBLEM_KINDS = ("contradictory", "wrong_unit", "out_of_range", "invalid")
KIND_LABEL = {"contradictory": "contradictory", "wrong_unit": "wrong unit", "out_of_range": "out of range",
              "invalid": "invalid", "unknown": "unknown", "stale": "too old", "ignored": "not used",
              "not_provided": "not provided"}
_MD = re.compile(r"([\\`*_{}\[\]<>|#!~])")


def md(text: Any) -> str:
    """Escape record-derived text for GitHub-flavoured Markdown (no links, HTML or table breaks)."""
    return _MD.sub(r"\\\1", " ".join(str(text).split()))


def comparator_label(name: str) -> str:
    return {"other_conservative": "other conservative care"}.get(name, name.replace("_", " "))


def _fmt_benefit(outcome: str, est: float, lo: float | None, hi: float | None) -> str:
    if outcome == "global_recovery":
        f = lambda x: f"{100 * x:+.0f}%"  # noqa: E731
    else:
        f = lambda x: f"{x:+.1f}"  # noqa: E731
    ci = f" (95% CI {f(lo)} to {f(hi)})" if lo is not None and hi is not None else ""
    return f"{f(est)}{ci}"


def _tasks(result: dict) -> list[tuple[str, dict]]:
    """Available tasks, pain first, shortest follow-up first."""
    items = [(k, v) for k, v in (result.get("outcomes") or {}).items() if v.get("available", True) and v.get("benefit")]
    order = {w: i for i, w in enumerate(HORIZON)}
    return sorted(items, key=lambda kv: (OUTCOME_ORDER.index(kv[1]["outcome"]) if kv[1].get("outcome") in OUTCOME_ORDER
                                         else 9, order.get(kv[1].get("follow_up"), 9)))


def _summary(result: dict, comparator: str, synthetic: bool) -> str:
    tasks = _tasks(result)
    tail = "; SYNTHETIC model, not for clinical use" if synthetic else ""
    if not tasks:
        return f"Exercise therapy benefit vs {comparator_label(comparator)}: no outcome available{tail}"[:SUMMARY_MAX]
    _, t = tasks[0]
    b = t["benefit"]
    ci = b.get("ci") or [None, None]
    what = "recovery" if t["outcome"] == "global_recovery" else f"{t['outcome']}/100"
    text = (f"Exercise vs {comparator_label(comparator)}: {what} benefit {_fmt_benefit(t['outcome'], b['estimate'], *ci)}"
            f" at {HORIZON.get(t.get('follow_up'), t.get('follow_up', ''))}{tail}")
    return text if len(text) <= SUMMARY_MAX else text[:SUMMARY_MAX - 1] + "…"


def _table(results: dict[str, dict], comparators: list[str]) -> list[str]:
    first = results[comparators[0]]
    head = "| outcome | horizon | " + " | ".join(f"vs {comparator_label(c)}" for c in comparators) + " |"
    lines = [head, "|" + "---|" * (2 + len(comparators))]
    for key, t in _tasks(first):
        cells = []
        for c in comparators:
            o = (results[c].get("outcomes") or {}).get(key) or {}
            b = o.get("benefit")
            cells.append(_fmt_benefit(t["outcome"], b["estimate"], *(b.get("ci") or [None, None]))
                         if b and b.get("estimate") is not None else "n/a")
        name = "global recovery (probability)" if t["outcome"] == "global_recovery" else f"{t['outcome']} (0-100)"
        lines.append(f"| {name} | {HORIZON.get(t.get('follow_up'), t.get('follow_up'))} | " + " | ".join(cells) + " |")
    return lines


def _inputs_section(mapped: MapResult, labels: dict[str, str]) -> list[str]:
    out = ["", "**Inputs read from the record**", ""]
    for u in mapped.used:
        dated = u.when and u.source.startswith(("Observation", "QuestionnaireResponse"))
        when = f", {u.when.isoformat()}" if dated else ""
        value = f"{u.value:g}" if isinstance(u.value, float) else str(u.value)
        out.append(f"- {md(labels.get(u.feature, u.feature))} = {value}: {md(u.detail)} ({md(u.source)}{when})")
    if not mapped.used:
        out.append("- none")
    return out


def _findings_section(mapped: MapResult) -> list[str]:
    if not mapped.findings:
        return []
    out = ["", "**Not used from the record** (never guessed; correct the record to use them)", ""]
    for f in mapped.findings:
        out.append(f"- [{KIND_LABEL.get(f.kind, f.kind)}] {md(f.where)}: {md(f.message)}")
    return out


def _base(summary: str, indicator: str, detail: list[str], source: dict) -> dict:
    return {"uuid": str(uuid.uuid4()), "summary": summary, "indicator": indicator, "detail": "\n".join(detail).strip(),
            "source": source, "links": [{"label": "Model card", "url": source["url"], "type": "absolute"}]}


def source_of(model_id: str, synthetic: bool, card_url: str) -> dict:
    label = f"lbp-benefit model {model_id}" + (" (synthetic data, not for clinical use)" if synthetic else "")
    return {"label": label, "url": card_url}


def prediction_card(results: dict[str, dict], comparators: list[str], mapped: MapResult, labels: dict[str, str],
                    source: dict, synthetic: bool, synthetic_warning: str) -> dict:
    """The card for a scored patient; ``results`` maps each comparator (default first) to its result."""
    primary = results[comparators[0]]
    detail: list[str] = []
    if synthetic:
        detail += [f"> **Synthetic data: not for clinical use.** {md(synthetic_warning)}", ""]
    detail += ["**Predicted benefit of exercise therapy** (comparator minus exercise; positive favours exercise; "
               "95% confidence intervals). Pain and function on 0-100 (higher = worse); recovery as a difference "
               "in probability.", ""]
    detail += _table(results, comparators)
    factors = primary.get("top_factors") or []
    if factors:
        ex = primary.get("explained") or {}
        detail += ["", f"**Why** ({md(ex.get('units', 'contribution to the benefit'))})", ""]
        for f in factors:
            detail.append(f"- {md(f.get('label') or f['name'])}: {f['contribution']:+.1f} (favours {md(f.get('favours', '?'))})")
    detail += _inputs_section(mapped, labels)
    missing = primary.get("missing") or []
    if missing:
        names = ", ".join(md(labels.get(m["name"], m["name"])) for m in missing)
        detail += ["", f"**Missing inputs** ({len(missing)}): {names}.", "",
                   f"How the model handles them: {md(missing[0].get('handled_as', 'imputed'))}."]
    detail += _findings_section(mapped)
    warnings = [w for w in primary.get("warnings") or [] if "synthetic" not in w]
    if warnings:
        detail += ["", "**Model warnings**", ""] + [f"- {md(w)}" for w in warnings]
    indicator = "warning" if any(f.kind in PROBLEM_KINDS for f in mapped.findings) else "info"
    return _base(_summary(primary, comparators[0], synthetic), indicator, detail, source)


def unavailable_card(reason: str, mapped: MapResult, labels: dict[str, str], source: dict, synthetic: bool,
                     synthetic_warning: str, how_to_fix: list[str]) -> dict:
    """The card when no prediction can be made (e.g. a baseline score is missing)."""
    detail: list[str] = []
    if synthetic:
        detail += [f"> **Synthetic data: not for clinical use.** {md(synthetic_warning)}", ""]
    detail += [f"**No prediction:** {md(reason)}", ""] + [f"- {line}" for line in how_to_fix]
    detail += _inputs_section(mapped, labels) + _findings_section(mapped)
    indicator = "warning" if any(f.kind in PROBLEM_KINDS for f in mapped.findings) else "info"
    summary = "Exercise therapy benefit: not computed, " + reason
    if len(summary) > SUMMARY_MAX:
        summary = summary[:SUMMARY_MAX - 1] + "…"
    return _base(summary, indicator, detail, source)
