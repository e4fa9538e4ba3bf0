"""The calculator page, server-rendered from the loaded model's feature schema.

Every covariate becomes an optional input with its label, unit and plausible range; the baselines
are required; the comparator is chosen from the model's classes. The page has no inline script:
behaviour lives in ``static/calculator.js``, which reads the same field specification from a JSON
data block (``<script type="application/json">`` is data, never executed).
"""
from __future__ import annotations

import json
import re
from html import escape
from typing import Any

from predict.schema import CovariateSpec
from predict.verdict import MODEL_BASED
from serving.interface import BASELINE_RANGE, ScorerLike, is_synthetic
from serving.requirements import OutcomeNeeds
from serving.schemas import SYNTHETIC_WARNING

STATIC = "/calculator/static"
SCORE_URL = "/calculator/score"
CARD_URL = "/calculator/model-card"

COMPARATOR_LABELS = {
    "no_treatment": "no treatment", "usual_care": "usual care", "placebo": "placebo",
    "other_conservative": "other conservative treatment", "combined": "exercise combined with other treatment",
}
OUTCOME_LABELS = {"pain": "Pain intensity", "function": "Functional limitations", "global_recovery": "Global recovery"}
BASELINE_LABELS = {"baseline_pain": "Pain intensity at baseline",
                   "baseline_function": "Functional limitations at baseline"}
# The default study's follow-up windows (training/configs/lbp_default.yaml): closest to 13, 26, 52 weeks.
DEFAULT_FOLLOW_UPS = {"short": "about 3 months", "moderate": "about 6 months", "long": "about 12 months"}


def _g(x: float) -> str:
    return f"{x:g}"


def humanise(name: str, labels: dict[str, str]) -> str:
    return labels.get(name, name.replace("_", " "))


def follow_up_labels(scorer: ScorerLike) -> dict[str, str]:
    """Window names in words; the months are stated only for the default study, whose windows are known."""
    known = scorer.manifest.get("study") == "lbp_default"
    names = getattr(scorer, "follow_ups", None) or scorer.manifest.get("follow_ups") or list(DEFAULT_FOLLOW_UPS)
    return {f: (f"{DEFAULT_FOLLOW_UPS[f]} ({f}-term follow-up)" if known and f in DEFAULT_FOLLOW_UPS
                else f"{f}-term follow-up") for f in names}


def _field_spec(spec: CovariateSpec) -> dict[str, Any]:
    return {"name": spec.name, "type": spec.type, "label": spec.label or spec.name, "unit": spec.unit,
            "range": list(spec.range) if spec.range else None,
            "categories": list(spec.categories) if spec.categories else None}


def config(scorer: ScorerLike) -> dict[str, Any]:
    """What the page's script needs: fields, labels, where to post. No patient data."""
    synthetic = is_synthetic(scorer.manifest)
    return {
        "model_id": str(scorer.manifest.get("model_id")),
        "synthetic": synthetic,
        "synthetic_warning": SYNTHETIC_WARNING if synthetic else None,
        "score_url": SCORE_URL,
        "baselines": [{"name": b, "type": "baseline", "label": humanise(b, BASELINE_LABELS),
                       "unit": "0-100", "range": list(BASELINE_RANGE)}
                      for b in scorer.baselines],
        "covariates": [_field_spec(c) for c in scorer.schema.covariates],
        "comparators": {c: humanise(c, COMPARATOR_LABELS) for c in scorer.comparators},
        "outcome_labels": {o: humanise(o, OUTCOME_LABELS) for o in scorer.outcomes},
        "follow_up_labels": follow_up_labels(scorer),
        "intervention_label": intervention_label(scorer),
        "model_based": MODEL_BASED,  # how the verdict's probabilities are named (predict/verdict.py)
    }


def intervention_label(scorer: ScorerLike) -> str:
    """The configured label of the active class (the manifest's ``labels``; else its name)."""
    lab = (scorer.manifest.get("labels") or {}).get("intervention")
    return str(lab or str(scorer.manifest.get("active") or "the intervention").replace("_", " "))


