"""Benchmark the mixed-model engine against R (lme4, glmmTMB, nlme) on IPD-meta-analysis-sized data.

Simulates (seeded) ~3500 participants in 27 trials and fits the one-stage interaction model

    y ~ trial intercepts + baseline + treat + modifier + treat:modifier, random (treat, baseline | trial)

as a linear mixed model (REML; common and trial-specific residual variances) and as a logistic
GLMM (Laplace), plus an "adjusted" variant with trial-stratified baseline and modifier terms and a
random treatment effect only. Prints time per model (median of repeats for this engine; one run
per R fit) and the largest differences in estimates against each R engine.

    .venv/bin/python benchmarks/bench_mixed_vs_lme4.py [--repeats 5] [--skip-r] [--models lmm glmm ...]

R is optional (Debian: apt-get install r-base-core r-cran-lme4 r-cran-glmmtmb); without
``Rscript`` only this engine's timings are printed. lme4 is run with tight tolerances
(bobyqa rhoend 1e-12; glmer tolPwrss 1e-12), so its times are upper-end figures.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.mixed import fit_glmm_binomial, fit_lmm  # noqa: E402
from training.mixed.simulate import simulate_ipd  # noqa: E402

ALL_MODELS = ["lmm", "lmm_strat", "lmm_by_group", "glmm", "glmm_strat"]
SEED = 20240611


def make_data(binary: bool) -> pd.DataFrame:
    if binary:
        df = simulate_ipd(SEED, outcome="binary", tau=0.5, slope_sd=0.3)
        df["baseline"] = (df["baseline"] - 60) / 20
    else:
        df = simulate_ipd(SEED, tau=3.0, slope_sd=0.1, resid_sd=np.linspace(11, 19, 27))
        df["baseline"] = df["baseline"] - 60
    return df


def design(df: pd.DataFrame, stratified: bool):
    """Same columns and names as R's model.matrix for the formulas in r/fit_lme4.R."""
    trials = sorted(df["trial"].unique())
    D = (df["trial"].to_numpy()[:, None] == np.asarray(trials)[None, :]).astype(float)
    base, treat, mod = (df[c].to_numpy(float) for c in ("baseline", "treat", "modifier"))
    tn = [f"trial{t}" for t in trials]
    if stratified:
        X = np.column_stack([D, treat, D * base[:, None], D * mod[:, None], treat * mod])
        names = tn + ["treat"] + [f"{t}:baseline" for t in tn] + [f"{t}:modifier" for t in tn] + ["treat:modifier"]
        Z, rn = treat[:, None], ["treat"]
    else:
        X = np.column_stack([D, base, treat, mod, treat * mod])
        names = tn + ["baseline", "treat", "modifier", "treat:modifier"]
        Z, rn = np.column_stack([treat, base]), ["treat", "baseline"]
    return X, Z, names, rn


def fit_ours(model: str, df: pd.DataFrame):
    X, Z, fn, rn = design(df, "strat" in model)
    if model.startswith("lmm"):
        residual = "by_group" if model == "lmm_by_group" else "common"
        return fit_lmm(df["y"], X, Z, df["trial"], fixed_names=fn, random_names=rn, residual=residual)
    return fit_glmm_binomial(df["y"], X, Z, df["trial"], fixed_names=fn, random_names=rn)


def time_ours(model: str, df: pd.DataFrame, repeats: int):
    fit_ours(model, df)  # warm-up (imports, caches)
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        res = fit_ours(model, df)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return res, float(np.median(times)), times, float(np.median(cpu))


def run_r(models, data_paths):
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None
    script = Path(__file__).with_name("r") / "fit_lme4.R"
    out = {}
    for kind, ms in (("continuous", [m for m in models if m.startswith("lmm")]),
                     ("binary", [m for m in models if m.startswith("glmm")])):
        if not ms:
            continue
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
            res_path = fh.name
        proc = subprocess.run([rscript, str(script), data_paths[kind], res_path, *ms], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"R failed for {ms}:\n{proc.stderr[-2000:]}")
            continue
        out.update(json.loads(Path(res_path).read_text()))
        os.unlink(res_path)
    return out


