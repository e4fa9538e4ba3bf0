"""Per-arm intervals of P(recovery) for stacks of binary learners (predict/arm_intervals.py).

Members are the small model's fitted binary learners (global recovery, moderate term); the tree
member's per-arm bootstrap variance model is set to known coefficients so that its SE is known
exactly. Checked: a stack of one logistic learner gives that learner's interval; a two-member
stack's interval is the logit-scale interval with SD = (sum of the members' probability-scale SEs
with the weights) / p(1-p), each member SE computed independently (logistic: Monte Carlo of the
probability's gradient in theta by finite differences; tree: exp of the variance model by hand)."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from predict import arm_intervals as A
from predict.evaluate import expected
from predict.impute import impute_mean
from tests._small_model import small_model

Z = 1.959963984540054


@pytest.fixture(scope="module")
def members():
    run = small_model().run / "models" / "global_recovery__moderate"
    m = {k: json.loads((run / f"{k}.json").read_text("utf-8")) for k in ("effect_model", "t_learner")}
    tree = m["t_learner"]
    p = len(tree["features"]["names"])
    design = {"loc": [0.0] * p, "scale": [1.0] * p}
    arms = ["__active__"] + list(tree["comparators"])
    # log variance = a + 0.01 * first feature (standardised as loc 0, scale 1)
    vm = {k: [np.log(0.02 ** 2) + 0.1 * i, 0.01] + [0.0] * (2 * p - 1) for i, k in enumerate(arms)}
    tree["interval"] = {**tree["interval"], "method": "varmodel", "design": design, "arm_varmodel": vm,
                        "varmodel": {c: [-30.0] + [0.0] * (2 * p) for c in tree["comparators"]}}
    return m


def stack(exps: list, w: list) -> dict:
    first = exps[0]
    return {**copy.deepcopy(first), "kind": "stacked",
            "members": {"weights": w, "names": [e["kind"] for e in exps], "exports": exps},
            "interval": {"method": "stack", "tau": {}}}


def full_patient(exp: dict) -> np.ndarray:
    """A typical patient with every input: the imputer's conditional mean given baselines 60/45."""
    names = exp["features"]["names"]
    F = np.full((1, len(names)), np.nan)
    F[0, names.index("baseline_pain")], F[0, names.index("baseline_function")] = 60.0, 45.0
    return impute_mean(exp["imputer"], F)


def test_binary_stacks_are_available_when_every_member_has_per_arm_uncertainty(members):
    assert A.available(stack([members["effect_model"], members["t_learner"]], [0.4, 0.6]))
    no_arm = copy.deepcopy(members["t_learner"])
    del no_arm["interval"]["arm_varmodel"]
    assert not A.available(stack([members["effect_model"], no_arm], [0.4, 0.6]))


def test_a_stack_of_one_logistic_learner_gives_its_interval(members):
    lin = members["effect_model"]
    one = stack([lin], [1.0])
    comp = lin["comparators"][0]
    F = full_patient(lin)
    F2 = F.copy()
    F2[0, :5] = np.nan  # missing inputs: the spread over their draws is added the same way
    for X in (F, F2):
        a, b = A.binary_parts(lin, X, comp), A.binary_parts(one, X, comp)
        for (e1, s1), (e2, s2) in zip(a, b):
            assert e2 == pytest.approx(e1, abs=1e-9) and s2 == pytest.approx(s1, rel=1e-6)


