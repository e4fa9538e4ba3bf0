"""CDS Hooks latency: ``patient-view`` with a full FHIR R4 prefetch, sequential calls (concurrency 1)
over HTTP against ``lbp-benefit serve`` in its own process, plus an in-process breakdown.

    .venv/bin/python benchmarks/bench_cds.py [--model PATH] [--n 500] [--out benchmarks/results/cds.json]

Without --model the embedded default model is used (trained on first use). The prefetch is the
complete record of tests/test_cds_fhir_map.py (Patient; pain, ODI, FABQ, BMI, smoking and ODH
employment Observations; LBP and sciatica Conditions; a MedicationStatement) plus an ODI
QuestionnaireResponse scored from its ten sections (a site codes file configures it), so every
reader runs. Each request carries a fresh ES384 client JWT, signed before the clock starts.
The server's CPU time per call (user + system, from /proc) is reported too: it does not depend on
how busy the shared machine is, the wall-clock latency does.
The feedback store is a SQLite file in a temporary folder (each card is recorded, as in service).

Reported: client-side latency p50/p95/p99/max (ms) over ``--n`` calls after 30 warm-up calls;
in-process medians of the phases (FHIR validation + mapping, scoring vs every comparator, card +
extension, recording the card); machine facts (date, nproc, CPU, load average before/after).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ISS = "https://ehr.bench.example.org"
BASE = "https://cds.bench.example.org"
PID = "pat-bench-1"
PATH = "/cds-services/lbp-exercise-benefit"
ODI = "https://forms.example.org/Questionnaire/odi"


def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "")
    return {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "nproc": os.cpu_count(),
            "cpu": cpu, "loadavg": os.getloadavg(), "python": platform.python_version()}


def setup(d: Path):
    """Issuer key + issuers file, site codes file (ODI questionnaire); returns the private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    (d / "ehr.pem").write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    (d / "issuers.yaml").write_text(f"issuers:\n  {ISS}:\n    keys: [{{file: ehr.pem, kid: bench-1}}]\n")
    links = ", ".join(f"odi-{i}" for i in range(1, 11))
    (d / "codes.yaml").write_text(f"questionnaires:\n  - {{id: odi_form, feature: baseline_function, label: ODI, "
                                  f"urls: ['{ODI}|2.1a'], instrument: odi, item_link_ids: [{links}], "
                                  f"max_age_days: 90}}\n")
    return key


def prefetch(today) -> dict:
    from tests.test_cds_fhir_map import bundle, complete_prefetch

    pre = complete_prefetch(today, PID)
    items = [{"linkId": f"odi-{i}", "answer": [{"valueInteger": v}]}
             for i, v in zip(range(1, 11), (2, 1, 3, 2, 1, 2, 1, 2, 1, 1))]
    pre["questionnaires"] = bundle({"resourceType": "QuestionnaireResponse", "id": "odi-q1",
                                    "questionnaire": f"{ODI}|2.1a", "status": "completed",
                                    "subject": {"reference": f"Patient/{PID}"},
                                    "authored": today.isoformat() + "T08:00:00Z", "item": items})
    return pre


