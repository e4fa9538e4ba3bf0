"""The card's plain-language reading of each performance metric shows the estimate with its 95% CI,
rounded to what the CI's width supports (s13g's audit: "off by about 6.59" without its CI), and the
card lists the top factors among the outputs without an interval of their own."""
import re

import pytest

from predict.results import FACTORS_UNCERTAINTY
from training.cards.interpret import MEANING, interpret
from training.cards.regulatory import interval_claims


@pytest.mark.parametrize("metric", sorted(MEANING))
def test_every_sentence_gives_its_ci(metric):
    text = interpret(metric, 0.5512, 0.4903, 0.6131)
    assert "0.55, 95% CI 0.49 to 0.61" in text
    assert "0.5512" not in text and "0.551" not in text


@pytest.mark.parametrize("metric", sorted(MEANING))
def test_no_ci_is_said(metric):
    assert ", no CI" in interpret(metric, 0.5512)


@pytest.mark.parametrize("lo, hi, shown", [(5.1, 8.03, "6.6, 95% CI 5.1 to 8.0"), (6.2, 6.9, "6.59, 95% CI 6.20 to 6.90"),
                                            (-10.0, 30.0, "7, 95% CI -10 to 30"),
                                            (6.58, 6.6, "6.591, 95% CI 6.580 to 6.600")])
def test_rounding_follows_the_ci_width(lo, hi, shown):
    text = interpret("e_avg_for_benefit", 6.5912, lo, hi)
    assert shown in text
    # the repeated value in the explanation uses the same decimals
    d = len(shown.split(",")[0].split(".")[1]) if "." in shown.split(",")[0] else 0
    assert re.search(rf"off by about {6.5912:.{d}f} outcome units", text)


def test_factors_are_listed_without_interval():
    class Inp:
        manifest = {"arm_intervals": {"pain__short": True}}

        @staticmethod
        def task_names():
            return ["pain__short"]

    with_iv, without = interval_claims(Inp())
    assert any(FACTORS_UNCERTAINTY in c["what"] and c["path"].startswith("top_factors") for c in without)
    assert not any("factor" in c["path"] for c in with_iv)
