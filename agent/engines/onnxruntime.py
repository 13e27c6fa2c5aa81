"""The ONNX Runtime backend: CPU everywhere, CUDA where onnxruntime-gpu has it.

Its "engine" is the model after ONNX Runtime's graph optimizations, saved with
``optimized_model_filepath``; loading it skips optimization, which is what a
TensorRT plan buys too (start-up without the compile). Optimization level
EXTENDED keeps the saved model portable across CPUs of one class; the
fingerprint pins it to the device class anyway.

Precision is a property of the ONNX artifact (the registry exports FP16 and
INT8-QDQ variants), so the backend runs what it is given; QDQ models are fused
into integer kernels by the optimizer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from jetfleet.agent.engines.base import BuildError, BuildProgress, Timing

MAX_BATCH = 1024  # for models with a dynamic batch: bounded so a job cannot allocate without limit
_PREFERRED = ("CUDAExecutionProvider", "CPUExecutionProvider")


def onnxruntime_available() -> tuple[bool, str]:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - the agent extra installs it
        return False, f"onnxruntime is not installed ({exc})"
    return True, f"onnxruntime {onnxruntime.__version__} ({', '.join(onnxruntime.get_available_providers())})"


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, threads: int = 0, providers: tuple[str, ...] | None = None) -> None:
        import onnxruntime as ort

        self._ort = ort
        self.threads = threads
        available = ort.get_available_providers()
        self.providers = providers or tuple(p for p in _PREFERRED if p in available)

    def version(self) -> str:
        return str(self._ort.__version__)

    def builder_flags(self, precision: str) -> dict[str, Any]:
        return {"providers": list(self.providers), "optimization": "extended"}

    def _options(self, optimize: bool) -> Any:
        so = self._ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3  # errors only: warnings about unused initializers are noise on a device
        level = self._ort.GraphOptimizationLevel
        so.graph_optimization_level = level.ORT_ENABLE_EXTENDED if optimize else level.ORT_DISABLE_ALL
        return so

    def build(self, onnx_path: Path, precision: str, engine_path: Path, progress: BuildProgress) -> None:
        progress(0.0, f"optimizing with ONNX Runtime {self.version()} ({', '.join(self.providers)})")
        so = self._options(optimize=True)
        so.optimized_model_filepath = str(engine_path)
        try:
            self._ort.InferenceSession(str(onnx_path), so, providers=list(self.providers))
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise BuildError(str(exc)) from exc
        if not engine_path.is_file():
            raise BuildError("ONNX Runtime did not write the optimized model")
        progress(1.0, "optimized model saved")

    def load(self, engine_path: Path) -> OnnxRuntimeRunner:
        try:
            session = self._ort.InferenceSession(
                str(engine_path), self._options(optimize=False), providers=list(self.providers)
            )
        except Exception as exc:
            raise BuildError(f"cannot load the cached engine: {exc}") from exc
        return OnnxRuntimeRunner(session)


class OnnxRuntimeRunner:
    """A session over one optimized model; ``infer`` is end-to-end (no H2D/D2H split on CPU)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise BuildError(f"a classifier has one input and one output; this model has {len(inputs)} inputs")
        shape = inputs[0].shape
        if len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]):
            raise BuildError(f"the model's input must be N×C×H×W with fixed C, H, W; it is {shape}")
        self.input_name: str = inputs[0].name
        self.output_name: str = outputs[0].name
        self.input_shape: tuple[int, int, int] = (shape[1], shape[2], shape[3])
        self.max_batch: int = shape[0] if isinstance(shape[0], int) else MAX_BATCH
        classes = outputs[0].shape[-1] if outputs[0].shape else None
        self.num_classes: int = classes if isinstance(classes, int) else 0

    def infer(self, batch: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], Timing]:
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.input_shape:
            raise ValueError(f"batch shape {batch.shape} does not match the model's input N×{self.input_shape}")
        if batch.shape[0] > self.max_batch:
            raise ValueError(f"batch of {batch.shape[0]} exceeds the engine's maximum of {self.max_batch}")
        start = time.perf_counter()
        (logits,) = self.session.run([self.output_name], {self.input_name: batch})
        ms = (time.perf_counter() - start) * 1000
        return np.asarray(logits, dtype=np.float32), Timing(total_ms=ms)

    def close(self) -> None:
        self.session = None
