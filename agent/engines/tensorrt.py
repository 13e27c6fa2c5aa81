"""The TensorRT backend: ONNX → serialized engine (plan) on the device, and a runner over it.

Written against NVIDIA's documented Python API for TensorRT 8.5+ (JetPack 5.1:
8.5.2; JetPack 6.0: 8.6.2) and TensorRT 10 (JetPack 6.1/6.2: 10.3), with the
differences handled by feature detection rather than by version numbers
where the API allows it. ``tensorrt`` is imported lazily, so the agent
imports this module and starts on machines without TensorRT; ask
:func:`tensorrt_available` first.

Build (``TensorRTBackend.build``):

- Explicit-batch network parsed by ``trt.OnnxParser``; a parse failure
  raises :class:`BuildError` with every ``parser.get_error(i)`` verbatim.
  The ``EXPLICIT_BATCH`` creation flag is required before TensorRT 10 and
  deprecated/ignored from 10.0 ("networks are always explicit batch",
  Python API, Builder.html › NetworkDefinitionCreationFlag); TensorRT 11
  removed it.
- One optimization profile for a dynamic batch: min 1, opt ``opt_batch``,
  max ``max_batch``, with the input's static C, H, W. A static batch is
  used as it is (the runner pads a smaller batch up to it).
- Precision. fp32: no flag, and TF32 cleared so "fp32" stays the accuracy
  reference (TF32 is on by default and rounds conv/matmul inputs to a
  10-bit mantissa). fp16: ``BuilderFlag.FP16`` ("allow", not "require": a
  GPU without fast FP16 still builds, so a missing ``platform_has_fast_fp16``
  is a warning, not an error). int8: explicit quantization from a QDQ ONNX,
  no calibrator: ``BuilderFlag.INT8`` (the 8.x developer guide's INT8
  chapter: a weakly typed network needs the INT8 flag for any quantization,
  Q/DQ included) plus ``FP16`` so layers left outside Q/DQ pairs may run in
  half precision (common practice for QAT/PTQ models, trtexec ``--int8
  --fp16``); Q/DQ still pins where INT8 runs ("Explicit Quantization"). A model
  without Q/DQ layers is refused for int8 instead of silently building a
  float engine. What the parser takes (onnx-tensorrt docs/operators.md,
  8.5 to 10.x): QuantizeLinear/DequantizeLinear with zero points of 0 and
  DequantizeLinear inputs of INT8 only, so biases must stay float (ONNX
  Runtime's ``QuantizeBias`` defaults to INT32 biases).
  TensorRT 11 removed the FP16/INT8 flags (10.x→11.x Python
  migration guide): networks are strongly typed and the ONNX's own types
  decide, so where the flags are absent the network is created
  ``STRONGLY_TYPED`` and the precision is that of the artifact.
- Workspace: ``config.set_memory_pool_limit(MemoryPoolType.WORKSPACE, n)``
  (8.4+), ``n = workspace_bytes`` or ``workspace_fraction`` × the free
  memory ``cudaMemGetInfo`` reports: a Jetson's GPU shares RAM with the
  CPU, so a fixed figure is either wasteful on an AGX or fatal on a Nano.
- Timing cache per device class and TensorRT version, at
  ``timing_cache_dir / f"{device_class}-trt{version}.cache"``: loaded with
  ``create_timing_cache(bytes)`` + ``set_timing_cache(cache,
  ignore_mismatch=False)`` (a cache from another device is refused, not
  trusted), written back atomically after a successful build. A corrupt or
  mismatched file is logged and replaced; it never fails a build
  (Python API, BuilderConfig.html and TimingCache.html; "Optimizing Builder
  Performance › Timing Cache").
- Progress: TensorRT 10 calls an ``IProgressMonitor`` (``phase_start``,
  ``step_complete``, ``phase_finish``; Python API, ProgressMonitor.html and
  samples/python/simple_progress_monitor); earlier versions have no
  progress interface, so only start and end are reported.
- Messages: TensorRT keeps one logger per process (a second one passed to
  a builder or runtime is ignored with a warning, NVIDIA/TensorRT#1475), so
  one :func:`shared_logger` serves every builder and runtime and *captures*
  WARNING-and-above messages while a build or load runs, for BuildError.

Run (``TensorRTRunner``): ``Runtime.deserialize_cuda_engine``, the
name-based I/O API of 8.5+ (``num_io_tensors``, ``get_tensor_name``,
``get_tensor_mode``, ``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``; samples/python/common_runtime.py), device buffers
sized for ``max_batch``, pinned host staging buffers, and CUDA events
around the host→device copy, the enqueue and the device→host copy, so a
report can separate them the way trtexec does.

API check: ``make check-tensorrt-api`` (scripts/check_tensorrt_api.py)
lists every TensorRT class, method, property and enum member this module
reaches (an AST walk) and checks each, with its call's arity and keyword
names, against the real bindings of 8.6 and 10.x/11.x by introspection.
A ``# trt-api: <10`` or ``# trt-api: >=10`` comment on a statement's first
line (a ``def``: the whole function) marks code that runs only on those
versions; everything else is checked against every version.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from jetfleet.agent.engines import cuda
from jetfleet.agent.engines.base import PRECISIONS, BuildError, BuildProgress, Timing
from jetfleet.common.files import atomic_path

log = logging.getLogger(__name__)

MIN_VERSION = (8, 5)  # execute_async_v3 and the name-based tensor API arrived in 8.5
BUILD_SPAN = (0.05, 0.95)  # the builder's share of reported progress; parsing before it, saving after
INVALID_ENGINE = "engine file is not a valid TensorRT engine for this TensorRT version/device"


# --------------------------------------------------------------------------- availability


def tensorrt_available() -> tuple[bool, str]:
    """(True, versions) when TensorRT imports and a CUDA device answers; (False, why) otherwise. Never raises."""
    try:
        return _probe()
    except Exception as exc:  # whatever a broken install throws, the agent must still start
        return False, f"TensorRT probe failed: {type(exc).__name__}: {exc}"


def _probe() -> tuple[bool, str]:
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or OSError when libnvinfer is missing under the bindings
        return False, f"cannot import tensorrt ({type(exc).__name__}: {exc}); on a Jetson it comes with JetPack"
    version = str(getattr(trt, "__version__", "unknown"))
    if version_tuple(version) < MIN_VERSION:
        return False, f"TensorRT {version} is too old: this backend needs 8.5 or newer (execute_async_v3)"
    ok, detail = cuda.cuda_available()
    if not ok:
        return False, f"TensorRT {version} is installed but no CUDA device is usable: {detail}"
    return True, f"TensorRT {version}; {detail}"


def version_tuple(version: str) -> tuple[int, ...]:
    """``"10.3.0.30"`` → ``(10, 3, 0)``; unparsable → ``(0,)`` (treated as too old)."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3]) or (0,)


