"""The gate before a swap: does the new engine fit its spec, and does it still classify?

``check_io`` catches a spec that does not match the model (a 3×32×32 spec
for a 1×8×8 network) before any job could feed it. ``smoke_test`` classifies
the version's test set with the new engine and compares top-1 with the
registry's figure for the same artifact: a broken build, a bad INT8
calibration or a mis-specified normalization shows up as a drop of many
points, while honest backend differences stay within a fraction of one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jetfleet.agent.engines.base import Runner
from jetfleet.agent.errors import INVALID_ARGUMENT, AgentError
from jetfleet.agent.inputs import test_set_input
from jetfleet.agent.jobs import JobParams, infer_batch, run_job
from jetfleet.common.errors import JetfleetError
from jetfleet.common.fleet import ModelSpec

SMOKE_BATCH = 64  # large enough to be quick, small enough for a Nano's memory


class SmokeTestFailed(JetfleetError):
    """The new engine classifies worse than the registry says it should."""


def check_io(runner: Runner, spec: ModelSpec) -> None:
    """Refuse a model whose input or output does not match the spec it was sent with."""
    pre = spec.preprocess
    expected = (pre.channels, *pre.input_size)
    if tuple(runner.input_shape) != expected:
        raise AgentError(
            INVALID_ARGUMENT,
            f"input spec does not match the model: the spec says {_shape(expected)}, "
            f"the model takes {_shape(runner.input_shape)}",
        )
    if pre.labels and runner.num_classes and runner.num_classes != len(pre.labels):
        raise AgentError(
            INVALID_ARGUMENT,
            f"output does not match the spec: {len(pre.labels)} labels, but the model has {runner.num_classes} outputs",
        )


def smoke_test(runner: Runner, spec: ModelSpec, test_set: Path | None, margin_points: float) -> float | None:
    """Top-1 on the test set (None without one), raising :class:`SmokeTestFailed` below the allowed margin."""
    if test_set is None:
        x = np.zeros((1, *runner.input_shape), dtype=np.float32)
        logits, _ = infer_batch(runner, x)
        if not np.isfinite(logits).all():
            raise SmokeTestFailed("the model returns non-finite outputs for a blank image")
        return None
    job = test_set_input(test_set, spec.preprocess, SMOKE_BATCH, 0)
    num_classes = runner.num_classes or len(spec.preprocess.labels)
    measured = run_job(runner, job.batches, job.total, num_classes, spec.preprocess.labels, JobParams(warmup=0))
    if measured.top1 is None:
        raise SmokeTestFailed("the test set has no labels to score against")
    ref = spec.reference_accuracy
    if ref is not None and measured.top1 < ref - margin_points / 100:
        raise SmokeTestFailed(
            f"smoke test accuracy {measured.top1:.2%} is {100 * (ref - measured.top1):.2f} points below "
            f"the registry's {ref:.2%} for this artifact (allowed: {margin_points:g} points)"
        )
    return measured.top1


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape)
