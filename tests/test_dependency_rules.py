"""The dependency rules of DESIGN.md, checked on every import statement in the tree.

An AST walk rather than import-linter: jetfleet is a namespace package
mapped from four folders, and the agent rule is about third-party modules
(torch) as much as about our own layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# folder → module prefixes it must never import
FORBIDDEN = {
    "common": ("jetfleet.controller", "jetfleet.agent", "torch", "torchvision"),
    "controller": ("jetfleet.agent",),
    "agent": ("jetfleet.controller", "torch", "torchvision"),
    "proto": ("jetfleet.controller", "jetfleet.agent", "torch", "torchvision"),
}


def imported_modules(path: Path, root: Path = REPO) -> list[tuple[int, str]]:
    """(line, module) for every import in ``path``, relative imports resolved against the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                rel = path.relative_to(root).with_suffix("").parts
                base = ["jetfleet", *rel[: len(rel) - node.level]]
                found.append((node.lineno, ".".join([*base, *([node.module] if node.module else [])])))
            elif node.module:
                found.append((node.lineno, node.module))
    return found


def violations(folder: str, root: Path = REPO) -> list[str]:
    bad = []
    for path in sorted((root / folder).rglob("*.py")):
        for line, module in imported_modules(path, root):
            for prefix in FORBIDDEN[folder]:
                if module == prefix or module.startswith(prefix + "."):
                    bad.append(f"{path.relative_to(root)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_layer_imports_follow_design(folder: str) -> None:
    assert violations(folder) == []


def test_checker_detects_a_violation(tmp_path: Path) -> None:
    """The rule check itself must be able to fail, relative imports included."""
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "bad.py").write_text(
        "import torch\nfrom jetfleet.controller.models import create_model\nfrom ..controller import cli\n"
    )
    assert len(violations("agent", tmp_path)) == 3
