"""Result assembly: the computed numbers, warnings and explanations of a request -> one JSON-ready
result per patient (:func:`assemble`; the shape is documented in docs/artifact.md), and the
pieces of a result: the flat score names (:func:`flat_names`), the top contributing factors, the
missing inputs and how they were handled, and the wording of what an explanation means.

Conventions: continuous outcomes are 0-100, higher = worse; benefit = comparator minus
intervention, so a positive benefit favours the intervention. Binary outcomes are the probability
of the good result; the difference is P(good | intervention) - P(good | comparator), positive
favours the intervention. Names and words come from the model's manifest (predict/outcome_text.py).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from predict import network as netrt
from predict import outcome_text as words
from predict import verdict as verdicts
from predict.task import Computed, Task

TOP_FACTORS = 5
FACTORS_UNCERTAINTY = ("point contributions to the benefit estimate, without intervals of their own: "
                       "the benefit's 95% intervals give its uncertainty")
"""What every surface says of the top factors (``explained.uncertainty``): they split the point
estimate, they are not measured effects with their own precision."""


def finite_list(a: np.ndarray) -> list:
    """``[float(x) if finite else None for x in a]`` at C speed: Python floats, None where not finite (any shape)."""
    a = np.asarray(a, float)
    fin = np.isfinite(a)
    if fin.all():
        return a.tolist()
    out = a.astype(object)
    out[~fin] = None
    return out.tolist()


def finite_rows(rows: list, n: int) -> list[list]:
    """``[finite_list(r) for r in rows]`` for arrays of n values each, in one conversion."""
    return finite_list(np.array(rows, float).reshape(len(rows), n)) if rows else []


def flat_names(t: Task) -> list[str]:
    """The task's 7 flat score names (:func:`predict.outcome_text.flat_names`)."""
    return words.flat_names(f"{t.prefix}_{t.follow_up}", t.outcome_type == "binary", t.arm)


def arm_names(t: Task) -> list[str]:
    """The task's 4 per-arm interval table column names (:func:`predict.outcome_text.arm_interval_names`)."""
    return words.arm_interval_names(f"{t.prefix}_{t.follow_up}", t.outcome_type == "binary", t.arm)


def verdict_names(t: Task) -> list[str]:
    """The task's verdict table column names (:data:`predict.verdict.COLUMNS`)."""
    return verdicts.column_names(f"{t.prefix}_{t.follow_up}")


def has_verdict(t: Task, outcome_defs: dict) -> bool:
    """Whether the task's outcome has a smallest worthwhile effect (so a verdict and its columns)."""
    return words.rule_text(outcome_defs[t.outcome]) is not None


