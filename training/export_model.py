"""A training run folder -> a model artifact that ``predict.Scorer.load`` can serve.

Layout (docs/artifact.md)::

    manifest.json            identity, provenance, data summary, feature schema, tasks, file hashes
    model/<task>.json        the selected learner's export dict; each LightGBM booster replaced by
                             {"$booster": "model/<task>/<name>.txt"}
    model/<task>/<name>.txt  LightGBM native text (booster.model_to_string())
    background.csv           aggregated per-feature distribution (quantiles, level counts): used for
                             range / little-data warnings; NO participant-level rows
    report/...               the run's aggregate summaries the card draws on
    card.md, card.json, card/*.png   the model card (``training.cards.build_card``)

Everything but ``manifest.json``'s ``created`` is a deterministic function of the data, config,
seed and package version: same inputs -> byte-identical files. No participant-level data is
written: the harmonised analysis table enters only as its SHA-256 fingerprint, per-trial counts
and aggregated quantiles.
"""
from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import io
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from predict import __version__
from predict import model_format as mf
from predict.artifact import load_artifact, sha256_bytes, write_artifact
from predict.arm_intervals import available as arm_intervals_available
from predict.errors import LbpError
from predict.expected_basis import EXPECTED
from predict import required_inputs
from predict.recovery_structure import KEY as STRUCTURAL_KEY
from training.recovery_structure import MISSING_STRUCTURAL

BOOSTER_REF = mf.BOOSTER_REF
NETWORK_DIR = mf.NETWORK_DIR  # per continuous task: the one-stage IPD network model (training.network.benefit_model)
BACKGROUND = "background.csv"
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
MIN_N_QUANTILES = 50  # fewer observed values: no quantiles at all
MIN_N_OUTER = 300  # p01/p99 only with >= 3 participants beyond each
MISSING_LINEAR = ("imputed for the linear parts: conditional mean given the patient's observed inputs "
                  "(multivariate normal fitted on the pooled training data)")
MISSING_EXPECTED = (", and for curved (spline) and two-modifier product terms their expectation over that "
                    "conditional distribution (exact quadrature, no sampling)")
MISSING_INTERVAL = "; the benefit interval is widened by the spread over conditional draws of the missing value"
MISSING_TREES = "; tree models route it down their learned missing-value branch"
CONTINUOUS_SCALE = "0-100 points, higher = worse"
BINARY_SCALE = "probability of the good result (outcome_definitions.<outcome>.good_result)"
# report/ files copied from the run folder (all aggregate; no participant-level rows)
_RUN_DROP = ("timings", "seconds", "machine", "config_source", "training_environment")  # time-, machine- or path-dependent


# ----------------------------------------------------------------------------- helpers
IPD_NETWORK = "one-stage IPD network model (training.network.ipd.fit_ipd_network; docs/network.md)"

def data_fingerprint(analysis: pd.DataFrame) -> str:
    """SHA-256 of the harmonised analysis table written canonically: columns in name order, every
    value as text (floats with ``%.10g``, missing as empty), rows sorted as text, ``\\n`` line ends."""
    cols = sorted(map(str, analysis.columns))
    df = analysis.copy()
    df.columns = [str(c) for c in df.columns]
    df = df[cols]
    buf = io.StringIO()
    df.to_csv(buf, index=False, header=False, float_format="%.10g", na_rep="", lineterminator="\n")
    lines = sorted(buf.getvalue().splitlines())
    text = ",".join(cols) + "\n" + "\n".join(lines) + "\n"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def git_commit() -> str | None:
    """The package checkout's commit, or None (not a git checkout, or git unavailable)."""
    here = Path(__file__).resolve().parent
    try:
        r = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    out = r.stdout.strip()
    return out if r.returncode == 0 and len(out) == 40 else None


def _fmt(v: float) -> str:
    return "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{float(v):.6g}"


