"""What the CDS Hooks service loaded, and every configuration problem: the one-line start-up log
summary and ``lbp-benefit cds check-config``.

The report names issuers, key ids and algorithms, the code registry (shipped and site codes, local
codes), questionnaires, body-site groups, the feedback database (password masked) and the FHIR
fetch settings. Nothing secret is printed: keys are public keys, and a database password is masked.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from predict.errors import LbpError
from serving.cds.codes import Registry, load_registry
from serving.cds.feedback import FeedbackStore, default_url, parse_edges
from serving.cds.jwt_auth import TrustedKey, load_trusted_issuers
from serving.settings import ServingSettings

LOCAL_SYSTEMS = ("urn:lbp-benefit:cds",)
_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]*@")


def mask_url(url: str) -> str:
    return _PASSWORD.sub(r"\1***@", url)


def _key_text(k: TrustedKey) -> str:
    return f"kid {k.kid or '(any)'} [{'/'.join(k.algorithms)}]"


def _local_codes(reg: Registry) -> list[str]:
    shipped = load_registry()
    shipped_keys = {c.key for e in (*shipped.observations, *shipped.conditions) for c in e.codes}
    out = []
    for e in (*reg.observations, *reg.conditions):
        for c in e.codes:
            if c.system in LOCAL_SYSTEMS or c.key not in shipped_keys:
                out.append(f"{c.system}|{c.code} → {getattr(e, 'feature', None) or getattr(e, 'derive', None) or e.id}"
                           + ("" if c.key in shipped_keys else " (site)"))
    return out


def startup_summary(settings: ServingSettings, reg: Registry, issuers: dict[str, tuple[TrustedKey, ...]],
                    db_url: str) -> str:
    """One log line: what the CDS Hooks service loaded."""
    iss = "; ".join(f"{i} ({', '.join(_key_text(k) for k in keys)})" for i, keys in issuers.items()) or "none"
    qs = ", ".join(f"{q.id} [{q.instrument}] {' '.join(q.urls)}" for q in reg.questionnaires) or "none"
    return (f"CDS Hooks configuration: trusted issuers: {iss}; base URL: {settings.cds_base_url or '(request URL)'}; "
            f"codes: {len(reg.observations)} observation, {len(reg.conditions)} condition entries"
            f"{', site file ' + str(settings.cds_codes) if settings.cds_codes else ''}; local codes: "
            f"{', '.join(_local_codes(reg)) or 'none'}; questionnaires: {qs}; body sites: "
            f"{', '.join(f'{k} ({len(v)} codes)' for k, v in reg.body_sites.items()) or 'none'}; feedback database: "
            f"{mask_url(db_url)}; FHIR fetch: {'on' if settings.cds_fhir_fetch else 'off'}"
            f" (timeout {settings.cds_fhir_timeout_s:g} s, servers {settings.cds_fhir_servers or 'any https'})")


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)    # the service would not start, or refuses every call
    warnings: list[str] = field(default_factory=list)  # it starts, but something is probably wrong


def check_config(settings: ServingSettings, scorer: Any | None = None) -> Report:
    """Load everything the CDS Hooks service loads at start-up and report it and every problem."""
    rep = Report()
    issuers: dict[str, tuple[TrustedKey, ...]] = {}
    if settings.cds_trusted_issuers is None:
        rep.errors.append("LBP_CDS_TRUSTED_ISSUERS is not set: every CDS Hooks call is refused (401)")
    else:
        try:
            issuers = load_trusted_issuers(settings.cds_trusted_issuers)
        except LbpError as exc:
            rep.errors.append(str(exc))
    rep.lines.append(f"issuers file: {settings.cds_trusted_issuers or '(not set)'}")
    for iss, keys in issuers.items():
        rep.lines.append(f"  issuer {iss}: " + ", ".join(_key_text(k) for k in keys))
        if any(k.kid is None for k in keys):
            rep.warnings.append(f"issuer {iss}: a PEM key without a pinned kid accepts any kid; pin it with "
                                "{file: key.pem, kid: <kid>}")
    if settings.cds_base_url is None:
        rep.warnings.append("LBP_CDS_BASE_URL is not set: the JWT audience is built from the request URL, wrong "
                            "behind a proxy that rewrites the host or path")
    rep.lines.append(f"base URL: {settings.cds_base_url or '(request URL)'}")
    reg = None
    try:
        reg = load_registry(settings.cds_codes)
    except LbpError as exc:
        rep.errors.append(str(exc))
    if settings.cds_codes is not None and not Path(settings.cds_codes).is_file():
        rep.errors.append(f"LBP_CDS_CODES file {settings.cds_codes} does not exist")
    if reg is not None:
        _registry_lines(rep, reg, settings)
        if scorer is not None:
            _model_lines(rep, reg, scorer, settings)
    try:
        edges = parse_edges(settings.cds_band_edges)
        rep.lines.append(f"predicted-benefit band edges: {', '.join(f'{e:g}' for e in edges)}")
    except ValueError as exc:
        rep.errors.append(f"LBP_CDS_BAND_EDGES: {exc}")
    url = settings.cds_feedback_db or default_url()
    rep.lines.append(f"feedback database: {mask_url(url)}")
    store = FeedbackStore(url)
    if not store.exists() and not store.creatable():
        rep.errors.append(f"feedback database {mask_url(url)}: its folder cannot be created or written")
    elif not url.startswith("sqlite"):
        rep.lines.append("  (a database server: its driver must be installed; the tables are created on first use)")
    rep.lines.append(f"FHIR fetch: {'on' if settings.cds_fhir_fetch else 'off'}, timeout "
                     f"{settings.cds_fhir_timeout_s:g} s, servers: {settings.cds_fhir_servers or 'any https'}")
    return rep


def _registry_lines(rep: Report, reg: Registry, settings: ServingSettings) -> None:
    rep.lines.append(f"code registry: shipped codes.yaml{' + ' + str(settings.cds_codes) if settings.cds_codes else ''}")
    for e in reg.observations:
        codes = ", ".join(f"{c.system}|{c.code}" + (f" (max {c.max_age_days} d)" if c.max_age_days else "")
                          for c in e.codes)
        rep.lines.append(f"  observation {e.id} → {e.feature or e.derive} [{e.kind}"
                         f"{', ' + str(e.max_age_days) + ' d' if e.max_age_days else ''}"
                         f"{', body site ' + e.body_site if e.body_site else ''}]: {codes}")
    for e in reg.conditions:
        rep.lines.append(f"  condition {e.id} [{e.role}{' → ' + e.feature if e.feature else ''}]: "
                         + ", ".join(f"{c.system}|{c.code}" for c in e.codes))
    for q in reg.questionnaires:
        rep.lines.append(f"  questionnaire {q.id} → {q.feature} [{q.instrument}, {len(q.item_link_ids)} items"
                         f"{', total ' + '/'.join(q.total_link_ids) if q.total_link_ids else ''}"
                         f"{', min answered ' + str(q.min_answered) if q.min_answered else ''}]: {', '.join(q.urls)}")
    for name, codes in reg.body_sites.items():
        rep.lines.append(f"  body site {name}: " + ", ".join(f"{c.system}|{c.code}" for c in codes))
    local = _local_codes(reg)
    rep.lines.append("local and site codes: " + ("; ".join(local) if local else "none"))
    if not any(q.feature == "baseline_function" for q in reg.questionnaires):
        rep.warnings.append("no questionnaire is configured for baseline_function: an ODI or RMDQ sent only as a "
                            "QuestionnaireResponse is not read (add a questionnaires entry to LBP_CDS_CODES)")


def _model_lines(rep: Report, reg: Registry, scorer: Any, settings: ServingSettings) -> None:
    if settings.cds_comparator and settings.cds_comparator not in scorer.comparators:
        rep.errors.append(f"LBP_CDS_COMPARATOR={settings.cds_comparator} is not one of the model's comparators: "
                          f"{', '.join(scorer.comparators)}")
    mapped = reg.features() | {"age", "female", "bmi", "episode_months", "lbp_medication"}
    names = list(scorer.baselines) + list(scorer.schema.names)
    unmapped = [n for n in names if n not in mapped]
    rep.lines.append(f"model {scorer.manifest.get('model_id')}: {len(names)} inputs, "
                     f"{len(names) - len(unmapped)} mapped from FHIR")
    if unmapped:
        rep.warnings.append("model inputs with no FHIR mapping (always missing in cards): " + ", ".join(unmapped))
    for b in scorer.baselines:
        if b not in mapped:
            rep.errors.append(f"baseline {b} has no FHIR mapping: no card can ever carry a prediction")
    extra = sorted(reg.features() - set(names))
    if extra:
        rep.warnings.append("registry inputs the model does not have (read, then not used): " + ", ".join(extra))
