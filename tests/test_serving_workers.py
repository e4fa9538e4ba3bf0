"""``lbp-benefit serve --workers 2``: worker processes rebuild the app from the environment and
serve the same model (same id, same scores as in-process) over HTTP on 127.0.0.1, and every
``/metrics`` scrape counts the requests of both workers (prometheus_client multiprocess mode)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from predict import Scorer
from tests._small_model import small_model
from tests._uvicorn import free_port
from tests.test_serving_app import samples

COMP = "usual_care"


def test_two_workers_serve_the_same_model(tmp_path):
    sm = small_model()
    scorer = Scorer.load(sm.artifact)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LBP_") or k == "LBP_HOME"}
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    (prom_dir / "counter_999999.db").write_bytes(b"stale")  # a previous run's file: serve must clear it
    env["PROMETHEUS_MULTIPROC_DIR"] = str(prom_dir)
    proc = subprocess.Popen([sys.executable, "-m", "lbp_benefit", "serve", "--model", str(sm.artifact),
                             "--port", str(port), "--workers", "2", "--log-level", "warning"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        ready = False
        while time.time() < deadline and proc.poll() is None:
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    ready = True
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        if not ready:
            proc.kill()
            err = proc.communicate(timeout=10)[1].decode(errors="replace")[-3000:]
            pytest.fail(f"server not ready (exit code {proc.poll()}):\n{err}")
        # /readyz answered by one worker; lbp_model_ready is the minimum over the workers that have
        # started, so wait (bounded) until both have written their value files and both are warm.
        def started():
            return {f.stem.rsplit("_", 1)[-1] for f in prom_dir.glob("gauge_livemin_*.db")} - {"999999"}

        while time.time() < deadline:
            if len(started()) == 2 and samples(httpx.get(base + "/metrics", timeout=5).text).get(
                    ("lbp_model_ready", ())) == 1:
                break
            time.sleep(0.3)
        patient = scorer.example_patient()
        want = scorer.score([patient], COMP)[0]["scores"]
        with httpx.Client(base_url=base, timeout=30) as c:
            for _ in range(6):  # spread over both workers
                r = c.post("/v1/score", json={"patient": patient, "comparator": COMP})
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["model_id"] == scorer.model_id
                for k, v in want.items():
                    got = body["result"]["scores"][k]
                    assert (v is None and got is None) or got == pytest.approx(v, rel=1e-9, abs=1e-12), k
            # prometheus_client multiprocess mode: every scrape, whichever worker answers, counts all six
            totals = set()
            for _ in range(8):
                got = samples(c.get("/metrics").text)
                totals.add(got[("lbp_score_requests_total", (("endpoint", "/v1/score"), ("result", "ok")))])
                totals.add(got[("lbp_http_requests_total",
                                (("method", "POST"), ("route", "/v1/score"), ("status", "200")))])
                assert got[("lbp_model_ready", ())] == 1
            assert totals == {6.0}
        # both workers write their values to the shared directory (one file set per process id)
        pids = {f.stem.rsplit("_", 1)[-1] for f in prom_dir.glob("gauge_livemin_*.db")}
        assert len(pids) == 2, sorted(f.name for f in prom_dir.iterdir())
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
