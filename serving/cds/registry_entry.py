"""What every entry of the CDS code registry has (observations, conditions, questionnaires)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RegistryEntry:
    """An entry of the code registry: ``id`` (unique in its section; a site file
    ``LBP_CDS_CODES`` replaces an entry by id) and the ``label`` shown on cards and in the
    inputs report. Subclasses add their own fields after these two."""
    id: str
    label: str
