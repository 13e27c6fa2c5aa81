#!/usr/bin/env python3
"""Check what ``agent/engines/tensorrt.py`` calls on TensorRT against the real Python bindings, by introspection.

    python scripts/check_tensorrt_api.py --list   # what the backend reaches on TensorRT (AST only; no TensorRT)
    python scripts/check_tensorrt_api.py          # ... and check it against the TensorRT importable here
    make check-tensorrt-api                       # one venv per version under build/trt/, then the check in each

**What is listed.** An AST walk of the backend with a small flow-insensitive
type inference: ``import tensorrt as trt`` (and ``self._trt``, parameters
fed from it) is the module; ``trt.Builder(...)`` is a ``Builder``; a method's
result has the type :data:`RETURNS` names (``create_network`` → an
``INetworkDefinition``); parameters of the backend's own functions take the
types their call sites pass (failing that, :data:`NAME_HINTS`: ``engine`` is
an ``ICudaEngine``); ``self.x`` takes what is assigned to it. Every attribute
reached on the module, on a TensorRT class (enum members,
``trt.ILogger.Severity.WARNING``), on an instance, or overridden in a
subclass of a TensorRT class (``ILogger.log``, ``IProgressMonitor.*``) is a
*use*. Nothing escapes silently: an attribute reached on a TensorRT value
whose class the tables do not name (a result absent from :data:`RETURNS`),
a ``getattr`` with a computed name not in :data:`DYNAMIC`, a TensorRT value
handed to code outside the file (not in :data:`HANDOFFS`), ``tensorrt``
imported other than by ``import``, or a public method of a TensorRT subclass
not declared in :data:`SUBCLASSES` fails the run, ``--list`` included, so a
new call must be attributed before it passes.

**Version paths.** Every use is checked against every version, unless a
marker restricts it: a comment ``# trt-api: <10`` (or ``>=10``, several
joined by commas) on the first line of a statement covers that statement
(a ``def`` line: the whole function). A use the code guards itself
(``getattr(x, "a", default)``, ``members["A"]`` after ``"A" in members``,
the ``BuilderFlag`` names :func:`precision_plan` tests before use) is
*optional*: reported as absent, not failed, except on the path a marker
names, where it must exist. ``hasattr`` probes are listed for information.

**What is checked**, for the TensorRT this interpreter imports: that each
class and attribute exists; that its kind fits the use (a property is read
or, when assigned, has a setter; a method is called; an enum member is a
member); that each call's positional count and keyword names fit one of the
overloads in the pybind11 docstring (``name(self: T, a: int, b: bool = ...)
-> R``); that overrides take as many arguments as TensorRT passes and
return what it expects; that every :data:`RETURNS` entry the inference
relied on matches the return annotation the bindings declare; and a few
behaviours the backend relies on that work without the library (severity
numbers, enums as ints, tuples as ``Dims``, ``str(ParserError)``,
``nptype``): see :func:`value_checks`.

**Libraries.** The pybind11 module (``tensorrt_bindings``) links
``libnvinfer``, ``libnvonnxparser`` and ``libnvinfer_plugin``. On PyPI the
bindings are real wheels (about 1 MB), but ``tensorrt-*-libs`` are stub
sdists that fetch the multi-GB libraries from NVIDIA's own index at install
time. Where those libraries are not installed, this script builds empty
stand-ins (C functions that abort if ever called) for the handful of C entry
points the bindings import (``createInferBuilder_INTERNAL`` ...: the API is
C++ virtual interfaces reached through them), preloads them and imports the
real bindings: classes, methods, properties, enums and docstrings all live
in the bindings, and introspection never calls into the library. Building
the stand-ins needs ``cc`` and binutils' ``nm``/``readelf``. The module the
backend imports, ``tensorrt``, is the metapackage's ``from tensorrt_bindings
import *``; where only the bindings are installed it is emulated the same way.
"""

from __future__ import annotations

import argparse
import ast
import ctypes
import importlib
import importlib.util
import inspect
import io
import re
import subprocess
import sys
import tokenize
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only (never evaluated): the script also runs on JetPack 5's Python 3.8
    Spec = tuple[tuple[str, tuple[int, ...]], ...]
    Envs = list[dict[str, "T | None"]]

ROOT = Path(__file__).resolve().parents[1]
BACKEND = ROOT / "agent" / "engines" / "tensorrt.py"
MODULE = "tensorrt"

# What a TensorRT method or property returns, where the backend goes on to reach attributes of (or pass around)
# the result. A class name is a TensorRT class; None is a plain Python value (str, int, a numpy type).
# Checked against the bindings' return annotations, so the inference built on it cannot drift.
RETURNS: dict[tuple[str, str], str | None] = {
    ("Builder", "create_network"): "INetworkDefinition",
    ("Builder", "create_builder_config"): "IBuilderConfig",
    ("Builder", "create_optimization_profile"): "IOptimizationProfile",
    ("Builder", "build_serialized_network"): "IHostMemory",
    ("INetworkDefinition", "get_input"): "ITensor",
    ("INetworkDefinition", "get_output"): "ITensor",
    ("INetworkDefinition", "get_layer"): "ILayer",
    ("ITensor", "name"): None,
    ("IBuilderConfig", "create_timing_cache"): "ITimingCache",
    ("IBuilderConfig", "get_timing_cache"): "ITimingCache",
    ("ITimingCache", "serialize"): "IHostMemory",
    ("Runtime", "deserialize_cuda_engine"): "ICudaEngine",
    ("ICudaEngine", "create_execution_context"): "IExecutionContext",
    ("ICudaEngine", "get_tensor_name"): None,
    (MODULE, "nptype"): None,
}

# Parameters that no call site in the file types (a function called from elsewhere, or not yet called) are typed
# by their name, when it is one of the backend's names for a TensorRT object.
NAME_HINTS: dict[str, str] = {
    "trt": MODULE,
    "builder": "Builder",
    "network": "INetworkDefinition",
    "config": "IBuilderConfig",
    "profile": "IOptimizationProfile",
    "parser": "OnnxParser",
    "runtime": "Runtime",
    "engine": "ICudaEngine",
    "context": "IExecutionContext",
    "cache": "ITimingCache",
}

# getattr(<TensorRT class>, <computed name>): (function it happens in, class) → the function whose ALL_CAPS string
# constants are the names it can take. Such uses are optional: precision_plan() tests each name before it is used.
DYNAMIC: dict[tuple[str, str], str] = {
    ("TensorRTBackend._configure", "BuilderFlag"): "precision_plan",
}

# Subclasses of TensorRT classes: the methods TensorRT calls (overrides, checked against the base's signature) and
# the public methods that are the backend's own (checked *not* to shadow a TensorRT method). Private and dunder
# methods are the backend's own.
SUBCLASSES: dict[str, dict[str, frozenset[str]]] = {
    "ILogger": {"overrides": frozenset({"log"}), "own": frozenset({"capture"})},
    "IProgressMonitor": {
        "overrides": frozenset({"phase_start", "step_complete", "phase_finish"}),
        "own": frozenset(),
    },
}

