"""The jetfleet version, recorded in checkpoints and reports: the one place it is written.

pyproject.toml reads it from here (``[tool.setuptools.dynamic]``), so the
installed distribution's metadata always agrees. A literal rather than
``importlib.metadata.version("jetfleet")``: the agent reports its version at
start, and importing ``importlib.metadata`` (with ``email``, ``zipfile``,
``csv`` ...) costs a Jetson's agent process almost 1 MiB for good, and it is
right in a source tree that was never installed too.
"""

from __future__ import annotations

__version__ = "0.1.0"
