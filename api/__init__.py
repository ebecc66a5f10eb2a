"""The REST API (FastAPI): the legacy endpoints of the old cluster manager and the versioned /v1."""
