"""The ``start_game`` fixture lives with the other helpers in ``game_vault_support``."""

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:  # plain `pytest` without the project installed still finds game_vault
    sys.path.insert(0, _REPO)

from game_vault_support import start_game  # noqa: E402

__all__ = ["start_game"]