# Builtins that return a plain value whatever they are given. Any other callable from outside this file that is
# handed a TensorRT value must be in HANDOFFS: it might use the value (or hand it back) where the walk cannot see.
PLAIN_CALLS = frozenset(
    {"int", "str", "bool", "float", "len", "repr", "range", "isinstance", "issubclass", "print", "id", "hash", "format"}
)
# Callables outside this file that the backend hands a TensorRT value to, and why the check need not follow it
# there. Any other hand-off fails the walk: the value would be used where this check cannot see.
HANDOFFS: dict[str, str] = {
    "fh.write": "IHostMemory as a buffer (how NVIDIA's samples write an engine or a timing cache)",
    "set": "the names of an enum's __members__ (BuilderFlag), plain strings",
}
PLAIN_MODULE_ATTRS = frozenset({"__version__"})  # module attributes that are plain values

MARKER = re.compile(r"#\s*trt-api:\s*(.*?)\s*$")
SPEC = re.compile(r"^(<=|>=|==|!=|<|>)\s*(\d+(?:\.\d+)*)$")
ALL_CAPS = re.compile(r"^[A-Z][A-Z0-9_]*$")


# zip(strict=) is Python 3.10+, and this script also runs on 3.8 (JetPack 5's TensorRT 8.5): hence the B905 noqas.

# --------------------------------------------------------------------------- types of the inference


@dataclass(frozen=True)
class T:
    """A value's type in the inference.

    ``module`` (tensorrt); ``cls``/``inst``: a TensorRT class (dotted when nested, ``ILogger.Severity``) or an
    instance of it (an enum member is an instance of its enum); ``members``: an enum's ``__members__``;
    ``trtfunc``/``unbound``: a module function or a method read off a class; ``opaque``: derived from TensorRT,
    class unknown (fine to pass around, not to reach into); ``conflict``: two TensorRT types joined;
    ``func``/``pycls``/``py``/``method``: the backend's own function, class, instance, bound method (a class
    deriving from a TensorRT class is one of these too: see ``Cls.trt_base``); ``dict``: a container of ``elem``.
    """

    kind: str
    name: str = ""
    elem: T | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else self.kind


TRT_KINDS = frozenset({"module", "cls", "inst", "members", "trtfunc", "unbound", "opaque", "conflict"})


def join(a: T | None, b: T | None) -> T | None:
    """Flow-insensitive: a name's type is the join of everything assigned to it (``None``, plain, joins away)."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    if a.kind == "dict" and b.kind == "dict":
        return T("dict", elem=join(a.elem, b.elem))
    if a.kind == "opaque":
        return a
    if b.kind == "opaque":
        return b
    return T("conflict", f"{a} | {b}")


def index_of(node: ast.Subscript) -> ast.expr:
    """A subscript's index: Python 3.8 wraps it in ``ast.Index``."""
    index = node.slice
    wrapper = getattr(ast, "Index", None)
    return index.value if wrapper is not None and isinstance(index, wrapper) else index  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- uses and the walk


@dataclass
class Use:
    """One attribute of TensorRT the backend reaches, where, how, and on which versions' path."""

    owner: str  # "tensorrt" for the module, else the (dotted) class name
    attr: str
    kind: str  # read | member | call | write | subclass | override | own | probe
    line: int
    function: str
    spec: Spec = ()
    optional: bool = False  # the code guards it (getattr default, a probe first): absent is not a failure
    explicit_self: bool = False  # called through the class: the first positional is self
    npos: int = 0
    keywords: tuple[str, ...] = ()
    starred: bool = False
    params: tuple[str, ...] = ()  # an override's parameters (without self)
    returns: str | None = None  # an override's return annotation


@dataclass
class Func:
    qualname: str
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Module
    parent: Func | None
    owner: Cls | None  # the class it is a method of
    defs: dict[str, Func | Cls] = field(default_factory=dict)  # functions and classes defined in its body
    env: dict[str, T | None] = field(default_factory=dict)
    globals_: set[str] = field(default_factory=set)
    nonlocals: set[str] = field(default_factory=set)
    returns: T | None = None

    @property
    def params(self) -> list[str]:
        if isinstance(self.node, ast.Module):
            return []
        a = self.node.args
        return [p.arg for p in (*a.posonlyargs, *a.args)]

    def decorated(self, name: str) -> bool:
        return not isinstance(self.node, ast.Module) and any(
            isinstance(d, ast.Name) and d.id == name for d in self.node.decorator_list
        )


@dataclass
class Cls:
    qualname: str
    node: ast.ClassDef
    scope: Func
    methods: dict[str, Func] = field(default_factory=dict)
    attrs: dict[str, T | None] = field(default_factory=dict)
    trt_base: str | None = None  # set when it derives from a TensorRT class


class Scratch(dict):  # type: ignore[type-arg]
    """A comprehension's or lambda's names: made anew on each pass, so changes to them do not count."""


