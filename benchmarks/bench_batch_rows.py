"""``POST /v1/score/batch`` before and after a change to how a batch is checked (session 11, i23v:
each patient checked on its own so that one bad patient leaves only itself unscored), interleaved.

    python benchmarks/bench_batch_rows.py --model ART --before OLD_TREE --after . \
        [--sizes 100 1000] [--requests 60] [--rounds 3] [--out benchmarks/results/scoring_batch_rows_i23v.csv]

Each round runs one worker process per tree (``PYTHONPATH=<tree>``: that tree's serving and predict
code) on the same model and the same all-good patients (simulated participants, hayden2020 seed 2,
with their realistic missing covariates; written once by the parent). A worker builds the app
in-process (``serving.app.create_app``, FastAPI's TestClient: routing, body validation, the batch
checks, scoring, JSON rendering, no network) and posts each batch of n patients max(5, requests * 100 / n) times after three
warm-up requests; it reports per request the median wall milliseconds and the CPU milliseconds of the
process (what one core gives on the shared machine). Windows this long matter: a full garbage
collection of the app's ~283,000 objects takes ~0.45 s and comes every ~12 requests of 100 patients,
so a 10-request window can hold none or one (measured: 30 vs 47 CPU ms per request from that alone). The after tree also scores the same batch with
10% of its patients made bad (an impossible age), which the before tree refused whole (422).
Rows: tree, round, size, kind (all_good | tenth_bad), status, wall_ms_median, cpu_ms_per_request,
scored (patients with a result), loadavg_1min.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_patients(model: str, n: int, path: Path) -> None:
    """``n`` all-good request patients (JSON-ready: binary inputs as integers, missing left out)."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_scoring import patients

    from predict import Scorer

    scorer = Scorer.load(model)
    df = patients(scorer, n)
    types = {c.name: c.type for c in scorer.schema.covariates}
    out = []
    for rec in df.to_dict("records"):
        p = {}
        for k, v in rec.items():
            if v is None or v != v:
                continue
            p[k] = int(v) if types.get(k) == "binary" else (v if types.get(k) == "categorical" else float(v))
        out.append(p)
    path.write_text(json.dumps(out), "utf-8")


def worker(model: str, patients_file: str, sizes: list[int], requests: int) -> list[dict]:
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.settings import ServingSettings

    pts = json.loads(Path(patients_file).read_text("utf-8"))
    settings = ServingSettings(model_path=model, warmup=True, docs=False, api_keys="", allow_unauthenticated=False,
                               max_batch=max(sizes), max_body_bytes=64 * 1024 * 1024, metrics_require_auth=False)
    app = create_app(settings=settings)
    rows = []
    with TestClient(app, client=("127.0.0.1", 50000)) as c:
        for n in sizes:
            good = pts[:n]
            bad = [dict(p, age=300.0) if i % 10 == 5 else p for i, p in enumerate(good)]
            for kind, batch in (("all_good", good), ("tenth_bad", bad)):
                body = {"patients": batch, "comparator": "usual_care"}
                for _ in range(3):  # warm-up: the scorer sets up each missing-data pattern once
                    r = c.post("/v1/score/batch", json=body)
                walls = []
                k = max(5, requests * 100 // n)  # about the same patients per size: several GC cycles each
                cpu0 = time.process_time()
                for _ in range(k):
                    t0 = time.perf_counter()
                    r = c.post("/v1/score/batch", json=body)
                    walls.append(time.perf_counter() - t0)
                cpu = (time.process_time() - cpu0) / k
                res = r.json().get("results") if r.status_code == 200 else None
                rows.append({"size": n, "kind": kind, "requests": k, "status": r.status_code,
                             "wall_ms_median": round(statistics.median(walls) * 1e3, 2),
                             "cpu_ms_per_request": round(cpu * 1e3, 2),
                             "scored": sum(x is not None for x in res) if res is not None else 0,
                             "loadavg_1min": round(os.getloadavg()[0], 2)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--before")
    ap.add_argument("--after", default=str(ROOT))
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/scoring_batch_rows_i23v.csv"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--patients", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.model, a.patients, a.sizes, a.requests)))
        return
    if not a.before:
        ap.error("--before OLD_TREE is required")
    with tempfile.TemporaryDirectory() as d:
        pf = Path(d) / "patients.json"
        write_patients(a.model, max(a.sizes), pf)
        rows = []
        for k in range(a.rounds):
            for tree_name, tree in (("before", a.before), ("after", a.after)):
                env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--model", a.model,
                       "--patients", str(pf), "--requests", str(a.requests), "--sizes", *map(str, a.sizes)]
                out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True,
                                     cwd=str(Path(tree).resolve())).stdout
                for r in json.loads(out.strip().splitlines()[-1]):
                    rows.append({"tree": tree_name, "round": k + 1, **r})
                    print(rows[-1], flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {a.out}")
    for n in a.sizes:
        for key in ("wall_ms_median", "cpu_ms_per_request"):
            med = {t: statistics.median(r[key] for r in rows if r["tree"] == t and r["size"] == n
                                        and r["kind"] == "all_good") for t in ("before", "after")}
            print(f"all-good batch of {n}: {key} before {med['before']:.1f}, after {med['after']:.1f} "
                  f"(after/before {med['after'] / med['before']:.3f})")


if __name__ == "__main__":
    main()
