"""The model card says plainly, with the measured figures, that recovery's (binary) benefit
intervals under-cover (issue 23: "or a report that says plainly when it cannot"); the figures are
those of the committed benchmark (benchmarks/results/learners_i23b_recovery_summary.csv: the selection with
the effect model deployed when the stack fails the gate, stack intervals with the members' disagreement;
i23r_recovery_one_tau: the average-effect model then)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from training.cards import text as T

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def card(sm):
    from lbp_benefit.cmd_card import card_from_artifact

    return card_from_artifact(sm.artifact)


def test_a_model_with_a_recovery_task_says_its_intervals_are_too_narrow(card):
    secs = card.json["extensions"]["lbp_benefit"]["sections"]
    assert secs["point_of_care"]["binary_interval_coverage"] == T.BINARY_INTERVALS
    assert T.BINARY_INTERVALS in secs["limitations"]["model_limitations"]
    line = next(x for x in card.markdown.splitlines() if x.startswith("**Recovery's intervals ("))
    assert "global_recovery__moderate" in line and "pain__" not in line.split(".**")[0]
    assert line.endswith(T.BINARY_INTERVALS)
    assert "read recovery's CI and PI as too narrow" in card.markdown


def test_the_card_quotes_the_benchmark_it_cites():
    s = pd.read_csv(ROOT / "benchmarks" / "results" / "learners_i23b_recovery_summary.csv")
    sel = s[s["learner"] == "selected"].set_index("scenario")
    before = pd.read_csv(ROOT / "benchmarks" / "results" / "learners_i23r_recovery_one_tau_summary.csv")
    old = before[before["learner"] == "selected"].set_index("scenario").loc["hayden2020"]

    def pct(x: float) -> str:
        return f"{round(100 * x)}%"

    strong, default = sel.loc["strong"], sel.loc["hayden2020"]
    assert f"for {pct(strong['coverage_ci_avg'])} of patients" in T.BINARY_INTERVALS
    assert f"new trial for {pct(strong['coverage_pi_new'])}" in T.BINARY_INTERVALS
    assert f"{pct(default['coverage_ci_avg'])} and {pct(default['coverage_pi_new'])}. (" in T.BINARY_INTERVALS
    assert f"covered {pct(old['coverage_ci_avg'])} and {pct(old['coverage_pi_new'])}.)" in T.BINARY_INTERVALS
    assert not (0.90 <= strong["coverage_ci_avg"] <= 0.97)  # the text says they cannot: still true
