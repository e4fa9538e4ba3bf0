"""FHIR R4 records as real systems send them: the case table of tests/test_cds_fhir_cases.py through
the CDS Hooks ``patient-view`` service (in-process, the small test model), and records of growing
size (the complete record plus a pain flowsheet of N - 6 historical scores, each entry as a
searchset sends it) timed.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_cds_records.py [--out benchmarks/results/cds_records_s13h]

Writes ``<out>_cases.csv`` (per case: prediction, indicator, summary, inputs read, findings and
warnings by kind, card and extension sizes) and ``<out>_sizes.csv`` (per N: request body bytes,
mapping ms (median of 5, FHIR validation + mapping), whole call ms (median of 3, in-process
TestClient, scoring vs every comparator included), HTTP status, card detail and extension bytes),
plus machine facts on stdout. The mapping's "today" is the table's fixed date (2025-03-10).
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = (6, 300, 1000, 3000, 10000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cds_records_s13h"))
    args = ap.parse_args()
    import logging

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from fastapi.testclient import TestClient
    import jwt

    from predict import Scorer
    from serving.app import create_app
    from serving.cds.codes import load_registry
    from serving.cds.fhir_map import map_prefetch
    from serving.cds.inputs_report import EXTENSION_KEY
    from serving.settings import ServingSettings
    from tests._cds_spec import response_problems
    from tests._small_model import small_model
    from tests.test_cds_fhir_cases import CASES, PID, TODAY, flowsheet, load_case

    logging.disable(logging.CRITICAL)
    print(f"date {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}, load average {os.getloadavg()}")
    scorer = Scorer.load(small_model().artifact)
    import tempfile
    tmp = Path(tempfile.mkdtemp())
    k = ec.generate_private_key(ec.SECP384R1())
    (tmp / "ehr.pem").write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    iss, base, path = "https://ehr.example.org", "https://cds.example.org", "/cds-services/lbp-exercise-benefit"
    (tmp / "issuers.json").write_text('{"issuers": {"%s": {"keys": ["ehr.pem"]}}}' % iss)
    settings = ServingSettings(model_path=None, api_keys="", warmup=False, cds_trusted_issuers=tmp / "issuers.json",
                               cds_base_url=base, cds_feedback_db=f"sqlite:///{tmp / 'fb.sqlite'}")

    def headers() -> dict:
        now = int(time.time())
        tok = jwt.encode({"iss": iss, "aud": base + path, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex},
                         k, algorithm="ES384", headers={"kid": "k1"})
        return {"Authorization": f"Bearer {tok}"}

    def body(pre: dict) -> dict:
        return {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
                "context": {"userId": "Practitioner/dr-1", "patientId": PID}, "prefetch": pre}

    reg = load_registry()
    names = list(scorer.baselines)
    with TestClient(create_app(scorer, settings), client=("127.0.0.1", 5000)) as client:
        client.app.state.cds_service.today = lambda: TODAY
        rows = []
        for name in sorted(CASES):
            r = client.post(path, json=body(load_case(name)), headers=headers())
            card = r.json()["cards"][0]
            ext = card["extension"][EXTENSION_KEY]
            rows.append({"case": name, "status": r.status_code, "spec_problems": len(response_problems(r.json())),
                         "prediction": ext["prediction"], "indicator": card["indicator"], "summary": card["summary"],
                         "inputs_read": sum(i["status"] in ("used", "read") for i in ext["inputs"]),
                         "findings": ";".join(f"{k}:{v}" for k, v in sorted(Counter(f["kind"] for f in ext["not_used"]).items())),
                         "warnings": ";".join(f"{k}:{v}" for k, v in sorted(ext["warnings"]["by_kind"].items())),
                         "detail_chars": len(card["detail"]), "extension_bytes": len(json.dumps(ext))})
        with open(f"{args.out}_cases.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        sizes = []
        for n in SIZES:
            pre = load_case("base")
            pre["observations"]["entry"] = pre["observations"]["entry"][:6] + flowsheet(max(0, n - 6))
            raw = json.dumps(body(pre)).encode()
            maps = []
            for _ in range(5):
                t0 = time.perf_counter()
                map_prefetch(pre, PID, reg, scorer.schema, names, TODAY)
                maps.append(1000 * (time.perf_counter() - t0))
            calls, status, card = [], None, None
            for _ in range(3):
                t0 = time.perf_counter()
                r = client.post(path, content=raw, headers={**headers(), "content-type": "application/json"})
                calls.append(1000 * (time.perf_counter() - t0))
                status = r.status_code
                card = r.json()["cards"][0] if r.status_code == 200 else None
            sizes.append({"observations": n, "body_bytes": len(raw), "map_ms_median": round(statistics.median(maps), 1),
                          "call_ms_median": round(statistics.median(calls), 1), "http_status": status,
                          "detail_chars": len(card["detail"]) if card else "",
                          "extension_bytes": len(json.dumps(card["extension"])) if card else ""})
        with open(f"{args.out}_sizes.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(sizes[0]))
            w.writeheader()
            w.writerows(sizes)
    for s in sizes:
        print(s)
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