class Walk:
    """The inference over one backend source, and the uses of TensorRT it finds."""

    def __init__(self, source: str, filename: str = "<backend>") -> None:
        self.filename = filename
        self._lines = [line + b"\n" for line in source.encode("utf-8").split(b"\n")]  # as ast counts lines
        self.tree = ast.parse(source, filename)
        self.uses: list[Use] = []
        self.errors: list[str] = []
        self.markers = self._markers(source)
        self.module = Func("<module>", self.tree, None, None)
        self.funcs: list[Func] = [self.module]
        self.classes: list[Cls] = []
        self._collect(self.tree.body, self.module, None)
        self.spans = self._marker_spans()
        self.recording = False
        self.changed = False
        self._probes: set[tuple[str, str, str]] = set()
        self._settle()
        for func in self.funcs:  # parameters nothing typed: by name (NAME_HINTS), then settle again
            for param in func.params:
                hint = NAME_HINTS.get(param)
                if hint is not None and func.env.get(param) is None:
                    func.env[param] = T("module") if hint == MODULE else T("inst", hint)
        self._settle()
        self.recording = True
        self._pass()
        for u in self.uses:
            if u.kind == "member" and not u.spec and (u.function, u.owner, u.attr) in self._probes:
                u.optional = True
        self._dedupe()

    def _settle(self) -> None:
        for _ in range(30):
            self.changed = False
            self._pass()
            if not self.changed:
                return
        self.errors.append("the type inference did not settle in 30 passes")

    # ----------------------------------------------------------------------- structure and markers

    def _collect(self, body: list[ast.stmt], scope: Func, owner: Cls | None) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                prefix = owner.qualname if owner else ("" if scope is self.module else scope.qualname)
                func = Func(f"{prefix}.{node.name}" if prefix else node.name, node, scope, owner)
                a = node.args
                every = [*a.posonlyargs, *a.args, *a.kwonlyargs, *(x for x in (a.vararg, a.kwarg) if x is not None)]
                func.env.update({p.arg: None for p in every})  # parameters shadow enclosing names from the start
                self.funcs.append(func)
                if owner is not None:
                    owner.methods[node.name] = func
                else:
                    scope.defs[node.name] = func
                self._collect(node.body, func, None)
            elif isinstance(node, ast.ClassDef):
                prefix = "" if scope is self.module else scope.qualname
                cls = Cls(f"{prefix}.{node.name}" if prefix else node.name, node, scope)
                for sub in ast.walk(node):  # every self.x its methods assign is the class's own attribute
                    stored = isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store)
                    if stored and isinstance(sub.value, ast.Name) and sub.value.id == "self":
                        cls.attrs.setdefault(sub.attr, None)
                self.classes.append(cls)
                scope.defs[node.name] = cls
                self._collect(node.body, scope, cls)
            else:
                for name in ("body", "orelse", "finalbody"):
                    nested = getattr(node, name, None)
                    if isinstance(nested, list):
                        self._collect([n for n in nested if isinstance(n, ast.stmt)], scope, owner)
                for handler in getattr(node, "handlers", []):
                    self._collect(handler.body, scope, owner)

    def _markers(self, source: str) -> dict[int, Spec]:
        found = {}
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            m = MARKER.search(tok.string) if tok.type == tokenize.COMMENT else None
            if not m:
                continue
            spec = []
            for part in m.group(1).split(","):
                s = SPEC.match(part.strip())
                if not s:
                    self.errors.append(f"{self.filename}:{tok.start[0]}: bad trt-api marker {tok.string!r}")
                    continue
                spec.append((s.group(1), tuple(int(x) for x in s.group(2).split("."))))
            found[tok.start[0]] = tuple(spec)
        return found

    def _marker_spans(self) -> list[tuple[int, int, Spec]]:
        starts: dict[int, ast.stmt] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.stmt) and node.lineno in self.markers:
                known = starts.get(node.lineno)
                if known is None or (node.end_lineno or 0) < (known.end_lineno or 0):
                    starts[node.lineno] = node  # the innermost statement starting on the marker's line
        spans = []
        for line, spec in self.markers.items():
            node = starts.get(line)
            if node is None:
                self.errors.append(f"{self.filename}:{line}: a trt-api marker must be on a statement's first line")
                continue
            spans.append((node.lineno, node.end_lineno or node.lineno, spec))
        return spans

    def spec_at(self, line: int) -> Spec:
        return tuple(part for start, end, spec in self.spans if start <= line <= end for part in spec)

    def text(self, node: ast.AST) -> str:
        """The source of ``node``, on one line (``ast.unparse`` is 3.9+; offsets are in UTF-8 bytes)."""
        first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1  # type: ignore[attr-defined]
        start, end = node.col_offset, node.end_col_offset  # type: ignore[attr-defined]
        if first == last:
            chunk = self._lines[first][start:end]
        else:
            chunk = b"".join([self._lines[first][start:], *self._lines[first + 1 : last], self._lines[last][:end]])
        return " ".join(chunk.decode("utf-8", "replace").split())

    # ----------------------------------------------------------------------- recording

    def use(self, owner: str, attr: str, kind: str, node: ast.AST, func: Func, **extra: Any) -> None:
        if self.recording:
            line = getattr(node, "lineno", 0)
            spec = self.spec_at(line)
            if spec:  # a guard serves feature detection across versions; on the path a marker names, it must exist
                extra["optional"] = False
            self.uses.append(Use(owner, attr, kind, line, func.qualname, spec, **extra))
            if kind == "probe":
                self._probes.add((func.qualname, owner, attr))

    def error(self, node: ast.AST, message: str) -> None:
        if self.recording:
            self.errors.append(f"{self.filename}:{getattr(node, 'lineno', 0)}: {message}")

    def _dedupe(self) -> None:
        seen: set[tuple[Any, ...]] = set()
        unique = []
        for u in self.uses:
            key = (u.owner, u.attr, u.kind, u.line, u.npos, u.keywords, u.explicit_self, u.optional)
            if key not in seen:
                seen.add(key)
                unique.append(u)
        self.uses = sorted(unique, key=lambda u: (u.owner, u.attr, u.line))
        self.errors = list(dict.fromkeys(self.errors))

    # ----------------------------------------------------------------------- type helpers

    def _cls(self, qualname: str) -> Cls | None:
        return next((c for c in self.classes if c.qualname == qualname), None)

    def _func(self, qualname: str) -> Func | None:
        return next((f for f in self.funcs if f.qualname == qualname), None)

    def ours(self, t: T | None) -> Cls | None:
        """The backend's class behind ``t`` (its instance or the class itself), if it is one."""
        return self._cls(t.name) if t is not None and t.kind in ("py", "pycls") else None

    def trtish(self, t: T | None) -> bool:
        if t is None:
            return False
        if t.kind in TRT_KINDS:
            return True
        cls = self.ours(t)
        return cls is not None and cls.trt_base is not None

    def elem_of(self, t: T | None) -> T | None:
        """What iterating over (or indexing) a value of type ``t`` yields."""
        if t is not None and t.kind == "dict":
            return t.elem
        return T("opaque", f"element of {t}") if self.trtish(t) else None

    def opaque_if(self, values: Iterable[T | None], what: str) -> T | None:
        return T("opaque", what) if any(self.trtish(v) for v in values) else None

    def _set(self, store: dict[str, T | None], key: str, value: T | None) -> None:
        new = join(store.get(key), value)
        if key not in store or new != store[key]:
            store[key] = new
            self.changed = self.changed or not isinstance(store, Scratch)

    # ----------------------------------------------------------------------- the passes

    def _pass(self) -> None:
        for cls in self.classes:
            self._class_header(cls)
        for func in self.funcs:
            if func.owner is not None and func.params and not func.decorated("staticmethod"):
                first = func.params[0]
                self_type = T("pycls" if func.decorated("classmethod") else "py", func.owner.qualname)
                if func.env.get(first) != self_type:
                    func.env[first] = self_type
                    self.changed = True
            self._block(func.node.body, func, [func.env])

    def _class_header(self, cls: Cls) -> None:
        scope = cls.scope
        for base in cls.node.bases:
            bt = self.expr(base, scope, [scope.env], ctx="subclass")
            if bt is not None and bt.kind == "cls":
                cls.trt_base = bt.name
            elif self.trtish(bt):
                self.error(base, f"class {cls.qualname} derives from a TensorRT value of unknown class ({bt})")
        for deco in cls.node.decorator_list:
            self.expr(deco, scope, [scope.env])
        if cls.trt_base is None:
            return
        table = SUBCLASSES.get(cls.trt_base)
        if table is None:
            self.error(cls.node, f"{cls.qualname} subclasses TensorRT's {cls.trt_base}, which SUBCLASSES does not list")
            return
        for name, method in cls.methods.items():
            node = method.node
            assert not isinstance(node, ast.Module)
            if name in table["overrides"]:
                returns = self.text(node.returns) if node.returns is not None else None
                self.use(cls.trt_base, name, "override", node, method, params=tuple(method.params[1:]), returns=returns)
            elif name in table["own"]:
                self.use(cls.trt_base, name, "own", node, method)
            elif not name.startswith("_"):
                self.error(
                    node,
                    f"{cls.qualname}.{name}: a public method of a {cls.trt_base} subclass; declare it in SUBCLASSES "
                    "as an override (TensorRT calls it) or as the backend's own",
                )
        for name in cls.attrs:
            if not name.startswith("_"):
                self.error(
                    cls.node,
                    f"{cls.qualname}.{name}: public attributes of a TensorRT subclass may shadow "
                    "TensorRT's; use a private name",
                )

    # ----------------------------------------------------------------------- names

    def _lookup(self, name: str, func: Func, envs: Envs) -> T | None:
        if name not in func.globals_:
            for env in reversed(envs):
                if name in env:
                    return env[name]
        scope: Func | None = func if name not in func.globals_ else self.module
        while scope is not None:
            if name in scope.env and scope is not func:
                return scope.env[name]
            if name in scope.defs:
                d = scope.defs[name]
                return T("func", d.qualname) if isinstance(d, Func) else T("pycls", d.qualname)
            scope = scope.parent
        return None

    def _holder(self, name: str, func: Func, envs: Envs) -> dict[str, T | None] | None:
        if name not in func.globals_:
            for env in reversed(envs):
                if name in env:
                    return env
        scope: Func | None = func.parent
        while scope is not None:
            if name in scope.env:
                return scope.env
            scope = scope.parent
        return None

    def _store_name(self, name: str, value: T | None, func: Func, envs: Envs) -> None:
        if name in func.globals_:
            store = self.module.env
        elif name in func.nonlocals:
            store = self._holder(name, func, []) or envs[-1]
        else:
            store = envs[-1]
        self._set(store, name, value)

    # ----------------------------------------------------------------------- statements

    def _block(self, body: list[ast.stmt], func: Func, envs: Envs) -> None:
        for stmt in body:
            self._stmt(stmt, func, envs)

    def _stmt(self, node: ast.stmt, func: Func, envs: Envs) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for deco in node.decorator_list:
                self.expr(deco, func, envs)
            for default in (*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)):
                self.expr(default, func, envs)
        elif isinstance(node, ast.ClassDef):
            pass  # bases and decorators: _class_header; methods: walked as functions
        elif isinstance(node, ast.Global):
            func.globals_.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            func.nonlocals.update(node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == MODULE:
                    if alias.name != MODULE:
                        self.error(node, f"import {alias.name}: only 'import tensorrt [as x]' is understood")
                    self._store_name(alias.asname or MODULE, T("module"), func, envs)
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] == MODULE:
                for alias in node.names:
                    self._store_name(
                        alias.asname or alias.name, self._reach(T("module"), alias.name, node, func, "read"), func, envs
                    )
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                self._assign(target, node.value, func, envs)
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self._assign(node.target, node.value, func, envs)
        elif isinstance(node, ast.AugAssign):
            value = self.opaque_if([self.expr(node.value, func, envs)], "augmented assignment")
            if isinstance(node.target, ast.Name):
                self._store_name(node.target.id, value, func, envs)
            else:
                self._assign_type(node.target, value, func, envs)
        elif isinstance(node, ast.Return):
            if node.value is not None:
                new = join(func.returns, self.expr(node.value, func, envs))
                if new != func.returns:
                    func.returns = new
                    self.changed = True
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self._assign_type(node.target, self.elem_of(self.expr(node.iter, func, envs)), func, envs)
            self._block(node.body, func, envs)
            self._block(node.orelse, func, envs)
        elif isinstance(node, (ast.If, ast.While)):
            self.expr(node.test, func, envs)
            self._block(node.body, func, envs)
            self._block(node.orelse, func, envs)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                t = self.expr(item.context_expr, func, envs)
                if item.optional_vars is not None:
                    # TensorRT's objects enter as themselves (the bindings' common_enter returns this)
                    entered = t if t is not None and t.kind == "inst" else self.opaque_if([t], f"with {t}")
                    self._assign_type(item.optional_vars, entered, func, envs)
            self._block(node.body, func, envs)
        elif isinstance(node, ast.Try):
            self._block(node.body, func, envs)
            for handler in node.handlers:
                if handler.type is not None:
                    self.expr(handler.type, func, envs)
                if handler.name:
                    self._store_name(handler.name, None, func, envs)
                self._block(handler.body, func, envs)
            self._block(node.orelse, func, envs)
            self._block(node.finalbody, func, envs)
        elif isinstance(node, ast.Delete):
            pass  # del x, y: nothing is reached
        else:  # expression statements, raise, assert, and anything newer: every expression and nested block
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.expr(child, func, envs)
            for name in ("body", "orelse", "finalbody"):
                nested = getattr(node, name, None)
                if isinstance(nested, list):
                    self._block([n for n in nested if isinstance(n, ast.stmt)], func, envs)

    def _assign(self, target: ast.expr, value: ast.expr, func: Func, envs: Envs) -> None:
        pairwise = isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List))
        if (
            pairwise
            and len(target.elts) == len(value.elts)
            and not any(isinstance(e, ast.Starred) for e in target.elts)
        ):
            for t, v in zip(target.elts, value.elts):  # noqa: B905
                self._assign(t, v, func, envs)
            return
        self._assign_type(target, self.expr(value, func, envs), func, envs)

    def _assign_type(self, target: ast.expr, value: T | None, func: Func, envs: Envs) -> None:
        if isinstance(target, ast.Name):
            self._store_name(target.id, value, func, envs)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._assign_type(elt.value if isinstance(elt, ast.Starred) else elt, self.elem_of(value), func, envs)
        elif isinstance(target, ast.Attribute):
            owner = self.expr(target.value, func, envs)
            cls = self.ours(owner)
            if cls is not None and target.attr in cls.attrs:
                self._set(cls.attrs, target.attr, value)
            elif cls is not None and cls.trt_base is not None:
                base = T("inst" if owner is not None and owner.kind == "py" else "cls", cls.trt_base)
                self._reach(base, target.attr, target, func, "write")
            elif owner is not None and self.trtish(owner):
                self._reach(owner, target.attr, target, func, "write")
        elif isinstance(target, ast.Subscript):
            self.expr(index_of(target), func, envs)
            if isinstance(target.value, ast.Name):
                name = target.value.id
                current = self._lookup(name, func, envs)
                holder = self._holder(name, func, envs)
                if holder is not None and (current is None or current.kind == "dict"):
                    self._set(holder, name, T("dict", elem=join(current.elem if current else None, value)))
                    return
            owner = self.expr(target.value, func, envs)
            if self.trtish(owner):
                self.error(target, f"item assignment into a TensorRT value ({owner}) is not understood by this check")

    # ----------------------------------------------------------------------- expressions

    def expr(self, node: ast.expr, func: Func, envs: Envs, ctx: str = "read") -> T | None:
        if isinstance(node, ast.Name):
            return self._lookup(node.id, func, envs)
        if isinstance(node, ast.Attribute):
            return self._attribute(self.expr(node.value, func, envs), node.attr, node, func, ctx)
        if isinstance(node, ast.Call):
            return self._call(node, func, envs)
        if isinstance(node, ast.Subscript):
            value = self.expr(node.value, func, envs)
            key = index_of(node)
            self.expr(key, func, envs)
            if value is not None and value.kind == "members":
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    self.use(value.name, key.value, "member", node, func)
                    return T("inst", value.name)
                self.error(node, f"{value.name}.__members__[<computed>]: name the member")
                return T("opaque", f"{value.name} member")
            return self.elem_of(value)
        if isinstance(node, ast.Compare):
            self.expr(node.left, func, envs)
            for op, right in zip(node.ops, node.comparators):  # noqa: B905
                rt = self.expr(right, func, envs)
                literal = isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)
                if isinstance(op, (ast.In, ast.NotIn)) and rt is not None and rt.kind == "members" and literal:
                    self.use(rt.name, node.left.value, "probe", node, func)  # type: ignore[attr-defined]
            return None
        if isinstance(node, ast.IfExp):
            self.expr(node.test, func, envs)
            return join(self.expr(node.body, func, envs), self.expr(node.orelse, func, envs))
        if isinstance(node, ast.BoolOp):
            result: T | None = None
            for v in node.values:
                result = join(result, self.expr(v, func, envs))
            return result
        if isinstance(node, ast.BinOp):
            return self.opaque_if([self.expr(node.left, func, envs), self.expr(node.right, func, envs)], "arithmetic")
        if isinstance(node, ast.UnaryOp):
            operand = self.expr(node.operand, func, envs)
            return None if isinstance(node.op, ast.Not) else self.opaque_if([operand], "arithmetic")
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return self.opaque_if([self.expr(e, func, envs) for e in node.elts], "container")
        if isinstance(node, ast.Dict):
            parts = [e for e in (*node.keys, *node.values) if e is not None]
            return self.opaque_if([self.expr(e, func, envs) for e in parts], "container")
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            inner = [*envs, Scratch()]
            for gen in node.generators:
                self._assign_type(gen.target, self.elem_of(self.expr(gen.iter, func, inner)), func, inner)
                for cond in gen.ifs:
                    self.expr(cond, func, inner)
            elts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            return self.opaque_if([self.expr(e, func, inner) for e in elts], "container")
        if isinstance(node, ast.Lambda):
            a = node.args
            self.expr(
                node.body, func, [*envs, Scratch({p.arg: None for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)})]
            )
            return None
        if isinstance(node, ast.NamedExpr):
            t = self.expr(node.value, func, envs)
            self._assign_type(node.target, t, func, envs)
            return t
        if isinstance(node, ast.Starred):
            return self.expr(node.value, func, envs)
        for child in ast.iter_child_nodes(node):  # f-strings, slices, await, yield, constants
            if isinstance(child, ast.expr):
                self.expr(child, func, envs)
        return None

    def _attribute(self, owner: T | None, attr: str, node: ast.AST, func: Func, ctx: str = "read") -> T | None:
        if owner is None:
            return None
        cls = self.ours(owner)
        if cls is not None:
            if attr in cls.methods:
                method = cls.methods[attr]
                if method.decorated("property") and owner.kind == "py":
                    return method.returns
                return T("method", f"{cls.qualname}.{attr}")
            if attr in cls.attrs:
                return cls.attrs[attr]
            if cls.trt_base is not None:  # not the backend's: TensorRT's, on the base class
                return self._reach(T("inst" if owner.kind == "py" else "cls", cls.trt_base), attr, node, func, ctx)
            return None
        if self.trtish(owner):
            return self._reach(owner, attr, node, func, ctx)
        return None

    def _reach(self, owner: T, attr: str, node: ast.AST, func: Func, kind: str, **extra: Any) -> T | None:
        """Record ``owner.attr`` (``kind``: read, call, write, subclass, probe) and return the result's type."""
        if owner.kind == "module":
            self.use(MODULE, attr, kind, node, func, **extra)
            if kind == "call":
                return T("inst", attr) if attr[:1].isupper() else self._returns(MODULE, attr)
            if attr in PLAIN_MODULE_ATTRS:
                return None
            return T("cls", attr) if attr[:1].isupper() else T("trtfunc", attr)
        if owner.kind == "cls":
            if attr == "__members__":
                self.use(owner.name, attr, kind, node, func, **extra)
                return T("members", owner.name)
            if ALL_CAPS.match(attr):  # an enum member
                self.use(owner.name, attr, "member" if kind == "read" else kind, node, func, **extra)
                return T("inst", owner.name)
            if attr[:1].isupper():  # a nested class (ILogger.Severity)
                self.use(owner.name, attr, kind, node, func, **extra)
                return T("inst" if kind == "call" else "cls", f"{owner.name}.{attr}")
            if kind == "call":
                extra["explicit_self"] = True  # Class.method(self, ...)
            self.use(owner.name, attr, kind, node, func, **extra)
            return self._returns(owner.name, attr) if kind == "call" else T("unbound", f"{owner.name}.{attr}")
        if owner.kind == "inst":
            self.use(owner.name, attr, kind, node, func, **extra)
            return None if kind == "write" else self._returns(owner.name, attr)
        self.error(
            node,
            f"'.{attr}' reached on a TensorRT value whose class is unknown ({owner}): name what returns it in RETURNS",
        )
        return T("opaque", f"{owner}.{attr}")

    def _returns(self, owner: str, attr: str) -> T | None:
        if (owner, attr) in RETURNS:
            name = RETURNS[(owner, attr)]
            return T("inst", name) if name else None
        return T("opaque", f"{owner}.{attr}")

    def _call(self, node: ast.Call, func: Func, envs: Envs) -> T | None:
        callee_node = node.func
        if isinstance(callee_node, ast.Name) and callee_node.id in ("hasattr", "getattr", "setattr", "delattr"):
            target = self.expr(node.args[0], func, envs) if node.args else None
            if self.trtish(target) and len(node.args) >= 2:
                for extra in node.args[2:]:
                    self.expr(extra, func, envs)
                assert target is not None
                return self._dynamic_attr(callee_node.id, target, node, func, envs)
        args = [self.expr(a, func, envs) for a in node.args]
        kwargs = {k.arg: self.expr(k.value, func, envs) for k in node.keywords}
        shape: dict[str, Any] = {
            "npos": sum(1 for a in node.args if not isinstance(a, ast.Starred)),
            "keywords": tuple(k.arg for k in node.keywords if k.arg is not None),
            "starred": any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords),
        }
        if isinstance(callee_node, ast.Attribute):
            owner = self.expr(callee_node.value, func, envs)
            cls = self.ours(owner)
            attr = callee_node.attr
            if cls is not None and attr in cls.methods:
                self._bind(cls.methods[attr], args, kwargs, skip_self=owner is not None and owner.kind == "py")
                return cls.methods[attr].returns
            if cls is not None and cls.trt_base is not None and attr not in cls.attrs:
                base = T("inst" if owner is not None and owner.kind == "py" else "cls", cls.trt_base)
                return self._reach(base, attr, callee_node, func, "call", **shape)
            if cls is None and owner is not None and self.trtish(owner):
                return self._reach(owner, attr, callee_node, func, "call", **shape)
            callee = self._attribute(owner, attr, callee_node, func)
        else:
            callee = self.expr(callee_node, func, envs)
        if callee is not None and callee.kind in ("func", "pycls", "dict", "method"):
            return self._call_type(callee, args, kwargs)
        if callee is not None and callee.kind == "conflict":
            self.error(node, f"calling a value of ambiguous type {callee}")
        if self.trtish(callee):
            return T("opaque", f"call of {callee}")
        if isinstance(callee_node, ast.Name) and callee_node.id in PLAIN_CALLS:
            return None
        self._check_import(node)
        if any(self.trtish(a) for a in (*args, *kwargs.values())):
            outside = self.text(callee_node)
            if outside in HANDOFFS:
                return None
            self.error(
                node,
                f"a TensorRT value is handed to {outside}(), outside what this check can follow; "
                "keep TensorRT calls in this file, or list it in HANDOFFS if it only takes the value as data",
            )
            return T("opaque", f"{outside}(<TensorRT value>)")
        return None

    def _check_import(self, node: ast.Call) -> None:
        """``importlib.import_module("tensorrt")`` and ``__import__`` would hide the module from the walk."""
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in ("import_module", "__import__") and node.args:
            arg = node.args[0]
            if not isinstance(arg, ast.Constant) or str(arg.value).split(".")[0] == MODULE:
                self.error(node, f"{name}(...) of tensorrt: use 'import tensorrt as trt', which this check follows")

    def _call_type(self, callee: T, args: list[T | None], kwargs: dict[str | None, T | None]) -> T | None:
        if callee.kind == "dict":
            return self._call_type(callee.elem, args, kwargs) if callee.elem is not None else None
        if callee.kind == "pycls":
            cls = self._cls(callee.name)
            if cls is not None and "__init__" in cls.methods:
                self._bind(cls.methods["__init__"], args, kwargs, skip_self=True)
            return T("py", callee.name)
        target = self._func(callee.name)
        if target is None:
            return None
        self._bind(target, args, kwargs, skip_self=callee.kind == "method")
        return target.returns

    def _bind(self, target: Func, args: list[T | None], kwargs: dict[str | None, T | None], skip_self: bool) -> None:
        params = target.params[1:] if skip_self else target.params
        for name, value in zip(params, args):  # noqa: B905 (more parameters than arguments)
            self._set(target.env, name, value)
        for name, value in kwargs.items():
            if name is not None and name in target.env:
                self._set(target.env, name, value)

    def _dynamic_attr(self, builtin: str, target: T, node: ast.Call, func: Func, envs: Envs) -> T | None:
        name_node = node.args[1]
        literal = name_node.value if isinstance(name_node, ast.Constant) and isinstance(name_node.value, str) else None
        if literal is None:
            self.expr(name_node, func, envs)
        if builtin in ("setattr", "delattr"):
            self.error(node, f"{builtin}() on a TensorRT value is not understood by this check")
            return None
        if literal is not None:
            if builtin == "hasattr":
                self._reach(target, literal, node, func, "probe")
                return None
            return self._reach(target, literal, node, func, "read", optional=len(node.args) > 2)
        source = DYNAMIC.get((func.qualname, target.name)) if builtin == "getattr" and target.kind == "cls" else None
        if source is None:
            self.error(node, f"{builtin}({target}, <computed name>) in {func.qualname}: list its names in DYNAMIC")
            return T("opaque", "getattr")
        names = self.constants_in(source)
        if not names:
            self.error(node, f"DYNAMIC takes {target.name} names from {source}, which has no ALL_CAPS strings")
        for name in names:
            self._reach(target, name, node, func, "read", optional=True)
        return T("inst", target.name)

    def constants_in(self, function: str) -> list[str]:
        f = self._func(function)
        if f is None:
            return []
        return sorted(
            {
                n.value
                for n in ast.walk(f.node)
                if isinstance(n, ast.Constant) and isinstance(n.value, str) and ALL_CAPS.match(n.value)
            }
        )


