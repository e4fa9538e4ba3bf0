"""Network simulator (passive / combined arms, aggregate-only trials) and the network code
tested against its known truth: IPD + aggregate NMA, the one-stage IPD network model, the report."""
import hashlib
import json
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from training.network import design_by_treatment, fit_nma
from training.network.ipd import aggregate_contrasts, combine, fit_ipd_network, ipd_contrasts
from training.network.report import write_report
from training.simulate import simulate_dataset
from training.simulate.network import (IPD_P_TRIALS, PASSIVE, SEED_TOTALS, node_truth, realised_truth,
                                       simulate_network)

SENN = str(resources.files("training.network").joinpath("examples/senn2013_arms.csv"))


def _digest(sim) -> str:
    h = hashlib.sha256()
    for df in (sim.participants, sim.outcomes, sim.truth):
        h.update(pd.util.hash_pandas_object(df.astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def before():
    return _digest(simulate_dataset("hayden2020", seed=2, n_participants=300))


@pytest.fixture(scope="module")
def net(before):
    return simulate_network(seed=1)


@pytest.fixture(scope="module")
def combined(net):
    a = net.ipd_analysis()
    st, dup = combine(ipd_contrasts(a, "pain", "short"), aggregate_contrasts(net.aggregate, "pain", "short"))
    assert dup == []
    return fit_nma(st, reference="exercise")


def test_existing_scenario_unchanged_by_network_simulation(net, before):
    assert _digest(simulate_dataset("hayden2020", seed=2, n_participants=300)) == before


def test_design_calibrated_to_seed_nma(net):
    p = net.sim.participants
    p = p.assign(trial=p["trial"].astype(str))
    seed = p[p["trial"].str.match(r"P(0[1-9]|1\d|2\d)$")]
    assert seed["trial"].nunique() == 29
    node = np.where(seed["subtype"] == PASSIVE, PASSIVE, seed["treatment"].astype(str))
    assert pd.Series(node).value_counts().to_dict() == SEED_TOTALS
    # passive arms are valid data: other_conservative with subtype passive_physio
    assert set(p.loc[p["subtype"] == PASSIVE, "treatment"].astype(str)) == {"other_conservative"}
    assert abs(seed["age"].mean() - 46.9) < 1.0 and abs(seed["bmi"].mean() - 25.8) < 0.5
    # aggregate-only trials are exactly the P trials not delivered as IPD
    agg = set(net.aggregate["trial"])
    assert agg.isdisjoint(net.ipd_trials) and len(agg) == 33 - len(IPD_P_TRIALS)
    assert {"trial", "treatment", "n", "mean", "sd", "outcome", "follow_up"} <= set(net.aggregate.columns)
    assert "expected_passive_physio" in net.sim.truth.columns


def test_truth_tables(net):
    t = node_truth(net.scenario, "pain", "short")
    assert t["passive_physio"] == 4.0 and t["usual_care"] == 10.7 and t["combined"] == -2.0
    assert node_truth(net.scenario, "function", "moderate")["passive_physio"] == pytest.approx(3.0 * 0.8)
    real = realised_truth(net.sim, "pain", "short")
    for c in ("usual_care", "passive_physio", "combined"):
        assert real[c] == pytest.approx(t[c], abs=0.5), c


def test_ipd_plus_aggregate_network_recovers_truth(net, combined):
    truth = node_truth(net.scenario, "pain", "short")
    v = combined.versus("exercise").set_index("treatment")
    z = (v["estimate"] - truth[v.index]) / v["se"]
    assert (z.abs() < 3).all(), z
    assert v.loc["passive_physio", "ci_low"] > 0  # exercise better than passive physiotherapy
    assert {s.source for s in combined.studies} == {"ipd", "aggregate"}
    dbt = design_by_treatment(combined)
    assert dbt["df"] > 0 and dbt["p"] > 0.01  # the simulator is consistent


@pytest.fixture(scope="module")
def ipd_analysis(net):
    return net.ipd_analysis()


def test_one_stage_ipd_network_recovers_truth(net, ipd_analysis):
    m = fit_ipd_network(ipd_analysis, "pain", "short")
    truth = node_truth(net.scenario, "pain", "short")
    assert {"passive_physio", "combined", "usual_care", "no_treatment_placebo"} <= set(m.nodes)
    v = m.versus().set_index("treatment")
    z = (v["estimate"] - truth[v.index]) / v["se"]
    assert (z.abs() < 3).all(), z
    assert m.consistency["df"] > 0 and m.consistency["p"] > 0.01
    # without modifiers the predicted benefit is the node effect for everyone
    pb = m.predict_benefit(pd.DataFrame(index=range(2)))
    assert set(pb["alternative"]) == set(m.nodes) - {"exercise"}
    pas = pb[pb["alternative"] == "passive_physio"]["benefit"].to_numpy()
    assert pas == pytest.approx([v.loc["passive_physio", "estimate"]] * 2)
    # one-stage and two-stage (IPD contrasts -> NMA) agree on the same trials
    two = fit_nma(ipd_contrasts(ipd_analysis, "pain", "short"), reference="exercise").versus("exercise").set_index("treatment")
    assert ((v["estimate"] - two.loc[v.index, "estimate"]).abs() < v["se"]).all()


def test_one_stage_ipd_modifier_gives_individual_benefit(ipd_analysis):
    m = fit_ipd_network(ipd_analysis, "pain", "short", modifiers=("heavy_physical_work",), check_consistency=False)
    assert m.excluded["missing_modifier"] > 0  # measured in 8 trials only
    gamma = m.fit.params["exercise_content:heavy_physical_work_c"]
    se = m.fit.bse["exercise_content:heavy_physical_work_c"]
    assert abs(gamma - 5.0) < 3 * se  # simulator: exercise x heavy physical work +5 (pain)
    pb = m.predict_benefit(pd.DataFrame({"heavy_physical_work": [0.0, 1.0]}))
    uc = pb[pb["alternative"] == "usual_care"].set_index("profile")["benefit"]
    # heavy work makes exercise worse by gamma relative to a node without exercise content
    assert uc[1] - uc[0] == pytest.approx(-gamma)
    # node-specific interactions (vs the exercise reference): usual care's is about −gamma
    # the exported coefficients reproduce the predictions without the fitted model (exporter path)
    exp = json.loads(json.dumps(m.to_dict()))
    b, terms = np.array(exp["coef"]), exp["terms"]

    def benefit(node, z):
        g = np.zeros(len(terms))
        for nd, sign in ((node, 1.0), ("exercise", -1.0)):
            if f"node[{nd}]" in terms:
                g[terms.index(f"node[{nd}]")] += sign
            g[terms.index("exercise_content:heavy_physical_work_c")] += (
                sign * (z - exp["centres"]["heavy_physical_work"]) * exp["exercise_content"][nd])
        return float(g @ b)

    assert [benefit("usual_care", z) for z in (0.0, 1.0)] == pytest.approx(list(uc))
    mn = fit_ipd_network(ipd_analysis, "pain", "short", modifiers=("heavy_physical_work",), interaction="node",
                         check_consistency=False)
    g_uc = mn.fit.params["node[usual_care]:heavy_physical_work_c"]
    assert abs(g_uc + 5.0) < 3 * mn.fit.bse["node[usual_care]:heavy_physical_work_c"]


def test_report_files_and_evidence_json(combined, tmp_path):
    summ = write_report(combined, tmp_path, reference="exercise", synthetic=True)
    for f in ("network.png", "forest.png", "league.csv", "pairwise.csv", "ranking.csv", "evidence.csv",
              "node_split.csv", "network.json", "report.html"):
        assert (tmp_path / f).stat().st_size > 0, f
    js = json.loads((tmp_path / "network.json").read_text())
    kinds = {(e["treatment"], e["comparator"]): e["evidence"] for e in js["evidence"]}
    assert kinds[("passive_physio", "exercise")] == "direct and indirect"
    assert kinds[("psychological", "passive_physio")] == "indirect only"
    assert {c["node"] for c in js["classes"]} == set(combined.treatments)
    league = pd.read_csv(tmp_path / "league.csv", index_col=0)
    assert league.shape == (len(combined.treatments),) * 2
    assert "SYNTHETIC" in (tmp_path / "report.html").read_text()
    card = json.loads((tmp_path / "card_network.json").read_text())
    ev = {c["node"]: c["evidence"] for c in card["comparators"]}
    assert set(ev) == set(combined.treatments) - {"exercise"}
    assert ev["passive_physio"] == "direct and indirect" and "psychological vs passive_physio" in card["indirect_only"]


def _cli(capsys, *args):
    from lbp_benefit.cli import main

    try:
        main(["network", *args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr()


def test_cli_network_on_aggregate_file(tmp_path, capsys):
    code, out = _cli(capsys, "--aggregate", SENN, "--reference", "placebo", "--out", str(tmp_path / "o"))
    assert code == 0, out.err
    js = json.loads((tmp_path / "o" / "network.json").read_text())
    assert js["reference"] == "placebo" and js["trials"] == 26
    assert js["design_by_treatment"]["df"] == 7


def test_cli_network_bad_file_is_a_clear_error(tmp_path, capsys):
    p = tmp_path / "bad.csv"
    p.write_text("trial,treatment,n,mean,sd\nt1,a,10,1,2\nt1,b,ten,2,2\n")
    code, out = _cli(capsys, "--aggregate", str(p), "--out", str(tmp_path / "o"))
    assert code == 2
    assert "bad.csv line 3 column 'n'" in out.err
