"""The comparator network of a training run: per continuous task, the one-stage IPD network model
(:func:`training.network.ipd.fit_ipd_network`) and the direct/indirect evidence table
(:func:`training.network.nma.fit_nma` on the IPD trials' ANCOVA contrasts,
:func:`training.network.report.summarise`), exported as plain JSON for the model artifact so that
``predict.Scorer`` can score every network node, not only the learners' own classes.

Modifiers: the effect model's candidate modifiers (every continuous or binary feature, the
baselines included) that are observed for at least ``1 - MAX_MODIFIER_MISSING`` of the task's
participants in trials with two or more nodes (the IPD network model drops participants missing a
modifier, so a sparsely measured one would shrink the network). Their treatment interaction is
carried by exercise content (``interaction="exercise_content"``). If that model fails or does not
converge, the main-effects model (no modifiers) is fitted instead; ``modifier_status`` says which.

Written per task into the run folder as ``network/<task>.json`` (:data:`NETWORK_FORMAT` v1) and
``network/<task>__card_network.json`` (:func:`training.network.report.card_summary`), plus
``network/status.json`` (what was fitted or skipped and why). No participant-level data.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from predict.errors import LbpError
from training.network.classes import node_of

NETWORK_FORMAT = "lbp-benefit-network"
NETWORK_VERSION = 1
MAX_MODIFIER_MISSING = 0.10
MODEL_NAME = "ipd_network"
NO_AGGREGATE = "no aggregate trials given (--network-aggregate)"


def with_nodes(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``node`` column from treatment and subtype (``node_of``)."""
    out = df.copy()
    sub = out["subtype"] if "subtype" in out.columns else pd.Series([None] * len(out), index=out.index)
    out["node"] = [node_of(t, s) for t, s in zip(out["treatment"].astype(str), sub)]
    return out


def candidate_modifiers(df: pd.DataFrame, features: dict) -> tuple[list[str], dict]:
    """(modifiers, missing share per candidate): continuous/binary features observed for enough of
    the participants of trials with two or more nodes."""
    k = df.groupby("trial")["node"].nunique()
    d = df[df["trial"].isin(k.index[k >= 2])]
    share = {}
    keep = []
    for name, typ in zip(features["names"], features["types"]):
        if typ not in ("continuous", "binary") or name not in d.columns:
            continue
        miss = float(pd.to_numeric(d[name], errors="coerce").isna().mean()) if len(d) else 1.0
        share[name] = round(miss, 4)
        if miss <= MAX_MODIFIER_MISSING and pd.to_numeric(d[name], errors="coerce").nunique() > 1:
            keep.append(name)
    return keep, share


def _finite_fit(m) -> bool:
    d = m.to_dict()
    v = np.asarray(d["vcov"], float)
    return bool(getattr(m.fit, "converged", True)) and np.all(np.isfinite(d["coef"])) and np.all(np.isfinite(v)) \
        and math.isfinite(d["tau"]) and (v.size == 0 or np.all(np.diag(v) >= 0))


def fit_task_network(df: pd.DataFrame, outcome: str, follow_up: str, features: dict, reference: str = "exercise") -> dict:
    """The network payload of one task (``df``: the task's rows of the harmonised analysis table).
    Raises :class:`LbpError` when the task has no network (fewer than 2 trials with 2+ nodes, no
    exercise node, or the evidence NMA cannot be fitted)."""
    from training.network.ipd import fit_ipd_network, ipd_contrasts
    from training.network.nma import fit_nma
    from training.network.report import card_summary, summarise

    a = with_nodes(df)
    a = a[a["outcome"] == outcome]
    mods, share = candidate_modifiers(a, features)
    status = "modifiers"
    note = ""
    m = None
    if mods:
        try:
            m = fit_ipd_network(a, outcome, follow_up, reference=reference, modifiers=tuple(mods))
            if not _finite_fit(m):
                note = "the model with modifiers did not converge"
                m = None
        except (LbpError, np.linalg.LinAlgError, ValueError) as exc:
            note = f"the model with modifiers failed ({exc})"
            m = None
    if m is None:
        m = fit_ipd_network(a, outcome, follow_up, reference=reference)
        status = "main effects only" + (f": {note}" if note else ": no modifier observed for enough participants")
        if not _finite_fit(m):
            raise LbpError(f"IPD network ({outcome}, {follow_up}): the main-effects model did not converge")
    md = m.to_dict()
    terms = set(md["terms"])
    estimable = [c for c in m.nodes if c != reference and f"node[{c}]" in terms]
    # evidence: the contrast NMA of the same IPD trials (direct / indirect per pair)
    res = fit_nma(ipd_contrasts(a, outcome, follow_up), reference=reference, method="REML", small_values="good",
                  measure="MD")
    summ = summarise(res, reference)
    summ.update({"outcome": outcome, "follow_up": follow_up})
    card = card_summary(summ)
    ev = {frozenset((e["treatment"], e["comparator"])): e for e in summ["evidence"]}
    cls = {c["node"]: c for c in summ["classes"]}
    evidence = {}
    for c in estimable:
        e = ev.get(frozenset((c, reference)))
        if e is None or c not in cls:
            continue
        evidence[c] = {"evidence": e["evidence"], "direct_trials": int(e["direct_trials"]),
                       "direct_participants": int(e["direct_participants"]),
                       "trials": int(cls[c]["trials"]), "participants": int(cls[c]["participants"])}
    nodes = [c for c in estimable if c in evidence]
    return {
        "format": NETWORK_FORMAT, "version": NETWORK_VERSION, "outcome": outcome, "follow_up": follow_up,
        "reference": reference, "nodes": nodes,
        "model": md, "modifier_status": status, "modifier_missing_share": share,
        "evidence": evidence,
        "exercise_participants": int(cls.get(reference, {}).get("participants", 0)),
        "excluded": {k: int(v) for k, v in m.excluded.items()},
        "definition": "benefit = E[y | node] - E[y | exercise] on 0-100 (positive favours exercise); "
                      "g'coef with g[node[c]] = 1 and, per modifier m, the interaction term's entry "
                      "(z_m - centre_m) * (s_c - s_exercise) (exercise_content) or (z_m - centre_m) (node)",
        "card_network": card,
    }