def table_verdicts(comp: list[Computed], F: np.ndarray, index: dict[str, int], outcome_defs: dict,
                   rare: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Per computed task with a smallest worthwhile effect: its verdict table columns by name
    (:func:`predict.verdict.columns`, the JSON ``verdict`` of :func:`assemble` as columns; empty
    where the comparator has no prediction). ``rare``: per patient, beyond the training support."""
    out = {}
    n = F.shape[0]
    for c in comp:
        t = c.task
        if not has_verdict(t, outcome_defs):
            continue
        th = words.thresholds(outcome_defs[t.outcome], F[:, index[t.baseline]] if t.baseline else None, n)
        if not c.available:
            th = np.full(n, np.nan)
        limit = 1.0 if t.outcome_type == "binary" else 100.0
        cols = verdicts.columns(c.benefit, c.ci, c.pi, th, limit, rare)
        out[t.task] = dict(zip(verdict_names(t), (cols[s] for s, _ in verdicts.COLUMNS)))
    return out


def assemble(F: np.ndarray, comparator: str, comp: list[Computed], arm_iv: dict, index: dict[str, int],
             warns: list[list[str]], req_warn: list[str], missing: list[list[dict]], factors: list[list[dict]],
             imputed_factors: list[list[dict]], explained: dict | None, outcome_defs: dict | None = None,
             arm_labels: dict | None = None) -> list[dict]:
    """One result per patient (rows of F) from the computed tasks ``comp``, the per-arm intervals
    ``arm_iv``, the patients' and the request's warnings, the missing inputs and the factors;
    ``outcome_defs`` / ``arm_labels``: :func:`predict.outcome_text.definitions` / ``labels``."""
    defs = outcome_defs if outcome_defs is not None else words.definitions({}, [c.task for c in comp])
    arm = arm_labels or {words.INTERVENTION: words.INTERVENTION, words.COMPARATOR: words.COMPARATOR}
    n = F.shape[0]
    # every number of every task in one (rows x patients) array, turned into Python lists at once
    rows: list = []
    layout = []
    for c in comp:
        t = c.task
        binary = t.outcome_type == "binary"
        k0 = len(rows)
        rows += [c.exercise, c.comparator, c.benefit, c.ci[0], c.ci[1], c.pi[0], c.pi[1]]
        iv = arm_iv.get(t.task)
        k_iv = None
        if iv is not None:
            k_iv = len(rows)
            rows += list(iv)
        k_swe = None
        th = words.thresholds(defs[t.outcome], F[:, index[t.baseline]] if t.baseline else None, n)
        if th is not None:
            k_swe = len(rows)
            rows.append(th)
        layout.append((c, t, k0, k_iv, k_swe, th, binary))
    table = finite_rows(rows, n)
    per_task = []
    for c, t, k0, k_iv, k_swe, th_raw, binary in layout:
        cols = table[k0:k0 + 7]
        iv = None
        if k_iv is not None:
            ex_lo, ex_hi, cp_lo, cp_hi = table[k_iv:k_iv + 4]
            iv = {words.INTERVENTION: [[x, y] for x, y in zip(ex_lo, ex_hi)],
                  words.COMPARATOR: [[x, y] for x, y in zip(cp_lo, cp_hi)]}
        swe = table[k_swe] if k_swe is not None else None
        per_task.append((c, t, flat_names(t), cols, c.benefit.tolist(), iv, swe, th_raw, binary,
                         c.learner == netrt.MODEL_NAME))
    text = {o: (words.scale(d), words.benefit_definition(d, arm), words.rule_text(d)) for o, d in defs.items()}
    basis = f"the {arm[words.INTERVENTION]} prediction plus the network model's benefit"
    results = []
    for i in range(n):
        scores: dict[str, Any] = {}
        outs: dict[str, Any] = {}
        for c, t, names, cols, braw, iv, swe, th_raw, binary, network in per_task:
            ex, cp, b, lo, hi, plo, phi = (col[i] for col in cols)
            scores[names[0]] = ex
            scores[names[1]] = cp
            scores[names[2]] = b
            scores[names[3]] = lo
            scores[names[4]] = hi
            scores[names[5]] = plo
            scores[names[6]] = phi
            sc, definition, rule = text[t.outcome]
            d: dict[str, Any] = {
                "outcome": t.outcome, "follow_up": t.follow_up, "learner": c.learner or t.learner,
                "available": c.available,
                "scale": sc,
                words.INTERVENTION: {"label": arm[words.INTERVENTION], "expected": ex,
                                     "interval": iv[words.INTERVENTION][i] if iv is not None else None},
                "comparator": {"class": comparator, "expected": cp,
                               "interval": iv["comparator"][i] if iv is not None else None},
                "benefit": {"estimate": b, "ci": [lo, hi], "prediction_interval": [plo, phi],
                            "definition": definition},
            }
            if swe is None:
                d["clears_smallest_worthwhile"] = None
            else:
                d["smallest_worthwhile"] = {"threshold": swe[i], "rule": rule}
                d["clears_smallest_worthwhile"] = bool(braw[i] >= th_raw[i]) if c.available else None
            if network:
                d["evidence"] = c.evidence
                if c.available:
                    d["comparator"]["basis"] = basis
            outs[t.task] = d
        r = {"scores": scores, "outcomes": outs, "top_factors": factors[i], "imputed_factors": imputed_factors[i],
             "missing": missing[i], "warnings": warns[i] + req_warn}
        if explained is not None:
            r["explained"] = explained
        results.append(r)
    return verdicts.annotate(results)


class ResultText:
    """The wording of a model's result pieces: input labels, how each missing input is handled,
    what an explanation's numbers mean."""

    def __init__(self, names: Sequence[str], labels: dict, covariates: Sequence[str], missing_text: dict,
                 outcome_defs: dict | None = None):
        self._defs = dict(outcome_defs or {})
        self._names = list(names)
        self._index = {n: j for j, n in enumerate(self._names)}
        self._label = dict(labels)
        self._covariates = list(covariates)
        self._missing_text = dict(missing_text)

    def missing_lists(self, F: np.ndarray) -> list[list[dict]]:
        cov = [(self._index[c], c) for c in self._covariates]
        miss = np.isnan(F[:, [j for j, _ in cov]]) if cov else np.zeros((F.shape[0], 0), bool)
        like_covariates = next(iter(self._missing_text.values()), "allowed")
        entries = [{"name": name, "handled_as": self._missing_text.get(name, like_covariates)} for _, name in cov]
        return [[entries[k] for k in np.flatnonzero(row)] for row in miss]

    def explain_method(self, t: Task) -> str:
        if t.outcome_type == "binary":
            return "first-order (delta-method) terms per arm on the probability scale; the remainder is left out"
        return ("exact additive terms of the linear parts and LightGBM TreeSHAP (path-dependent) of the tree parts; "
                "relative to the model's reference patient (trial-mean-centred modifiers)")

    def factor_units(self, t: Task, comparator: str) -> str:
        defn = self._defs.get(t.outcome) or words.definitions({}, [t])[t.outcome]
        return words.factor_units(defn, t.outcome, t.follow_up, comparator)

    def top_factors(self, contrib: np.ndarray, t: Task, comparator: str, top: int) -> list[list[dict]]:
        k = min(top, contrib.shape[1])
        order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
        units = self.factor_units(t, comparator)
        vals = np.take_along_axis(contrib, order, 1).tolist()
        out = []
        for row_idx, row_val in zip(order.tolist(), vals):
            items = []
            for j, v in zip(row_idx, row_val):
                if v == 0.0:
                    continue
                name = self._names[j]
                items.append({"name": name, "label": self._label.get(name, name),
                              "contribution": v if math.isfinite(v) else None,
                              "favours": words.INTERVENTION if v > 0 else words.COMPARATOR, "units": units})
            out.append(items)
        return out
