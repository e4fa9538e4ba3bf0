"""The runtime's structure (issue 19): small modules with one job each, no module reaching into
another's private names (predict/ and serving/), one place for the clinical warnings' wording, and
a compile failure that is visible rather than silent."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500


def _modules(*dirs: str):
    for d in dirs:
        yield from sorted((ROOT / d).rglob("*.py"))


def _is_module(dotted: str) -> bool:
    p = ROOT.joinpath(*dotted.split("."))
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def cross_module_private_uses(path: Path) -> list[str]:
    """``from pkg.mod import _name`` and ``mod._name`` (``mod`` another project module under any
    alias) in one file; a module's own privates and dunders are fine."""
    tree = ast.parse(path.read_text("utf-8"))
    aliases, hits = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if _is_module(full):
                    aliases[a.asname or a.name] = full
                elif a.name.startswith("_") and not a.name.startswith("__") and node.module.split(".")[0] in (
                        "predict", "serving", "training", "lbp_benefit"):
                    hits.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import {a.name}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if _is_module(a.name):
                    aliases[a.asname or a.name.split(".")[0]] = a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            hits.append(f"{path.relative_to(ROOT)}:{node.lineno}: {aliases[node.value.id]}.{node.attr}")
    return hits


def test_no_cross_module_private_imports_in_predict_and_serving():
    hits = [h for p in _modules("predict", "serving") for h in cross_module_private_uses(p)]
    assert not hits, "\n".join(hits)


def test_the_check_finds_a_private_import(tmp_path):
    p = ROOT / "predict" / "_probe_private_import.py"
    p.write_text("from predict.impute import _x\nimport predict.linear as lin\ny = lin._MEMO\n", "utf-8")
    try:
        assert len(cross_module_private_uses(p)) == 2
    finally:
        p.unlink()


def test_no_runtime_module_over_500_lines():
    big = {str(p.relative_to(ROOT)): n for p in _modules("predict")
           if (n := len(p.read_text("utf-8").splitlines())) > MAX_LINES}
    assert not big, big


@pytest.mark.parametrize("phrase", ["the prediction extrapolates", "the model has little data on",
                                    "few training participants had", "the model was trained on synthetic (simulated) data: not for clinical use",
                                    "no trial compared {self.active} with"])
def test_clinical_warnings_are_worded_in_one_file(phrase):
    where = [str(p.relative_to(ROOT)) for p in _modules("predict") if phrase in p.read_text("utf-8")]
    assert where == ["predict/clinical_warnings.py"], where


def test_scoring_status_says_how_it_computes(scorer):
    scorer.score([scorer.example_patient()], "usual_care")
    st = scorer.scoring_status()
    assert st["programs"]["usual_care"] in ("compiled",) or st["programs"]["usual_care"].startswith("not compiled: ")
    assert st["path"] in ("compiled", "reference")
    assert (st["path"] == "compiled") == (st["kernels"] is None and all(v == "compiled" for v in st["programs"].values()))


@pytest.mark.parametrize("phrase,owner", [
    ("model-based probability", "predict/verdict.py"),  # how a verdict's probability is named (s13g)
    (", of a worthwhile harm {percent(", "predict/verdict.py"),  # the probabilities in words (demo, CDS card)
    ("without intervals of their own", "predict/results.py"),  # what the top factors are (s13g)
    ('"verdict_probability_harm"', "predict/verdict.py"),  # a verdict column name (the table forms)
])
def test_uncertainty_wording_has_one_owner(phrase, owner):
    where = [str(p.relative_to(ROOT)) for p in _modules("predict", "serving", "lbp_benefit", "training")
             if phrase in p.read_text("utf-8")]
    assert where == [owner], where
