"""The installed jetfleet version, recorded in checkpoints and reports."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jetfleet")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
