"""What the loaded model is: manifest, card, feature schema (``/v1/model``, ``/v1/model/card``)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from serving.interface import is_synthetic, to_jsonable
from serving.schemas import SYNTHETIC_WARNING, RequestModels


def build_router(models: RequestModels, dependencies: list, public_card: bool = False) -> APIRouter:
    """``public_card``: serve ``/v1/model/card`` without the guard (it holds no patient data; links
    from CDS Hooks cards and the calculator then open in any clinician's browser)."""
    router = APIRouter(tags=["model"])

    def model_info(request: Request) -> dict:
        state = request.app.state
        scorer = state.scorer
        synthetic = is_synthetic(scorer.manifest)
        return {
            "model_id": state.model_id,
            "synthetic": synthetic,
            "synthetic_data_warning": SYNTHETIC_WARNING if synthetic else None,
            "baselines": list(scorer.baselines),
            "comparators": list(scorer.comparators),
            # every network node with its evidence type (direct / indirect only) and the model that scores it
            "network_comparators": to_jsonable(list(getattr(scorer, "network_comparators", None) or [])),
            "outcomes": list(scorer.outcomes),
            "covariates": scorer.schema.to_list(),
            "limits": {"max_batch": state.settings.max_batch, "max_body_bytes": state.settings.max_body_bytes},
            "scoring": to_jsonable(scorer.scoring_status()) if hasattr(scorer, "scoring_status") else {},
            "manifest": to_jsonable(scorer.manifest),
            "card": to_jsonable(scorer.card),
        }

    def model_card(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.app.state.scorer.card_markdown, media_type="text/markdown; charset=utf-8")

    router.add_api_route("/v1/model", model_info, methods=["GET"], response_model=models.model_info,
                         summary="The model: manifest, card and feature schema as JSON", dependencies=dependencies)
    router.add_api_route("/v1/model/card", model_card, methods=["GET"], response_class=PlainTextResponse,
                         summary="The rendered model card (Markdown)", responses={200: {"content": {"text/markdown": {}}}},
                         dependencies=[] if public_card else dependencies)
    return router