def _import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except Exception as exc:
        raise ImportError(f"the TensorRT backend needs the tensorrt Python package: {exc}") from exc
    return trt


# --------------------------------------------------------------------------- pure helpers (tested without a GPU)


@dataclass(frozen=True)
class PrecisionPlan:
    """How one precision maps onto this TensorRT's builder: flags to set and clear, network typing."""

    precision: str
    set_flags: tuple[str, ...] = ()
    cleared_flags: tuple[str, ...] = ()
    strongly_typed: bool = False
    requires_qdq: bool = False


def precision_plan(precision: str, available_flags: Collection[str]) -> PrecisionPlan:
    """The builder settings for ``precision`` given the ``BuilderFlag`` names this TensorRT has.

    Where FP16/INT8 flags exist (8.x–10.x) the network is weakly typed and
    the flags allow reduced precision; where they do not (11.x) the network
    is strongly typed and the ONNX's types decide (see the module docstring).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "fp32":
        return PrecisionPlan("fp32", cleared_flags=("TF32",) if "TF32" in available_flags else ())
    if precision == "fp16":
        if "FP16" in available_flags:
            return PrecisionPlan("fp16", set_flags=("FP16",))
        return PrecisionPlan("fp16", strongly_typed=True)
    if "INT8" in available_flags:
        flags = ("INT8", "FP16") if "FP16" in available_flags else ("INT8",)
        return PrecisionPlan("int8", set_flags=flags, requires_qdq=True)
    return PrecisionPlan("int8", strongly_typed=True, requires_qdq=True)


def workspace_limit(workspace_bytes: int | None, fraction: float, free_bytes: int) -> int:
    """The builder's workspace: the fixed figure when given, else ``fraction`` of free device memory."""
    if workspace_bytes:
        return int(workspace_bytes)
    return max(1 << 20, int(free_bytes * fraction))  # at least 1 MiB: a zero pool would fail every tactic


