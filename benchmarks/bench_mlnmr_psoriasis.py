"""ML-NMR vs multinma's published plaque psoriasis example (Phillippo et al. 2020, JRSS A 183:1189;
multinma vignette "Example: Plaque psoriasis ML-NMR", initial analysis).

Same data and model as the vignette: IPD of UNCOVER-1, -2, -3 (multinma's simulated
``plaque_psoriasis_ipd``) and aggregate PASI 75 counts of FIXTURE; covariates durnpso/10, prevsys,
bsa/100, weight/10, psa (complete cases); margins gamma / Bernoulli / logit-normal / gamma /
Bernoulli; 64 QMC integration points; copula correlation from the IPD (Spearman, adjusted);
fixed effects, probit link, ``bernoulli2`` aggregate likelihood, interactions common within class
(placebo / TNFa blocker / IL blocker); N(0, 10²) priors on intercepts, effects and regression
coefficients; covariates centred at the n-weighted overall means.

Published (vignette output, multinma with Stan, 4 chains x 1000 draws): the treatment effects d_k at
the centring values and the population-adjusted relative effects d_k(x̄_j) in each study
population. Tolerance: |ours − published| <= 0.03 on the probit scale (published values are
rounded to 0.01; posterior SDs are 0.08–0.12, Monte Carlo SEs ~0.003) and posterior SDs within
0.02.

Data: the multinma files (GPL-3, not redistributed here) — ``data-raw/plaque_psoriasis/dummy_ipd.csv``
and ``all_agd.csv`` from github.com/dmphillippo/multinma — in ``--data-dir`` (default
/work/shared/multinma, with the names plaque_psoriasis_dummy_ipd.csv / plaque_psoriasis_all_agd.csv).
Sampler: 4 chains x (samples + samples) by the package's sampler (``--chain-method sequential``,
training.network.mlnmr_nuts: Laplace start and metric) or NumPyro's MCMC (``vectorized``).

    PYTHONPATH=. python benchmarks/bench_mlnmr_psoriasis.py [--samples 1000] [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

# multinma vignette, print(pso_fit_FE) and relative_effects(pso_fit_FE): (mean, sd)
PUBLISHED_D = {"ETN": (1.55, 0.08), "IXE_Q2W": (2.95, 0.09), "IXE_Q4W": (2.54, 0.08), "SEC_150": (2.14, 0.12),
               "SEC_300": (2.45, 0.12)}
PUBLISHED_RELEFF = {
    "FIXTURE": {"ETN": (1.66, 0.09), "IXE_Q2W": (3.03, 0.10), "IXE_Q4W": (2.61, 0.10), "SEC_150": (2.22, 0.12),
                "SEC_300": (2.52, 0.12)},
    "UNCOVER-1": {"ETN": (1.51, 0.09), "IXE_Q2W": (2.92, 0.09), "IXE_Q4W": (2.51, 0.08), "SEC_150": (2.11, 0.12),
                  "SEC_300": (2.42, 0.12)},
    "UNCOVER-2": {"ETN": (1.51, 0.08), "IXE_Q2W": (2.92, 0.09), "IXE_Q4W": (2.51, 0.08), "SEC_150": (2.11, 0.12),
                  "SEC_300": (2.42, 0.12)},
    "UNCOVER-3": {"ETN": (1.53, 0.08), "IXE_Q2W": (2.94, 0.09), "IXE_Q4W": (2.53, 0.08), "SEC_150": (2.13, 0.12),
                  "SEC_300": (2.43, 0.12)},
}
PUBLISHED_BETA = {"weight:TNFa blocker": (-0.17, 0.04), "weight:IL blocker": (-0.10, 0.03)}
TOL_MEAN, TOL_SD = 0.03, 0.02
CLASSES = {"PBO": "Placebo", "ETN": "TNFa blocker", "IXE_Q2W": "IL blocker", "IXE_Q4W": "IL blocker",
           "SEC_150": "IL blocker", "SEC_300": "IL blocker"}
COVS = ["durnpso", "prevsys", "bsa", "weight", "psa"]
MARGINS = {"durnpso": "gamma", "prevsys": "bernoulli", "bsa": "logitnormal", "weight": "gamma", "psa": "bernoulli"}


def load(data_dir: Path):
    ipd = pd.read_csv(data_dir / "plaque_psoriasis_dummy_ipd.csv")
    ipd = ipd[ipd["study"].isin(["UNCOVER-1", "UNCOVER-2", "UNCOVER-3"])].rename(columns={"study": "trial", "trtc": "treatment"})
    yn = {"Y": 1.0, "N": 0.0, "y": 1.0, "n": 0.0}
    ipd = ipd.assign(pasi75=ipd["pasi75_w12_nri"].map(yn), prevsys=ipd["prevsys"].map(yn), psa=ipd["psa"].map(yn),
                     bsa=ipd["bsa"] / 100, weight=ipd["weight"] / 10, durnpso=ipd["durnpso"] / 10)
    agd = pd.read_csv(data_dir / "plaque_psoriasis_all_agd.csv")
    agd = agd[agd["study"] == "FIXTURE"].rename(columns={"study": "trial", "trtc": "treatment"})
    agd = agd.assign(n=agd["pasi75_n"], r=agd["pasi75_r"], bsa_mean=agd["bsa_mean"] / 100, bsa_sd=agd["bsa_sd"] / 100,
                     prevsys_mean=agd["prevsys"] / 100, psa_mean=agd["psa"] / 100, weight_mean=agd["weight_mean"] / 10,
                     weight_sd=agd["weight_sd"] / 10, durnpso_mean=agd["durnpso_mean"] / 10,
                     durnpso_sd=agd["durnpso_sd"] / 10)
    return ipd, agd


def main() -> None:
    from training.network.mlnmr import Priors, fit_mlnmr
    from training.network.mlnmr_data import build_network

    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=Path("/work/shared/multinma"))
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--chain-method", default="sequential",
                    help="sequential: the package's sampler (training.network.mlnmr_nuts); vectorized: NumPyro's MCMC")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/mlnmr_psoriasis.json"))
    a = ap.parse_args()
    ipd, agd = load(a.data_dir)
    nd = build_network(ipd, agd, outcome="pasi75", outcome_type="binary", covariates=COVS, margins=MARGINS,
                       reference="PBO", classes=CLASSES, n_int=64)
    t0, c0 = time.perf_counter(), time.process_time()
    fit = fit_mlnmr(nd, effects="fixed", link="probit", likelihood="bernoulli2", priors=Priors(intercept=10, trt=10, reg=10),
                    num_warmup=a.samples, num_samples=a.samples, num_chains=4, chain_method=a.chain_method,
                    dense_mass=True, seed=20200701)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows, worst = [], 0.0

    def cmp(label, draws, pub):
        nonlocal worst
        m, s = float(draws.mean()), float(draws.std(ddof=1))
        ok = abs(m - pub[0]) <= TOL_MEAN and abs(s - pub[1]) <= TOL_SD
        worst = max(worst, abs(m - pub[0]))
        rows.append({"quantity": label, "ours_mean": round(m, 4), "ours_sd": round(s, 4), "published_mean": pub[0],
                     "published_sd": pub[1], "diff": round(m - pub[0], 4), "within_tolerance": bool(ok)})

    d = fit.d()
    for j, t in enumerate(nd.treatments):
        if t in PUBLISHED_D:
            cmp(f"d[{t}]", d[:, j], PUBLISHED_D[t])
    for s, pub in PUBLISHED_RELEFF.items():
        re = fit.relative_effects(nd.study_means[s])
        for j, t in enumerate(nd.treatments):
            if t in pub:
                cmp(f"d[{s}: {t}]", re[:, j], pub[t])
    g = fit.flat("gamma")
    for ci, cl in enumerate(nd.class_names[1:]):
        for pj, c in enumerate(COVS):
            key = f"{c}:{cl}"
            if key in PUBLISHED_BETA:
                cmp(f"beta[{key}]", g[:, ci, pj], PUBLISHED_BETA[key])
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.platform(),
           "python": platform.python_version(), "data": nd.summary(), "sampler": {k: v for k, v in fit.diagnostics.items() if k != "by_parameter"},
           "wall_seconds_incl_compile": round(wall, 1), "cpu_seconds_incl_compile": round(cpu, 1),
           "loadavg": os.getloadavg(), "tolerance": {"mean": TOL_MEAN, "sd": TOL_SD},
           "max_abs_diff": round(worst, 4), "all_within_tolerance": all(r["within_tolerance"] for r in rows),
           "comparisons": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2), "utf-8")
    for r in rows:
        print(f"{r['quantity']:26s} ours {r['ours_mean']:6.3f} ({r['ours_sd']:.3f})  published {r['published_mean']:5.2f} "
              f"({r['published_sd']:.2f})  {'ok' if r['within_tolerance'] else 'OUTSIDE'}")
    print(f"max |diff| {worst:.3f}; all within tolerance: {res['all_within_tolerance']}; sampler {res['sampler']}")


if __name__ == "__main__":
    main()
