"""The one scoring service behind every route that scores: ``/v1/score``, ``/v1/score/batch``, the
web calculator (``/calculator/score``) and CDS Hooks (``/cds-services/{id}``).

:class:`ScoringService` holds the loaded scorer and the app's :class:`~serving.telemetry.Telemetry`.
Every score goes through :meth:`ScoringService.score`, so every route:

* checks the patients the same way: the request models generated from the feature schema
  (:mod:`serving.schemas`; the HTTP routes get this from FastAPI, CDS Hooks through
  :meth:`ScoringService.check_patient`) and then the scorer's own validation;
* counts the same metrics (``lbp_score_requests_total{endpoint,result}`` with result ``ok``,
  ``invalid`` or ``error``; ``lbp_patients_scored_total{endpoint,comparator}``);
* writes the same log lines (``scored``, ``invalid request``, ``scoring failed``), with counts and
  error types only, never values or messages (which may quote input).

Outcomes for a route: the results (plain JSON), :class:`ScoringRefused` (the model refused the
input; 422 for the API, an "unavailable" card for CDS Hooks) or :class:`ScoringFailed` (an
unexpected failure; 500 with the request id).
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

from pydantic import BaseModel, ValidationError

from predict.errors import LbpError, Problem, ValidationFailed
from serving.interface import ScorerLike, is_synthetic, to_jsonable
from serving.logs import LOGGER
from serving.schemas import SYNTHETIC_WARNING, RequestModels
from serving.telemetry import Telemetry

log = logging.getLogger(LOGGER)

# The HTTP routes whose bodies are patients (their 422s from the request models count as invalid scorings).
SCORING_ENDPOINTS = ("/v1/score", "/v1/score/batch", "/calculator/score")


class ScoringRefused(LbpError):
    """The input was refused (by the schema or by the scorer); ``problems`` name every bad field."""

    def __init__(self, cause: LbpError | ValidationError):
        self.cause = cause
        self.problems: list[Problem] = _problems(cause)
        super().__init__("; ".join(p.brief() for p in self.problems))


class ScoringFailed(Exception):
    """Scoring failed unexpectedly; ``error_type`` is the cause's type (its message is not kept)."""

    def __init__(self, error_type: str):
        self.error_type = error_type
        super().__init__(f"scoring failed ({error_type})")


def _problems(cause: LbpError | ValidationError) -> list[Problem]:
    if isinstance(cause, ValidationError):
        return [Problem(code=str(e.get("type", "invalid")), message=str(e.get("msg", "invalid")),
                        column=".".join(str(p) for p in e.get("loc", ())) or None) for e in cause.errors()]
    if isinstance(cause, ValidationFailed):
        return list(cause.errors)
    return [Problem(code="refused", message=str(cause))]


class ScoringService:
    """Validation, scoring, logs and metrics for one loaded model (one per app)."""

    def __init__(self, scorer: ScorerLike, models: RequestModels, telemetry: Telemetry):
        self.scorer = scorer
        self.models = models
        self.telemetry = telemetry
        self.model_id = str(scorer.manifest.get("model_id"))
        self.synthetic = is_synthetic(scorer.manifest)
        self._plain_json = getattr(scorer, "json_results", False) is True  # predict.Scorer: already plain JSON

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def patient_inputs(patient: BaseModel) -> dict:
        """A validated request patient as the scorer's input. Absent and null are the same: missing;
        the scorer sees only the values given."""
        return patient.model_dump(by_alias=True, exclude_none=True)

    def check_patient(self, inputs: dict, *, endpoint: str, request_id: str | None) -> dict:
        """Check inputs built outside an HTTP body (CDS Hooks) with the same request model as
        ``/v1/score``; raise :class:`ScoringRefused` naming every bad field (counted as invalid)."""
        try:
            return self.patient_inputs(self.models.patient.model_validate(inputs))
        except ValidationError as exc:
            refused = ScoringRefused(exc)
            self.count_invalid(endpoint, request_id, len(refused.problems), "ValidationError")
            raise refused from None

    # ------------------------------------------------------------------ scoring
    def score(self, patients: list[dict], comparator: str, outcomes: Sequence[str] | None = None, *,
              endpoint: str, request_id: str | None) -> list[dict]:
        """One plain-JSON result per patient, in order; counted and logged under ``endpoint``."""
        return self.score_comparators(patients, [comparator], outcomes, endpoint=endpoint,
                                      request_id=request_id)[comparator]

    def score_comparators(self, patients: list[dict], comparators: Sequence[str],
                          outcomes: Sequence[str] | None = None, *, endpoint: str,
                          request_id: str | None) -> dict[str, list[dict]]:
        """The patients scored against each comparator: one request in the metrics and logs."""
        wanted = list(outcomes) if outcomes else None
        extra = {"request_id": request_id, "route": endpoint, "model_id": self.model_id, "n_patients": len(patients)}
        out: dict[str, list[dict]] = {}
        try:
            for comparator in comparators:
                results = self.scorer.score(patients, comparator, wanted)
                if not isinstance(results, list) or len(results) != len(patients):
                    raise ScoringFailed("ResultCountMismatch")
                out[comparator] = results if self._plain_json else to_jsonable(results)
        except LbpError as exc:
            refused = ScoringRefused(exc)
            self.count_invalid(endpoint, request_id, len(refused.problems), type(exc).__name__)
            raise refused from None
        except Exception as exc:  # noqa: BLE001 - a service boundary; the message may quote input: not logged
            error_type = exc.error_type if isinstance(exc, ScoringFailed) else type(exc).__name__
            self.telemetry.count_score(endpoint, "error")
            log.error("scoring failed", extra={**extra, "error_type": error_type})
            raise ScoringFailed(error_type) from None
        self.telemetry.count_score(endpoint, "ok")
        for comparator in comparators:
            self.telemetry.count_scored(endpoint, comparator, len(patients))
        log.info("scored", extra=extra)
        return out

    def count_invalid(self, endpoint: str, request_id: str | None, n_errors: int, error_type: str) -> None:
        """Count and log a refused scoring request (only counts and types: values stay out of logs)."""
        self.telemetry.count_score(endpoint, "invalid")
        log.info("invalid request", extra={"request_id": request_id, "route": endpoint, "n_errors": n_errors,
                                           "error_type": error_type})

    def count_failure(self, endpoint: str, request_id: str | None, error_type: str) -> None:
        """Count and log a failure around scoring (e.g. reading a CDS prefetch), by type only."""
        self.telemetry.count_score(endpoint, "error")
        log.error("scoring failed", extra={"request_id": request_id, "route": endpoint, "model_id": self.model_id,
                                           "error_type": error_type})

    # ------------------------------------------------------------------ responses
    def envelope(self, comparator: str) -> dict[str, Any]:
        """What every score response carries besides the results."""
        out: dict[str, Any] = {"model_id": self.model_id, "comparator": comparator}
        if self.synthetic:
            out["synthetic_data_warning"] = SYNTHETIC_WARNING
        return out
