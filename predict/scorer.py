"""The runtime scorer: load a verified model artifact and score patients.

``Scorer.load(path)`` reads a model artifact (folder or .zip; layout in docs/artifact.md),
verifies every file's SHA-256, the manifest's own checksum and its consistency with the model
files, loads LightGBM boosters from the verified bytes, and refuses anything else.
``Scorer.score(patients, comparator, outcomes)`` validates the input against the artifact's
feature schema and returns, per patient, the expected outcome under exercise and under the
comparator, the benefit with its confidence and new-setting prediction intervals, the
probability of global recovery under each arm with the absolute difference, the top
contributing factors, how missing inputs were handled, and warnings.
``Scorer.score_table`` is the vectorised flat form (one row per patient; used by
``lbp-benefit score``). Scoring is thread-safe: the scorer is immutable after loading.

Conventions: pain and function are 0-100, higher = worse; benefit = comparator minus exercise,
so a positive benefit favours exercise. Global recovery is a probability; its difference is
P(recovery | exercise) - P(recovery | comparator), positive favours exercise.
"""
from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from predict import network as netrt
from predict import _fused as fz
from predict import imputed as imputed_inputs
from predict import arm_intervals
from predict import verdict as verdicts
from predict import runtime as rt
from predict import model_format as mf
from predict import support
from predict.artifact import Artifact, load_artifact
from predict.errors import LbpError, Problem, ValidationFailed
from predict.required_inputs import required_baselines
from predict.program import compile_program, default_threads
from predict.program import pool as program_pool
from predict.schema import FeatureSchema

ID_COLUMNS = ("trial", "participant")
SWE_FRACTION = 0.2  # smallest worthwhile effect: 20% of the patient's baseline (pain, function)
LEVEL = 0.95
TOP_FACTORS = 5
LITTLE_DATA_N = 100  # a covariate observed for fewer training participants (or in < 3 trials) is flagged
LITTLE_DATA_TRIALS = 3
# up to this many patients per call go through the fused kernel (predict/_fused.py: one compiled
# pass per patient, no per-task Python); larger batches through the per-task vectorised functions,
# which amortise their overhead over the rows and use SIMD across patients (faster per patient there)
FUSED_MAX_ROWS = 128
PARALLEL_MIN_ROWS = 1000  # smaller batches are scored on the calling thread
RARE_LEVEL_N = 30  # a binary/categorical level seen in fewer training participants is flagged
_OK_NUM = (int, float, np.integer, np.floating)


# ----------------------------------------------------------------------------- helpers
_BLAS = None


def _one_blas_thread():
    """Scoring's matrix products are small (patients x ~30 columns): a multi-threaded BLAS only
    adds synchronisation (up to 40x slower on a busy machine), so scoring runs them on one thread."""
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS = ThreadpoolController()
        except Exception:  # noqa: BLE001 - no threadpoolctl: leave BLAS as it is
            _BLAS = False
    if _BLAS is False:
        return contextlib.nullcontext()
    return _BLAS.limit(limits=1, user_api="blas")


def _parallel(calls: list[tuple]) -> list:
    """Run ``fn(*args)`` for each ``(fn, *args)`` on the scoring thread pool; results in order."""
    pool = program_pool(len(calls))
    futs = [pool.submit(c[0], *c[1:]) for c in calls]
    return [f.result() for f in futs]


