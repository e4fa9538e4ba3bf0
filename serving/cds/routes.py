"""CDS Hooks endpoints: ``GET /cds-services`` (discovery), ``POST /cds-services/{id}`` (a hook call)
and ``POST /cds-services/{id}/feedback`` (CDS Hooks 2.0 feedback); plus the monitoring route
``GET /v1/monitoring/cds-feedback`` (override rate by predicted-benefit band, behind the API key).

Every CDS Hooks call, discovery and feedback included, is authenticated by the CDS client's JWT
(``jwt_auth``; audience = the endpoint called). Prefetch keys the request lacks are fetched from
``fhirServer`` when the request carries ``fhirServer`` and ``fhirAuthorization`` (``fhir_fetch``);
without them, a request lacking ``patient`` or both score keys answers 412 with an OperationOutcome.
"""
from __future__ import annotations

import json
import logging
from datetime import date
from typing import Callable, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.concurrency import run_in_threadpool

from serving.cds.codes import canonical_system
from serving.cds.discovery import HOOKS, REFERRAL_ID, discovery_document
from serving.cds.fhir_fetch import fetch_missing, server_problem
from serving.cds.fhir_map import map_prefetch
from serving.cds.fhir_read import Finding
from serving.cds.service import CdsService
from serving.errors import validation_body
from serving.scoring import ScoringFailed, ScoringService
from serving.logs import LOGGER, request_id_of
from serving.settings import ServingSettings

log = logging.getLogger(LOGGER)

REQUIRED_PREFETCH = "patient"
SCORE_PREFETCH = ("observations", "questionnaires")
UUID = r"^(urn:uuid:)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class CdsRequest(BaseModel):
    """A CDS Hooks service request (the fields this service reads; others are allowed and ignored)."""
    model_config = ConfigDict(extra="allow")
    hook: str = Field(min_length=1)
    hookInstance: str = Field(min_length=1)
    fhirServer: str | None = None
    fhirAuthorization: dict | None = None
    context: dict
    prefetch: dict | None = None


class OverrideReason(BaseModel):
    model_config = ConfigDict(extra="allow")
    reason: dict | None = None  # a Coding
    userComment: str | None = Field(default=None, max_length=2000)


class FeedbackItem(BaseModel):
    """One CDS Hooks 2.0 Feedback entry."""
    model_config = ConfigDict(extra="allow")
    card: str = Field(pattern=UUID)
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[dict] | None = Field(default=None, max_length=100)
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")

    @model_validator(mode="after")
    def _consistent(self) -> "FeedbackItem":
        if self.outcome == "overridden" and self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions is only for an accepted card")
        if self.outcome == "accepted" and self.overrideReason is not None:
            raise ValueError("overrideReason is only for an overridden card")
        return self


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=100)


def _is_referral(ctx: dict, svc: CdsService) -> bool:
    """True if a selected draft order is a ServiceRequest with a registry referral code."""
    selections = ctx.get("selections") or []
    draft = ctx.get("draftOrders") or {}
    codes = {c.key for c in svc.registry.referrals}
    for e in draft.get("entry") or [] if isinstance(draft, dict) else []:
        r = e.get("resource") if isinstance(e, dict) else None
        if not isinstance(r, dict) or r.get("resourceType") != "ServiceRequest":
            continue
        if f"ServiceRequest/{r.get('id')}" not in selections:
            continue
        if any((canonical_system(c.get("system")), c.get("code")) in codes
               for c in (r.get("code") or {}).get("coding") or [] if isinstance(c, dict)):
            return True
    return False


