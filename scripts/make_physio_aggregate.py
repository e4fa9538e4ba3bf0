"""Regenerate training/network/examples/physio_nma_aggregate.csv: the aggregate arm summaries (n,
mean, SD of the 0-100 follow-up score; covariate summaries) of the simulator's 33 active/passive/
combined physiotherapy trials (29 calibrated to the seed Bayesian NMA's sizes, ages, BMI and
baselines + 4 loop-closing trials). SYNTHETIC.

    PYTHONPATH=. python scripts/make_physio_aggregate.py
"""
from importlib import resources

from training.simulate.network import AGGREGATE_SEED, simulate_network

if __name__ == "__main__":
    ns = simulate_network(seed=AGGREGATE_SEED, include_base_trials=False, ipd_p_trials=())
    out = resources.files("training.network").joinpath("examples/physio_nma_aggregate.csv")
    ns.aggregate.round(4).to_csv(str(out), index=False)
    a = ns.aggregate
    print(f"wrote {out}: {a['trial'].nunique()} trials, {len(a)} rows")
    s = a[(a.outcome == "pain") & (a.follow_up == "short")]
    print(s.groupby("treatment").apply(lambda g: (g.n.sum(), round((g.n * g.baseline_mean).sum() / g.n.sum(), 1),
                                                  round((g.n * g.age_mean).sum() / g.n.sum(), 1))))
