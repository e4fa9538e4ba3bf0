"""The comparator network reaches scoring, the API and the model card (issue #10, surfaces).

Uses the session's small model (tests/_small_model.py; trained with the network, the default) and,
for an indirect-only comparator, a re-export of its run with one task's network refitted on a
reduced copy of the data in which no trial compares exercise with education directly."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from predict import Scorer
from tests._small_model import harmonised

NODE = "manual_therapy"  # an other-conservative subtype: not one of the learners' classes
PATIENT = {"baseline_pain": 62.0, "baseline_function": 41.0, "age": 47.0, "female": 1}


@pytest.fixture(scope="module")
def h(sm):
    return harmonised(sm.data)


def _refit(analysis: pd.DataFrame, net: dict):
    """The IPD network model fitted again from the training rows, independently of the artifact."""
    from training.network.benefit_model import with_nodes
    from training.network.ipd import fit_ipd_network

    a = with_nodes(analysis)
    return fit_ipd_network(a[a["outcome"] == net["outcome"]], net["outcome"], net["follow_up"],
                           modifiers=tuple(net["model"]["modifiers"]), interaction=net["model"]["interaction"])


def test_network_nodes_listed_with_evidence(scorer):
    m = scorer.manifest
    assert scorer.learner_comparators == m["comparators"]
    nodes = {c["node"]: c for c in m["network_comparators"]}
    assert NODE in scorer.comparators and NODE not in m["comparators"]
    assert nodes[NODE]["scored_by"] == "ipd_network"
    assert nodes["usual_care"]["scored_by"] == "learner"  # a learner class keeps the learners' predictions
    assert set(scorer.comparators) == set(m["comparators"]) | set(nodes)
    for c in nodes.values():
        assert c["evidence"] in ("direct", "indirect only", "direct in some tasks, indirect only in others")
        for e in c["tasks"].values():
            assert e["trials"] >= 1 and e["participants"] >= 1
    # the network files are model files: hash-verified and part of the model id
    assert all(f"model/network/{t}.json" in m["files"] for t in ("pain__short", "function__moderate"))
    assert "model/network/global_recovery__moderate.json" not in m["files"]


def test_network_node_scores_equal_the_models_own_prediction(scorer, h):
    res = scorer.score([PATIENT], NODE)[0]
    z = 1.959963984540054
    for task in ("pain__short", "function__moderate"):
        o = res["outcomes"][task]
        assert o["available"] and o["learner"] == "ipd_network"
        b = o["benefit"]
        assert all(np.isfinite([b["estimate"], *b["ci"], *b["prediction_interval"]]))
        assert b["prediction_interval"][0] < b["ci"][0] < b["estimate"] < b["ci"][1] < b["prediction_interval"][1]
        assert o["comparator"]["expected"] == pytest.approx(o["intervention"]["expected"] + b["estimate"], abs=1e-9)
        net = next(t.net for t in scorer._tasks if t.task == task)
        fit = _refit(h.analysis, net)
        prof = pd.DataFrame([{m: PATIENT[m] for m in fit.modifiers}])
        ref = fit.predict_benefit(prof).set_index("alternative").loc[NODE]
        assert b["estimate"] == pytest.approx(float(ref["benefit"]), abs=1e-8)
        assert (b["ci"][1] - b["ci"][0]) / (2 * z) == pytest.approx(float(ref["se"]), abs=1e-8)
        sp = np.sqrt(ref["se"] ** 2 + fit.tau ** 2)
        assert (b["prediction_interval"][1] - b["prediction_interval"][0]) / (2 * z) == pytest.approx(sp, abs=1e-8)
        assert o["evidence"]["type"] == net["evidence"][NODE]["evidence"]
    rec = res["outcomes"]["global_recovery__moderate"]  # no network model for a binary outcome
    assert rec["available"] is False and rec["benefit"]["estimate"] is None
    assert any("one-stage IPD network model" in w for w in res["warnings"])
    assert any("no network model covers" in w and "global_recovery__moderate" in w for w in res["warnings"])


def test_missing_modifier_widens_the_interval(scorer):
    full = scorer.score([PATIENT], NODE, ["pain"])[0]["outcomes"]["pain__short"]["benefit"]
    less = scorer.score([{k: v for k, v in PATIENT.items() if k != "age"}], NODE, ["pain"])[0]
    b = less["outcomes"]["pain__short"]["benefit"]
    net = next(t.net for t in scorer._tasks if t.task == "pain__short")
    if "age" in net["model"]["modifiers"]:
        assert b["ci"][1] - b["ci"][0] > full["ci"][1] - full["ci"][0] - 1e-12
    assert np.isfinite(b["estimate"])


def test_learner_comparators_unchanged_and_table_agrees(scorer):
    r = scorer.score([PATIENT], "usual_care")[0]
    assert all(o["learner"] != "ipd_network" and "evidence" not in o for o in r["outcomes"].values())
    one = scorer.score([PATIENT], NODE)[0]["scores"]
    tab = scorer.score_table([PATIENT], NODE, details=False).iloc[0]
    for k, v in one.items():
        assert (v is None and np.isnan(tab[k])) or tab[k] == pytest.approx(v, abs=1e-12)


def test_api_lists_and_accepts_network_nodes(scorer):
    from serving.app import create_app
    from serving.settings import ServingSettings

    st = ServingSettings(model_path=None, api_keys="", allow_unauthenticated=False, cors_origins="",
                         max_body_bytes=1024 * 1024, max_batch=100, metrics_require_auth=False, warmup=False, docs=True)
    with TestClient(create_app(scorer, st), client=("127.0.0.1", 50000)) as c:
        info = c.get("/v1/model").json()
        assert NODE in info["comparators"]
        nodes = {x["node"]: x for x in info["network_comparators"]}
        assert nodes[NODE]["scored_by"] == "ipd_network" and nodes[NODE]["evidence"] == "direct"
        r = c.post("/v1/score", json={"patient": PATIENT, "comparator": NODE})
        assert r.status_code == 200, r.text
        assert r.json()["result"]["outcomes"]["pain__short"]["learner"] == "ipd_network"
        assert c.post("/v1/score", json={"patient": PATIENT, "comparator": "reiki"}).status_code == 422


def test_card_has_the_evidence_section(sm):
    md = (sm.artifact / "card.md").read_text("utf-8")
    sec_md = md.split("## 4. Training data")[1].split("## 5.")[0]
    assert "### Comparators and evidence" in sec_md and "| manual_therapy | ipd_network |" in sec_md
    secs = json.loads((sm.artifact / "card.json").read_text("utf-8"))["extensions"]["lbp_benefit"]["sections"]
    sec = secs["training_data"]["comparators_evidence"]
    assert sec["available"] and NODE in sec["direct"] and sec["indirect_only"] == []


def test_card_without_network_says_so():
    from training.cards.content import s_comparators

    class Inp:
        manifest = {"comparators": ["usual_care"], "active": "exercise"}

    s = s_comparators(Inp())
    assert s.data["available"] is False and "not available" in s.md[0] and "usual_care" in s.md[0]


def test_indirect_only_comparator(sm, h, tmp_path):
    """No trial compares exercise with education: its benefit rests on indirect evidence only
    (education vs usual care, usual care vs exercise), and scoring says so."""
    from training.export_model import export_artifact
    from training.learners.base import feature_spec_from_config
    from training.network.benefit_model import fit_task_network, with_nodes

    a = with_nodes(h.analysis)
    a = a[(a["outcome"] == "pain") & (a["follow_up"] == "short")]
    edu = set(a.loc[a["node"] == "education", "trial"])
    three = [t for t in edu if {"exercise", "usual_care"} <= set(a.loc[a["trial"] == t, "node"])]
    assert three, "the simulated data have an exercise / usual care / education trial"
    keep = ~a["trial"].isin(edu - set(three[:1])) & ~((a["trial"] == three[0]) & (a["node"] == "exercise"))
    reduced = a[keep].drop(columns="node")
    payload = fit_task_network(reduced, "pain", "short", feature_spec_from_config(h.config))
    assert payload["evidence"]["education"]["evidence"] == "indirect only"
    assert payload["evidence"]["education"]["direct_trials"] == 0
    run = tmp_path / "run"
    shutil.copytree(sm.run, run)
    payload.pop("card_network")
    (run / "network" / "pain__short.json").write_text(json.dumps(payload), "utf-8")
    art = export_artifact(run, tmp_path / "art", h, created="2025-01-01T00:00:00Z")
    s = Scorer.load(art)
    ed = {c["node"]: c for c in s.network_comparators}["education"]
    assert ed["tasks"]["pain__short"]["evidence"] == "indirect only" and ed["scored_by"] == "ipd_network"
    assert ed["evidence"] == "direct in some tasks, indirect only in others"  # function__moderate kept its direct trials
    r = s.score([PATIENT], "education", ["pain"])[0]
    o = r["outcomes"]["pain__short"]
    assert o["available"] and o["evidence"]["type"] == "indirect only"
    assert all(np.isfinite([o["benefit"]["estimate"], *o["benefit"]["ci"], *o["benefit"]["prediction_interval"]]))
    assert any("indirect evidence only" in w and "pain__short" in w for w in r["warnings"])
    assert not any("indirect evidence only" in w for w in s.score([PATIENT], NODE, ["pain"])[0]["warnings"])
    md = (art / "card.md").read_text("utf-8")
    assert "- Indirect evidence only: none." in md and "| education | ipd_network | pain__short | indirect only | 0 / 0 |" in md


def test_tampered_network_file_is_refused(sm, tmp_path):
    from predict.artifact import ArtifactError

    dst = tmp_path / "art"
    shutil.copytree(sm.artifact, dst)
    p = dst / "model/network/pain__short.json"
    net = json.loads(p.read_text("utf-8"))
    net["model"]["coef"][0] += 1.0
    p.write_text(json.dumps(net), "utf-8")
    with pytest.raises(ArtifactError):
        Scorer.load(dst)


def test_stale_default_model_is_not_reused(tmp_path, sm):
    from lbp_benefit import default_model as dm

    art = tmp_path / "artifact"
    shutil.copytree(sm.artifact, art)
    assert not dm.is_current(art)  # no revision beside it: a cache from before the revision marker
    (tmp_path / dm.REVISION_FILE).write_text(dm.DEFAULT_MODEL_REVISION, "utf-8")
    assert dm.is_current(art)
    (tmp_path / dm.REVISION_FILE).write_text("an older revision", "utf-8")
    assert not dm.is_current(art)
    (tmp_path / dm.REVISION_FILE).write_text(dm.DEFAULT_MODEL_REVISION, "utf-8")
    m = json.loads((art / "manifest.json").read_text("utf-8"))
    m.pop("network_comparators")
    (art / "manifest.json").write_text(json.dumps(m), "utf-8")
    assert not dm.is_current(art)
    assert dm.default_settings().network is True and dm.default_settings().network_method == "ml-nmr"
