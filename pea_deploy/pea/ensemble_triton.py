"""The ensembles as Triton kernels: one pass per direction, Act, the target and the blend or pick in
registers, so an ensemble moves the bytes of one activation (read x, write y; read dy and x, write
dx) and saves for backward what the activation alone saves (x; the stochastic one adds an 8-byte
seed and regenerates its draws).

Math in float32, loads and stores in the tensor's dtype (float32, bfloat16, float16); any dense
layout (contiguous or channels-last) is walked in memory order, without a copy. alpha and the seed
are read on the device, so no call waits for the host. The weighted blend is ATen's lerp formula
(exact at alpha 0 and 1); the stochastic draw for element i is lane i % 4 of
`tl.randint4x(seed, i // 4)` (Philox4x32-10), its top 24 bits against alpha, exactly as
ensemble_aten.picks draws it.

On a GPU the activations use libdevice (CUDA's own erff/expf/tanhf/log1pf/expm1f, the functions
ATen's kernels call); under TRITON_INTERPRET=1 (the CPU tests) tl.math and identities stand in,
since the interpreter has no libdevice.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.library import wrap_triton

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"
BLOCK = 1024
_SQRT1_2 = 0.7071067811865476
_GELU_PDF = 0.3989422804014327   # M_2_SQRTPI * M_SQRT1_2 * 0.5, as ATen's gelu_backward


if INTERPRETED:
    @triton.jit
    def _exp(x):
        return tl.math.exp(x)

    @triton.jit
    def _erf(x):
        return tl.math.erf(x)

    @triton.jit
    def _tanh(x):
        return 1.0 - 2.0 / (tl.math.exp(2.0 * x) + 1.0)

    @triton.jit
    def _log1p(x):
        return tl.math.log(1.0 + x)

    @triton.jit
    def _expm1(x):
        return tl.math.exp(x) - 1.0

    @triton.jit
    def _div(a, b):
        return a / b
else:
    from triton.language.extra import libdevice

    @triton.jit
    def _exp(x):
        return libdevice.exp(x)

    @triton.jit
    def _erf(x):
        return libdevice.erf(x)

    @triton.jit
    def _tanh(x):
        return libdevice.tanh(x)

    @triton.jit
    def _log1p(x):
        return libdevice.log1p(x)

    @triton.jit
    def _expm1(x):
        return libdevice.expm1(x)

    @triton.jit
    def _div(a, b):
        return libdevice.div_rn(a, b)


@triton.jit
def _act(x, ACT: tl.constexpr):
    """Act(x) in ATen's operation order: 1 GELU (erf), 2 SiLU, 3 Mish, 4 ELU (alpha 1)."""
    if ACT == 1:
        return x * 0.5 * (1.0 + _erf(x * 0.7071067811865476))
    elif ACT == 2:
        return _div(x, 1.0 + _exp(-x))
    elif ACT == 3:
        return x * _tanh(_log1p(_exp(x)))
    else:
        return tl.where(x > 0.0, x, _expm1(x))


@triton.jit
def _act_vjp(g, x, ACT: tl.constexpr):
    """g * Act'(x), as ATen's gelu/silu/mish/elu_backward compute it."""
    if ACT == 1:
        cdf = 0.5 * (1.0 + _erf(x * 0.7071067811865476))
        pdf = _exp(-0.5 * x * x) * 0.3989422804014327
        return g * (cdf + x * pdf)
    elif ACT == 2:
        s = _div(1.0, 1.0 + _exp(-x))
        return g * s * (1.0 + x * (1.0 - s))
    elif ACT == 3:
        s = _div(1.0, 1.0 + _exp(-x))
        t = _tanh(_log1p(_exp(x)))
        return g * (t + x * s * (1.0 - t * t))
    else:
        return tl.where(x > 0.0, g, g * _exp(x))


@triton.jit
def _target(x, TARGET: tl.constexpr):
    """0 ReLU, 1 ReLU6; NaN passes through as in ATen."""
    y = tl.where(x < 0.0, 0.0, x)
    if TARGET == 1:
        y = tl.where(y > 6.0, 6.0, y)
    return y


@triton.jit
def _target_vjp(g, x, TARGET: tl.constexpr):
    keep = x > 0.0
    if TARGET == 1:
        keep = keep & (x < 6.0)
    return tl.where(keep, g, 0.0)


@triton.jit
def _lerp(a, b, w):
    """ATen's lerp: exact at w = 0 (a) and w = 1 (b)."""
    return tl.where(w < 0.5, a + w * (b - a), b - (b - a) * (1.0 - w))