def externalise_boosters(exp: dict, task: str) -> tuple[dict, dict[str, str]]:
    """A deep copy of ``exp`` with every LightGBM model string replaced by
    ``{"$booster": "model/<task>/<name>.txt"}`` and the texts keyed by file name. Nested exports
    (stack members, the X/DR nuisance T-learner) get path-like names (``members-0-active``)."""
    out = copy.deepcopy(exp)
    texts: dict[str, str] = {}

    def walk(e: dict, prefix: str) -> None:
        if not isinstance(e, dict):
            return
        b = e.get("boosters")
        if isinstance(b, dict):
            for name in sorted(b):
                s = b[name]
                if not isinstance(s, str):
                    raise LbpError(f"{task}: booster {name!r} is not a LightGBM model string")
                fname = f"model/{task}/{prefix}{name}.txt"
                if fname in texts:
                    raise LbpError(f"{task}: two boosters map to {fname}")
                texts[fname] = s
                b[name] = {BOOSTER_REF: fname}
        if isinstance(e.get("nuisance"), dict):
            walk(e["nuisance"], prefix + "nuisance-")
        mem = e.get("members")
        if isinstance(mem, dict):
            for i, sub in enumerate(mem.get("exports") or []):
                walk(sub, f"{prefix}members-{i}-")

    walk(out, "")
    return out, texts


def outcome_definitions(cfg, outcomes: list[str]) -> dict[str, dict]:
    """Per outcome of the model: label, kind, good_result (binary outcomes are harmonised to 1 = the
    good result: the event when its direction is higher_is_better, else its absence), the
    smallest worthwhile effect and, for the derived recovery outcome, the baselines its definition
    combines (``required_baselines``: read by predict/required_inputs.py), from the study config
    (read by predict/outcome_text.py)."""
    out = {}
    for o in outcomes:
        spec = cfg.outcome(o)
        kind = cfg.outcome_type(o)
        name = o.replace("_", " ")
        swe = getattr(spec, "smallest_worthwhile", None)
        d = {"label": getattr(spec, "label", "") or name, "kind": kind, "smallest_worthwhile": dict(swe) if swe else None}
        if kind == "binary":
            good = getattr(spec, "derived", False) or getattr(spec, "direction", "") == "higher_is_better"
            d["good_result"] = name if good else f"no {name}"
        if getattr(spec, "derived", False):  # which baselines scoring needs follows the definition
            d[required_inputs.DEFINITION_KEY] = required_inputs.definition_rule(cfg.recovery_sources, cfg.recovery_combine)
        out[o] = d
    return out


def _kinds(exp: dict) -> set[str]:
    ks = {exp.get("kind")}
    if isinstance(exp.get("nuisance"), dict):
        ks |= _kinds(exp["nuisance"])
    for sub in (exp.get("members") or {}).get("exports") or []:
        ks |= _kinds(sub)
    return ks


def _exports_within(exp: dict):
    """``exp`` and every export nested in it (a stack's members, a nuisance model)."""
    subs = [exp["nuisance"]] if isinstance(exp.get("nuisance"), dict) else []
    subs += (exp.get("members") or {}).get("exports") or []
    return [exp] + [e for s in subs for e in _exports_within(s)]


