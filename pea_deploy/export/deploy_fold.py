"""Deploy-time rewrites that exporters cannot do themselves, applied to a copy before export.

torch.onnx folds BatchNorm only into a directly preceding conv. Modules whose BatchNorm follows
something else (ERFNet's downsampler: conv and max-pool concatenated, then BatchNorm) implement
`fold_for_deploy()`; without it the exported graph keeps a BatchNormalization that NPUs reject.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def deployable_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy with every `fold_for_deploy()` applied (the original is untouched)."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        fold = getattr(module, "fold_for_deploy", None)
        if callable(fold):
            fold()
    return folded


class SubPixelConvTranspose(nn.Module):
    """A stride-s ConvTranspose2d computed as a Conv2d with s*s*C_out channels and a PixelShuffle
    (depth-to-space): exactly the same function, in ops every int8 converter lowers."""

    def __init__(self, conv: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None, stride: int):
        super().__init__()
        self.conv = conv
        self.shuffle = nn.PixelShuffle(stride)
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            if bias is not None:
                self.conv.bias.copy_(bias)

    def forward(self, x):
        return self.shuffle(self.conv(x))


def subpixel_form(tconv: nn.ConvTranspose2d) -> nn.Module | None:
    """The sub-pixel equivalent of `tconv`, or None where there is none (groups, dilation, or an
    output that is not exactly stride x the input: kernel + output_padding - 2 * padding != stride).

    Output pixel o = s*i - p + k. For output phase r = o mod s, tap k feeds it from input offset
    d = (r + p - k) / s when that is whole; phase r of output channel c becomes Conv2d channel
    c*s*s + r_y*s + r_x, which is PixelShuffle's order.
    """
    (sy, sx), (ky, kx), (py, px) = tconv.stride, tconv.kernel_size, tconv.padding
    (oy, ox), (dy, dx) = tconv.output_padding, tconv.dilation
    if tconv.groups != 1 or (dy, dx) != (1, 1) or sy != sx or ky + oy - 2 * py != sy or kx + ox - 2 * px != sx:
        return None
    s = sy

    def taps(k_size, pad):  # (phase, kernel tap, input offset) triples along one axis
        return [(r, k, (r + pad - k) // s) for r in range(s) for k in range(k_size) if (r + pad - k) % s == 0]

    ty, tx = taps(ky, py), taps(kx, px)
    reach = max(abs(d) for _, _, d in ty + tx)
    cin, cout = tconv.in_channels, tconv.out_channels
    w = tconv.weight.detach()                                 # (cin, cout, ky, kx)
    weight = torch.zeros(cout * s * s, cin, 2 * reach + 1, 2 * reach + 1, dtype=w.dtype, device=w.device)
    for ry, ky_, dy_ in ty:
        for rx, kx_, dx_ in tx:
            rows = torch.arange(cout, device=w.device) * s * s + ry * s + rx
            weight[rows, :, reach + dy_, reach + dx_] = w[:, :, ky_, kx_].t()
    bias = tconv.bias.detach().repeat_interleave(s * s) if tconv.bias is not None else None
    conv = nn.Conv2d(cin, cout * s * s, 2 * reach + 1, 1, reach, bias=bias is not None).to(w.device, w.dtype)
    return SubPixelConvTranspose(conv, weight, bias, s)


def transposed_convs_as_subpixel(model: nn.Module) -> int:
    """Replace, in place, every ConvTranspose2d that has a sub-pixel form; returns how many.

    litert-torch 0.10 cannot lower an int8 ConvTranspose2d ("failed to legalize mhlo.convolution"),
    so the TFLite export upsamples by Conv2d + depth-to-space instead; Vela maps both to the NPU."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ConvTranspose2d):
                sub = subpixel_form(child)
                if sub is not None:
                    setattr(parent, name, sub)
                    replaced += 1
    return replaced
