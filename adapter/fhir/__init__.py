"""The FHIR R4 REST endpoint (`/fhir`): municipal systems write their journal data as to any FHIR server."""
