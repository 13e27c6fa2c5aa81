"""The toolkit's reference CNN: small, fast, and good enough for 8×8 to 64×64 inputs."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from jetfleet.controller.models.registry import register_model


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Conv 3×3 → BatchNorm → ReLU → 2×2 max-pool (halves the resolution).

    ``ceil_mode`` keeps a 1-pixel map from vanishing, which is what lets an
    8×8 input pass three pooling stages.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=2, ceil_mode=True),
    )


class BasicCNN(nn.Module):
    """Three conv blocks (32→64→128 by default), adaptive pooling, FC head with dropout."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        widths: tuple[int, ...] = (32, 64, 128),
        hidden: int = 256,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        chans = (in_channels, *widths)
        self.features = nn.Sequential(*(conv_block(cin, cout) for cin, cout in itertools.pairwise(chans)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(widths[-1], hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def feature_blocks(self) -> list[tuple[str, nn.Module]]:
        """The conv blocks whose outputs feature-map plots show."""
        return [(f"block{i + 1}", block) for i, block in enumerate(self.features)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


@register_model
def basic_cnn(num_classes: int = 10, in_channels: int = 3, **kwargs: object) -> BasicCNN:
    """Three-block CNN; ``widths``, ``hidden`` and ``dropout`` are configurable."""
    return BasicCNN(num_classes=num_classes, in_channels=in_channels, **kwargs)  # type: ignore[arg-type]