def token(key) -> str:
    import jwt

    now = int(time.time())
    return jwt.encode({"iss": ISS, "aud": BASE + PATH, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex},
                      key, algorithm="ES384", headers={"kid": "bench-1"})


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def http(model: Path, d: Path, key, n: int) -> dict:
    import httpx

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LBP_CDS_TRUSTED_ISSUERS": str(d / "issuers.yaml"),
           "LBP_CDS_BASE_URL": BASE, "LBP_CDS_CODES": str(d / "codes.yaml"),
           "LBP_CDS_FEEDBACK_DB": f"sqlite:///{d / 'feedback.sqlite'}", "LBP_LOG_LEVEL": "warning"}
    p = subprocess.Popen([sys.executable, "-m", "lbp_benefit", "serve", "--model", str(model), "--port", str(port)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.time()
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() - t0 > 300 or p.poll() is not None:
                raise RuntimeError("the server did not become ready")
            time.sleep(0.2)
        today = dt.datetime.now(dt.timezone.utc).date()
        body = {"hook": "patient-view", "context": {"userId": "Practitioner/dr-1", "patientId": PID},
                "prefetch": prefetch(today)}
        lat, load0 = [], os.getloadavg()
        with httpx.Client(base_url=url, timeout=10) as c:
            for i in range(30 + n):
                headers = {"Authorization": f"Bearer {token(key)}"}
                payload = {**body, "hookInstance": str(uuid.uuid4())}
                t = time.perf_counter()
                r = c.post(PATH, json=payload, headers=headers)
                ms = (time.perf_counter() - t) * 1000
                card = r.json()["cards"][0]
                if r.status_code != 200 or not card["summary"].startswith("Exercise vs"):
                    raise RuntimeError(f"unexpected answer {r.status_code}: {r.text[:200]}")
                if i == 29:
                    cpu0 = cpu_seconds(p.pid)
                if i >= 30:
                    lat.append(ms)
            server_cpu_ms = (cpu_seconds(p.pid) - cpu0) * 1000 / n
        return {"n": n, "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99), "max_ms": max(lat),
                "mean_ms": statistics.fmean(lat), "server_cpu_ms_per_call": server_cpu_ms, "loadavg_before": load0, "loadavg_after": os.getloadavg(),
                "card_summary": card["summary"]}
    finally:
        p.terminate()
        p.wait(10)


def phases(model: Path, d: Path, n: int = 200) -> dict:
    """In-process medians (ms) of the phases of one call."""
    from predict import Scorer
    from serving.app import create_app
    from serving.cds.fhir_map import map_prefetch
    from serving.settings import ServingSettings

    settings = ServingSettings(model_path=None, warmup=False, cds_trusted_issuers=d / "issuers.yaml",
                               cds_base_url=BASE, cds_codes=d / "codes.yaml",
                               cds_feedback_db=f"sqlite:///{d / 'phases.sqlite'}")
    app = create_app(Scorer.load(model), settings)
    svc = app.state.cds_service
    today = dt.datetime.now(dt.timezone.utc).date()
    pre = prefetch(today)
    t_map, t_card, t_rec = [], [], []
    for _ in range(n + 10):
        t = time.perf_counter()
        mapped = map_prefetch(pre, PID, svc.registry, svc.scorer.schema, list(svc.scorer.baselines), today)
        t1 = time.perf_counter()
        issued = svc.card(mapped, BASE + "/v1/model/card", PATH, None)
        t2 = time.perf_counter()
        svc.record(issued, "lbp-exercise-benefit")
        t3 = time.perf_counter()
        t_map.append((t1 - t) * 1000)
        t_card.append((t2 - t1) * 1000)
        t_rec.append((t3 - t2) * 1000)
    t0 = time.perf_counter()
    for _ in range(n):
        svc.scoring.score_comparators([dict(mapped.inputs)], svc.comparators, endpoint=PATH, request_id=None)
    score_ms = (time.perf_counter() - t0) * 1000 / n
    med = lambda xs: statistics.median(xs[10:])  # noqa: E731
    return {"fhir_validate_and_map_ms": med(t_map), "score_and_card_ms": med(t_card),
            "of_which_scoring_all_comparators_ms": score_ms, "record_card_sqlite_ms": med(t_rec),
            "n_comparators": len(svc.comparators), "n_inputs_used": len(mapped.used)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cds.json")
    a = ap.parse_args()
    model = a.model
    if model is None:
        from lbp_benefit.default_model import ensure_default_model
        model = ensure_default_model(log=print)
    from predict import Scorer
    res = {"machine_start": machine(), "model_id": Scorer.load(model).model_id}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        key = setup(d)
        res["phases"] = phases(model, d)
        res["http_concurrency_1"] = http(model, d, key, a.n)
    res["machine_end"] = machine()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
