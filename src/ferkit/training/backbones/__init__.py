"""Plain-torch backbones behind a registry: :mod:`.base` (the registry, the ``Classifier`` shape, parameter groups
and ``vgg_small``) and :mod:`.larger` (``resnet18_small``, ``mobilenetv3_small``, ``attention_ensemble``), which
registers itself when this package is imported."""

from ferkit.training.backbones import larger as _larger  # noqa: F401 - registers the larger backbones
from ferkit.training.backbones.base import (
    BACKBONES,
    Classifier,
    configured_backbone,
    create_backbone,
    param_groups,
    register_backbone,
)

__all__ = ["BACKBONES", "Classifier", "configured_backbone", "create_backbone", "param_groups", "register_backbone"]
