"""Property test: any valid study config survives YAML round trips unchanged, and the drafts of
``config init`` are valid configs."""
import dataclasses

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training.config import load_config, parse_config
from training.config_schema import StudySchema

NAME = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s not in {"trial", "participant", "arm", "treatment", "subtype", "treat", "value", "baseline", "outcome",
                        "follow_up", "week", "instrument", "error", "event"} and not s.startswith("baseline_"))
NUM = st.floats(-1e4, 1e4, allow_nan=False).map(lambda x: round(x, 3))


@st.composite
def covariate(draw):
    kind = draw(st.sampled_from(["continuous", "binary", "categorical"]))
    d = {"type": kind}
    if draw(st.booleans()):
        d["label"] = draw(st.text(min_size=1, max_size=12))
    if kind == "continuous" and draw(st.booleans()):
        lo = draw(NUM)
        hi = lo + draw(st.floats(1, 100).map(lambda x: round(x, 3)))
        d["range"] = [lo, hi]
        if draw(st.booleans()):
            d["plausible"] = [lo, lo + (hi - lo) / 2]
    if kind == "categorical":
        levels = draw(st.lists(NAME, min_size=2, max_size=4, unique=True))
        d["categories"] = levels
        d["reference"] = draw(st.sampled_from(levels))
    return d


@st.composite
def config(draw):
    classes = draw(st.lists(NAME, min_size=2, max_size=4, unique=True))
    covs = draw(st.dictionaries(NAME, covariate(), max_size=4))
    windows, after = {}, 0.0
    for i in range(draw(st.integers(1, 3))):
        up_to = after + draw(st.floats(1, 30).map(lambda x: round(x, 2)))
        windows[f"w{i}"] = {"target_week": up_to, "after": after, "up_to": up_to}
        after = up_to
    outcomes = {}
    for name in draw(st.lists(NAME.filter(lambda n: n not in covs), min_size=1, max_size=3, unique=True)):
        if draw(st.booleans()):
            o = {"kind": "continuous", "instruments": [draw(st.sampled_from(["vas_0_10", "nrs_0_10", "rmdq_0_24"]))],
                 "baseline": draw(st.booleans())}
            if draw(st.booleans()):
                o["smallest_worthwhile"] = draw(st.sampled_from([{"absolute": 10.0}, {"relative": 0.2}]))
        else:
            o = {"kind": "binary", "direction": draw(st.sampled_from(["higher_is_worse", "higher_is_better"]))}
        if draw(st.booleans()):
            o["follow_up"] = draw(st.lists(st.sampled_from(list(windows)), min_size=1, unique=True))
        outcomes[name] = o
    raw = {
        "name": draw(NAME), "treatments": {"active": classes[0], "classes": classes},
        "covariates": covs, "adjust_for": draw(st.lists(st.sampled_from(list(covs)), unique=True)) if covs else [],
        "outcomes": outcomes, "follow_up": windows, "min_trial_size": draw(st.integers(1, 50)),
    }
    if draw(st.booleans()):
        raw["treatments"]["intervention_label"] = draw(st.text(min_size=1, max_size=20))
    return raw


def _same(a, b):
    da = {f.name: getattr(a, f.name) for f in dataclasses.fields(a) if f.name not in ("raw", "source")}
    db = {f.name: getattr(b, f.name) for f in dataclasses.fields(b) if f.name not in ("raw", "source")}
    assert da == db


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config())
def test_config_round_trips_through_yaml(raw):
    cfg = parse_config(raw, source="a.yaml")
    # 1. the YAML text of the raw config
    again = parse_config(yaml.safe_load(yaml.safe_dump(raw, sort_keys=False)), source="b.yaml")
    _same(cfg, again)
    # 2. the schema's normalised dump (what 'config init' writes) parses to the same config
    dumped = StudySchema.model_validate(raw).model_dump(mode="json", exclude_none=True)
    _same(cfg, parse_config(yaml.safe_load(yaml.safe_dump(dumped, sort_keys=False)), source="c.yaml"))


def test_default_config_round_trips():
    cfg = load_config()
    dumped = StudySchema.model_validate(cfg.raw).model_dump(mode="json", exclude_none=True)
    _same(cfg, parse_config(yaml.safe_load(yaml.safe_dump(dumped, sort_keys=False))))