def _precondition_failed(missing: list[str], why: str) -> JSONResponse:
    text = (f"prefetch lacks {', '.join(missing)} and the service cannot fetch it ({why}); send the prefetch "
            "templates from GET /cds-services, or fhirServer with fhirAuthorization")
    return JSONResponse(status_code=412, content={"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "required", "diagnostics": text}]})


def _invalid(errors: list[dict]) -> JSONResponse:
    return JSONResponse(status_code=422, content=validation_body(
        [{**e, "loc": ("body", *e.get("loc", ()))} for e in errors], {}, 1))


async def _service_body(request: Request, service_id: str, model: type[BaseModel]) -> BaseModel | JSONResponse:
    """The request body of CDS service ``service_id`` as ``model``, or the 404 / 422 answer."""
    if service_id not in HOOKS:
        return JSONResponse(status_code=404, content={"detail": f"no CDS service '{service_id}'"})
    return await _body(request, model)


async def _body(request: Request, model: type[BaseModel]) -> BaseModel | JSONResponse:
    try:
        return model.model_validate(json.loads(await request.body()))
    except (ValueError, ValidationError) as exc:
        errors = exc.errors(include_url=False, include_context=False) if isinstance(exc, ValidationError) else [
            {"loc": (), "type": "json_invalid", "msg": "the body is not valid JSON"}]
        return _invalid(errors)


def build_router(scoring: ScoringService, settings: ServingSettings,
                 today: Callable[[], date] | None = None) -> APIRouter:
    """The CDS Hooks router for the app's scoring service (its :class:`CdsService` is
    ``router.cds_service``); raises :class:`LbpError` on a bad registry, issuers file or comparator."""
    svc = CdsService(scoring, settings, today)
    scorer = scoring.scorer
    router = APIRouter(prefix="/cds-services", tags=["CDS Hooks"], dependencies=[Depends(svc.authenticate)])
    refused = {401: {"description": "Missing, expired, replayed or untrusted CDS client JWT (or none trusted)."}}

    def discovery(request: Request) -> dict:
        return discovery_document(svc.registry, svc.synthetic)

    async def call(request: Request, service_id: str) -> JSONResponse:
        body = await _service_body(request, service_id, CdsRequest)
        if isinstance(body, JSONResponse):
            return body
        problems = []
        if body.hook != HOOKS[service_id]:
            problems.append({"loc": ("hook",), "type": "value_error",
                             "msg": f"service {service_id} answers the '{HOOKS[service_id]}' hook"})
        pid = body.context.get("patientId")
        if not isinstance(pid, str) or not pid:
            problems.append({"loc": ("context", "patientId"), "type": "missing",
                             "msg": "context.patientId (a string) is required"})
        if problems:
            return _invalid(problems)
        if service_id == REFERRAL_ID and not _is_referral(body.context, svc):
            return JSONResponse({"cards": []})
        prefetch = dict(body.prefetch or {})
        absent = [k for k in svc.templates if k not in prefetch]
        fetched: list[str] = []
        why = "LBP_CDS_FHIR_FETCH is off" if not settings.cds_fhir_fetch else server_problem(
            body.fhirServer, body.fhirAuthorization, pid, svc.fhir_servers)
        if absent and why is None:
            prefetch.update(await fetch_missing(body.fhirServer, body.fhirAuthorization, pid, svc.templates, absent,
                                                settings.cds_fhir_timeout_s))
            fetched = absent
        missing = [f"'{k}'" for k in (REQUIRED_PREFETCH,) if k not in prefetch]
        if not any(k in prefetch for k in SCORE_PREFETCH):
            missing.append(" or ".join(f"'{k}'" for k in SCORE_PREFETCH))
        if missing:
            return _precondition_failed(missing, why or "unknown")
        card_url = svc.base_url(request) + "/v1/model/card"
        rid = request_id_of(request.scope)
        route = f"/cds-services/{service_id}"
        not_sent = {k: f"not sent by the CDS client and not fetched: {why}" for k in absent if k not in fetched}

        def work() -> dict:
            mapped = map_prefetch(prefetch, pid, svc.registry, scorer.schema, list(scorer.baselines), svc.today())
            for k, text in not_sent.items():
                mapped.fetch_failed[k] = text
                mapped.findings.append(Finding("not_sent", f"prefetch.{k}", text))
            issued = svc.card(mapped, card_url, route, rid, fetched)
            svc.record(issued, service_id, rid)
            return issued.card

        try:
            card = await run_in_threadpool(work)
        except ScoringFailed:  # counted and logged by the scoring service
            return JSONResponse(status_code=500, content={"detail": "the CDS service failed; quote the request id",
                                                          "request_id": rid})
        except Exception as exc:  # noqa: BLE001 - the HTTP boundary; messages may quote the record: not logged
            scoring.count_failure(route, rid, type(exc).__name__)
            return JSONResponse(status_code=500, content={"detail": "the CDS service failed; quote the request id",
                                                          "request_id": rid})
        return JSONResponse({"cards": [card]})

    async def feedback(request: Request, service_id: str) -> JSONResponse:
        body = await _service_body(request, service_id, FeedbackRequest)
        if isinstance(body, JSONResponse):
            return body
        items = [f.model_dump() for f in body.feedback]
        for f in items:
            f["card"] = f["card"].removeprefix("urn:uuid:").lower()
        rid = request_id_of(request.scope)
        try:
            known = await run_in_threadpool(svc.store.record_feedback, service_id, items)
        except Exception as exc:  # noqa: BLE001 - the database may be down; say so, never 500 silently
            log.error("CDS Hooks feedback not stored", extra={"request_id": rid, "route": "/cds-services/feedback",
                                                              "error_type": type(exc).__name__})
            return JSONResponse(status_code=503, content={"detail": "feedback could not be stored; retry later",
                                                          "request_id": rid})
        log.info("CDS Hooks feedback", extra={"request_id": rid, "route": "/cds-services/feedback",
                                              "n_patients": len(items)})
        return JSONResponse({"stored": len(items), "unknown_cards": len(items) - known})

    router.add_api_route("", discovery, methods=["GET"], summary="CDS Hooks discovery", responses=refused)
    router.add_api_route("/{service_id}", call, methods=["POST"], summary="Call a CDS service (CDS Hooks request)",
                         responses={**refused, 404: {"description": "Unknown service id."},
                                    412: {"description": "Required prefetch missing (OperationOutcome)."},
                                    422: {"description": "Not a valid CDS Hooks request for this service."}},
                         openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                             "schema": CdsRequest.model_json_schema()}}}})
    router.add_api_route("/{service_id}/feedback", feedback, methods=["POST"],
                         summary="CDS Hooks feedback: a card accepted or overridden",
                         responses={**refused, 404: {"description": "Unknown service id."},
                                    422: {"description": "Not a valid feedback request."},
                                    503: {"description": "The feedback database is unavailable."}},
                         openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                             "schema": FeedbackRequest.model_json_schema()}}}})
    router.cds_service = svc  # type: ignore[attr-defined]
    return router


