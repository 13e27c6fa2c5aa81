"""torchvision architectures adapted to small inputs and any class count.

Weights are always randomly initialised: jetfleet never downloads anything
at run time, and ImageNet weights would not fit 1-channel 8×8 digits anyway.
torchvision is imported inside each constructor: importing it costs ~3 s of
start-up that a run training ``basic_cnn`` should not pay.
"""

from __future__ import annotations

from torch import nn

from jetfleet.controller.models.registry import register_model


@register_model
def resnet18(num_classes: int = 10, in_channels: int = 3, small_input: bool = True) -> nn.Module:
    """torchvision ResNet-18; ``small_input`` swaps the 7×7/2 stem and max-pool for a 3×3/1 conv.

    Without that swap a 32×32 image is 8×8 after the stem and 1×1 by stage 4.
    """
    from torchvision.models import resnet18 as tv_resnet18

    model = tv_resnet18(weights=None, num_classes=num_classes)
    if small_input or in_channels != 3:
        stride, kernel = (1, 3) if small_input else (2, 7)
        model.conv1 = nn.Conv2d(in_channels, 64, kernel, stride=stride, padding=kernel // 2, bias=False)
    if small_input:
        model.maxpool = nn.Identity()
    return model


@register_model
def mobilenet_v3_small(num_classes: int = 10, in_channels: int = 3, small_input: bool = True) -> nn.Module:
    """torchvision MobileNetV3-Small; ``small_input`` makes the stride-2 stem stride 1 so small images keep detail."""
    from torchvision.models import mobilenet_v3_small as tv_mobilenet

    model = tv_mobilenet(weights=None, num_classes=num_classes)
    stem = model.features[0][0]
    assert isinstance(stem, nn.Conv2d)
    if small_input or in_channels != 3:
        model.features[0][0] = nn.Conv2d(
            in_channels,
            stem.out_channels,
            kernel_size=3,
            stride=1 if small_input else 2,
            padding=1,
            bias=False,
        )
    return model
