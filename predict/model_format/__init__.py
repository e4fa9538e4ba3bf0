"""The model artifact format: its one owner (writer and reader both call this module).

A model artifact is a folder (or a .zip of it) holding ``manifest.json`` and the files it lists
(the container, its file hashes and its allow-list of file kinds: :mod:`predict.artifact`). This
module defines what a *model* artifact holds on top of the container:

- the constants (format name, format version, the booster reference ``{"$booster": path}``),
- the canonical JSON, the manifest's content digest and the model id,
- the typed, versioned records of the manifest (:class:`ModelManifest`), its tasks
  (:class:`TaskEntry`) and each learner kind's export (:data:`LearnerExport`: a union on ``kind``),
  from which the JSON Schema in docs/artifact.md is produced (:func:`json_schema`),
- :func:`verify`: every check a reader makes before trusting a model, returning a
  :class:`VerifiedModel` (the manifest, the tasks' exports with LightGBM boosters loaded from the
  verified bytes, the network files, the feature schema and the background table).

Format versions (``manifest["schema_version"]``):

- ``"2.0"`` (this version): the manifest records the ``environment`` the model was exported in
  (Python, platform, the exact versions of the packages that compute predictions).
- ``"1.0"``: the same layout without ``environment``. Read through :func:`migrate` (its content
  digest is checked as written, then ``environment`` is set to None: "not recorded"). Anything
  else is refused with a message saying how to re-export.

The package: constants, canonical forms and the migration here; the typed records in
:mod:`predict.model_format.records`; :func:`verify` in :mod:`predict.model_format.verify`.

Records accept unknown fields (kept in ``model_extra``), so a newer writer's additions do not
break an older reader; fields the runtime computes with are typed and checked.
"""
from __future__ import annotations

import hashlib
import json
import platform
import sys
from typing import Any, Iterable

from predict.artifact import READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, ArtifactError, sha256_bytes

MODEL_FORMAT = "lbp-benefit-model"
FORMAT_VERSION = SCHEMA_VERSION  # "2.0" (manifest "schema_version")
READABLE_VERSIONS = READABLE_SCHEMA_VERSIONS  # "1.0" through migrate()
LEARNER_FORMAT = "lbp-benefit-learner"
LEARNER_VERSION = 1
BOOSTER_REF = "$booster"
NETWORK_DIR = "model/network"
CARD = {"markdown": "card.md", "json": "card.json"}
LINEAR_KINDS = ("constant", "effect_model", "risk_model")
KNOWN_KINDS = LINEAR_KINDS + ("t_learner", "x_learner", "dr_learner", "stacked")
ENVIRONMENT_PACKAGES = ("numpy", "pandas", "lightgbm", "numba", "scipy", "scikit-learn", "pydantic")
REEXPORT_HINT = ("re-export it with this version (`lbp-benefit train` writes a new artifact; for an existing run "
                 "folder call training.export_model.export_artifact(run, out, harmonised))")


# ----------------------------------------------------------------------------- canonical forms
def canonical_json(obj: Any) -> str:
    """The one JSON spelling of ``obj`` used for model files and digests (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def content_digest(manifest: dict) -> str:
    """SHA-256 of the canonical JSON of the manifest without ``created`` and ``content_sha256``:
    detects edited manifest fields (a checksum, not a signature)."""
    body = {k: v for k, v in manifest.items() if k not in ("created", "content_sha256")}
    return sha256_bytes(canonical_json(body).encode("utf-8"))


def model_id_of(file_hashes: dict[str, str] | Iterable[str]) -> str:
    """``lbp-`` + the first 12 hex of SHA-256 over the sorted model-file hashes (joined by newlines)."""
    hashes = file_hashes.values() if isinstance(file_hashes, dict) else file_hashes
    return "lbp-" + hashlib.sha256("\n".join(sorted(hashes)).encode("ascii")).hexdigest()[:12]


def environment() -> dict:
    """The environment a model is exported in: Python, platform and the exact versions of the
    packages that compute its predictions (``None`` for one that is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    pk = {}
    for name in ENVIRONMENT_PACKAGES:
        try:
            pk[name] = version(name)
        except PackageNotFoundError:
            pk[name] = None
    return {"python": platform.python_version(), "implementation": sys.implementation.name,
            "platform": platform.platform(terse=True), "machine": platform.machine(), "packages": pk}


# ----------------------------------------------------------------------------- versions
REQUIRED_MANIFEST = ("format", "model_id", "created", "package_version", "seed", "synthetic", "training_data",
                     "feature_schema", "baselines", "outcomes", "comparators", "sparse_comparators", "follow_ups",
                     "tasks", "card", "content_sha256")


def migrate(manifest: dict, where: str) -> dict:
    """The manifest in this format version: a 2.0 manifest as is; a 1.0 manifest with
    ``environment`` = None ("not recorded") and ``migrated_from`` = "1.0" (its content digest is
    checked by :func:`verify` in the form it was written); any other version refused, saying how to
    re-export."""
    v = manifest.get("schema_version")
    if v == FORMAT_VERSION:
        return manifest
    if v == "1.0":
        return {**manifest, "schema_version": FORMAT_VERSION, "environment": None, "migrated_from": "1.0"}
    raise ArtifactError(f"{where}: model format {v!r} is not readable by this runtime (it reads "
                        f"{', '.join(READABLE_VERSIONS)}); {REEXPORT_HINT}")



from predict.model_format.records import (  # noqa: E402 - the records use the constants above
    BasisColumn, Block, BoosterRef, DRLearner, Features, Imputer, Interval, LearnerExport, LinearLearner, LinearPart,
    ModelManifest, StackedLearner, TaskEntry, TLearner, XLearner, json_schema, parse_learner, parse_manifest)
from predict.model_format.verify import VerifiedModel, VerifiedTask, resolve_boosters, verify  # noqa: E402

__all__ = ["MODEL_FORMAT", "FORMAT_VERSION", "READABLE_VERSIONS", "LEARNER_FORMAT", "LEARNER_VERSION", "BOOSTER_REF",
           "NETWORK_DIR", "KNOWN_KINDS", "LINEAR_KINDS", "canonical_json", "content_digest", "model_id_of",
           "environment", "migrate", "verify", "resolve_boosters", "VerifiedModel", "VerifiedTask", "json_schema",
           "parse_learner", "parse_manifest", "ModelManifest", "TaskEntry", "LearnerExport", "LinearLearner",
           "TLearner", "XLearner", "DRLearner", "StackedLearner", "Features", "Imputer", "LinearPart", "Block",
           "BasisColumn", "Interval", "BoosterRef"]
