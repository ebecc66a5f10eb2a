"""Lumia Cluster Manager: configuration, service bootstrap and the ``lumia`` command."""
