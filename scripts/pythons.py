"""Find a CPython of a given version on this machine: on PATH, or pyenv's (whose shims fail unless selected).

The device-side checks need interpreters older than the controller's 3.11:
3.8 is JetPack 5's system Python. ``python scripts/pythons.py 3.8`` prints the path or exits 1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def works(python: str, version: str) -> bool:
    """True when ``python`` runs and is CPython ``version`` (a shim that is not selected does not run)."""
    probe = "import sys; print('%d.%d' % sys.version_info[:2])"
    try:
        out = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=30)
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.strip() == version


def find_python(version: str) -> str | None:
    """The first working ``python<version>``: PATH first, then every pyenv installation of that version."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += [str(p) for p in sorted(pyenv_root.glob(f"versions/{version}.*/bin/python{version}"), reverse=True)]
    return next((c for c in candidates if c and works(c, version)), None)


if __name__ == "__main__":
    found = find_python(sys.argv[1])
    if found is None:
        sys.exit(f"no working python{sys.argv[1]} on PATH or under pyenv")
    print(found)
