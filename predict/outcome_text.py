"""Condition-neutral names and words of a model's outputs, from its manifest (never from one condition).

**Flat score names** (``score_table`` / CSV / Spark columns and ``result["scores"]`` keys), per task
``<p> = <outcome>_<follow_up>`` (the configured outcome and window names; the derived global-recovery
outcome is ``recovery_<follow_up>``) and ``<a>``, the configured intervention class (the study
config's ``active``, e.g. ``exercise`` in the default study; ``intervention`` when it is not a plain
name or would clash with ``comparator``):

- continuous: ``<p>_<a>``, ``<p>_comparator`` (expected outcome, 0-100, higher = worse),
  ``<p>_benefit`` (comparator minus intervention: positive favours the intervention),
  ``<p>_benefit_low`` / ``_high`` (95% CI), ``<p>_benefit_pi_low`` / ``_pi_high`` (95% PI);
- binary: ``<p>_p_<a>``, ``<p>_p_comparator`` (probability of the good result),
  ``<p>_ard`` (intervention minus comparator), ``<p>_ard_low`` / ``_high``, ``<p>_ard_pi_low`` / ``_pi_high``.

The table forms (``score_table``, CSV, Spark) add after each task's seven names the per-arm 95%
CIs (:func:`arm_interval_names`: ``<p>_<a>_low`` ... ``<p>_comparator_high``; empty where the
model holds no per-arm uncertainty) and the verdict's columns for an outcome with a smallest
worthwhile effect (``<p>_verdict``, ...; named by :data:`predict.verdict.COLUMNS`).

These are the names issue 7 fixed for the default study (``pain_short_exercise``,
``recovery_short_p_exercise`` ...), derived from the config for any other study.

**Outcome definitions** (manifest ``outcome_definitions``, written by ``training.export_model`` from
the study config): per outcome its ``label``, ``kind``, ``good_result`` (binary: what a 1 means after
harmonisation, e.g. "no preterm birth") and ``smallest_worthwhile`` (``{"relative": f}``: a fraction
of the patient's own baseline; ``{"absolute": x}``: points or a risk difference; None: none
configured). Artifacts written before these existed get the rule they were built with: 20% of the
baseline for continuous outcomes with a baseline (``smallest_worthwhile.fraction_of_baseline``), none
for binary outcomes.

**Arm labels** (manifest ``labels``): the configured intervention and comparator labels, used in text;
machine values (``favours``) use the roles ``intervention`` / ``comparator``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

INTERVENTION = "intervention"
COMPARATOR = "comparator"
CONTINUOUS_SCALE = "0-100 points, higher = worse"


GLOBAL_RECOVERY = "global_recovery"  # the configured derived outcome (training/config.py)
_RESERVED = {COMPARATOR, "benefit", "ard", "p"}


def score_prefix(outcome: str) -> str:
    """The flat-name stem of ``outcome``: its name, or ``recovery`` for the derived global recovery."""
    return "recovery" if outcome == GLOBAL_RECOVERY else str(outcome)


def arm_word(manifest: dict) -> str:
    """The intervention arm's word in flat names: the configured active class when it is a plain
    lower-case name that cannot clash with the other names, else ``intervention``."""
    a = str(manifest.get("active") or "")
    ok = a.replace("_", "").isalnum() and a.isascii() and a == a.lower() and a[:1].isalpha()
    return a if ok and a not in _RESERVED else INTERVENTION


def flat_names(prefix: str, binary: bool, arm: str = INTERVENTION) -> list[str]:
    """The 7 flat score names of one task (``prefix`` = ``<stem>_<follow_up>``, ``arm`` =
    :func:`arm_word`), in the order intervention, comparator, benefit, CI low, CI high, PI low, PI high."""
    p = prefix
    if binary:
        return [f"{p}_p_{arm}", f"{p}_p_{COMPARATOR}", f"{p}_ard", f"{p}_ard_low", f"{p}_ard_high",
                f"{p}_ard_pi_low", f"{p}_ard_pi_high"]
    return [f"{p}_{arm}", f"{p}_{COMPARATOR}", f"{p}_benefit", f"{p}_benefit_low", f"{p}_benefit_high",
            f"{p}_benefit_pi_low", f"{p}_benefit_pi_high"]


def arm_interval_names(prefix: str, binary: bool, arm: str = INTERVENTION) -> list[str]:
    """The 4 per-arm 95% CI names of one task in the table forms (``score_table``, CSV, Spark):
    ``<intervention name>_low`` / ``_high``, ``<comparator name>_low`` / ``_high`` (the expected
    outcome's, or the probability's, interval under each arm; the JSON ``outcomes.<task>.<arm>.interval``)."""
    names = flat_names(prefix, binary, arm)
    return [f"{names[0]}_low", f"{names[0]}_high", f"{names[1]}_low", f"{names[1]}_high"]


def _human(name: str) -> str:
    return str(name).replace("_", " ")


def labels(manifest: dict) -> dict[str, str]:
    """{"intervention": label, "comparator": label} (configured; else the active class's name)."""
    lab = dict(manifest.get("labels") or {})
    return {INTERVENTION: lab.get(INTERVENTION) or _human(manifest.get("active") or INTERVENTION),
            COMPARATOR: lab.get(COMPARATOR) or COMPARATOR}


def definitions(manifest: dict, tasks: list[Any]) -> dict[str, dict]:
    """Per outcome of ``tasks`` (objects with ``outcome``, ``outcome_type``, ``baseline``): the
    definition (see the module docstring), from the manifest or, for older artifacts, the rule
    they were built with."""
    stored = manifest.get("outcome_definitions") or {}
    legacy = (manifest.get("smallest_worthwhile") or {}).get("fraction_of_baseline")
    out: dict[str, dict] = {}
    for t in tasks:
        if t.outcome in out:
            continue
        d = dict(stored.get(t.outcome) or {})
        binary = t.outcome_type == "binary"
        d.setdefault("kind", t.outcome_type)
        d.setdefault("label", _human(t.outcome))
        if binary:
            d.setdefault("good_result", _human(t.outcome))
        if "smallest_worthwhile" not in d:
            d["smallest_worthwhile"] = ({"relative": float(legacy)} if legacy is not None and not binary and t.baseline
                                        else None)
        rule = d.get("smallest_worthwhile")
        if rule and "relative" in rule and (binary or not t.baseline):
            rule = None  # a relative rule needs the outcome's own baseline
        d["smallest_worthwhile"] = rule
        out[t.outcome] = d
    return out


def scale(defn: dict) -> str:
    """What the expected outcomes are on."""
    return f"probability of {defn['good_result']}" if defn["kind"] == "binary" else CONTINUOUS_SCALE


def benefit_definition(defn: dict, arm: dict[str, str]) -> str:
    a = arm[INTERVENTION]
    if defn["kind"] == "binary":
        g = defn["good_result"]
        return f"P({g} | {a}) - P({g} | comparator); positive favours {a}"
    return f"comparator minus {a} on 0-100; positive favours {a}"


def rule_text(defn: dict) -> str | None:
    """The smallest worthwhile effect in words (None: none configured)."""
    r = defn.get("smallest_worthwhile")
    if not r:
        return None
    if "relative" in r:
        return f"{100 * float(r['relative']):g}% of the patient's baseline score"
    x = float(r["absolute"])
    return f"a risk difference of {x:g}" if defn["kind"] == "binary" else f"{x:g} points"


def thresholds(defn: dict, baseline: np.ndarray | None, n: int) -> np.ndarray | None:
    """Per patient, the smallest worthwhile benefit (None: no rule)."""
    r = defn.get("smallest_worthwhile")
    if not r:
        return None
    if "relative" in r:
        return float(r["relative"]) * np.asarray(baseline, float)
    return np.full(n, float(r["absolute"]))


def factor_units(defn: dict, outcome: str, follow_up: str, comparator: str) -> str:
    """What an explanation's contributions are in."""
    if defn["kind"] == "binary":
        return f"change in the difference in probability of {defn['good_result']} ({follow_up}-term, vs {comparator})"
    return f"points of benefit on the 0-100 {_human(outcome)} scale ({follow_up}-term, vs {comparator})"