def walk(path: Path) -> Walk:
    try:
        name = str(path.relative_to(ROOT))
    except ValueError:
        name = str(path)
    return Walk(path.read_text(encoding="utf-8"), name)


# --------------------------------------------------------------------------- versions


def spec_text(spec: Iterable[tuple[str, tuple[int, ...]]]) -> str:
    parts = [f"{op}{'.'.join(map(str, v))}" for op, v in spec]
    return ",".join(parts) or "all"


def applies(spec: Iterable[tuple[str, tuple[int, ...]]], version: tuple[int, ...]) -> bool:
    for op, bound in spec:
        v = version[: len(bound)]
        ok = {
            "<": v < bound,
            "<=": v <= bound,
            ">": v > bound,
            ">=": v >= bound,
            "==": v == bound,
            "!=": v != bound,
        }[op]
        if not ok:
            return False
    return True


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3]) or (0,)


# --------------------------------------------------------------------------- importing the bindings


def _bindings_so() -> Path:
    spec = importlib.util.find_spec("tensorrt_bindings")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("no tensorrt_bindings package in this interpreter (pip install tensorrt-cu12-bindings==X)")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("tensorrt*.so"))
        if found:
            return found[0]
    raise SystemExit("tensorrt_bindings has no tensorrt*.so")


