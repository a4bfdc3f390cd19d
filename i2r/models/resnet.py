"""ResNet-18 and ResNet-50 in plain torch, with torchvision's parameter and buffer names.

He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016), in torchvision's variant
("ResNet v1.5": the stride-2 convolution of a bottleneck is its 3x3 conv). The module tree
(``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``, ..., ``fc``) reproduces
torchvision's exactly, so published state dicts (Places365's ResNet-50, Monodepth2's ResNet-18
encoder) load with ``strict=True`` and no renaming. torchvision itself cannot be imported next to
the CPU torch this project pins, hence this copy of the architecture (not of its code).
"""

from __future__ import annotations

from torch import Tensor, nn


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4, residual connection (ResNet-50)."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet backbone + global average pool + linear classifier.

    Input ``(B, in_channels, H, W)`` (H, W >= 32), output logits ``(B, num_classes)``.
    :meth:`features` returns the five feature maps Monodepth2's encoder uses.
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int],
                 in_channels: int = 3, num_classes: int = 1000):
        super().__init__()
        self.in_channels = in_channels
        self._planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], 1)
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self._init_weights()

    def _make_layer(self, block, width: int, n_blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        out_channels = width * block.expansion
        if stride != 1 or self._planes != out_channels:
            downsample = nn.Sequential(_conv1x1(self._planes, out_channels, stride), nn.BatchNorm2d(out_channels))
        blocks = [block(self._planes, width, stride, downsample)]
        self._planes = out_channels
        blocks += [block(self._planes, width) for _ in range(1, n_blocks)]
        return nn.Sequential(*blocks)

    def _init_weights(self) -> None:
        # He initialisation (fan-out) for convs and unit BatchNorm, as torchvision does, so an
        # untrained network (the "no Places365" ablation) starts where torchvision's would.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def features(self, x: Tensor) -> list[Tensor]:
        """Feature maps after the stem's ReLU and after layer1..layer4 (strides 2, 4, 8, 16, 32)."""
        stem = self.relu(self.bn1(self.conv1(x)))
        out = [stem]
        x = self.maxpool(stem)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            out.append(x)
        return out

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)[-1]
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(in_channels: int = 3, num_classes: int = 1000) -> ResNet:
    """ResNet-18 (11,689,512 parameters with 3 input channels and 1000 classes)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels, num_classes)


def resnet50(in_channels: int = 3, num_classes: int = 1000) -> ResNet:
    """ResNet-50 (25,557,032 parameters with 3 input channels and 1000 classes)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels, num_classes)


ARCHITECTURES = {"resnet18": resnet18, "resnet50": resnet50}
