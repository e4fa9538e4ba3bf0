"""Network simulator: the hayden2020 IPD trials plus trials of exercise (active), passive and
combined physiotherapy, some delivered as IPD and the rest as aggregate (arm-level) summaries
only, with known true effects for every treatment node. SYNTHETIC data.

Design (calibrated loosely to the seed Bayesian NMA of active vs passive vs combined
physiotherapy: 29 RCTs; 1271 active, 912 passive, 521 combined participants; mean age 46.9,
BMI 25.8; mean follow-up ~6 months): trials ``P01``–``P29`` — 12 exercise vs passive, 6
exercise vs combined, 5 passive vs combined, 6 three-arm (exercise, passive, combined); arm
sizes are fixed (a fixed-seed draw rescaled to the published totals exactly). Four further
trials (assumption, not in the seed) close loops through usual care / no treatment so that
inconsistency checks have something to test: ``P30``, ``P31`` passive vs usual care, ``P32``
passive vs no treatment, ``P33`` combined vs usual care. Every P trial pins mean age 46.9 and BMI
25.8 and its baseline pain/function at the n-weighted published group baselines (``_baselines``) and measures age, sex, BMI and episode duration; follow-up at 12 and 26 weeks (every third
trial also 52). Seven P trials (``IPD_P_TRIALS``) come as IPD, the rest as aggregate only.

Generating model: exactly the hayden2020 process (``training.simulate.generator``) with one more
class, ``passive_physio`` (written to the data as ``other_conservative`` with subtype
``passive_physio``, as the data format requires), whose short-term effect is an assumption:
exercise minus passive = −4.0 pain, −3.0 function (exercise better, the seed's direction).
All other effects are hayden2020's (combined +2.0: a little better than exercise alone), so the
existing scenarios are untouched (their outputs stay byte-identical by seed).

Truth for the network: the population-average difference node − exercise on the observed 0–100
scale is −A_f·MD_c (``node_truth``); ``realised_truth`` gives the same average over the simulated
participants from the truth table (includes the random case-mix, so differs by ~0.1–0.3).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import yaml

from training.simulate.generator import SimulatedData, simulate_dataset
from training.simulate.scenario import OUTCOMES, Scenario, build_scenario, load_scenario

PASSIVE = "passive_physio"
PASSIVE_EFFECT = {"pain": -4.0, "function": -3.0}  # exercise minus passive, short term (assumption)
SEED_TOTALS = {"exercise": 1271, PASSIVE: 912, "combined": 521}
# published baseline pain (0-10 VAS/NRS, x10): active 5.3, passive 5.8, combined 5.3; RMQ 10.4/10.0/10.2 of
# 24 (~43/100) and ODI 35.4/30.8/37.8 -> function ~40 on 0-100 (seed: physiohub_active_vs_passive_nma)
SEED_BASELINE_PAIN = {"exercise": 53.0, PASSIVE: 58.0, "combined": 53.0}
SEED_BASELINE_FUNCTION = 40.0
DESIGNS = ([("exercise", PASSIVE)] * 12 + [("exercise", "combined")] * 6 + [(PASSIVE, "combined")] * 5
           + [("exercise", PASSIVE, "combined")] * 6)
EXTRA_TRIALS = [((PASSIVE, "usual_care"), (60, 60)), ((PASSIVE, "usual_care"), (45, 45)),
                ((PASSIVE, "no_treatment"), (40, 40)), (("combined", "usual_care"), (50, 50))]
IPD_P_TRIALS = ("P01", "P02", "P03", "P13", "P19", "P24", "P25")
MEASURED = ("age", "female", "bmi", "episode_months")
DESIGN_SEED = 20250601


def _arm_sizes() -> list[list[int]]:
    """Fixed arm sizes: a fixed-seed lognormal draw rescaled per class to the seed totals exactly."""
    rng = np.random.default_rng(DESIGN_SEED)
    w = [rng.lognormal(0.0, 0.35, len(d)) for d in DESIGNS]
    sizes = [[0] * len(d) for d in DESIGNS]
    for cls, total in SEED_TOTALS.items():
        idx = [(i, j) for i, d in enumerate(DESIGNS) for j, c in enumerate(d) if c == cls]
        ww = np.array([w[i][j] for i, j in idx])
        exact = ww / ww.sum() * total
        n = np.floor(exact).astype(int)
        for k in np.argsort(-(exact - n), kind="stable")[: total - n.sum()]:
            n[k] += 1
        for (i, j), v in zip(idx, n):
            sizes[i][j] = int(v)
    return sizes


def _baselines(classes, sizes) -> dict:
    """Pinned baseline means of a P trial: the n-weighted mean of the seed's published group
    baselines over the trial's arms (pain 0–10 -> 0–100; function from RMQ 0–24 and ODI, ~40 on
    0–100); arms differ only by chance, as randomised arms do. Other classes (loop-closing trials)
    count as exercise."""
    w = np.array(sizes, float)
    pain = np.array([SEED_BASELINE_PAIN.get(c, SEED_BASELINE_PAIN["exercise"]) for c in classes])
    return {"baseline_pain": round(float(w @ pain / w.sum()), 2), "baseline_function": SEED_BASELINE_FUNCTION}


def _arm(cls: str, n: int, label: str) -> dict:
    if cls == PASSIVE:
        return {"arm": label, "treatment": "other_conservative", "n": n, "subtype": PASSIVE}
    return {"arm": label, "treatment": cls, "n": n}


def p_trials() -> list[dict]:
    """The P-trial entries of the network scenario (YAML form)."""
    out = []
    designs = list(zip(DESIGNS, _arm_sizes())) + EXTRA_TRIALS
    for i, (classes, sizes) in enumerate(designs):
        tid = f"P{i + 1:02d}"
        weeks = {"short": [12], "moderate": [26]} | ({"long": [52]} if i % 3 == 2 else {})
        out.append({"id": tid, "setting": "primary_care" if i % 2 else "secondary_care", "country": "multicountry",
                    "pain": "vas_0_10" if i % 2 else "nrs_0_10", "function": "rmdq_0_24" if i % 3 else "odi_0_100",
                    "weeks": weeks, "casemix": {"age": 46.9, "bmi": 25.8, **_baselines(classes, sizes)},
                    "arms": [_arm(c, int(n), c if c != PASSIVE else "passive") for c, n in zip(classes, sizes)]})
    return out


def network_scenario(base: str = "hayden2020", include_base_trials: bool = True) -> Scenario:
    """The network scenario: ``base`` (its trials optional) plus the P trials and the passive class."""
    raw = copy.deepcopy(load_scenario(base).raw)
    raw["name"] = f"{base}_network"
    raw["description"] = "Synthetic; hayden2020 process plus active/passive/combined physiotherapy trials."
    trials = p_trials()
    raw["trials"] = (list(raw["trials"]) if include_base_trials else []) + trials
    ids = [t["id"] for t in trials]
    for v, spec in (raw.get("covariate_trials") or {}).items():
        if spec != "all":
            base_ids = list(spec) if include_base_trials else []
            raw["covariate_trials"][v] = base_ids + (ids if v in MEASURED else [])
    raw["effects"][PASSIVE] = dict(PASSIVE_EFFECT)
    text = yaml.safe_dump(raw, sort_keys=True)
    digest = "net" + hashlib.sha256(text.encode()).hexdigest()[:13]
    scen = build_scenario(raw, digest, raw["name"])
    cfg = scen.config
    cfg = dataclasses.replace(cfg, treatment_classes=tuple(cfg.treatment_classes) + (PASSIVE,))
    new_trials = []
    for t in scen.trials:
        arms = tuple(dataclasses.replace(a, treatment=PASSIVE) if a.subtype == PASSIVE else a for a in t.arms)
        new_trials.append(dataclasses.replace(t, arms=arms))
    return dataclasses.replace(scen, trials=tuple(new_trials), config=cfg, _cache={})


@dataclass
class NetworkSimulation:
    """``sim``: the simulated IPD of every trial (passive arms written as other_conservative /
    passive_physio); ``ipd_trials``: trials delivered as IPD; ``aggregate``: arm-level summaries
    (trial, treatment = network node, outcome, follow_up, n, mean, sd) of the aggregate-only
    trials; ``scenario``."""

    sim: SimulatedData
    ipd_trials: list
    aggregate: pd.DataFrame
    scenario: Scenario

    def ipd_analysis(self) -> pd.DataFrame:
        """The IPD trials in the harmonised analysis layout (from the reference harmonisation)."""
        return analysis_frame(self.sim, self.ipd_trials)


def simulate_network(seed: int = 1, base: str = "hayden2020", include_base_trials: bool = True,
                     ipd_p_trials: tuple = IPD_P_TRIALS, n_participants: int | None = None) -> NetworkSimulation:
    scen = network_scenario(base, include_base_trials).scaled(n_participants)
    sim = simulate_dataset(scen, seed=seed)
    part = sim.participants
    is_p = (part["treatment"] == PASSIVE).to_numpy()
    classes = [c for c in scen.classes if c != PASSIVE]
    treat = part["treatment"].astype(str).where(~is_p, "other_conservative")
    part["treatment"] = pd.Categorical(treat, categories=classes)
    part.loc[is_p, "subtype"] = PASSIVE
    base_ids = [t.id for t in scen.trials if not t.id.startswith("P")]
    ipd = base_ids + [t for t in ipd_p_trials if t in {tr.id for tr in scen.trials}]
    agg_ids = [t.id for t in scen.trials if t.id not in ipd]
    return NetworkSimulation(sim, ipd, aggregate_summaries(sim, agg_ids), scen)


def analysis_frame(sim: SimulatedData, trials: list | None = None) -> pd.DataFrame:
    """Long analysis rows (trial, participant, treatment, subtype, node, outcome, follow_up, value,
    baseline, covariates) for pain and function from the reference harmonisation."""
    from training.network.classes import node_of

    part = sim.participants
    fu = sim.followup
    keep = fu if trials is None else fu[fu["trial"].astype(str).isin(trials)]
    cov = part.drop(columns=["treatment"]).copy()
    rows = []
    for o in OUTCOMES:
        d = keep[["trial", "participant", "follow_up", o, f"baseline_{o}"]].rename(
            columns={o: "value", f"baseline_{o}": "baseline"})
        d = d.assign(outcome=o)
        rows.append(d.dropna(subset=["value", "baseline"]))
    a = pd.concat(rows, ignore_index=True)
    a["trial"] = a["trial"].astype(str)
    cov["trial"] = cov["trial"].astype(str)
    a = a.merge(cov, on=["trial", "participant"], how="left")
    tr = part[["trial", "participant", "treatment"]].assign(trial=part["trial"].astype(str))
    a = a.merge(tr, on=["trial", "participant"], how="left")
    a["treatment"] = a["treatment"].astype(str)
    a["subtype"] = a["subtype"].replace("", None)
    a["node"] = [node_of(t, s) for t, s in zip(a["treatment"], a["subtype"])]
    return a


def default_aggregate() -> pd.DataFrame:
    """The shipped aggregate set of the seed's network (``training/network/examples/
    physio_nma_aggregate.csv``): every P trial's arm summaries and covariate summaries from
    ``simulate_network(seed=AGGREGATE_SEED, include_base_trials=False, ipd_p_trials=())``
    (regenerate with ``scripts/make_physio_aggregate.py``). SYNTHETIC."""
    from importlib import resources

    return pd.read_csv(resources.files("training.network").joinpath("examples/physio_nma_aggregate.csv"))


AGGREGATE_SEED = 2025


def aggregate_summaries(sim: SimulatedData, trials: list) -> pd.DataFrame:
    """Arm-level n, mean and SD of the observed 0–100 follow-up scores, per trial, node, outcome
    and follow-up (what a published trial report gives), with the same participants' covariate
    summaries ``<cov>_mean`` / ``<cov>_sd`` (baseline score, age, BMI, episode months; ``female_mean``
    a proportion) for ML-NMR."""
    a = analysis_frame(sim, trials)
    if a.empty:
        return pd.DataFrame(columns=["trial", "treatment", "outcome", "follow_up", "n", "mean", "sd"])
    keys = ["trial", "node", "outcome", "follow_up"]
    g = a.groupby(keys, observed=True, sort=True)
    out = g["value"].agg(n="count", mean="mean", sd="std").reset_index()
    # covariate summaries of the same participants (what a trial's baseline table reports; ML-NMR)
    for c in ("baseline",) + MEASURED:
        if c not in a.columns:
            continue
        st = g[c].agg(["mean", "std"]).reset_index(drop=True)
        out[f"{c}_mean"] = st["mean"].to_numpy()
        if c != "female":
            out[f"{c}_sd"] = st["std"].to_numpy()
    out = out.rename(columns={"node": "treatment"})
    return out[out["n"] >= 2].reset_index(drop=True)


def node_truth(scenario: Scenario, outcome: str, follow_up: str) -> pd.Series:
    """True population-average effect of every node minus exercise (0–100; negative = node better)."""
    from training.network.classes import node_of
    from training.simulate.model import attenuation

    att = attenuation(scenario)[follow_up]
    eff = scenario.raw["effects"]
    out = {"exercise": 0.0}
    for c in scenario.classes:
        if c == scenario.config.active:
            continue
        subs = scenario.config.subtypes if c == "other_conservative" else [None]
        for s in subs:
            if c == "other_conservative" and s == PASSIVE:
                continue
            node = node_of(c, s) if c != PASSIVE else PASSIVE
            out[node] = -float(eff[c][outcome]) * att
    return pd.Series(out, name=f"{outcome}/{follow_up}")


def realised_truth(sim: SimulatedData, outcome: str, follow_up: str) -> pd.Series:
    """Average over the simulated participants of E[Y | node] − E[Y | exercise] from the truth table."""
    t = sim.truth
    t = t[(t["outcome"] == outcome) & (t["follow_up"] == follow_up)]
    out = {c.removeprefix("benefit_vs_"): float(t[c].mean()) for c in t.columns if c.startswith("benefit_vs_")}
    return pd.Series(out)