def build_stubs(so: Path, folder: Path) -> list[Path]:
    """Stand-ins for the TensorRT libraries ``so`` links: its undefined, unversioned C symbols, each aborting."""
    needed = re.findall(
        r"\(NEEDED\)\s+Shared library: \[(.+?)\]",
        subprocess.run(["readelf", "-dW", str(so)], check=True, capture_output=True, text=True).stdout,
    )
    libs = [n for n in needed if n.startswith("libnv")]
    symbols = []
    for line in subprocess.run(
        ["nm", "-D", "--undefined-only", str(so)], check=True, capture_output=True, text=True
    ).stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U" and "@" not in parts[1] and not parts[1].startswith(("Py", "_Py")):
            symbols.append(parts[1])
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "stubs.c"
    body = [
        "#include <stdio.h>",
        "#include <stdlib.h>",
        "static void called(const char *name) {",
        '    fprintf(stderr, "TensorRT stub library: %s called; only introspection is possible\\n", name);',
        "    abort();",
        "}",
    ]
    body += [f'void *{s}(void) {{ called("{s}"); return 0; }}' for s in symbols]
    source.write_text("\n".join(body) + "\n")
    empty = folder / "empty.c"
    empty.write_text("/* a stand-in: the symbols are in the first stub library */\n")
    built = []
    for i, lib in enumerate(libs):
        out = folder / lib
        src = source if i == 0 else empty
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(out), f"-Wl,-soname,{lib}", str(src)], check=True)
        built.append(out)
    return built


