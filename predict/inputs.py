"""Inputs and validation: a request's patients (dict, list of dicts or DataFrame) -> the model's
feature matrix (NaN = missing), or :class:`predict.errors.ValidationFailed` naming every bad field
and patient at once; and the request's own fields (comparator, outcomes).

One set of rules (:meth:`PatientInputs.rules`, derived from the feature schema and the baselines'
range) is applied two ways: per value in plain Python for a few dict patients that pass every rule
(:meth:`PatientInputs.validate` returns at once), column-wise otherwise, naming each problem; tests
hold the two to the same decisions and the same matrix.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from predict.errors import Problem, ValidationFailed

ID_COLUMNS = ("trial", "participant")
SMALL_MAX_ROWS = 128  # up to this many dict patients are checked per value first (no array calls)
_OK_NUM = (int, float, np.integer, np.floating)
EXAMPLE_PATIENT = {"baseline_pain": 62.0, "baseline_function": 41.0, "age": 47, "female": 1, "fear_avoidance": 55.0,
                   "bmi": 27.5, "employed": 1, "leg_pain": 0, "episode_months": 18.0}


def example_patient(schema, baselines: Sequence[str]) -> dict:
    """A plausible patient for demos and warm-up: baselines 62 and 41 (then 50) and the covariates
    of :data:`EXAMPLE_PATIENT` that the model takes with values its schema accepts."""
    p: dict[str, Any] = {b: v for b, v in zip(baselines, (62.0, 41.0))}
    for b in list(baselines)[2:]:
        p[b] = 50.0
    for k, v in EXAMPLE_PATIENT.items():
        if not k.startswith("baseline_") and k in schema and schema[k].check_value(v) is None:
            p[k] = v
    return p


def request_problems(comparator: Any, outcomes: Any, comparators: Sequence[str], outcome_names: Sequence[str],
                     task_names: Sequence[str]) -> list[Problem]:
    """Problems with a request's comparator and outcomes (empty if none)."""
    probs = []
    if not isinstance(comparator, str) or comparator not in comparators:
        probs.append(Problem("unknown_comparator", f"comparator {comparator!r} is not one of "
                             f"{', '.join(comparators)}", column="comparator", scope="file"))
    if outcomes is not None:
        if isinstance(outcomes, str) or not isinstance(outcomes, (list, tuple)) or not outcomes:
            probs.append(Problem("bad_outcomes", "outcomes must be a non-empty list of outcome names",
                                 column="outcomes", scope="file"))
        else:
            known = set(outcome_names) | set(task_names)
            bad = [o for o in outcomes if not isinstance(o, str) or o not in known]
            if bad:
                probs.append(Problem("unknown_outcome", f"unknown outcome(s) {', '.join(map(repr, bad))}; "
                                     f"choose from {', '.join(outcome_names)}", column="outcomes", scope="file"))
            elif len(set(outcomes)) != len(outcomes):
                probs.append(Problem("bad_outcomes", "an outcome is listed twice", column="outcomes", scope="file"))
    return probs