def profile_shapes(
    chw: tuple[int, int, int], opt_batch: int, max_batch: int
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) input shapes of the optimization profile for a dynamic batch."""
    opt = min(max(1, opt_batch), max_batch)
    return (1, *chw), (opt, *chw), (max_batch, *chw)


def timing_cache_file(folder: Path, device_class: str, version: str) -> Path:
    """One cache per device class and TensorRT version: tactic timings are only valid on the same hardware."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", device_class)
    return folder / f"{safe}-trt{version}.cache"


@dataclass
class _Phase:
    parent: str | None
    steps: int
    order: int
    done: int = 0


class PhaseTracker:
    """Folds TensorRT 10's nested build phases into one fraction for a progress bar.

    ``step_complete`` numbers steps ``0 .. num_steps-1`` (ProgressMonitor
    docs), so step ``k`` means ``k + 1`` done. The fraction of a phase is
    (done + fraction of its running child) / steps, read from the outermost
    running phase, and never goes backwards. Reports are thinned to phase
    changes and advances of ``min_delta``, so a callback that sends them
    over the network is not flooded. TensorRT calls from several threads,
    hence the lock. Pure Python, so it is tested without TensorRT.
    """

    def __init__(self, min_delta: float = 0.01) -> None:
        self._phases: dict[str, _Phase] = {}
        self._order = 0
        self._lock = threading.Lock()
        self._min_delta = min_delta
        self._last = (0.0, "")

    def start(self, name: str, parent: str | None, steps: int) -> tuple[float, str] | None:
        with self._lock:
            self._order += 1
            self._phases[name] = _Phase(parent, max(1, int(steps)), self._order)
            return self._report()

    def step(self, name: str, step: int) -> tuple[float, str] | None:
        with self._lock:
            phase = self._phases.get(name)
            if phase is not None:
                phase.done = min(phase.steps, int(step) + 1)
            return self._report()

    def finish(self, name: str) -> tuple[float, str] | None:
        with self._lock:
            self._phases.pop(name, None)
            return self._report()

    def _fraction(self, name: str) -> float:
        phase = self._phases[name]
        children = [n for n, p in self._phases.items() if p.parent == name]
        inner = self._fraction(max(children, key=lambda n: self._phases[n].order)) if children else 0.0
        return min(1.0, (phase.done + inner) / phase.steps)

    def _report(self) -> tuple[float, str] | None:
        if not self._phases:
            return None
        roots = [n for n, p in self._phases.items() if p.parent not in self._phases]
        root = min(roots, key=lambda n: self._phases[n].order)
        innermost = max(self._phases, key=lambda n: self._phases[n].order)
        fraction = max(self._last[0], self._fraction(root))
        if innermost == self._last[1] and fraction - self._last[0] < self._min_delta:
            return None
        self._last = (fraction, innermost)
        phase = self._phases[innermost]
        return fraction, f"{innermost} ({phase.done}/{phase.steps})"


def _emit(progress: BuildProgress, fraction: float, message: str) -> None:
    """Call the caller's progress callback; its failure must not fail (or, from a monitor, cancel) a build."""
    try:
        progress(fraction, message)
    except Exception:
        log.exception("progress callback failed (ignored)")


def _builder_fraction(fraction: float) -> float:
    low, high = BUILD_SPAN
    return low + (high - low) * min(1.0, max(0.0, fraction))


# --------------------------------------------------------------------------- TensorRT callback classes

_classes_lock = threading.Lock()
_classes: dict[str, type] = {}
_shared_logger: Any = None


def shared_logger() -> Any:
    """The process's one TensorRT logger; pass it to every Builder, Runtime and OnnxParser.

    TensorRT keeps a single logger pointer per process and ignores a second
    one (NVIDIA/TensorRT#1475), so per-build loggers would silently lose
    messages. Use ``with shared_logger().capture() as messages:`` to collect
    the WARNING-and-above messages logged meanwhile (from any thread).
    """
    global _shared_logger
    with _classes_lock:
        if _shared_logger is None:
            _shared_logger = _logger_class(_import_tensorrt())()
        return _shared_logger


