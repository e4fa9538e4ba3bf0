"""Which baselines a scoring request needs (predict/required_inputs.py, the one owner of the rule):
recovery with ``combine: any`` needs at least one of its definition's baselines, with ``all`` every
one; continuous tasks their own; artifacts without the stored definition every baseline. Scored end
to end on the small model: a patient with only the pain baseline gets a recovery prediction with the
function baseline listed as missing (imputed), and is refused, with the reason, under ``combine: all``."""
from __future__ import annotations

import copy
from types import SimpleNamespace as NS

import numpy as np
import pandas as pd
import pytest

from predict.errors import ValidationFailed
from predict.required_inputs import DEFINITION_KEY, Requirement, definition_rule, requirement

BASE = ["baseline_pain", "baseline_function"]
PAIN = NS(outcome="pain", baseline="baseline_pain")
FUNC = NS(outcome="function", baseline="baseline_function")
REC = NS(outcome="global_recovery", baseline="baseline_function")  # adjust_for: function


def _defs(combine):
    return {"global_recovery": {DEFINITION_KEY: definition_rule(["pain", "function"], combine)}}


def test_the_rule_follows_the_definition():
    assert requirement(BASE, [REC], _defs("any")) == Requirement(frozenset(), (("global_recovery", frozenset(BASE)),))
    assert requirement(BASE, [REC], _defs("all")) == Requirement(frozenset(BASE), ())
    assert requirement(BASE, [REC], {}).all_of == frozenset(BASE)  # no stored definition: the rule it was built with
    assert requirement(BASE, [PAIN], _defs("any")) == Requirement(frozenset({"baseline_pain"}), ())
    # a group with a member required anyway is met whenever the rest is: it disappears
    assert requirement(BASE, [PAIN, REC], _defs("any")) == Requirement(frozenset({"baseline_pain"}), ())
    assert requirement(BASE, [PAIN, FUNC, REC], _defs("any")).all_of == frozenset(BASE)
    with pytest.raises(ValueError, match="combine"):
        definition_rule(["pain"], "either")


def test_met_and_lacking_per_row():
    df = pd.DataFrame({"baseline_pain": [50.0, np.nan, np.nan, 30.0], "baseline_function": [np.nan, 40.0, np.nan, 20.0]})
    anyr, allr = requirement(BASE, [REC], _defs("any")), requirement(BASE, [REC], _defs("all"))
    assert anyr.met(df).tolist() == [True, True, False, True]
    assert allr.met(df).tolist() == [False, False, False, True]
    assert anyr.met(df[["baseline_pain"]]).tolist() == [True, False, False, True]  # an absent column = not given
    rows = df.to_dict("records")
    assert [anyr.lacking(r) for r in rows] == [None, None, "baseline_function or baseline_pain", None]
    assert [allr.lacking(r) for r in rows] == ["baseline_function", "baseline_pain",
                                               "baseline_function, baseline_pain", None]


def test_the_exported_definition_carries_the_rule():
    from training.config import load_config
    from training.export_model import outcome_definitions

    cfg = load_config(None)
    d = outcome_definitions(cfg, ["pain", cfg.recovery_name])
    assert d[cfg.recovery_name][DEFINITION_KEY] == {"combine": cfg.recovery_combine,
                                                     "of": [f"baseline_{o}" for o in cfg.recovery_sources]}
    assert DEFINITION_KEY not in d["pain"]


@pytest.fixture(scope="module")
def rec_task(scorer):
    return next(t for t in scorer.tasks if t.startswith("global_recovery"))


def test_pain_only_patient_is_scored_for_recovery_with_function_imputed(scorer, rec_task):
    assert scorer.outcome_definitions["global_recovery"][DEFINITION_KEY]["combine"] == "any"
    pt = {"baseline_pain": 62.0, "age": 47}
    comp = scorer.comparators[0]
    res = scorer.score([pt], comp, ["global_recovery"])[0]
    o = res["outcomes"][rec_task]
    assert np.isfinite(o["benefit"]["estimate"]) and o["benefit"]["ci"][0] < o["benefit"]["ci"][1]
    assert "baseline_function" in [m["name"] for m in res["missing"]]  # told: that baseline was imputed
    tab = scorer.score_table(pd.DataFrame([pt]), comp, ["global_recovery"])
    assert "baseline_function" in tab["missing"].iat[0].split(";")
    # imputed, not a constant: the prediction equals neither a low nor a high function baseline's
    lo, hi = (scorer.score_table(pd.DataFrame([{**pt, "baseline_function": v}]), comp, ["global_recovery"])
              for v in (5.0, 95.0))
    col = [c for c in tab.columns if c.endswith("_p_comparator")][0]
    assert tab[col].iat[0] != lo[col].iat[0] and tab[col].iat[0] != hi[col].iat[0]
    # pain itself still needs its own baseline; no baseline at all: refused, named
    with pytest.raises(ValidationFailed) as ei:
        scorer.score([{"baseline_function": 40.0}], comp, ["pain"])
    assert [p.column for p in ei.value.problems] == ["baseline_pain"]
    with pytest.raises(ValidationFailed) as ei:
        scorer.score([{"age": 47}], comp, ["global_recovery"])
    (p,) = ei.value.problems
    assert p.code == "required" and "global_recovery needs" in p.message and p.row == 0


def test_combine_all_still_excludes_with_the_reason(scorer):
    strict = copy.copy(scorer)
    strict.outcome_definitions = {**scorer.outcome_definitions,
                                  "global_recovery": {**scorer.outcome_definitions["global_recovery"],
                                                      DEFINITION_KEY: definition_rule(["pain", "function"], "all")}}
    with pytest.raises(ValidationFailed) as ei:
        strict.score([{"baseline_pain": 62.0}], scorer.comparators[0], ["global_recovery"])
    (p,) = ei.value.problems
    assert p.column == "baseline_function" and p.code == "required"
    assert strict.requirement(["global_recovery"]).lacking({"baseline_pain": 62.0}) == "baseline_function"
