"""The workstation side of jetfleet.

It needs Python 3.11 or newer, while the agent beside it in the same
distribution runs on 3.8 (JetPack 5). pip refuses ``jetfleet[controller]`` on
an older Python (pyproject.toml), but the ``jetfleet`` command is installed with
the agent too: on a device it stops here with one line instead of a traceback.
This file must therefore stay parseable by Python 3.8.
"""

import sys

if sys.version_info < (3, 11):
    raise SystemExit(
        f"error: the jetfleet controller needs Python 3.11 or newer (this is Python {sys.version.split()[0]}); "
        "on a device, use jetfleet-agent"
    )