def import_tensorrt(stub_dir: Path | None) -> tuple[types.ModuleType, str]:
    """The ``tensorrt`` module and how it was loaded (real libraries, or stand-ins)."""
    try:
        return importlib.import_module(MODULE), "real libraries"
    except ImportError as exc:
        if "tensorrt_bindings" not in str(exc) and "libnv" not in str(exc) and getattr(exc, "name", "") != MODULE:
            raise
    try:
        importlib.import_module("tensorrt_bindings")
        how = "real libraries; tensorrt emulated over tensorrt_bindings"
    except ImportError as exc:
        if "libnv" not in str(exc):
            raise
        folder = stub_dir or Path(sys.prefix) / "trt-stubs"
        for lib in build_stubs(_bindings_so(), folder):
            ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
        importlib.import_module("tensorrt_bindings")
        how = f"real bindings over stand-in libraries in {folder}, TensorRT's own not being installed ({exc})"
    module = types.ModuleType(MODULE)  # what the tensorrt metapackage's __init__ is
    exec("from tensorrt_bindings import *\nfrom tensorrt_bindings import __version__\n", module.__dict__)
    sys.modules[MODULE] = module
    return module, how


# --------------------------------------------------------------------------- docstring signatures


@dataclass
class Signature:
    params: list[tuple[str, bool]]  # (name, has default), self included
    returns: str
    varargs: bool = False
    text: str = ""


