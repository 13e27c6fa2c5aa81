"""Job inputs as streams of normalized batches: a test set, a folder on the device, inline images.

All three become the same :class:`~jetfleet.agent.jobs.Batch` iterator, so
the job runner has one code path. Decoding happens lazily, batch by batch:
a folder of 50 000 images never sits in memory at once.

Only folders and inline images are decoded, with Pillow
(:mod:`jetfleet.agent.decode`), imported by the first such job: test sets
are already pixels, and an agent that only serves models and scores test
sets (smoke tests included) never loads Pillow.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from jetfleet.agent import imaging
from jetfleet.agent.errors import INVALID_ARGUMENT, NOT_FOUND, AgentError
from jetfleet.agent.jobs import Batch
from jetfleet.agent.store import ArtifactStore
from jetfleet.common.errors import JetfleetError
from jetfleet.common.fleet import ModelSpec
from jetfleet.common.preprocess import PreprocessSpec
from jetfleet.proto import convert


@dataclass
class JobInput:
    batches: Iterator[Batch]
    total: int  # items, for progress (errors included)


def open_input(request: Any, spec: ModelSpec, store: ArtifactStore, batch_size: int, limit: int) -> JobInput:
    """The input a ``JobRequest`` names, checked against the model's preprocessing spec."""
    kind = request.WhichOneof("input")
    if kind == "test_set":
        ref = convert.artifact_from_pb(request.test_set)
        if ref is None:
            raise AgentError(INVALID_ARGUMENT, "the job's test set has no sha256")
        return test_set_input(store.verify(ref), spec.preprocess, batch_size, limit)
    if kind == "folder":
        return folder_input(Path(request.folder), spec.preprocess, batch_size, limit)
    if kind == "images":
        items = [(i.name, i.data, i.label if i.HasField("label") else None) for i in request.images.images]
        return encoded_input(items, spec.preprocess, batch_size, limit)
    raise AgentError(INVALID_ARGUMENT, "a job needs an input: test_set, folder or images")


def test_set_input(path: Path, spec: PreprocessSpec, batch_size: int, limit: int) -> JobInput:
    """The registry's npz test set (uint8 at the model's input size), normalized batch by batch."""
    try:
        ts = imaging.load_test_set(path, spec)
    except JetfleetError as exc:
        raise AgentError(INVALID_ARGUMENT, str(exc)) from exc
    n = len(ts.labels) if not limit else min(limit, len(ts.labels))

    def batches() -> Iterator[Batch]:
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            x = imaging.normalize_uint8(ts.images[start:stop], spec)
            labels = [int(v) for v in ts.labels[start:stop]]
            yield Batch(x, [f"test[{i}]" for i in range(start, stop)], labels)  # type: ignore[arg-type]

    return JobInput(batches(), n)


def folder_input(root: Path, spec: PreprocessSpec, batch_size: int, limit: int) -> JobInput:
    if not root.is_dir():
        raise AgentError(NOT_FOUND, f"job folder {root} does not exist on this device")
    try:
        folder = imaging.load_folder(root, spec)
    except JetfleetError as exc:
        raise AgentError(INVALID_ARGUMENT, str(exc)) from exc
    if limit:
        folder = replace(folder, items=folder.items[:limit])
    from jetfleet.agent import decode  # Pillow: only jobs that decode images load it (module docstring)

    return JobInput(_batches(decode.iter_folder(folder, spec, batch_size)), len(folder.items) + len(folder.refused))


def encoded_input(
    items: list[tuple[str, bytes, int | None]], spec: PreprocessSpec, batch_size: int, limit: int
) -> JobInput:
    items = items[:limit] if limit else items
    if not items:
        raise AgentError(INVALID_ARGUMENT, "the job has no images")
    from jetfleet.agent import decode  # Pillow: only jobs that decode images load it (module docstring)

    return JobInput(_batches(decode.iter_encoded(items, spec, batch_size)), len(items))


def _batches(stream: Iterator[imaging.Batch]) -> Iterator[Batch]:
    for b in stream:
        yield Batch(b.images, list(b.names), list(b.labels), list(b.errors))
