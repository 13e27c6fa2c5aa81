"""A name → constructor registry in the timm/torchvision style.

Every architecture registers itself with :func:`register_model`; the CLI,
checkpoints and tests only ever go through :func:`create_model` and
:func:`list_models`, so adding a model is one decorated function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from jetfleet.common.errors import JetfleetError

ModelFn = Callable[..., nn.Module]
F = TypeVar("F", bound=ModelFn)

_REGISTRY: dict[str, ModelFn] = {}

# The toolkit jetfleet grew from used class names on its command line; keep
# them working so existing scripts and muscle memory still do.
ALIASES: dict[str, str] = {
    "BasicCNN": "basic_cnn",
    "CustomResNet": "custom_resnet",
    "ResNet18": "resnet18",
    "MobileNetV3Small": "mobilenet_v3_small",
}


def register_model(fn: F) -> F:
    """Register ``fn`` under its ``__name__``; a second model with that name is a bug."""
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered by {_REGISTRY[name].__module__}")
    _REGISTRY[name] = fn
    return fn


def list_models() -> list[str]:
    """Registered canonical names, sorted."""
    return sorted(_REGISTRY)


def resolve_model_name(name: str) -> str:
    """Map a CLI spelling (canonical, alias, any case) to the canonical name."""
    if name in _REGISTRY:
        return name
    if name in ALIASES:
        return ALIASES[name]
    lowered = {k.lower(): k for k in (*_REGISTRY, *ALIASES)}
    key = lowered.get(name.lower())
    if key is not None:
        return ALIASES.get(key, key)
    raise JetfleetError(f"unknown model {name!r}", hint=f"choose one of: {', '.join(list_models())}")


def create_model(name: str, num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> nn.Module:
    """Build a registered model with randomly initialised weights."""
    canonical = resolve_model_name(name)
    try:
        return _REGISTRY[canonical](num_classes=num_classes, in_channels=in_channels, **kwargs)
    except TypeError as exc:
        raise JetfleetError(f"bad options for model {canonical!r}: {exc}") from exc