def _split_top(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in text:
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def parse_doc_signatures(name: str, doc: str | None) -> list[Signature]:
    """Every ``name(a: T, b: U = d) -> R`` line of a pybind11 docstring (one per overload)."""
    sigs = []
    for line in (doc or "").splitlines():
        m = re.match(rf"^\s*(?:\d+\.\s*)?{re.escape(name)}\((.*)\)\s*->\s*(.+?)\s*$", line)
        if not m or m.group(1).strip() in ("*args, **kwargs",):
            continue
        params, varargs = [], False
        for part in _split_top(m.group(1)):
            if part.startswith("*"):
                varargs = True
                continue
            pname = part.split(":", 1)[0].split("=", 1)[0].strip()
            params.append((pname, "=" in part))
        sigs.append(Signature(params, m.group(2), varargs, line.strip()))
    return sigs


def python_signature(obj: Any) -> list[Signature]:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    params, varargs = [], False
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            varargs = True
            continue
        params.append((p.name, p.default is not p.empty))
    returns = "" if sig.return_annotation is sig.empty else str(sig.return_annotation)
    return [Signature(params, returns, varargs, str(sig))]


def fits(sig: Signature, npos: int, keywords: tuple[str, ...]) -> bool:
    if sig.varargs:
        return True
    params = sig.params
    if npos > len(params):
        return False
    rest = params[npos:]
    names = {n for n, _ in rest}
    if any(k not in names for k in keywords):
        return False
    return all(has_default or n in keywords for n, has_default in rest)


def short_type(annotation: str) -> str:
    """``tensorrt_bindings.tensorrt.ITensor`` → ``ITensor``; ``nvonnxparser::IParserError`` → ``IParserError``."""
    return re.split(r"\.|::", annotation.strip())[-1]


# --------------------------------------------------------------------------- the check


@dataclass
class Row:
    use: Use
    status: str
    signature: str
    failed: bool


def resolve(trt: types.ModuleType, owner: str) -> Any:
    obj: Any = trt
    if owner == MODULE:
        return obj
    for part in owner.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def real_kind(owner_obj: Any, attr: str) -> tuple[str, Any]:
    try:
        static = inspect.getattr_static(owner_obj, attr)
    except AttributeError:
        if not hasattr(owner_obj, attr):
            return "missing", None
        static = getattr(owner_obj, attr)
    value = getattr(owner_obj, attr, static)
    if isinstance(static, property):
        return ("property-rw" if static.fset is not None else "property"), static
    if isinstance(owner_obj, type) and type(value) is owner_obj:
        return "member", value
    if isinstance(value, type):
        return "class", value
    if isinstance(static, (staticmethod, classmethod)) or callable(value):
        return ("function" if isinstance(owner_obj, types.ModuleType) else "method"), value
    return "data", value


COMPATIBLE = {
    "read": {"property", "property-rw", "member", "class", "data"},
    "member": {"member"},
    "call": {"method", "function", "class"},
    "write": {"property-rw"},
    "subclass": {"class"},
    "override": {"method"},
    "own": {"missing"},
    "probe": None,
}


def check_use(trt: types.ModuleType, use: Use) -> Row:
    owner = resolve(trt, use.owner)
    if owner is None:
        return Row(use, f"missing class {use.owner}", "", not use.optional and use.kind not in ("probe", "own"))
    kind, value = real_kind(owner, use.attr)
    if use.kind == "probe":
        return Row(use, "present" if kind != "missing" else "absent (probe)", "", False)
    if use.kind == "own":
        if kind != "missing":
            return Row(use, f"shadows TensorRT's {use.owner}.{use.attr}", "", True)
        return Row(use, "own (not TensorRT's)", "", False)
    if kind == "missing":
        if use.optional:
            return Row(use, "absent (guarded)", "", False)
        return Row(use, "MISSING", "", True)
    allowed = COMPATIBLE[use.kind]
    if allowed is not None and kind not in allowed:
        return Row(use, f"found, but a {kind} (used as {use.kind})", "", True)
    signature, failed = "", False
    if use.kind == "call":
        signature, failed = check_call(use, kind, value)
    elif use.kind == "override":
        signature, failed = check_override(use, value)
    ret = check_returns(use, kind, value)
    if ret:
        signature = f"{signature}; {ret[0]}" if signature else ret[0]
        failed = failed or ret[1]
    return Row(use, f"found ({kind})", signature, failed)


def _sigs(kind: str, value: Any, attr: str) -> list[Signature]:
    if kind == "class":
        init = getattr(value, "__init__", None)
        sigs = parse_doc_signatures("__init__", getattr(init, "__doc__", None))
        return sigs or python_signature(value)
    if isinstance(value, types.FunctionType):
        return python_signature(value)
    return parse_doc_signatures(getattr(value, "__name__", attr), getattr(value, "__doc__", None))


def check_call(use: Use, kind: str, value: Any) -> tuple[str, bool]:
    if use.starred:
        return "not checked (*args in the call)", False
    sigs = _sigs(kind, value, use.attr)
    if not sigs:
        return "no signature in the docstring", False
    npos = use.npos
    skip_self = kind == "class" or (kind == "method" and not use.explicit_self)
    if isinstance(value, types.FunctionType):
        skip_self = False
    for sig in sigs:
        candidate = Signature(sig.params[1:] if skip_self and sig.params else sig.params, sig.returns, sig.varargs)
        if fits(candidate, npos, use.keywords):
            kw = f", {'/'.join(use.keywords)}=" if use.keywords else ""
            return f"ok ({npos} positional{kw})", False
    listed = " | ".join(s.text for s in sigs)
    return f"NO OVERLOAD takes {npos} positional, keywords {list(use.keywords)}: {listed}", True


def check_override(use: Use, value: Any) -> tuple[str, bool]:
    sigs = _sigs("method", value, use.attr)
    if not sigs:
        return "no signature in the docstring", False
    base = sigs[0]
    theirs = tuple(n for n, _ in base.params[1:])
    if len(theirs) != len(use.params):
        return f"TensorRT passes {len(theirs)} arguments {theirs}, the override takes {use.params}", True
    notes = []
    if theirs != use.params:
        notes.append(f"names differ {theirs} vs {use.params} (passed by position: fine)")
    if use.returns is not None and short_type(use.returns) != short_type(base.returns):
        return f"returns {use.returns}, TensorRT expects {base.returns}", True
    return "ok" + (f"; {'; '.join(notes)}" if notes else ""), False


def check_returns(use: Use, kind: str, value: Any) -> tuple[str, bool] | None:
    key = (use.owner, use.attr)
    if key not in RETURNS or use.kind not in ("call", "read"):
        return None
    want = RETURNS[key]
    if kind.startswith("property"):
        sigs = parse_doc_signatures("", getattr(value.fget, "__doc__", None))  # "(arg0: ITensor) -> str"
    else:
        sigs = _sigs(kind, value, use.attr)
    got = {short_type(s.returns) for s in sigs if s.returns}
    if not got:
        return None
    if want is None:
        plain = {"str", "int", "bool", "float", "object", "None"}
        if got & plain or kind == "function":
            return None
        return f"RETURNS says a plain value, the bindings say {sorted(got)}", True
    if want in got:
        return f"returns {want}", False
    return f"RETURNS says {want}, the bindings say {sorted(got)}", True


# --------------------------------------------------------------------------- what the backend assumes of values

SEVERITIES = {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4}


def value_checks(trt: types.ModuleType) -> list[tuple[str, str, bool]]:
    """Behaviour the backend relies on beyond names, where it can be exercised without the library.

    (Not verifiable this way: that a tuple converts implicitly where a ``Dims`` parameter is declared, as in
    ``set_shape`` and 8.x's ``set_input_shape``; NVIDIA's samples rely on it too.)
    """
    results: list[tuple[str, str, bool]] = []

    def check(what: str, probe: Any) -> None:
        try:
            ok, detail = probe()
        except Exception as exc:  # a missing class, numpy absent, a changed enum type: all reported, none fatal here
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        results.append((what, detail, ok))

    def severities() -> tuple[bool, str]:
        got = {name: int(member) for name, member in trt.ILogger.Severity.__members__.items()}
        return got == SEVERITIES, str(got)

    def enums() -> tuple[bool, str]:
        flag = trt.NetworkDefinitionCreationFlag.__members__[
            "STRONGLY_TYPED" if version_tuple(trt.__version__) >= (10,) else "EXPLICIT_BATCH"
        ]
        qdq = {trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE}
        return len(qdq) == 2 and isinstance(
            1 << int(flag), int
        ), f"1 << int({flag}) = {1 << int(flag)}; {len(qdq)} in a set"

    def dims() -> tuple[bool, str]:
        shape = tuple(int(d) for d in trt.Dims((-1, 3, 16, 16)))
        return shape == (-1, 3, 16, 16), f"Dims((-1, 3, 16, 16)) iterates as {shape}"

    def parser_error() -> tuple[bool, str]:
        has = "__str__" in trt.ParserError.__dict__
        return has, "ParserError.__str__ " + ("is defined" if has else "is missing: str(error) would be a repr")

    def nptype() -> tuple[bool, str]:
        import numpy as np

        got = (trt.nptype(trt.DataType.FLOAT), trt.nptype(trt.DataType.HALF))
        return got == (np.float32, np.float16), f"FLOAT, HALF → {got[0].__name__}, {got[1].__name__}"

    check("ILogger.Severity numbers match _logger_class's table", severities)
    check("enum members take int() and hash (flags bits; a set of LayerType)", enums)
    check("a tuple builds a Dims and a Dims iterates as ints (shapes)", dims)
    check("str(parser.get_error(i)) is the parser's message", parser_error)
    check("nptype maps FLOAT/HALF to float32/float16 (needs numpy)", nptype)
    return results


# --------------------------------------------------------------------------- output


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)] + [0]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip()

    rule = ["-" * max(widths[i], len(h)) for i, h in enumerate(header)]
    return "\n".join([line(header), line(rule)] + [line(r) for r in rows])


