"""Result assembly: the computed numbers, warnings and explanations of a request -> one JSON-ready
result per patient (:func:`assemble`; the shape is documented in docs/artifact.md), and the
pieces of a result: the flat score names (:func:`flat_names`), the top contributing factors, the
missing inputs and how they were handled, and the wording of what an explanation means.

Conventions: pain and function are 0-100, higher = worse; benefit = comparator minus exercise,
so a positive benefit favours exercise. Global recovery is a probability; its difference is
P(recovery | exercise) - P(recovery | comparator), positive favours exercise.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from predict import network as netrt
from predict import verdict as verdicts
from predict.task import Computed, Task

SWE_FRACTION = 0.2  # smallest worthwhile effect: 20% of the patient's baseline (pain, function)
TOP_FACTORS = 5


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
    p = f"{t.prefix}_{t.follow_up}"
    if t.outcome_type == "binary":
        return [f"{p}_p_exercise", f"{p}_p_comparator", f"{p}_ard", f"{p}_ard_low", f"{p}_ard_high",
                f"{p}_ard_pi_low", f"{p}_ard_pi_high"]
    return [f"{p}_exercise", f"{p}_comparator", f"{p}_benefit", f"{p}_benefit_low", f"{p}_benefit_high",
            f"{p}_benefit_pi_low", f"{p}_benefit_pi_high"]


def assemble(F: np.ndarray, comparator: str, comp: list[Computed], arm_iv: dict, index: dict[str, int],
             warns: list[list[str]], req_warn: list[str], missing: list[list[dict]], factors: list[list[dict]],
             imputed_factors: list[list[dict]], explained: dict | None) -> list[dict]:
    """One result per patient (rows of F) from the computed tasks ``comp``, the per-arm intervals
    ``arm_iv``, the patients' and the request's warnings, the missing inputs and the factors."""
    n = F.shape[0]
    base_cols = {c.task.baseline: F[:, index[c.task.baseline]].tolist() for c in comp if c.task.baseline}
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
        if not binary and t.baseline:
            k_swe = len(rows)
            rows.append(SWE_FRACTION * F[:, index[t.baseline]])
        layout.append((c, t, k0, k_iv, k_swe, binary))
    table = finite_rows(rows, n)
    per_task = []
    for c, t, k0, k_iv, k_swe, binary in layout:
        cols = table[k0:k0 + 7]
        iv = None
        if k_iv is not None:
            ex_lo, ex_hi, cp_lo, cp_hi = table[k_iv:k_iv + 4]
            iv = {"exercise": [[x, y] for x, y in zip(ex_lo, ex_hi)],
                  "comparator": [[x, y] for x, y in zip(cp_lo, cp_hi)]}
        swe = table[k_swe] if k_swe is not None else None
        per_task.append((c, t, flat_names(t), cols, c.benefit.tolist(), iv, swe, binary,
                         c.learner == netrt.MODEL_NAME))
    scale_bin, scale_cont = "probability of global recovery", "0-100 points, higher = worse"
    def_bin = "P(recovery | exercise) - P(recovery | comparator); positive favours exercise"
    def_cont = "comparator minus exercise on 0-100; positive favours exercise"
    rule = "20% of the patient's baseline score"
    basis = "the exercise prediction plus the network model's benefit"
    results = []
    for i in range(n):
        scores: dict[str, Any] = {}
        outs: dict[str, Any] = {}
        for c, t, names, cols, braw, iv, swe, binary, network in per_task:
            ex, cp, b, lo, hi, plo, phi = (col[i] for col in cols)
            scores[names[0]] = ex
            scores[names[1]] = cp
            scores[names[2]] = b
            scores[names[3]] = lo
            scores[names[4]] = hi
            scores[names[5]] = plo
            scores[names[6]] = phi
            d: dict[str, Any] = {
                "outcome": t.outcome, "follow_up": t.follow_up, "learner": c.learner or t.learner,
                "available": c.available,
                "scale": scale_bin if binary else scale_cont,
                "exercise": {"expected": ex, "interval": iv["exercise"][i] if iv is not None else None},
                "comparator": {"class": comparator, "expected": cp,
                               "interval": iv["comparator"][i] if iv is not None else None},
                "benefit": {"estimate": b, "ci": [lo, hi], "prediction_interval": [plo, phi],
                            "definition": def_bin if binary else def_cont},
            }
            if binary:
                d["clears_smallest_worthwhile"] = None
            else:
                th = swe[i] if swe is not None else None
                d["smallest_worthwhile"] = {"threshold": th, "rule": rule}
                d["clears_smallest_worthwhile"] = (bool(braw[i] >= SWE_FRACTION * base_cols[t.baseline][i])
                                                   if (swe is not None and c.available) else None)
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

    def __init__(self, names: Sequence[str], labels: dict, covariates: Sequence[str], missing_text: dict):
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
        if t.outcome_type == "binary":
            return f"change in the difference in probability of global recovery ({t.follow_up}-term, vs {comparator})"
        return f"points of benefit on the 0-100 {t.outcome} scale ({t.follow_up}-term, vs {comparator})"

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
                              "favours": "exercise" if v > 0 else "comparator", "units": units})
            out.append(items)
        return out
