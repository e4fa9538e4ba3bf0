"""The one thing the service needs from a model: a *scorer*.

The HTTP layer is written against :class:`ScorerLike`, a structural protocol. The real
:class:`predict.Scorer` (``Scorer.load(path)``) satisfies it; tests use a small double.

``score`` returns one result per patient, in the order given: a JSON-able dict the service passes
through unchanged (``result`` / ``results`` of the score responses). Its fields are documented
with the scorer (``docs/artifact.md``); ``docs/serving.md`` shows a real response, produced from
the small test model and checked by ``tests/test_serving_docs.py`` so it cannot drift.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from predict.errors import LbpError
from predict.schema import FeatureSchema


@runtime_checkable
class ScorerLike(Protocol):
    """What the service needs from a loaded model (``predict.Scorer`` provides it)."""

    schema: FeatureSchema
    """Covariates: name, type (continuous|binary|categorical), label, unit, range, categories."""
    baselines: list[str]
    """Required baseline inputs, e.g. ``["baseline_pain", "baseline_function"]`` (0-100, higher = worse)."""
    comparators: list[str]
    """Comparator classes the model can answer, e.g. ``["no_treatment", "usual_care", "other_conservative"]``."""
    outcomes: list[str]
    """Outcomes the model predicts, e.g. ``["pain", "function", "global_recovery"]``."""
    manifest: dict
    """The artifact manifest (JSON-able): ``model_id``, ``schema_version``, ``created``, ``synthetic``, ..."""
    card_markdown: str
    """The rendered model card."""
    card: dict
    """The model card as JSON."""

    def score(self, patients: list[dict], comparator: str, outcomes: list[str] | None = None) -> list[dict]:
        """One result per patient, in order (shape in this module's docstring).

        ``patients`` hold only the values given: an absent covariate is missing. Raise
        :class:`predict.errors.ValidationFailed` (or another :class:`LbpError`) for input the
        model refuses; the service answers 422 with its problems.
        """
        ...


Loader = Callable[[Path], ScorerLike]
"""Turns a model path into a scorer; must raise (e.g. ``ArtifactError``) rather than return a doubtful model."""

BASELINE_RANGE = (0.0, 100.0)


def default_loader(path: Path) -> ScorerLike:
    """``predict.Scorer.load(path)``: verifies the artifact (hashes, format) or raises."""
    from predict import Scorer

    return Scorer.load(path)


def check_scorer(scorer: Any) -> ScorerLike:
    """Check that ``scorer`` offers what the service needs; raise :class:`LbpError` naming what is wrong."""
    problems: list[str] = []
    schema = getattr(scorer, "schema", None)
    if not isinstance(schema, FeatureSchema):
        problems.append("schema is not a predict.schema.FeatureSchema")
    for attr in ("baselines", "comparators", "outcomes"):
        value = getattr(scorer, attr, None)
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
            problems.append(f"{attr} must be a non-empty list of names")
        elif len(set(value)) != len(value):
            problems.append(f"{attr} has duplicates")
    manifest = getattr(scorer, "manifest", None)
    if not isinstance(manifest, dict) or not manifest.get("model_id"):
        problems.append("manifest must be a dict with a model_id")
    if not isinstance(getattr(scorer, "card_markdown", None), str):
        problems.append("card_markdown must be a string")
    if not isinstance(getattr(scorer, "card", None), dict):
        problems.append("card must be a dict")
    if not callable(getattr(scorer, "score", None)):
        problems.append("score(patients, comparator, outcomes) is missing")
    if isinstance(schema, FeatureSchema) and isinstance(getattr(scorer, "baselines", None), (list, tuple)):
        clash = sorted(set(schema.names) & set(scorer.baselines))
        if clash:
            problems.append(f"baseline inputs also declared as covariates: {', '.join(clash)}")
    if problems:
        raise LbpError("the loaded model cannot be served: " + "; ".join(problems))
    return scorer


def is_synthetic(manifest: dict) -> bool:
    return bool(manifest.get("synthetic"))


def to_jsonable(value: Any) -> Any:
    """Plain JSON from what a scorer returns: numpy scalars/arrays become Python values and
    non-finite floats become ``null`` (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or type(value) in (str, int):
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None  # np.float64 is a float subclass: plain float
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return to_jsonable(value.tolist())
    if hasattr(value, "item"):
        return to_jsonable(value.item())
    return str(value)
