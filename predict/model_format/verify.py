"""verify(): every check a reader makes on a model artifact before trusting it."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from predict.artifact import Artifact, ArtifactError
from predict.model_format import BOOSTER_REF, CARD, MODEL_FORMAT, NETWORK_DIR, REQUIRED_MANIFEST, \
    content_digest, migrate, model_id_of
from predict.model_format.records import ModelManifest, TaskEntry, parse_learner, parse_manifest

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


