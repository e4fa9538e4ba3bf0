"""One builder of the clinical warnings (predict/clinical_warnings.py, issue 19): a patient scored
alone, in a small request and in a large batch (the column-wise selection of rows) carries the same
warning texts, in the same order, for varied patients: missing inputs, values outside the range of
most training participants (both sides), rare levels, every covariate missing."""
from __future__ import annotations

import numpy as np
import pandas as pd

from predict.clinical_warnings import SMALL_MAX_ROWS, InputRule


def _patients(scorer, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    ranges = {r.column: r.range for r in scorer.warnings._wrules if r.range is not None}
    out = []
    for i in range(n):
        p = {}
        for j, (name, typ) in enumerate(zip(scorer._names, scorer._types)):
            if name not in scorer.baselines and rng.random() < 0.3:
                continue  # missing
            lo, hi = scorer._range.get(name) or (0.0, 100.0)
            if typ == "categorical":
                p[name] = str(rng.choice(scorer._cats[name]))
            elif typ == "binary":
                p[name] = int(rng.integers(0, 2))
            elif j in ranges and rng.random() < 0.5:  # just outside the training participants' range, within validation
                w_lo, w_hi = ranges[j][0], ranges[j][1]
                v = rng.choice([max(lo, w_lo - abs(w_lo) * 0.1 - 1), min(hi, w_hi + abs(w_hi) * 0.1 + 1)])
                p[name] = float(round(v, 1))
            else:
                p[name] = float(round(rng.uniform(lo, hi), 1))
        out.append(p)
    out.append({b: 50.0 for b in scorer.baselines})  # every covariate missing
    return out


def test_a_patient_alone_in_a_request_and_in_a_large_batch_gets_the_same_warnings(scorer):
    patients = _patients(scorer, 40, seed=5)
    comp = scorer.comparators[0]
    alone = [scorer.score([p], comp, explain=False)[0]["warnings"] for p in patients]
    together = [r["warnings"] for r in scorer.score(patients, comp, explain=False)]
    reps = SMALL_MAX_ROWS // len(patients) + 2  # a batch past the per-value size: rows picked column-wise
    table = scorer.score_table(pd.DataFrame(patients * reps), comp)["warnings"].tolist()
    assert alone == together
    assert [" | ".join(w) for w in alone] * reps == table
    texts = [t for w in alone for t in w]
    # the cases are there: values outside the training range, rare levels or little data, none for some
    assert any("is outside the range of" in t for t in texts)
    assert any(not [t for t in w if "outside the range" in t] for w in alone)


def test_the_input_rule_words_a_value_once():
    rule = InputRule(0, (10.0, 20.0, "Age = ", " years is outside the range (10–20 years)"), None,
                     ((1.0, "rare one"),))
    assert rule.texts(float("nan")) == []
    assert rule.texts(15.0) == []
    assert rule.texts(25.5) == ["Age = 25.5 years is outside the range (10–20 years)"]
    x = np.array([np.nan, 15.0, 25.5, 1.0, 9.0])
    assert rule.rows(x).tolist() == [2, 3, 4]
    assert rule.texts(1.0) == ["Age = 1 years is outside the range (10–20 years)", "rare one"]


def test_every_patient_warning_has_a_kind_and_request_warnings_have_none(scorer):
    """The counted kinds (``count_warnings``) cover every warning about a patient's own inputs; the
    warnings every patient of a request shares are not counted."""
    from predict.clinical_warnings import count_warnings, warning_kind

    patients = _patients(scorer, 40, seed=5)
    comp = scorer.comparators[0]
    results = scorer.score(patients, comp, explain=False)
    shared = set.intersection(*(set(r["warnings"]) for r in results))
    own = [[t for t in r["warnings"] if t not in shared] for r in results]
    assert all(warning_kind(t) is not None for w in own for t in w)
    assert all(warning_kind(t) is None for t in shared)
    summary = count_warnings(r["warnings"] for r in results)
    assert summary["count"] == sum(bool(w) for w in own) > 0
    assert summary["by_kind"]["outside_training_range"] == sum(any("outside the range" in t for t in w) for w in own)
    assert "mostly_imputed" in summary["by_kind"]  # the last patient: every covariate missing


def test_training_range_in_words_is_rounded_inwards():
    """The range a warning names has 3 significant digits (not '17.233–38.9'), rounded inwards, so
    a flagged value is always outside the range shown (s12u: seen by hand on the calculator)."""
    import numpy as np

    from predict.clinical_warnings import shown_range

    assert shown_range(17.233, 38.9) == ("17.3", "38.9")
    assert shown_range(18.0, 79.0) == ("18", "79")
    assert shown_range(0.123456, 0.98765) == ("0.124", "0.987")
    assert shown_range(1234.5, 98765.0) == ("1240", "98700")
    assert shown_range(17.25, 17.27) == ("17.25", "17.27")  # too narrow to round: as is
    rng = np.random.default_rng(0)
    for _ in range(2000):
        lo = float(rng.normal(0, 10) * 10.0 ** rng.integers(-3, 4))
        hi = lo + float(rng.exponential(1) * 10.0 ** rng.integers(-2, 4))
        a, b = map(float, shown_range(lo, hi))
        assert lo <= a <= b <= hi


def test_the_batch_summary_names_prediction_warnings_apart_from_input_warnings():
    """s12r: an off-scale predicted outcome (``outside_scale``) was counted under "warnings about their
    inputs"; the one wording (``warned_text``) names warnings about the predictions apart."""
    from predict.clinical_warnings import OUTSIDE_SCALE, count_warnings, warned_text

    off = f"pain/short: the predicted outcome under the comparator (-3.0) {OUTSIDE_SCALE}: ..."
    rng = "Age = 101 years is outside the range of most training participants (18–79 years)"
    assert warned_text(count_warnings([[rng], []]), "'warnings'") == (
        "1 scored row(s) carry warnings about their inputs (outside_training_range: 1; see the 'warnings' column)")
    only = warned_text(count_warnings([[off], [off]]), "warnings")
    assert only.startswith("2 scored row(s) carry warnings about their predictions (outside_scale: 2;")
    both = warned_text(count_warnings([[rng, off], [off]]), "warnings")
    assert "inputs or predictions" in both and "inputs - outside_training_range: 1; predictions - outside_scale: 2" in both
    assert warned_text(count_warnings([[], []]), "warnings") == ""


def test_counts_in_warnings_agree_with_their_noun():
    """s12r: "observed for 99 training participants in 1 trials", "(1 trials, 48-49 participants, ...)"."""
    from predict.clinical_warnings import count_words

    assert [count_words("1", "trial"), count_words("2", "trial"), count_words("2-4", "trial")] == ["1 trial", "2 trials", "2-4 trials"]
