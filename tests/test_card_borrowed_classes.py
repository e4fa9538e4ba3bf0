"""The card and the training report say when a comparator class's average effect was borrowed from its
comparison set (issue 23, session 13 s13b): train writes the effect model's own share of each class's effect
after class shrinkage (class_support.csv ``own_weight``), and classes below half are named with it."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from training.cards import text as T


def _support(weights):
    return pd.DataFrame([{"task": t, "comparator": c, "trials": k, "participants": 50 * k, "sparse": k < 2,
                          "own_weight": w} for t, c, k, w in weights])


def test_names_the_borrowed_classes_with_their_share():
    s = _support([("global_recovery__moderate", "no_treatment", 2, 0.0),
                  ("global_recovery__moderate", "usual_care", 3, 0.004),
                  ("global_recovery__moderate", "other_conservative", 8, 0.97),
                  ("pain__long", "usual_care", 2, 0.45), ("pain__long", "placebo", 0, np.nan),
                  ("pain__long", "combined", 0, 0.0)])
    txt = T.borrowed_classes(s)
    assert "global_recovery__moderate: no_treatment (2 trials, own share 0%), usual_care (3 trials, own share 0%)" in txt
    assert "pain__long: usual_care (2 trials, own share 45%)" in txt
    assert "other_conservative" not in txt and "placebo" not in txt and "combined" not in txt
    assert T.borrowed_classes(s.assign(own_weight=0.9)) is None
    assert T.borrowed_classes(s.drop(columns="own_weight")) is None
    assert T.borrowed_classes(None) is None


def test_train_writes_the_effect_models_share_and_the_card_and_report_say_it(sm):
    from lbp_benefit.cmd_card import card_from_artifact

    cs = pd.read_csv(sm.run / "class_support.csv")
    assert "own_weight" in cs.columns
    for task in cs["task"].unique():
        exp = json.loads((sm.run / "models" / task / "effect_model.json").read_text("utf-8"))
        shr = exp["meta"].get("class_shrinkage") or {}
        got = cs[cs["task"] == task].set_index("comparator")["own_weight"]
        for c, v in shr.items():
            assert got[c] == v["weight_own"]
    txt = T.borrowed_classes(cs)
    card = card_from_artifact(sm.artifact)
    data = card.json["extensions"]["lbp_benefit"]["sections"]["training_data"]
    assert data.get("borrowed_class_effects") == txt
    report = (sm.run / "report.md").read_text("utf-8")
    assert txt is not None  # the small model (hayden2020 seed 1, 600 participants) pools 2-3-trial classes
    assert txt in card.markdown and txt in report