# ----------------------------------------------------------------------------- background
def background_table(analysis: pd.DataFrame, names: list[str], types: list[str], categories: dict,
                     availability: pd.DataFrame | None = None) -> pd.DataFrame:
    """Aggregated distribution of each feature over the training participants (one row per
    participant: the first analysis row of each trial x participant): observed count, percent
    missing, trials where collected, quantiles p01..p99 (continuous; p05..p95 only below
    ``MIN_N_OUTER`` observed values, none below ``MIN_N_QUANTILES``) and level counts
    (binary/categorical). No participant-level rows."""
    parts = analysis.drop_duplicates(["trial", "participant"])
    n = len(parts)
    rows = []
    for name, typ in zip(names, types):
        col = parts[name] if name in parts.columns else pd.Series(np.nan, index=parts.index)
        obs = col.dropna()
        trials = int(parts.loc[col.notna(), "trial"].nunique())
        row: dict[str, Any] = {"feature": name, "type": typ, "n_observed": int(len(obs)),
                               "pct_missing": round(100.0 * (1 - len(obs) / n), 1) if n else 100.0,
                               "trials_observed": trials}
        if availability is not None and name in set(availability["covariate"]):
            row["trials_collected"] = int(availability.loc[availability["covariate"] == name, "collected"].sum())
        else:
            row["trials_collected"] = trials
        if typ == "continuous" and len(obs) >= MIN_N_QUANTILES:
            qs = np.quantile(pd.to_numeric(obs, errors="coerce").dropna().to_numpy(float), QUANTILES)
            for q, v in zip(QUANTILES, qs):
                tail = min(q, 1 - q) < 0.05 - 1e-12
                # outer quantiles only when enough participants lie beyond them (no single person's value)
                row[f"p{int(round(q * 100)):02d}"] = "" if tail and len(obs) < MIN_N_OUTER else _fmt(v)
            row["levels"] = ""
        else:
            for q in QUANTILES:
                row[f"p{int(round(q * 100)):02d}"] = ""
            if typ == "binary":
                v = pd.to_numeric(obs, errors="coerce")
                row["levels"] = json.dumps({"0": int((v == 0).sum()), "1": int((v == 1).sum())}, sort_keys=True)
            elif typ == "categorical":
                counts = obs.astype(str).value_counts()
                row["levels"] = json.dumps({str(c): int(counts.get(str(c), 0)) for c in categories.get(name, [])},
                                           sort_keys=True)
            else:
                row["levels"] = ""
        rows.append(row)
    cols = ["feature", "type", "n_observed", "pct_missing", "trials_observed", "trials_collected"] + \
        [f"p{int(round(q * 100)):02d}" for q in QUANTILES] + ["levels"]
    return pd.DataFrame(rows, columns=cols)


