"""Run folder -> model artifact: layout, no participant-level data, reproducibility, tamper refusal."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from predict.artifact import ArtifactError, sha256_bytes
from predict.scorer import Scorer
from tests._small_model import train_and_export
from predict.model_format import content_digest, model_id_of


def _manifest(art: Path) -> dict:
    return json.loads((art / "manifest.json").read_text("utf-8"))


def _rewrite_manifest(art: Path, m: dict, redigest: bool = False) -> None:
    if redigest:
        m["content_sha256"] = content_digest(m)
    (art / "manifest.json").write_text(json.dumps(m, indent=2) + "\n", "utf-8")


def test_layout_and_manifest(sm):
    art = sm.artifact
    m = _manifest(art)
    files = set(m["files"])
    on_disk = {p.relative_to(art).as_posix() for p in art.rglob("*") if p.is_file()} - {"manifest.json"}
    assert files == on_disk
    for t in m["tasks"]:
        assert f"model/{t['task']}.json" in files
    assert {"background.csv", "card.md", "card.json", "report/run.json", "report/tasks.csv",
            "report/class_support.csv", "report/iecv/pain__short/pooled.csv", "report/iecv/pain__short/per_trial.csv",
            "report/attrition.csv", "report/covariate_availability.csv"} <= files
    assert any(f.startswith("report/plots/") and f.endswith(".png") for f in files)
    boosters = sorted(f for f in files if f.startswith("model/pain__short/") and f.endswith(".txt"))
    assert boosters == ["model/pain__short/active.txt", "model/pain__short/control.txt"]
    exp = json.loads((art / "model/pain__short.json").read_text("utf-8"))
    assert exp["kind"] == "t_learner"
    assert exp["boosters"] == {"active": {"$booster": "model/pain__short/active.txt"},
                               "control": {"$booster": "model/pain__short/control.txt"}}
    assert (art / boosters[0]).read_text("utf-8").startswith("tree")
    # identity and provenance
    hashes = {n: v["sha256"] for n, v in m["files"].items() if n.startswith("model/")}
    assert m["model_id"] == model_id_of(hashes) and m["model_id"].startswith("lbp-") and len(m["model_id"]) == 16
    assert m["content_sha256"] == content_digest(m)
    assert m["synthetic"] is True and m["seed"] == 1 and m["schema_version"] == "2.0"
    assert m["environment"]["packages"]["lightgbm"] and m["environment"]["python"]
    assert m["created"].endswith("Z")
    assert m["baselines"] == ["baseline_pain", "baseline_function"]
    assert m["outcomes"] == ["pain", "function", "global_recovery"]
    assert set(m["follow_ups"]) == {"short", "moderate"}
    assert "usual_care" in m["comparators"] and set(m["sparse_comparators"]) <= set(m["comparators"])
    assert all("missing" in c and c["missing"].startswith("imputed") for c in m["feature_schema"])
    # the stated handling of a missing input follows the learners exported: the expected-basis
    # clause iff some linear part scores missing inputs by E[B(X) | observed], the tree clause iff boosters
    from training.export_model import MISSING_EXPECTED, MISSING_TREES
    exports = [json.loads((art / f).read_text("utf-8")) for f in files if f.startswith("model/") and f.endswith(".json")]
    text = json.dumps(exports)
    assert all((MISSING_EXPECTED in c["missing"]) == ('"missing": "expected"' in text) for c in m["feature_schema"])
    assert all((MISSING_TREES in c["missing"]) == ('"boosters"' in text) for c in m["feature_schema"])
    assert '"missing": "expected"' in text  # the small model's effect model / recovery model use it
    assert m["card"] == {"markdown": "card.md", "json": "card.json"}
    td = m["training_data"]
    assert len(td["fingerprint"]) == 64
    assert td["n_participants"] == sum(t["participants"] for t in td["trials"].values())
    assert all(sum(t["by_class"].values()) == t["participants"] for t in td["trials"].values())


def test_no_participant_level_rows(sm):
    """background.csv is aggregated (one row per feature); report/ holds no participant ids."""
    art = sm.artifact
    bg = pd.read_csv(art / "background.csv")
    assert list(bg["feature"]) == [c["name"] for c in _manifest(art)["feature_schema"]] + ["baseline_pain", "baseline_function"]
    assert "participant" not in bg.columns
    for p in art.rglob("*.csv"):
        df = pd.read_csv(p, dtype=str)
        assert "participant" not in df.columns, p
    for p in list((art / "model").glob("*.json")) + [art / "manifest.json", art / "card.json"]:
        assert '"participant"' not in p.read_text("utf-8"), p


def test_runtime_is_independent_of_training():
    code = ("import sys, predict, predict.scorer, predict.runtime, predict.model_format\n"
            "bad = [m for m in sys.modules if m.startswith(('training', 'sklearn', 'serving'))]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_learners_use_the_runtime_functions():
    """No re-export shim: the learners' prediction functions are the runtime's own."""
    import training.learners as lr
    from predict.explain import explain_from_export
    from predict.runtime import predict_from_export

    assert lr.predict_from_export is predict_from_export and lr.explain_from_export is explain_from_export


def test_booster_strings_and_objects_are_accepted(sm):
    import lightgbm as lgb

    import predict.trees as rt

    text = (sm.artifact / "model/pain__short/active.txt").read_text("utf-8")
    b = rt.booster(text)
    assert isinstance(b, lgb.Booster) and rt.booster(text) is b
    assert rt.booster(b) is b
    with pytest.raises(TypeError):
        rt.booster(3)


def _normalise_created(data: bytes, created: str) -> bytes:
    return data.replace(created.encode(), b"<created>")


def test_reproducible(sm, tmp_path):
    """Same data, config and seed: every file identical (the manifest's created time aside)."""
    art2 = train_and_export(sm.data, tmp_path / "run", tmp_path / "artifact")
    m1, m2 = _manifest(sm.artifact), _manifest(art2)
    assert set(m1["files"]) == set(m2["files"])
    for name in m1["files"]:
        a, b = (sm.artifact / name).read_bytes(), (art2 / name).read_bytes()
        if name in ("card.md", "card.json"):  # the card shows the created time
            a, b = _normalise_created(a, m1["created"]), _normalise_created(b, m2["created"])
        assert a == b, name
    model_files = [n for n in m1["files"] if n.startswith("model/")]
    assert all(m1["files"][n] == m2["files"][n] for n in model_files)
    assert m1["model_id"] == m2["model_id"]
    drop = ("created", "files", "content_sha256")
    assert {k: v for k, v in m1.items() if k not in drop} == {k: v for k, v in m2.items() if k not in drop}


# ----------------------------------------------------------------------------- tampering
def _copy(sm, tmp_path) -> Path:
    dst = tmp_path / "art"
    shutil.copytree(sm.artifact, dst)
    return dst


def _append(path: Path, data: bytes = b" ") -> None:
    path.write_bytes(path.read_bytes() + data)


def _first(art: Path, pattern: str) -> Path:
    return sorted(art.glob(pattern))[0]


TAMPER = {
    "model_json": lambda a: (a / "model/pain__short.json").write_text(
        (a / "model/pain__short.json").read_text().replace('"kind":"t_learner"', '"kind":"t_learner" ', 1)),
    "booster_txt": lambda a: _append(a / "model/pain__short/active.txt", b"\n"),
    "background_csv": lambda a: _append(a / "background.csv", b"age,continuous,1,0,1,1,,,,,,,,\n"),
    "report_csv": lambda a: _append(a / "report/tasks.csv", b"\n"),
    "report_json": lambda a: _append(a / "report/run.json", b"\n"),
    "card_md": lambda a: _append(a / "card.md", b"\nAll patients benefit.\n"),
    "card_json": lambda a: _append(a / "card.json", b" "),
    "png": lambda a: _append(_first(a, "report/plots/*.png")),
    "missing_file": lambda a: (a / "background.csv").unlink(),
    "unlisted_file": lambda a: (a / "model/extra.json").write_text("{}"),
    "pickle_file": lambda a: (a / "model.pkl").write_bytes(b"\x80\x04K\x01."),
}


@pytest.mark.parametrize("kind", sorted(TAMPER))
def test_tampered_file_is_refused(sm, tmp_path, kind):
    art = _copy(sm, tmp_path)
    TAMPER[kind](art)
    with pytest.raises(ArtifactError):
        Scorer.load(art)


def _set(m: dict, path: str, value) -> None:
    keys = path.split(".")
    d = m
    for k in keys[:-1]:
        d = d[int(k)] if isinstance(d, list) else d[k]
    d[keys[-1]] = value


MANIFEST_EDITS = {
    "synthetic": ("synthetic", False),
    "model_id": ("model_id", "lbp-000000000000"),
    "comparators": ("comparators", ["usual_care"]),
    "seed": ("seed", 2),
    "feature_range": ("feature_schema.0.range", [0, 1000]),
    "baselines": ("baselines", ["baseline_pain"]),
    "fingerprint": ("training_data.fingerprint", "0" * 64),
    "schema_version": ("schema_version", "9.9"),
}


@pytest.mark.parametrize("edit", sorted(MANIFEST_EDITS))
def test_edited_manifest_field_is_refused(sm, tmp_path, edit):
    art = _copy(sm, tmp_path)
    m = _manifest(art)
    path, value = MANIFEST_EDITS[edit]
    _set(m, path, value)
    _rewrite_manifest(art, m)
    with pytest.raises(ArtifactError):
        Scorer.load(art)


def test_consistently_rehashed_model_is_still_refused(sm, tmp_path):
    """Editing a model file and fixing its hash and the manifest checksum still fails: model_id
    is derived from the model files."""
    art = _copy(sm, tmp_path)
    p = art / "model/function__moderate.json"
    p.write_bytes(p.read_bytes().replace(b'"kind"', b' "kind"', 1))
    m = _manifest(art)
    m["files"]["model/function__moderate.json"] = {"sha256": sha256_bytes(p.read_bytes()), "bytes": p.stat().st_size}
    _rewrite_manifest(art, m, redigest=True)
    with pytest.raises(ArtifactError, match="model_id"):
        Scorer.load(art)


def test_foreign_booster_reference_is_refused(sm, tmp_path):
    art = _copy(sm, tmp_path)
    p = art / "model/pain__short.json"
    exp = json.loads(p.read_text("utf-8"))
    exp["boosters"]["active"] = {"$booster": "../../etc/passwd.txt"}
    p.write_text(json.dumps(exp))
    m = _manifest(art)
    m["files"]["model/pain__short.json"] = {"sha256": sha256_bytes(p.read_bytes()), "bytes": p.stat().st_size}
    hashes = {n: v["sha256"] for n, v in m["files"].items() if n.startswith("model/")}
    m["model_id"] = model_id_of(hashes)
    _rewrite_manifest(art, m, redigest=True)
    with pytest.raises(ArtifactError):
        Scorer.load(art)


def test_zip_artifact_loads_and_tampered_zip_is_refused(sm, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(sm.artifact.rglob("*")):
            if p.is_file():
                zf.write(p, "model/" + p.relative_to(sm.artifact).as_posix())
    z = tmp_path / "m.zip"
    z.write_bytes(buf.getvalue())
    s = Scorer.load(z)
    assert s.model_id == _manifest(sm.artifact)["model_id"]
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(z) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("background.csv"):
                data += b"\n"
            dst.writestr(info, data)
    with pytest.raises(ArtifactError):
        Scorer.load(bad)