def _logger_class(trt: Any) -> type:
    warning = int(trt.ILogger.Severity.WARNING)
    # TensorRT severities: INTERNAL_ERROR 0, ERROR 1, WARNING 2, INFO 3, VERBOSE 4 (ILogger.Severity).
    levels = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.DEBUG}

    class CapturingLogger(trt.ILogger):  # type: ignore[misc, name-defined]
        """Forwards TensorRT's messages to :mod:`logging` and to any active captures."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self._lock = threading.Lock()
            self._captures: list[list[str]] = []

        def log(self, severity: Any, msg: str) -> None:
            try:
                level = int(severity)
                if level <= warning:
                    with self._lock:
                        for messages in self._captures:
                            messages.append(msg)
                if level in levels:  # VERBOSE is dropped: thousands of lines per build
                    log.log(levels[level], "TensorRT: %s", msg)
            except Exception:  # an exception must never travel back into TensorRT
                pass

        @contextlib.contextmanager
        def capture(self) -> Iterator[list[str]]:
            messages: list[str] = []
            with self._lock:
                self._captures.append(messages)
            try:
                yield messages
            finally:
                with self._lock:
                    self._captures.remove(messages)

    return CapturingLogger


def _progress_monitor(trt: Any, progress: BuildProgress) -> Any | None:
    """An ``IProgressMonitor`` forwarding to ``progress`` on TensorRT 10+, ``None`` before (no such API)."""
    if not hasattr(trt, "IProgressMonitor"):
        return None
    with _classes_lock:
        if "monitor" not in _classes:
            _classes["monitor"] = _monitor_class(trt)
    return _classes["monitor"](progress)


def _monitor_class(trt: Any) -> type:  # trt-api: >=10
    class ProgressMonitor(trt.IProgressMonitor):  # type: ignore[misc, name-defined]
        """Method names and signatures from the Python API's ProgressMonitor page (TensorRT 10)."""

        def __init__(self, progress: BuildProgress) -> None:
            trt.IProgressMonitor.__init__(self)
            self._progress = progress
            self._tracker = PhaseTracker()

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._forward(lambda: self._tracker.start(phase_name, parent_phase, num_steps))

        def step_complete(self, phase_name: str, step: int) -> bool:
            self._forward(lambda: self._tracker.step(phase_name, step))
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            self._forward(lambda: self._tracker.finish(phase_name))

        def _forward(self, update: Any) -> None:
            try:
                report = update()
                if report is not None:
                    _emit(self._progress, _builder_fraction(report[0]), report[1])
            except Exception:  # the binding turns an exception in step_complete into a cancelled build
                log.exception("progress monitor failed (ignored)")

    return ProgressMonitor


# --------------------------------------------------------------------------- the backend


