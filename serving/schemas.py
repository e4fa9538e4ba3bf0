"""Request and response models, generated from the loaded model's feature schema.

Every covariate and every baseline becomes an optional field (absent or ``null`` = missing, handled
by the model). Which baselines a request needs depends on the outcomes it asks for (a continuous
outcome its own baseline, recovery at least one of its definition's): that is checked per request
through ``Scorer.requirement`` (:mod:`serving.requirements`), and each baseline's description says
which outcomes need it. Validation is strict, so nothing is silently coerced:

* continuous: a JSON number (an integer is fine) inside the covariate's plausible range;
  strings such as ``"62"``, booleans, NaN and infinities are refused;
* binary: the integer ``0`` or ``1``; ``true``/``false``, ``1.0`` and ``"yes"`` are refused;
* categorical: exactly one of the category strings (case-sensitive);
* baselines: a number from 0 to 100 (higher = worse), required by the outcomes that need them;
* unknown fields are refused and named (``extra="forbid"``).

Units, ranges, enumerations, labels and examples appear in the OpenAPI document.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, create_model, field_validator
from pydantic_core import PydanticCustomError

from predict.schema import CovariateSpec
from serving.batch import warned_body
from serving.interface import BASELINE_RANGE, ScorerLike, is_synthetic, to_jsonable
from serving.requirements import OutcomeNeeds

SYNTHETIC_WARNING = (
    "This model was trained on synthetic (simulated) data. Its predictions only demonstrate the "
    "software and must not be used for clinical decisions."
)

BASELINE_LABELS = {
    "baseline_pain": "Pain intensity at baseline (0-100, higher = worse)",
    "baseline_function": "Functional limitations at baseline (0-100, higher = worse)",
}
BASELINE_EXAMPLES = {"baseline_pain": 62.0, "baseline_function": 41.0}


def _strict_binary(value: Any) -> Any:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise PydanticCustomError("binary_type", "Input should be the integer 0 or 1 (not true/false, 1.0 or text)")


def _fmt(x: float) -> str:
    return f"{x:g}"


def covariate_hint(spec: CovariateSpec) -> str:
    """What a covariate accepts, in words (used in 422 bodies and the OpenAPI descriptions)."""
    if spec.type == "continuous":
        unit = f" {spec.unit}" if spec.unit else ""
        if spec.range is not None:
            what = f"a number from {_fmt(spec.range[0])} to {_fmt(spec.range[1])}{unit}"
        else:
            what = f"a number{(' in' + unit) if unit else ''}"
    elif spec.type == "binary":
        what = "0 or 1" + (f" ({spec.reference})" if spec.reference else "")
    else:
        what = "one of " + ", ".join(repr(c) for c in spec.categories or ())
    return what + ", or null/absent if unknown"


def _example(spec: CovariateSpec) -> Any:
    if spec.type == "continuous":
        if spec.range is None:
            return 1.0
        lo, hi = spec.range
        return float(round(lo + (hi - lo) * 0.3, 1))
    if spec.type == "binary":
        return 0
    ref = spec.reference if spec.reference in (spec.categories or ()) else None
    return ref or spec.categories[0]


def _covariate_field(spec: CovariateSpec) -> tuple[Any, Any]:
    label = spec.label or spec.name
    description = f"{label}. Accepts {covariate_hint(spec)}."
    if spec.description:
        description += f" {spec.description}"
    extra: dict[str, Any] = {"x-covariate-type": spec.type}
    if spec.unit:
        extra["x-unit"] = spec.unit
    if spec.type == "continuous":
        constraints: dict[str, Any] = {"strict": True, "allow_inf_nan": False}
        if spec.range is not None:
            constraints.update(ge=spec.range[0], le=spec.range[1])
        inner: Any = Annotated[float, Field(**constraints)]
    elif spec.type == "binary":
        inner = Annotated[Literal[0, 1], BeforeValidator(_strict_binary)]
        if spec.reference:
            extra["x-reference"] = spec.reference
    else:
        inner = Literal[tuple(spec.categories)]  # type: ignore[valid-type]
        if spec.reference:
            extra["x-reference"] = spec.reference
    info = Field(default=None, alias=spec.name, title=label, description=description,
                 examples=[_example(spec)], json_schema_extra=extra)
    return (inner | None, info)


def baseline_hint(name: str, needs: OutcomeNeeds) -> str:
    """What a baseline accepts and which outcomes need it, in words (422 bodies, OpenAPI)."""
    lo, hi = BASELINE_RANGE
    return f"a number from {_fmt(lo)} to {_fmt(hi)}; {needs.needed_by(name)}"


def _baseline_field(name: str, needs: OutcomeNeeds) -> tuple[Any, Any]:
    lo, hi = BASELINE_RANGE
    label = BASELINE_LABELS.get(name, f"{name.replace('_', ' ').capitalize()} (0-100, higher = worse)")
    inner = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=lo, le=hi)]
    needed_by = [o for o, r in needs.by_outcome.items() if name in r.names]
    info = Field(default=None, alias=name, title=label,
                 description=f"{label}. Accepts {baseline_hint(name, needs)}.",
                 examples=[BASELINE_EXAMPLES.get(name, 50.0)],
                 json_schema_extra={"x-unit": "0-100 points", "x-needed-by": needed_by})
    return (inner | None, info)


def needs_summary(needs: OutcomeNeeds) -> str:
    """Which baselines each outcome needs, in words (``pain needs baseline_pain; ...``)."""
    parts = []
    for o, r in needs.by_outcome.items():
        need = [b for b in needs.baselines if b in r.all_of]
        need += ["at least one of " + " or ".join(b for b in needs.baselines if b in g) for _, g in r.any_of]
        parts.append(f"{o} needs {' and '.join(need) if need else 'no baseline'}")
    return "; ".join(parts)


@dataclass
class RequestModels:
    """The generated models and what the 422 handler needs to explain errors."""

    patient: type[BaseModel]
    score: type[BaseModel]
    batch: type[BaseModel]
    score_response: type[BaseModel]
    batch_response: type[BaseModel]
    model_info: type[BaseModel]
    hints: dict[str, str] = field(default_factory=dict)
    needs: OutcomeNeeds | None = None
    """Which baselines each outcome needs (from ``Scorer.requirement``)."""
    example_patient: dict[str, Any] = field(default_factory=dict)
    response_examples: dict[str, Any] = field(default_factory=dict)
    """Real responses to the request examples, by schema name (null values kept: FastAPI drops
    them from examples when it renders the OpenAPI document, so the app puts these back)."""


def example_results(scorer: ScorerLike, patients: list[dict[str, Any]], comparator: str) -> list[dict] | None:
    """The model's real results for the OpenAPI example patients (so the documented examples are
    what the service returns for those requests), or None if the model cannot score them."""
    try:
        results = to_jsonable(scorer.score([dict(p) for p in patients], comparator, None))
    except Exception:  # noqa: BLE001 - an example only; warm-up and /readyz report a model that cannot score
        return None
    return results if isinstance(results, list) and len(results) == len(patients) else None


def build_models(scorer: ScorerLike, max_batch: int) -> RequestModels:
    """Generate the request/response models for ``scorer`` (validated by :func:`check_scorer`)."""
    fields: dict[str, Any] = {}
    hints: dict[str, str] = {}
    example: dict[str, Any] = {}
    # Internal field names are positional (f0, f1, ...): the public names are aliases, so a covariate
    # may be called anything the feature schema allows without clashing with BaseModel attributes.
    needs = OutcomeNeeds.of(scorer)
    for i, name in enumerate(scorer.baselines):
        fields[f"b{i}"] = _baseline_field(name, needs)
        hints[name] = baseline_hint(name, needs)
        example[name] = BASELINE_EXAMPLES.get(name, 50.0)
    for i, spec in enumerate(scorer.schema.covariates):
        fields[f"f{i}"] = _covariate_field(spec)
        hints[spec.name] = covariate_hint(spec)
        example[spec.name] = _example(spec)

    patient = create_model(
        "Patient",
        __config__=ConfigDict(extra="forbid", populate_by_name=False,
                              json_schema_extra={"examples": [example]}),
        __doc__=("One patient's baseline values. Every field is optional (absent or null = unknown, handled by the "
                 "model as its card describes), except that each outcome requested needs its baselines: "
                 + needs_summary(needs) + ". A request lacking them is refused (422) naming each missing baseline "
                 "and the outcomes that need it; in a batch only that patient is left unscored (as for any other "
                 "bad field of a patient in a batch)."),
        **fields,
    )

    comparator_t = Literal[tuple(scorer.comparators)]  # type: ignore[valid-type]
    outcome_t = Literal[tuple(scorer.outcomes)]  # type: ignore[valid-type]
    act = (getattr(scorer, "labels", None) or {}).get("intervention", "the intervention")
    comparator_field = Field(..., description=f"The alternative to {act} to compare with.",
                             examples=[scorer.comparators[0]])
    outcomes_field = Field(default=None, min_length=1,
                           description="Outcomes to predict (default: all the model has).",
                           examples=[list(scorer.outcomes)])

    def _unique(cls, v):  # noqa: ANN001 - pydantic validator
        if v is not None and len(set(v)) != len(v):
            raise ValueError("an outcome is listed twice")
        return v

    validators = {"unique_outcomes": field_validator("outcomes")(_unique)}
    comparator_example = "usual_care" if "usual_care" in scorer.comparators else scorer.comparators[0]
    score = create_model(
        "ScoreRequest",
        __config__=ConfigDict(extra="forbid", json_schema_extra={
            "examples": [{"patient": example, "comparator": comparator_example}]}),
        __doc__="Score one patient against one comparator.",
        __validators__=validators,
        patient=(patient, Field(..., description="The patient's baseline values.")),
        comparator=(comparator_t, comparator_field),
        outcomes=(list[outcome_t] | None, outcomes_field),
    )
    batch_patients = [example, {k: v for k, v in example.items() if k in scorer.baselines}]
    batch = create_model(
        "BatchScoreRequest",
        __config__=ConfigDict(extra="forbid", json_schema_extra={
            "examples": [{"patients": batch_patients, "comparator": comparator_example}]}),
        __doc__=f"Score up to {max_batch} patients against one comparator; results come in the same order.",
        __validators__=validators,
        # Each patient is checked on its own by the route (serving/batch.py: a bad patient is left
        # unscored, not the batch); the document shows the Patient schema all the same.
        patients=(Annotated[list[Any], WithJsonSchema({
            "type": "array", "items": {"$ref": "#/components/schemas/Patient"}, "minItems": 1,
            "maxItems": max_batch, "title": "Patients",
            "description": f"1 to {max_batch} patients. A patient with a bad field (unknown, wrong type, outside "
                           "its range, not an allowed value, a needed baseline missing) does not fail the batch: "
                           "its result is null and not_scored names the problems."})],
                  Field(..., min_length=1, max_length=max_batch)),
        comparator=(comparator_t, comparator_field),
        outcomes=(list[outcome_t] | None, outcomes_field),
    )

    model_id = str(scorer.manifest.get("model_id"))
    warn = SYNTHETIC_WARNING if is_synthetic(scorer.manifest) else None
    # The response examples are real: the example request (above) scored by the loaded model, in
    # the envelope the score routes add (tests compare them with /v1/score's answer).
    results = example_results(scorer, batch_patients, comparator_example)
    one: dict[str, Any] = {"model_id": model_id, "comparator": comparator_example}
    if warn:
        one["synthetic_data_warning"] = warn
    many = dict(one)
    result = results[0] if results else None
    one["result"], many["results"] = result, results
    warned = warned_body(results) if results else None
    if warned is not None:
        many["warned"] = warned
    result_doc = (f"Per-patient result: predicted outcomes under {act} (key 'intervention') and the comparator, "
                  f"the benefit (continuous outcomes: comparator minus intervention on 0-100 scales; binary outcomes: "
                  f"the difference in the probability of the good result; positive favours {act}) with confidence and "
                  "prediction intervals, the factors that moved it most, how missing inputs were handled, "
                  "and warnings.")
    warn_field = Field(default=None, description="Present (and must be shown to users) when the model was "
                                                 "trained on synthetic data.")
    score_response = create_model(
        "ScoreResponse", __config__=ConfigDict(json_schema_extra={"examples": [one]} if result else None),
        model_id=(str, ...), comparator=(str, ...),
        synthetic_data_warning=(str | None, warn_field),
        result=(dict[str, Any], Field(..., description=result_doc)),
    )
    batch_response = create_model(
        "BatchScoreResponse", __config__=ConfigDict(json_schema_extra={"examples": [many]} if result else None),
        model_id=(str, ...), comparator=(str, ...),
        synthetic_data_warning=(str | None, warn_field),
        results=(list[dict[str, Any] | None], Field(..., description="One result per patient, in request order "
                                                    "(null for a patient left unscored, see not_scored). " + result_doc)),
        not_scored=(dict[str, Any] | None, Field(default=None, description=(
            "Present when some patients were left unscored (their results are null): 'count' (patients), "
            "'by_reason' (patients per reason: missing_baseline, unknown_field, wrong_type, out_of_range, "
            "not_allowed_value, invalid), and 'message' and 'detail' as in a 422 body: each item names the field "
            "('patients[3].age'), its patient_index, type and msg (a missing baseline also the 'outcomes' that "
            "need it). The other patients are scored exactly as they would be alone."))),
        warned=(dict[str, Any] | None, Field(default=None, description=(
            "Present when some scored patients carry warnings about their own inputs (values the schema accepts "
            "but few training participants had): 'count' (patients) and 'by_kind' (patients per kind: "
            "outside_training_range, rare_patient, little_data, rare_level, mostly_imputed, outside_scale); each result's "
            "'warnings' has the text."))),
    )
    model_info = create_model(
        "ModelInfo",
        model_id=(str, ...),
        synthetic=(bool, Field(..., description="True when the model was trained on synthetic data.")),
        synthetic_data_warning=(str | None, warn_field),
        baselines=(list[str], ...), comparators=(list[str], ...), outcomes=(list[str], ...),
        network_comparators=(list[dict[str, Any]], Field([], description="Every comparator node of the treatment "
                                                          "network: evidence vs the intervention ('direct' or 'indirect only', "
                                                          "per task with trials and participants) and scored_by "
                                                          "('learner' or 'ipd_network').")),
        covariates=(list[dict[str, Any]], Field(..., description="The feature schema: name, type, label, unit, "
                                                 "range, categories.")),
        limits=(dict[str, int], Field(..., description="max_batch and max_body_bytes of this server.")),
        scoring=(dict[str, Any], Field({}, description="How this server computes scores: 'compiled' (the compiled "
                                         "program scores requests) or 'reference' (numpy reference functions: same "
                                         "numbers, slower), 'kernels' (why the compiled kernels are unavailable, if "
                                         "they are) and 'programs' (per comparator scored so far: 'compiled' or "
                                         "'not compiled: <why>').")),
        manifest=(dict[str, Any], Field(..., description="The artifact manifest.")),
        card=(dict[str, Any], Field(..., description="The model card as JSON.")),
    )
    examples = {"ScoreResponse": one, "BatchScoreResponse": many} if results else {}
    return RequestModels(patient, score, batch, score_response, batch_response, model_info, hints, needs, example,
                         examples)
