"""The TensorRT backend: pure helpers and availability here, real engines where TensorRT and a GPU are.

Tests in ``TestOnGpu`` build FP32/FP16/INT8 engines from tiny ONNX
classifiers and compare their logits with ONNX Runtime on the CPU; they are
marked ``gpu`` and skipped, with ``tensorrt_available()``'s reason, on a
machine without TensorRT or a CUDA device. Everything else runs anywhere.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from fixtures import tiny_onnx_classifier
from onnx import helper, numpy_helper

from jetfleet.agent.engines import cuda
from jetfleet.agent.engines import tensorrt as trt_backend
from jetfleet.agent.engines.base import BuildError, Timing
from jetfleet.agent.engines.tensorrt import (
    INVALID_ENGINE,
    PhaseTracker,
    TensorRTBackend,
    precision_plan,
    profile_shapes,
    tensorrt_available,
    timing_cache_file,
    version_tuple,
    workspace_limit,
)

AVAILABLE, REASON = tensorrt_available()
TENSORRT_INSTALLED = importlib.util.find_spec("tensorrt") is not None


# --------------------------------------------------------------------------- models


def conv_classifier(
    path: Path, classes: int = 5, channels: int = 3, size: int = 16, batch: int | str = "batch", seed: int = 0
) -> Path:
    """Conv3×3(+bias) → Relu → GlobalAveragePool → Conv1×1(+bias) → Flatten: a real CNN head, random weights.

    Conv-only so per-channel Q/DQ (axis 0) is the textbook TensorRT case.
    """
    rng = np.random.default_rng(seed)
    hidden = 8
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.4, (hidden, channels, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, hidden).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(0, 0.8, (classes, hidden, 1, 1)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(0, 0.1, classes).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("GlobalAveragePool", ["r1"], ["gap"]),
        helper.make_node("Conv", ["gap", "w2", "b2"], ["c2"]),
        helper.make_node("Flatten", ["c2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_classifier",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [batch, channels, size, size])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [batch, classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])  # 17: TensorRT 8.5's newest
    onnx.checker.check_model(model, full_check=True)
    onnx.save_model(model, str(path))
    return path


def unknown_op_model(path: Path) -> Path:
    """A well-formed ONNX file whose only node is an operator no parser knows."""
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["input"], ["logits"])],
        "unknown",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", 3])],
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def images(n: int, shape: tuple[int, int, int], seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, *shape)).astype(np.float32)


def ort_logits(path: Path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: batch})[0], dtype=np.float32)


class _Calibration:
    """ONNX Runtime's CalibrationDataReader protocol over one array."""

    def __init__(self, data: np.ndarray) -> None:
        self._batches = iter([{"input": data[i : i + 16]} for i in range(0, len(data), 16)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def tensorrt_friendly_qdq(fp32: Path, out: Path, calibration: np.ndarray) -> Path:
    """INT8 QDQ as TensorRT's parser documents it: symmetric, Q/DQ on float weights, float biases.

    (onnx-tensorrt operators.md: DequantizeLinear takes INT8 only and zero points must be 0.)
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(fp32),
        str(out),
        _Calibration(calibration),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={
            "ActivationSymmetric": True,
            "WeightSymmetric": True,
            "AddQDQPairToWeight": True,
            "QuantizeBias": False,
        },
    )
    return out


# --------------------------------------------------------------------------- runs everywhere


def test_tensorrt_available_reports_instead_of_raising() -> None:
    ok, reason = tensorrt_available()
    assert isinstance(ok, bool) and isinstance(reason, str) and reason
    if not TENSORRT_INSTALLED:
        assert ok is False and "tensorrt" in reason.lower()


@pytest.mark.parametrize(
    ("version", "cuda_probe", "expected", "words"),
    [
        ("10.3.0.30", (True, "1 CUDA device(s), runtime 12.6"), True, ["10.3.0.30", "1 CUDA device"]),
        ("8.6.2", (False, "cudaGetDeviceCount failed: no CUDA-capable device"), False, ["8.6.2", "no CUDA-capable"]),
        ("8.4.3", (True, "1 CUDA device(s)"), False, ["8.4.3", "8.5"]),
    ],
)
def test_tensorrt_available_checks_version_and_device(monkeypatch, version, cuda_probe, expected, words) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__=version))
    monkeypatch.setattr(cuda, "cuda_available", lambda names=None: cuda_probe)
    ok, reason = tensorrt_available()
    assert ok is expected
    assert all(word in reason for word in words), reason


def test_tensorrt_available_survives_a_broken_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` now raises ImportError
    ok, reason = tensorrt_available()
    assert ok is False and "tensorrt" in reason

    def explode(names=None):
        raise OSError("libnvinfer.so.8: cannot open shared object file")

    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    monkeypatch.setattr(cuda, "cuda_available", explode)
    ok, reason = tensorrt_available()
    assert ok is False and "libnvinfer" in reason


def test_importing_the_backend_loads_neither_tensorrt_nor_cuda() -> None:
    """The agent imports every backend at start; a machine without TensorRT or CUDA must still start."""
    code = (
        "import sys, pathlib, jetfleet.agent.engines.tensorrt\n"
        "mods = ('tensorrt', 'torch', 'pycuda', 'cuda', 'cupy')\n"
        "print([m for m in mods if m in sys.modules])\n"
        "print('libcudart' in pathlib.Path('/proc/self/maps').read_text())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "False"


@pytest.mark.skipif(TENSORRT_INSTALLED, reason="tensorrt is installed here")
def test_backend_without_tensorrt_says_so() -> None:
    with pytest.raises(ImportError, match="tensorrt"):
        TensorRTBackend(Path("caches"), "cpu-x86_64")


def test_cuda_reports_a_missing_libcudart_cleanly(tmp_path: Path) -> None:
    missing = [str(tmp_path / "libcudart.so"), "libcudart.so.0.does-not-exist"]
    with pytest.raises(cuda.CudaUnavailable, match="libcudart could not be loaded"):
        cuda.load(missing)
    ok, reason = cuda.cuda_available(missing)
    assert ok is False and "libcudart.so.0.does-not-exist" in reason


def test_cuda_refuses_a_library_that_is_not_cudart() -> None:
    with pytest.raises(cuda.CudaUnavailable, match="cudaGetErrorString"):
        cuda.load(["libc.so.6"])


def test_cuda_errors_carry_cuda_own_words() -> None:
    """Where a libcudart exists (with or without a GPU), failures are CudaError with cudaGetErrorString's text."""
    try:
        rt = cuda.load()
    except cuda.CudaUnavailable as exc:
        pytest.skip(str(exc))
    assert rt.error_string(2) and "unknown" not in rt.error_string(2).lower()  # cudaErrorMemoryAllocation
    assert rt.runtime_version() >= 11000
    try:
        count = rt.device_count()
    except cuda.CudaError as exc:  # no driver or no device: the reason, not a crash
        assert exc.call == "cudaGetDeviceCount" and exc.code != 0
        assert exc.message and exc.message in str(exc)
        assert cuda.cuda_available()[0] is False
    else:
        assert count >= 0


def test_cuda_prefers_a_libcudart_already_in_the_process(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    maps.write_text(
        "7f00-7f01 r-xp 00000000 08:01 123 /usr/lib/libc.so.6\n"
        "7f02-7f03 r-xp 00000000 08:01 456 /opt/venv/nvidia/cuda_runtime/lib/libcudart.so.12\n"
        "7f03-7f04 r--p 00001000 08:01 456 /opt/venv/nvidia/cuda_runtime/lib/libcudart.so.12\n"
        "7f05-7f06 rw-p 00000000 00:00 0 \n"
    )
    assert cuda._mapped_cudarts(maps) == ["/opt/venv/nvidia/cuda_runtime/lib/libcudart.so.12"]
    assert cuda.candidates()[: len(cuda._mapped_cudarts())] == cuda._mapped_cudarts()


FLAGS_8_TO_10 = {"FP16", "INT8", "TF32", "REFIT", "DEBUG", "GPU_FALLBACK"}
FLAGS_11 = {"TF32", "REFIT", "DEBUG", "GPU_FALLBACK"}  # FP16/INT8 removed (10.x→11.x migration guide)


def test_precision_plan_with_precision_flags() -> None:
    assert precision_plan("fp32", FLAGS_8_TO_10).cleared_flags == ("TF32",)
    assert precision_plan("fp16", FLAGS_8_TO_10).set_flags == ("FP16",)
    int8 = precision_plan("int8", FLAGS_8_TO_10)
    assert int8.set_flags == ("INT8", "FP16") and int8.requires_qdq and not int8.strongly_typed


def test_precision_plan_strongly_typed_without_precision_flags() -> None:
    assert precision_plan("fp16", FLAGS_11).strongly_typed
    int8 = precision_plan("int8", FLAGS_11)
    assert int8.strongly_typed and int8.requires_qdq and int8.set_flags == ()
    assert not precision_plan("fp32", FLAGS_11).strongly_typed
    with pytest.raises(ValueError, match="fp32, fp16, int8"):
        precision_plan("bf16", FLAGS_8_TO_10)


def test_workspace_is_a_fraction_of_free_memory_unless_fixed() -> None:
    assert workspace_limit(None, 0.5, 8 << 30) == 4 << 30
    assert workspace_limit(256 << 20, 0.5, 8 << 30) == 256 << 20
    assert workspace_limit(None, 0.5, 0) == 1 << 20  # never zero


def test_profile_shapes_keep_opt_within_bounds() -> None:
    assert profile_shapes((3, 32, 32), 8, 64) == ((1, 3, 32, 32), (8, 3, 32, 32), (64, 3, 32, 32))
    assert profile_shapes((1, 8, 8), 8, 4)[1] == (4, 1, 8, 8)


def test_timing_cache_file_is_per_device_class_and_version(tmp_path: Path) -> None:
    assert (
        timing_cache_file(tmp_path, "jetson-orin-nano", "10.3.0.30") == tmp_path / "jetson-orin-nano-trt10.3.0.30.cache"
    )
    assert timing_cache_file(tmp_path, "odd/name x", "8.5.2").name == "odd_name_x-trt8.5.2.cache"


def test_version_tuple() -> None:
    assert version_tuple("8.5.2.2") == (8, 5, 2) and version_tuple("10.3.0.30") >= (10,)
    assert version_tuple("garbage") == (0,)


def test_phase_tracker_folds_nested_phases_into_one_monotonic_fraction() -> None:
    tracker = PhaseTracker(min_delta=0.0)
    assert tracker.start("Build", None, 2) == (0.0, "Build (0/2)")
    tracker.start("Tactics", "Build", 4)
    assert tracker.step("Tactics", 1)[0] == pytest.approx(0.25)  # 2 of 4 steps of the first half
    assert tracker.step("Tactics", 3)[0] == pytest.approx(0.5)
    tracker.finish("Tactics")
    assert tracker.step("Build", 1) == (1.0, "Build (2/2)")
    assert tracker.finish("Build") is None  # nothing running: nothing to report
    tracker.start("Other", None, 10)
    assert tracker.step("Other", 0)[0] == 1.0  # never backwards


def test_phase_tracker_thins_reports() -> None:
    tracker = PhaseTracker(min_delta=0.1)
    tracker.start("Build", None, 1000)
    reports = [tracker.step("Build", i) for i in range(1000)]
    assert 5 <= sum(r is not None for r in reports) <= 11


# --------------------------------------------------------------------------- the API check (scripts/check_tensorrt_api.py)

API_CHECK = Path(__file__).resolve().parents[3] / "scripts" / "check_tensorrt_api.py"


@pytest.fixture(scope="module")
def api_check() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("check_tensorrt_api", API_CHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_tensorrt_api"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _uses(walk, owner: str, attr: str) -> list:
    return [u for u in walk.uses if (u.owner, u.attr) == (owner, attr)]


def test_api_check_attributes_every_tensorrt_use_of_the_backend(api_check) -> None:
    """The walk finds the backend's calls, with their version paths, and nothing it cannot attribute."""
    walk = api_check.walk(api_check.BACKEND)
    assert walk.errors == []
    (execute,) = _uses(walk, "IExecutionContext", "execute_async_v3")
    assert (execute.kind, execute.npos, execute.spec) == ("call", 1, ())
    (monitor,) = _uses(walk, "IBuilderConfig", "progress_monitor")
    assert (monitor.kind, api_check.spec_text(monitor.spec)) == ("write", ">=10")
    (fast_fp16,) = _uses(walk, "Builder", "platform_has_fast_fp16")
    assert (api_check.spec_text(fast_fp16.spec), fast_fp16.optional) == ("<10", False)  # a marker makes it required
    assert {u.params for u in _uses(walk, "ILogger", "log")} == {("severity", "msg")}
    assert {u.attr for u in walk.uses if u.owner == "BuilderFlag" and u.optional} == {"FP16", "INT8", "TF32"}
    (cache,) = [u for u in _uses(walk, "IBuilderConfig", "set_timing_cache") if u.function == "_load_timing_cache"]
    assert cache.keywords == ("ignore_mismatch",)


def test_api_check_list_mode_runs_without_tensorrt() -> None:
    result = subprocess.run([sys.executable, str(API_CHECK), "--list"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "execute_async_v3" in result.stdout


def test_api_check_follows_values_through_the_backends_own_code(api_check) -> None:
    walk = api_check.Walk(
        "import tensorrt as trt\n"
        "class Runner:\n"
        "    def __init__(self, engine):\n"
        "        self._engine = engine\n"
        "    def context(self):\n"
        "        return self._engine.create_execution_context()\n"
        "def _helper(ctx):\n"
        "    return ctx.set_input_shape('x', (1, 3))\n"
        "def load(data):\n"
        "    runtime = trt.Runtime(None)\n"
        "    runner = Runner(runtime.deserialize_cuda_engine(data))\n"
        "    return _helper(runner.context())\n"
    )
    assert walk.errors == []
    assert {(u.owner, u.attr) for u in walk.uses} >= {
        ("Runtime", "deserialize_cuda_engine"),
        ("ICudaEngine", "create_execution_context"),
        ("IExecutionContext", "set_input_shape"),
    }


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ("e = trt.Runtime(None).deserialize_cuda_engine(b'')\nd = e.get_tensor_dtype('x')\nd.itemsize\n", "RETURNS"),
        ("def f(name):\n    return getattr(trt, name)\n", "DYNAMIC"),
        ("from elsewhere import helper\nhelper(trt.Builder(None))\n", "HANDOFFS"),
        ("import importlib\nt = importlib.import_module('tensorrt')\n", "import tensorrt as trt"),
        ("class L(trt.ILogger):\n    def flush(self):\n        pass\n", "SUBCLASSES"),
        ("class M(trt.IAlgorithmSelector):\n    pass\n", "SUBCLASSES does not list"),
        ("x = 1  # trt-api: 10\n", "bad trt-api marker"),
    ],
)
def test_api_check_fails_on_what_it_cannot_attribute(api_check, body: str, complaint: str) -> None:
    walk = api_check.Walk("import tensorrt as trt\n" + body)
    assert any(complaint in e for e in walk.errors), walk.errors


def test_api_check_version_markers(api_check) -> None:
    walk = api_check.Walk(
        "import tensorrt as trt\n"
        "def new(config, monitor):  # trt-api: >=10\n"
        "    config.progress_monitor = monitor\n"
        "def both(builder):\n"
        "    builder.create_builder_config()\n"
        "    if trt.__version__ < '10':  # trt-api: <10, >=8.5\n"
        "        builder.platform_has_fast_fp16\n"
    )
    specs = {u.attr: u.spec for u in walk.uses}
    assert api_check.spec_text(specs["create_builder_config"]) == "all"
    assert api_check.applies(specs["progress_monitor"], (10, 3, 0)) and not api_check.applies(
        specs["progress_monitor"], (8, 6, 1)
    )
    assert api_check.spec_text(specs["platform_has_fast_fp16"]) == "<10,>=8.5"
    assert api_check.applies(specs["platform_has_fast_fp16"], (8, 5, 2))
    assert not api_check.applies(specs["platform_has_fast_fp16"], (8, 4))


class _Pybind:
    """A stand-in for a pybind11 method: callable, with the docstring pybind11 writes."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc

    def __call__(self, *args: object) -> None:  # pragma: no cover - never called
        raise AssertionError


def _fake_tensorrt() -> types.ModuleType:
    def getter(doc: str) -> object:
        def fget(self: object) -> None:  # pragma: no cover - never called
            raise AssertionError

        fget.__doc__ = doc
        return fget

    config = type(
        "IBuilderConfig",
        (),
        {
            "set_timing_cache": _Pybind(
                "set_timing_cache(self: m.IBuilderConfig, cache: m.ITimingCache, ignore_mismatch: bool) -> bool\n"
            ),
            "get_timing_cache": _Pybind("get_timing_cache(self: m.IBuilderConfig) -> m.IHostMemory\n"),
            "num_optimization_profiles": property(getter("(arg0: m.IBuilderConfig) -> int")),
        },
    )
    monitor = type(
        "IProgressMonitor",
        (),
        {"phase_start": _Pybind("phase_start(self: m.IProgressMonitor, phase_name: str, parent: str, n: int) -> None")},
    )
    module = types.ModuleType("tensorrt")
    module.IBuilderConfig = config  # type: ignore[attr-defined]
    module.IProgressMonitor = monitor  # type: ignore[attr-defined]
    return module


MONITOR = "IProgressMonitor"


@pytest.mark.parametrize(
    ("use", "failed", "words"),
    [
        ({"attr": "set_timing_cache", "kind": "call", "npos": 1, "keywords": ("ignore_mismatch",)}, False, "ok"),
        ({"attr": "set_timing_cache", "kind": "call", "npos": 1, "keywords": ("ignore",)}, True, "NO OVERLOAD"),
        ({"attr": "set_timing_cache", "kind": "call", "npos": 3}, True, "NO OVERLOAD"),
        ({"attr": "set_timing_cache", "kind": "read"}, True, "found, but a method"),
        ({"attr": "num_optimization_profiles", "kind": "read"}, False, "property"),
        ({"attr": "num_optimization_profiles", "kind": "write"}, True, "used as write"),
        ({"attr": "get_timing_cache", "kind": "call"}, True, "RETURNS says ITimingCache"),
        ({"attr": "max_workspace_size", "kind": "write"}, True, "MISSING"),
        ({"attr": "max_workspace_size", "kind": "read", "optional": True}, False, "absent (guarded)"),
        ({"owner": MONITOR, "attr": "phase_start", "kind": "override", "params": ("a", "b")}, True, "passes 3"),
        ({"owner": MONITOR, "attr": "phase_start", "kind": "override", "params": ("a", "b", "c")}, False, "ok"),
        ({"owner": "IAlgorithmSelector", "attr": "select_algorithms", "kind": "call"}, True, "missing class"),
    ],
)
def test_api_check_judges_uses_against_the_bindings(api_check, use: dict, failed: bool, words: str) -> None:
    fields = {"owner": "IBuilderConfig", "line": 1, "function": "f", **use}
    row = api_check.check_use(_fake_tensorrt(), api_check.Use(**fields))
    assert row.failed is failed, row
    assert words in f"{row.status} {row.signature}"


def test_api_check_reads_overloaded_pybind_docstrings(api_check) -> None:
    doc = (
        "set_input_shape(*args, **kwargs)\nOverloaded function.\n\n"
        "1. set_input_shape(self: m.IExecutionContext, name: str, shape: Tuple[int, int]) -> bool\n\n    Set it.\n\n"
        "2. set_input_shape(self: m.IExecutionContext, name: str, shape: m.Dims = <m.Dims object at 0x1>) -> bool\n"
    )
    sigs = api_check.parse_doc_signatures("set_input_shape", doc)
    assert [[n for n, _ in s.params] for s in sigs] == [["self", "name", "shape"]] * 2
    assert [s.params[2][1] for s in sigs] == [False, True]
    assert api_check.short_type(sigs[0].returns) == "bool"
    assert api_check.short_type("nvonnxparser::IParserError") == "IParserError"


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is None and importlib.util.find_spec("tensorrt_bindings") is None,
    reason="no TensorRT bindings here: `make check-tensorrt-api` installs them per version under build/trt/",
)
def test_api_check_against_the_tensorrt_installed_here() -> None:
    result = subprocess.run([sys.executable, str(API_CHECK)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


# --------------------------------------------------------------------------- needs TensorRT and a GPU


def _recorder() -> tuple[list[tuple[float, str]], object]:
    calls: list[tuple[float, str]] = []
    return calls, lambda fraction, message: calls.append((fraction, message))


def _parser_errors(path: Path) -> list[str]:
    """Parse ``path`` with TensorRT directly: the messages BuildError must carry verbatim."""
    import tensorrt as trt

    logger = trt_backend.shared_logger()
    builder = trt.Builder(logger)
    members = trt.NetworkDefinitionCreationFlag.__members__
    explicit = version_tuple(trt.__version__) < (10,) and "EXPLICIT_BATCH" in members
    network = builder.create_network(1 << int(members["EXPLICIT_BATCH"]) if explicit else 0)
    parser = trt.OnnxParser(network, logger)
    assert not parser.parse(path.read_bytes(), str(path))
    return [str(parser.get_error(i)) for i in range(parser.num_errors)]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("trt-models")
    conv = conv_classifier(root / "conv.onnx")
    return {
        "conv": conv,
        "conv_static": conv_classifier(root / "conv-static.onnx", batch=2),
        "tiny": tiny_onnx_classifier(root / "tiny.onnx", classes=4, channels=3, size=8),
        "conv_int8": tensorrt_friendly_qdq(conv, root / "conv-int8.onnx", images(128, (3, 16, 16), seed=7)),
    }


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> TensorRTBackend:
    return TensorRTBackend(tmp_path_factory.mktemp("timing"), "test-gpu", max_batch=16, opt_batch=4)


def _build_and_load(backend: TensorRTBackend, onnx_path: Path, precision: str, folder: Path):
    engine_path = folder / f"{onnx_path.stem}-{precision}.plan"
    calls, progress = _recorder()
    backend.build(onnx_path, precision, engine_path, progress)
    assert engine_path.stat().st_size > 0
    return backend.load(engine_path), calls


@pytest.mark.gpu
@pytest.mark.skipif(not AVAILABLE, reason=REASON)
class TestOnGpu:
    @pytest.mark.parametrize(
        ("model", "precision", "rtol", "atol"),
        [
            ("conv", "fp32", 1e-3, 1e-3),
            ("tiny", "fp32", 1e-3, 1e-2),  # all-ones Gemm: logits are sums of 192 inputs
            ("conv", "fp16", 2e-2, 3e-2),
            ("tiny", "fp16", 2e-2, 2e-1),
        ],
    )
    def test_logits_match_onnxruntime(self, backend, models, tmp_path, model, precision, rtol, atol) -> None:
        runner, _ = _build_and_load(backend, models[model], precision, tmp_path)
        with runner:
            batch = images(7, runner.input_shape)
            logits, _ = runner.infer(batch)
            expected = ort_logits(models[model], batch)
            assert logits.dtype == np.float32 and logits.shape == expected.shape == (7, runner.num_classes)
            np.testing.assert_allclose(logits, expected, rtol=rtol, atol=atol)

    def test_int8_from_qdq_onnx_matches_onnxruntime(self, backend, models, tmp_path) -> None:
        runner, _ = _build_and_load(backend, models["conv_int8"], "int8", tmp_path)
        with runner:
            batch = images(runner.max_batch, runner.input_shape, seed=3)
            logits, _ = runner.infer(batch)
        expected = ort_logits(models["conv_int8"], batch)  # the same QDQ model, run by ONNX Runtime on the CPU
        scale = float(np.abs(expected).max())
        assert float(np.abs(logits - expected).max()) <= 0.1 * scale + 0.05
        assert float(np.mean(logits.argmax(1) == expected.argmax(1))) >= 0.8

    def test_int8_refuses_a_model_without_qdq(self, backend, models, tmp_path) -> None:
        with pytest.raises(BuildError, match="QuantizeLinear"):
            backend.build(models["conv"], "int8", tmp_path / "e.plan", lambda f, m: None)

    def test_controller_variants_build(self, backend, models, tmp_path) -> None:
        """The registry's own FP16 and INT8 artifacts (ONNX Runtime QDQ defaults) must build and agree."""
        pytest.importorskip("torch")
        from jetfleet.controller.export.variants import convert_fp16, quantize_int8

        calib = images(64, (3, 16, 16), seed=5)
        for name, path, precision in [
            ("fp16", convert_fp16(models["conv"], tmp_path / "conv-fp16.onnx"), "fp16"),
            ("int8", quantize_int8(models["conv"], tmp_path / "conv-ort-int8.onnx", calib), "int8"),
        ]:
            runner, _ = _build_and_load(backend, path, precision, tmp_path)
            with runner:
                batch = images(8, runner.input_shape, seed=9)
                logits, _ = runner.infer(batch)
            expected = ort_logits(path, batch)
            assert float(np.abs(logits - expected).max()) <= 0.1 * float(np.abs(expected).max()) + 0.05, name

    def test_timing_cache_is_written_then_reused(self, models, tmp_path) -> None:
        backend = TensorRTBackend(tmp_path / "timing", "test-gpu", max_batch=8, opt_batch=2)
        cache = backend.timing_cache_path
        assert cache == tmp_path / "timing" / f"test-gpu-trt{backend.version()}.cache"
        first, progress = _recorder()
        backend.build(models["conv"], "fp32", tmp_path / "a.plan", progress)
        assert cache.is_file() and cache.stat().st_size > 0
        assert not any("loaded timing cache" in m for _, m in first)
        second, progress = _recorder()
        backend.build(models["conv"], "fp32", tmp_path / "b.plan", progress)
        assert any("loaded timing cache" in m for _, m in second)

    def test_corrupt_timing_cache_is_replaced_not_fatal(self, models, tmp_path) -> None:
        backend = TensorRTBackend(tmp_path / "timing", "test-gpu", max_batch=8, opt_batch=2)
        backend.timing_cache_path.parent.mkdir(parents=True)
        backend.timing_cache_path.write_bytes(b"this is not a timing cache" * 10)
        calls, progress = _recorder()
        backend.build(models["conv"], "fp32", tmp_path / "e.plan", progress)
        assert not any("loaded timing cache" in m for _, m in calls)
        assert b"this is not a timing cache" not in backend.timing_cache_path.read_bytes()
        with backend.load(tmp_path / "e.plan") as runner:
            assert runner.infer(images(1, runner.input_shape))[0].shape == (1, 5)

    def test_progress_goes_from_zero_to_one(self, backend, models, tmp_path) -> None:
        _, calls = _build_and_load(backend, models["conv"], "fp32", tmp_path)
        fractions = [f for f, _ in calls]
        assert fractions[0] == 0.0 and fractions[-1] == 1.0
        assert all(0.0 <= f <= 1.0 for f in fractions) and fractions == sorted(fractions)
        assert all(isinstance(m, str) and m for _, m in calls)

    def test_garbage_onnx_raises_the_parser_messages(self, backend, tmp_path) -> None:
        bad = tmp_path / "bad.onnx"
        bad.write_bytes(b"\x08\x07this is not a protobuf model\xff\xfe")
        errors = _parser_errors(bad)
        with pytest.raises(BuildError) as info:
            backend.build(bad, "fp32", tmp_path / "e.plan", lambda f, m: None)
        assert str(info.value)
        assert all(error in str(info.value) for error in errors)

    def test_unsupported_operator_raises_the_parser_messages(self, backend, tmp_path) -> None:
        model = unknown_op_model(tmp_path / "unknown.onnx")
        errors = _parser_errors(model)
        assert errors
        with pytest.raises(BuildError) as info:
            backend.build(model, "fp32", tmp_path / "e.plan", lambda f, m: None)
        assert all(error in str(info.value) for error in errors)
        assert "NoSuchOp" in str(info.value) or "UNSUPPORTED" in str(info.value)

    def test_invalid_engine_file(self, backend, tmp_path) -> None:
        junk = tmp_path / "junk.plan"
        junk.write_bytes(b"not an engine" * 100)
        with pytest.raises(BuildError, match="not a valid TensorRT engine") as info:
            backend.load(junk)
        assert str(info.value).startswith(INVALID_ENGINE)

    def test_runner_describes_the_engine(self, backend, models, tmp_path) -> None:
        runner, _ = _build_and_load(backend, models["conv"], "fp32", tmp_path)
        with runner:
            assert runner.input_name == "input" and runner.output_name == "logits"
            assert runner.input_shape == (3, 16, 16) and runner.num_classes == 5 and runner.max_batch == 16

    def test_batches_of_every_size_up_to_max(self, backend, models, tmp_path) -> None:
        runner, _ = _build_and_load(backend, models["conv"], "fp32", tmp_path)
        with runner:
            for n in (1, 3, runner.max_batch, 2, 1):  # shape changes both ways
                batch = images(n, runner.input_shape, seed=n)
                logits, _ = runner.infer(batch)
                np.testing.assert_allclose(logits, ort_logits(models["conv"], batch), rtol=1e-3, atol=1e-3)

    def test_static_batch_engine_pads_a_smaller_batch(self, backend, models, tmp_path) -> None:
        runner, _ = _build_and_load(backend, models["conv_static"], "fp32", tmp_path)
        with runner:
            assert runner.max_batch == 2
            one = images(1, runner.input_shape)
            logits, _ = runner.infer(one)
        expected = ort_logits(models["conv_static"], np.concatenate([one, np.zeros_like(one)]))[:1]
        np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-3)

    def test_bad_batches_raise(self, backend, models, tmp_path) -> None:
        runner, _ = _build_and_load(backend, models["conv"], "fp32", tmp_path)
        with runner:
            c, h, w = runner.input_shape
            with pytest.raises(ValueError, match="exceeds the engine's maximum of 16"):
                runner.infer(images(17, runner.input_shape))
            with pytest.raises(ValueError, match="does not match"):
                runner.infer(np.zeros((2, c, h + 1, w), np.float32))
            with pytest.raises(ValueError, match="does not match"):
                runner.infer(np.zeros((c, h, w), np.float32))
            with pytest.raises(ValueError, match="floating point"):
                runner.infer(np.zeros((1, c, h, w), np.uint8))
            with pytest.raises(ValueError, match="empty"):
                runner.infer(np.zeros((0, c, h, w), np.float32))
            assert runner.infer(images(2, runner.input_shape))[0].shape == (2, 5)  # still usable

    def test_timing_fields_are_populated(self, backend, models, tmp_path) -> None:
        runner, _ = _build_and_load(backend, models["conv"], "fp32", tmp_path)
        with runner:
            runner.infer(images(8, runner.input_shape))  # warm-up
            _, timing = runner.infer(images(8, runner.input_shape))
        assert isinstance(timing, Timing)
        assert None not in (timing.h2d_ms, timing.compute_ms, timing.d2h_ms)
        assert timing.compute_ms > 0 and timing.h2d_ms >= 0 and timing.d2h_ms >= 0
        assert timing.total_ms >= timing.compute_ms

    def test_close_is_final_and_idempotent(self, backend, models, tmp_path) -> None:
        runner, _ = _build_and_load(backend, models["conv"], "fp32", tmp_path)
        runner.close()
        runner.close()
        with pytest.raises(RuntimeError, match="closed"):
            runner.infer(images(1, runner.input_shape))

    def test_builder_flags_name_what_changes_the_engine(self, backend) -> None:
        flags = {p: backend.builder_flags(p) for p in ("fp32", "fp16", "int8")}
        assert len({json.dumps(f, sort_keys=True) for f in flags.values()}) == 3
        assert all(f["max_batch"] == 16 and f["opt_batch"] == 4 for f in flags.values())
        assert flags["fp32"] == backend.builder_flags("fp32")  # stable: free memory is not part of it


CUDA_OK, CUDA_REASON = cuda.cuda_available()


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA_OK, reason=CUDA_REASON)
def test_cuda_round_trip_through_pinned_memory_and_a_stream() -> None:
    """The exact calls TensorRTRunner makes, on a real GPU: bytes survive host→device→host and events time it."""
    rt = cuda.load()
    free, total = rt.mem_get_info()
    assert 0 < free <= total
    nbytes = 4 << 20
    payload = np.random.default_rng(0).integers(0, 256, nbytes, dtype=np.uint8)
    host_in, host_out = rt.host_alloc(nbytes), rt.host_alloc(nbytes)
    device = rt.malloc(nbytes)
    stream = rt.stream_create()
    events = [rt.event_create() for _ in range(3)]
    try:
        ctypes_in = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(host_in))
        ctypes_in[:] = payload
        rt.event_record(events[0], stream)
        rt.memcpy_htod_async(device, host_in, nbytes, stream)
        rt.event_record(events[1], stream)
        rt.memcpy_dtoh_async(host_out, device, nbytes, stream)
        rt.event_record(events[2], stream)
        rt.stream_synchronize(stream)
        back = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(host_out))
        assert np.array_equal(back, payload)
        htod, dtoh = rt.event_elapsed_ms(events[0], events[1]), rt.event_elapsed_ms(events[1], events[2])
        assert htod > 0 and dtoh > 0
        print(f"4 MiB pinned copies: H2D {nbytes / htod / 1e6:.1f} GB/s, D2H {nbytes / dtoh / 1e6:.1f} GB/s")
    finally:
        for event in events:
            rt.event_destroy(event)
        rt.stream_destroy(stream)
        rt.free(device)
        rt.free_host(host_in)
        rt.free_host(host_out)


def test_cuda_errors_name_the_call() -> None:
    """A bad free is CUDA's error, raised with the call's name, where a runtime exists."""
    if not CUDA_OK:
        pytest.skip(CUDA_REASON)
    with pytest.raises(cuda.CudaError) as info:
        cuda.load().free(0xDEAD0000)
    assert info.value.call == "cudaFree"