class TensorRTBackend:
    """Builds TensorRT engines from ONNX classifiers and loads them into :class:`TensorRTRunner` s."""

    name = "tensorrt"

    def __init__(
        self,
        timing_cache_dir: Path,
        device_class: str,
        workspace_bytes: int | None = None,
        workspace_fraction: float = 0.5,
        max_batch: int = 64,
        opt_batch: int = 8,
    ) -> None:
        if max_batch < 1 or opt_batch < 1:
            raise ValueError(f"max_batch and opt_batch must be at least 1 (got {max_batch}, {opt_batch})")
        if not 0.0 < workspace_fraction <= 1.0:
            raise ValueError(f"workspace_fraction must be in (0, 1], not {workspace_fraction}")
        if workspace_bytes is not None and workspace_bytes <= 0:
            raise ValueError(f"workspace_bytes must be positive, not {workspace_bytes}")
        self._trt = _import_tensorrt()
        self._cuda = cuda.load()
        self.timing_cache_dir = Path(timing_cache_dir)
        self.device_class = device_class
        self.workspace_bytes = workspace_bytes
        self.workspace_fraction = workspace_fraction
        self.max_batch = max_batch
        self.opt_batch = min(opt_batch, max_batch)

    def version(self) -> str:
        return str(self._trt.__version__)

    @property
    def timing_cache_path(self) -> Path:
        return timing_cache_file(self.timing_cache_dir, self.device_class, self.version())

    def _plan(self, precision: str) -> PrecisionPlan:
        return precision_plan(precision, set(self._trt.BuilderFlag.__members__))

    def builder_flags(self, precision: str) -> dict[str, Any]:
        """Everything besides the TensorRT version that changes the engine; part of the cache fingerprint.

        The workspace is recorded as configured, not as resolved: free memory
        changes from one call to the next and must not invalidate the cache.
        """
        plan = self._plan(precision)
        workspace = self.workspace_bytes or f"{self.workspace_fraction:g} of free device memory"
        return {
            "precision": plan.precision,
            "set_flags": sorted(plan.set_flags),
            "cleared_flags": sorted(plan.cleared_flags),
            "strongly_typed": plan.strongly_typed,
            "max_batch": self.max_batch,
            "opt_batch": self.opt_batch,
            "workspace": workspace,
        }

    def build(self, onnx_path: Path, precision: str, engine_path: Path, progress: BuildProgress) -> None:
        try:
            self._build(onnx_path, precision, engine_path, progress)
        except cuda.CudaError as exc:  # the device, not the model, failed: still a failed build, with CUDA's words
            raise BuildError(str(exc)) from exc

    def _build(self, onnx_path: Path, precision: str, engine_path: Path, progress: BuildProgress) -> None:
        trt, plan = self._trt, self._plan(precision)
        started = time.monotonic()
        _emit(progress, 0.0, f"parsing {onnx_path.name} with TensorRT {self.version()}")
        logger = shared_logger()
        with logger.capture() as messages:
            builder = trt.Builder(logger)
            network = builder.create_network(_network_flags(trt, plan))
            parser = trt.OnnxParser(network, logger)
            _parse(parser, onnx_path, messages)
            name, shape = _network_input(network)
            _check_network_output(network)
            if plan.requires_qdq and not _has_qdq_layers(trt, network):
                raise BuildError(
                    "precision int8 needs an explicitly quantized ONNX (QuantizeLinear/DequantizeLinear nodes); "
                    f"{onnx_path.name} has none"
                )
            config = builder.create_builder_config()
            self._configure(builder, config, plan, name, shape, messages)
            cache = self._attach_timing_cache(config, messages, progress)
            monitor = _progress_monitor(trt, progress)
            if monitor is not None:
                config.progress_monitor = monitor  # trt-api: >=10
            flags = ", ".join(plan.set_flags) or "no precision flags"
            later = "" if monitor is not None else "; TensorRT before 10 reports no progress until it is done"
            _emit(progress, BUILD_SPAN[0], f"building {precision} engine ({flags}){later}")
            serialized = builder.build_serialized_network(network, config)
            if serialized is None:
                raise BuildError(_joined(messages) or "TensorRT's builder returned no engine and logged no reason")
            self._save_timing_cache(config, progress)
            with open(engine_path, "wb") as fh:  # the IHostMemory buffer, as NVIDIA's samples write it
                fh.write(serialized)
            size = serialized.nbytes
        # Release order: objects that use the monitor and cache before them (ProgressMonitor docs: its
        # lifetime must exceed theirs); the bindings' keep_alive guards this too.
        del parser, network, config, builder, cache, monitor
        _emit(progress, 1.0, f"engine built in {time.monotonic() - started:.1f} s ({size / 2**20:.1f} MiB)")

    def _configure(
        self, builder: Any, config: Any, plan: PrecisionPlan, name: str, shape: tuple[int, ...], messages: list[str]
    ) -> None:
        trt = self._trt
        for flag in plan.set_flags:
            config.set_flag(getattr(trt.BuilderFlag, flag))
        for flag in plan.cleared_flags:
            config.clear_flag(getattr(trt.BuilderFlag, flag))
        _warn_without_fast_fp16(trt, builder, plan)
        if plan.strongly_typed and plan.precision == "fp16":
            log.warning("TensorRT %s has no FP16 flag: the engine takes its precision from the ONNX", self.version())
        free, _ = self._cuda.mem_get_info()
        config.set_memory_pool_limit(
            trt.MemoryPoolType.WORKSPACE, workspace_limit(self.workspace_bytes, self.workspace_fraction, free)
        )
        if shape[0] < 0:  # dynamic batch: one profile; a static batch needs none
            profile = builder.create_optimization_profile()
            lo, opt, hi = profile_shapes((shape[1], shape[2], shape[3]), self.opt_batch, self.max_batch)
            profile.set_shape(name, lo, opt, hi)
            if config.add_optimization_profile(profile) < 0:
                raise BuildError(_joined(messages) or f"TensorRT refused the optimization profile {lo}…{hi}")

    def _attach_timing_cache(self, config: Any, messages: list[str], progress: BuildProgress) -> Any:
        """Attach the persisted cache, or a fresh one when it is missing, corrupt or from another device.

        Messages TensorRT logs about a rejected cache are moved out of the
        build's messages into our log: they are not why a build failed.
        """
        path, mark = self.timing_cache_path, len(messages)
        cache = None
        if path.is_file():
            cache = _load_timing_cache(config, path)
            rejected = messages[mark:]
            del messages[mark:]
            if cache is None:
                log.warning("timing cache %s rejected, building without it: %s", path, " | ".join(rejected))
            else:
                _emit(progress, 0.02, f"loaded timing cache {path.name}")
        if cache is None:
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, ignore_mismatch=False)
        return cache

    def _save_timing_cache(self, config: Any, progress: BuildProgress) -> None:
        """Persist the (grown) cache atomically; failing to write it only costs time on the next build."""
        cache = config.get_timing_cache()
        if cache is None:
            return
        path = self.timing_cache_path
        try:
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                fh.write(cache.serialize())
        except OSError as exc:
            log.warning("could not save timing cache %s: %s", path, exc)
            return
        _emit(progress, BUILD_SPAN[1], f"saved timing cache {path.name}")

    def load(self, engine_path: Path) -> TensorRTRunner:
        trt, logger = self._trt, shared_logger()
        try:
            data = Path(engine_path).read_bytes()
        except OSError as exc:
            raise BuildError(f"cannot read engine file {engine_path}: {exc}") from exc
        with logger.capture() as messages:
            runtime = trt.Runtime(logger)
            try:
                engine = runtime.deserialize_cuda_engine(data) if data else None
            except Exception as exc:
                messages.append(str(exc))
                engine = None
        if engine is None:
            detail = _joined(messages)
            raise BuildError(f"{INVALID_ENGINE}: {detail}" if detail else INVALID_ENGINE)
        try:
            return TensorRTRunner(trt, runtime, engine, self._cuda, logger)
        except cuda.CudaError as exc:  # typically out of memory for the buffers: unusable here
            raise BuildError(f"cannot set up the engine: {exc}") from exc


