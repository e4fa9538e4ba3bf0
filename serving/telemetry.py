"""The service's Prometheus metrics, kept by ``prometheus_client``.

One :class:`Telemetry` per app. Labels are route templates, methods, status codes, comparators and
outcome names only: never anything from a request body or query.

Two modes, chosen when the app is built:

* **one process** (``PROMETHEUS_MULTIPROC_DIR`` unset): the metrics live in the app's own
  ``CollectorRegistry`` (several apps in one process, as in tests, do not share counts);
* **several worker processes** (``PROMETHEUS_MULTIPROC_DIR`` set, as ``lbp-benefit serve --workers N``
  does): ``prometheus_client``'s multiprocess mode. Each worker writes its values to memory-mapped
  files in that directory and ``/metrics``, whichever worker answers, adds up every worker's files,
  so one scrape sees the whole server. The directory must be empty when the server starts
  (``serve`` creates a fresh one, or empties the one given; see :func:`prepare_multiprocess_dir`).
"""
from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram,
                               disable_created_metrics, generate_latest, multiprocess)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 5000)

# The *_created series (a creation timestamp per label set) are noise for these dashboards.
disable_created_metrics()


def multiprocess_dir() -> str | None:
    """The multiprocess directory when multiprocess mode is on, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess_dir(path: str | Path) -> Path:
    """Create ``path`` (or empty the metric files a previous run left in it) for a new server."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for f in folder.glob("*.db"):
        f.unlink()
    return folder


class Telemetry:
    """The service's metrics (attributes are ``prometheus_client`` metric objects)."""

    def __init__(self) -> None:
        self.multiprocess = multiprocess_dir() is not None
        # Multiprocess mode: the values go to files, read back by a MultiProcessCollector per scrape;
        # the metric objects are registered nowhere. One process: they live in this app's registry.
        self.registry = None if self.multiprocess else CollectorRegistry(auto_describe=True)
        reg = {"registry": self.registry}
        self.requests = Counter("lbp_http_requests", "HTTP requests by method, route template and status.",
                                ("method", "route", "status"), **reg)
        self.latency = Histogram("lbp_http_request_duration_seconds",
                                 "HTTP request latency by method, route template and status.",
                                 ("method", "route", "status"), buckets=LATENCY_BUCKETS, **reg)
        self.in_flight = Gauge("lbp_http_requests_in_flight", "HTTP requests being served.",
                               multiprocess_mode="livesum", **reg)
        self.scored = Counter("lbp_patients_scored", "Patients scored, by endpoint and comparator.",
                              ("endpoint", "comparator"), **reg)
        self.score_requests = Counter("lbp_score_requests", "Scoring requests by endpoint and result "
                                      "(ok, invalid, error).", ("endpoint", "result"), **reg)
        self.not_scored = Counter("lbp_patients_not_scored", "Patients of a batch left unscored, by endpoint and "
                                  "reason (serving.batch.REASONS: missing_baseline, unknown_field, wrong_type, "
                                  "out_of_range, not_allowed_value, invalid).",
                                  ("endpoint", "reason"), **reg)
        self.batch_size = Histogram("lbp_score_batch_size", "Patients per batch request.", buckets=BATCH_BUCKETS,
                                    **reg)
        # Ready only when every live worker is (livemin); model_info is 1 in each worker (livemax).
        self.ready = Gauge("lbp_model_ready", "1 when the model is loaded and warmed up (in every worker).",
                           multiprocess_mode="livemin", **reg)
        self.model_info = Gauge("lbp_model_info", "The loaded model (value is always 1).",
                                ("model_id", "schema_version", "synthetic"), multiprocess_mode="livemax", **reg)

        # The labelled children used on every request, by label values: ``labels()`` builds and looks
        # up a key under a lock on each call; a child, once made, is the same object for the life of
        # the metric (prometheus_client's documented way to avoid that per-call cost).
        self._request_children: dict[tuple[str, str, str], tuple] = {}
        self._score_children: dict[tuple[str, str], object] = {}
        self._scored_children: dict[tuple[str, str], object] = {}

    def observe_request(self, method: str, route: str, status: str, seconds: float) -> None:
        """One HTTP request answered: ``lbp_http_requests_total`` and its latency histogram."""
        key = (method, route, status)
        pair = self._request_children.get(key)
        if pair is None:
            pair = self._request_children[key] = (self.requests.labels(*key), self.latency.labels(*key))
        pair[0].inc()
        pair[1].observe(seconds)

    def count_score(self, endpoint: str, result: str) -> None:
        """One scoring request: ``lbp_score_requests_total{endpoint,result}`` (ok, invalid, error)."""
        key = (endpoint, result)
        child = self._score_children.get(key)
        if child is None:
            child = self._score_children[key] = self.score_requests.labels(*key)
        child.inc()

    def count_scored(self, endpoint: str, comparator: str, n: int) -> None:
        """``n`` patients scored: ``lbp_patients_scored_total{endpoint,comparator}``."""
        key = (endpoint, comparator)
        child = self._scored_children.get(key)
        if child is None:
            child = self._scored_children[key] = self.scored.labels(*key)
        child.inc(n)

    def count_not_scored(self, endpoint: str, reason: str, n: int) -> None:
        """``n`` patients of a batch left unscored: ``lbp_patients_not_scored_total{endpoint,reason}``."""
        if n:
            self.not_scored.labels(endpoint, reason).inc(n)

    def render(self) -> bytes:
        """The Prometheus text exposition of this app (of every worker, in multiprocess mode)."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)

    def close(self) -> None:
        """At shutdown: in multiprocess mode, drop this worker's live gauges from the sums."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())