def _hint_id(name: str) -> str:
    return f"f-{name}-hint"


def _text_input(f: dict, required: bool, hint: str) -> str:
    n = f["name"]
    unit = f" <span class=\"unit\">({escape(f['unit'])})</span>" if f.get("unit") else ""
    req = " required aria-required=\"true\"" if required else ""
    return (f'<div class="field" data-field="{n}">'
            f'<label for="f-{n}">{escape(f["label"])}{unit}</label>'
            f'<p class="hint" id="{_hint_id(n)}">{escape(hint)}</p>'
            f'<p class="error-msg" id="f-{n}-error" hidden></p>'
            f'<input id="f-{n}" name="{n}" type="text" inputmode="decimal" autocomplete="off" spellcheck="false"'
            f' aria-describedby="{_hint_id(n)} f-{n}-error"{req}></div>')


def _binary(spec: CovariateSpec) -> str:
    n = spec.name
    ref = re.match(r"^\s*0\s*=\s*(.+)$", spec.reference or "")
    no = "No" + (f" ({ref.group(1).strip()})" if ref else "")
    opts = [("", "Unknown"), ("0", no), ("1", "Yes")]
    radios = "".join(
        f'<label class="choice"><input type="radio" name="{n}" id="f-{n}-{i}" value="{v}"'
        f'{" checked" if v == "" else ""}><span>{escape(t)}</span></label>' for i, (v, t) in enumerate(opts))
    return (f'<fieldset class="field binary" data-field="{n}"><legend>{escape(spec.label or n)}</legend>'
            f'<div class="choices" id="f-{n}">{radios}</div>'
            f'<p class="error-msg" id="f-{n}-error" hidden></p></fieldset>')


def _categorical(spec: CovariateSpec) -> str:
    n = spec.name
    opts = '<option value="">Unknown</option>' + "".join(
        f'<option value="{escape(c)}">{escape(c.replace("_", " "))}</option>' for c in spec.categories or ())
    return (f'<div class="field" data-field="{n}"><label for="f-{n}">{escape(spec.label or n)}</label>'
            f'<p class="hint" id="{_hint_id(n)}">Optional.</p>'
            f'<p class="error-msg" id="f-{n}-error" hidden></p>'
            f'<select id="f-{n}" name="{n}" aria-describedby="{_hint_id(n)} f-{n}-error">{opts}</select></div>')


def _covariate(spec: CovariateSpec) -> str:
    if spec.type == "binary":
        return _binary(spec)
    if spec.type == "categorical":
        return _categorical(spec)
    f = _field_spec(spec)
    unit = spec.unit if spec.range and spec.unit and spec.unit != f"{_g(spec.range[0])}-{_g(spec.range[1])}" else ""
    rng = f"{_g(spec.range[0])} to {_g(spec.range[1])}{(' ' + unit) if unit else ''}. " if spec.range else ""
    extra = f"{spec.description.strip()} " if spec.description else ""
    return _text_input(f, False, f"{rng}{extra}Leave empty if unknown.")


def _comparator(scorer: ScorerLike, cfg: dict) -> str:
    default = "usual_care" if "usual_care" in scorer.comparators else scorer.comparators[0]
    opts = "".join(f'<option value="{escape(c)}"{" selected" if c == default else ""}>{escape(lab)}</option>'
                   for c, lab in cfg["comparators"].items())
    sparse = [cfg["comparators"][c] for c in scorer.manifest.get("sparse_comparators") or ()
              if c in cfg["comparators"]]
    act = cfg["intervention_label"]
    note = (f" Few trials compared {act} with {', '.join(sparse)}: those predictions rest on little data."
            if sparse else "")
    return (f'<div class="field" data-field="comparator"><label for="f-comparator">Alternative to {escape(act)}'
            '</label><p class="hint" id="f-comparator-hint">The treatment the patient would get instead.'
            f'{escape(note)}</p><select id="f-comparator" name="comparator" required aria-required="true"'
            f' aria-describedby="f-comparator-hint">{opts}</select></div>')


