"""Inputs and validation: a request's patients (dict, list of dicts or DataFrame) -> the model's
feature matrix (NaN = missing), or :class:`predict.errors.ValidationFailed` naming every bad field
and patient at once; and the request's own fields (comparator, outcomes).

One implementation (:meth:`PatientInputs.validate`): the input is read into the feature matrix
(per value where it must be: dicts, text and boolean columns; numeric DataFrame columns whole), a
value that cannot be a number or a category level named as it is read; then every rule derived
from the feature schema and the baselines' range is checked on the whole matrix at once (a few
array operations, whatever the number of patients or inputs) and each problem named.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from predict.errors import Problem, ValidationFailed
from predict.input_names import ID_COLUMNS, unknown_message
from predict.kernels import njit
from predict.required_inputs import Requirement

_OK_NUM = (int, float, np.integer, np.floating)
EXAMPLE_PATIENT = {"baseline_pain": 62.0, "baseline_function": 41.0, "age": 47, "female": 1, "fear_avoidance": 55.0,
                   "bmi": 27.5, "employed": 1, "leg_pain": 0, "episode_months": 18.0}


@njit()
def _all_clear(X, lo, hi, required, binary):
    """True when every value passes every rule: in [lo, hi] (finite bounds for numbers, so an
    infinity fails; 0-1 for binary inputs, which must also be 0 or 1), and only inputs that are not
    required missing (NaN). One pass, stopping at the first failure; the problems are then named
    by :meth:`PatientInputs.validate`."""
    n, p = X.shape
    for i in range(n):
        for j in range(p):
            v = X[i, j]
            if v != v:
                if required[j]:
                    return False
            elif v < lo[j] or v > hi[j] or (binary[j] and v != 0.0 and v != 1.0):
                return False
    return True


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
        kinds = [2 if t == "categorical" else 1 if t == "binary" else 0 for t in self._types]
        self._levels = [{str(c): float(k) for k, c in enumerate(self._cats.get(nm, []))} for nm in self._names]
        self._read = {nm: (j, kinds[j], self._levels[j]) for j, nm in enumerate(self._names)}
        p = len(self._names)
        self._numeric = np.array([k != 2 for k in kinds], dtype=bool)  # what the value checks below apply to
        self._binary = np.array([k == 1 for k in kinds], dtype=bool)
        lo = np.full(p, -np.inf)
        hi = np.full(p, np.inf)
        for j, nm in enumerate(self._names):
            if kinds[j] == 0 and self._range.get(nm) is not None:
                lo[j], hi[j] = (float(v) for v in self._range[nm])
        self._ranged = self._numeric & ~self._binary & (np.isfinite(lo) | np.isfinite(hi))
        self._lo, self._hi = lo, hi
        # the all-clear test of validate: numbers finite and in their range, binary ones in 0-1 (and 0
        # or 1), category levels (already read as level numbers) anything
        big = np.finfo(float).max
        self._qlo = np.where(self._binary, 0.0, np.where(self._numeric, np.maximum(lo, -big), -np.inf))
        self._qhi = np.where(self._binary, 1.0, np.where(self._numeric, np.minimum(hi, big), np.inf))
        self._required: dict = {}

    @property
    def names(self) -> list[str]:
        """The model's input names (covariates and baselines), in feature order."""
        return list(self._names)

    def _required_mask(self, required) -> tuple[np.ndarray, tuple]:
        """Which inputs must be given (every baseline, a set of names or a
        :class:`predict.required_inputs.Requirement`): (mask over inputs of those each patient must
        give, groups ``(outcome, column indices)`` of which each patient must give at least one);
        kept per distinct requirement."""
        hit = self._required.get(required if isinstance(required, Requirement) or required is None
                                 else frozenset(required))
        if hit is None:
            if isinstance(required, Requirement):
                need, groups = set(required.all_of), required.any_of
            else:
                need, groups = (set(self.baselines) if required is None else set(required)), ()
            idx = {nm: j for j, nm in enumerate(self._names)}
            groups = tuple((o, np.array(sorted(idx[b] for b in g if b in idx), dtype=np.int64)) for o, g in groups
                           if any(b in idx for b in g))
            hit = (np.array([nm in need for nm in self._names]), groups)
            self._required[required if isinstance(required, Requirement) or required is None
                           else frozenset(required)] = hit
        return hit

    def _read_value(self, X: np.ndarray, i: int, j: int, kind: int, levels: dict, v: Any, bad: list) -> None:
        """One given value into X[i, j] (None: left missing), or a problem into ``bad`` as
        (column, stage 0, row, Problem): not a number (a boolean, text), or not a category level."""
        if v is None:
            return
        t = type(v)
        if kind == 2:
            if isinstance(v, str) and v in levels:
                X[i, j] = levels[v]
            else:
                bad.append((j, 0, i, Problem("bad_value", f"{v!r} is not one of {', '.join(levels)}", row=i,
                                             column=self._names[j], scope="participant")))
            return
        if t is float or t is int or (t is not bool and t is not np.bool_ and isinstance(v, _OK_NUM)):
            X[i, j] = v
            return
        what = "a boolean" if isinstance(v, (bool, np.bool_)) else f"{t.__name__} {v!r}"
        expect = "the integer 0 or 1" if kind == 1 else "a number"
        bad.append((j, 0, i, Problem("bad_type", f"{what} is not {expect}", row=i, column=self._names[j],
                                     scope="participant")))

    def _matrix(self, patients: Any) -> tuple[np.ndarray, list[Problem], list, pd.DataFrame | None]:
        """Input -> (X: n x features, NaN where a value is absent, None, NaN or unreadable; problems
        with the input as a whole (not a patient, unknown fields); problems with single values
        (column, stage, row, Problem); id columns of a DataFrame or None)."""
        probs: list[Problem] = []
        bad: list = []
        p = len(self._names)
        if isinstance(patients, pd.DataFrame):
            df = patients
            ids = df[[c for c in ID_COLUMNS if c in df.columns]].reset_index(drop=True)
            for c in df.columns:
                if c not in self._allowed and c not in ID_COLUMNS:
                    probs.append(Problem("unknown_field", unknown_message(str(c), self._names, "column"),
                                         column=str(c), scope="file"))
            X = np.full((len(df), p), np.nan)
            for name in self._names:
                if name not in df.columns:
                    continue
                j, kind, levels = self._read[name]
                s = df[name]
                if kind != 2 and pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
                    X[:, j] = s.to_numpy(dtype=float, na_value=np.nan)
                    continue
                for i, v in enumerate(s.tolist()):
                    if v is pd.NA or (isinstance(v, float) and v != v):
                        continue
                    self._read_value(X, i, j, kind, levels, v, bad)
            return X, probs, bad, ids
        if isinstance(patients, dict):
            patients = [patients]
        if not isinstance(patients, (list, tuple)):
            raise ValidationFailed([Problem("bad_input", "patients must be a dict, a list of dicts or a DataFrame",
                                            scope="file")], what="patients")
        X = np.full((len(patients), p), np.nan)
        unknown: list[Problem] = []
        read = self._read
        for i, pt in enumerate(patients):
            if not isinstance(pt, dict):
                probs.append(Problem("bad_input", "a patient must be a JSON object / dict", row=i, scope="participant"))
                continue
            odd = None
            for k, v in pt.items():
                r = read.get(k)
                if r is None:
                    odd = [k] if odd is None else odd + [k]
                    continue
                if v is not None:
                    if type(v) is float or (type(v) is int and r[1] != 2):
                        X[i, r[0]] = v
                    else:
                        self._read_value(X, i, r[0], r[1], r[2], v, bad)
            for k in sorted(map(str, odd or ())):
                unknown.append(Problem("unknown_field", unknown_message(k, self._names), row=i, column=k,
                                       scope="participant"))
        return X, probs + unknown, bad, None

    def validate(self, patients: Any, required=None) -> tuple[np.ndarray, pd.DataFrame | None]:
        """The feature matrix (n x features, NaN = missing) of valid input; raises
        :class:`ValidationFailed` naming every bad field and patient index (0-based), in the order
        of the inputs and, per input, unreadable values, infinities, missing required values, then
        values outside their range; then patients lacking every baseline of an at-least-one group.
        ``required``: the baselines that must be given (default all), a set of names or a
        :class:`predict.required_inputs.Requirement` (see there)."""
        X, probs, bad, ids = self._matrix(patients)
        req, groups = self._required_mask(required)
        none_of = [(o, g, np.isnan(X[:, g]).all(axis=1)) for o, g in groups]
        if (not bad and not probs and _all_clear(X, self._qlo, self._qhi, req, self._binary)
                and not any(r.any() for _, _, r in none_of)):
            return X, ids
        inf = np.isinf(X) & self._numeric
        X[inf] = np.nan
        absent = np.isnan(X) & req & self._numeric
        off_binary = self._binary & (X != 0) & (X != 1) & ~np.isnan(X)
        out_of_range = self._ranged & ((X < self._lo) | (X > self._hi))
        names = self._names
        for i, j in zip(*np.nonzero(inf)):
            bad.append((j, 1, i, Problem("bad_value", "not a finite number", row=int(i), column=names[j],
                                         scope="participant")))
        for i, j in zip(*np.nonzero(absent)):
            bad.append((j, 2, i, Problem("required", f"{names[j]} is required (a number from 0 to 100)", row=int(i),
                                         column=names[j], scope="participant")))
        for i, j in zip(*np.nonzero(off_binary)):
            bad.append((j, 3, i, Problem("bad_value", f"{X[i, j]:g} is not 0 or 1", row=int(i), column=names[j],
                                         scope="participant")))
        for i, j in zip(*np.nonzero(out_of_range)):
            unit = self._unit.get(names[j])
            u = f" {unit}" if unit else ""
            bad.append((j, 3, i, Problem("out_of_range", f"{X[i, j]:g} is outside the plausible range "
                                         f"{self._lo[j]:g}–{self._hi[j]:g}{u}", row=int(i), column=names[j],
                                         scope="participant")))
        bad.sort(key=lambda b: (b[0], b[1], b[2]))
        for o, g, _ in none_of:  # every baseline of the group is missing (an infinity counts as missing)
            rows = np.nonzero(np.isnan(X[:, g]).all(axis=1))[0]
            either = " or ".join(names[j] for j in g)
            for i in rows:
                bad.append((g[0], 4, i, Problem("required", f"{o} needs {either} (at least one, a number from 0 to 100)",
                                                row=int(i), column=names[g[0]], scope="participant")))
        raise ValidationFailed(probs + [b[3] for b in bad], what="patients")
