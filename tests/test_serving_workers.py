"""``lbp-benefit serve --workers 2``: worker processes rebuild the app from the environment and
serve the same model (same id, same scores as in-process) over HTTP on 127.0.0.1."""
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

COMP = "usual_care"


def test_two_workers_serve_the_same_model():
    sm = small_model()
    scorer = Scorer.load(sm.artifact)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LBP_") or k == "LBP_HOME"}
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
