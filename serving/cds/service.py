"""The state of the CDS Hooks endpoints for one loaded model, and the card for one mapped record.

Decisions before scoring (docs/cds-hooks.md):

* a resource of another patient anywhere in the data → no prediction, a card that says so;
* a Patient whose record says they have died (``deceasedBoolean`` true or a ``deceasedDateTime``)
  → no prediction, and the card says why;
* a baseline missing because the prefetch key that carries it could not be fetched → no prediction,
  and the card says the record could not be read (it does not ask to *record* scores that may exist);
* otherwise every outcome the record's baselines allow is scored versus every comparator (which
  baselines an outcome needs is the scorer's rule, ``Scorer.requirement``, asked through
  :class:`serving.requirements.OutcomeNeeds`: pain its pain score, function its function
  questionnaire, recovery at least one of them); the card names each outcome it could not predict,
  the baseline it needs and the codes to record it; a baseline no scored outcome needs is imputed
  and listed among the missing inputs, like any other;
* no outcome allowed (e.g. neither baseline recorded) → no prediction, the codes to record.

Every card carries a ``uuid`` (the feedback endpoint refers to it) and the machine-readable input
account (``inputs_report``) as its ``extension``; the card and its predicted-benefit band are
recorded in the feedback store when issued.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Callable

from fastapi import HTTPException, Request

from predict.errors import LbpError
from serving.cds import cards, inputs_report
from serving.cds.codes import load_registry
from serving.cds.config_report import startup_summary
from serving.cds.discovery import prefetch_templates
from serving.cds.feedback import NO_PREDICTION, FeedbackStore, band_of, parse_edges, summary_benefit
from serving.cds.fhir_map import MapResult
from serving.cds.jwt_auth import CdsAuthError, CdsJwtVerifier, load_trusted_issuers
from serving.interface import ScorerLike, is_synthetic
from serving.scoring import ScoringRefused, ScoringService
from serving.logs import LOGGER, request_id_of
from serving.requirements import OutcomeNeeds
from serving.schemas import SYNTHETIC_WARNING
from serving.settings import ServingSettings

log = logging.getLogger(LOGGER)

HOW_TO_CONFIGURE = ("set LBP_CDS_TRUSTED_ISSUERS to a JSON or YAML file mapping each CDS client's issuer (iss) to "
                    "its public keys (PEM files or a JWKS file), and LBP_CDS_BASE_URL to this service's public base "
                    "URL; see docs/cds-hooks.md")


def pick_comparator(scorer: ScorerLike, configured: str | None) -> str:
    if configured:
        if configured not in scorer.comparators:
            raise LbpError(f"LBP_CDS_COMPARATOR={configured} is not one of the model's comparators: "
                           f"{', '.join(scorer.comparators)}")
        return configured
    return "usual_care" if "usual_care" in scorer.comparators else scorer.comparators[0]


@dataclass
class Issued:
    card: dict
    band: str
    outcome: str | None = None  # the task key of the summary's benefit
    estimate: float | None = None


class CdsService:
    """Registry, JWT verifier, comparators, feedback store and card building for one model."""

    def __init__(self, scoring: ScoringService, settings: ServingSettings, today: Callable[[], date] | None):
        self.scoring, self.settings = scoring, settings
        self.scorer = scorer = scoring.scorer
        self.registry = load_registry(settings.cds_codes)
        issuers = load_trusted_issuers(settings.cds_trusted_issuers) if settings.cds_trusted_issuers else {}
        self.verifier = CdsJwtVerifier(issuers)
        self.comparator = pick_comparator(scorer, settings.cds_comparator)
        self.comparators = [self.comparator] + [c for c in scorer.comparators if c != self.comparator]
        self.synthetic = is_synthetic(scorer.manifest)
        self.needs = scoring.models.needs or OutcomeNeeds.of(scorer)
        self.today = today or (lambda: datetime.now(timezone.utc).date())
        self.labels = {c.name: c.label or c.name for c in scorer.schema}
        self.labels.update({"baseline_pain": "Baseline pain (0-100)", "baseline_function": "Baseline function (0-100)"})
        self.names = list(scorer.baselines) + [n for n in scorer.schema.names if n not in scorer.baselines]
        self.units = {b: "0-100" for b in scorer.baselines}
        self.units.update({c.name: c.unit or ("0/1" if c.type == "binary" else None) for c in scorer.schema})
        self.templates = prefetch_templates(self.registry)
        self.slots = inputs_report.feature_slots(self.registry)
        try:
            self.edges = parse_edges(settings.cds_band_edges)
        except ValueError as exc:
            raise LbpError(f"LBP_CDS_BAND_EDGES={settings.cds_band_edges}: {exc}") from None
        self.store = FeedbackStore(settings.cds_feedback_db)
        self.fhir_servers = [s.strip() for s in settings.cds_fhir_servers.split(",") if s.strip()]
        log.info(startup_summary(settings, self.registry, issuers, self.store.url))
        if not issuers:
            log.warning("CDS Hooks endpoints refuse every call (401): no trusted CDS client; " + HOW_TO_CONFIGURE)

    # ------------------------------------------------------------------ HTTP helpers
    def base_url(self, request: Request) -> str:
        return (self.settings.cds_base_url or str(request.base_url)).rstrip("/")

    def authenticate(self, request: Request) -> None:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        service_id = request.path_params.get("service_id")
        audience = self.base_url(request) + "/cds-services" + (f"/{service_id}" if service_id else "")
        if service_id and request.url.path.rstrip("/").endswith(f"/{service_id}/feedback"):
            audience += "/feedback"  # the JWT audience is the endpoint called
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

    # ------------------------------------------------------------------ cards
    def how_to_record(self, missing: list[str]) -> list[str]:
        lines = []
        for feature in missing:
            codes = [f"{e.label} ({', '.join(f'{c.system}|{c.code}' for c in e.codes)})"
                     for e in self.registry.observations if e.feature == feature]
            codes += [f"{q.label} (QuestionnaireResponse {', '.join(q.urls)})"
                      for q in self.registry.questionnaires if q.feature == feature]
            lines.append(f"{cards.md(self.labels.get(feature, feature))}: record one of " + "; ".join(cards.md(c) for c in codes))
        return lines

    def _not_predicted(self, lacking: dict[str, list[str]]) -> list[str]:
        """The card's lines for the outcomes the record does not allow: what each needs, then how to
        record it (empty when every outcome was predicted)."""
        if not lacking:
            return []
        lines = []
        for o, names in lacking.items():
            need = " or ".join(cards.md(self.labels.get(b, b)) for b in names)
            lines.append(f"{cards.md(cards.outcome_label(o))}: needs {need}, not in the record")
        needed = [b for b in self.scorer.baselines if any(b in v for v in lacking.values())]
        return lines + self.how_to_record(needed)

    def _outside_ages(self, mapped: MapResult) -> str | None:
        """The reason for no prediction when the record's age (from the Patient's birth date) is outside
        the ages the model accepts (the feature schema's range of ``age``: the population it is for),
        else None. Leaving such an age out and imputing an adult's would score a child as an adult."""
        if "age" not in self.scorer.schema or self.scorer.schema["age"].range is None:
            return None
        if not any(f.kind == "out_of_range" and f.feature == "age" for f in mapped.findings):
            return None
        lo, hi = self.scorer.schema["age"].range
        return f"the patient's age is outside the ages the model is for ({lo:g}-{hi:g} years)"

    def _baselines_reason(self, mapped: MapResult, missing: list[str]) -> str:
        """Why no outcome could be scored, per baseline: "not usable" when the record has a value the
        service could not use (out of range, wrong unit, too old, ...: listed under "Not used"),
        "missing" when it has none."""
        bad = {f.feature for f in mapped.findings}
        unusable = [m.replace("baseline_", "") for m in missing if m in bad]
        absent = [m.replace("baseline_", "") for m in missing if m not in bad]
        parts = []
        if unusable:
            parts.append("baseline " + " and ".join(unusable) + " score" + ("s" if len(unusable) > 1 else "") +
                         " in the record not usable (see below)")
        if absent:
            parts.append(("baseline " if not unusable else "") + " and ".join(absent) + " score missing")
        return "; ".join(parts)

    def _missing_line(self, mapped: MapResult) -> str:
        missing = [n for n in self.names if n not in mapped.inputs]
        names = ", ".join(cards.md(self.labels.get(n, n)) for n in missing) or "none"
        return f"All inputs missing ({len(missing)}): {names}"

    def _unavailable(self, mapped: MapResult, source: dict, reason: str, lines: list[str]) -> dict:
        lines = lines + [self._missing_line(mapped)]
        return cards.unavailable_card(reason, mapped, self.labels, source, self.synthetic, SYNTHETIC_WARNING, lines,
                                      today=self.today())

    def card(self, mapped: MapResult, card_url: str, route: str, request_id: str | None,
             fetched: list[str] | None = None) -> Issued:
        """The card for a mapped record, with its extension and its band. Scoring goes through the
        app's scoring service (the same checks, metrics and logs as ``/v1/score``)."""
        fetched = fetched or []
        source = cards.source_of(self.scoring.model_id, self.synthetic, card_url)
        missing = [b for b in self.scorer.baselines if b not in mapped.inputs]
        failed = {k: v for k, v in mapped.fetch_failed.items()
                  if any(k in self.slots.get(b, ()) for b in missing)}
        lacking = self.needs.lacking(mapped.inputs)  # outcome -> the baselines it needs and the record lacks
        scorable = [o for o in self.scorer.outcomes if o not in lacking]
        results, reason, outcome, estimate = None, None, None, None
        too_young_old = self._outside_ages(mapped)
        refuse = mapped.foreign or mapped.deceased or (missing and failed) or not scorable or too_young_old
        if refuse:
            self.scoring.count_invalid(route, request_id, max(1, len(missing)),
                                       "OtherPatient" if mapped.foreign else "Deceased" if mapped.deceased else
                                       "MissingBaseline" if (missing and failed) or not scorable else "OutsideAges")
        if mapped.deceased and not mapped.foreign:
            reason = "the record says the patient has died"
            card = self._unavailable(mapped, source, reason, [
                f"{cards.md(mapped.deceased)}. A benefit of exercise therapy is not predicted for a deceased patient; "
                "if this is wrong, correct the record."])
        elif mapped.foreign:
            reason = "the record holds another patient's data"
            shown = ", ".join(cards.md(r) for r in mapped.foreign[:10])
            card = self._unavailable(mapped, source, reason, [
                f"Resources of another patient than the one in context: {shown}. No input is used from a record "
                "that mixes patients: check the patient context and what the EHR sent."])
        elif missing and failed:
            reason = "the record could not be read (" + ", ".join(failed) + " fetch failed)"
            card = self._unavailable(mapped, source, reason, [
                f"The EHR could not fetch {cards.md(k)}: {cards.md(v)}. Baseline "
                f"{' and '.join(m.replace('baseline_', '') for m in missing)} scores may exist in the record; "
                "retry, or check the record directly." for k, v in failed.items()])
        elif not scorable:
            reason = self._baselines_reason(mapped, missing)
            card = self._unavailable(mapped, source, reason, self.how_to_record(missing))
        elif too_young_old:
            reason = too_young_old
            card = self._unavailable(mapped, source, reason, [
                "The trials behind the model enrolled no such patients: a prediction would rest on an age imputed "
                "from adults, so none is given."])
        else:
            try:
                # The same checks, metrics and logs as /v1/score: the request model, then the scorer.
                inputs = self.scoring.check_patient(dict(mapped.inputs), endpoint=route, request_id=request_id)
                scored = self.scoring.score_comparators([inputs], self.comparators, scorable if lacking else None,
                                                        endpoint=route, request_id=request_id)
                results = {c: scored[c][0] for c in self.comparators}
            except ScoringRefused as exc:
                problems = [p.brief() for p in exc.problems]
                reason = "the model refused the inputs"
                card = self._unavailable(mapped, source, reason, [cards.md(p) for p in problems])
            else:
                card = cards.prediction_card(results, self.comparators, mapped, self.labels, source, self.synthetic,
                                             SYNTHETIC_WARNING, self._not_predicted(lacking), today=self.today())
                outcome, estimate = summary_benefit(results[self.comparator])
        kind = ((results or {}).get(self.comparator, {}).get("outcomes") or {}).get(outcome, {}).get("outcome")
        band = NO_PREDICTION if results is None else band_of(estimate, kind, self.edges)
        card.setdefault("extension", {})[inputs_report.EXTENSION_KEY] = inputs_report.build(
            mapped, self.names, self.labels, self.slots, prediction=results is not None, reason=reason,
            band=band, fetched=fetched, units=self.units,
            not_predicted=lacking if results is not None else None)
        return Issued(card, band, outcome, estimate)

    def record(self, issued: Issued, service_id: str, request_id: str | None = None) -> bool:
        """Store the issued card's uuid and band (the feedback endpoint refers to the uuid). A database
        failure is logged and does not withhold the card (its feedback will count as unknown)."""
        try:
            self.store.record_card(issued.card["uuid"], service_id, self.scoring.model_id,
                                   issued.band, issued.outcome, issued.estimate)
        except Exception as exc:  # noqa: BLE001 - monitoring must not block care
            log.error("CDS card not recorded in the feedback store",
                      extra={"request_id": request_id, "route": f"/cds-services/{service_id}",
                             "error_type": type(exc).__name__})
            return False
        return True
