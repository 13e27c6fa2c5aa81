"""Checkpoints as plain dicts, loaded only with ``weights_only=True``.

A checkpoint is self-describing (timm/torchvision style): it names its
architecture, carries the full training config and the preprocessing spec,
so evaluation, visualization and export need nothing else. Loading never
unpickles arbitrary objects, so a doctored file cannot run code.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from jetfleet.common.errors import JetfleetError
from jetfleet.common.files import atomic_path
from jetfleet.common.preprocess import PreprocessSpec
from jetfleet.controller.models import create_model, resolve_model_name

FORMAT = "jetfleet.checkpoint/1"
REQUIRED_KEYS = ("format", "model", "num_classes", "in_channels", "state_dict", "preprocess")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically: a crash mid-save leaves the previous checkpoint intact."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def _unpickling_reason(exc: Exception) -> str:
    """The one informative line of torch's long weights-only refusal."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for line in lines:
        if line.startswith("WeightsUnpickler error:"):
            return line.removeprefix("WeightsUnpickler error:").strip().split(". ")[0]
    return "it holds objects other than tensors and plain data"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint; every failure is one :class:`JetfleetError` line."""
    p = Path(path)
    if not p.is_file():
        raise JetfleetError(f"checkpoint {p} does not exist")
    if not zipfile.is_zipfile(p):
        raise JetfleetError(f"{p} is corrupt or not a checkpoint (torch.save writes a zip archive; this is not one)")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise JetfleetError(f"{p} is not a safe jetfleet checkpoint: {_unpickling_reason(exc)}") from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise JetfleetError(f"{p} is corrupt or not a checkpoint: {str(exc).splitlines()[0]}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise JetfleetError(f"{p} is not a jetfleet checkpoint (no {FORMAT!r} format tag)")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise JetfleetError(f"{p} is missing {', '.join(missing)}; it is damaged or from another tool")
    return ckpt


def preprocess_of(ckpt: dict[str, Any]) -> PreprocessSpec:
    return PreprocessSpec.from_dict(ckpt["preprocess"])


def model_from_checkpoint(ckpt: dict[str, Any], expected_model: str | None = None) -> nn.Module:
    """Rebuild the checkpoint's architecture and load its weights, in eval mode.

    ``expected_model`` guards against evaluating a file with the wrong
    network: the names must agree, and so must every tensor shape.
    """
    name = ckpt["model"]
    if expected_model is not None and resolve_model_name(expected_model) != name:
        raise JetfleetError(
            f"checkpoint holds a {name} model, not {resolve_model_name(expected_model)}",
            hint=f"pass --model {name} or use a {expected_model} checkpoint",
        )
    model = create_model(
        name, num_classes=ckpt["num_classes"], in_channels=ckpt["in_channels"], **ckpt.get("model_kwargs", {})
    )
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        detail = str(exc).splitlines()[0]
        raise JetfleetError(f"checkpoint weights do not fit model {name}: {detail}") from exc
    return model.eval()
