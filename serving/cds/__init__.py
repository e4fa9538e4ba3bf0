"""CDS Hooks service: the scoring model as a ``patient-view`` (and ``order-select``) CDS service
reading FHIR R4 prefetch data (or fetching it from the client's FHIR server), with a feedback
endpoint. See docs/cds-hooks.md.

Modules: ``codes`` (the code registry, ``codes.yaml``), ``questionnaire`` (questionnaire matching
and item scoring), ``temporal`` (when an Observation holds), ``fhir_read`` (validation of prefetched
resources with fhir.resources R4B, identity, fetch failures), ``fhir_map`` and ``fhir_clinical``
(FHIR → model inputs with a report), ``fhir_fetch`` (the FHIR server), ``inputs_report`` (the
machine-readable input account), ``jwt_auth`` (CDS client JWT verification), ``cards`` (CDS Hooks
cards), ``service`` (decisions and cards for one model), ``feedback`` (feedback store, override
rates), ``config_report`` (start-up summary, ``cds check-config``), ``discovery``, ``routes``.
"""
