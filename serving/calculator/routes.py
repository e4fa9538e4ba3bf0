"""Routes of the web calculator: the page (``/``, ``/calculator``), its assets, its own scoring
endpoint (``POST /calculator/score``, same request/response as ``/v1/score``) and the model card.

Access is on the same terms as the API: with no API keys configured, loopback clients only (unless
``LBP_ALLOW_UNAUTHENTICATED``); with keys, a key is needed for every calculator route, sent as
``X-API-Key``, ``Authorization: Bearer`` or — so that a browser can open the page — HTTP Basic with
the key as the password (the browser asks for it once and resends it to this origin only).

Note: no ``from __future__ import annotations``: the score endpoint is annotated with the request
model generated at app creation, which FastAPI must see as a class.
"""
import base64
import binascii
from importlib import resources

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from serving.auth import check_loopback_or_allowed, key_matches
from serving.calculator import page
from serving.routes.score import score_response
from serving.schemas import RequestModels
from serving.scoring import ScoringService

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
           "Cache-Control": "no-store"}
ASSETS = {"calculator.js": "text/javascript; charset=utf-8", "calculator.css": "text/css; charset=utf-8",
          "icon.svg": "image/svg+xml"}
REALM = 'Basic realm="lbp-benefit calculator (password: an API key)", charset="UTF-8"'


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


async def calculator_guard(request: Request) -> None:
    """The API's access rule, with HTTP Basic (password = API key) also accepted for browsers."""
    settings = request.app.state.settings
    if not settings.auth_enabled:
        check_loopback_or_allowed(request)
        return
    presented = _presented_key(request)
    if not presented or not key_matches(presented, settings.api_key_list):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="an API key is required for the calculator",
                            headers={"WWW-Authenticate": REALM})


def _asset(name: str) -> bytes:
    return resources.files("serving.calculator").joinpath("static", name).read_bytes()


def build_router(models: RequestModels, scorer) -> APIRouter:
    """The calculator's routes for ``scorer`` (the page is rendered once: the model never changes)."""
    html = page.render(scorer)
    assets = {name: _asset(name) for name in ASSETS}
    router = APIRouter(dependencies=[Depends(calculator_guard)], include_in_schema=False)
    ScoreRequest = models.score

    def calculator_page() -> HTMLResponse:
        return HTMLResponse(html, headers=HEADERS)

    def asset(name: str) -> Response:
        if name not in assets:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such file")
        return Response(assets[name], media_type=ASSETS[name],
                        headers={**HEADERS, "Cache-Control": "no-cache"})

    def calculator_score(request: Request, body: ScoreRequest) -> JSONResponse:  # type: ignore[valid-type]
        # Every outcome the baselines entered allow (the scorer's rule, through serving.requirements);
        # the answer's not_predicted names the others and the baseline each needs. With no outcome
        # allowed, every outcome is requested, so the 422 names each missing baseline.
        patient = ScoringService.patient_inputs(body.patient)
        lacking = {} if body.outcomes else models.needs.lacking(patient) if models.needs else {}
        allowed = [o for o in scorer.outcomes if o not in lacking]
        outcomes = body.outcomes or (allowed if lacking and allowed else None)
        extra = ({"not_predicted": [{"outcome": o, "needs": names} for o, names in lacking.items()]}
                 if lacking and allowed else None)
        return score_response(request, "/calculator/score", [patient], body.comparator, outcomes, batch=False,
                              headers={"Cache-Control": "no-store"}, extra=extra)

    def model_card(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.app.state.scorer.card_markdown, headers=HEADERS)

    def json_only(request: Request) -> None:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail="send application/json")

    router.add_api_route("/", calculator_page, methods=["GET"], response_class=HTMLResponse)
    router.add_api_route("/calculator", calculator_page, methods=["GET"], response_class=HTMLResponse)
    router.add_api_route("/calculator/static/{name}", asset, methods=["GET"])
    router.add_api_route("/calculator/score", calculator_score, methods=["POST"], response_model=None,
                         dependencies=[Depends(json_only)])
    router.add_api_route("/calculator/model-card", model_card, methods=["GET"], response_class=PlainTextResponse)
    return router
