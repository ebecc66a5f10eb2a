"""The ``harness`` fixture lives with the other helpers in ``watcher_support``."""

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:  # plain `pytest` without the project installed still finds the packages
    sys.path.insert(0, _REPO)

from watcher_support import harness  # noqa: E402

__all__ = ["harness"]
