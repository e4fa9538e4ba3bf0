"""Where one HTTP scoring request's CPU time goes: the real server (uvicorn + httptools on the
asyncio loop, in this process) driven by ``wrk`` at concurrency 1, measured by CPU time, which a
busy shared machine disturbs far less than requests per second.

    python benchmarks/profile_request.py --model ART [--seconds 8] [--multiprocess] [--bare]
        [--log-level info] [--out benchmarks/results/profile_request.json]

Two passes over the same server: (1) without a profiler, the server process's CPU seconds per
request (``time.process_time`` over the wrk window; wrk is another process); (2) under
``cProfile``, every function's own time summed by component (uvicorn/httptools, starlette,
FastAPI request handling, pydantic validation, our middleware, logging, prometheus_client, the
scoring service, the scorer and its parts, orjson, ...) and the inclusive time of the steps of one
request, both per request. The profiler inflates Python-heavy parts more than C-heavy ones, so the
shares are read against pass 1's unprofiled total.

``--bare`` (``--bare-no-shap``): the same for ``benchmarks/bare_lightgbm_api.py`` (LightGBM + TreeSHAP; without TreeSHAP), the comparison
endpoint of ``bench_scoring.py``. ``--multiprocess``: ``PROMETHEUS_MULTIPROC_DIR`` set (a fresh
temporary directory), as ``lbp-benefit serve --workers N`` runs its workers.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_scoring import free_port, machine, wait_ready, wrk  # noqa: E402

# component of a function, by where it is defined (first match wins)
COMPONENTS = (
    ("uvicorn + httptools (HTTP parsing, transport)", ("uvicorn/", "httptools")),
    ("asyncio event loop + socket I/O", ("asyncio/", "selectors.py", "<method 'poll'", "<method 'send'", "<method 'recv")),
    ("FastAPI routing + dependencies", ("fastapi/",)),
    ("starlette (request, response, routing)", ("starlette/",)),
    ("pydantic validation (request models)", ("pydantic", "<method 'validate_python'", "<method 'validate_json'")),
    ("prometheus_client metrics", ("prometheus_client/", "mmap")),
    ("logging (records + JSON formatter)", ("logging/", "serving/logs.py:4", "serving/logs.py:5", "json/")),
    ("our middleware (access, body limit, auth)", ("serving/logs.py", "serving/limits.py", "serving/auth.py")),
    ("scoring service + route (serving/)", ("serving/",)),
    ("orjson rendering", ("orjson",)),
    ("predict: support distance", ("predict/support.py",)),
    ("predict: kernels (numba) + compute", ("predict/fused", "predict/program.py", "predict/compute.py",
                                            "predict/kernels.py", "predict/column_kernels.py", "numba")),
    ("predict: missing-data draws + linear", ("predict/impute.py", "predict/uncertainty.py", "predict/linear.py",
                                              "predict/evaluate.py", "predict/trees.py")),
    ("predict: arm intervals", ("predict/arm_intervals.py",)),
    ("predict: verdicts", ("predict/verdict.py",)),
    ("predict: network comparators", ("predict/network",)),
    ("predict: validation (inputs)", ("predict/inputs.py",)),
    ("predict: warnings", ("predict/clinical_warnings.py",)),
    ("predict: explanations", ("predict/explain.py", "predict/imputed.py")),
    ("predict: result assembly (labels, JSON)", ("predict/results.py", "predict/tables.py")),
    ("predict: other", ("predict/",)),
    ("numpy (called from predict)", ("numpy/", "<method 'reduce'", "<built-in method numpy", "numpy.")),
    ("shap + LightGBM (bare endpoint)", ("shap/", "lightgbm/", "ctypes")),
)

# inclusive (cumulative) time of these steps, per request: (label, file suffix, function name)
STEPS = (
    ("AccessMiddleware (everything inside the server's app call)", "serving/logs.py", "__call__"),
    ("FastAPI: request handler (body, dependencies, endpoint, response)", "fastapi/routing.py", "app"),
    ("FastAPI: solve dependencies (auth + body validation)", "fastapi/dependencies/utils.py", "solve_dependencies"),
    ("FastAPI: request body to arguments", "fastapi/dependencies/utils.py", "request_body_to_args"),
    ("pydantic: validate_python (all calls)", "~", "<method 'validate_python' of 'pydantic_core._pydantic_core.SchemaValidator' objects>"),
    ("route: score_response", "serving/routes/score.py", "score_response"),
    ("ScoringService.score_comparators", "serving/scoring.py", "score_comparators"),
    ("Scorer.score", "predict/scorer.py", "score"),
    ("  validation (Scorer._checked)", "predict/scorer.py", "_checked"),
    ("  engine.compute (kernel, intervals, widening)", "predict/compute.py", "compute"),
    ("    support: widen_task", "predict/support.py", "widen_task"),
    ("  binary arm intervals", "predict/arm_intervals.py", "binary_parts"),
    ("  warnings (patient)", "predict/clinical_warnings.py", "patient"),
    ("    support: rare_patients", "predict/support.py", "rare_patients"),
    ("  explanation", "predict/compute.py", "explain"),
    ("  result assembly (results.assemble)", "predict/results.py", "assemble"),
    ("support_scores (all calls)", "predict/support.py", "support_scores"),
    ("response: render (orjson)", "serving/routes/score.py", "render"),
    ("metrics: prometheus_client inc/observe/labels/set", "prometheus_client/metrics.py", "*"),
    ("logging: Logger._log (records, handlers, formatting)", "logging/__init__.py", "_log"),
    ("logging: JsonFormatter.format", "serving/logs.py", "format"),
)


def build_ours(model: Path, log_level: str, stub: bool = False):
    from serving.app import create_app
    from serving.logs import configure_logging
    from serving.settings import ServingSettings

    configure_logging(log_level, stream=open(os.devnull, "w"))  # the benchmark's server logs to /dev/null too
    settings = ServingSettings(model_path=model, log_level=log_level)
    app = create_app(settings=settings)
    from predict import Scorer  # noqa: F401 - loaded already

    scorer = app.state.scorer
    body = json.dumps({"patient": scorer.example_patient(), "comparator": "usual_care"})
    if stub:  # the HTTP path alone: the scorer answers with a result computed once
        fixed = scorer.score([scorer.example_patient()], "usual_care")
        scorer.score = lambda patients, comparator, outcomes=None, **kw: [fixed[0]] * len(patients)
    return app, "/v1/score", body


def build_bare(shap: bool = True):
    import numpy as np

    from bare_lightgbm_api import create_app

    rng = np.random.default_rng(0)
    feats = [None if rng.random() < 0.3 else float(rng.normal()) for _ in range(19)]
    return create_app(), "/score" if shap else "/score?shap=false", json.dumps({"features": feats})


class Switch:
    """Outermost ASGI wrapper: turns the profiler on/off between requests when the driver asks,
    and counts the requests answered while it was on."""

    def __init__(self, app):
        self.app = app
        self.want = False
        self.prof: cProfile.Profile | None = None
        self.on = False
        self.count = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.prof is not None:
            if self.want and not self.on:
                self.prof.enable()
                self.on = True
            elif not self.want and self.on:
                self.prof.disable()
                self.on = False
        await self.app(scope, receive, send)
        if scope["type"] == "http" and self.on:
            self.count += 1


def component_of(key: tuple) -> str:
    path, _, name = key
    where = f"{path}:{name}"
    for label, needles in COMPONENTS:
        if any(n in where for n in needles):
            return label
    return "other (builtins, C calls)"


def breakdown(prof: cProfile.Profile, n: int) -> dict:
    st = pstats.Stats(prof)
    own: dict[str, float] = {}
    for key, (cc, nc, tt, ct, callers) in st.stats.items():
        own[component_of(key)] = own.get(component_of(key), 0.0) + tt
    steps = {}
    for label, suffix, fn in STEPS:
        if fn == "*":
            tot = sum(v[3] for k, v in st.stats.items() if k[0].endswith(suffix) and k[2] in ("inc", "observe", "labels", "set", "dec"))
        else:
            tot = sum(v[3] for k, v in st.stats.items() if (not suffix or k[0].endswith(suffix)) and k[2] == fn)
        steps[label] = tot / n * 1e6
    total = sum(own.values())
    top = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:40]
    return {"profiled_us_per_request": total / n * 1e6,
            "own_time_us_per_request": {k: v / n * 1e6 for k, v in sorted(own.items(), key=lambda kv: -kv[1])},
            "steps_inclusive_us_per_request": steps,
            "top_own_us_per_request": [[f"{k[0]}:{k[1]}({k[2]})", v[2] / n * 1e6, component_of(k)] for k, v in top]}


def run(app, path: str, body: str, seconds: float, profile: bool) -> dict:
    import uvicorn

    port = free_port()
    sw = Switch(app)
    # CPU time, not wall time: the wait for the next request (epoll) must not count
    sw.prof = cProfile.Profile(time.process_time) if profile else None
    server = uvicorn.Server(uvicorn.Config(sw, host="127.0.0.1", port=port, loop="asyncio", access_log=False,
                                           log_config=None, log_level="warning", lifespan="on"))
    out: dict = {}

    def drive():
        try:
            url = f"http://127.0.0.1:{port}{path}"
            wait_ready(f"http://127.0.0.1:{port}/openapi.json" if path.startswith("/score") else f"http://127.0.0.1:{port}/readyz")
            wrk(url, body, 1, 2)  # warm-up
            sw.want = True
            c0, t0 = time.process_time(), time.perf_counter()
            res = wrk(url, body, 1, seconds)
            c1, t1 = time.process_time(), time.perf_counter()
            sw.want = False
            wrk(url, body, 1, 1)  # one more request switches the profiler off
            out.update(res)
            out["cpu_s"] = c1 - c0
            out["wall_s"] = t1 - t0
            out["cpu_us_per_request"] = (c1 - c0) / max(res["requests"], 1) * 1e6
            out["loadavg"] = os.getloadavg()
        finally:
            server.should_exit = True

    th = threading.Thread(target=drive, daemon=True)
    th.start()
    server.run()
    th.join()
    if profile:
        out.update(breakdown(sw.prof, max(sw.count, 1)))
        out["profiled_requests"] = sw.count
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--bare", action="store_true")
    ap.add_argument("--bare-no-shap", action="store_true", help="the bare endpoint without TreeSHAP")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--multiprocess", action="store_true")
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--stub-scorer", action="store_true",
                    help="the scorer returns a fixed result: the cost of everything around scoring")
    ap.add_argument("--top", type=int, default=0, help="also print the N functions with the most own time")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk (apt-get install wrk)")
    mpdir = None
    if a.multiprocess:
        mpdir = tempfile.mkdtemp(prefix="lbp-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = mpdir
    try:
        if a.bare or a.bare_no_shap:
            app, path, body = build_bare(shap=not a.bare_no_shap)
        else:
            app, path, body = build_ours(a.model, a.log_level, a.stub_scorer)
        res = {"machine": machine(), "target": "bare, no TreeSHAP" if a.bare_no_shap else "bare" if a.bare else "ours", "multiprocess": a.multiprocess,
               "log_level": a.log_level, "stub_scorer": a.stub_scorer, "model": str(a.model) if a.model else None}
        res["unprofiled"] = run(app, path, body, a.seconds, profile=False)
        if not a.no_profile:
            res["profiled"] = run(app, path, body, a.seconds, profile=True)
    finally:
        if mpdir:
            shutil.rmtree(mpdir, ignore_errors=True)
    u = res["unprofiled"]
    print(f"{res['target']} (multiprocess={a.multiprocess}, log={a.log_level}, stub={a.stub_scorer}): {u['cpu_us_per_request']:.0f} us CPU "
          f"per request unprofiled ({u['requests']} requests, {u['rps']:.0f}/s, load {u['loadavg'][0]:.2f})")
    if "profiled" in res:
        p = res["profiled"]
        print(f"profiled: {p['profiled_us_per_request']:.0f} us per request ({p['profiled_requests']} requests)")
        print("own time by component (us per request, profiled):")
        for k, v in p["own_time_us_per_request"].items():
            print(f"  {v:8.1f}  {k}")
        print("inclusive time of steps (us per request, profiled):")
        for k, v in p["steps_inclusive_us_per_request"].items():
            print(f"  {v:8.1f}  {k}")
        for name, us, comp in p["top_own_us_per_request"][:a.top]:
            print(f"  {us:8.1f}  {name}  [{comp}]")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
