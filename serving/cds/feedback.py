"""CDS Hooks feedback: the cards issued (with their predicted-benefit band) and what clinicians did
with them (CDS Hooks 2.0 feedback: ``accepted`` / ``overridden`` with an ``overrideReason``), stored
durably, and the override rate by band for monitoring the model in use.

Storage is SQLAlchemy Core on a database URL (``LBP_CDS_FEEDBACK_DB``): SQLite by default
(``$LBP_HOME/cds-feedback.sqlite``, else ``$XDG_DATA_HOME/lbp-benefit/…``, default
``~/.local/share/lbp-benefit/…``), or a real server (e.g. ``postgresql+psycopg://…`` with its
driver installed). The engine is created on first use, so an app that never issues a card never
touches the disk. Two tables: ``cds_cards`` (uuid, service, time, model, band, outcome, estimate)
and ``cds_feedback`` (card uuid, outcome, override reason and comment, accepted suggestions, the
client's outcomeTimestamp, the time received). No patient identifier is stored.

Band: the benefit estimate of the card summary (exercise vs the default comparator, first outcome
pain → function → recovery, shortest follow-up first) cut at ``LBP_CDS_BAND_EDGES`` (default
``0,5,10`` points on 0-100; a recovery difference in probability is scaled by 100 first):
``<0``, ``0-5``, ``5-10``, ``>=10``; a card without a prediction has band ``no_prediction``.
"""
from __future__ import annotations

import json
import math
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (Column, Float, Integer, MetaData, String, Table, Text, create_engine, event, func, insert,
                        or_, select, true)
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

OUTCOME_ORDER = ("pain", "function", "global_recovery")
FOLLOW_UP_ORDER = ("short", "moderate", "long")
NO_PREDICTION = "no_prediction"
Z95 = 1.959963984540054

_md = MetaData()
CARDS = Table("cds_cards", _md,
              Column("uuid", String(64), primary_key=True),
              Column("service_id", String(80), nullable=False),
              Column("issued_at", String(40), nullable=False),
              Column("model_id", String(120)),
              Column("band", String(40), nullable=False),
              Column("outcome", String(80)),
              Column("estimate", Float))
FEEDBACK = Table("cds_feedback", _md,
                 Column("id", Integer, primary_key=True, autoincrement=True),
                 Column("card_uuid", String(64), nullable=False, index=True),
                 Column("service_id", String(80), nullable=False),
                 Column("outcome", String(20), nullable=False),
                 Column("override_reason", Text),
                 Column("user_comment", Text),
                 Column("accepted_suggestions", Text),
                 Column("outcome_timestamp", String(40)),
                 Column("received_at", String(40), nullable=False))


