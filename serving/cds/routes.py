"""CDS Hooks endpoints: ``GET /cds-services`` (discovery) and ``POST /cds-services/{id}``.

Every call, discovery included, is authenticated by the CDS client's JWT (``jwt_auth``); with no
trusted issuer configured every call gets 401 and the log says how to configure one. The service
reads only the prefetched resources (it never queries ``fhirServer``): if the prefetch keys it
needs are absent the answer is 412 with an OperationOutcome, as the specification allows.
"""
from __future__ import annotations

import json
import logging
from datetime import date, datetime, timezone
from typing import Callable

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from predict.errors import LbpError
from serving.cds import cards
from serving.cds.codes import Registry, load_registry
from serving.cds.fhir_map import MapResult, map_prefetch
from serving.cds.jwt_auth import CdsAuthError, CdsJwtVerifier, load_trusted_issuers
from serving.errors import validation_body
from serving.interface import ScorerLike, is_synthetic
from serving.logs import LOGGER, request_id_of
from serving.schemas import SYNTHETIC_WARNING
from serving.scoring import ScoringFailed, ScoringRefused, ScoringService
from serving.settings import ServingSettings

log = logging.getLogger(LOGGER)

SERVICE_ID = "lbp-exercise-benefit"
REFERRAL_ID = "lbp-exercise-benefit-referral"
HOOKS = {SERVICE_ID: "patient-view", REFERRAL_ID: "order-select"}
REQUIRED_PREFETCH = "patient"
SCORE_PREFETCH = ("observations", "questionnaires")
HOW_TO_CONFIGURE = ("set LBP_CDS_TRUSTED_ISSUERS to a JSON or YAML file mapping each CDS client's issuer (iss) to "
                    "its public keys (PEM files or a JWKS file), and LBP_CDS_BASE_URL to this service's public base "
                    "URL; see docs/cds-hooks.md")


class CdsRequest(BaseModel):
    """A CDS Hooks service request (the fields this service reads; others are allowed and ignored)."""
    model_config = ConfigDict(extra="allow")
    hook: str = Field(min_length=1)
    hookInstance: str = Field(min_length=1)
    fhirServer: str | None = None
    fhirAuthorization: dict | None = None
    context: dict
    prefetch: dict | None = None


def _prefetch_templates(reg: Registry) -> dict[str, str]:
    pid = "{{context.patientId}}"
    obs = ",".join(f"{c.system}|{c.code}" for e in reg.observations for c in e.codes)
    cond = ",".join(f"{c.system}|{c.code}" for e in reg.conditions for c in e.codes)
    out = {"patient": f"Patient/{pid}",
           "observations": f"Observation?patient={pid}&code={obs}&_sort=-date",
           "conditions": f"Condition?patient={pid}&code={cond}",
           "medications": f"MedicationStatement?patient={pid}&status=active"}
    urls = [u for q in reg.questionnaires for u in q.urls]
    if urls:
        out["questionnaires"] = f"QuestionnaireResponse?patient={pid}&questionnaire={','.join(urls)}&_sort=-authored"
    return out


def discovery_document(reg: Registry, synthetic: bool) -> dict:
    note = " Trained on synthetic (simulated) data: not for clinical use." if synthetic else ""
    prefetch = _prefetch_templates(reg)
    base = ("Predicted individual benefit of exercise therapy for low back pain versus other care, with 95% "
            "intervals, from a model of pooled randomised-trial data." + note)
    return {"services": [
        {"hook": "patient-view", "id": SERVICE_ID, "title": "Exercise therapy benefit (low back pain)",
         "description": base, "prefetch": prefetch,
         "usageRequirements": "Needs a recent baseline pain score (0-10 NRS) and a disability score (Oswestry or "
                              "Roland-Morris) for the patient; see the service documentation for the codes."},
        {"hook": "order-select", "id": REFERRAL_ID, "title": "Exercise therapy benefit for a physiotherapy referral",
         "description": base + " Answers when a physiotherapy or exercise-therapy ServiceRequest is selected.",
         "prefetch": prefetch},
    ]}


def pick_comparator(scorer: ScorerLike, configured: str | None) -> str:
    if configured:
        if configured not in scorer.comparators:
            raise LbpError(f"LBP_CDS_COMPARATOR={configured} is not one of the model's comparators: "
                           f"{', '.join(scorer.comparators)}")
        return configured
    return "usual_care" if "usual_care" in scorer.comparators else scorer.comparators[0]