def _json_block(obj: Any) -> str:
    # "<" escaped so the data can never close the script element.
    return json.dumps(obj, ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _needed_for(name: str, needs: OutcomeNeeds, cfg: dict) -> str:
    """Which outcomes need a baseline, in the page's words (from ``Scorer.requirement``)."""
    label = cfg["outcome_labels"]
    own = [lower(label.get(o, o)) for o, r in needs.by_outcome.items() if name in r.all_of]
    either = [label.get(o, o) for o, r in needs.by_outcome.items() if any(name in g for _, g in r.any_of)]
    parts = ["Needed to predict " + " and ".join(own) + "."] if own else []
    parts += [f"{x} needs this or the other baseline score." for x in either]
    return " ".join(parts) if parts else "Optional."


def lower(text: str) -> str:
    return text[:1].lower() + text[1:]


def render(scorer: ScorerLike) -> str:
    """The whole page for ``scorer``."""
    cfg = config(scorer)
    banner = (f'<div class="banner" role="note"><strong>Synthetic data &mdash; not for clinical use.</strong> '
              f'{escape(SYNTHETIC_WARNING)}</div>' if cfg["synthetic"] else "")
    needs = OutcomeNeeds.of(scorer)
    baselines = "".join(_text_input(f, False, f"0 to 100, higher = worse. {_needed_for(f['name'], needs, cfg)}")
                        for f in cfg["baselines"])
    covariates = "".join(_covariate(c) for c in scorer.schema.covariates)
    act = cfg["intervention_label"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{escape(act.capitalize())}: individual benefit calculator</title>
<link rel="icon" href="{STATIC}/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{STATIC}/calculator.css">
<script src="{STATIC}/calculator.js" defer></script>
</head><body>
<a class="skip" href="#calc-form">Skip to the form</a>
<header class="top"><h1>{escape(act.capitalize())}: individual benefit</h1>
<p class="sub">Predicted individual benefit of {escape(act)} compared with an alternative, from pooled
randomised-trial data. Model <code>{escape(cfg["model_id"])}</code> &middot;
<a href="{CARD_URL}">Model card</a></p></header>
{banner}
<main>
<form id="calc-form" novalidate autocomplete="off" aria-describedby="form-intro">
<p id="form-intro">Enter the baseline scores you have: each outcome is predicted from its own baseline score
(recovery from either), and the result says which outcomes could not be predicted. Leave anything you do not
know empty: the result then says how the model handled it.</p>
<div id="error-summary" class="error-summary" role="alert" tabindex="-1" hidden>
<h2>Please correct the following</h2><ul></ul></div>
<fieldset class="group"><legend>Baseline scores</legend>{baselines}</fieldset>
<fieldset class="group"><legend>Comparison</legend>{_comparator(scorer, cfg)}</fieldset>
<fieldset class="group"><legend>Patient characteristics (optional)</legend>{covariates}</fieldset>
<div class="actions"><button type="submit" id="calc-submit">Calculate</button>
<button type="reset" class="secondary">Clear</button></div>
<p id="form-status" class="status" role="status"></p>
</form>
<section id="results" aria-labelledby="results-title" hidden>
<div class="results-head"><h2 id="results-title" tabindex="-1">Result</h2></div>
<p class="hint" id="interval-key">Every number comes with its 95% intervals: the <strong>confidence interval</strong>
is for the average patient like this one; the <strong>prediction interval</strong> is for such a patient treated in
a new clinic (it adds the differences between trials, and equals the confidence interval where the trials showed
none).</p>
<div id="results-body"></div></section>
<noscript><p class="banner">This calculator needs JavaScript (served by this server; nothing is loaded from
elsewhere).</p></noscript>
</main>
<footer><p>Privacy: what you enter is sent only to this server to compute the result, and is not stored or
logged. Nothing is loaded from other sites. The result is an estimate for people like this patient, not a
guarantee; read the <a href="{CARD_URL}">model card</a> for the data, validation and limits.</p></footer>
<script type="application/json" id="calc-config">{_json_block(cfg)}</script>
</body></html>
"""
