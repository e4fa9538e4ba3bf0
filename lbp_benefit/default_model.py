"""The embedded default model: trained on first use from the embedded synthetic data (the
calibrated simulator, scenario hayden2020) and cached.

Cache: ``$LBP_HOME/default-model/<version>/`` if ``LBP_HOME`` is set, else
``$XDG_CACHE_HOME/lbp-benefit/default-model/<version>/`` (default ``~/.cache/...``). The folder
holds ``run/`` (the training run: aggregate outputs only) and ``artifact/`` (the model). Training
is guarded by a lock file, so two processes starting at once train it once; the artifact is
renamed into place only when complete.

The default model is trained on SYNTHETIC data: it demonstrates the software and is not for
clinical use (its manifest says ``"synthetic": true`` and the service shows a warning).
"""
from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import Callable

from predict import __version__
from predict.inputs import EXAMPLE_PATIENT  # noqa: F401 - the example patient is written once, in predict/inputs.py

DEFAULT_SEED = 1
REQUIRED_MANIFEST_KEYS = ("network_comparators",)  # model-format revision: a cached model without these is stale
DEFAULT_MODEL_REVISION = "2026-12-07 ml-nmr"  # the default settings' revision: a cache of another one is retrained
REVISION_FILE = "revision.txt"

EXAMPLE_COMPARATOR = "usual_care"


def cache_root() -> Path:
    home = os.environ.get("LBP_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "lbp-benefit"


def default_model_dir() -> Path:
    """``<cache root>/default-model/<package version>/``."""
    return cache_root() / "default-model" / __version__


def default_model_path() -> Path:
    """Where the default artifact lives (it may not exist yet)."""
    return default_model_dir() / "artifact"


def default_settings():
    """The training settings of the default model: those of ``lbp-benefit train`` (seed 1)."""
    from training.train import TrainSettings

    return TrainSettings(seed=DEFAULT_SEED, network=True, network_method="ml-nmr", network_aggregate="default")


def is_current(art: Path) -> bool:
    """A cached artifact is reused only if it has what this version's default model has: the
    comparator network (``network_comparators`` in the manifest, REQUIRED_MANIFEST_KEYS) and the
    training settings of this revision (``revision.txt`` beside it = DEFAULT_MODEL_REVISION; the
    revision changes when the default settings do, e.g. the ML-NMR network). One cached before
    either is retrained, not silently reused."""
    import json

    try:
        m = json.loads((art / "manifest.json").read_text("utf-8"))
        rev = (art.parent / REVISION_FILE).read_text("utf-8").strip()
    except (OSError, ValueError):
        return False
    return isinstance(m, dict) and all(k in m for k in REQUIRED_MANIFEST_KEYS) and rev == DEFAULT_MODEL_REVISION


def ensure_default_model(progress: Callable | None = None, log: Callable[[str], None] | None = None) -> Path:
    """The default model's artifact folder, training it first if it is not cached yet.

    ``progress``: a ``progress(iterable, description, total=None)`` wrapper for progress bars
    (e.g. :func:`lbp_benefit.progress.progress_over`); ``log``: a callable for one-line messages.
    Training takes minutes on 2 cores (it is ``lbp-benefit train`` with its defaults on the
    embedded synthetic data); afterwards this returns at once.
    """
    say = log or (lambda m: None)
    art = default_model_path()
    if is_current(art):
        return art
    d = default_model_dir()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if is_current(art):  # another process trained it meanwhile
                return art
            if (art / "manifest.json").is_file():
                say(f"the cached default model in {art}/ predates this version's default settings; retraining it")
            say(f"training the embedded default model (synthetic data; first use only) into {d}/ ...")
            _train(d, progress, say)
            (d / REVISION_FILE).write_text(DEFAULT_MODEL_REVISION + "\n", "utf-8")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return art


def _train(d: Path, progress: Callable | None, say: Callable[[str], None]) -> None:
    from lbp_benefit.data_source import load_source
    from training.export_model import export_artifact
    from training.harmonise import harmonise
    from training.train import run_training

    settings = default_settings()
    ds, synthetic = load_source(None, None, settings.seed)
    h = harmonise(ds)
    run = d / "run"
    if run.exists():
        shutil.rmtree(run)
    run_training(h.analysis, h.config, run, settings, synthetic=synthetic, progress=progress, log=say)
    export_artifact(run, d / "artifact", h, log=say)


def example_patient() -> dict:
    """One example patient (baselines 0-100, higher = worse, and a few covariates)."""
    return dict(EXAMPLE_PATIENT)


def _verdict_words(v: dict | None) -> str:
    """The verdict as predict/verdict.py words it (its owner), with its model-based probabilities and confidence."""
    if not v:
        return ""
    from predict.verdict import probability_words

    low = f"; {v['confidence_text']}" if v.get("confidence_text") else ""
    return f"; {v['text']} ({probability_words(v)}){low}"


def _arm_words(a: dict, f) -> str:
    """An arm's expected outcome with its 95% CI (or that the model holds none)."""
    iv = a.get("interval")
    if iv and iv[0] is not None and iv[1] is not None:
        return f"{f(a['expected'])} (95% CI {f(iv[0])} to {f(iv[1])})"
    return f"{f(a['expected'])} (no interval available)"


def example_text(scorer=None, comparator: str = EXAMPLE_COMPARATOR) -> str:
    """A few lines describing the example patient's scores (for the README's demo command)."""
    from predict import Scorer

    scorer = scorer or Scorer.load(ensure_default_model())
    comp = comparator if comparator in scorer.comparators else scorer.comparators[0]
    patient = {k: v for k, v in example_patient().items() if k in scorer.schema or k in scorer.baselines}
    r = scorer.score([patient], comp)[0]
    act = scorer.labels["intervention"]
    lines = [f"Example patient ({', '.join(f'{k}={v:g}' for k, v in patient.items())}), {act} vs {comp}, "
             f"model {scorer.model_id}:"]
    for task, o in r["outcomes"].items():
        if not o["available"]:
            lines.append(f"  {task}: no prediction (no trial compared {act} with {comp})")
            continue
        b = o["benefit"]
        ci, pi = b["ci"], b["prediction_interval"]
        if o["scale"].startswith("probability"):
            f2 = lambda x: f"{x:.2f}"  # noqa: E731
            lines.append(f"  {task}: {o['scale']}: {act} {_arm_words(o['intervention'], f2)} vs {comp} "
                         f"{_arm_words(o['comparator'], f2)}; difference {b['estimate']:+.2f} "
                         f"(95% CI {ci[0]:+.2f} to {ci[1]:+.2f}; new setting {pi[0]:+.2f} to {pi[1]:+.2f})"
                         + _verdict_words(o.get("verdict")))
        else:
            f1 = lambda x: f"{x:.1f}"  # noqa: E731
            lines.append(f"  {task}: {act} {_arm_words(o['intervention'], f1)} vs {comp} "
                         f"{_arm_words(o['comparator'], f1)} (0-100, higher = worse); benefit {b['estimate']:+.1f} "
                         f"(95% CI {ci[0]:+.1f} to {ci[1]:+.1f}; new setting {pi[0]:+.1f} to {pi[1]:+.1f})"
                         + _verdict_words(o.get("verdict")))
    if r["top_factors"]:
        note = (r.get("explained") or {}).get("uncertainty")
        lines.append("  top factors" + (f" ({note})" if note else "") + ": "
                     + ", ".join(f"{f['label']} {f['contribution']:+.1f}" for f in r["top_factors"][:3]))
    for w in r["warnings"]:
        lines.append(f"  warning: {w}")
    return "\n".join(lines)