def _clip(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """np.clip (NaN stays NaN) without its Python overhead."""
    return np.minimum(np.maximum(x, lo), hi)


def _finite_list(a: np.ndarray) -> list:
    """``[_f(x) for x in a]`` at C speed: Python floats, None where not finite (any shape)."""
    a = np.asarray(a, float)
    fin = np.isfinite(a)
    if fin.all():
        return a.tolist()
    out = a.astype(object)
    out[~fin] = None
    return out.tolist()


def _finite_rows(rows: list, n: int) -> list[list]:
    """``[_finite_list(r) for r in rows]`` for arrays of n values each, in one conversion."""
    return _finite_list(np.array(rows, float).reshape(len(rows), n)) if rows else []


def _f(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class _Task:
    task: str
    outcome: str
    follow_up: str
    outcome_type: str
    learner: str
    exp: dict
    prefix: str  # flat-name prefix: the outcome, or "recovery" for global recovery
    baseline: str | None  # the baseline input of the same scale (continuous outcomes)
    net: dict | None = None  # the task's one-stage IPD network model (predict/network.py), if any


@dataclass
class _Computed:
    """Per requested task: arrays over patients (NaN where the comparator has no prediction)."""

    task: _Task
    available: bool
    exercise: np.ndarray
    comparator: np.ndarray
    benefit: np.ndarray
    ci: tuple[np.ndarray, np.ndarray]
    pi: tuple[np.ndarray, np.ndarray]
    learner: str | None = None  # the model that produced it when not the task's learner ("ipd_network")
    evidence: dict | None = None  # network comparators: evidence type, trials, participants


# ----------------------------------------------------------------------------- the scorer
class Scorer:
    """A loaded, verified model. Create with :meth:`load`; immutable afterwards (thread-safe)."""

    json_results = True
    """:meth:`score` returns plain JSON values only (dicts with str keys, lists, str, bool, None,
    finite Python floats and ints): the service sends them without converting them again."""

    def __init__(self, artifact: Artifact, tasks: list[_Task], schema: FeatureSchema, background: pd.DataFrame | None,
                 manifest: dict | None = None):
        m = artifact.manifest if manifest is None else manifest
        self.artifact = artifact
        self.manifest: dict = m
        self.model_id: str = m["model_id"]
        self.synthetic: bool = bool(m["synthetic"])
        self.schema: FeatureSchema = schema
        self.baselines: list[str] = list(m["baselines"])
        # the learners' own classes, then the network-only nodes (scored by the IPD network model)
        self.learner_comparators: list[str] = list(m["comparators"])
        self.network_comparators: list[dict] = [dict(c) for c in (m.get("network_comparators") or [])]
        self.network_only: list[str] = [c["node"] for c in self.network_comparators if c["scored_by"] == netrt.MODEL_NAME]
        self.comparators: list[str] = self.learner_comparators + self.network_only
        self.sparse_comparators: list[str] = list(m["sparse_comparators"])
        self.outcomes: list[str] = list(m["outcomes"])
        self.follow_ups: list[str] = list(m["follow_ups"])
        self.tasks: list[str] = [t.task for t in tasks]
        self.card_markdown: str = artifact.text(m["card"]["markdown"])
        self.card: dict = artifact.json(m["card"]["json"])
        self._tasks = tasks
        self._names: list[str] = list(tasks[0].exp["features"]["names"])
        self._types: list[str] = list(tasks[0].exp["features"]["types"])
        self._cats: dict = dict(tasks[0].exp["features"].get("categories", {}))
        self._index = {n: j for j, n in enumerate(self._names)}
        self._allowed = set(self._names)
        bl_range = m.get("baseline_range", [0.0, 100.0])
        self._range = {c.name: c.range for c in schema.covariates}
        self._range.update({b: (float(bl_range[0]), float(bl_range[1])) for b in self.baselines})
        self._label = {c.name: (c.label or c.name) for c in schema.covariates}
        self._label.update({b: b.replace("_", " ").capitalize() + " (0-100)" for b in self.baselines})
        self._unit = {c.name: c.unit for c in schema.covariates}
        self._missing_text = {c["name"]: c.get("missing") or "allowed" for c in m["feature_schema"]}
        self._background = background
        self._limits = self._warning_limits(background)
        self._programs: dict = {}
        self._fused_positions: dict = {}
        self._rules = self._field_rules()
        self._wrules = self._warning_rules()

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path) -> "Scorer":
        """Load and verify the artifact at ``path`` (folder or .zip). Raises
        :class:`predict.artifact.ArtifactError` for anything missing, altered or unexpected."""
        art = load_artifact(path, supported=mf.READABLE_VERSIONS, required=("card.md", "card.json"))
        vm = mf.verify(art)
        tasks = []
        for vt in vm.tasks:
            e, exp = vt.entry, vt.export
            rt.prepare_fast(exp)
            prefix = "recovery" if e.outcome == "global_recovery" else e.outcome
            base = f"baseline_{e.outcome}"
            base = base if e.outcome_type == "continuous" and base in vm.manifest["baselines"] else None
            tasks.append(_Task(e.task, e.outcome, e.follow_up, e.outcome_type, str(e.learner or exp["kind"]), exp,
                               prefix, base, vt.network))
        return cls(art, tasks, vm.schema, vm.background, manifest=vm.manifest)

    # ------------------------------------------------------------------ info
    def __repr__(self) -> str:
        return (f"Scorer({self.model_id}, tasks={len(self.tasks)}, comparators={self.comparators}"
                f"{', SYNTHETIC' if self.synthetic else ''})")

    def example_patient(self) -> dict:
        """A plausible patient (baselines + a few covariates) for demos and warm-up."""
        p: dict[str, Any] = {b: v for b, v in zip(self.baselines, (62.0, 41.0))}
        for b in self.baselines[2:]:
            p[b] = 50.0
        demo = {"age": 47, "female": 1, "fear_avoidance": 55.0, "bmi": 27.5, "employed": 1, "leg_pain": 0,
                "episode_months": 18.0}
        for k, v in demo.items():
            if k in self.schema:
                spec = self.schema[k]
                if spec.check_value(v) is None:
                    p[k] = v
        return p

    def output_columns(self, outcomes: Sequence[str] | None = None) -> list[str]:
        """The flat score names (``score_table`` columns and ``result["scores"]`` keys)."""
        cols = []
        for t in self._select(outcomes):
            cols += self._flat_names(t)
        return cols

    @staticmethod
    def _flat_names(t: _Task) -> list[str]:
        p = f"{t.prefix}_{t.follow_up}"
        if t.outcome_type == "binary":
            return [f"{p}_p_exercise", f"{p}_p_comparator", f"{p}_ard", f"{p}_ard_low", f"{p}_ard_high",
                    f"{p}_ard_pi_low", f"{p}_ard_pi_high"]
        return [f"{p}_exercise", f"{p}_comparator", f"{p}_benefit", f"{p}_benefit_low", f"{p}_benefit_high",
                f"{p}_benefit_pi_low", f"{p}_benefit_pi_high"]

    # ------------------------------------------------------------------ validation
    def _select(self, outcomes: Sequence[str] | None) -> list[_Task]:
        if outcomes is None:
            return list(self._tasks)
        if isinstance(outcomes, str):
            outcomes = [outcomes]
        sel = [t for t in self._tasks if t.outcome in outcomes or t.task in outcomes]
        return sel

    def _check_request(self, comparator: Any, outcomes: Any) -> list[Problem]:
        probs = []
        if not isinstance(comparator, str) or comparator not in self.comparators:
            probs.append(Problem("unknown_comparator", f"comparator {comparator!r} is not one of "
                                 f"{', '.join(self.comparators)}", column="comparator", scope="file"))
        if outcomes is not None:
            if isinstance(outcomes, str) or not isinstance(outcomes, (list, tuple)) or not outcomes:
                probs.append(Problem("bad_outcomes", "outcomes must be a non-empty list of outcome names",
                                     column="outcomes", scope="file"))
            else:
                known = set(self.outcomes) | set(self.tasks)
                bad = [o for o in outcomes if not isinstance(o, str) or o not in known]
                if bad:
                    probs.append(Problem("unknown_outcome", f"unknown outcome(s) {', '.join(map(repr, bad))}; "
                                         f"choose from {', '.join(self.outcomes)}", column="outcomes", scope="file"))
                elif len(set(outcomes)) != len(outcomes):
                    probs.append(Problem("bad_outcomes", "an outcome is listed twice", column="outcomes", scope="file"))
        return probs

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

    def required_baselines(self, outcomes: Sequence[str] | None = None) -> set[str]:
        """The baseline inputs needed to score ``outcomes`` (default all): see predict.required_inputs."""
        return required_baselines(self.baselines, self._select(outcomes))

    def support_scores(self, patients: Any) -> dict[str, dict]:
        """Per task, how far each patient lies from the task model's training support
        (:func:`predict.support.support_scores`: ``z``, ``percentile``, interval widening
        ``factor`` and ``rare`` arrays over patients)."""
        F, _ = self.validate(patients)
        return {t.task: support.support_scores(t.exp.get("support"), F) for t in self._tasks}

    def validate(self, patients: Any, required: set[str] | None = None) -> tuple[np.ndarray, pd.DataFrame | None]:
        """The feature matrix (n x features, NaN = missing) of valid input; raises
        :class:`ValidationFailed` naming every bad field and patient index (0-based).
        ``required``: the baselines that must be given (default all; see predict.required_inputs)."""
        need = set(self.baselines) if required is None else set(required)
        F = self._valid_small(patients)
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

    def _field_rules(self) -> list[tuple]:
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
        if not isinstance(patients, list) or not 0 < len(patients) <= FUSED_MAX_ROWS:
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

    # ------------------------------------------------------------------ warnings
    def _warning_limits(self, bg: pd.DataFrame | None) -> dict:
        out: dict[str, dict] = {}
        if bg is None or not len(bg):
            return out
        for r in bg.to_dict("records"):
            name = r["feature"]
            if name not in self._index:
                continue
            d: dict[str, Any] = {}
            lo, hi, share = r.get("p01", ""), r.get("p99", ""), 98
            if lo == "" or hi == "":
                lo, hi, share = r.get("p05", ""), r.get("p95", ""), 90
            if lo != "" and hi != "":
                d["range"] = (float(lo), float(hi), share)
            n_obs = int(float(r.get("n_observed") or 0))
            trials = int(float(r.get("trials_collected") or r.get("trials_observed") or 0))
            if name not in self.baselines and (n_obs < LITTLE_DATA_N or trials < LITTLE_DATA_TRIALS):
                d["little"] = (n_obs, trials)
            if r.get("levels"):
                counts = json.loads(r["levels"])
                d["rare"] = {k: v for k, v in counts.items() if v < RARE_LEVEL_N}
            out[name] = d
        return out

    def _warning_rules(self) -> list[tuple]:
        """The checks of :meth:`_patient_warnings`, prepared once: (column, range or None, text
        pieces, little-data text or None, [(code, text)] for rare levels)."""
        rules = []
        for name, d in self._limits.items():
            j = self._index[name]
            label = self._label.get(name, name)
            unit = self._unit.get(name)
            u = f" {unit}" if unit and name not in self.baselines else ""
            rng = None
            if "range" in d:
                lo, hi, share = d["range"]
                rng = (lo, hi, f"{label} = ", f"{u} is outside the range of {share}% of the training participants "
                       f"({lo:g}–{hi:g}{u}); the prediction extrapolates")
            little = None
            if "little" in d:
                n_obs, trials = d["little"]
                little = (f"the model has little data on {label} (observed for {n_obs} training participants "
                          f"in {trials} trials); its influence on this prediction is uncertain")
            rare = []
            if d.get("rare"):
                typ = self._types[j]
                cats = self._cats.get(name, [])
                for lvl, cnt in d["rare"].items():
                    code = float(lvl) if typ == "binary" else float(cats.index(lvl)) if lvl in cats else None
                    if code is not None:
                        rare.append((code, f"few training participants had {label} = {lvl} ({cnt}); "
                                           "the prediction rests on little data for this value"))
            rules.append((j, rng, little, rare))
        return rules

    def _patient_warnings(self, F: np.ndarray) -> list[list[str]]:
        n = F.shape[0]
        if n <= FUSED_MAX_ROWS:  # the same checks, per value (no array calls for a few patients)
            out = []
            for row in F.tolist():
                w: list[str] = []
                for j, rng, little, rare in self._wrules:
                    x = row[j]
                    if x != x:
                        continue
                    if rng is not None and (x < rng[0] or x > rng[1]):
                        w.append(f"{rng[2]}{x:g}{rng[3]}")
                    if little is not None:
                        w.append(little)
                    for code, text in rare:
                        if x == code:
                            w.append(text)
                out.append(w)
            return out
        warns: list[list[str]] = [[] for _ in range(n)]
        for name, d in self._limits.items():
            j = self._index[name]
            x = F[:, j]
            label = self._label.get(name, name)
            unit = self._unit.get(name)
            u = f" {unit}" if unit and name not in self.baselines else ""
            if "range" in d:
                lo, hi, share = d["range"]
                with np.errstate(invalid="ignore"):
                    idx = np.flatnonzero((x < lo) | (x > hi))
                for i in idx:
                    warns[i].append(f"{label} = {x[i]:g}{u} is outside the range of {share}% of the training "
                                    f"participants ({lo:g}–{hi:g}{u}); the prediction extrapolates")
            if "little" in d:
                n_obs, trials = d["little"]
                for i in np.flatnonzero(~np.isnan(x)):
                    warns[i].append(f"the model has little data on {label} (observed for {n_obs} training participants "
                                    f"in {trials} trials); its influence on this prediction is uncertain")
            if d.get("rare"):
                typ = self._types[j]
                cats = self._cats.get(name, [])
                for lvl, cnt in d["rare"].items():
                    code = float(lvl) if typ == "binary" else float(cats.index(lvl)) if lvl in cats else None
                    if code is None:
                        continue
                    for i in np.flatnonzero(x == code):
                        warns[i].append(f"few training participants had {label} = {lvl} ({cnt}); "
                                        "the prediction rests on little data for this value")
        return warns

    def _network_warnings(self, comparator: str, tasks: list[_Task]) -> list[str]:
        out = []
        have = [t for t in tasks if t.net is not None and comparator in t.net["nodes"]]
        unavailable = [t.task for t in tasks if t not in have]
        out.append(f"{comparator} is not one of the benefit learners' classes: its benefit comes from the one-stage "
                   "IPD network model (node effects and exercise-content interactions, pooled over every trial "
                   "in the network)" + (f" for {', '.join(t.task for t in have)}" if have else ""))
        if unavailable:
            out.append(f"no network model covers {comparator} for {', '.join(unavailable)}: no prediction there")
        ind = [t for t in have if t.net["evidence"][comparator]["evidence"] == "indirect only"]
        if ind:
            out.append(f"no trial compared exercise with {comparator} directly ({', '.join(t.task for t in ind)}): "
                       "the comparison rests on indirect evidence only, through the network's other treatments "
                       "(it assumes consistency of direct and indirect evidence)")
        few = [(t.task, t.net["evidence"][comparator]) for t in have
               if t.net["evidence"][comparator]["trials"] < 2 or t.net["evidence"][comparator]["participants"] < 60]
        if few:
            tr = sorted({e["trials"] for _, e in few})
            pa = sorted({e["participants"] for _, e in few})
            out.append(f"few trials included {comparator} ({tr[0] if len(tr) == 1 else f'{tr[0]}-{tr[-1]}'} trials, "
                       f"{pa[0] if len(pa) == 1 else f'{pa[0]}-{pa[-1]}'} participants on it, in {len(few)} of "
                       f"{len(tasks)} outcome x follow-up predictions): its effect rests on little data")
        if self.synthetic:
            out.append("the model was trained on synthetic (simulated) data: not for clinical use")
        return out

    def _request_warnings(self, comparator: str, tasks: list[_Task]) -> list[str]:
        if comparator in self.network_only:
            return self._network_warnings(comparator, tasks)
        out = []
        unavailable = [t.task for t in tasks if comparator not in t.exp["comparators"]]
        if unavailable:
            out.append(f"no trial compared exercise with {comparator} for {', '.join(unavailable)}: "
                       "no prediction there")
        sparse = []
        for t in tasks:
            s = ((t.exp.get("meta") or {}).get("support") or {}).get(comparator)
            if s and s.get("sparse") and s.get("trials", 0) > 0:
                sparse.append((t.task, s["trials"], s["participants"]))
        if sparse:
            tr = sorted({s[1] for s in sparse})
            pa = sorted({s[2] for s in sparse})
            tr_txt = f"{tr[0]}" if len(tr) == 1 else f"{tr[0]}-{tr[-1]}"
            pa_txt = f"{pa[0]}" if len(pa) == 1 else f"{pa[0]}-{pa[-1]}"
            out.append(f"few trials compared exercise with {comparator} ({tr_txt} trials, {pa_txt} participants, "
                       f"in {len(sparse)} of {len(tasks)} outcome x follow-up predictions): its average effect "
                       "rests on little data")
        if self.synthetic:
            out.append("the model was trained on synthetic (simulated) data: not for clinical use")
        return out

    # ------------------------------------------------------------------ computation
    def _compute(self, F: np.ndarray, comparator: str, tasks: list[_Task],
                 arms: bool = False) -> tuple[list[_Computed], dict]:
        """:meth:`_compute_raw`, the intervals widened for patients beyond the training support
        (:func:`predict.support.widen_task`)."""
        out, arm_iv = self._compute_raw(F, comparator, tasks, arms)
        for c in out:
            if c.available and c.learner is None:
                c.ci, c.pi = support.widen_task(c.task.exp, F, c.benefit, c.ci, c.pi)
        return out, arm_iv

    def _compute_raw(self, F: np.ndarray, comparator: str, tasks: list[_Task],
                     arms: bool = False) -> tuple[list[_Computed], dict]:
        """Per task the point predictions and benefit intervals; with ``arms``, also the per-arm
        95% CIs of the expected outcome (see :meth:`_arm_interval`) as {task: (exercise low,
        exercise high, comparator low, comparator high)} arrays over patients.

        The intervals of all tasks are computed together on stacked (task x patient) arrays: the
        same elementwise operations as one task at a time (identical numbers), without numpy's
        per-call overhead nine times over (it dominated scoring one patient)."""
        z = rt.norm_ppf(0.5 + LEVEL / 2)
        out: list = []
        arm_iv: dict = {}
        n = F.shape[0]
        if comparator in self.network_only:
            comp = [self._compute_network(F, comparator, t, z) for t in tasks]
            for c in comp if arms else []:
                iv = arm_intervals.arm_bounds(c.task.exp, F, c.exercise, c.benefit, c.ci, z) if c.available else None
                if iv is not None:
                    arm_iv[c.task.task] = iv
            return comp, arm_iv
        groups = rt.pattern_groups(F) if n else None
        if 0 < n <= FUSED_MAX_ROWS:
            done = self._compute_fused(F, comparator, tasks, arms, groups, z)
            if done is not None:
                return done
        todo = []  # (position in out, task, exercise, comparator, benefit, se_est, var_missing, tau, lim)
        arm_rows: list = []  # (task, estimate, SE, missing-data variance) per arm, exercise then comparator
        for t in tasks:
            exp = t.exp
            if comparator not in exp["comparators"] or n == 0:
                nan = np.full(n, np.nan)
                out.append(_Computed(t, False, nan, nan, nan, (nan, nan), (nan, nan)))
                continue
            r = rt.task_scores(exp, F, comparator, arms=arms, groups=groups)
            se_arm = r["arm_se"]
            if se_arm is not None:  # one pass over the missing-data draws serves the benefit and both arms
                va, vc = r["arm_var_missing"]
                arm_rows.append((t, r["exercise"], se_arm[0], va))
                arm_rows.append((t, r["comparator"], se_arm[1], vc))
            todo.append((len(out), t, r["exercise"], r["comparator"], r["benefit"], r["se_est"], r["var_missing"],
                         float(exp["interval"]["tau"].get(comparator, 0.0)),
                         1.0 if t.outcome_type == "binary" else 100.0))
            out.append(None)
        if todo:
            ben = np.array([d[4] for d in todo], float).reshape(len(todo), n)
            se_est = np.array([d[5] for d in todo], float).reshape(len(todo), n)
            var_m = np.array([d[6] for d in todo], float).reshape(len(todo), n)
            tau = np.array([d[7] for d in todo], float)[:, None]
            lim = np.array([d[8] for d in todo], float)[:, None]
            se = np.sqrt(se_est ** 2 + var_m)
            sp = np.sqrt(se ** 2 + tau ** 2)
            nlim = -lim
            ci_lo, ci_hi = _clip(ben - z * se, nlim, lim), _clip(ben + z * se, nlim, lim)
            pi_lo, pi_hi = _clip(ben - z * sp, nlim, lim), _clip(ben + z * sp, nlim, lim)
            for k, (pos, t, a, c, b, *_rest) in enumerate(todo):
                out[pos] = _Computed(t, True, a, c, b, (ci_lo[k], ci_hi[k]), (pi_lo[k], pi_hi[k]))
        if arm_rows:
            est = np.array([d[1] for d in arm_rows], float).reshape(len(arm_rows), n)
            se_a = np.array([d[2] for d in arm_rows], float).reshape(len(arm_rows), n)
            var_a = np.array([d[3] for d in arm_rows], float).reshape(len(arm_rows), n)
            lo, hi = self._arm_bounds(est, se_a, var_a, z)
            for k in range(0, len(arm_rows), 2):
                arm_iv[arm_rows[k][0].task] = (lo[k], hi[k], lo[k + 1], hi[k + 1])
        return out, arm_iv

    def _program(self, comparator: str):
        """The fused program (predict/program.py) scoring ``comparator`` for every task, compiled
        on first use; None where numba is unavailable or a learner is outside what it takes."""
        if comparator in self._programs:
            return self._programs[comparator]
        prog = compile_program([t.exp for t in self._tasks], comparator)
        self._programs[comparator] = prog
        return prog

    def _compute_fused(self, F: np.ndarray, comparator: str, tasks: list[_Task], arms: bool, groups,
                       z: float) -> tuple[list[_Computed], dict] | None:
        """:meth:`_compute` from the fused kernel's output, which includes the intervals (the same
        arithmetic, done in the kernel: a few numpy calls per task cost more than the whole
        computation for one patient). None if there is no program for ``comparator``."""
        prog = self._program(comparator)
        if prog is None:
            return None
        res = prog.run(F, groups, arms=arms, threads=1, z=z)
        n = F.shape[0]
        pos = self._fused_positions.get(comparator)
        if pos is None:
            pos = self._fused_positions[comparator] = {self._tasks[q].task: j for j, q in enumerate(prog.tasks)}
        arm_iv: dict = {}
        out = []
        for t in tasks:
            j = pos.get(t.task)
            if j is None:  # the comparator is not one of this task's classes
                nan = np.full(n, np.nan)
                out.append(_Computed(t, False, nan, nan, nan, (nan, nan), (nan, nan)))
                continue
            out.append(_Computed(t, True, res[fz.O_A, j], res[fz.O_C, j], res[fz.O_B, j],
                                 (res[fz.O_CILO, j], res[fz.O_CIHI, j]), (res[fz.O_PILO, j], res[fz.O_PIHI, j])))
            if arms and t.outcome_type == "continuous" and res[fz.O_SEA, j, 0] == res[fz.O_SEA, j, 0]:
                arm_iv[t.task] = (res[fz.O_EXLO, j], res[fz.O_EXHI, j], res[fz.O_CPLO, j], res[fz.O_CPHI, j])
        return out, arm_iv

    @staticmethod
    def _arm_bounds(est: np.ndarray, se: np.ndarray, var_missing: np.ndarray, z: float):
        """95% CI of the expected outcome under one arm for patients like this in an average trial:
        the learner's estimation SE (bootstrap delta method) and the spread over draws of missing
        inputs, clipped to 0-100. Returns (low, high) arrays shaped like ``est``."""
        sd = np.sqrt(se ** 2 + var_missing)
        return _clip(est - z * sd, 0.0, 100.0), _clip(est + z * sd, 0.0, 100.0)

    @classmethod
    def _arm_interval(cls, est: np.ndarray, se: np.ndarray, var_missing: np.ndarray, z: float) -> list:
        """:meth:`_arm_bounds` as a list of [low, high] per patient (None where not finite)."""
        lo, hi = cls._arm_bounds(est, se, var_missing, z)
        return [[x, y] for x, y in zip(_finite_list(lo), _finite_list(hi))]

    def _compute_network(self, F: np.ndarray, node: str, t: _Task, z: float) -> _Computed:
        """Benefit vs a network-only node from the task's IPD network model (predict/network.py):
        delta-method SE, plus the conditional variance of missing modifiers; PI adds tau. The
        exercise prediction is the task learner's; the comparator's = exercise + benefit."""
        n = F.shape[0]
        if t.net is None or node not in t.net["nodes"] or n == 0:
            nan = np.full(n, np.nan)
            return _Computed(t, False, nan, nan, nan, (nan, nan), (nan, nan), netrt.MODEL_NAME, None)
        exp, net = t.exp, t.net
        Fimp = rt.impute_mean(exp["imputer"], F)
        active = rt._expected(exp, F, Fimp)["__active__"]
        mods = list(net["model"]["modifiers"])
        cols = [self._index[mname] for mname in mods]
        ben, se = netrt.benefit(net, node, Fimp[:, cols] if cols else np.zeros((n, 0)))
        var_miss = np.zeros(n)
        if cols:
            w = np.zeros(F.shape[1])
            w[cols] = netrt.slopes(net, node)
            imp = exp["imputer"]
            S = np.asarray(imp["cov"], float)
            keys, inv = rt._patterns(F)
            for k, msk in enumerate(keys):
                if not msk[cols].any():
                    continue
                L = rt._pattern_solve(imp, S, msk)[1]
                var_miss[inv == k] = float(np.sum((L.T @ w[msk]) ** 2))
        se = np.sqrt(se ** 2 + var_miss)
        tau = float(net["model"]["tau"])
        sp = np.sqrt(se ** 2 + tau ** 2)
        ci = (np.clip(ben - z * se, -100.0, 100.0), np.clip(ben + z * se, -100.0, 100.0))
        pi = (np.clip(ben - z * sp, -100.0, 100.0), np.clip(ben + z * sp, -100.0, 100.0))
        e = net["evidence"][node]
        ev = {"type": e["evidence"], "direct_trials": e["direct_trials"], "direct_participants": e["direct_participants"],
              "trials": e["trials"], "participants": e["participants"]}
        return _Computed(t, True, active, active + ben, ben, ci, pi, netrt.MODEL_NAME, ev)

    def _explain(self, F: np.ndarray, comparator: str, t: _Task) -> tuple[np.ndarray, np.ndarray]:
        exp = t.exp
        Fimp = rt.impute_mean_fast(exp["imputer"], F)
        base, contrib = rt._explain(exp, F, Fimp, comparator)
        return base, contrib

    def _explained_task(self, comparator: str, tasks: list[_Task]) -> _Task | None:
        for t in tasks:
            if comparator in t.exp["comparators"]:
                return t
        return None

    # ------------------------------------------------------------------ public scoring
    def _checked(self, patients: Any, comparator: str, outcomes: Sequence[str] | None):
        """Validate the request and the patients together (every problem reported at once):
        (feature matrix, id columns or None, selected tasks)."""
        probs = self._check_request(comparator, outcomes)
        need = None if probs or outcomes is None else required_baselines(self.baselines, self._select(outcomes))
        try:
            F, ids = self.validate(patients, need)
        except ValidationFailed as exc:
            raise ValidationFailed(probs + exc.problems, what="patients") from None
        if probs:
            raise ValidationFailed(probs, what="request")
        return F, ids, self._select(outcomes)

    def score(self, patients: Any, comparator: str, outcomes: Sequence[str] | None = None, *,
              explain: bool = True, top: int = TOP_FACTORS) -> list[dict]:
        """One result per patient, in order (see the module docstring and docs/artifact.md).

        ``patients``: a dict, a list of dicts or a DataFrame (columns ``trial``/``participant``
        are ignored); absent or None/NaN covariates are missing, baselines are required.
        ``outcomes``: outcome names (``pain``, ``function``, ``global_recovery``) or task names
        (``pain__short``); default all. Raises :class:`ValidationFailed` for bad input.
        """
        F, _, tasks = self._checked(patients, comparator, outcomes)
        if F.shape[0] <= FUSED_MAX_ROWS and self._program(comparator) is not None:
            return self._score(F, comparator, tasks, explain, top)  # no BLAS in the fused kernel
        with _one_blas_thread():
            parts = self._split(F.shape[0], None)
            if len(parts) == 1:
                return self._score(F, comparator, tasks, explain, top)
            res = _parallel([(self._score, F[a:b], comparator, tasks, explain, top) for a, b in parts])
            return [r for part in res for r in part]

    def _score(self, F: np.ndarray, comparator: str, tasks: list[_Task], explain: bool, top: int) -> list[dict]:
        comp, arm_iv = self._compute(F, comparator, tasks, arms=True)
        for c in comp:  # recovery under each arm (predict/arm_intervals.py), where the learner allows it
            if c.available and c.learner is None and c.task.outcome_type == "binary":
                parts = arm_intervals.binary_parts(c.task.exp, F, comparator)
                if parts is not None:
                    arm_iv[c.task.task] = arm_intervals.binary_interval(parts, verdicts.Z)
        n = F.shape[0]
        warns = self._imputation_warned(F, self._patient_warnings(F))
        for w, note in zip(warns, support.patient_notes([t.exp for t in tasks], F)):
            w += note
        req_warn = self._request_warnings(comparator, tasks)
        missing = self._missing_lists(F)
        factors: list[list[dict]] = [[] for _ in range(n)]
        imputed_factors: list[list[dict]] = [[] for _ in range(n)]
        et = self._explained_task(comparator, tasks) if explain else None
        explained = None
        if et is not None and n:
            base, contrib = self._explain(F, comparator, et)
            entered, imputed = imputed_inputs.split_contributions(contrib, F)  # explanations from entered inputs only
            factors = self._top_factors(entered, et, comparator, top)
            imputed_factors = self._top_factors(imputed, et, comparator, top)
            explained = {"task": et.task, "comparator": comparator,
                         "method": self._explain_method(et),
                         "units": self._factor_units(et, comparator)}
        base_cols = {t.baseline: F[:, self._index[t.baseline]].tolist() for t in tasks if t.baseline}
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
                rows.append(SWE_FRACTION * F[:, self._index[t.baseline]])
            layout.append((c, t, k0, k_iv, k_swe, binary))
        table = _finite_rows(rows, n)
        per_task = []
        for c, t, k0, k_iv, k_swe, binary in layout:
            cols = table[k0:k0 + 7]
            iv = None
            if k_iv is not None:
                ex_lo, ex_hi, cp_lo, cp_hi = table[k_iv:k_iv + 4]
                iv = {"exercise": [[x, y] for x, y in zip(ex_lo, ex_hi)],
                      "comparator": [[x, y] for x, y in zip(cp_lo, cp_hi)]}
            swe = table[k_swe] if k_swe is not None else None
            per_task.append((c, t, self._flat_names(t), cols, c.benefit.tolist(), iv, swe, binary,
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

    def _imputation_warned(self, F: np.ndarray, warns: list[list[str]]) -> list[list[str]]:
        """``warns`` with the heavy-imputation warning (predict/imputed.py) first where it applies."""
        cols = [self._index[c] for c in self.schema.names]
        share = imputed_inputs.share_threshold(self.manifest)
        for w, extra in zip(warns, imputed_inputs.imputation_warnings(F, cols, share)):
            if extra:
                w.insert(0, extra)
        return warns

    def score_table(self, patients: Any, comparator: str, outcomes: Sequence[str] | None = None, *,
                    explain: bool = False, top: int = 3, details: bool = True,
                    threads: int | None = None) -> pd.DataFrame:
        """Flat scores, one row per patient: ``trial``/``participant`` if given, then the score
        columns (:meth:`output_columns`), and with ``details`` ``missing`` and ``warnings`` (text);
        with ``explain`` ``factor<k>_name`` / ``factor<k>_contribution`` for the top factors.

        ``threads``: batches of at least :data:`PARALLEL_MIN_ROWS` patients are split into this
        many contiguous parts scored concurrently (the compiled kernels release the GIL); default
        ``LBP_SCORE_THREADS`` or the CPUs available (at most 8). Each patient's numbers do not
        depend on the split."""
        F, ids, tasks = self._checked(patients, comparator, outcomes)
        with _one_blas_thread():
            parts = self._split(F.shape[0], threads)
            if len(parts) == 1:
                return self._score_table(F, ids, comparator, tasks, explain, top, details)
            res = _parallel([(self._score_table, F[a:b], None if ids is None else ids.iloc[a:b].reset_index(drop=True),
                              comparator, tasks, explain, top, details) for a, b in parts])
            return pd.concat(res, ignore_index=True)

    @staticmethod
    def _split(n: int, threads: int | None) -> list[tuple[int, int]]:
        k = default_threads() if threads is None else max(1, int(threads))
        if k == 1 or n < PARALLEL_MIN_ROWS:
            return [(0, n)]
        k = min(k, n // (PARALLEL_MIN_ROWS // 2))
        bounds = np.linspace(0, n, k + 1).astype(int)
        return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]

    def _score_table(self, F: np.ndarray, ids, comparator: str, tasks: list[_Task], explain: bool, top: int,
                     details: bool) -> pd.DataFrame:
        comp, _ = self._compute(F, comparator, tasks)
        cols: dict[str, Any] = {}
        if ids is not None:
            for c in ids.columns:
                cols[c] = ids[c].to_numpy()
        for c in comp:
            for k, v in zip(self._flat_names(c.task), (c.exercise, c.comparator, c.benefit, c.ci[0], c.ci[1],
                                                       c.pi[0], c.pi[1])):
                cols[k] = v
        n = F.shape[0]
        if explain:
            et = self._explained_task(comparator, tasks)
            if et is not None and n:
                _, contrib = self._explain(F, comparator, et)
                k = min(top, contrib.shape[1])
                order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
                names = np.array(self._names, dtype=object)
                for r in range(k):
                    cols[f"factor{r + 1}_name"] = names[order[:, r]]
                    cols[f"factor{r + 1}_contribution"] = np.take_along_axis(contrib, order[:, r:r + 1], 1)[:, 0]
        if details:
            miss = np.isnan(F)
            cov_idx = [self._index[c] for c in self.schema.names + self.baselines]  # a baseline not required may be missing
            names = [self._names[j] for j in cov_idx]
            keys, inv = rt.pattern_groups(np.where(miss[:, cov_idx], np.nan, 0.0))  # one string per pattern
            texts = np.array([";".join(nm for nm, m in zip(names, row) if m) for row in keys] or [""], dtype=object)
            cols["missing"] = texts[inv].tolist() if n else []
            req = self._request_warnings(comparator, tasks)
            notes = support.patient_notes([t.exp for t in tasks], F)
            cols["warnings"] = [" | ".join(w + note + req) for w, note in
                                zip(self._imputation_warned(F, self._patient_warnings(F)), notes)]
        return pd.DataFrame(cols)

    # ------------------------------------------------------------------ result pieces
    def _missing_lists(self, F: np.ndarray) -> list[list[dict]]:
        # Baselines are listed too: one not required for the requested outcomes may be left out (then imputed).
        cov = [(self._index[c], c) for c in self.schema.names + self.baselines]
        miss = np.isnan(F[:, [j for j, _ in cov]]) if cov else np.zeros((F.shape[0], 0), bool)
        like_covariates = next(iter(self._missing_text.values()), "allowed")
        entries = [{"name": name, "handled_as": self._missing_text.get(name, like_covariates)} for _, name in cov]
        return [[entries[k] for k in np.flatnonzero(row)] for row in miss]

    def _explain_method(self, t: _Task) -> str:
        if t.outcome_type == "binary":
            return "first-order (delta-method) terms per arm on the probability scale; the remainder is left out"
        return ("exact additive terms of the linear parts and LightGBM TreeSHAP (path-dependent) of the tree parts; "
                "relative to the model's reference patient (trial-mean-centred modifiers)")

    def _factor_units(self, t: _Task, comparator: str) -> str:
        if t.outcome_type == "binary":
            return f"change in the difference in probability of global recovery ({t.follow_up}-term, vs {comparator})"
        return f"points of benefit on the 0-100 {t.outcome} scale ({t.follow_up}-term, vs {comparator})"

    def _top_factors(self, contrib: np.ndarray, t: _Task, comparator: str, top: int) -> list[list[dict]]:
        k = min(top, contrib.shape[1])
        order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
        units = self._factor_units(t, comparator)
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


def load(path: str | Path) -> Scorer:
    """``Scorer.load(path)``."""
    return Scorer.load(path)

