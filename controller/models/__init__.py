"""Model architectures and the registry that names them.

Importing this package registers every built-in architecture.
"""

from jetfleet.controller.models import basic_cnn, resnet, torchvision_models  # noqa: F401  (registration)
from jetfleet.controller.models.registry import (
    ALIASES,
    create_model,
    list_models,
    register_model,
    resolve_model_name,
)

__all__ = ["ALIASES", "create_model", "list_models", "register_model", "resolve_model_name"]