def test_two_member_stack_adds_member_ses_with_the_weights(members):
    lin, tree = members["effect_model"], members["t_learner"]
    w = [0.35, 0.65]
    st = stack([lin, tree], w)
    comp = lin["comparators"][0]
    F = full_patient(lin)
    # logistic member: delta-method SE of P with the gradient in theta by central differences of
    # the learner's own predicted probabilities (predict.evaluate.expected)
    th = np.asarray(lin["linear"]["theta"], float)
    V = np.asarray(lin["interval"]["theta_cov"], float)
    J = {k: np.zeros(th.size) for k in ("__active__", comp)}
    for j in range(th.size):
        up, dn = copy.deepcopy(lin), copy.deepcopy(lin)
        up["linear"]["theta"] = (th + 1e-6 * np.eye(th.size)[j]).tolist()
        dn["linear"]["theta"] = (th - 1e-6 * np.eye(th.size)[j]).tolist()
        eu, ed = expected(up, F, F), expected(dn, F, F)
        for k in J:
            J[k][j] = (eu[k][0] - ed[k][0]) / 2e-6
    se_lin = {k: float(np.sqrt(J[k] @ V @ J[k])) for k in J}
    # tree member: exp(a_k + 0.01 * x_1) by hand
    x1 = F[0, 0]
    se_tree = {k: float(np.sqrt(np.exp(tree["interval"]["arm_varmodel"][k][0] + 0.01 * x1)))
               for k in ("__active__", comp)}
    ex = expected(st, F, impute_mean(st["imputer"], F))
    parts = A.binary_parts(st, F, comp)
    lo_a, hi_a, lo_c, hi_c = A.binary_interval(parts, Z)
    for k, (lo, hi) in (("__active__", (lo_a, hi_a)), (comp, (lo_c, hi_c))):
        p = float(ex[k][0])
        sd_p = w[0] * se_lin[k] + w[1] * se_tree[k]  # convex weights: both arms sum w_i SE_i
        want = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + np.array([-Z, Z]) * sd_p / (p * (1 - p)))))
        assert lo[0] == pytest.approx(want[0], abs=1e-6) and hi[0] == pytest.approx(want[1], abs=1e-6)
        assert lo[0] < p < hi[0]


def stacked_export(exps: list, w: list, names: list) -> dict:
    """The export ``StackedLearner`` writes for fitted members (training/learners/stacking.py)."""
    first = exps[0]
    comps = first["comparators"]
    tau = {c: float(sum(wi * e["interval"]["tau"].get(c, 0.0) for wi, e in zip(w, exps)) / sum(w)) for c in comps}
    return {"format": first["format"], "version": first["version"], "kind": "stacked",
            "outcome_type": first["outcome_type"], "active": first["active"], "comparators": comps,
            "unavailable": first.get("unavailable", []), "features": first["features"], "imputer": first["imputer"],
            "members": {"weights": w, "names": names, "exports": exps},
            "interval": {"method": "stack", "tau": tau},
            "support": exps[int(np.argmax(w))].get("support", {"method": "none", "features": []}),
            "meta": {**first.get("meta", {}), "stack_weights": dict(zip(names, w)),
                     "selection": {"model": "stacked", "rule": "set by the test (a stack for recovery)"}}}


@pytest.fixture(scope="module")
def stacked_artifact(tmp_path_factory):
    """The small model with its recovery task replaced by a stack of its two logistic learners."""
    import shutil

    from tests._small_model import harmonised
    from training.export_model import export_artifact

    sm = small_model()
    root = tmp_path_factory.mktemp("stacked")
    run = root / "run"
    shutil.copytree(sm.run, run)
    d = run / "models" / "global_recovery__moderate"
    exps = [json.loads((d / f"{k}.json").read_text("utf-8")) for k in ("constant", "effect_model")]
    (d / "selected.json").write_text(json.dumps(stacked_export(exps, [0.4, 0.6], ["constant", "effect_model"])), "utf-8")
    return export_artifact(run, root / "artifact", harmonised(sm.data))


def test_a_recovery_stack_gets_arm_intervals_in_results_and_in_the_card(stacked_artifact):
    from lbp_benefit.cmd_card import card_from_artifact
    from predict import Scorer

    scorer = Scorer.load(stacked_artifact)
    task = "global_recovery__moderate"
    assert scorer.manifest["arm_intervals"][task] is True
    poc = card_from_artifact(stacked_artifact).json["extensions"]["lbp_benefit"]["sections"]["point_of_care"]
    claimed = {c["path"]: c["tasks"] for c in poc["outputs_with_interval"]}
    assert task in claimed["intervention.interval"] and task in claimed["comparator.interval"]
    arms_without = [c for c in poc["outputs_without_interval"] if c["path"].startswith("intervention")]
    assert not any(task in c["tasks"] for c in arms_without)  # (the top factors are listed for every task)
    patients = [{"baseline_pain": 62.0, "baseline_function": 41.0, "age": 47, "female": 1},
                {"baseline_pain": 30.0, "baseline_function": 70.0}]
    for comp in scorer.comparators:
        for r in scorer.score(patients, comp):
            o = r["outcomes"][task]
            if not o["available"]:
                continue
            assert o["learner"] == "stacked"
            for arm in ("intervention", "comparator"):
                lo, hi = o[arm]["interval"]
                assert 0 < lo < o[arm]["expected"] < hi < 1 and "interval_note" not in o[arm]
