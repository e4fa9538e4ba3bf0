"""CDS Hooks service: the scoring model as a ``patient-view`` (and ``order-select``) CDS service
reading FHIR R4 prefetch data. See docs/cds-hooks.md.

Modules: ``codes`` (the code registry, ``codes.yaml``), ``fhir_read`` (validation of prefetched
resources with fhir.resources R4B), ``fhir_map`` and ``fhir_clinical`` (FHIR → model inputs with a
report), ``jwt_auth`` (CDS client JWT verification), ``cards`` (CDS Hooks cards), ``routes``.
"""
