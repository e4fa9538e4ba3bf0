"""``lbp-benefit network``: network meta-analysis of exercise and every alternative."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from lbp_benefit.wording import counted


def network(
    out: Path = typer.Option(..., "--out", help="Report folder to write."),
    aggregate: Optional[Path] = typer.Option(None, "--aggregate", help="Aggregate CSV (arm: trial,treatment,n,mean,sd; or contrast: trial,treatment1,treatment2,estimate,se)."),
    data: Optional[Path] = typer.Option(None, "--data", help="IPD dataset folder (trials analysed as IPD)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Study config YAML for --data."),
    outcome: str = typer.Option("pain", "--outcome", help="Outcome (IPD and aggregate rows with an 'outcome' column)."),
    follow_up: str = typer.Option("short", "--follow-up", help="Follow-up window (short, moderate, long)."),
    reference: str = typer.Option("exercise", "--reference", help="Reference treatment for the forest plot."),
    measure: str = typer.Option("MD", "--measure", help="MD (0-100 mean difference) or SMD (aggregate arm data only)."),
    method: str = typer.Option("nma-frequentist", "--method", help="nma-frequentist (contrast NMA, REML), nma-bayesian "
                               "(Bayesian arm-based NMA, NumPyro) or ml-nmr (Bayesian multilevel network meta-regression "
                               "of IPD + aggregate). REML, ML or fixed: nma-frequentist with that heterogeneity estimator."),
    tau_method: str = typer.Option("REML", "--tau-method", help="nma-frequentist: REML, ML or fixed (common effect)."),
    effects: str = typer.Option("random", "--effects", help="Bayesian methods: random or fixed treatment effects."),
    samples: int = typer.Option(500, "--samples", help="Bayesian methods: warm-up and kept draws per chain."),
    chains: int = typer.Option(4, "--chains", help="Bayesian methods: chains."),
    covariate: Optional[List[str]] = typer.Option(None, "--covariate", help="ml-nmr: covariates (repeatable; default "
                                                  "baseline, age, female). Aggregate rows need <cov>_mean (and _sd)."),
    target: Optional[str] = typer.Option(None, "--target", help="ml-nmr: target population covariate values, e.g. "
                                         "'age=50,female=1,baseline=60' (default: the network's overall means)."),
    checks: bool = typer.Option(True, "--checks/--no-checks", help="Bayesian methods: also fit the UME model "
                                "(inconsistency) and the prior-sensitivity model."),
    larger_better: bool = typer.Option(False, "--larger-better", help="Higher outcome values are better (ranking)."),
    seed: int = typer.Option(1, "--seed", help="Simulator seed when neither --data nor --aggregate is given."),
    ipd_model: bool = typer.Option(True, "--ipd-model/--no-ipd-model", help="Also fit the one-stage IPD network model."),
) -> None:
    """Network meta-analysis (IPD where available, aggregate elsewhere): network graph, league table,
    forest plot, P-scores, design-by-treatment test, node-splitting, direct/indirect evidence."""
    from predict.errors import LbpError
    from training.network.classes import node_of
    from training.network.ipd import aggregate_contrasts, combine, fit_ipd_network, ipd_contrasts
    from training.network.nma import fit_nma
    from training.network.report import write_report

    if method in ("REML", "ML", "fixed"):
        method, tau_method = "nma-frequentist", method
    if method not in ("nma-frequentist", "nma-bayesian", "ml-nmr"):
        raise LbpError("--method must be nma-frequentist, nma-bayesian or ml-nmr")
    if tau_method not in ("REML", "ML", "fixed"):
        raise LbpError("--tau-method must be REML, ML or fixed")
    if effects not in ("random", "fixed"):
        raise LbpError("--effects must be random or fixed")
    if samples < 50 or chains < 1:
        raise LbpError("--samples must be >= 50 and --chains >= 1")
    if measure not in ("MD", "SMD"):
        raise LbpError("--measure must be MD or SMD")
    if measure == "SMD" and (data is not None or aggregate is None):
        raise LbpError("--measure SMD needs aggregate arm data only (IPD contrasts are on the 0-100 MD scale)")
    synthetic = data is None and aggregate is None
    analysis, agg_table, truth = None, None, None
    if synthetic:
        from training.simulate.network import node_truth, simulate_network

        typer.echo("SYNTHETIC DATA: simulated network (hayden2020 IPD trials + active/passive/combined trials).", err=True)
        ns = simulate_network(seed=seed)
        analysis, agg_table = ns.ipd_analysis(), ns.aggregate
        truth = node_truth(ns.scenario, outcome, follow_up)
    if data is not None:
        from training.dataset import load_dataset
        from training.harmonise import harmonise

        h = harmonise(load_dataset(data, config))
        analysis = h.analysis.copy()
        analysis["node"] = [node_of(t, s) for t, s in zip(analysis["treatment"].astype(str), analysis["subtype"])]
    if aggregate is not None:
        from training.network.data import read_table

        agg_table = read_table(aggregate)
    if method != "nma-frequentist":
        from training.network.mlnmr_lbp import DEFAULT_COVARIATES
        from training.network.mlnmr_report import run_report

        if measure != "MD":
            raise LbpError("--measure SMD is for nma-frequentist only")
        tgt = {}
        for part in (target or "").split(","):
            if part.strip():
                k, _, v = part.partition("=")
                try:
                    tgt[k.strip()] = float(v)
                except ValueError:
                    raise LbpError(f"--target: {part!r} is not name=number") from None
        covs = list(covariate) if covariate else list(DEFAULT_COVARIATES)
        summ = run_report(method, analysis, agg_table, outcome, follow_up, out, reference=reference,
                          covariates=covs if method == "ml-nmr" else (), target=tgt, effects=effects, samples=samples,
                          chains=chains, seed=seed, lower_better=not larger_better, checks=checks, synthetic=synthetic,
                          truth={k: float(v) for k, v in truth.items()} if truth is not None else None)
        if synthetic:
            (out / "SYNTHETIC_DATA.txt").write_text("SYNTHETIC DATA: simulated network; not for clinical use.\n", "utf-8")
        d = summ["diagnostics"]
        typer.echo(f"{counted(summ['data']['trials'], 'trial')} ({summ['data']['ipd_trials']} IPD), {len(summ['data']['treatments'])} "
                   f"treatments; {method}, {effects} effects; max R-hat {d['max_rhat']:.3f}, min ESS {d['min_ess_bulk']:.0f}, "
                   f"{d['divergences']} divergences")
        for r in summ["effects_target"]:
            typer.echo(f"  {r['treatment']:<22} {r['mean']:7.2f} ({r['cri'][0]:.2f} to {r['cri'][1]:.2f})  "
                       f"SUCRA {summ['ranking'][r['treatment']]['sucra']:.2f}")
        typer.echo(f"wrote {out}/ (report.html, network.json, effects_target.csv, ...)")
        return
    ipd_st = ipd_contrasts(analysis, outcome, follow_up) if analysis is not None else []
    agg_st = aggregate_contrasts(agg_table, outcome, follow_up, measure, file=str(aggregate or "simulated aggregate")) \
        if agg_table is not None else []
    studies, dup = combine(ipd_st, agg_st)
    if not studies:
        raise LbpError(f"no trials with {outcome} at follow-up {follow_up!r}")
    res = fit_nma(studies, reference=reference if reference in {t for s in studies for t in s.treatments} else None,
                  method=tau_method, small_values="bad" if larger_better else "good", measure=measure)
    extra = {"outcome": outcome, "follow_up": follow_up, "trials_given_both_ways_ipd_used": dup}
    if analysis is not None and ipd_model:
        try:
            m = fit_ipd_network(analysis, outcome, follow_up, reference=reference)
            out.mkdir(parents=True, exist_ok=True)
            (out / "ipd_network_model.json").write_text(json.dumps(m.to_dict(), indent=2), "utf-8")
            extra["ipd_one_stage"] = {
                "reference": m.reference, "tau": m.tau, "participants": m.n_participants, "trials": m.n_trials,
                "effects": m.versus().to_dict("records"), "consistency": m.consistency, "excluded": m.excluded}
        except LbpError as exc:  # reported in the report, not a crash: the aggregate NMA still stands
            extra["ipd_one_stage"] = {"error": str(exc)}
    if truth is not None:
        extra["truth_vs_exercise"] = {k: float(v) for k, v in truth.items()}
    label = "Mean difference (0–100)" if measure == "MD" else "Standardised mean difference"
    summ = write_report(res, out, reference=reference if reference in res.treatments else None, label=label,
                        title=f"Network meta-analysis: {outcome}, {follow_up} term", extra=extra, synthetic=synthetic)
    if synthetic:
        (out / "SYNTHETIC_DATA.txt").write_text("SYNTHETIC DATA: simulated network; not for clinical use.\n", "utf-8")
    dbt = summ["design_by_treatment"]
    typer.echo(f"{counted(summ['trials'], 'trial')}, {len(res.treatments)} treatments; tau = {res.tau:.2f}; "
               f"design-by-treatment p = {dbt.get('p') if dbt.get('p') is None else round(dbt['p'], 3)}")
    for c in summ["classes"]:
        v = c.get(f"vs_{summ['reference']}")
        if v:
            typer.echo(f"  {c['node']:<22} {v['estimate']:7.2f} ({v['ci_low']:.2f} to {v['ci_high']:.2f})  P-score {c['p_score']:.2f}")
    typer.echo(f"wrote {out}/ (report.html, network.json, league.csv, ...)")
