"""Where the controller keeps its state: ``$JETFLEET_HOME``, else the user's data directory.

The registry database, the blob store, the PKI folder and the decoded-image
cache all live under it, so one variable moves (or isolates) everything.
"""

from __future__ import annotations

import os
from pathlib import Path


def jetfleet_home() -> Path:
    env = os.environ.get("JETFLEET_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("jetfleet", appauthor=False))


def decoded_cache_dir() -> Path:
    """Decoded image folders (``data/decoded.py``); safe to delete, rebuilt on the next run."""
    return jetfleet_home() / "cache" / "decoded"
