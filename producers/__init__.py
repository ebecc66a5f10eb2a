"""Edges that turn the outside world into events: the legacy drop folders (watchfiles) and the
shared ``submit_run`` used by both the folders and the REST API."""
