"""ML-NMR against the network simulator's truth, and its fitting time.

Coverage (``--seeds N``, default 20): per seed, ``simulate_network(seed, include_base_trials=False)``
(the 33 active/passive/combined physiotherapy trials: 7 as IPD, 26 as aggregate arm summaries
with covariate summaries), pain at short-term follow-up, ML-NMR with covariates baseline, age,
female (random effects, interactions shared by exercise content, 4 chains). Checked per node:

* population-adjusted effect: the posterior of d_c(x̄) at the network's mean covariates against
  the realised truth (the average over every simulated participant of E[Y | c] − E[Y | exercise],
  ``realised_truth``);
* individual benefit: for up to 150 IPD participants per seed, the 95% CrI of d_c + (x − x̄)'γ_c
  against that participant's true E[Y | c, x] − E[Y | exercise, x] (truth table).

Timing (``--time-default``): the default network (the 27 hayden2020 IPD trials + 7 IPD P trials +
the 26 aggregate P trials; pain, short term) with 4 chains x (500 warm-up + 500 draws), wall and
CPU seconds (the machine's load is recorded).

    PYTHONPATH=. python benchmarks/bench_mlnmr.py --seeds 20 [--samples 300] [--time-default]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

NODE_TRUTH = {"passive_physio": "passive_physio", "combined": "combined", "usual_care": "usual_care",
              "no_treatment_placebo": "no_treatment"}


COVARIATES = ("baseline", "age", "female", "bmi", "episode_months")


def projection_truth(ns, covariates, outcome: str = "pain", follow_up: str = "short") -> dict:
    """Per node, the best linear predictor of the true individual benefit from the model's
    covariates over every simulated participant of the network (IPD and aggregate trials): the
    estimand of a model linear in these covariates when other (unmeasured) modifiers also act.
    Returns node -> (intercept, coefficients)."""
    from training.simulate.network import analysis_frame

    a = analysis_frame(ns.sim)
    a = a[(a["outcome"] == outcome) & (a["follow_up"] == follow_up)].dropna(subset=list(covariates))
    tt = ns.sim.truth
    tt = tt[(tt["outcome"] == outcome) & (tt["follow_up"] == follow_up)]
    a = a.merge(tt, on=["trial", "participant", "follow_up", "outcome"], how="inner", suffixes=("", "_t"))
    X = np.column_stack([np.ones(len(a))] + [a[c].to_numpy(float) for c in covariates])
    out = {}
    for node, cls in NODE_TRUTH.items():
        col = f"benefit_vs_{cls}"
        if col in a.columns:
            b = np.linalg.lstsq(X, a[col].to_numpy(float), rcond=None)[0]
            out[node] = (float(b[0]), b[1:])
    return out


def one_seed(seed: int, samples: int, chains: int = 4, covariates=COVARIATES, chain_method: str = "sequential",
             max_samples: int | None = None) -> dict:
    import resource

    from training.network.mlnmr_lbp import fit_lbp_network
    from training.simulate.network import realised_truth, simulate_network

    ns = simulate_network(seed=seed, include_base_trials=False)
    a = ns.ipd_analysis()
    c0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    fit = fit_lbp_network(a, ns.aggregate, "pain", "short", covariates=covariates, num_warmup=samples,
                          num_samples=samples, seed=seed, num_chains=chains, check=False, chain_method=chain_method,
                          max_samples=max_samples)
    secs = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
    proj = projection_truth(ns, list(fit.data.covariates))
    D = fit.data
    truth = realised_truth(ns.sim, "pain", "short")
    re = fit.relative_effects(D.centre)
    pop = {}
    for node, cls in NODE_TRUTH.items():
        if node in D.treatments and cls in truth:
            v = re[:, D.treatments.index(node)]
            lo, hi = np.quantile(v, [0.025, 0.975])
            pop[node] = {"mean": float(v.mean()), "lo": float(lo), "hi": float(hi), "truth": float(truth[cls]),
                         "covered": bool(lo <= truth[cls] <= hi)}
    # individual benefits of IPD participants
    tt = ns.sim.truth
    tt = tt[(tt["outcome"] == "pain") & (tt["follow_up"] == "short")]
    ipd = a[(a["outcome"] == "pain") & (a["follow_up"] == "short")].dropna(subset=list(D.covariates))
    ipd = ipd.merge(tt, on=["trial", "participant", "follow_up", "outcome"], how="inner", suffixes=("", "_t"))
    ipd = ipd.sample(n=min(150, len(ipd)), random_state=seed)
    ind = {}
    g = fit.gamma()
    d = fit.d()
    X = ipd[list(D.covariates)].to_numpy(float) - D.centre
    for node, cls in NODE_TRUTH.items():
        col = f"benefit_vs_{cls}"
        if node not in D.treatments or col not in ipd.columns:
            continue
        j = D.treatments.index(node)
        B = d[:, j][:, None] + np.einsum("np,sp->sn", X, g[:, j, :])  # (draws, participants)
        lo, hi = np.quantile(B, [0.025, 0.975], axis=0)
        tr = ipd[col].to_numpy(float)
        b0, b = proj[node]
        tp = b0 + ipd[list(D.covariates)].to_numpy(float) @ b
        ind[node] = {"n": int(len(tr)), "covered": float(np.mean((lo <= tr) & (tr <= hi))),
                     "covered_projection": float(np.mean((lo <= tp) & (tp <= hi))),
                     "mean_width": float(np.mean(hi - lo))}
    dg = fit.diagnostics
    return {"seed": seed, "seconds": round(secs, 1), "cpu_seconds": round(cpu, 1), "loadavg_1": os.getloadavg()[0],
            "ok": dg["ok"], "max_rhat": dg["max_rhat"], "min_ess_bulk": dg["min_ess_bulk"],
            "min_ess_tail": dg["min_ess_tail"], "divergences": dg["divergences"], "problems": dg["problems"],
            "draws_per_chain": dg["samples"], "extensions": dg.get("extensions", 0),
            "covariates": list(D.covariates), "population": pop, "individual": ind, "tau": float(np.median(fit.tau()))}


def clopper_pearson(k: int, n: int, level: float = 0.95) -> list:
    """Exact binomial interval for a coverage proportion k / n."""
    from scipy.stats import beta

    a = (1 - level) / 2
    lo = beta.ppf(a, k, n - k + 1) if k > 0 else 0.0
    hi = beta.ppf(1 - a, k + 1, n - k) if k < n else 1.0
    return [float(lo), float(hi)]


def seed_bootstrap(seeds: list, field: str, n_boot: int = 4000, level: float = 0.95) -> list:
    """Percentile interval of the participant-weighted individual coverage, resampling seeds (the
    participants of one seed share its fit, so their coverage events are not independent)."""
    rng = np.random.default_rng(2026)
    hit = np.array([sum(v[field] * v["n"] for v in r["individual"].values()) for r in seeds])
    n = np.array([sum(v["n"] for v in r["individual"].values()) for r in seeds])
    idx = rng.integers(0, len(seeds), (n_boot, len(seeds)))
    cov = hit[idx].sum(1) / n[idx].sum(1)
    return [float(np.quantile(cov, (1 - level) / 2)), float(np.quantile(cov, 1 - (1 - level) / 2))]


def time_default(samples: int, chain_method: str = "sequential") -> list:
    """The default network's pain/short then function/short in one process (the second reuses the
    compiled sampler when its padded sizes match): wall and CPU seconds of each fit."""
    from training.network.mlnmr_lbp import fit_lbp_network
    from training.simulate.network import simulate_network

    ns = simulate_network(seed=1)
    a = ns.ipd_analysis()
    out = []
    for outcome in ("pain", "function"):
        c0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        fit = fit_lbp_network(a, ns.aggregate, outcome, "short", num_warmup=samples, num_samples=samples, check=False,
                              chain_method=chain_method)
        wall = time.perf_counter() - t0
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        out.append({"task": f"{outcome}__short", "wall_seconds_incl_compile": round(wall, 1),
                    "cpu_seconds": round(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime, 1),
                    "loadavg_1_5_15": os.getloadavg(), "data": fit.data.summary(),
                    "diagnostics": {k: v for k, v in fit.diagnostics.items() if k != "by_parameter"}})
        print(json.dumps({k: v for k, v in out[-1].items() if k != "data"}), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--max-samples", type=int, default=None,
                    help="continue chains by --samples draws while R-hat/ESS miss the thresholds, up to this many per chain")
    ap.add_argument("--time-default", action="store_true")
    ap.add_argument("--chain-method", default="sequential")
    ap.add_argument("--summary-of", type=Path, nargs="*", help="only summarise these result files together")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/mlnmr_coverage.json"))
    a = ap.parse_args()
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.platform(),
           "cpus": os.cpu_count(), "samples": a.samples, "max_samples": a.max_samples, "chains": a.chains, "seeds": []}
    if a.summary_of:
        seen = set()
        for f in a.summary_of:
            for r in json.loads(f.read_text("utf-8"))["seeds"]:
                if r["seed"] not in seen:
                    seen.add(r["seed"])
                    res["seeds"].append(r)
        res["seeds"].sort(key=lambda r: r["seed"])
        a.seeds = 0
    if a.out.is_file() and not a.summary_of:  # resume: keep the seeds before --first-seed
        old = json.loads(a.out.read_text("utf-8"))
        res["seeds"] = [s for s in old.get("seeds", []) if s["seed"] < a.first_seed]
    for s in range(a.first_seed, a.first_seed + a.seeds):
        r = one_seed(s, a.samples, a.chains, max_samples=a.max_samples)
        res["seeds"].append(r)
        print(json.dumps({k: r[k] for k in ("seed", "seconds", "ok", "max_rhat")}), flush=True)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1), "utf-8")
    if not res["seeds"]:
        if a.time_default:
            res["default_network_timing"] = time_default(500, a.chain_method)
        a.out.write_text(json.dumps(res, indent=1), "utf-8")
        return
    pops = [(n, v["covered"]) for r in res["seeds"] for n, v in r["population"].items()]
    inds = [(n, v["covered"], v["n"]) for r in res["seeds"] for n, v in r["individual"].items()]
    res["summary"] = {
        "seeds": len(res["seeds"]), "converged": sum(r["ok"] for r in res["seeds"]),
        "population_coverage": float(np.mean([c for _, c in pops])) if pops else None,
        "population_coverage_by_node": {n: float(np.mean([c for m, c in pops if m == n])) for n in {m for m, _ in pops}},
        "individual_coverage": float(np.average([c for _, c, _ in inds], weights=[k for *_, k in inds])) if inds else None,
        "individual_coverage_by_node": {n: float(np.average([c for m, c, _ in inds if m == n],
                                                            weights=[k for m, _, k in inds if m == n]))
                                        for n in {m for m, *_ in inds}},
        "individual_projection_coverage": float(np.average(
            [v["covered_projection"] for r in res["seeds"] for v in r["individual"].values()],
            weights=[v["n"] for r in res["seeds"] for v in r["individual"].values()])) if inds else None,
        "individual_projection_coverage_by_node": {n: float(np.average(
            [r["individual"][n]["covered_projection"] for r in res["seeds"] if n in r["individual"]],
            weights=[r["individual"][n]["n"] for r in res["seeds"] if n in r["individual"]])) for n in {m for m, *_ in inds}},
        "population_covered": int(sum(c for _, c in pops)), "population_checks": len(pops),
        "population_coverage_95ci_clopper_pearson": clopper_pearson(int(sum(c for _, c in pops)), len(pops)),
        "individual_projection_coverage_95ci_seed_bootstrap": seed_bootstrap(res["seeds"], "covered_projection"),
        "individual_coverage_95ci_seed_bootstrap": seed_bootstrap(res["seeds"], "covered"),
        "extended_fits": sum(r.get("extensions", 0) > 0 for r in res["seeds"]),
        "median_cpu_seconds": float(np.median([r.get("cpu_seconds", np.nan) for r in res["seeds"]])),
        "median_fit_seconds": float(np.median([r["seconds"] for r in res["seeds"]])),
    }
    if a.time_default:
        res["default_network_timing"] = time_default(500, a.chain_method)
    a.out.write_text(json.dumps(res, indent=1), "utf-8")
    print(json.dumps(res["summary"], indent=1))



if __name__ == "__main__":
    main()
