#!/usr/bin/env python3
"""Fail when the device side uses anything newer than Python 3.8.

    python scripts/check_python_floor.py            # agent/ common/ proto/
    python scripts/check_python_floor.py PATH ...   # other files or folders

The agent, ``common`` and ``proto`` run on JetPack's system Python: 3.8 on
JetPack 5, where TensorRT's bindings exist for that interpreter only. vermin
knows in which Python each standard-library module, member and syntax form
appeared (``tomllib`` 3.11, ``datetime.UTC`` 3.11, ``functools.cache`` 3.9,
``zip(strict=)`` 3.10, ``match`` 3.10 ...), which ruff does not. Ruff (with
``per-file-target-version`` py38 and the FA rules in pyproject.toml) covers
annotations that need ``from __future__ import annotations``. Neither sees
type expressions evaluated at run time, which 3.8 cannot evaluate: an alias
``Progress = Callable[[int], None]`` with ``collections.abc.Callable``,
``list[int]`` outside an annotation, ``int | None`` as a value,
``isinstance(x, int | float)``. This script finds those itself (an AST walk,
:func:`runtime_type_expressions`). What no static tool sees (a method of a
value whose type is unknown, such as ``str.removeprefix``) is caught by the
device-side tests run on Python 3.8 (scripts/test-old-python.sh).

Annotations are not evaluated by vermin: every device-side module has
``from __future__ import annotations`` (ruff's FA102 enforces it), so
``str | None`` in an annotation is never executed on 3.8.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEVICE_SIDE = ("agent", "common", "proto", "tests/agent", "tests/common", "tests/proto")  # their tests run on 3.8 too
FLOOR = "3.8"
BUILTIN_GENERICS = {"list", "dict", "tuple", "set", "frozenset", "type"}  # subscriptable from 3.9
TYPE_NAMES = BUILTIN_GENERICS | {"int", "float", "str", "bytes", "bool", "complex", "object"}


def vermin_command(paths: list[str]) -> list[str]:
    """vermin from this interpreter's environment, failing (exit 1) on anything above the floor."""
    vermin = Path(sys.executable).parent / "vermin"
    return [str(vermin), f"-t={FLOOR}-", "--no-tips", "--violations", "--quiet", *paths]


def annotation_nodes(tree: ast.AST) -> set[int]:
    """ids of every node inside an annotation: never evaluated under ``from __future__ import annotations``."""
    roots: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            args = [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, (a.vararg, a.kwarg))]
            roots += [arg.annotation for arg in args if arg.annotation is not None]
            roots += [node.returns] if node.returns is not None else []
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
    return {id(n) for root in roots for n in ast.walk(root)}


def abc_names(tree: ast.AST) -> set[str]:
    """Names imported from ``collections.abc``: subscriptable only from 3.9 (typing's are fine on 3.8)."""
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "collections.abc"
        for alias in node.names
    }


def is_type_operand(node: ast.expr) -> bool:
    """A side of ``A | B`` that makes it a type union: None, a builtin type, or a subscripted generic."""
    if isinstance(node, ast.Constant):
        return node.value is None
    if isinstance(node, ast.Name):
        return node.id in TYPE_NAMES
    return isinstance(node, (ast.Subscript, ast.BinOp)) and (
        not isinstance(node, ast.BinOp) or isinstance(node.op, ast.BitOr)
    )


def is_type_union(node: ast.AST) -> bool:
    """``A | B`` where both sides are types (``flags | MASK`` of numbers is not), or any ``isinstance(x, A | B)``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("isinstance", "issubclass"):
        return len(node.args) == 2 and isinstance(node.args[1], ast.BinOp) and isinstance(node.args[1].op, ast.BitOr)
    return (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.BitOr)
        and is_type_operand(node.left)
        and is_type_operand(node.right)
    )


def runtime_type_expressions(path: Path) -> Iterator[str]:
    """``path:line: what`` for each type expression Python 3.8 would evaluate and fail on."""
    tree = ast.parse(path.read_text(), str(path))
    skip, generic = annotation_nodes(tree), BUILTIN_GENERICS | abc_names(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in generic:
            yield f"{path}:{node.lineno}: {node.value.id}[...] is evaluated at run time (3.9+); use typing's"
        elif is_type_union(node):
            yield f"{path}:{node.lineno}: X | Y of types is evaluated at run time (3.10+); use Optional/Union/a tuple"


def python_files(paths: list[str]) -> Iterator[Path]:
    """Every .py file under ``paths`` (files as given)."""
    for name in paths:
        path = Path(name)
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def main(argv: list[str]) -> int:
    paths = argv or [str(ROOT / name) for name in DEVICE_SIDE]
    proc = subprocess.run(vermin_command(paths), capture_output=True, text=True)
    runtime = list(dict.fromkeys(line for path in python_files(paths) for line in runtime_type_expressions(path)))
    if proc.returncode != 0 or runtime:
        sys.stdout.write(proc.stdout + proc.stderr if proc.returncode else "")
        print("\n".join(runtime))
        print(f"error: the device side must run on Python {FLOOR} (JetPack 5): see the lines above", file=sys.stderr)
        return 1
    print(f"{' '.join(argv) or 'the device side and its tests'}: nothing newer than Python {FLOOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
