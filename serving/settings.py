"""Service settings, read from the environment (prefix ``LBP_``) or passed in.

=============================  ===============  ==================================================
environment variable           default          meaning
=============================  ===============  ==================================================
``LBP_MODEL_PATH``             (none)           model artifact (folder or .zip) to load at startup
``LBP_API_KEYS``               (none)           comma-separated API keys; set = every scoring and
                                                model route needs one (``X-API-Key`` or
                                                ``Authorization: Bearer``)
``LBP_ALLOW_UNAUTHENTICATED``  ``false``        allow serving without keys on a non-loopback host
``LBP_CORS_ORIGINS``           (none)           comma-separated origins allowed by CORS (``*`` = any)
``LBP_MAX_BODY_BYTES``         ``1048576``      larger request bodies get 413
``LBP_MAX_BATCH``              ``1000``         most patients in one ``/v1/score/batch`` request
``LBP_METRICS_REQUIRE_AUTH``   ``false``        ``/metrics`` needs an API key too
``LBP_WARMUP``                 ``true``         score one example patient at startup; ready only if it works
``LBP_DOCS``                   ``true``         serve ``/docs`` and ``/openapi.json``
``LBP_HOST`` / ``LBP_PORT``    127.0.0.1/8000   where ``lbp-benefit serve`` listens
``LBP_LOG_LEVEL``              ``info``         log level of the JSON logs
``LBP_PUBLIC_MODEL_CARD``      ``false``        ``/v1/model/card`` needs no API key (for card links
                                                from CDS Hooks cards and browsers)
``LBP_CDS_TRUSTED_ISSUERS``    (none)           JSON/YAML file: CDS client issuer -> public keys
                                                (PEM/JWKS files); unset = every CDS Hooks call 401
``LBP_CDS_BASE_URL``           (request URL)    public base URL of this service: the JWT ``aud``
                                                and the card's model-card link derive from it
``LBP_CDS_COMPARATOR``         ``usual_care``   comparator of the CDS card's summary
``LBP_CDS_CODES``              (none)           YAML file replacing/adding CDS code registry entries
``LBP_CDS_FEEDBACK_DB``        (SQLite file)    database URL of CDS feedback and issued cards
                                                (default ``sqlite:///$LBP_HOME/cds-feedback.sqlite``)
``LBP_CDS_BAND_EDGES``         ``0,5,10``       predicted-benefit band edges (0-100 points) of
                                                the override-rate metric
``LBP_CDS_FHIR_FETCH``         ``true``         fetch missing prefetch from ``fhirServer``
``LBP_CDS_FHIR_SERVERS``       (any)            comma-separated allowed ``fhirServer`` prefixes
``LBP_CDS_FHIR_TIMEOUT_S``     ``2.0``          timeout of each FHIR server request (seconds)
``LBP_CDS_MAX_BODY_BYTES``     ``8388608``      body-size limit of the CDS Hooks routes (a
                                                prefetch is a patient's record; 413 above)
=============================  ===============  ==================================================
"""
from __future__ import annotations

import functools
import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from predict.errors import LbpError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class ServingSettings(BaseSettings):
    """Settings of the scoring service (see the module docstring for the environment variables)."""

    model_config = SettingsConfigDict(env_prefix="LBP_", extra="ignore")

    model_path: Path | None = None
    api_keys: SecretStr = Field(default=SecretStr(""), description="comma-separated API keys")
    allow_unauthenticated: bool = False
    cors_origins: str = ""
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    max_batch: int = Field(default=1000, gt=0)
    metrics_require_auth: bool = False
    warmup: bool = True
    docs: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "info"
    public_model_card: bool = False
    cds_trusted_issuers: Path | None = None
    cds_base_url: str | None = Field(default=None, pattern=r"^https?://[^\s?#]+$")
    cds_comparator: str | None = None
    cds_codes: Path | None = None
    cds_feedback_db: str | None = None
    cds_band_edges: str = Field(default="0,5,10", pattern=r"^\s*-?\d+(\.\d+)?(\s*,\s*-?\d+(\.\d+)?)*\s*$")
    cds_fhir_fetch: bool = True
    cds_fhir_servers: str = ""
    cds_fhir_timeout_s: float = Field(default=2.0, gt=0, le=30)
    cds_max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)

    @property
    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()]

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_key_list)

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


@functools.lru_cache(maxsize=1024)
def is_loopback(host: str) -> bool:
    """True for addresses (or names) that only this machine can reach. (Cached: asked for the
    client address of every request when no API keys are set.)"""
    h = host.strip().strip("[]").lower()
    if h in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: ServingSettings) -> None:
    """Refuse to listen on a non-loopback address without API keys unless explicitly allowed."""
    if settings.auth_enabled or settings.allow_unauthenticated or is_loopback(host):
        return
    raise LbpError(
        f"refusing to serve on {host} without authentication: set LBP_API_KEYS (comma-separated keys), "
        "or LBP_ALLOW_UNAUTHENTICATED=true if something in front of this server authenticates, "
        "or listen on 127.0.0.1"
    )
