"""Pick the engine backend: the first of the configured preferences that works here.

TensorRT needs the ``tensorrt`` module (JetPack's python3-libnvinfer) and a
CUDA device; ONNX Runtime works everywhere. The reason a preferred backend is
unusable is logged once at start, so "why is my Orin running ONNX Runtime?"
has an answer in the journal.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path

from jetfleet.agent.config import AgentConfig
from jetfleet.agent.engines.base import Backend
from jetfleet.common.device import DeviceInfo
from jetfleet.common.errors import JetfleetError

log = logging.getLogger(__name__)


def _availability(name: str) -> tuple[bool, str]:
    if name == "tensorrt":
        from jetfleet.agent.engines.tensorrt import tensorrt_available

        return tensorrt_available()
    from jetfleet.agent.engines.onnxruntime import onnxruntime_available

    return onnxruntime_available()


def usable_backends(preference: tuple[str, ...]) -> list[str]:
    """The preferred backends that can run here, in preference order."""
    usable = []
    for name in preference:
        ok, why = _availability(name)
        if ok:
            usable.append(name)
        else:
            log.info("backend %s unavailable: %s", name, why)
    return usable


def choose_backend(config: AgentConfig, device: DeviceInfo, data_dir: Path) -> Backend:
    """An instance of the first usable backend in ``config.backends``."""
    for name in usable_backends(config.backends):
        if name == "tensorrt":
            from jetfleet.agent.engines.tensorrt import TensorRTBackend

            return TensorRTBackend(  # type: ignore[return-value]
                timing_cache_dir=data_dir / "timing-cache",
                device_class=device.device_class,
                workspace_fraction=config.workspace_fraction,
            )
        from jetfleet.agent.engines.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(threads=config.job_threads)
    reasons = "; ".join(f"{n}: {_availability(n)[1]}" for n in config.backends)
    raise JetfleetError(f"no usable engine backend ({reasons})")


def backend_report() -> dict[str, tuple[bool, str]]:
    """Every known backend with whether it can run here and why (for ``jetfleet-agent info``)."""
    return {name: _availability(name) for name in ("tensorrt", "onnxruntime")}


@dataclass(frozen=True)
class ModuleReport:
    """Whether a backend's Python module imports here, its version, and where it came from.

    The path answers "which tensorrt is this?": JetPack's bindings live in
    /usr/lib/python3.X/dist-packages, a PyPI wheel in the venv's site-packages.
    """

    name: str
    version: str | None = None
    path: str | None = None
    error: str | None = None  # "ImportError: libnvinfer.so.10: cannot open shared object file", when it failed

    @property
    def importable(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "path": self.path, "error": self.error}


def import_report(module: str) -> ModuleReport:
    """Import ``module`` and say what came in; never raises (a broken CUDA install raises OSError, not ImportError)."""
    try:
        mod = importlib.import_module(module)
    except Exception as exc:
        return ModuleReport(module, error=f"{type(exc).__name__}: {exc}")
    version = getattr(mod, "__version__", None)
    origin = getattr(mod, "__file__", None)
    folder = str(Path(origin).parent) if origin else None
    return ModuleReport(module, str(version) if version else None, folder)


def onnxruntime_providers() -> tuple[str, ...]:
    """ONNX Runtime's execution providers in its preference order; empty when it does not import.

    The PyPI wheel for aarch64 has only ``CPUExecutionProvider``; NVIDIA's Jetson
    build adds ``CUDAExecutionProvider`` and ``TensorrtExecutionProvider``.
    """
    try:
        import onnxruntime
    except Exception:
        return ()
    return tuple(onnxruntime.get_available_providers())
