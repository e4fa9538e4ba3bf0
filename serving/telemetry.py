"""Prometheus metrics in the text exposition format (version 0.0.4), without a client library.

One :class:`Metrics` per app (no global registry, so several apps in one process, as in tests,
do not share counts). Labels are route templates, methods, status codes, comparators and
outcome names only: never anything from a request body or query.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 5000)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: tuple[tuple[str, str], ...] = ()) -> str:
    pairs = list(zip(names, values)) + list(extra)
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in pairs) + "}"


def _num(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if float(x).is_integer():
        return str(int(x))
    return repr(float(x))


@dataclass
class _Family:
    name: str
    help: str
    kind: str  # counter | gauge | histogram
    labelnames: tuple[str, ...]
    buckets: tuple[float, ...] = ()
    values: dict = field(default_factory=dict)


class Metrics:
    """A small, thread-safe registry with the service's metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {}
        self.requests = self._add("lbp_http_requests_total", "HTTP requests by method, route template and status.",
                                  "counter", ("method", "route", "status"))
        self.latency = self._add("lbp_http_request_duration_seconds",
                                 "HTTP request latency by method, route template and status.",
                                 "histogram", ("method", "route", "status"), LATENCY_BUCKETS)
        self.in_flight = self._add("lbp_http_requests_in_flight", "HTTP requests being served.", "gauge", ())
        self.scored = self._add("lbp_patients_scored_total", "Patients scored, by endpoint and comparator.",
                                "counter", ("endpoint", "comparator"))
        self.score_requests = self._add("lbp_score_requests_total",
                                        "Scoring requests by endpoint and result (ok, invalid, error).",
                                        "counter", ("endpoint", "result"))
        self.batch_size = self._add("lbp_score_batch_size", "Patients per batch request.", "histogram", (),
                                    BATCH_BUCKETS)
        self.ready = self._add("lbp_model_ready", "1 when the model is loaded and warmed up.", "gauge", ())
        self.model_info = self._add("lbp_model_info", "The loaded model (value is always 1).", "gauge",
                                    ("model_id", "schema_version", "synthetic"))

    def _add(self, name, help_, kind, labelnames, buckets=()) -> str:
        self._families[name] = _Family(name, help_, kind, tuple(labelnames), tuple(buckets))
        return name

    def inc(self, name: str, labels: tuple[str, ...] = (), amount: float = 1.0) -> None:
        with self._lock:
            fam = self._families[name]
            fam.values[labels] = fam.values.get(labels, 0.0) + amount

    def set(self, name: str, value: float, labels: tuple[str, ...] = ()) -> None:
        with self._lock:
            self._families[name].values[labels] = float(value)

    def observe(self, name: str, value: float, labels: tuple[str, ...] = ()) -> None:
        with self._lock:
            fam = self._families[name]
            state = fam.values.get(labels)
            if state is None:
                state = fam.values[labels] = {"buckets": [0] * len(fam.buckets), "sum": 0.0, "count": 0}
            for i, bound in enumerate(fam.buckets):
                if value <= bound:
                    state["buckets"][i] += 1
            state["sum"] += value
            state["count"] += 1

    def value(self, name: str, labels: tuple[str, ...] = ()) -> float:
        """Current value of a counter/gauge (for tests and readiness); 0 when never set."""
        with self._lock:
            v = self._families[name].values.get(labels, 0.0)
            return v["count"] if isinstance(v, dict) else v

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for fam in self._families.values():
                lines.append(f"# HELP {fam.name} {fam.help}")
                lines.append(f"# TYPE {fam.name} {fam.kind}")
                for labels, v in sorted(fam.values.items()):
                    if fam.kind == "histogram":
                        for bound, n in zip(fam.buckets, v["buckets"]):
                            lb = _labels(fam.labelnames, labels, (("le", _num(bound)),))
                            lines.append(f"{fam.name}_bucket{lb} {n}")
                        lb = _labels(fam.labelnames, labels, (("le", "+Inf"),))
                        lines.append(f"{fam.name}_bucket{lb} {v['count']}")
                        lines.append(f"{fam.name}_sum{_labels(fam.labelnames, labels)} {_num(v['sum'])}")
                        lines.append(f"{fam.name}_count{_labels(fam.labelnames, labels)} {v['count']}")
                    else:
                        lines.append(f"{fam.name}{_labels(fam.labelnames, labels)} {_num(v)}")
        return "\n".join(lines) + "\n"
