"""predict.model_format: the one owner of the artifact format. A format-1.0 artifact loads through
the one migration and scores the same; an unknown version is refused with how to re-export; the
typed records refuse a malformed learner export naming the file and the key; every learner kind
parses; the JSON Schema published in docs/artifact.md is the one the records produce."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from predict import Scorer
from predict import model_format as mf
from predict.artifact import ArtifactError, sha256_bytes

ROOT = Path(__file__).resolve().parents[1]


def _manifest(art: Path) -> dict:
    return json.loads((art / "manifest.json").read_text("utf-8"))


def _write(art: Path, m: dict) -> None:
    m = dict(m)
    m["content_sha256"] = mf.content_digest(m)
    (art / "manifest.json").write_text(json.dumps(m, indent=2) + "\n", "utf-8")


def as_format_1(src: Path, dst: Path) -> Path:
    """The artifact as format 1.0 wrote it: no ``environment``, schema_version 1.0."""
    shutil.copytree(src, dst)
    m = _manifest(dst)
    m.pop("environment")
    m["schema_version"] = "1.0"
    _write(dst, m)
    return dst


def test_format_1_loads_through_the_migration_and_scores_the_same(sm, tmp_path):
    old = Scorer.load(as_format_1(sm.artifact, tmp_path / "v1"))
    new = Scorer.load(sm.artifact)
    assert old.manifest["migrated_from"] == "1.0" and old.manifest["environment"] is None
    assert old.manifest["schema_version"] == "2.0" and "migrated_from" not in new.manifest
    assert old.model_id == new.model_id
    p = new.example_patient()
    assert old.score([p], "usual_care") == new.score([p], "usual_care")


def test_format_1_edited_is_still_refused(sm, tmp_path):
    art = as_format_1(sm.artifact, tmp_path / "v1")
    m = _manifest(art)
    m["seed"] = 99  # digest not recomputed
    (art / "manifest.json").write_text(json.dumps(m), "utf-8")
    with pytest.raises(ArtifactError, match="content_sha256"):
        Scorer.load(art)


def test_unknown_version_is_refused_saying_how_to_re_export(sm, tmp_path):
    art = tmp_path / "v3"
    shutil.copytree(sm.artifact, art)
    m = _manifest(art)
    m["schema_version"] = "3.0"
    _write(art, m)
    with pytest.raises(ArtifactError, match="not supported"):
        Scorer.load(art)
    with pytest.raises(ArtifactError, match="re-export"):
        mf.migrate(m, "x")


def _rehash(art: Path, name: str) -> None:
    m = _manifest(art)
    data = (art / name).read_bytes()
    m["files"][name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    m["model_id"] = mf.model_id_of({n: v["sha256"] for n, v in m["files"].items() if n.startswith("model/")})
    _write(art, m)


def test_malformed_learner_record_is_refused_naming_file_and_key(sm, tmp_path):
    art = tmp_path / "bad"
    shutil.copytree(sm.artifact, art)
    name = "model/function__moderate.json"
    exp = json.loads((art / name).read_text("utf-8"))
    exp["linear"]["theta"] = "not numbers"
    (art / name).write_text(mf.canonical_json(exp) + "\n", "utf-8")
    _rehash(art, name)
    with pytest.raises(ArtifactError, match=r"function__moderate\.json: .*linear\.theta"):
        Scorer.load(art)


def test_unknown_kind_is_refused(sm, tmp_path):
    art = tmp_path / "kind"
    shutil.copytree(sm.artifact, art)
    name = "model/function__moderate.json"
    exp = json.loads((art / name).read_text("utf-8"))
    exp["kind"] = "magic_forest"
    (art / name).write_text(mf.canonical_json(exp) + "\n", "utf-8")
    _rehash(art, name)
    with pytest.raises(ArtifactError, match="unknown learner kind"):
        Scorer.load(art)


def test_every_learner_kind_parses():
    from tests.test_scorer_program import _fit

    _, exps = _fit("continuous")
    kinds = set()
    for e in exps:
        rec = mf.parse_learner(e, "fit")
        kinds.add(rec.kind)
        if rec.kind == "stacked":
            kinds |= {m.kind for m in rec.members.exports}
    assert kinds == set(mf.KNOWN_KINDS)


def test_docs_publish_the_schema_the_records_produce():
    text = (ROOT / "docs" / "artifact.md").read_text("utf-8")
    m = re.search(r"<!-- json-schema:begin -->\n```json\n(.*?)\n```\n<!-- json-schema:end -->", text, re.S)
    assert m, "docs/artifact.md lacks the JSON Schema block"
    assert json.loads(m.group(1)) == mf.json_schema(), "regenerate with: python -m predict.model_format --schema"
