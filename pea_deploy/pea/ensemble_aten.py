"""The ensembles' ATen form: the functions the ensemble ops compute, written in plain torch ops.

Every function here is traceable (no host read of alpha or of the seed), so it is what
`torch.compile` fuses on a CPU, what runs where neither the fused CPU kernel nor Triton can, and
the reference the Triton kernels are tested against. Alpha is a 0-d tensor; the stochastic draws
are Philox4x32-10 keyed by a 64-bit seed tensor, counter = element // 4 in memory order, lane =
element % 4: the stream of `tl.randint4x(seed, counter)`, so the ATen form and the Triton kernels
pick the same elements bit for bit. A lane's top 24 bits against alpha: exactly never at alpha 0,
always at alpha 1 (as `torch.rand(...) < alpha`).

Activations and targets are named by the fused kernels' codes (cpu_kernels.ACT_CODES; target 0
ReLU, 1 ReLU6).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .activations import Activation, elu, gelu, mish, relu, relu6, silu

# code -> activation, as in cpu_kernels.ACT_CODES and kernels/pointwise.h
SMOOTH = {1: gelu, 2: silu, 3: mish, 4: elu}
TARGETS = {0: relu, 1: relu6}

_MASK32 = 0xFFFFFFFF
_ROUND_A, _ROUND_B = 0xD2511F53, 0xCD9E8D57   # Philox4x32 multipliers (Random123; Triton's philox_impl)
_KEY_A, _KEY_B = 0x9E3779B9, 0xBB67AE85       # Weyl key increments
_TWO_M24 = 2.0 ** -24


def smooth(code: int) -> Activation:
    return SMOOTH[code]()


def target(code: int) -> Activation:
    return TARGETS[code]()


def dense(t: Tensor) -> Tensor:
    """t itself when its elements fill its memory without gaps (contiguous or channels-last), so
    memory order is one flat order; else a contiguous copy."""
    if t.is_contiguous():
        return t
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return t
    if t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d):
        return t
    return t.contiguous()


def like(t: Tensor, layout: Tensor) -> Tensor:
    """t laid out with layout's strides (a copy only where they differ): one flat order for both."""
    if t.stride() == layout.stride():
        return t
    return torch.empty_like(layout).copy_(t)


def _mulhilo(a: Tensor, m: int) -> tuple[Tensor, Tensor]:
    """(high, low) 32-bit halves of a * m for a in [0, 2^32) held in int64, without overflowing
    int64: m split into 16-bit halves, each partial product below 2^48."""
    low_part = a * (m & 0xFFFF)
    high_part = a * (m >> 16)
    middle = high_part + (low_part >> 16)
    return middle >> 16, ((middle & 0xFFFF) << 16) | (low_part & 0xFFFF)


def philox_uniform24(seed: Tensor, n: int) -> Tensor:
    """(n,) int64 in [0, 2^24): the top 24 bits of Philox4x32-10(counter = i // 4, key = seed)'s
    output i % 4 -- the draws the Triton kernels make."""
    groups = (n + 3) // 4
    seed = seed.to(torch.int64)
    k0 = seed & _MASK32
    k1 = (seed >> 32) & _MASK32
    c0 = torch.arange(groups, dtype=torch.int64, device=seed.device)
    c1 = torch.zeros_like(c0)
    c2 = torch.zeros_like(c0)
    c3 = torch.zeros_like(c0)
    for _ in range(10):
        hi_b, lo_b = _mulhilo(c2, _ROUND_B)
        hi_a, lo_a = _mulhilo(c0, _ROUND_A)
        c0, c1, c2, c3 = hi_b ^ c1 ^ k0, lo_b, hi_a ^ c3 ^ k1, lo_a
        k0 = (k0 + _KEY_A) & _MASK32
        k1 = (k1 + _KEY_B) & _MASK32
    lanes = torch.stack([c0, c1, c2, c3], 1).reshape(-1)[:n]
    return lanes >> 8


def picks(x: Tensor, alpha: Tensor, seed: Tensor) -> Tensor:
    """Bool tensor of x's shape and layout: True where the stochastic ensemble takes the target
    (element i in memory order draws lane i of philox_uniform24)."""
    u = philox_uniform24(seed, x.numel()).to(torch.float32) * _TWO_M24
    flat = u < alpha.to(torch.float32)
    return flat.as_strided(x.shape, x.stride()) if x.dim() else flat.reshape(())


def _lerp(start: Tensor, end: Tensor, w: Tensor) -> Tensor:
    """ATen's lerp in float32 (exact at w = 0 and w = 1), stored in start's dtype."""
    return torch.lerp(start.float(), end.float(), w.float()).to(start.dtype)


def weighted(x: Tensor, alpha: Tensor, act: int, tgt: int) -> Tensor:
    """alpha * T(x) + (1 - alpha) * Act(x); exactly Act(x) at alpha 0 and T(x) at 1."""
    x = dense(x)
    return _lerp(smooth(act).fn(x), target(tgt).fn(x), alpha)


def weighted_backward(grad: Tensor, x: Tensor, alpha: Tensor, act: int, tgt: int) -> Tensor:
    x = dense(x)
    grad = like(grad, x)
    return _lerp(smooth(act).vjp(grad, x), target(tgt).vjp(grad, x), alpha)


def stochastic(x: Tensor, alpha: Tensor, seed: Tensor, act: int, tgt: int) -> Tensor:
    x = dense(x)
    return torch.where(picks(x, alpha, seed), target(tgt).fn(x), smooth(act).fn(x))


def stochastic_backward(grad: Tensor, x: Tensor, alpha: Tensor, seed: Tensor, act: int, tgt: int) -> Tensor:
    x = dense(x)
    grad = like(grad, x)
    return torch.where(picks(x, alpha, seed), target(tgt).vjp(grad, x), smooth(act).vjp(grad, x))