def write_run_network(out, analysis: pd.DataFrame, tasks: list, features: dict, log=None, method: str = "ml-nmr",
                      aggregate: pd.DataFrame | None = None, seed: int = 0) -> dict:
    """Fit every continuous task's network into ``out/network/``; returns the status by task.
    ``method="ml-nmr"`` (the default) with ``aggregate`` arm summaries fits the Bayesian ML-NMR of
    the task's IPD plus the aggregate trials (training.network.mlnmr_task); a task without
    aggregate rows, or whose ML-NMR fails (diagnostics included), gets the one-stage IPD model and
    the reason is logged and recorded (``status.json``, the network file's ``modifier_status``, the
    artifact manifest and the model card)."""
    import json
    from pathlib import Path

    say = log or (lambda m: None)
    ndir = Path(out) / "network"
    ndir.mkdir(parents=True, exist_ok=True)
    status = {}
    for outcome, fu, otype, df in tasks:
        task = f"{outcome}__{fu}"
        if otype != "continuous":
            status[task] = {"status": "skipped", "reason": "binary outcome: the network model is for continuous outcomes"}
            continue
        payload, note, fallback = None, "", None
        if method == "ml-nmr" and aggregate is None:
            fallback = NO_AGGREGATE
        elif method == "ml-nmr":
            from training.network.mlnmr_task import fit_task_mlnmr

            try:
                payload = fit_task_mlnmr(with_nodes(df), outcome, fu, features, aggregate, seed=seed)
            except LbpError as exc:
                fallback = str(exc)
        if fallback:
            note = f"ML-NMR not used ({fallback}); "
            say(f"network {task}: {'' if fallback == NO_AGGREGATE else 'WARNING '}{note}one-stage IPD network model instead")
        try:
            if payload is None:
                payload = fit_task_network(df, outcome, fu, features)
                payload["modifier_status"] = note + payload["modifier_status"]
        except LbpError as exc:
            status[task] = {"status": "skipped", "reason": str(exc)}
            say(f"network {task}: skipped ({exc})")
            continue
        card = payload.pop("card_network")
        (ndir / f"{task}.json").write_text(json.dumps(payload, indent=2, sort_keys=True), "utf-8")
        (ndir / f"{task}__card_network.json").write_text(json.dumps(card, indent=2, sort_keys=True, default=str), "utf-8")
        status[task] = {"status": "fitted", "nodes": payload["nodes"], "modifier_status": payload["modifier_status"],
                        "modifiers": payload["model"]["modifiers"]}
        if method == "ml-nmr":  # (an 'ipd' run's status stays as before: same artifact, same model id)
            status[task]["method"] = "ml-nmr" if payload.get("fit") == "ml-nmr" else "ipd"
            if fallback:
                status[task]["ml_nmr_not_used"] = fallback
        if payload.get("fit") == "ml-nmr":
            dg = payload["mlnmr"]["diagnostics"]
            status[task]["diagnostics"] = {k: dg.get(k) for k in ("ok", "max_rhat", "min_ess_bulk", "min_ess_tail",
                                                                 "divergences", "chains", "warmup", "samples")}
        say(f"network {task}: {len(payload['nodes'])} comparator nodes ({payload['modifier_status']})")
    (ndir / "status.json").write_text(json.dumps(status, indent=2, sort_keys=True), "utf-8")
    return status