def default_url() -> str:
    home = os.environ.get("LBP_HOME")
    if home:
        root = Path(home).expanduser()
    else:
        xdg = os.environ.get("XDG_DATA_HOME")
        root = (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share") / "lbp-benefit"
    return f"sqlite:///{root / 'cds-feedback.sqlite'}"


def parse_edges(text: str) -> tuple[float, ...]:
    """``"0,5,10"`` → (0.0, 5.0, 10.0); strictly increasing."""
    edges = tuple(float(x) for x in text.split(",") if x.strip())
    if not edges or any(b <= a for a, b in zip(edges, edges[1:])) or not all(map(math.isfinite, edges)):
        raise ValueError("band edges must be strictly increasing numbers, e.g. 0,5,10")
    return edges


def _g(x: float) -> str:
    return f"{x:g}"


def band_of(estimate: float | None, outcome: str | None, edges: tuple[float, ...]) -> str:
    """The band label of a benefit estimate (points on 0-100)."""
    if estimate is None:
        return NO_PREDICTION
    x = estimate * 100.0 if outcome == "global_recovery" else estimate
    if x < edges[0]:
        return f"<{_g(edges[0])}"
    for lo, hi in zip(edges, edges[1:]):
        if lo <= x < hi:
            return f"{_g(lo)}-{_g(hi)}"
    return f">={_g(edges[-1])}"


def band_labels(edges: tuple[float, ...]) -> list[str]:
    return ([f"<{_g(edges[0])}"] + [f"{_g(a)}-{_g(b)}" for a, b in zip(edges, edges[1:])]
            + [f">={_g(edges[-1])}", NO_PREDICTION])


def summary_benefit(result: dict) -> tuple[str | None, float | None]:
    """(task key, estimate) of the card summary's benefit: first outcome pain → function → recovery,
    shortest follow-up first, among the available tasks of ``result``."""
    best = None
    for key, t in (result.get("outcomes") or {}).items():
        b = t.get("benefit") or {}
        if not t.get("available", True) or b.get("estimate") is None:
            continue
        rank = (OUTCOME_ORDER.index(t["outcome"]) if t.get("outcome") in OUTCOME_ORDER else 9,
                FOLLOW_UP_ORDER.index(t["follow_up"]) if t.get("follow_up") in FOLLOW_UP_ORDER else 9)
        if best is None or rank < best[0]:
            best = (rank, key, float(b["estimate"]), t.get("outcome"))
    return (None, None) if best is None else (best[1], best[2])


def wilson(k: int, n: int) -> tuple[float | None, float | None]:
    """Wilson score 95% interval of a proportion k/n (None when n = 0)."""
    if n == 0:
        return None, None
    p = k / n
    d = 1 + Z95 ** 2 / n
    c = (p + Z95 ** 2 / (2 * n)) / d
    h = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class FeedbackStore:
    """Cards issued and feedback received, on a SQLAlchemy database URL (created lazily)."""

    def __init__(self, url: str | None = None):
        self.url = url or default_url()
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                if self.url.startswith("sqlite:///") and self.url != "sqlite:///:memory:":
                    Path(self.url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
                memory = self.url in ("sqlite://", "sqlite:///:memory:")
                engine = create_engine(self.url, **({"poolclass": StaticPool, "connect_args": {
                    "check_same_thread": False}} if memory else {}))
                if engine.dialect.name == "sqlite":
                    @event.listens_for(engine, "connect")
                    def _pragmas(conn, _record):  # WAL: readers never block the writer; busy wait across workers
                        cur = conn.cursor()
                        cur.execute("PRAGMA journal_mode=WAL")
                        cur.execute("PRAGMA synchronous=NORMAL")
                        cur.execute("PRAGMA busy_timeout=5000")
                        cur.close()
                _md.create_all(engine)
                self._engine = engine
            return self._engine

    def record_card(self, uuid: str, service_id: str, model_id: str | None, band: str, outcome: str | None,
                    estimate: float | None) -> None:
        with self.engine.begin() as c:
            c.execute(insert(CARDS).values(uuid=uuid, service_id=service_id, issued_at=_now(), model_id=model_id,
                                           band=band, outcome=outcome, estimate=estimate))

    def record_feedback(self, service_id: str, items: list[dict]) -> int:
        """Store validated feedback entries (keys: card, outcome, overrideReason, acceptedSuggestions,
        outcomeTimestamp); returns how many refer to a card this service issued."""
        rows = []
        for f in items:
            reason = f.get("overrideReason") or {}
            rows.append({"card_uuid": f["card"], "service_id": service_id, "outcome": f["outcome"],
                         "override_reason": json.dumps(reason.get("reason")) if reason.get("reason") else None,
                         "user_comment": reason.get("userComment"),
                         "accepted_suggestions": json.dumps(f.get("acceptedSuggestions") or []),
                         "outcome_timestamp": f.get("outcomeTimestamp"), "received_at": _now()})
        with self.engine.begin() as c:
            c.execute(insert(FEEDBACK), rows)
            known = c.execute(select(func.count()).select_from(CARDS).where(
                CARDS.c.uuid.in_([r["card_uuid"] for r in rows]))).scalar_one()
        return int(known)

    def override_rates(self, edges: tuple[float, ...], model_id: str | None = None) -> dict[str, Any]:
        """Per band: cards issued, feedback by outcome (last feedback per card), override rate with
        its Wilson 95% interval; only the cards of ``model_id`` when given (the model in use).
        Feedback about unknown cards is counted apart."""
        if self._engine is None and not self.exists():  # never create the database just to read zeros
            if not self.creatable():
                raise OSError(f"the feedback database {self.url} cannot be created")
            issued, rows = {}, []
        else:
            issued, rows = self._counts(model_id)
        out = self._rates(issued, rows, edges)
        out["model_id"] = model_id
        return out

    def exists(self) -> bool:
        """False only for a SQLite file that was never created."""
        if not self.url.startswith("sqlite:///") or self.url in ("sqlite://", "sqlite:///:memory:"):
            return True
        return Path(self.url[len("sqlite:///"):]).expanduser().exists()

    def creatable(self) -> bool:
        """A SQLite file's nearest existing folder is a writable directory."""
        probe = Path(self.url[len("sqlite:///"):]).expanduser().parent
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)

    def _counts(self, model_id: str | None) -> tuple[dict, list]:
        mine = true() if model_id is None else CARDS.c.model_id == model_id
        with self.engine.connect() as c:
            issued = dict(c.execute(select(CARDS.c.band, func.count()).where(mine).group_by(CARDS.c.band)).all())
            last = (select(FEEDBACK.c.card_uuid, func.max(FEEDBACK.c.id).label("last_id"))
                    .group_by(FEEDBACK.c.card_uuid).subquery())
            rows = c.execute(select(CARDS.c.band, FEEDBACK.c.outcome, func.count())
                             .select_from(FEEDBACK.join(last, FEEDBACK.c.id == last.c.last_id)
                                          .outerjoin(CARDS, CARDS.c.uuid == FEEDBACK.c.card_uuid))
                             .where(or_(CARDS.c.uuid.is_(None), mine))
                             .group_by(CARDS.c.band, FEEDBACK.c.outcome)).all()
        return issued, rows

    @staticmethod
    def _rates(issued: dict, rows: list, edges: tuple[float, ...]) -> dict[str, Any]:
        bands: dict[str, dict[str, Any]] = {b: {"cards_issued": 0, "accepted": 0, "overridden": 0}
                                            for b in band_labels(edges)}
        unknown = {"accepted": 0, "overridden": 0}
        for band, n in issued.items():
            bands.setdefault(band, {"cards_issued": 0, "accepted": 0, "overridden": 0})["cards_issued"] = int(n)
        for band, outcome, n in rows:
            target = unknown if band is None else bands.setdefault(band, {"cards_issued": 0, "accepted": 0,
                                                                          "overridden": 0})
            target[outcome] = target.get(outcome, 0) + int(n)
        for b in bands.values():
            n = b["accepted"] + b["overridden"]
            lo, hi = wilson(b["overridden"], n)
            b.update(with_feedback=n, override_rate=(b["overridden"] / n if n else None), override_rate_ci95=[lo, hi])
        return {"bands": bands, "feedback_for_unknown_cards": unknown,
                "band_edges": list(edges), "interval": "Wilson score 95%"}

    def prometheus(self, edges: tuple[float, ...], model_id: str | None = None) -> str:
        """The override-rate metrics in the Prometheus text format (read from the database, so every
        worker process reports the same totals)."""
        stats = self.override_rates(edges, model_id)["bands"]
        lines = ["# HELP lbp_cds_cards_issued_total CDS Hooks cards issued, by predicted-benefit band.",
                 "# TYPE lbp_cds_cards_issued_total counter"]
        lines += [f'lbp_cds_cards_issued_total{{band="{b}"}} {v["cards_issued"]}' for b, v in stats.items()]
        lines += ["# HELP lbp_cds_feedback_total CDS Hooks feedback (last per card), by band and outcome.",
                  "# TYPE lbp_cds_feedback_total counter"]
        lines += [f'lbp_cds_feedback_total{{band="{b}",outcome="{o}"}} {v[o]}'
                  for b, v in stats.items() for o in ("accepted", "overridden")]
        lines += ["# HELP lbp_cds_override_rate Overridden / (accepted + overridden) cards, by band "
                  "(no sample for a band without feedback).", "# TYPE lbp_cds_override_rate gauge"]
        lines += [f'lbp_cds_override_rate{{band="{b}"}} {float(v["override_rate"])!r}'
                  for b, v in stats.items() if v["override_rate"] is not None]
        return "\n".join(lines) + "\n"
