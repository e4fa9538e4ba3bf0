"""Scoring benchmarks: in-process throughput and HTTP latency/throughput, side by side with a bare
FastAPI endpoint that only runs LightGBM predict + shap TreeSHAP on two 300-tree models.

    .venv/bin/python benchmarks/bench_scoring.py [--model PATH] [--duration 10] [--out benchmarks/results/scoring.json]

Without --model the embedded default model is used (trained on first use). Needs ``wrk``
(Debian package ``wrk``) for the HTTP part; ``--no-http`` skips it. Patients are simulated
participants (hayden2020, seed 2) with their realistic missing covariates.

Reported: patients/s in-process (``score_table`` vectorised batch, with and without explanations;
``score`` per-patient dicts), single-patient latency p50/p99 in-process; for each endpoint and
concurrency 1, 16, 64: requests/s, p50, p99 and non-2xx counts from wrk; then 20,000 requests at
concurrency 16 against our endpoint with the server's resident memory (VmRSS) before and after.
Machine facts (date, nproc, CPU, load average) are recorded: the 2 cores are shared, so load matters.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def machine() -> dict:
    cpu = ""
    for ln in Path("/proc/cpuinfo").read_text().splitlines():
        if ln.startswith("model name"):
            cpu = ln.split(":", 1)[1].strip()
            break
    return {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "nproc": os.cpu_count(),
            "cpu": cpu, "loadavg": os.getloadavg(), "python": platform.python_version()}


def patients(scorer, n: int):
    import pandas as pd

    from training.dataset import load_dataset
    from training.harmonise import harmonise
    from training.simulate import simulate_dataset

    with tempfile.TemporaryDirectory() as d:
        simulate_dataset("hayden2020", seed=2).write(Path(d))
        h = harmonise(load_dataset(Path(d), None))
    df = h.baselines.dropna(subset=scorer.baselines)
    cols = [c for c in df.columns if c in scorer.schema or c in scorer.baselines]
    df = df[cols].reset_index(drop=True)
    reps = -(-n // len(df))
    return pd.concat([df] * reps, ignore_index=True).head(n)


def in_process(scorer, comp: str, n: int) -> dict:
    """Patients per second by the wall clock (``*_per_s``) and per second of this process's CPU
    time (``*_per_cpu_s``: what one core gives when the shared machine is busy), load average
    before and after."""
    import numpy as np

    df = patients(scorer, n)
    out = {"n_patients": n, "missing_share": float(df[scorer.schema.names].isna().mean().mean()),
           "loadavg_before": os.getloadavg()}
    scorer.score_table(df.head(100), comp)

    def timed(key: str, fn, count: int) -> None:
        t, c = time.perf_counter(), time.process_time()
        fn()
        out[key] = count / (time.perf_counter() - t)
        out[key.replace("_per_s", "_per_cpu_s")] = count / max(time.process_time() - c, 1e-9)

    for explain in (False, True):
        timed(f"table_patients_per_s_{'with' if explain else 'without'}_explanations",
              lambda: scorer.score_table(df, comp, explain=explain), n)
    # once more: the first batch above also set up each new missing-data pattern (a conditional
    # regression and draw matrix per pattern and task, cached by the scorer)
    timed("table_patients_per_s_without_explanations_again", lambda: scorer.score_table(df, comp), n)
    # the same patients with every covariate known (training medians filled in): no conditional
    # draws for missing inputs, i.e. the cost of the point prediction + bootstrap SE alone
    full = df.copy()
    for c in scorer.schema.names:
        full[c] = full[c].fillna(full[c].median())
    timed("table_patients_per_s_without_explanations_complete_inputs", lambda: scorer.score_table(full, comp), n)
    timed("table_patients_per_s_with_explanations_complete_inputs",
          lambda: scorer.score_table(full, comp, explain=True), n)
    timed("table_patients_per_s_scores_only_complete_inputs",
          lambda: scorer.score_table(full, comp, details=False), n)
    # the same on one thread (score_table splits batches over the available cores by default)
    timed("table_patients_per_s_without_explanations_one_thread", lambda: scorer.score_table(df, comp, threads=1), n)
    timed("table_patients_per_s_without_explanations_complete_inputs_one_thread",
          lambda: scorer.score_table(full, comp, threads=1), n)
    out["score_threads"] = __import__("predict.program", fromlist=["default_threads"]).default_threads()
    recs = [{k: v for k, v in r.items() if v == v} for r in df.head(min(n, 5000)).to_dict("records")]
    for explain in (False, True):
        def dicts(explain=explain):
            for s in range(0, len(recs), 100):
                scorer.score(recs[s:s + 100], comp, explain=explain)
        timed(f"dicts_batch100_patients_per_s_{'with' if explain else 'without'}_explanations", dicts, len(recs))
    lat = []
    for r in recs[:50]:
        scorer.score([r], comp)
    for r in recs[:500]:
        t = time.perf_counter()
        scorer.score([r], comp)
        lat.append(time.perf_counter() - t)
    out["single_patient_ms_p50"] = float(np.percentile(lat, 50) * 1e3)
    out["single_patient_ms_p99"] = float(np.percentile(lat, 99) * 1e3)
    out["loadavg_after"] = os.getloadavg()
    return out


# ----------------------------------------------------------------------------- HTTP
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 600) -> None:
    import httpx

    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready")


def rss_kb(pid: int) -> int:
    for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
        if ln.startswith("VmRSS:"):
            return int(ln.split()[1])
    return -1


def wrk(url: str, body: str, conns: int, duration: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = {json.dumps(body)}\n")
        script = f.name
    try:
        cmd = ["wrk", f"-t{min(conns, 2)}", f"-c{conns}", f"-d{duration:.0f}s", "--latency", "--timeout", "10s",
               "-s", script, url]
        txt = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script)

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", txt, re.M)
        if not m:
            return float("nan")
        v, u = float(m.group(1)), m.group(2)
        return v / 1000 if u == "us" else v * 1000 if u == "s" else v

    req = re.search(r"(\d+) requests in", txt)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", txt)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", txt)
    return {"concurrency": conns, "requests": int(req.group(1)) if req else 0,
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", txt).group(1)),
            "p50_ms": ms("50%"), "p99_ms": ms("99%"), "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(map(int, sock.groups())) if sock else 0}


def start(cmd: list[str], env: dict, ready: str) -> subprocess.Popen:
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        wait_ready(ready)
    except Exception:
        p.kill()
        raise
    return p


def stop(p: subprocess.Popen) -> None:
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()


def _median_run(runs: list[dict]) -> dict:
    """The run with the median requests/s (its own p50/p99), plus the spread over the rounds."""
    order = sorted(runs, key=lambda r: r["rps"])
    med = dict(order[len(order) // 2])
    med["rps_rounds"] = [r["rps"] for r in runs]
    return med


def server_stack() -> dict:
    """What uvicorn serves HTTP with here (both servers use the same)."""
    import importlib.util

    return {"uvicorn_http": "httptools" if importlib.util.find_spec("httptools") else "h11",
            "uvicorn_loop": "asyncio"}  # both servers are started with the asyncio loop (lbp-benefit serve: always)


def http(model: Path, scorer, comp: str, duration: float, n_soak: int, workers: int = 1, rounds: int = 3) -> dict:
    import numpy as np

    if not shutil.which("wrk"):
        return {"skipped": "wrk not installed (apt-get install wrk)"}
    env = {**os.environ, "LBP_LOG_LEVEL": "info", "PYTHONPATH": str(ROOT)}
    env.pop("LBP_API_KEYS", None)
    res: dict = {}
    ours_port, bare_port = free_port(), free_port()
    res["workers"] = workers
    res["rounds"] = rounds
    res["server"] = server_stack()
    ours = start([sys.executable, "-m", "lbp_benefit", "serve", "--model", str(model), "--port", str(ours_port),
                  "--workers", str(workers)], env, f"http://127.0.0.1:{ours_port}/readyz")
    bare = start([sys.executable, "-m", "uvicorn", "--factory", "benchmarks.bare_lightgbm_api:create_app",
                  "--port", str(bare_port), "--log-level", "warning", "--no-access-log", "--workers", str(workers),
                  "--loop", "asyncio"],
                 env, f"http://127.0.0.1:{bare_port}/docs")
    try:
        body = json.dumps({"patient": scorer.example_patient(), "comparator": comp})
        rng = np.random.default_rng(0)
        feats = [None if rng.random() < 0.3 else float(rng.normal()) for _ in range(19)]
        bare_body = json.dumps({"features": feats})
        targets = {"ours": (f"http://127.0.0.1:{ours_port}/v1/score", body),
                   "bare_treeshap": (f"http://127.0.0.1:{bare_port}/score", bare_body),
                   "bare_no_treeshap": (f"http://127.0.0.1:{bare_port}/score?shap=false", bare_body)}
        for name, (url, b) in targets.items():
            wrk(url, b, 4, 2)  # warm-up
        # rounds: every endpoint at every concurrency once per round, interleaved, so that a change
        # in the shared machine's speed hits all of them alike; the median round is reported
        runs: dict = {name: {c: [] for c in (1, 16, 64)} for name in targets}
        for _ in range(rounds):
            for c in (1, 16, 64):
                for name, (url, b) in targets.items():
                    runs[name][c].append(wrk(url, b, c, duration))
        for name in targets:
            res[name] = [_median_run(runs[name][c]) for c in (1, 16, 64)]
            res[name + "_rounds"] = {str(c): runs[name][c] for c in (1, 16, 64)}
        # soak: >= n_soak requests at concurrency 16, resident memory before and after
        url, b = targets["ours"]
        rps = max(res["ours"][1]["rps"], 1.0)
        before = rss_kb(ours.pid)
        soak = wrk(url, b, 16, max(5.0, n_soak / rps * 1.15))
        after = rss_kb(ours.pid)
        soak2 = wrk(url, b, 16, max(5.0, n_soak / rps * 0.6))
        after2 = rss_kb(ours.pid)
        res["soak"] = {**soak, "rss_kb_before": before, "rss_kb_after": after,
                       "rss_kb_after_more": after2, "more_requests": soak2["requests"],
                       "errors": soak["non_2xx"] + soak["socket_errors"] + soak2["non_2xx"] + soak2["socket_errors"]}
    finally:
        stop(ours)
        stop(bare)
    return res


def render(res: dict) -> str:
    """The results as the Markdown section for BENCHMARKS.md."""
    m, ip = res["machine_start"], res["in_process"]
    lines = [f"### Scoring ({m['date'][:10]}, {m['nproc']} cores, {m['cpu']}, load average at start "
             f"{', '.join(f'{x:.2f}' for x in m['loadavg'])}; end {', '.join(f'{x:.2f}' for x in res['machine_end']['loadavg'])})",
             "", f"Model `{res['model_id']}` (tasks: {', '.join(f'{k} {v}' for k, v in res['tasks'].items())}).",
             f"Patients: simulated participants, {ip['missing_share'] * 100:.0f}% of covariate values missing.", "",
             f"score_table splits a batch over {ip.get('score_threads', '?')} threads unless told otherwise.", "",
             "| in-process | patients/s (wall) | patients per CPU-second |", "|---|---|---|"]
    for k, label in (("table_patients_per_s_without_explanations", "score_table, batch of 20,000, no explanations"),
                     ("table_patients_per_s_with_explanations", "score_table, batch of 20,000, with explanations"),
                     ("table_patients_per_s_without_explanations_again",
                      "score_table, the same batch again (missing-data patterns already set up)"),
                     ("table_patients_per_s_without_explanations_complete_inputs",
                      "score_table, same patients with every covariate filled in (no missing-data draws)"),
                     ("table_patients_per_s_with_explanations_complete_inputs",
                      "score_table, every covariate filled in, with explanations"),
                     ("table_patients_per_s_scores_only_complete_inputs",
                      "score_table, every covariate filled in, score columns only (details=False)"),
                     ("table_patients_per_s_without_explanations_one_thread",
                      "score_table, no explanations, one thread (threads=1)"),
                     ("table_patients_per_s_without_explanations_complete_inputs_one_thread",
                      "score_table, every covariate filled in, one thread"),
                     ("dicts_batch100_patients_per_s_without_explanations", "score(), dicts, batches of 100, no explanations"),
                     ("dicts_batch100_patients_per_s_with_explanations", "score(), dicts, batches of 100, with explanations")):
        if k in ip:
            cpu = ip.get(k.replace("_per_s", "_per_cpu_s"))
            lines.append(f"| {label} | {ip[k]:,.0f} | {f'{cpu:,.0f}' if cpu else ''} |")
    lines += ["", f"Single patient in-process: p50 {ip['single_patient_ms_p50']:.1f} ms, p99 {ip['single_patient_ms_p99']:.1f} ms."]
    if "loadavg_before" in ip:
        lines.append("Load average during the in-process part: before "
                     f"{', '.join(f'{x:.2f}' for x in ip['loadavg_before'])}; after "
                     f"{', '.join(f'{x:.2f}' for x in ip['loadavg_after'])}.")
    lines.append("")
    h = res.get("http") or {}
    if "ours" in h:
        nw = h.get("workers", 1)
        sv = h.get("server", {})
        lines += [f"uvicorn with {sv.get('uvicorn_http', '?')} and {sv.get('uvicorn_loop', '?')} for both servers; "
                  f"{h.get('rounds', 1)} interleaved rounds per row, the median round shown (requests/s of every "
                  "round in brackets).", "",
                  f"| HTTP endpoint (wrk, loopback, {nw} worker process{'es' if nw > 1 else ''} each) | concurrency | "
                  "requests/s | p50 ms | p99 ms | non-2xx |",
                  "|---|---|---|---|---|---|"]
        names = {"ours": "ours: POST /v1/score (validation, intervals, explanation, logs)",
                 "bare_treeshap": "bare FastAPI: 2 x 300-tree LightGBM predict + shap TreeSHAP",
                 "bare_no_treeshap": "bare FastAPI: 2 x 300-tree LightGBM predict"}
        for key, label in names.items():
            for r in h[key]:
                spread = " [" + ", ".join(f"{x:.0f}" for x in r["rps_rounds"]) + "]" if "rps_rounds" in r else ""
                lines.append(f"| {label} | {r['concurrency']} | {r['rps']:.0f}{spread} | {r['p50_ms']:.1f} | "
                             f"{r['p99_ms']:.1f} | {r['non_2xx'] + r['socket_errors']} |")
        sk = h.get("soak", {})
        if sk:
            lines += ["", f"Soak at concurrency 16: {sk['requests']:,} + {sk['more_requests']:,} requests, "
                          f"{sk['errors']} errors; server VmRSS {sk['rss_kb_before'] / 1024:.0f} MiB before, "
                          f"{sk['rss_kb_after'] / 1024:.0f} MiB after the first {sk['requests']:,}, "
                          f"{sk['rss_kb_after_more'] / 1024:.0f} MiB after the rest."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--comparator", default="usual_care")
    ap.add_argument("--n", type=int, default=20000, help="patients for the in-process batch")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    ap.add_argument("--soak", type=int, default=20000, help="requests for the memory soak")
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--workers", type=int, default=1, help="worker processes for both HTTP servers")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the HTTP runs (median reported)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scoring.json")
    ap.add_argument("--render", type=Path, default=None, help="only print the Markdown of a results JSON")
    a = ap.parse_args(argv)
    if a.render:
        print(render(json.loads(a.render.read_text())))
        return
    from predict import Scorer

    model = a.model
    if model is None:
        from lbp_benefit.default_model import ensure_default_model

        model = ensure_default_model(log=print)
    scorer = Scorer.load(model)
    res = {"machine_start": machine(), "model_id": scorer.model_id, "model": str(model),
           "tasks": {t["task"]: t["kind"] for t in scorer.manifest["tasks"]}}
    res["in_process"] = in_process(scorer, a.comparator, a.n)
    print(json.dumps(res["in_process"], indent=1), flush=True)
    if not a.no_http:
        res["http"] = http(model, scorer, a.comparator, a.duration, a.soak, a.workers, a.rounds)
    res["machine_end"] = machine()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1) + "\n")
    a.out.with_suffix(".md").write_text(render(res))
    print(render(res))
    print(f"wrote {a.out} and {a.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
