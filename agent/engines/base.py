"""The one interface every engine backend implements.

A backend turns an ONNX file into an *engine file* once (``build``), and an
engine file into a *runner* every time the agent starts or activates a model
(``load``). The agent caches engine files under a fingerprint
(:mod:`jetfleet.agent.engines.cache`) of everything that makes them valid, so
the expensive build runs once per artifact, device and precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol  # typing's Callable: subscripted at run time, on 3.8

import numpy as np
import numpy.typing as npt

# progress(fraction 0-1 or negative when unknown, message)
BuildProgress = Callable[[float, str], None]
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Timing:
    """Where one batch's time went, in milliseconds; ``None`` where the backend cannot tell."""

    total_ms: float
    h2d_ms: float | None = None
    compute_ms: float | None = None
    d2h_ms: float | None = None


class Runner(Protocol):
    """A loaded engine, ready to classify normalized NCHW float32 batches."""

    input_name: str
    input_shape: tuple[int, int, int]  # (C, H, W), the batch dimension left out
    num_classes: int
    max_batch: int  # largest batch one call accepts

    def infer(self, batch: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], Timing]:
        """Logits ``(N, num_classes)`` of ``batch`` (``N <= max_batch``) and the time it took."""
        ...

    def close(self) -> None:
        """Free device memory; the runner is unusable afterwards."""
        ...


class BuildError(Exception):
    """The backend refused the model; ``str()`` is the backend's own message, verbatim."""


class Backend(Protocol):
    """An engine builder and loader (TensorRT, ONNX Runtime)."""

    name: str

    def version(self) -> str:
        """The backend library's version: part of the engine fingerprint."""
        ...

    def builder_flags(self, precision: str) -> dict[str, Any]:
        """Every build setting that changes the engine (precision flags, workspace, max batch...)."""
        ...

    def build(self, onnx_path: Path, precision: str, engine_path: Path, progress: BuildProgress) -> None:
        """Compile ``onnx_path`` into ``engine_path``; raise :class:`BuildError` with the parser's words."""
        ...

    def load(self, engine_path: Path) -> Runner:
        """Deserialize an engine built by :meth:`build` (raise :class:`BuildError` if it is unusable)."""
        ...
