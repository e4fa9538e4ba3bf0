"""Model artifacts: a folder (or one .zip of it) with ``manifest.json`` and the files it lists.

Safe by construction: files are JSON, CSV, Markdown or LightGBM's native text; the loader never
unpickles anything, refuses pickle/joblib files outright, and verifies the SHA-256 of every
file listed in the manifest before any of it is used. A file that is missing, altered, unlisted
or of a forbidden kind, or a manifest of another schema version, is refused with a clear error.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from predict.errors import LbpError

# the artifact's format version (manifest "schema_version"); what each version holds and the one
# migration (1.0 -> 2.0) are predict.model_format's
SCHEMA_VERSION = "2.0"
READABLE_SCHEMA_VERSIONS = ("1.0", "2.0")
MANIFEST = "manifest.json"
ALLOWED_SUFFIXES = (".json", ".csv", ".txt", ".md", ".html", ".parquet", ".png", ".svg")
FORBIDDEN_SUFFIXES = (".pkl", ".pickle", ".joblib", ".npy", ".npz", ".pt", ".pth", ".sav", ".dill", ".cloudpickle")
REQUIRED_MANIFEST_KEYS = ("schema_version", "model_id", "created", "files")


class ArtifactError(LbpError):
    """The artifact cannot be trusted or read."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_pickle(data: bytes) -> bool:
    # Pickle protocol 2+ starts with PROTO (0x80) and the protocol number.
    return len(data) >= 2 and data[0] == 0x80 and data[1] in (2, 3, 4, 5)


def _check_name(name: str) -> None:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or name.startswith("~") or "\\" in name:
        raise ArtifactError(f"artifact file name {name!r} is not a plain relative path")
    if p.suffix.lower() in FORBIDDEN_SUFFIXES:
        raise ArtifactError(f"artifact file {name!r}: {p.suffix} files (pickle-like) are never loaded")
    if p.suffix.lower() not in ALLOWED_SUFFIXES:
        raise ArtifactError(f"artifact file {name!r}: kind {p.suffix or '(none)'} is not allowed")


def write_artifact(folder: str | Path, manifest: dict[str, Any], files: dict[str, bytes | str]) -> Path:
    """Write ``files`` and a manifest listing each with its SHA-256 and size.

    ``manifest`` holds everything but ``files`` and ``schema_version``, which are filled in here.
    Files are written byte-for-byte as given (so identical inputs give identical files).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    listing = {}
    for name in sorted(files):
        _check_name(name)
        data = files[name].encode("utf-8") if isinstance(files[name], str) else files[name]
        if _is_pickle(data):
            raise ArtifactError(f"artifact file {name!r} looks like a pickle; refusing to write it")
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        listing[name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    full = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in manifest.items() if k not in ("files", "schema_version")},
            "files": listing}
    (folder / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=False) + "\n", "utf-8")
    return folder


@dataclass
class Artifact:
    """A verified artifact: its manifest and the bytes of every listed file."""

    source: str
    manifest: dict
    files: dict[str, bytes] = field(repr=False)

    def text(self, name: str) -> str:
        return self.file(name).decode("utf-8")

    def json(self, name: str) -> Any:
        return json.loads(self.text(name))

    def file(self, name: str) -> bytes:
        if name not in self.files:
            raise ArtifactError(f"{self.source}: required file {name!r} is not in the artifact")
        return self.files[name]


def _read_source(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        out = {}
        for p in sorted(path.rglob("*")):
            if p.is_symlink():
                raise ArtifactError(f"{path}: {p.relative_to(path)} is a symbolic link; artifacts hold plain files")
            if p.is_file():
                out[p.relative_to(path).as_posix()] = p.read_bytes()
        return out
    if path.is_file() and path.suffix == ".zip":
        out = {}
        with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
            prefix = ""
            if names and all("/" in n for n in names):
                top = {n.split("/", 1)[0] for n in names}
                if len(top) == 1:
                    prefix = top.pop() + "/"
            for n in names:
                rel = n[len(prefix):]
                _check_name(rel) if rel != MANIFEST else None
                out[rel] = zf.read(n)
        return out
    raise ArtifactError(f"model artifact {path} not found (a folder or a .zip of one)")


def load_artifact(path: str | Path, *, supported: tuple[str, ...] = READABLE_SCHEMA_VERSIONS,
                  required: tuple[str, ...] = ()) -> Artifact:
    """Read and verify an artifact. Raises :class:`ArtifactError` on any mismatch."""
    path = Path(path)
    files = _read_source(path)
    if MANIFEST not in files:
        raise ArtifactError(f"{path}: {MANIFEST} is missing; not a model artifact")
    try:
        manifest = json.loads(files.pop(MANIFEST).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: {MANIFEST} is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: {MANIFEST} must be a JSON object")
    missing = [k for k in REQUIRED_MANIFEST_KEYS if k not in manifest]
    if missing:
        raise ArtifactError(f"{path}: manifest lacks {', '.join(missing)}")
    if manifest["schema_version"] not in supported:
        raise ArtifactError(f"{path}: artifact schema version {manifest['schema_version']!r} is not supported "
                            f"(this runtime reads {', '.join(supported)})")
    listing = manifest["files"]
    for name in files:
        if name not in listing:
            raise ArtifactError(f"{path}: file {name!r} is not listed in the manifest (refusing unlisted files)")
    for name, meta in listing.items():
        _check_name(name)
        if name not in files:
            raise ArtifactError(f"{path}: file {name!r} listed in the manifest is missing")
        data = files[name]
        if _is_pickle(data):
            raise ArtifactError(f"{path}: file {name!r} is a pickle; pickles are never loaded")
        digest = sha256_bytes(data)
        if digest != meta.get("sha256"):
            raise ArtifactError(f"{path}: file {name!r} does not match its SHA-256 in the manifest (altered or corrupt)")
    for name in required:
        if name not in listing:
            raise ArtifactError(f"{path}: required file {name!r} is not in the artifact")
    return Artifact(str(path), manifest, files)