def _f(v):
    """R's NA arrives as a string: map it to NaN."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def compare(ours, theirs):
    """Largest |difference| in fixed effects (in units of our SE), covariate SEs (relative), RE SDs (relative),
    correlation (absolute), residual SD (relative), and logLik difference (ours - theirs)."""
    fe = {k: _f(v) for k, v in theirs["fixef"].items() if k in ours.params.index}
    d_fe = max(abs(ours.params[k] - v) / ours.bse[k] for k, v in fe.items())
    d_fe_abs = max(abs(ours.params[k] - v) for k, v in fe.items())
    # SEs of the covariate effects (trial-intercept SEs differ by construction for glmmTMB's REML,
    # which takes them from the joint Hessian)
    d_se = max(abs(ours.bse[k] / _f(theirs["se"][k]) - 1) for k in fe if not k.startswith("trial"))
    sd_t = {k: _f(v) for k, v in theirs["re_sd"].items()}
    d_sd = max(abs(ours.re_sd[k] - sd_t[k]) / max(abs(sd_t[k]), abs(ours.re_sd[k]), 1e-12) for k in ours.re_sd.index)
    d_corr = (abs(ours.re_corr.iloc[1, 0] - _f(theirs["re_corr"][0]))
              if len(ours.re_sd) > 1 and theirs.get("re_corr") else float("nan"))
    if ours.sigma_by_group is not None and theirs.get("sigma_by_group"):
        sg = theirs["sigma_by_group"]
        sgv = np.asarray([_f(v) for v in (sg.values() if isinstance(sg, dict) else sg)])
        keys = list(sg.keys()) if isinstance(sg, dict) else None
        ourv = (ours.sigma_by_group.loc[[k for k in keys]].to_numpy() if keys and keys[0] in ours.sigma_by_group.index
                else ours.sigma_by_group.to_numpy())
        d_sig = float(np.max(np.abs(ourv / sgv - 1)))
    elif ours.sigma is not None and theirs.get("sigma") is not None:
        d_sig = abs(ours.sigma / _f(theirs["sigma"]) - 1)
    else:
        d_sig = float("nan")
    return dict(n_fe=len(fe), d_fe_se=d_fe, d_fe_abs=d_fe_abs, d_se_rel=d_se, d_sd_rel=d_sd, d_corr=d_corr,
                d_sigma_rel=d_sig, d_loglik=ours.loglik - _f(theirs["logLik"]))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-r", action="store_true")
    ap.add_argument("--models", nargs="+", default=ALL_MODELS, choices=ALL_MODELS)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--r-cache", help="JSON file of R results: read if it exists, else written after running R")
    args = ap.parse_args(argv)

    data = {"continuous": make_data(False), "binary": make_data(True)}
    print(f"date {datetime.date.today().isoformat()}  nproc {os.cpu_count()}  CPU {cpu_model()}  "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"python {platform.python_version()}  numpy {np.__version__}")
    for k, df in data.items():
        print(f"data {k}: {len(df)} participants, {df['trial'].nunique()} trials (seed {SEED})")

    ours = {}
    print("\nthis engine (median of %d runs after a warm-up):" % args.repeats)
    for m in args.models:
        res, med, times, cpu = time_ours(m, data["binary" if m.startswith("glmm") else "continuous"], args.repeats)
        ours[m] = (res, med)
        print(f"  {m:13s} p={len(res.params):3d} q={len(res.random_names)}  wall {med:6.3f} s "
              f"(min {min(times):.3f}, max {max(times):.3f})  CPU {cpu:6.3f} s  status={res.status}  "
              f"RE SD={', '.join(f'{k} {v:.4g}' for k, v in res.re_sd.items())}")

    r_res = None
    r_wall = float("nan")
    if args.r_cache and Path(args.r_cache).exists() and not args.skip_r:
        r_res = {k: v for k, v in json.loads(Path(args.r_cache).read_text()).items()
                 if k.split("/")[0] in args.models}
        print(f"\nR results read from {args.r_cache}")
    elif not args.skip_r:
        with tempfile.TemporaryDirectory() as tmp:
            paths = {}
            for k, df in data.items():
                paths[k] = str(Path(tmp) / f"{k}.csv")
                df.to_csv(paths[k], index=False)
            t0 = time.perf_counter()
            r_res = run_r(args.models, paths)
            r_wall = time.perf_counter() - t0
        if r_res is None:
            print("\nRscript not found: R comparison skipped")
        elif args.r_cache:
            Path(args.r_cache).write_text(json.dumps(r_res))
    rows = []
    if r_res:
        print(f"\nR engines (one run each; total R wall time {r_wall:.0f} s incl. start-up and nlme):")
        hdr = (f"  {'model':13s} {'engine':8s} {'R time':>8s} {'ours':>7s} {'speed-up':>8s} {'max|dFE|/SE':>11s} "
               f"{'max|dFE|':>9s} {'max dSE':>8s} {'max dSD':>8s} {'d corr':>8s} {'d sigma':>8s} {'dlogLik':>9s}")
        print(hdr)
        for key, theirs in r_res.items():
            m, eng = key.split("/")
            res, med = ours[m]
            c = compare(res, theirs)
            rows.append(dict(model=m, engine=eng, r_time=theirs["time"], ours_time=med, **c,
                             r_messages=theirs.get("messages", [])))
            print(f"  {m:13s} {eng:8s} {theirs['time']:8.2f} {med:7.3f} {theirs['time'] / med:8.1f} "
                  f"{c['d_fe_se']:11.2e} {c['d_fe_abs']:9.2e} {c['d_se_rel']:8.1e} {c['d_sd_rel']:8.1e} "
                  f"{c['d_corr']:8.1e} {c['d_sigma_rel']:8.1e} {c['d_loglik']:9.2e}")
            if theirs.get("messages"):
                print(f"  {'':13s} {eng} messages: {'; '.join(map(str, theirs['messages']))}")
        print("\n  dFE over all fixed effects with matching names; dSE over covariate effects; dSE, d sigma relative; "
              "dSD relative to the larger SD; "
              "dlogLik = ours - theirs (> 0: our optimum is higher).")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "date": datetime.date.today().isoformat(), "nproc": os.cpu_count(), "cpu": cpu_model(),
            "loadavg": os.getloadavg(),
        "ours": {m: dict(time=med, status=res.status) for m, (res, med) in ours.items()},
            "comparisons": rows}, indent=1, default=float))


if __name__ == "__main__":
    main()