def lines_of(uses: Iterable[Use]) -> str:
    return ",".join(str(n) for n in sorted({u.line for u in uses}))


def grouped(uses: list[Use]) -> Iterator[tuple[Use, list[Use]]]:
    """One row per (owner, attribute, use, path, optional, call shape), with every line it occurs on."""
    groups: dict[tuple[Any, ...], list[Use]] = {}
    for u in uses:
        key = (u.owner, u.attr, u.kind, u.spec, u.optional, u.npos, u.keywords, u.explicit_self, u.params)
        groups.setdefault(key, []).append(u)
    for members in groups.values():
        yield members[0], members


def describe(u: Use) -> str:
    if u.kind == "call":
        kw = f", {'/'.join(u.keywords)}=" if u.keywords else ""
        return f"call({u.npos}{kw})"
    if u.kind == "override":
        return f"override({', '.join(u.params)})"
    return u.kind + (" (guarded)" if u.optional else "")


def list_uses(w: Walk) -> str:
    rows = [[u.owner, u.attr, describe(u), spec_text(u.spec), lines_of(us)] for u, us in grouped(w.uses)]
    return table(rows, ["class", "attribute", "use", "path", "lines"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--list", action="store_true", help="only list what the backend uses (no TensorRT needed)")
    parser.add_argument("--backend", type=Path, default=BACKEND, help="the backend source (default: %(default)s)")
    parser.add_argument("--stub-dir", type=Path, help="where to build stand-in libraries if libnvinfer is missing")
    args = parser.parse_args(argv)

    w = walk(args.backend.resolve())
    if args.list:
        print(list_uses(w))
        rows = sum(1 for _ in grouped(w.uses))
        print(f"\n{rows} uses ({len(w.uses)} sites) of {len({(u.owner, u.attr) for u in w.uses})} attributes")
        for e in w.errors:
            print(f"UNATTRIBUTED: {e}", file=sys.stderr)
        return 1 if w.errors else 0

    trt, how = import_tensorrt(args.stub_dir)
    version = str(trt.__version__)
    vt = version_tuple(version)
    print(f"TensorRT {version} ({how}); Python {sys.version.split()[0]}")
    rows, failures = [], 0
    for u, us in grouped(w.uses):
        if applies(u.spec, vt):
            row = check_use(trt, u)
            status, sig, failed = row.status, row.signature, row.failed
        else:
            owner = resolve(trt, u.owner)
            there = owner is not None and real_kind(owner, u.attr)[0] != "missing"
            status, sig, failed = f"skipped: not this version's path ({'present' if there else 'absent'})", "", False
        failures += failed
        rows.append(
            [u.owner, u.attr, describe(u), spec_text(u.spec), lines_of(us), ("FAIL " if failed else "") + status, sig]
        )
    print(table(rows, ["class", "attribute", "use", "path", "lines", "status", "signature"]))
    print()
    values = value_checks(trt)
    print(
        table([[what, detail, "ok" if ok else "FAIL"] for what, detail, ok in values], ["assumption", "observed", ""])
    )
    failures += sum(1 for *_, ok in values if not ok)
    for e in w.errors:
        print(f"UNATTRIBUTED: {e}")
    failures += len(w.errors)
    checked = sum(1 for u, _ in grouped(w.uses) if applies(u.spec, vt))
    print(f"\nTensorRT {version}: {len(rows)} uses, {checked} on this version's path, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