def test_config_init_drafts_a_valid_config_from_the_data(tmp_path):
    import pandas as pd

    from training.config_draft import draft_yaml

    pd.DataFrame({"trial": ["A"] * 4 + ["B"] * 4, "participant": [str(i) for i in range(8)], "arm": ["x", "y"] * 4,
                  "treatment": ["drug", "placebo"] * 4, "age": [30, 41, "", 52, 60, 33, 47, 28],
                  "smoker": [0, 1, 0, 1, 1, 0, "", 0], "site": ["n", "s", "n", "e", "s", "s", "n", "e"]}
                 ).to_csv(tmp_path / "participants.csv", index=False)
    rows = [("A" if i < 4 else "B", str(i), "death", "event", 4, i % 2) for i in range(8)]
    rows += [("A" if i < 4 else "B", str(i), "score", "bdi", w, 10 + i + w) for i in range(8) for w in (0, 8)]
    pd.DataFrame(rows, columns=["trial", "participant", "outcome", "instrument", "week", "value"]).to_csv(
        tmp_path / "outcomes.csv", index=False)
    text = draft_yaml(tmp_path, active="drug")
    (tmp_path / "study.yaml").write_text(text)
    cfg = load_config(tmp_path / "study.yaml")
    assert cfg.active == "drug" and cfg.treatment_classes == ("drug", "placebo")
    assert cfg.covariates["age"].type == "continuous" and cfg.plausible["age"] == (28.0, 60.0)
    assert cfg.covariates["smoker"].type == "binary"
    # reference: the most frequent level (n and s: 3 each; ties alphabetical), not the first in the alphabet
    assert cfg.covariates["site"].categories == ("e", "n", "s") and cfg.covariates["site"].reference == "n"
    assert cfg.outcomes["death"].kind == "binary" and not cfg.outcomes["death"].baseline
    assert cfg.outcomes["score"].kind == "continuous" and cfg.outcomes["score"].baseline
    assert cfg.instruments["bdi"].min == 10 and cfg.instruments["bdi"].max == 25
    assert [w.target_week for w in cfg.windows] == [4.0, 8.0]


def test_config_init_windows_follow_each_outcome_and_unequal_follow_up(tmp_path):
    """Found on real trials (survival::colon, survival::cgd0, medicaldata::strep_tb): the draft made
    one window per distinct week for every outcome, so (a) two outcomes recorded at different
    horizons (death at 5 years, recurrence at 3) each got a window with nobody in it ('no
    participant can be analysed'), (b) an event recorded at the end of each patient's own follow-up
    (13 to 63 weeks) was split into four windows of a quarter of the patients each, and (c) an empty
    instrument cell (allowed for an outcome's single instrument) became an instrument named ''."""
    import numpy as np
    import pandas as pd

    from training.config_draft import draft_yaml
    from training.dataset import load_dataset
    from training.harmonise import harmonise

    n = 40
    ids = [str(i) for i in range(n)]
    pd.DataFrame({"trial": ["T"] * n, "participant": ids, "arm": ["a", "b"] * (n // 2),
                  "treatment": ["drug", "placebo"] * (n // 2)}).to_csv(tmp_path / "participants.csv", index=False)
    rng = np.random.default_rng(1)
    rows = [("T", p, "death5y", "event", 261, i % 2) for i, p in enumerate(ids)]
    rows += [("T", p, "recur3y", "", 157, (i // 2) % 2) for i, p in enumerate(ids)]
    rows += [("T", p, "infection", "event", float(rng.integers(13, 64)), i % 3 == 0) for i, p in enumerate(ids)]
    rows += [("T", p, "score", "", w, 1 + (i + w) % 5) for i, p in enumerate(ids) for w in (0, 4, 13)]
    pd.DataFrame(rows, columns=["trial", "participant", "outcome", "instrument", "week", "value"]).replace(
        {True: 1, False: 0}).to_csv(tmp_path / "outcomes.csv", index=False)
    (tmp_path / "study.yaml").write_text(draft_yaml(tmp_path, active="drug"))
    cfg = load_config(tmp_path / "study.yaml")
    assert cfg.outcomes["recur3y"].kind == "binary" and "" not in cfg.instruments
    assert cfg.outcomes["score"].instruments == ("score_scale",) and cfg.instruments["score_scale"].max == 5
    windows = {w.name: w for w in cfg.windows}
    inf = cfg.outcomes["infection"].follow_up
    assert inf is not None and len(inf) == 1  # one window for the event, whatever the patient's follow-up
    weeks = [r[4] for r in rows if r[2] == "infection"]
    assert windows[inf[0]].after < min(weeks) and windows[inf[0]].up_to >= max(weeks)
    a = harmonise(load_dataset(tmp_path, cfg)).analysis
    for o, expected in (("death5y", n), ("recur3y", n), ("infection", n), ("score", n)):
        got = a[a.outcome == o].groupby("follow_up").size()
        assert set(got.index) == set(cfg.outcomes[o].follow_up or windows), (o, got)  # no empty window
        assert (got == expected).all(), (o, got)
