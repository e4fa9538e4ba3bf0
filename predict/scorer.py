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

The scorer composes the runtime's parts, one job each (docs/artifact.md draws the path):
:mod:`predict.model_format` (verify the artifact), :mod:`predict.inputs` (validation),
:mod:`predict.compute` (numbers and intervals, through the compiled program
:mod:`predict.program` or the numpy reference :mod:`predict.reference`), :mod:`predict.explain` (contributions), :mod:`predict.clinical_warnings`
(every warning's wording) and :mod:`predict.results` (assembly).

Conventions: pain and function are 0-100, higher = worse; benefit = comparator minus exercise,
so a positive benefit favours exercise. Global recovery is a probability; its difference is
P(recovery | exercise) - P(recovery | comparator), positive favours exercise.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from predict import model_format as mf
from predict import network as netrt
from predict import arm_intervals
from predict import imputed as imputed_inputs
from predict import kernels
from predict import outcome_text
from predict import recovery_structure
from predict import support
from predict import verdict as verdicts
from predict.artifact import Artifact, ArtifactError, load_artifact
from predict.clinical_warnings import ClinicalWarnings, outside_scale, table_cell
from predict.compute import Engine
from predict.errors import ValidationFailed
from predict.impute import pattern_groups
from predict.inputs import PatientInputs, example_patient, request_problems
from predict.learner_model import as_learner, build as build_learner
from predict.program import default_threads
from predict.required_inputs import Requirement, requirement
from predict.program import pool as program_pool
from predict.results import FACTORS_UNCERTAINTY, TOP_FACTORS, ResultText, arm_names, assemble, flat_names, has_verdict, table_verdicts, verdict_names
from predict.schema import FeatureSchema
from predict.task import Task

PARALLEL_MIN_ROWS = 1000  # smaller batches are scored on the calling thread
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


class Scorer:
    """A loaded, verified model. Create with :meth:`load`; immutable afterwards (thread-safe)."""

    json_results = True
    """:meth:`score` returns plain JSON values only (dicts with str keys, lists, str, bool, None,
    finite Python floats and ints): the service sends them without converting them again."""

    def __init__(self, artifact: Artifact, tasks: list[Task], schema: FeatureSchema, background: pd.DataFrame | None,
                 manifest: dict | None = None, compiled: bool = True):
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
        self._names: list[str] = list(tasks[0].model.features["names"])
        self._types: list[str] = list(tasks[0].model.features["types"])
        self._cats: dict = dict(tasks[0].model.features.get("categories", {}))
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
        self.inputs = PatientInputs(self._names, self._types, self._cats, self.baselines, self._range, self._unit)
        self.warnings = ClinicalWarnings(self._names, self._types, self._cats, self.baselines, self._label, self._unit,
                                         schema.names, background, m, self.network_only)
        self.engine = Engine(tasks, self._index, self.network_only, compiled=compiled)
        # names and words of the outputs from the manifest (predict/outcome_text.py)
        self.outcome_definitions: dict[str, dict] = outcome_text.definitions(m, tasks)
        self.labels: dict[str, str] = outcome_text.labels(m)
        # baselines listed too: one not required for the requested outcomes may be left out (then imputed)
        self.text = ResultText(self._names, self._label, schema.names + self.baselines, self._missing_text,
                               self.outcome_definitions)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path, *, compiled: bool = True) -> "Scorer":
        """Load and verify the artifact at ``path`` (folder or .zip). Raises
        :class:`predict.artifact.ArtifactError` for anything missing, altered or unexpected.
        ``compiled=False``: score with the numpy reference only (the specification; slower), e.g.
        to check the compiled program's numbers."""
        art = load_artifact(path, supported=mf.READABLE_VERSIONS, required=("card.md", "card.json"))
        vm = mf.verify(art)
        tasks = []
        arm = outcome_text.arm_word(vm.manifest)
        for vt in vm.tasks:
            e, exp = vt.entry, vt.export
            model = build_learner(exp)
            prefix = outcome_text.score_prefix(e.outcome)
            base = f"baseline_{e.outcome}"
            base = base if e.outcome_type == "continuous" and base in vm.manifest["baselines"] else None
            try:
                structural = recovery_structure.parse(exp, f"{path}: task {e.task}")
            except recovery_structure.StructuralFieldError as exc:
                raise ArtifactError(str(exc)) from None
            tasks.append(Task(e.task, e.outcome, e.follow_up, e.outcome_type, str(e.learner or model.kind), exp,
                              model, prefix, base, vt.network, arm, structural))
        names = [n for t in tasks for n in flat_names(t)]
        if len(set(names)) < len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ArtifactError(f"{path}: two tasks give the same score column name(s) {dup}; rename an outcome")
        return cls(art, tasks, vm.schema, vm.background, manifest=vm.manifest, compiled=compiled)

    # ------------------------------------------------------------------ info
    def __repr__(self) -> str:
        return (f"Scorer({self.model_id}, tasks={len(self.tasks)}, comparators={self.comparators}"
                f"{', SYNTHETIC' if self.synthetic else ''})")

    def example_patient(self) -> dict:
        """A plausible patient (baselines + a few covariates) for demos and warm-up."""
        return example_patient(self.schema, self.baselines)

    def scoring_status(self) -> dict:
        """How this scorer computes (shown in ``/v1/model`` as ``scoring``): ``path`` "compiled" or
        "reference" (numpy reference functions, same numbers, slower), ``kernels`` (why the compiled
        kernels are unavailable; None when they are) and ``programs``: per comparator scored so far,
        "compiled" or "not compiled: <why>" (every failure to compile is also logged)."""
        ok = kernels.ready()
        why = None if ok else (kernels.self_test_error() or "numba is not available (or LBP_NO_NUMBA is set)")
        programs = dict(self.engine.compile_status)
        compiled = ok and all(v == "compiled" for v in programs.values())
        return {"path": "compiled" if compiled else "reference", "kernels": why, "programs": programs}

    def output_columns(self, outcomes: Sequence[str] | None = None) -> list[str]:
        """The flat score names (``score_table`` columns and ``result["scores"]`` keys)."""
        cols = []
        for t in self._select(outcomes):
            cols += flat_names(t)
        return cols

    def table_columns(self, outcomes: Sequence[str] | None = None) -> list[str]:
        """The score columns of ``score_table`` (and the score CSV, Spark): per task its flat score
        names (:meth:`output_columns`), the per-arm 95% CIs (``<p>_<a>_low`` ...
        :func:`predict.outcome_text.arm_interval_names`), then, for an outcome with a smallest
        worthwhile effect, its verdict columns (``<p>_verdict``, ... :data:`predict.verdict.COLUMNS`)."""
        cols = []
        for t in self._select(outcomes):
            cols += flat_names(t) + arm_names(t) + (verdict_names(t) if has_verdict(t, self.outcome_definitions) else [])
        return cols

    def _select(self, outcomes: Sequence[str] | None) -> list[Task]:
        if outcomes is None:
            return list(self._tasks)
        if isinstance(outcomes, str):
            outcomes = [outcomes]
        sel = [t for t in self._tasks if t.outcome in outcomes or t.task in outcomes]
        return sel

    def requirement(self, outcomes: Sequence[str] | None = None) -> Requirement:
        """The baseline inputs needed to score ``outcomes`` (outcome or task names; default all):
        those each patient must give and the groups of which at least one (a derived recovery
        outcome with ``combine: any``); see :mod:`predict.required_inputs`, the one owner of the rule."""
        return requirement(self.baselines, self._select(outcomes), self.outcome_definitions)

    def explained_task(self, comparator: str, outcomes: Sequence[str] | None = None) -> str | None:
        """The task whose contributions the top factors (``explain``) give when ``outcomes`` are
        scored against ``comparator`` (None: no task of them covers the comparator)."""
        t = self.engine.explained_task(comparator, self._select(outcomes))
        return None if t is None else t.task

    def support_scores(self, patients: Any, outcomes: Sequence[str] | None = None) -> dict[str, dict]:
        """Per task, how far each patient lies from the task model's training support
        (:func:`predict.support.support_scores`: ``z``, ``percentile``, interval widening
        ``factor`` and ``rare`` arrays over patients). ``outcomes``: outcome or task names (as in
        :meth:`score`); only their baselines are required (default: every task, every baseline)."""
        need = None if outcomes is None else self.requirement(outcomes)
        F, _ = self.validate(patients, need)
        return {t.task: support.support_scores(t.model.support, F) for t in self._select(outcomes)}

    def validate(self, patients: Any, required: Requirement | set[str] | None = None) -> tuple[np.ndarray, pd.DataFrame | None]:
        """The feature matrix (n x features, NaN = missing) of valid input and the id columns of a
        DataFrame (or None); raises :class:`ValidationFailed` naming every bad field and patient
        index (0-based). ``required``: the baselines that must be given (default all; a
        :meth:`requirement` or a set of names). See :class:`predict.inputs.PatientInputs`."""
        return self.inputs.validate(patients, required)

    def _checked(self, patients: Any, comparator: str, outcomes: Sequence[str] | None):
        """Validate the request and the patients together (every problem reported at once):
        (feature matrix, id columns or None, selected tasks)."""
        probs = request_problems(comparator, outcomes, self.comparators, self.outcomes, self.tasks)
        need = None if probs or outcomes is None else self.requirement(outcomes)
        try:
            F, ids = self.validate(patients, need)
        except ValidationFailed as exc:
            raise ValidationFailed(probs + exc.problems, what="patients") from None
        if probs:
            raise ValidationFailed(probs, what="request")
        return F, ids, self._select(outcomes)

    # ------------------------------------------------------------------ scoring
    def score(self, patients: Any, comparator: str, outcomes: Sequence[str] | None = None, *,
              explain: bool = True, top: int = TOP_FACTORS) -> list[dict]:
        """One result per patient, in order (see the module docstring and docs/artifact.md).

        ``patients``: a dict, a list of dicts or a DataFrame (columns ``trial``/``participant``
        are ignored); absent or None/NaN covariates are missing, baselines are required.
        ``outcomes``: outcome names (``pain``, ``function``, ``global_recovery``) or task names
        (``pain__short``); default all. Raises :class:`ValidationFailed` for bad input.
        """
        F, _, tasks = self._checked(patients, comparator, outcomes)
        if F.shape[0] < PARALLEL_MIN_ROWS and self.engine.program(comparator) is not None:
            return self._score(F, comparator, tasks, explain, top)  # no BLAS in the compiled program
        with _one_blas_thread():
            parts = self._split(F.shape[0], None)
            if len(parts) == 1:
                return self._score(F, comparator, tasks, explain, top)
            res = _parallel([(self._score, F[a:b], comparator, tasks, explain, top) for a, b in parts])
            return [r for part in res for r in part]

    def _computed(self, F: np.ndarray, comparator: str, tasks: list[Task]) -> tuple[list, dict]:
        """The computed tasks and the per-arm 95% CIs ({task: (intervention low, high, comparator
        low, high)}) where the learner holds per-arm uncertainty (JSON results and tables alike)."""
        comp, arm_iv = self.engine.compute(F, comparator, tasks, arms=True)
        for c in comp:  # recovery under each arm (predict/arm_intervals.py), where the learner allows it
            if c.available and c.learner is None and c.task.outcome_type == "binary" and c.task.task not in arm_iv:
                # the numpy reference (the compiled program gives these in arm_iv)
                parts = arm_intervals.binary_parts(c.task.model, F, comparator, c.task.structural)
                if parts is not None:
                    arm_iv[c.task.task] = arm_intervals.binary_interval(parts, verdicts.Z)
        return comp, arm_iv

    def _score(self, F: np.ndarray, comparator: str, tasks: list[Task], explain: bool, top: int) -> list[dict]:
        comp, arm_iv = self._computed(F, comparator, tasks)
        n = F.shape[0]
        warns = [w + o for w, o in zip(self.warnings.patient(F, tasks), outside_scale(comp, n))]
        req_warn = self.warnings.request(comparator, tasks)
        missing = self.text.missing_lists(F)
        factors: list[list[dict]] = [[] for _ in range(n)]
        imputed_factors: list[list[dict]] = [[] for _ in range(n)]
        et = self.engine.explained_task(comparator, tasks) if explain else None
        explained = None
        if et is not None and n:
            base, contrib = self.engine.explain(F, comparator, et)
            entered, imputed = imputed_inputs.split_contributions(contrib, F)  # explanations from entered inputs only
            factors = self.text.top_factors(entered, et, comparator, top)
            imputed_factors = self.text.top_factors(imputed, et, comparator, top)
            explained = {"task": et.task, "comparator": comparator,
                         "method": self.text.explain_method(et),
                         "units": self.text.factor_units(et, comparator),
                         "uncertainty": FACTORS_UNCERTAINTY}
        return assemble(F, comparator, comp, arm_iv, self._index, warns, req_warn, missing, factors, imputed_factors,
                        explained, self.outcome_definitions, self.labels)

    def score_table(self, patients: Any, comparator: str, outcomes: Sequence[str] | None = None, *,
                    explain: bool = False, top: int = 3, details: bool = True,
                    threads: int | None = None) -> pd.DataFrame:
        """Flat scores, one row per patient: ``trial``/``participant`` if given, then the score
        columns (:meth:`table_columns`: per task the flat scores and, where the outcome has a smallest
        worthwhile effect, the verdict's columns, as the JSON ``verdict``), and with ``details`` ``missing`` and ``warnings`` (text);
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

    def _score_table(self, F: np.ndarray, ids, comparator: str, tasks: list[Task], explain: bool, top: int,
                     details: bool) -> pd.DataFrame:
        comp, arm_iv = self._computed(F, comparator, tasks)
        cols: dict[str, Any] = {}
        if ids is not None:
            for c in ids.columns:
                cols[c] = ids[c].to_numpy()
        n = F.shape[0]
        rare = support.rare_patients([as_learner(t.model).support for t in tasks], F)[0]  # confidence "low"
        verdict_cols = table_verdicts(comp, F, self._index, self.outcome_definitions, rare)
        for c in comp:
            for k, v in zip(flat_names(c.task), (c.exercise, c.comparator, c.benefit, c.ci[0], c.ci[1],
                                                       c.pi[0], c.pi[1])):
                cols[k] = v
            iv = arm_iv.get(c.task.task)
            for k, v in zip(arm_names(c.task), iv if iv is not None else [np.full(n, np.nan)] * 4):
                cols[k] = np.full(n, np.nan) if v is None else np.asarray(v, float)
            cols.update(verdict_cols.get(c.task.task, {}))
        if explain:
            et = self.engine.explained_task(comparator, tasks)
            if et is not None and n:
                _, contrib = self.engine.explain(F, comparator, et)
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
            keys, inv = pattern_groups(np.where(miss[:, cov_idx], np.nan, 0.0))  # one string per pattern
            texts = np.array([";".join(nm for nm, m in zip(names, row) if m) for row in keys] or [""], dtype=object)
            cols["missing"] = texts[inv].tolist() if n else []
            req = self.warnings.request(comparator, tasks)
            cols["warnings"] = [table_cell(w + o + req) for w, o in zip(self.warnings.patient(F, tasks),
                                                                        outside_scale(comp, n))]
        return pd.DataFrame(cols)


def load(path: str | Path) -> Scorer:
    """``Scorer.load(path)``."""
    return Scorer.load(path)