def build_monitoring_router(svc: CdsService, dependencies: list) -> APIRouter:
    """``GET /v1/monitoring/cds-feedback``: cards issued, feedback and override rate (Wilson 95% CI)
    by predicted-benefit band, for the cards of the model in use (HTI-1 ongoing monitoring); same
    access terms as the model routes."""
    r = APIRouter(tags=["monitoring"], dependencies=dependencies)

    async def overrides() -> JSONResponse:
        try:
            stats = await run_in_threadpool(svc.store.override_rates, svc.edges, svc.scoring.model_id)
        except Exception as exc:  # noqa: BLE001
            log.error("CDS feedback statistics unavailable", extra={"error_type": type(exc).__name__})
            return JSONResponse(status_code=503, content={"detail": "the feedback database is unavailable"})
        return JSONResponse(stats)

    r.add_api_route("/v1/monitoring/cds-feedback", overrides, methods=["GET"],
                    summary="Override rate of CDS cards by predicted-benefit band",
                    responses={503: {"description": "The feedback database is unavailable."}})
    return r


def prometheus_text(svc: CdsService) -> str:
    """The override-rate metrics for ``/metrics`` ('' when the database is unavailable)."""
    try:
        return svc.store.prometheus(svc.edges, svc.scoring.model_id)
    except Exception as exc:  # noqa: BLE001 - /metrics must answer even without the feedback database
        log.error("CDS feedback metrics unavailable", extra={"error_type": type(exc).__name__})
        return ""
