"""The on-device engine cache, keyed by everything that makes an engine valid.

An engine is valid for exactly one (artifact, backend + version, device model
+ compute capability, L4T release, precision, builder flags). The fingerprint
hashes all of them, so a JetPack upgrade or a new TensorRT rebuilds, and an
agent restart or a redeploy of the same artifact does not.

Layout: ``engines/<fingerprint>/engine`` plus ``meta.json`` (the fields, for
people). An entry appears by renaming a finished temporary folder, so a build
killed halfway leaves only a ``.tmp-*`` folder that :meth:`EngineCache.clean`
removes on the next start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jetfleet.common.files import atomic_write_text, fsync_dir
from jetfleet.common.hashing import sha256_file

log = logging.getLogger(__name__)

ENGINE_FILE = "engine"


@dataclass(frozen=True)
class EngineKey:
    """The fields of the fingerprint (DESIGN.md, Contracts: Engines)."""

    artifact_sha256: str
    backend: str
    backend_version: str
    device_class: str
    compute_capability: str | None
    l4t_release: str | None
    precision: str
    builder_flags: dict[str, Any]

    def fingerprint(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class EngineCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def get(self, key: EngineKey) -> Path | None:
        """The cached engine file for ``key``, or ``None`` (a miss, or an entry whose bytes changed: removed)."""
        entry = self.root / key.fingerprint()
        path = entry / ENGINE_FILE
        if not path.is_file():
            return None
        try:
            expected = json.loads((entry / "meta.json").read_text())["engine_sha256"]
        except (OSError, ValueError, KeyError):
            expected = None
        if expected is None or sha256_file(path)[0] != expected:
            log.warning("engine cache entry %s is damaged; it will be rebuilt", entry.name)
            self.remove(entry.name)
            return None
        return path

    def put(self, key: EngineKey, build: Callable[[Path], None]) -> Path:
        """Run ``build(engine_path)`` in a temporary folder and publish it under the fingerprint."""
        fp = key.fingerprint()
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{fp[:8]}-", dir=self.root))
        try:
            build(tmp / ENGINE_FILE)
            with open(tmp / ENGINE_FILE, "rb") as fh:
                os.fsync(fh.fileno())
            meta = {**asdict(key), "engine_sha256": sha256_file(tmp / ENGINE_FILE)[0]}
            atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=2, sort_keys=True))
            target = self.root / fp
            if target.exists():  # built concurrently by someone else: theirs is as good
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, target)
                fsync_dir(self.root)
            return target / ENGINE_FILE
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def remove(self, fingerprint: str) -> None:
        shutil.rmtree(self.root / fingerprint, ignore_errors=True)

    def prune(self, keep: set[str], grace_s: float) -> int:
        """Remove entries whose fingerprint is not in ``keep`` and that are older than ``grace_s``."""
        cutoff, removed = time.time() - grace_s, 0
        for name in self.entries():
            entry = self.root / name
            if name not in keep and entry.stat().st_mtime < cutoff:
                self.remove(name)
                removed += 1
        return removed

    def clean(self) -> int:
        """Remove leftovers of builds that were killed; returns how many."""
        leftovers = [p for p in self.root.glob(".tmp-*") if p.is_dir()]
        for p in leftovers:
            shutil.rmtree(p, ignore_errors=True)
        return len(leftovers)

    def entries(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
