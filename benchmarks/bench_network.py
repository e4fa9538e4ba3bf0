"""Benchmark of training/network (not a test; figures go to BENCHMARKS.md).

1. Cross-check against R metafor (Debian r-cran-metafor; netmeta is not packaged by Debian) on the
   Senn et al. (2013) diabetes network: runs bench_network_metafor.R and reports the largest
   differences in τ², log-likelihood, effects, SEs, Q and the design-by-treatment statistic.
2. Known truth: the network simulator over several seeds — bias and 95% CI coverage of every
   node's effect vs exercise (pain, short term) for the IPD + aggregate NMA and the one-stage
   IPD network model, and the rejection rate of the design-by-treatment test (consistent truth).

Usage: .venv/bin/python benchmarks/bench_network.py [--seeds 10]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd


def metafor_check() -> None:
    from training.network import design_by_treatment, fit_nma, load_aggregate

    if shutil.which("Rscript") is None:
        print("Rscript not found: skipping the metafor cross-check")
        return
    senn = str(resources.files("training.network").joinpath("examples/senn2013_arms.csv"))
    out = Path(tempfile.mkdtemp()) / "ref.csv"
    r = subprocess.run(["Rscript", str(Path(__file__).with_name("bench_network_metafor.R")), senn, "placebo", str(out)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print("metafor run failed:", r.stderr[-500:])
        return
    print(r.stdout.splitlines()[0])
    ref = pd.read_csv(out).set_index("quantity")["value"]
    st = load_aggregate(senn)
    re, fe = fit_nma(st, reference="placebo"), fit_nma(st, reference="placebo", method="fixed")
    dbt = design_by_treatment(re)
    diffs = {"tau2": abs(re.tau2 - ref["tau2_reml"]), "loglik": abs(re.loglik - ref["loglik_reml"]),
             "Q": abs(fe.Q - ref["Q_fixed"]), "dbt_chi2": abs(dbt["chi2"] - ref["dbt_chi2"]),
             "tau2_inconsistency": abs(dbt["tau2_inconsistency"] - ref["tau2_inconsistency"]),
             "Q_between_designs": abs(dbt["Q_between"] - ref["Q_between_designs_fixed"])}
    for kind, res in (("re", re), ("fe", fe)):
        d = [abs(res.d[t] - ref[f"d_{kind}[{t}]"]) for t in res.treatments if t != "placebo"]
        s = [abs(np.sqrt(res.vcov.loc[t, t]) - ref[f"se_{kind}[{t}]"]) for t in res.treatments if t != "placebo"]
        diffs[f"max |d| diff ({kind})"] = max(d)
        diffs[f"max |se| diff ({kind})"] = max(s)
    print(f"Senn 2013: tau2 {re.tau2:.6f} (metafor {ref['tau2_reml']:.6f}); design-by-treatment chi2 "
          f"{dbt['chi2']:.4f} on {dbt['df']} df (metafor {ref['dbt_chi2']:.4f}); Q {fe.Q:.3f}")
    for k, v in diffs.items():
        print(f"  {k:<28} {v:.2e}")


def size_check(reps: int = 200) -> None:
    """Rejection rates of the inconsistency tests on consistent networks generated from the model."""
    from training.network import design_by_treatment, fit_nma, node_split
    from training.network.data import StudyContrasts

    rng = np.random.default_rng(7)
    d = {"A": 0.0, "B": -2.0, "C": 1.0, "D": -0.5}
    designs = [("A", "B")] * 4 + [("A", "C")] * 4 + [("B", "D")] * 3 + [("C", "D")] * 3 + [("A", "B", "C")] * 2
    dbt, ns = [], []
    for i in range(reps):
        st = []
        for k, des in enumerate(designs):
            m = len(des) - 1
            v = rng.uniform(1.0, 4.0, len(des))
            S = np.diag(v[1:]) + v[0]
            mu = np.array([d[t] - d[des[0]] for t in des[1:]])
            st.append(StudyContrasts(f"s{k}", des, rng.multivariate_normal(mu, S + 1.5**2 * 0.5 * (np.eye(m) + 1)), S))
        r = fit_nma(st, reference="A")
        dbt.append(design_by_treatment(r)["p"] < 0.05)
        if i < reps * 3 // 10:
            ns += list(node_split(r)["p"] < 0.05)
    print(f"\nsize at 5%: design-by-treatment {np.mean(dbt):.3f} ({reps} networks), node-split {np.mean(ns):.3f} "
          f"({len(ns)} splits)")


def truth_check(seeds: int) -> None:
    from training.network import design_by_treatment, fit_nma
    from training.network.ipd import aggregate_contrasts, combine, fit_ipd_network, ipd_contrasts
    from training.simulate.network import node_truth, simulate_network

    rows, dbt_p, ipd_p = [], [], []
    t0 = time.time()
    for seed in range(1, seeds + 1):
        ns = simulate_network(seed=seed)
        a = ns.ipd_analysis()
        truth = node_truth(ns.scenario, "pain", "short")
        st, _ = combine(ipd_contrasts(a, "pain", "short"), aggregate_contrasts(ns.aggregate, "pain", "short"))
        nma = fit_nma(st, reference="exercise")
        dbt_p.append(design_by_treatment(nma)["p"])
        one = fit_ipd_network(a, "pain", "short")
        ipd_p.append(one.consistency["p"])
        for name, v in (("IPD+aggregate NMA", nma.versus("exercise")), ("one-stage IPD", one.versus())):
            for r in v.itertuples():
                rows.append({"model": name, "node": r.treatment, "error": r.estimate - truth[r.treatment],
                             "covered": r.ci_low <= truth[r.treatment] <= r.ci_high, "se": r.se})
    df = pd.DataFrame(rows)
    summ = df.groupby(["model", "node"]).agg(bias=("error", "mean"), rmse=("error", lambda e: float(np.sqrt((e**2).mean()))),
                                             mean_se=("se", "mean"), coverage=("covered", "mean")).round(2)
    print(f"\n{seeds} seeds ({time.time() - t0:.0f} s); pain, short term, node − exercise vs truth")
    print(summ.to_string())
    print(df.groupby("model")["covered"].mean().round(3).to_string())
    print(f"design-by-treatment p < 0.05: NMA {np.mean(np.array(dbt_p) < 0.05):.2f}, "
          f"one-stage IPD {np.mean(np.array(ipd_p) < 0.05):.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    metafor_check()
    size_check()
    truth_check(args.seeds)