def _csv_bytes(df: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode("utf-8")


# ----------------------------------------------------------------------------- report
def report_files(run: Path, harmonised=None, subgroup_performance: pd.DataFrame | None = None) -> dict[str, bytes]:
    """The run's aggregate summaries for ``report/`` (keys relative to ``report/``)."""
    run = Path(run)
    files: dict[str, bytes] = {}
    rj = json.loads((run / "run.json").read_text("utf-8"))
    rj = {k: v for k, v in rj.items() if k not in _RUN_DROP}
    files["run.json"] = (json.dumps(rj, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")
    for name in ("tasks.csv", "class_support.csv", "subgroup_performance.csv"):
        if (run / name).is_file():
            files[name] = (run / name).read_bytes()
    if (run / "report.md").is_file():
        lines = [ln for ln in (run / "report.md").read_text("utf-8").splitlines() if not ln.startswith("Total time")]
        files["report.md"] = ("\n".join(lines) + "\n").encode("utf-8")
    for d in sorted((run / "iecv").glob("*")) if (run / "iecv").is_dir() else []:
        for name in ("pooled.csv", "per_trial.csv", "r_loss.csv", "stack_weights.json"):
            if (d / name).is_file():
                files[f"iecv/{d.name}/{name}"] = (d / name).read_bytes()
    for p in sorted((run / "plots").glob("*")) if (run / "plots").is_dir() else []:
        if p.suffix in (".png", ".csv") and p.is_file():
            files[f"plots/{p.name}"] = p.read_bytes()
    for p in sorted((run / "summaries").glob("*.csv")) if (run / "summaries").is_dir() else []:
        files[f"summaries/{p.name}"] = p.read_bytes()
    if harmonised is not None:
        if getattr(harmonised, "attrition", None) is not None:
            files["attrition.csv"] = _csv_bytes(harmonised.attrition)
        if getattr(harmonised, "covariate_availability", None) is not None:
            files["covariate_availability.csv"] = _csv_bytes(harmonised.covariate_availability)
    if subgroup_performance is not None:
        files["subgroup_performance.csv"] = _csv_bytes(subgroup_performance)
    return files


# ----------------------------------------------------------------------------- card
def _build_card(report_dir: Path, manifest: dict):
    """The model card (``training.cards.build_card``): card.md at the artifact root, figures in card/."""
    from training.cards import build_card

    return build_card(report_dir, manifest, figure_prefix="card/")


# ----------------------------------------------------------------------------- network
def _overall_evidence(kinds: list[str]) -> str:
    if all(k == "indirect only" for k in kinds):
        return "indirect only"
    if all(k != "indirect only" for k in kinds):
        return "direct"
    return "direct in some tasks, indirect only in others"


def network_comparators(networks: dict, learner_comparators: list, class_order: list) -> list[dict]:
    """Every network node (but the reference) with its evidence per task and overall: ``direct``
    (trials compared it with exercise), ``indirect only``, or mixed across tasks; ``scored_by``:
    ``learner`` for the learners' own classes (their predictions are unchanged), else
    ``ipd_network``."""
    by_node: dict[str, dict] = {}
    for task in sorted(networks):
        for node, e in networks[task]["evidence"].items():
            by_node.setdefault(node, {})[task] = dict(e)
    order = [c for c in class_order if c in by_node] + sorted(c for c in by_node if c not in class_order)
    out = []
    for node in order:
        per = by_node[node]
        out.append({"node": node, "scored_by": "learner" if node in learner_comparators else "ipd_network",
                    "evidence": _overall_evidence([v["evidence"] for v in per.values()]),
                    "tasks": per})
    return out


# ----------------------------------------------------------------------------- main
def export_artifact(run: str | Path, out: str | Path, harmonised, *, created: str | None = None,
                    subgroup_performance: pd.DataFrame | None = None, overwrite: bool = True,
                    log: Callable[[str], None] | None = None) -> Path:
    """Write the artifact for the training run folder ``run`` into the folder ``out``.

    ``harmonised`` is what :func:`training.harmonise.harmonise` returned for the run's data (its
    ``analysis`` table is fingerprinted and summarised, never copied; ``attrition`` and
    ``covariate_availability`` go to report/; ``config`` gives the feature schema). The folder is
    written next to ``out`` and renamed into place, so a reader never sees half an artifact.
    """
    say = log or (lambda m: None)
    run, out = Path(run), Path(out)
    cfg = harmonised.config
    analysis = harmonised.analysis
    runj = json.loads((run / "run.json").read_text("utf-8"))
    tasks_df = pd.read_csv(run / "tasks.csv")
    ok = tasks_df[tasks_df["status"] == "ok"] if "status" in tasks_df.columns else tasks_df.iloc[0:0]
    if not len(ok):
        raise LbpError(f"{run}: the run has no trained task; nothing to export")

    # ---- model files
    files: dict[str, bytes] = {}
    tasks, exports, networks = [], {}, {}
    network_trained = isinstance(runj.get("network"), dict)
    for r in ok.itertuples(index=False):
        task = str(r.task)
        src = run / "models" / task / "selected.json"
        if not src.is_file():
            raise LbpError(f"{run}: {src.relative_to(run)} is missing")
        exp = json.loads(src.read_text("utf-8"))
        if exp.get("format") != mf.LEARNER_FORMAT:
            raise LbpError(f"{src}: not an exported learner (format {exp.get('format')!r})")
        mf.parse_learner(exp, str(src))  # the typed record: refuses what a reader would refuse
        ext, texts = externalise_boosters(exp, task)
        files[f"model/{task}.json"] = (mf.canonical_json(ext) + "\n").encode("utf-8")
        for name, s in texts.items():
            files[name] = s.encode("utf-8")
        exports[task] = exp
        sel = (exp.get("meta") or {}).get("selection") or {}
        entry = {"task": task, "outcome": str(r.outcome), "follow_up": str(r.follow_up),
                 "outcome_type": exp["outcome_type"], "learner": sel.get("model", exp["kind"]),
                 "kind": exp["kind"], "selection": sel.get("rule", ""), "model": f"model/{task}.json", "boosters": sorted(texts),
                 **({"stack_se": "joint"} if (exp.get("interval") or {}).get("member_corr") else {}),  # interval.member_corr
                 "comparators": list(exp["comparators"]), "unavailable": list(exp.get("unavailable", []))}
        net_src = run / "network" / f"{task}.json"
        if network_trained and net_src.is_file():
            net = json.loads(net_src.read_text("utf-8"))
            files[f"{NETWORK_DIR}/{task}.json"] = (mf.canonical_json(net) + "\n").encode("utf-8")
            networks[task] = net
            entry["network"] = f"{NETWORK_DIR}/{task}.json"
        tasks.append(entry)
    model_hashes = {n: sha256_bytes(b) for n, b in files.items()}
    model_id = mf.model_id_of(model_hashes)

    # ---- features, background
    first = next(iter(exports.values()))
    feats = first["features"]
    for t, e in exports.items():
        if e["features"]["names"] != feats["names"]:
            raise LbpError(f"{run}: task {t} has other features than the first task; cannot build one schema")
    baselines = [f"baseline_{o}" for o in getattr(cfg, "baseline_outcomes", cfg.outcomes)]
    inner = [e for x in exports.values() for e in _exports_within(x)]
    trees_native = any(e.get("boosters") and e.get("tree_missing", "native") == "native" for e in inner)
    expected = any((e.get("linear") or {}).get("missing") == EXPECTED for e in inner)
    structural = sorted(t for t, e in exports.items() if e.get(STRUCTURAL_KEY))  # recovery's allowance
    handled = (MISSING_LINEAR + (MISSING_EXPECTED if expected else "") + MISSING_INTERVAL
               + (MISSING_STRUCTURAL if structural else "") + (MISSING_TREES if trees_native else ""))
    schema = []
    for spec in cfg.covariates.covariates:
        if spec.name not in feats["names"]:
            continue
        d = spec.to_dict()
        d["missing"] = handled
        schema.append(d)
    bg = background_table(analysis, feats["names"], feats["types"], feats.get("categories", {}),
                          getattr(harmonised, "covariate_availability", None))
    files[BACKGROUND] = _csv_bytes(bg)

    # ---- report/
    for name, data in report_files(run, harmonised, subgroup_performance).items():
        files[f"report/{name}"] = data

    # ---- training data summary
    parts = analysis.drop_duplicates(["trial", "participant"])
    trials = {}
    for t, g in parts.groupby("trial", sort=True):
        trials[str(t)] = {"participants": int(len(g)),
                          "by_class": {str(k): int(v) for k, v in g["treatment"].value_counts().sort_index().items()}}
    class_order = list(cfg.treatment_classes)
    comps = [c for c in class_order if any(c in t["comparators"] for t in tasks)]
    sparse = sorted({c for e in exports.values() for c, s in (e.get("meta") or {}).get("support", {}).items()
                     if s.get("sparse") and s.get("trials", 0) > 0 and c in comps}, key=class_order.index)
    outcomes = list(dict.fromkeys(t["outcome"] for t in tasks))
    fus = [w for w in cfg.window_names if any(t["follow_up"] == w for t in tasks)]
    manifest: dict[str, Any] = {
        "schema_version": mf.FORMAT_VERSION,
        "format": mf.MODEL_FORMAT,
        "model_id": model_id,
        "created": None,  # filled in last: the only time-varying field
        "package_version": __version__,
        "git_commit": git_commit(),
        "seed": runj.get("seed"),
        "environment": mf.environment(),
        # what the model was trained with (packages, BLAS kernels): which build a card describes
        "training_environment": runj.get("training_environment"),
        "synthetic": bool(runj.get("synthetic", False)),
        "study": cfg.name,
        "active": cfg.active,
        "training_data": {
            "fingerprint": data_fingerprint(analysis),
            "fingerprint_method": "SHA-256 of the harmonised analysis table as CSV: columns by name, floats %.10g, "
                                  "missing empty, rows sorted as text",
            "n_participants": int(len(parts)),
            "trials": trials,
        },
        "feature_schema": schema,
        "baselines": baselines,
        "baseline_range": [0.0, 100.0],
        "outcomes": outcomes,
        "follow_ups": fus,
        "comparators": comps,
        "sparse_comparators": sparse,
        "tasks": tasks,
        "scales": {"continuous": CONTINUOUS_SCALE, "binary": BINARY_SCALE},
        "smallest_worthwhile": {"rule": "per_outcome",
                                "description": "per outcome, from the study config: outcome_definitions.<outcome>."
                                               "smallest_worthwhile ({'relative': f}: benefit >= f x the patient's "
                                               "baseline; {'absolute': x}: benefit >= x; null: none configured)"},
        "labels": {"intervention": cfg.intervention_label or cfg.active.replace("_", " "),
                   "comparator": cfg.comparator_label or "comparator"},
        "outcome_definitions": outcome_definitions(cfg, outcomes),
        "explanation": {
            "method": "exact additive terms (linear learners); LightGBM TreeSHAP, path-dependent (tree learners); "
                      "first-order delta terms for binary outcomes",
            "learners": sorted(k for e in exports.values() for k in _kinds(e) if k),
            "background": None,
        },
        "background": {"file": BACKGROUND,
                       "kind": "aggregated: per-feature observed counts, % missing, trials, quantiles p01-p99 and "
                               "level counts; no participant-level rows",
                       "used_for": "out-of-range and little-data warnings"},
        "card": dict(mf.CARD),
        # per task: does the scorer give per-arm 95% CIs (the model card claims them only where true)
        "arm_intervals": {t: arm_intervals_available(e) for t, e in sorted(exports.items())},
        "structural_missing": structural,  # tasks with recovery's structural allowance (predict/recovery_structure)
    }
    if network_trained:
        net_tasks = {t: {"status": v.get("status"), **({"reason": v["reason"]} if "reason" in v else {}),
                         **({"modifier_status": v["modifier_status"], "modifiers": v.get("modifiers", [])}
                            if "modifier_status" in v else {}),
                         **{k: v[k] for k in ("method", "ml_nmr_not_used", "diagnostics") if k in v}}
                     for t, v in sorted(runj["network"].items()) if t in {x["task"] for x in tasks}}
        methods = {v.get("method", "ipd") for v in net_tasks.values() if v.get("status") == "fitted"} or {"ipd"}
        manifest["network"] = {
            "model": IPD_NETWORK if methods == {"ipd"} else "; ".join(m for m in (
                "ML-NMR: Bayesian multilevel network meta-regression of the IPD and the aggregate trials (NumPyro "
                "NUTS; training.network.mlnmr; posterior draws in the network files)" if "ml-nmr" in methods else "",
                "one-stage IPD network model (training.network.ipd.fit_ipd_network)" if "ipd" in methods else "") if m)
            + " (docs/network.md)",
            "reference": cfg.active, "files": NETWORK_DIR + "/<task>.json", "tasks": net_tasks,
        }
        manifest["network_comparators"] = network_comparators(networks, comps, class_order)
    manifest["explanation"]["learners"] = sorted(set(manifest["explanation"]["learners"]))

    # ---- card (from report/ written to a temp dir), then the artifact
    created = created or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    manifest["created"] = created
    with tempfile.TemporaryDirectory(prefix="lbp-report-") as tmp:
        rep = Path(tmp)
        for name, data in files.items():
            if name.startswith("report/"):
                p = rep / name[len("report/"):]
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
        card = _build_card(rep, dict(manifest))
    files["card.md"] = card.markdown.encode("utf-8")
    files["card.json"] = (json.dumps(card.json, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")
    for name, png in sorted((card.figures or {}).items()):
        files[f"card/{name}"] = png
    if getattr(card, "json", None) is not None and isinstance(card.json, dict) and card.json.get("placeholder"):
        say("note: training.cards is not available; wrote a PLACEHOLDER model card")

    listing = {n: {"sha256": sha256_bytes(files[n]), "bytes": len(files[n])} for n in sorted(files)}
    manifest["files"] = listing
    manifest["content_sha256"] = mf.content_digest(manifest)
    del manifest["files"]  # write_artifact adds the same listing back, last

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        if not overwrite:
            raise LbpError(f"{out} exists; choose another folder")
        if any(out.iterdir()) and not (out / "manifest.json").is_file():
            raise LbpError(f"{out} exists and is not a model artifact; refusing to replace it")
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_artifact(stage, manifest, files)
        written = json.loads((stage / "manifest.json").read_text("utf-8"))
        if written["files"] != listing:  # pragma: no cover - write_artifact hashes the same bytes
            raise LbpError("artifact listing mismatch while writing")
        mf.verify(load_artifact(stage, supported=(mf.FORMAT_VERSION,)))  # what a reader checks, before it goes live
        if out.exists():
            old = out.with_name(f".{out.name}.old-{model_id}")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            stage.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            stage.rename(out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    say(f"artifact {model_id}: {len(files)} files -> {out}/")
    return out
