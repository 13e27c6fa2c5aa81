"""scripts/check_python_floor.py: the device side stays runnable on JetPack 5's Python 3.8."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check_python_floor.py"


def run(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, paths)], capture_output=True, text=True, timeout=120)


def test_the_device_side_passes() -> None:
    proc = run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the device side and its tests: nothing newer than Python 3.8" in proc.stdout


def test_a_planted_311_call_in_a_real_module_is_caught(tmp_path: Path) -> None:
    module = tmp_path / "pki.py"
    shutil.copyfile(REPO / "common" / "pki.py", module)
    source = module.read_text()
    assert "dt.timezone.utc" in source
    module.write_text(source.replace("dt.timezone.utc", "dt.UTC", 1))
    proc = run(module)
    assert proc.returncode == 1
    assert "'datetime.UTC' member requires !2, 3.11" in proc.stdout
    assert "must run on Python 3.8" in proc.stderr


def test_stdlib_modules_and_syntax_newer_than_38_are_caught(tmp_path: Path) -> None:
    (tmp_path / "config.py").write_text("import tomllib\n")
    (tmp_path / "cache.py").write_text("from functools import cache\n\n\n@cache\ndef f() -> int:\n    return 1\n")
    (tmp_path / "zipped.py").write_text("pairs = list(zip([1], [2], strict=True))\n")
    (tmp_path / "matched.py").write_text(
        "def f(x: int) -> int:\n    match x:\n        case 1:\n            return 2\n    return 0\n"
    )
    proc = run(tmp_path)
    assert proc.returncode == 1
    for needle in ("'tomllib' module requires !2, 3.11", "'functools.cache'", "'zip(strict)'", "pattern matching"):
        assert needle in proc.stdout, needle


def test_the_tomli_fallback_pattern_is_accepted(tmp_path: Path) -> None:
    guarded = "import sys\n\nif sys.version_info >= (3, 11):\n    import tomllib\nelse:\n    import tomli as tomllib\n"
    (tmp_path / "config.py").write_text(guarded)
    assert run(tmp_path).returncode == 0


def test_type_expressions_evaluated_at_run_time_are_caught(tmp_path: Path) -> None:
    module = tmp_path / "aliases.py"
    module.write_text(
        "from __future__ import annotations\n"
        "from collections.abc import Callable\n"
        "from typing import Optional\n"
        "Progress = Callable[[int], None]\n"  # line 4: collections.abc's, subscripted on import
        "Label = int | None\n"  # line 5
        "Fine = Optional[int]\n"
        "def f(a: int | None, b: list[int]) -> dict[str, int]:\n"  # annotations: never evaluated
        "    return {} if isinstance(a, int | float) else {}\n"  # line 8
        "flags = 1 | 2\n"
    )
    proc = run(tmp_path)
    assert proc.returncode == 1
    lines = [line.split(": ", 1)[0].rsplit(":", 1)[1] for line in proc.stdout.splitlines() if "aliases.py" in line]
    assert lines == ["4", "5", "8"]
