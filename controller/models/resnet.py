"""A CIFAR-style ResNet (He et al. 2016, §4.2) with configurable depth and width."""

from __future__ import annotations

import torch
from torch import nn

from jetfleet.controller.models.registry import register_model


class BasicBlock(nn.Module):
    """Two 3×3 convs with a skip connection; a 1×1 projection when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CustomResNet(nn.Module):
    """Stem conv, then stages of residual blocks that double width and halve resolution.

    The stem keeps full resolution (no 7×7/stride-2 conv or max-pool) because
    32×32 inputs have no pixels to spare; that is also why 8×8 inputs work.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        blocks_per_stage: tuple[int, ...] = (2, 2, 2),
        base_width: int = 16,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, base_width, 3, padding=1, bias=False),
            nn.BatchNorm2d(base_width),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        width = base_width
        for i, n_blocks in enumerate(blocks_per_stage):
            out = base_width * 2**i
            stride = 1 if i == 0 else 2
            layers = [BasicBlock(width, out, stride)]
            layers += [BasicBlock(out, out) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*layers))
            width = out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(width, num_classes))

    def feature_blocks(self) -> list[tuple[str, nn.Module]]:
        return [("stem", self.stem)] + [(f"stage{i + 1}", s) for i, s in enumerate(self.stages)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.stages(self.stem(x))))


@register_model
def custom_resnet(num_classes: int = 10, in_channels: int = 3, depth: int = 20, **kwargs: object) -> CustomResNet:
    """ResNet-``depth`` for small images: depth = 6n + 2 (20, 32, 44, 56 ...)."""
    if "blocks_per_stage" not in kwargs:
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"custom_resnet depth must be 6n+2 and at least 8, got {depth}")
        n = (depth - 2) // 6
        kwargs["blocks_per_stage"] = (n, n, n)
    return CustomResNet(num_classes=num_classes, in_channels=in_channels, **kwargs)  # type: ignore[arg-type]
