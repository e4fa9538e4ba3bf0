"""``lbp-benefit train``: fit the individual-benefit learners, run internal-external
cross-validation (leave one trial out), select/stack by the held-out benefit loss, and write a
run folder (exported models as JSON + LightGBM text, IECV metrics, plots, report)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def train(
    out: Path = typer.Option(..., "--out", help="Run folder to write."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder (default: the embedded synthetic default)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Study config YAML (overrides the folder's study.yaml)."),
    seed: int = typer.Option(1, "--seed", help="Seed for the learners (and the simulator for the embedded default)."),
    learner: Optional[List[str]] = typer.Option(None, "--learner", help="Learners to fit (repeatable; default all: constant, effect_model, effect_adaptive, effect_pairs (continuous outcomes only), risk_model (binary outcomes only), t_learner, x_learner, dr_learner; optional: effect_ard)."),
    iecv_follow_up: Optional[List[str]] = typer.Option(None, "--iecv-follow-up", help="Follow-ups whose tasks get IECV of every learner, for selection and stacking (repeatable; default the first window, short term); the other tasks get IECV of the learner deployed there (the effect model) alone."),
    no_iecv: bool = typer.Option(False, "--no-iecv", help="Skip internal-external cross-validation (selection falls back to the effect model)."),
    select: str = typer.Option("stack", "--select", help="'stack' (non-negative R-loss stacking), 'best' (lowest held-out R-loss) or 'best1se' (simplest learner within 1 SE of the lowest)."),
    n_boot: int = typer.Option(100, "--n-boot", help="Trial-cluster bootstrap replicates for the linear learners."),
    n_boot_trees: int = typer.Option(10, "--n-boot-trees", help="Trial-cluster bootstrap replicates for the LightGBM learners."),
    workers: int = typer.Option(2, "--workers", help="Parallel worker processes (IECV folds and final fits); with 2 or "
                                 "more, the network stage runs in a process of its own beside them."),
    drop_invalid: bool = typer.Option(False, "--drop-invalid", help="Exclude invalid participants/trials instead of stopping."),
    strict: bool = typer.Option(False, "--strict", help="Treat data warnings (implausible values set to missing, ignored rows, small trials) as errors."),
    fast: bool = typer.Option(False, "--fast", help="A quick run for small data and tests: linear learners only (constant, effect_model, "
                              "risk_model) unless --learner is given, 20 bootstrap replicates, no network model."),
    network: bool = typer.Option(True, "--network/--no-network", help="Also fit the one-stage IPD network model per "
                                 "continuous task, so that every network node (e.g. each other-conservative subtype) "
                                 "can be scored (docs/network.md)."),
    network_method: Optional[str] = typer.Option(None, "--network-method", help="'ml-nmr' (Bayesian ML-NMR of the IPD "
                                                 "plus the --network-aggregate trials; a task whose ML-NMR fails its "
                                                 "diagnostics gets the one-stage IPD model and the reason is recorded) "
                                                 "or 'ipd' (one-stage IPD network model). Default: 'ml-nmr' when there "
                                                 "are aggregate trials (the embedded default has them), else 'ipd'; "
                                                 "docs/network.md."),
    network_aggregate: Optional[str] = typer.Option(None, "--network-aggregate", help="Aggregate arm CSV for ML-NMR; "
                                                    "'default' = the simulator's active/passive/combined physiotherapy "
                                                    "trials (the default without --data)."),
    stack_se: str = typer.Option("sum", "--stack-se", help="A stack's estimation SE: 'sum' (its members' SEs added, "
                                 "as if perfectly correlated) or 'joint' (sqrt(w' Sigma w) with the members' error "
                                 "correlation from the IECV folds' leave-one-trial-out refits; docs/learners.md)."),
    artifact: bool = typer.Option(True, "--artifact/--no-artifact", help="Also write the model artifact to OUT/artifact/ "
                                  "(what `score --model` and `serve --model` read)."),
) -> None:
    """Fit benefit learners, cross-validate by trial, select, and write the run folder."""
    from lbp_benefit.data_source import SYNTHETIC_NOTE, load_source
    from lbp_benefit.progress import progress_over
    from predict.errors import LbpError
    from training.harmonise import harmonise
    from training.train import LEARNERS, OPTIONAL_LEARNERS, TrainSettings, run_training

    if select not in ("stack", "best", "best1se"):
        raise LbpError("--select must be 'stack', 'best' or 'best1se'")
    learners = list(learner) if learner else (["constant", "effect_model", "risk_model"] if fast else list(LEARNERS))
    if fast:
        n_boot, n_boot_trees, network = min(n_boot, 20), min(n_boot_trees, 5), False
    bad = [x for x in learners if x not in LEARNERS + OPTIONAL_LEARNERS]
    if bad:
        raise LbpError(f"--learner {', '.join(bad)}: choose from {', '.join(LEARNERS + OPTIONAL_LEARNERS)}")
    if network_method not in (None, "ml-nmr", "ipd"):
        raise LbpError("--network-method must be 'ml-nmr' or 'ipd'")
    if workers < 1:
        raise LbpError("--workers must be >= 1")
    if stack_se not in ("sum", "joint"):
        raise LbpError("--stack-se must be 'sum' or 'joint'")
    if n_boot < 0 or n_boot_trees < 0:
        raise LbpError("--n-boot and --n-boot-trees must be >= 0")
    ds, synthetic = load_source(data, config, seed, drop_invalid=drop_invalid, strict=strict)
    for w in ds.warnings:
        typer.echo(f"warning {w}", err=True)
    if synthetic:
        typer.echo(SYNTHETIC_NOTE, err=True)
    h = harmonise(ds)
    cfg = ds.config
    for w in iecv_follow_up or []:
        if w not in cfg.window_names:
            raise LbpError(f"--iecv-follow-up {w!r} is not one of {', '.join(cfg.window_names)}")
    fus = [] if no_iecv else (list(iecv_follow_up) if iecv_follow_up else None)
    aggregate = network_aggregate or ("default" if synthetic else None)
    settings = TrainSettings(seed=seed, learners=learners, iecv_follow_ups=fus, select=select,
                             n_boot_linear=n_boot, n_boot_trees=n_boot_trees, workers=workers,
                             network=network, network_method=network_method or ("ml-nmr" if aggregate else "ipd"),
                             network_aggregate=aggregate, stack_se=stack_se)
    res = run_training(h.analysis, cfg, out, settings, synthetic=synthetic, progress=progress_over,
                       log=lambda m: typer.echo(m, err=True))
    if synthetic:
        (out / "SYNTHETIC_DATA.txt").write_text(SYNTHETIC_NOTE + "\n", "utf-8")
    ok = res.tasks[res.tasks["status"] == "ok"] if len(res.tasks) else res.tasks
    for _, r in res.tasks.iterrows():
        if r["status"] != "ok":
            typer.echo(f"{r['task']}: not trained - {r['status']}", err=True)
    if not len(ok):
        raise LbpError(f"nothing could be trained: {len(res.tasks)} outcome x follow-up tasks formed, none usable "
                       "(see the reasons above and tasks.csv; check the attrition report with 'lbp-benefit check')")
    for _, r in ok.iterrows():
        typer.echo(f"{r['task']}: selected {r['selected']}" + (" (IECV)" if r.get("iecv") else ""))
    typer.echo(f"{len(ok)} tasks trained in {res.seconds:.0f} s; wrote {out}/")
    if artifact and len(ok):
        from training.export_model import export_artifact

        art = export_artifact(out, out / "artifact", h, log=lambda m: typer.echo(m, err=True))
        typer.echo(f"model artifact: {art}/ (lbp-benefit score --model {art} ...; lbp-benefit serve --model {art})")