@triton.jit
def _picks(seed_ptr, alpha, pid, BLOCK: tl.constexpr):
    """(BLOCK,) bool: element pid * BLOCK + i takes the target (lane i % 4 of counter i // 4)."""
    seed = tl.load(seed_ptr)
    counter = pid * (BLOCK // 4) + tl.arange(0, BLOCK // 4).to(tl.int64)
    r0, r1, r2, r3 = tl.randint4x(seed, counter)
    lanes = tl.reshape(tl.join(tl.join(r0, r2), tl.join(r1, r3)), (BLOCK,))
    return (lanes >> 8).to(tl.float32) * 5.9604644775390625e-08 < alpha


@triton.jit
def _weighted_fwd(x_ptr, alpha_ptr, y_ptr, n, ACT: tl.constexpr, TARGET: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    live = offs < n
    x = tl.load(x_ptr + offs, mask=live, other=0.0).to(tl.float32)
    w = tl.load(alpha_ptr).to(tl.float32)
    y = _lerp(_act(x, ACT), _target(x, TARGET), w)
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=live)


@triton.jit
def _weighted_bwd(g_ptr, x_ptr, alpha_ptr, dx_ptr, n, ACT: tl.constexpr, TARGET: tl.constexpr,
                  BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    live = offs < n
    g = tl.load(g_ptr + offs, mask=live, other=0.0).to(tl.float32)
    x = tl.load(x_ptr + offs, mask=live, other=0.0).to(tl.float32)
    w = tl.load(alpha_ptr).to(tl.float32)
    dx = _lerp(_act_vjp(g, x, ACT), _target_vjp(g, x, TARGET), w)
    tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=live)


@triton.jit
def _stochastic_fwd(x_ptr, alpha_ptr, seed_ptr, y_ptr, n, ACT: tl.constexpr, TARGET: tl.constexpr,
                    BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    live = offs < n
    x = tl.load(x_ptr + offs, mask=live, other=0.0).to(tl.float32)
    pick = _picks(seed_ptr, tl.load(alpha_ptr).to(tl.float32), pid, BLOCK)
    y = tl.where(pick, _target(x, TARGET), _act(x, ACT))
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=live)


@triton.jit
def _stochastic_bwd(g_ptr, x_ptr, alpha_ptr, seed_ptr, dx_ptr, n, ACT: tl.constexpr, TARGET: tl.constexpr,
                    BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    live = offs < n
    g = tl.load(g_ptr + offs, mask=live, other=0.0).to(tl.float32)
    x = tl.load(x_ptr + offs, mask=live, other=0.0).to(tl.float32)
    pick = _picks(seed_ptr, tl.load(alpha_ptr).to(tl.float32), pid, BLOCK)
    dx = tl.where(pick, _target_vjp(g, x, TARGET), _act_vjp(g, x, ACT))
    tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=live)


def _grid(n: int) -> tuple[int]:
    return (triton.cdiv(n, BLOCK),)


# Callers pass dense tensors (ensemble_aten.dense / like): memory order is one flat order, and an
# output made by empty_like has the input's strides.

def weighted(x: Tensor, alpha: Tensor, act: int, tgt: int) -> Tensor:
    y = torch.empty_like(x)
    if x.numel():
        wrap_triton(_weighted_fwd)[_grid(x.numel())](x, alpha, y, x.numel(), ACT=act, TARGET=tgt, BLOCK=BLOCK)
    return y


def weighted_backward(grad: Tensor, x: Tensor, alpha: Tensor, act: int, tgt: int) -> Tensor:
    dx = torch.empty_like(x)
    if x.numel():
        wrap_triton(_weighted_bwd)[_grid(x.numel())](grad, x, alpha, dx, x.numel(), ACT=act, TARGET=tgt,
                                                     BLOCK=BLOCK)
    return dx


def stochastic(x: Tensor, alpha: Tensor, seed: Tensor, act: int, tgt: int) -> Tensor:
    y = torch.empty_like(x)
    if x.numel():
        wrap_triton(_stochastic_fwd)[_grid(x.numel())](x, alpha, seed, y, x.numel(), ACT=act, TARGET=tgt,
                                                       BLOCK=BLOCK)
    return y


def stochastic_backward(grad: Tensor, x: Tensor, alpha: Tensor, seed: Tensor, act: int, tgt: int) -> Tensor:
    dx = torch.empty_like(x)
    if x.numel():
        wrap_triton(_stochastic_bwd)[_grid(x.numel())](grad, x, alpha, seed, dx, x.numel(), ACT=act,
                                                       TARGET=tgt, BLOCK=BLOCK)
    return dx