class PatientInputs:
    """The inputs a model takes (its feature names, types, categories, baselines, plausible ranges
    and units) and their validation."""

    def __init__(self, names: Sequence[str], types: Sequence[str], categories: dict, baselines: Sequence[str],
                 ranges: dict, units: dict):
        self._names = list(names)
        self._types = list(types)
        self._cats = dict(categories)
        self.baselines = list(baselines)
        self._range = dict(ranges)
        self._unit = dict(units)
        self._allowed = set(self._names)
        self._rules = self.rules()

    def _columns(self, patients: Any) -> tuple[int, dict[str, list | np.ndarray], list[Problem], pd.DataFrame | None]:
        """Input -> (n, raw columns by feature name, problems so far, id columns)."""
        probs: list[Problem] = []
        if isinstance(patients, pd.DataFrame):
            df = patients
            ids = df[[c for c in ID_COLUMNS if c in df.columns]].reset_index(drop=True)
            for c in df.columns:
                if c not in self._allowed and c not in ID_COLUMNS:
                    probs.append(Problem("unknown_field", f"unknown field {c!r}: the model has no input of this name",
                                         column=str(c), scope="file"))
            cols = {}
            for name in self._names:
                if name in df.columns:
                    s = df[name]
                    if pd.api.types.is_bool_dtype(s.dtype):
                        cols[name] = list(s.astype(object))
                    elif pd.api.types.is_numeric_dtype(s.dtype):
                        cols[name] = s.to_numpy(dtype=float, na_value=np.nan)
                    else:
                        cols[name] = [None if (v is None or (isinstance(v, float) and v != v) or v is pd.NA) else v
                                      for v in s.tolist()]
            return len(df), cols, probs, ids
        if isinstance(patients, dict):
            patients = [patients]
        if not isinstance(patients, (list, tuple)):
            raise ValidationFailed([Problem("bad_input", "patients must be a dict, a list of dicts or a DataFrame",
                                            scope="file")], what="patients")
        n = len(patients)
        keys: set = set()
        for i, p in enumerate(patients):
            if not isinstance(p, dict):
                probs.append(Problem("bad_input", "a patient must be a JSON object / dict", row=i, scope="participant"))
            else:
                keys.update(p.keys())
        unknown = keys - self._allowed
        if unknown:
            for i, p in enumerate(patients):
                if isinstance(p, dict):
                    for k in sorted(map(str, set(p) & unknown)):
                        probs.append(Problem("unknown_field", f"unknown field {k!r}: the model has no input of this name",
                                             row=i, column=k, scope="participant"))
        cols = {}
        for name in self._names:
            if name in keys:
                cols[name] = [p.get(name) if isinstance(p, dict) else None for p in patients]
        return n, cols, probs, None

    def validate(self, patients: Any, required: set[str] | None = None) -> tuple[np.ndarray, pd.DataFrame | None]:
        """The feature matrix (n x features, NaN = missing) of valid input; raises
        :class:`ValidationFailed` naming every bad field and patient index (0-based).
        ``required``: the baselines that must be given (default all; see predict.required_inputs)."""
        need = set(self.baselines) if required is None else set(required)
        F = self._valid_small(patients)  # requires every baseline: else the general path below
        if F is not None:
            return F, None
        n, cols, probs, ids = self._columns(patients)
        F = np.full((n, len(self._names)), np.nan)
        for j, (name, typ) in enumerate(zip(self._names, self._types)):
            required = name in need
            col = cols.get(name)
            if col is None:
                if required and n:
                    probs += [Problem("required", f"{name} is required (a number from 0 to 100)", row=i, column=name,
                                      scope="participant") for i in range(n)]
                continue
            if typ == "categorical":
                levels = {str(c): k for k, c in enumerate(self._cats.get(name, []))}
                for i, v in enumerate(col):
                    if v is None:
                        continue
                    if isinstance(v, str) and v in levels:
                        F[i, j] = levels[v]
                    else:
                        probs.append(Problem("bad_value", f"{v!r} is not one of {', '.join(levels)}", row=i,
                                             column=name, scope="participant"))
                continue
            if isinstance(col, np.ndarray):
                x = col
            else:
                types = set(map(type, col))
                bad_types = {t for t in types if t is not type(None) and (t is bool or t is np.bool_ or
                                                                        not issubclass(t, _OK_NUM))}
                if bad_types:
                    clean = []
                    for i, v in enumerate(col):
                        if v is not None and type(v) in bad_types:
                            what = "a boolean" if isinstance(v, (bool, np.bool_)) else f"{type(v).__name__} {v!r}"
                            expect = "the integer 0 or 1" if typ == "binary" else "a number"
                            probs.append(Problem("bad_type", f"{what} is not {expect}", row=i, column=name,
                                                 scope="participant"))
                            clean.append(None)
                        else:
                            clean.append(v)
                    col = clean
                x = np.array(col, dtype=float)
            inf = np.isinf(x)
            if inf.any():
                probs += [Problem("bad_value", "not a finite number", row=int(i), column=name, scope="participant")
                          for i in np.flatnonzero(inf)]
                x = np.where(inf, np.nan, x)
            if required:
                miss = np.isnan(x)
                if miss.any():
                    probs += [Problem("required", f"{name} is required (a number from 0 to 100)", row=int(i),
                                      column=name, scope="participant") for i in np.flatnonzero(miss)]
            if typ == "binary":
                bad = ~np.isnan(x) & (x != 0) & (x != 1)
                probs += [Problem("bad_value", f"{x[i]:g} is not 0 or 1", row=int(i), column=name, scope="participant")
                          for i in np.flatnonzero(bad)]
            else:
                rng = self._range.get(name)
                if rng is not None:
                    with np.errstate(invalid="ignore"):
                        bad = (x < rng[0]) | (x > rng[1])
                    unit = self._unit.get(name)
                    u = f" {unit}" if unit else ""
                    probs += [Problem("out_of_range", f"{x[i]:g} is outside the plausible range {rng[0]:g}–{rng[1]:g}{u}",
                                      row=int(i), column=name, scope="participant") for i in np.flatnonzero(bad)]
            F[:, j] = x
        if probs:
            raise ValidationFailed(probs, what="patients")
        return F, ids

    def rules(self) -> list[tuple]:
        """Per input (position, name, kind 0 number / 1 binary / 2 categorical, required, low,
        high, levels): the checks of :meth:`validate` in a form a plain loop can apply."""
        rules = []
        for j, (name, typ) in enumerate(zip(self._names, self._types)):
            kind = 2 if typ == "categorical" else 1 if typ == "binary" else 0
            lo, hi = self._range.get(name) or (-math.inf, math.inf)
            levels = {str(c): float(k) for k, c in enumerate(self._cats.get(name, []))}
            rules.append((j, name, kind, name in self.baselines, float(lo), float(hi), levels))
        return rules

    def _valid_small(self, patients: Any) -> np.ndarray | None:
        """The feature matrix of a dict or a short list of dicts when every value passes every
        check of :meth:`validate`, computed with plain Python (a request for one patient need not
        go through the column-wise machinery); None as soon as anything is off or unusual, and
        :meth:`validate` then runs in full and names each problem."""
        if isinstance(patients, dict):
            patients = [patients]
        if not isinstance(patients, list) or not 0 < len(patients) <= SMALL_MAX_ROWS:
            return None
        rules = self._rules
        allowed = self._allowed
        F = np.full((len(patients), len(rules)), np.nan)
        for i, p in enumerate(patients):
            if type(p) is not dict:
                return None
            for k in p:
                if k not in allowed:
                    return None
            for j, name, kind, required, lo, hi, levels in rules:
                v = p.get(name)
                if v is None:
                    if required:
                        return None
                    continue
                if kind == 2:
                    if type(v) is not str or v not in levels:
                        return None
                    F[i, j] = levels[v]
                    continue
                t = type(v)
                if t is not float and t is not int:
                    return None
                x = float(v)
                if x != x:
                    if required:
                        return None
                    continue
                if x in (math.inf, -math.inf):
                    return None
                if kind == 1:
                    if x != 0.0 and x != 1.0:
                        return None
                elif not lo <= x <= hi:  # also refuses infinities
                    return None
                F[i, j] = x
        return F
