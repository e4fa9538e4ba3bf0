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

Records accept unknown fields (kept in ``model_extra``), so a newer writer's additions do not
break an older reader; fields the runtime computes with are typed and checked.
"""
from __future__ import annotations

import hashlib
import io
import json
import platform
import sys
from dataclasses import dataclass
from typing import Annotated, Any, Iterable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from predict.artifact import READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, Artifact, ArtifactError, sha256_bytes

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


# ----------------------------------------------------------------------------- typed records
class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class BoosterRef(_Record):
    """A LightGBM booster stored as its own file (LightGBM native text)."""

    path: str = Field(alias=BOOSTER_REF, description="model/<task>/<name>.txt")


Booster = Union[str, BoosterRef]  # the native text itself (run folders) or a reference (artifacts)


class Features(_Record):
    names: list[str]
    types: list[Literal["continuous", "binary", "categorical"]]
    categories: dict[str, list[str]] = {}


class Imputer(_Record):
    """Gaussian conditional imputation: pooled mean and total covariance of the features, the
    stored standard-normal draws ``z`` (M x p), bounds and which features are binary."""

    mean: list[float]
    cov: list[list[float]]
    z: list[list[float]]
    lower: list[float]
    upper: list[float]
    binary: list[bool]


class BasisColumn(_Record):
    feature: int
    kind: Literal["linear", "rcs", "onehot"]
    loc: float
    scale: float
    knots: list[float] | None = None
    term: int | None = None
    level: float | None = None


class Block(_Record):
    """A linear block: standardised basis columns (``basis``) or a one-column index (``index``:
    the basis weighted by ``beta``), with the centre the modifier terms are measured from."""

    type: Literal["basis", "index"]
    basis: list[BasisColumn]
    center: list[float] | None = None
    beta: list[float] | None = None


class LinearPart(_Record):
    """eta_c = intercept + offset_c + P beta; eta_active = intercept + P beta + (M - center) gamma;
    ``theta`` = [intercept, offsets..., beta..., gamma...]."""

    link: Literal["identity", "logit"]
    prog: Block
    modifier: Block | None = None
    theta: list[float]
    n_prog: int
    n_mod: int


class Interval(_Record):
    """Estimation uncertainty: ``delta`` (bootstrap covariance of theta), ``varmodel`` (a log-linear
    model of the bootstrap variance per comparator; ``arm_varmodel`` per arm) or ``stack``
    (members' SEs combined); ``tau``: between-trial SD per comparator."""

    method: Literal["delta", "varmodel", "stack"]
    tau: dict[str, float]
    theta_cov: list[list[float]] | None = None
    varmodel: dict[str, list[float]] | None = None
    arm_varmodel: dict[str, list[float]] | None = None
    design: dict[str, list[float]] | None = None
    n_boot: int | None = None


class _LearnerBase(_Record):
    format: Literal["lbp-benefit-learner"]
    version: Literal[1]
    outcome_type: Literal["continuous", "binary"]
    active: str
    comparators: list[str]
    unavailable: list[str] = []
    features: Features
    imputer: Imputer
    interval: Interval
    meta: dict = {}


class LinearLearner(_LearnerBase):
    kind: Literal["constant", "effect_model", "risk_model"]
    linear: LinearPart


class TLearner(_LearnerBase):
    """Linear base plus one booster per arm (raw scores added to the linear predictor)."""

    kind: Literal["t_learner"]
    linear: LinearPart
    boosters: dict[Literal["active", "control"], Booster]
    tree_missing: Literal["native", "impute"] = "native"


class NuisanceTLearner(TLearner):
    """The T-learner embedded in an X/DR learner (its expected outcome under the active class):
    no interval of its own."""

    interval: Interval | None = None


class XLearnerCombine(_Record):
    e: float
    class_benefit: dict[str, float]


class XLearner(_LearnerBase):
    kind: Literal["x_learner"]
    nuisance: NuisanceTLearner
    boosters: dict[Literal["tau0", "tau1"], Booster]
    combine: XLearnerCombine
    tree_missing: Literal["native", "impute"] = "native"


class DRCombine(_Record):
    class_benefit: dict[str, float]


class DRLearner(_LearnerBase):
    kind: Literal["dr_learner"]
    nuisance: NuisanceTLearner
    boosters: dict[Literal["tau"], Booster]
    combine: DRCombine
    tree_missing: Literal["native", "impute"] = "native"


class StackMembers(_Record):
    weights: list[float]
    names: list[str]
    exports: list[Annotated[Union[LinearLearner, TLearner, XLearner, DRLearner], Field(discriminator="kind")]]


class StackedLearner(_LearnerBase):
    kind: Literal["stacked"]
    members: StackMembers


LearnerExport = Annotated[Union[LinearLearner, TLearner, XLearner, DRLearner, StackedLearner],
                          Field(discriminator="kind")]


class _LearnerDoc(BaseModel):
    export: LearnerExport


class TaskEntry(_Record):
    task: str
    outcome: str
    follow_up: str
    outcome_type: Literal["continuous", "binary"]
    learner: str | None = None
    kind: str | None = None
    selection: str = ""
    model: str
    boosters: list[str] = []
    comparators: list[str]
    unavailable: list[str] = []
    network: str | None = None


class NetworkComparator(_Record):
    node: str
    scored_by: Literal["learner", "ipd_network"]
    evidence: str | None = None
    tasks: dict[str, dict]


class FileEntry(_Record):
    sha256: str
    bytes: int


class ModelManifest(_Record):
    """``manifest.json`` of a model artifact (format 2.0)."""

    schema_version: Literal["2.0"]
    format: Literal["lbp-benefit-model"]
    model_id: str
    created: str | None
    package_version: str
    git_commit: str | None = None
    seed: int | None
    synthetic: bool
    study: str | None = None
    active: str = "exercise"
    environment: dict | None = Field(description="Python, platform and package versions at export; None: "
                                                 "not recorded (migrated from format 1.0)")
    training_environment: dict | None = Field(default=None, description="What the model was trained with: Python, "
                                              "platform, package versions, the BLAS kernels and whether they were the "
                                              "pinned ones (training/determinism.py); None: not recorded")
    training_data: dict
    feature_schema: list[dict]
    baselines: list[str]
    baseline_range: list[float] = [0.0, 100.0]
    outcomes: list[str]
    follow_ups: list[str]
    comparators: list[str]
    sparse_comparators: list[str]
    tasks: list[TaskEntry] = Field(min_length=1)
    scales: dict | None = None
    smallest_worthwhile: dict | None = None
    explanation: dict | None = None
    background: dict | None = None
    card: dict[str, str]
    network: dict | None = None
    network_comparators: list[NetworkComparator] | None = None
    content_sha256: str
    files: dict[str, FileEntry]


def json_schema() -> dict:
    """The JSON Schema of ``manifest.json`` and of a learner export (``model/<task>.json``)."""
    return {"manifest.json": ModelManifest.model_json_schema(by_alias=True),
            "model/<task>.json": _LearnerDoc.model_json_schema(by_alias=True)["$defs"] | {
                "LearnerExport": {"oneOf": [{"$ref": f"#/$defs/{n}"} for n in
                                            ("LinearLearner", "TLearner", "XLearner", "DRLearner", "StackedLearner")],
                                  "discriminator": "kind"}}}


def _first_error(exc: ValidationError) -> str:
    e = exc.errors()[0]
    where = ".".join(str(x) for x in e["loc"]) or "(top)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {e['msg']}{more}"


def parse_learner(exp: Any, where: str) -> BaseModel:
    """The typed record of one learner export; :class:`ArtifactError` naming ``where`` and the key."""
    if not isinstance(exp, dict):
        raise ArtifactError(f"{where}: a learner export must be a JSON object")
    if exp.get("format") != LEARNER_FORMAT or exp.get("version") != LEARNER_VERSION:
        raise ArtifactError(f"{where}: not an {LEARNER_FORMAT} v{LEARNER_VERSION} export")
    if not _kinds_known(exp):
        raise ArtifactError(f"{where}: holds an unknown learner kind (known: {', '.join(KNOWN_KINDS)})")
    try:
        return _LearnerDoc.model_validate({"export": exp}).export
    except ValidationError as exc:
        raise ArtifactError(f"{where}: {_first_error(exc)}") from None


def _kinds_known(exp: dict) -> bool:
    if exp.get("kind") not in KNOWN_KINDS:
        return False
    subs = [exp["nuisance"]] if isinstance(exp.get("nuisance"), dict) else []
    subs += (exp.get("members") or {}).get("exports") or []
    return all(isinstance(s, dict) and _kinds_known(s) for s in subs)


def parse_manifest(m: dict, where: str) -> ModelManifest:
    try:
        return ModelManifest.model_validate(m)
    except ValidationError as exc:
        raise ArtifactError(f"{where}: manifest {_first_error(exc)}") from None


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


# ----------------------------------------------------------------------------- verify
@dataclass(frozen=True)
class VerifiedTask:
    entry: TaskEntry
    record: BaseModel  # the typed learner export
    export: dict  # the same export as a dict, boosters loaded (lightgbm.Booster): what the runtime computes with
    network: dict | None


@dataclass(frozen=True)
class VerifiedModel:
    artifact: Artifact
    manifest: dict  # as written (a migrated 1.0 manifest: with environment None)
    record: ModelManifest
    format_version: str  # as written ("1.0" for a migrated artifact)
    tasks: list[VerifiedTask]
    schema: Any  # predict.schema.FeatureSchema
    background: Any  # pandas.DataFrame | None
    card: dict


def resolve_boosters(exp: dict, art: Artifact, task: str, used: set) -> dict:
    """Replace each ``{"$booster": path}`` in ``exp`` (and its nuisance and stack members) by a
    LightGBM Booster loaded from the verified bytes; the paths go into ``used``."""
    import lightgbm as lgb

    b = exp.get("boosters")
    if isinstance(b, dict):
        for name, ref in list(b.items()):
            if not (isinstance(ref, dict) and set(ref) == {BOOSTER_REF} and isinstance(ref[BOOSTER_REF], str)):
                raise ArtifactError(f"{art.source}: model/{task}.json booster {name!r} is not a "
                                    f'{{"{BOOSTER_REF}": "model/{task}/<name>.txt"}} reference')
            path = ref[BOOSTER_REF]
            if not (path.startswith(f"model/{task}/") and path.endswith(".txt")):
                raise ArtifactError(f"{art.source}: model/{task}.json points to {path!r}, outside model/{task}/")
            try:
                text = art.file(path).decode("utf-8")
                b[name] = lgb.Booster(model_str=text)
            except ArtifactError:
                raise
            except Exception as exc:  # noqa: BLE001 - LightGBM raises its own error types
                raise ArtifactError(f"{art.source}: {path} is not a LightGBM model ({type(exc).__name__})") from exc
            used.add(path)
    if isinstance(exp.get("nuisance"), dict):
        resolve_boosters(exp["nuisance"], art, task, used)
    for sub in (exp.get("members") or {}).get("exports") or []:
        resolve_boosters(sub, art, task, used)
    return exp


def _check_network_comparators(m: dict, nets: dict, src: str) -> None:
    """The manifest's ``network_comparators`` agree with the network files (optional field)."""
    from predict.network import MODEL_NAME

    nc = m.get("network_comparators")
    if nc is None:
        if nets:
            raise ArtifactError(f"{src}: network files without the manifest's network_comparators")
        return
    nodes = [c["node"] for c in nc]
    have = {n for net in nets.values() for n in net["nodes"]}
    if len(set(nodes)) != len(nodes) or set(nodes) != have:
        raise ArtifactError(f"{src}: manifest network_comparators {nodes} differ from the network files' {sorted(have)}")
    for c in nc:
        want = "learner" if c["node"] in m["comparators"] else MODEL_NAME
        per = {t: net["evidence"][c["node"]] for t, net in nets.items() if c["node"] in net["nodes"]}
        if c.get("scored_by") != want or c.get("tasks") != per:
            raise ArtifactError(f"{src}: manifest network_comparators entry for {c['node']!r} differs from the network files")


def _json_file(art: Artifact, name: str) -> Any:
    try:
        return json.loads(art.file(name).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{art.source}: {name} is not valid JSON ({exc})") from exc


def verify(art: Artifact) -> VerifiedModel:
    """Every check of a model artifact beyond the container's file hashes (which
    :func:`predict.artifact.load_artifact` made): format and version (1.0 migrated), the content
    digest, the model id against the model files, the typed records of the manifest and of every
    learner export, tasks against their model, booster and network files (no orphan files),
    comparators, outcomes and follow-ups against the tasks, the card and the background table.
    Raises :class:`ArtifactError` naming the artifact and what is wrong."""
    from predict import network as netrt
    from predict.errors import LbpError
    from predict.schema import FeatureSchema

    m0 = art.manifest
    src = art.source
    miss = [k for k in REQUIRED_MANIFEST if k not in m0]
    if miss:
        raise ArtifactError(f"{src}: not an lbp-benefit model artifact (manifest lacks {', '.join(miss)})")
    if m0["format"] != MODEL_FORMAT:
        raise ArtifactError(f"{src}: manifest format {m0['format']!r} is not {MODEL_FORMAT!r}")
    written = m0.get("schema_version")
    m = migrate(m0, src)
    if content_digest(m0) != m0["content_sha256"]:  # in the form it was written
        raise ArtifactError(f"{src}: the manifest's fields do not match its content_sha256 (manifest edited)")
    if m["card"] != CARD:
        raise ArtifactError(f"{src}: manifest card entry must name card.md and card.json")
    listing = m["files"]
    model_files = sorted(n for n in listing if n.startswith("model/"))
    recomputed = model_id_of(listing[n]["sha256"] for n in model_files)
    if recomputed != m["model_id"]:
        raise ArtifactError(f"{src}: model_id {m['model_id']!r} does not match the model files ({recomputed})")
    if not isinstance(m["tasks"], list) or not m["tasks"]:
        raise ArtifactError(f"{src}: the manifest lists no tasks")
    rec = parse_manifest(m, src)
    try:
        schema = FeatureSchema.from_list(m["feature_schema"])
    except (LbpError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{src}: manifest feature_schema is invalid ({exc})") from exc
    baselines = list(m["baselines"])
    expected_features = schema.names + baselines
    tasks: list[VerifiedTask] = []
    used: set = set()
    nets: dict = {}
    for t in rec.tasks:
        name = t.task
        fname = f"model/{name}.json"
        if t.model != fname or fname not in listing:
            raise ArtifactError(f"{src}: task {name!r}: model file {fname} is not in the artifact")
        exp = _json_file(art, fname)
        record = parse_learner(exp, f"{src}: {fname}")
        if exp["features"]["names"] != expected_features:
            raise ArtifactError(f"{src}: {fname} features differ from the manifest's feature schema + baselines")
        if exp["outcome_type"] != t.outcome_type or list(exp["comparators"]) != list(t.comparators):
            raise ArtifactError(f"{src}: {fname} does not match its task entry in the manifest")
        mine: set = set()
        resolve_boosters(exp, art, name, mine)
        if sorted(mine) != sorted(t.boosters):
            raise ArtifactError(f"{src}: task {name!r}: booster files differ from the manifest's task entry")
        used |= mine
        net = None
        if t.network is not None:
            nname = f"{NETWORK_DIR}/{name}.json"
            if t.network != nname or nname not in listing or t.outcome_type != "continuous":
                raise ArtifactError(f"{src}: task {name!r}: network file must be {nname} (continuous tasks only)")
            net = _json_file(art, nname)
            why = netrt.check(net, list(exp["features"]["names"]), list(exp["features"]["types"]), rec.active)
            if why or net.get("outcome") != t.outcome or net.get("follow_up") != t.follow_up:
                raise ArtifactError(f"{src}: {nname}: {why or 'outcome/follow-up differ from its task'}")
            used.add(nname)
            nets[name] = net
        tasks.append(VerifiedTask(t, record, exp, net))
    orphans = sorted(set(model_files) - used - {f"model/{t.entry.task}.json" for t in tasks})
    if orphans:
        raise ArtifactError(f"{src}: model files not used by any task: {', '.join(orphans)}")
    have = {c for t in tasks for c in t.export["comparators"]}
    if set(m["comparators"]) != have:
        raise ArtifactError(f"{src}: manifest comparators {list(m['comparators'])} differ from the models' {sorted(have)}")
    _check_network_comparators(m, nets, src)
    if sorted({t.entry.outcome for t in tasks}) != sorted(m["outcomes"]) or \
            sorted({t.entry.follow_up for t in tasks}) != sorted(m["follow_ups"]):
        raise ArtifactError(f"{src}: manifest outcomes/follow_ups differ from its tasks")
    if "report/run.json" in listing:
        rj = art.json("report/run.json")
        if "synthetic" in rj and bool(rj["synthetic"]) != bool(m["synthetic"]):
            raise ArtifactError(f"{src}: manifest and report/run.json disagree on 'synthetic'")
    background = None
    bg_name = (m.get("background") or {}).get("file")
    if bg_name:
        import pandas as pd

        try:
            background = pd.read_csv(io.BytesIO(art.file(bg_name)), keep_default_na=False, dtype=str)
        except ArtifactError:
            raise
        except Exception as exc:  # noqa: BLE001 - any parse failure is a bad artifact
            raise ArtifactError(f"{src}: {bg_name} is not a readable CSV ({exc})") from exc
    try:
        card = art.json("card.json")
        art.text("card.md")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{src}: the model card is not readable ({exc})") from exc
    if not isinstance(card, dict):
        raise ArtifactError(f"{src}: card.json must be a JSON object")
    return VerifiedModel(art, m, rec, str(written), tasks, schema, background, card)


def main(argv: list[str] | None = None) -> None:
    """``python -m predict.model_format --schema``: print the JSON Schema for docs/artifact.md."""
    if (sys.argv[1:] if argv is None else argv) != ["--schema"]:
        sys.exit("usage: python -m predict.model_format --schema")
    print(json.dumps(json_schema(), indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
