"""ERFNet encoder (Romera et al. 2018) as an image classifier: the paper's ImageNet variant
(Sec. 4.1) puts global average pooling and one fully-connected layer on the last feature map."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DownsamplerBlock(nn.Module):
    """Concatenates a 3x3/2 conv (cout - cin channels) with a 2x2 max-pool of the input."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout - cin, 3, 2, 1, bias=True)
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)  # ceil: odd sizes match the conv's output
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)
        self.relu = nn.ReLU(inplace=True)
        self.pool_in: nn.Module | None = None  # set by fold_for_deploy
        self.pool_out: nn.Module | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.pool_in is not None:  # folded for deployment (see fold_for_deploy)
            return self.relu(torch.cat([self.conv(x), self.pool_out(self.pool(self.pool_in(x)))], 1))
        return self.relu(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))

    @torch.no_grad()
    def fold_for_deploy(self) -> None:
        """Fold the BatchNorm after the concat (exporters cannot fold it: no conv right before it):
        its conv channels into the conv, its pool channels into a 1x1 depthwise conv. Eval only.

        The depthwise conv goes before the pool when every scale is positive (max-pooling commutes
        with an increasing affine map), else an identity depthwise conv goes before the pool and the
        affine after it. Either way the pool reads its own tensor, not the input it shares with the
        conv, and the conv's zero padding is its own op: with the input shared, litert-torch 0.10's
        int8 converter fails (measured: "'tfl.pad' op quantization parameters violate the same scale
        constraint", and behind a residual block "Attempting to convert non-NHWC compatible node")."""
        if self.pool_in is not None:
            return
        k = self.conv.out_channels
        scale = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        shift = self.bn.bias - self.bn.running_mean * scale
        self.conv.weight.mul_(scale[:k].view(-1, 1, 1, 1))
        self.conv.bias.mul_(scale[:k]).add_(shift[:k])
        pad = self.conv.padding
        self.conv.padding = (0, 0)
        self.conv = nn.Sequential(nn.ZeroPad2d((pad[1], pad[1], pad[0], pad[0])), self.conv)
        cin = scale.numel() - k

        def depthwise(weight, bias):
            conv = nn.Conv2d(cin, cin, 1, groups=cin, bias=True).to(scale.device)
            conv.weight.copy_(weight.view(-1, 1, 1, 1))
            conv.bias.copy_(bias)
            return conv

        affine = depthwise(scale[k:], shift[k:])
        if bool((scale[k:] > 0).all()):
            self.pool_in, self.pool_out = affine, nn.Identity()
        else:
            self.pool_in, self.pool_out = depthwise(torch.ones(cin), torch.zeros(cin)), affine
        self.bn = nn.Identity()


class NonBottleneck1D(nn.Module):
    """Factorised residual block: 3x1, 1x3, then dilated 3x1, 1x3 convs."""

    def __init__(self, ch: int, dropout: float, dilation: int):
        super().__init__()
        d = dilation
        self.conv3x1_1 = nn.Conv2d(ch, ch, (3, 1), 1, (1, 0), bias=True)
        self.conv1x3_1 = nn.Conv2d(ch, ch, (1, 3), 1, (0, 1), bias=True)
        self.bn1 = nn.BatchNorm2d(ch, eps=1e-3)
        self.conv3x1_2 = nn.Conv2d(ch, ch, (3, 1), 1, (d, 0), (d, 1), bias=True)
        self.conv1x3_2 = nn.Conv2d(ch, ch, (1, 3), 1, (0, d), (1, d), bias=True)
        self.bn2 = nn.BatchNorm2d(ch, eps=1e-3)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.conv3x1_1(x))
        out = self.relu(self.bn1(self.conv1x3_1(out)))
        out = self.relu(self.conv3x1_2(out))
        out = self.dropout(self.bn2(self.conv1x3_2(out)))
        return self.relu(out + x)


class ERFNetEncoder(nn.Module):
    """`dropout` in the eight dilated non-bottleneck-1D modules, `early_dropout` in the five after the
    second downsampler."""

    def __init__(self, in_channels: int = 3, width: float = 1.0, dropout: float = 0.1,
                 early_dropout: float | None = None):
        super().__init__()
        early_dropout = dropout if early_dropout is None else early_dropout
        # Each downsampler must add channels (its conv makes cout - cin): keep every stage wider.
        c1 = max(8, int(16 * width))
        c2 = max(2 * c1, int(64 * width))
        c3 = max(2 * c2, int(128 * width))
        layers: list[nn.Module] = [DownsamplerBlock(in_channels, c1), DownsamplerBlock(c1, c2)]
        layers += [NonBottleneck1D(c2, early_dropout, 1) for _ in range(5)]
        layers.append(DownsamplerBlock(c2, c3))
        for _ in range(2):
            layers += [NonBottleneck1D(c3, dropout, d) for d in (2, 4, 8, 16)]
        self.layers = nn.Sequential(*layers)
        self.out_channels = c3

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class ERFNetClassifier(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, width: float = 1.0,
                 dropout: float = 0.1, stem: str = "imagenet"):
        super().__init__()
        del stem  # the encoder works on any size >= 8 px; accepted for a uniform recipe interface
        # The paper's ImageNet ERFNet: "Dropout with rate 0.1 in all 1D-factorized non-bottleneck modules"
        self.encoder = ERFNetEncoder(in_channels, width, dropout, early_dropout=dropout)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.encoder.out_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.encoder(x)).flatten(1))




class UpsamplerBlock(nn.Module):
    """3x3 transposed conv, stride 2 (doubles H and W), BatchNorm, ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1, bias=True)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))

    @torch.no_grad()
    def fold_for_deploy(self) -> None:
        """Fold the BatchNorm into the transposed conv (whose weight is (cin, cout, kh, kw)), so the
        TFLite path's sub-pixel rewrite of the conv does not strand it after a depth-to-space. Eval only."""
        scale = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        self.conv.weight.mul_(scale.view(1, -1, 1, 1))
        self.conv.bias.mul_(scale).add_(self.bn.bias - self.bn.running_mean * scale)
        self.bn = nn.Identity()


class ERFNetSegmentation(nn.Module):
    """The full ERFNet (Romera et al. 2018) for semantic segmentation: the encoder, then a decoder of
    two upsampler blocks with two non-bottleneck-1D blocks each and a 2x2/2 transposed-conv output,
    giving per-pixel class logits at the input resolution (H and W divisible by 8)."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: float = 1.0,
                 dropout: float = 0.1, stem: str = "imagenet"):
        super().__init__()
        del stem  # accepted for a uniform recipe interface
        # ERFNet's authors (and the paper, which keeps their 0.3): 0.03 in the first five modules and
        # 0.3 in the rest, i.e. a tenth of `dropout` early on
        self.encoder = ERFNetEncoder(in_channels, width, dropout, early_dropout=dropout / 10)
        c2 = self.encoder.layers[1].bn.num_features   # the encoder's stage widths, mirrored
        c1 = self.encoder.layers[0].bn.num_features
        self.decoder = nn.Sequential(
            UpsamplerBlock(self.encoder.out_channels, c2), NonBottleneck1D(c2, 0.0, 1), NonBottleneck1D(c2, 0.0, 1),
            UpsamplerBlock(c2, c1), NonBottleneck1D(c1, 0.0, 1), NonBottleneck1D(c1, 0.0, 1),
            nn.ConvTranspose2d(c1, num_classes, 2, 2, 0, bias=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))