def _network_flags(trt: Any, plan: PrecisionPlan) -> int:
    """``create_network`` flags: EXPLICIT_BATCH before 10.0 (deprecated and ignored after); STRONGLY_TYPED on demand."""
    members = trt.NetworkDefinitionCreationFlag.__members__
    flags = 0
    if version_tuple(trt.__version__) < (10,) and "EXPLICIT_BATCH" in members:  # trt-api: <10
        flags |= 1 << int(members["EXPLICIT_BATCH"])
    if plan.strongly_typed and "STRONGLY_TYPED" in members:
        flags |= 1 << int(members["STRONGLY_TYPED"])
    return flags


def _parse(parser: Any, onnx_path: Path, messages: list[str]) -> None:
    """Parse from bytes with the path (for external weights): deserialization errors then reach ``get_error``."""
    try:
        data = onnx_path.read_bytes()
    except OSError as exc:
        raise BuildError(f"cannot read {onnx_path}: {exc}") from exc
    if parser.parse(data, str(onnx_path)):
        return
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    extra = [m for m in messages if m not in errors]
    raise BuildError("\n".join(errors + extra) or f"TensorRT could not parse {onnx_path.name} and gave no reason")


def _network_input(network: Any) -> tuple[str, tuple[int, ...]]:
    """The one N×C×H×W input, with C, H, W fixed: what a classifier artifact promises."""
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    if len(names) != 1:
        raise BuildError(f"a classifier has exactly one input; this model has {len(names)}: {', '.join(names)}")
    tensor = network.get_input(0)
    shape = tuple(int(d) for d in tensor.shape)
    if len(shape) != 4 or any(d < 1 for d in shape[1:]):
        raise BuildError(f"the model's input {tensor.name!r} must be N×C×H×W with fixed C, H, W; it is {shape}")
    return tensor.name, shape


def _check_network_output(network: Any) -> None:
    names = [network.get_output(i).name for i in range(network.num_outputs)]
    if len(names) != 1:
        raise BuildError(f"a classifier has exactly one output (logits); this model has {len(names)}: {names}")


def _has_qdq_layers(trt: Any, network: Any) -> bool:
    qdq = {trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE}
    return any(network.get_layer(i).type in qdq for i in range(network.num_layers))


def _warn_without_fast_fp16(trt: Any, builder: Any, plan: PrecisionPlan) -> None:
    """FP16 is permitted, not forced, so a GPU without fast FP16 still builds a correct (slower) engine.

    ``platform_has_fast_fp16`` is deprecated in 10.5 and gone in 11 (C++ API
    deprecated list; 10.x→11.x migration), so it is only asked before 10.
    """
    if "FP16" not in plan.set_flags or version_tuple(trt.__version__) >= (10,):
        return
    if not getattr(builder, "platform_has_fast_fp16", True):  # trt-api: <10
        log.warning("this GPU has no fast FP16: TensorRT may keep FP32 kernels for a %s engine", plan.precision)