def _is_referral(ctx: dict, reg: Registry) -> bool:
    """True if a selected draft order is a ServiceRequest with a registry referral code."""
    selections = ctx.get("selections") or []
    draft = ctx.get("draftOrders") or {}
    codes = {c.key for c in reg.referrals}
    for e in draft.get("entry") or [] if isinstance(draft, dict) else []:
        r = e.get("resource") if isinstance(e, dict) else None
        if not isinstance(r, dict) or r.get("resourceType") != "ServiceRequest":
            continue
        if f"ServiceRequest/{r.get('id')}" not in selections:
            continue
        if any((c.get("system"), c.get("code")) in codes for c in (r.get("code") or {}).get("coding") or []
               if isinstance(c, dict)):
            return True
    return False


def _precondition_failed(missing: list[str]) -> JSONResponse:
    text = (f"prefetch lacks {', '.join(missing)}: this service reads only prefetched data and does not query "
            "fhirServer; send the prefetch templates from GET /cds-services")
    return JSONResponse(status_code=412, content={"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "required", "diagnostics": text}]})


class _Service:
    """The state of the CDS endpoints for one loaded model."""

    def __init__(self, scoring: ScoringService, settings: ServingSettings, today: Callable[[], date] | None):
        self.scoring, self.settings = scoring, settings
        self.scorer = scorer = scoring.scorer
        self.registry = load_registry(settings.cds_codes)
        issuers = load_trusted_issuers(settings.cds_trusted_issuers) if settings.cds_trusted_issuers else {}
        self.verifier = CdsJwtVerifier(issuers)
        self.comparator = pick_comparator(scorer, settings.cds_comparator)
        self.comparators = [self.comparator] + [c for c in scorer.comparators if c != self.comparator]
        self.synthetic = is_synthetic(scorer.manifest)
        self.today = today or (lambda: datetime.now(timezone.utc).date())
        self.labels = {c.name: c.label or c.name for c in scorer.schema}
        self.labels.update({"baseline_pain": "Baseline pain (0-100)", "baseline_function": "Baseline function (0-100)"})
        if not issuers:
            log.warning("CDS Hooks endpoints refuse every call (401): no trusted CDS client; " + HOW_TO_CONFIGURE)

    def base_url(self, request: Request) -> str:
        return (self.settings.cds_base_url or str(request.base_url)).rstrip("/")

    def authenticate(self, request: Request) -> None:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        service_id = request.path_params.get("service_id")
        audience = self.base_url(request) + "/cds-services" + (f"/{service_id}" if service_id else "")
        try:
            self.verifier.verify(token.strip() if scheme.lower() == "bearer" else None, audience)
        except CdsAuthError as exc:
            extra = {"request_id": request_id_of(request.scope), "route": "/cds-services", "reason": exc.reason}
            if exc.reason == "no_trusted_issuer":
                log.warning("CDS Hooks call refused: no trusted CDS client; " + HOW_TO_CONFIGURE, extra=extra)
            else:
                log.warning("CDS Hooks call refused", extra=extra)
            raise HTTPException(status_code=401, detail=str(exc),
                                headers={"WWW-Authenticate": 'Bearer realm="cds-services"'}) from exc

    def how_to_fix(self, missing: list[str]) -> list[str]:
        lines = []
        for feature in missing:
            codes = [f"{e.label} ({', '.join(f'{c.system}|{c.code}' for c in e.codes)})"
                     for e in self.registry.observations if e.feature == feature]
            codes += [f"{q.label} (QuestionnaireResponse {', '.join(q.urls)})"
                      for q in self.registry.questionnaires if q.feature == feature]
            lines.append(f"{cards.md(self.labels.get(feature, feature))}: record one of " + "; ".join(cards.md(c) for c in codes))
        return lines

    def card(self, mapped: MapResult, card_url: str, route: str, request_id: str | None) -> dict:
        source = cards.source_of(self.scoring.model_id, self.synthetic, card_url)
        missing = [b for b in self.scorer.baselines if b not in mapped.inputs]
        if missing:
            reason = "baseline " + " and ".join(m.replace("baseline_", "") for m in missing) + " score missing"
            self.scoring.count_invalid(route, request_id, len(missing), "MissingBaseline")
            return cards.unavailable_card(reason, mapped, self.labels, source, self.synthetic, SYNTHETIC_WARNING,
                                          self.how_to_fix(missing))
        try:
            # The same checks, metrics and logs as /v1/score: the request model, then the scorer.
            inputs = self.scoring.check_patient(dict(mapped.inputs), endpoint=route, request_id=request_id)
            scored = self.scoring.score_comparators([inputs], self.comparators, endpoint=route, request_id=request_id)
        except ScoringRefused as exc:
            problems = [f"{p.column}: {p.message}" if p.column else p.message for p in exc.problems]
            return cards.unavailable_card("the model refused the inputs", mapped, self.labels, source,
                                          self.synthetic, SYNTHETIC_WARNING, [cards.md(p) for p in problems])
        results = {c: scored[c][0] for c in self.comparators}
        return cards.prediction_card(results, self.comparators, mapped, self.labels, source, self.synthetic,
                                     SYNTHETIC_WARNING)


def build_router(scoring: ScoringService, settings: ServingSettings,
                 today: Callable[[], date] | None = None) -> APIRouter:
    """The CDS Hooks router for the app's scoring service; raises :class:`LbpError` on a bad registry,
    issuers file or comparator."""
    svc = _Service(scoring, settings, today)
    scorer = scoring.scorer
    router = APIRouter(prefix="/cds-services", tags=["CDS Hooks"], dependencies=[Depends(svc.authenticate)])
    refused = {401: {"description": "Missing, expired, replayed or untrusted CDS client JWT (or none trusted)."}}

    def discovery(request: Request) -> dict:
        return discovery_document(svc.registry, svc.synthetic)

    async def call(request: Request, service_id: str) -> JSONResponse:
        if service_id not in HOOKS:
            return JSONResponse(status_code=404, content={"detail": f"no CDS service '{service_id}'"})
        try:
            body = CdsRequest.model_validate(json.loads(await request.body()))
        except (ValueError, ValidationError) as exc:
            errors = exc.errors() if isinstance(exc, ValidationError) else [
                {"loc": (), "type": "json_invalid", "msg": "the body is not valid JSON"}]
            errors = [{**e, "loc": ("body", *e.get("loc", ()))} for e in errors]
            return JSONResponse(status_code=422, content=validation_body(errors, {}, 1))
        problems = []
        if body.hook != HOOKS[service_id]:
            problems.append({"loc": ("body", "hook"), "type": "value_error",
                             "msg": f"service {service_id} answers the '{HOOKS[service_id]}' hook"})
        if not isinstance(body.context.get("patientId"), str) or not body.context.get("patientId"):
            problems.append({"loc": ("body", "context", "patientId"), "type": "missing",
                             "msg": "context.patientId (a string) is required"})
        if problems:
            return JSONResponse(status_code=422, content=validation_body(problems, {}, 1))
        prefetch = body.prefetch or {}
        missing = [k for k in (REQUIRED_PREFETCH,) if k not in prefetch]
        if not any(k in prefetch for k in SCORE_PREFETCH):
            missing.append(" or ".join(f"'{k}'" for k in SCORE_PREFETCH))
        if missing:
            return _precondition_failed([m if m.startswith("'") else f"'{m}'" for m in missing])
        if service_id == REFERRAL_ID and not _is_referral(body.context, svc.registry):
            return JSONResponse({"cards": []})
        card_url = svc.base_url(request) + "/v1/model/card"
        rid = request_id_of(request.scope)
        route = f"/cds-services/{service_id}"

        def work() -> dict:
            mapped = map_prefetch(prefetch, body.context["patientId"], svc.registry, scorer.schema,
                                  list(scorer.baselines), svc.today())
            return svc.card(mapped, card_url, route, rid)

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

    router.add_api_route("", discovery, methods=["GET"], summary="CDS Hooks discovery", responses=refused)
    router.add_api_route("/{service_id}", call, methods=["POST"], summary="Call a CDS service (CDS Hooks request)",
                         responses={**refused, 404: {"description": "Unknown service id."},
                                    412: {"description": "Required prefetch missing (OperationOutcome)."},
                                    422: {"description": "Not a valid CDS Hooks request for this service."}},
                         openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                             "schema": CdsRequest.model_json_schema()}}}})
    return router
