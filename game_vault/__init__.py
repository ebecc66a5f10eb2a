"""Lumia game servers and the sandbox-side harness that runs them.

Runs inside the sandbox on the standard library only (``images`` and the bots are the exceptions,
they run on the host or as user scripts). Importing this package does nothing but define names.
"""