def _load_timing_cache(config: Any, path: Path) -> Any | None:
    """The cache in ``path`` attached to ``config``, or ``None`` if TensorRT rejects it (or anything fails)."""
    try:
        cache = config.create_timing_cache(path.read_bytes())
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return cache
    except Exception as exc:
        log.warning("timing cache %s unreadable: %s", path, exc)
    return None


def _joined(messages: list[str]) -> str:
    return "\n".join(dict.fromkeys(m.strip() for m in messages if m.strip()))


# --------------------------------------------------------------------------- the runner


class TensorRTRunner:
    """An engine with its execution context, device buffers, pinned staging buffers, stream and events.

    Not re-entrant per call: one execution context serves one batch at a
    time, so ``infer`` holds a lock (run several runners for concurrency).
    """

    def __init__(self, trt: Any, runtime: Any, engine: Any, cuda_rt: cuda.CudaRuntime, logger: Any) -> None:
        self._trt, self._runtime, self._engine, self._cuda, self._logger = trt, runtime, engine, cuda_rt, logger
        self._lock = threading.Lock()
        self.input_name, self.output_name = _engine_io(trt, engine)
        in_shape = tuple(int(d) for d in engine.get_tensor_shape(self.input_name))
        if len(in_shape) != 4 or any(d < 1 for d in in_shape[1:]):
            raise BuildError(f"engine input {self.input_name!r} must be N×C×H×W with fixed C, H, W; it is {in_shape}")
        self.input_shape: tuple[int, int, int] = (in_shape[1], in_shape[2], in_shape[3])
        self._static_batch: int | None = in_shape[0] if in_shape[0] > 0 else None
        self.max_batch: int = self._static_batch or _profile_max_batch(engine, self.input_name)
        out_shape = tuple(int(d) for d in engine.get_tensor_shape(self.output_name))
        if len(out_shape) < 2 or any(d < 1 for d in out_shape[1:]):
            raise BuildError(f"engine output {self.output_name!r} must be N×classes; it is {out_shape}")
        self.num_classes: int = math.prod(out_shape[1:])
        self._in_dtype = _numpy_dtype(trt, engine, self.input_name)
        self._out_dtype = _numpy_dtype(trt, engine, self.output_name)
        self._in_sample = math.prod(self.input_shape) * self._in_dtype.itemsize
        self._out_sample = self.num_classes * self._out_dtype.itemsize
        self._rows_set: int | None = None
        self._closed = False
        self._resources = contextlib.ExitStack()
        try:
            self._allocate()
        except BaseException:
            self._resources.close()
            raise

    def _allocate(self) -> None:
        """Context, device and pinned buffers for ``max_batch``, stream and events; each paired with its release."""
        cu, push = self._cuda, self._resources.callback
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise BuildError("TensorRT could not create an execution context (out of device memory?)")
        in_bytes, out_bytes = self.max_batch * self._in_sample, self.max_batch * self._out_sample
        self._d_in = cu.malloc(in_bytes)
        push(cu.free, self._d_in)
        self._d_out = cu.malloc(out_bytes)
        push(cu.free, self._d_out)
        self._h_in_ptr = cu.host_alloc(in_bytes)
        push(cu.free_host, self._h_in_ptr)
        self._h_out_ptr = cu.host_alloc(out_bytes)
        push(cu.free_host, self._h_out_ptr)
        self._h_in = _pinned_view(self._h_in_ptr, in_bytes, self._in_dtype)
        self._h_out = _pinned_view(self._h_out_ptr, out_bytes, self._out_dtype)
        self._stream = cu.stream_create()
        push(cu.stream_destroy, self._stream)
        self._events = [cu.event_create() for _ in range(4)]
        for event in self._events:
            push(cu.event_destroy, event)
        push(cu.stream_synchronize, self._stream)  # runs first on close: nothing in flight while freeing
        for name, address in ((self.input_name, self._d_in), (self.output_name, self._d_out)):
            if not self._context.set_tensor_address(name, address):
                raise BuildError(f"TensorRT refused the device address of tensor {name!r}")

    def __enter__(self) -> TensorRTRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_batch(self, batch: Any) -> int:
        expected = "N×" + "×".join(map(str, self.input_shape))
        if not isinstance(batch, np.ndarray) or batch.ndim != 4 or tuple(batch.shape[1:]) != self.input_shape:
            got = getattr(batch, "shape", type(batch).__name__)
            raise ValueError(f"batch shape {got} does not match the engine's input {expected}")
        if not np.issubdtype(batch.dtype, np.floating):
            raise ValueError(f"batch must be normalized floating point (float32), not {batch.dtype}")
        n = int(batch.shape[0])
        if n < 1:
            raise ValueError("batch is empty")
        if n > self.max_batch:
            raise ValueError(f"batch of {n} exceeds the engine's maximum of {self.max_batch}")
        return n

    def infer(self, batch: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], Timing]:
        n = self._check_batch(batch)
        with self._lock:
            if self._context is None:
                raise RuntimeError("this runner is closed")
            start = time.perf_counter()
            rows = self._static_batch or n  # a static-batch engine always runs its full batch, padded
            staged = self._h_in[: rows * math.prod(self.input_shape)].reshape(rows, *self.input_shape)
            staged[:n] = batch
            staged[n:] = 0
            self._set_rows(rows)
            h2d, compute, d2h = self._run(rows)
            logits = self._h_out[: n * self.num_classes].reshape(n, self.num_classes).astype(np.float32)
            total = (time.perf_counter() - start) * 1000
        return logits, Timing(total_ms=total, h2d_ms=h2d, compute_ms=compute, d2h_ms=d2h)

    def _set_rows(self, rows: int) -> None:
        """``set_input_shape`` only when the batch size changes: a new shape costs TensorRT a re-setup."""
        if self._static_batch is not None or rows == self._rows_set:
            return
        if not self._context.set_input_shape(self.input_name, (rows, *self.input_shape)):
            raise ValueError(f"TensorRT refused input shape {(rows, *self.input_shape)}")
        self._rows_set = rows

    def _run(self, rows: int) -> tuple[float, float, float]:
        """Copy in, enqueue, copy out on one stream, with an event between each; returns the three spans (ms)."""
        cu, stream, (e0, e1, e2, e3) = self._cuda, self._stream, self._events
        cu.event_record(e0, stream)
        cu.memcpy_htod_async(self._d_in, self._h_in_ptr, rows * self._in_sample, stream)
        cu.event_record(e1, stream)
        with self._logger.capture() as messages:
            ok = self._context.execute_async_v3(stream)
        if not ok:
            cu.stream_synchronize(stream)
            raise RuntimeError(f"TensorRT execute_async_v3 failed: {_joined(messages) or 'no message'}")
        cu.event_record(e2, stream)
        cu.memcpy_dtoh_async(self._h_out_ptr, self._d_out, rows * self._out_sample, stream)
        cu.event_record(e3, stream)
        cu.stream_synchronize(stream)
        return cu.event_elapsed_ms(e0, e1), cu.event_elapsed_ms(e1, e2), cu.event_elapsed_ms(e2, e3)

    def close(self) -> None:
        """Release the context and engine, then device memory, pinned memory, events and stream. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._context = None
            self._engine = None
            self._h_in = self._h_out = None  # views into pinned memory: gone before the memory is
            self._resources.close()


def _engine_io(trt: Any, engine: Any) -> tuple[str, str]:
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    if len(inputs) != 1 or len(outputs) != 1:
        raise BuildError(f"a classifier engine has one input and one output; this one has {inputs} → {outputs}")
    return inputs[0], outputs[0]


def _profile_max_batch(engine: Any, name: str) -> int:
    """The batch of profile 0's max shape: ``get_tensor_profile_shape`` returns [min, opt, max]."""
    return int(engine.get_tensor_profile_shape(name, 0)[2][0])


def _numpy_dtype(trt: Any, engine: Any, name: str) -> np.dtype[Any]:
    dtype = engine.get_tensor_dtype(name)
    if dtype not in (trt.DataType.FLOAT, trt.DataType.HALF):
        raise BuildError(f"tensor {name!r} is {dtype}; the runner handles float32 and float16 I/O")
    return np.dtype(trt.nptype(dtype))


def _pinned_view(ptr: int, nbytes: int, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """A NumPy array over page-locked memory, so staging a batch is one copy."""
    import ctypes

    raw = (ctypes.c_ubyte * nbytes).from_address(ptr)
    return np.frombuffer(raw, dtype=np.uint8).view(dtype)
