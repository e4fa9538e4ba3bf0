"""Artifact container: hashes verified, tampering and pickles refused, archives supported."""
import json
import pickle
import zipfile

import pytest

from predict.artifact import SCHEMA_VERSION, ArtifactError, load_artifact, write_artifact

FILES = {"model/linear.json": json.dumps({"coef": [1.5, -2.0]}), "model/trees.txt": "tree\nversion=v4\n",
         "background.csv": "age,bmi\n40,25\n", "card.md": "# Card\n"}


def _make(tmp_path):
    return write_artifact(tmp_path / "art", {"model_id": "m1", "created": "2026-11-21T00:00:00Z"}, FILES)


def test_round_trip(tmp_path):
    art = load_artifact(_make(tmp_path), required=("model/linear.json",))
    assert art.json("model/linear.json") == {"coef": [1.5, -2.0]}
    assert art.manifest["schema_version"] == SCHEMA_VERSION
    assert set(art.manifest["files"]) == set(FILES)


@pytest.mark.parametrize("name", sorted(FILES))
def test_any_altered_file_is_refused(tmp_path, name):
    folder = _make(tmp_path)
    p = folder / name
    p.write_bytes(p.read_bytes() + b" ")
    with pytest.raises(ArtifactError, match="SHA-256"):
        load_artifact(folder)


def test_missing_listed_file_unlisted_file_and_schema_version(tmp_path):
    folder = _make(tmp_path)
    (folder / "card.md").unlink()
    with pytest.raises(ArtifactError, match="'card.md' listed in the manifest is missing"):
        load_artifact(folder)
    folder = write_artifact(tmp_path / "b", {"model_id": "m", "created": "x"}, FILES)
    (folder / "extra.json").write_text("{}")
    with pytest.raises(ArtifactError, match="not listed"):
        load_artifact(folder)
    folder = write_artifact(tmp_path / "c", {"model_id": "m", "created": "x"}, FILES)
    m = json.loads((folder / "manifest.json").read_text())
    m["schema_version"] = "99"
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="schema version '99'"):
        load_artifact(folder)
    with pytest.raises(ArtifactError, match="required file 'nope.json'"):
        load_artifact(write_artifact(tmp_path / "d", {"model_id": "m", "created": "x"}, FILES), required=("nope.json",))


def test_pickles_are_refused_even_with_a_matching_hash(tmp_path):
    with pytest.raises(ArtifactError, match="pickle"):
        write_artifact(tmp_path / "p", {"model_id": "m", "created": "x"}, {"model.pkl": b"x"})
    evil = pickle.dumps({"a": 1})
    with pytest.raises(ArtifactError, match="pickle"):
        write_artifact(tmp_path / "q", {"model_id": "m", "created": "x"}, {"model.json": evil})
    folder = _make(tmp_path)
    import hashlib

    (folder / "model" / "linear.json").write_bytes(evil)
    m = json.loads((folder / "manifest.json").read_text())
    m["files"]["model/linear.json"]["sha256"] = hashlib.sha256(evil).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="pickles are never loaded"):
        load_artifact(folder)


def test_path_traversal_and_missing_manifest(tmp_path):
    with pytest.raises(ArtifactError, match="plain relative path"):
        write_artifact(tmp_path / "t", {"model_id": "m", "created": "x"}, {"../escape.json": "{}"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="manifest.json is missing"):
        load_artifact(tmp_path / "empty")


def test_zip_archive_round_trip_and_tamper(tmp_path):
    folder = _make(tmp_path)
    z = tmp_path / "art.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, "art/" + p.relative_to(folder).as_posix())
    assert load_artifact(z).json("model/linear.json")["coef"][0] == 1.5
    z2 = tmp_path / "bad.zip"
    with zipfile.ZipFile(z2, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                data = p.read_bytes() + (b"!" if p.name == "trees.txt" else b"")
                zf.writestr(p.relative_to(folder).as_posix(), data)
    with pytest.raises(ArtifactError, match="trees.txt"):
        load_artifact(z2)


def test_identical_inputs_give_byte_identical_files(tmp_path):
    a = _make(tmp_path)
    b = write_artifact(tmp_path / "art2", {"model_id": "m1", "created": "2026-11-21T00:00:00Z"}, FILES)
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()
