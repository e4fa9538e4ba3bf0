"""Organisational facts for the model card (developer contact, funding, conflicts, monitoring and
update plans, …): a YAML file the model's owner fills in (``lbp-benefit card --owner FILE``).

These are facts about an organisation, not about the data, so the card cannot derive them; they
must never be left as "not yet available". The packaged default (``owner_default.yaml``) states
what is true for the synthetic default model. Every key of the default is required; an unknown
key, a missing one or an empty value is an error naming the file and the key.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from predict.errors import LbpError
from predict.yaml_file import load_yaml

DEFAULT = Path(__file__).with_name("owner_default.yaml")


def keys() -> list[str]:
    return list(yaml.safe_load(DEFAULT.read_text("utf-8")).keys())


def load_owner(path: str | Path | None = None) -> dict[str, str]:
    """The owner's statements (the packaged synthetic default when ``path`` is None)."""
    p = Path(path) if path is not None else DEFAULT
    data = load_yaml(p, "the model owner's file")
    if not isinstance(data, dict):
        raise LbpError(f"{p}: must be a YAML mapping of key: statement")
    want = keys()
    unknown = sorted(set(map(str, data)) - set(want))
    if unknown:
        raise LbpError(f"{p}: unknown key(s) {', '.join(unknown)}; the keys are {', '.join(want)}")
    missing = [k for k in want if not isinstance(data.get(k), str) or not data[k].strip()]
    if missing:
        raise LbpError(f"{p}: every key needs a plain statement; missing or empty: {', '.join(missing)}")
    return {k: " ".join(data[k].split()) for k in want}
