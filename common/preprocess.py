"""How raw pixels become a model's input, in a form both sides understand.

A model version carries its :class:`PreprocessSpec` so an agent can rebuild
exactly the transforms used in training with numpy alone (no torch on a
device). The controller writes it into every checkpoint; later the registry
and the ONNX metadata carry the same dictionary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from jetfleet.common.errors import JetfleetError


@dataclass(frozen=True)
class PreprocessSpec:
    """Input geometry, normalization and label names of a classifier.

    Pixels are scaled to [0, 1], resized to ``input_size`` (shorter side, then
    centre crop), converted to ``channels`` (1 = grayscale, 3 = RGB) and
    normalized per channel with ``mean``/``std``.
    """

    input_size: tuple[int, int]
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise JetfleetError(f"preprocessing spec: channels must be 1 or 3, got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise JetfleetError(
                "preprocessing spec: mean and std need one value per channel "
                f"({self.channels}), got {len(self.mean)} and {len(self.std)}"
            )
        if any(s <= 0 for s in self.std):
            raise JetfleetError(f"preprocessing spec: std must be positive, got {self.std}")
        if min(self.input_size) < 1:
            raise JetfleetError(f"preprocessing spec: bad input size {self.input_size}")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (lists, not tuples), the on-disk form."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        try:
            return cls(
                input_size=(int(data["input_size"][0]), int(data["input_size"][1])),
                channels=int(data["channels"]),
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
                labels=tuple(str(v) for v in data.get("labels", ())),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise JetfleetError(f"preprocessing spec is malformed: {exc!r}") from exc
