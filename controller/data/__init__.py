"""Datasets, splits, loaders and batch augmentation for training."""

from jetfleet.controller.data.augment import AugmentConfig, BatchAugment
from jetfleet.controller.data.datasets import DataOptions, DatasetBundle, load_dataset
from jetfleet.controller.data.loading import Loader, epoch_generator, make_loader

__all__ = [
    "AugmentConfig",
    "BatchAugment",
    "DataOptions",
    "DatasetBundle",
    "Loader",
    "epoch_generator",
    "load_dataset",
    "make_loader",
]
