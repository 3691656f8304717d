"""The ensembles as PyTorch operators (torch.library): one op per ensemble and direction, seen as
one node by eager mode, torch.compile and torch.export, on every device.

    torch.ops.pea.weighted_ensemble(x, alpha, act, target) -> y
    torch.ops.pea.stochastic_ensemble(x, alpha, seed, act, target) -> (y, mask)
    (and their *_backward ops, wired in with register_autograd)

`alpha` is the ensemble's 0-d float buffer and `seed` a 0-d int64 tensor drawn from the device's
generator, both read on the device: no call waits for the host, and a compiled graph takes alpha
as an input, so it is compiled once for the whole transition. `act`/`target` are the fused
kernels' codes (ensemble_aten.SMOOTH / TARGETS).

Where each runs:
- CUDA: the Triton kernels (ensemble_triton) -- `triton_op`, so torch.compile sees the kernels;
- CPU, eager: the fused C++ kernel (cpu_kernels) for float32/float64, as before;
- anywhere else, and what torch.compile traces on a CPU: the ATen form (ensemble_aten).
The stochastic op's second output is the C++ kernel's packed mask (1 bit per element) where that
kernel serves the tensor, else empty: Triton and the ATen form regenerate the draws from the seed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import bernoulli, cpu_kernels, ensemble_aten

try:
    from . import ensemble_triton
except ImportError:  # triton not installed: CUDA tensors take the ATen form
    ensemble_triton = None

_DTYPES_CPU_KERNEL = (torch.float32, torch.float64)


def _triton_serves(x: Tensor) -> bool:
    return ensemble_triton is not None and x.device.type == "cuda" and \
        x.dtype in (torch.float32, torch.bfloat16, torch.float16)


def _cpu_kernel_serves(x: Tensor, tgt: int) -> bool:
    """The fused C++ kernel runs this CPU tensor (decided the same way for the fake tensors of
    compile and for real ones, so the mask output's size always agrees)."""
    return x.device.type == "cpu" and x.dtype in _DTYPES_CPU_KERNEL and tgt in (0, 1) and \
        cpu_kernels.serves(x, ensemble_aten.target(tgt).fn) is not None


def runs_on(x: Tensor, tgt: int) -> bool:
    """Whether an ensemble module calls the op for x: under torch.compile, on any device but the
    CPU, and on a CPU where the fused kernel serves x. An eager CPU tensor the kernel cannot take
    (no compiler, bfloat16) keeps the chunked in-place ATen passes of ensemble.py, which hold less
    memory than the op's ATen form and draw masks 8 bits at a time instead of by Philox in int64 ops."""
    return torch.compiler.is_compiling() or x.device.type != "cpu" or _cpu_kernel_serves(x, tgt)


def _mask_size(x: Tensor, tgt: int) -> int:
    return bernoulli.packed_size(x.numel()) if _cpu_kernel_serves(x, tgt) else 0


def _define(name: str, fn):
    """A triton_op where Triton is installed (compile then sees the kernels), else a custom_op whose
    fake implementation is the same traceable function."""
    if ensemble_triton is not None:
        return torch.library.triton_op(f"pea::{name}", fn, mutates_args=())
    op = torch.library.custom_op(f"pea::{name}", fn, mutates_args=())
    op.register_fake(fn)
    return op


# -- the device-agnostic definitions (Triton on CUDA, ATen form elsewhere; traceable) -------------

def _weighted(x: Tensor, alpha: Tensor, act: int, target: int) -> Tensor:
    x = ensemble_aten.dense(x)
    if _triton_serves(x):
        return ensemble_triton.weighted(x, alpha, act, target)
    return ensemble_aten.weighted(x, alpha, act, target)


def _weighted_backward(grad: Tensor, x: Tensor, alpha: Tensor, act: int, target: int) -> Tensor:
    x = ensemble_aten.dense(x)
    if _triton_serves(x):
        return ensemble_triton.weighted_backward(ensemble_aten.like(grad, x), x, alpha, act, target)
    return ensemble_aten.weighted_backward(grad, x, alpha, act, target)


def _stochastic(x: Tensor, alpha: Tensor, seed: Tensor, act: int, target: int) -> tuple[Tensor, Tensor]:
    x = ensemble_aten.dense(x)
    mask = torch.zeros(_mask_size(x, target), dtype=torch.uint8, device=x.device)
    if _triton_serves(x):
        return ensemble_triton.stochastic(x, alpha, seed, act, target), mask
    return ensemble_aten.stochastic(x, alpha, seed, act, target), mask


def _stochastic_backward(grad: Tensor, x: Tensor, alpha: Tensor, seed: Tensor, mask: Tensor, act: int,
                         target: int) -> Tensor:
    x = ensemble_aten.dense(x)
    if _triton_serves(x):
        return ensemble_triton.stochastic_backward(ensemble_aten.like(grad, x), x, alpha, seed, act, target)
    return ensemble_aten.stochastic_backward(grad, x, alpha, seed, act, target)


weighted_ensemble = _define("weighted_ensemble", _weighted)
weighted_ensemble_backward = _define("weighted_ensemble_backward", _weighted_backward)
stochastic_ensemble = _define("stochastic_ensemble", _stochastic)
stochastic_ensemble_backward = _define("stochastic_ensemble_backward", _stochastic_backward)


# -- CPU, eager: the fused C++ kernel, skipping the unused branch at alpha 0 and 1 -----------------

def _flat(*tensors: Tensor) -> list[Tensor]:
    return [t.as_strided((t.numel(),), (1,), t.storage_offset()) for t in tensors]


def _act_buffer(x: Tensor, act: int) -> Tensor:
    return torch.empty_like(x)  # the kernel computes Act itself (every code here is a kernel code)


@weighted_ensemble.register_kernel("cpu")
def _weighted_cpu(x: Tensor, alpha: Tensor, act: int, target: int) -> Tensor:
    x = ensemble_aten.dense(x)
    w = float(alpha)
    if w == 0.0:
        return ensemble_aten.smooth(act).fn(x)
    if w == 1.0:
        return ensemble_aten.target(target).fn(x)
    if not _cpu_kernel_serves(x, target):
        return ensemble_aten.weighted(x, alpha, act, target)
    y = _act_buffer(x, act)
    cpu_kernels.ops().weighted_blend_(*_flat(y, x.detach()), act, w, target)
    return y


@weighted_ensemble_backward.register_kernel("cpu")
def _weighted_backward_cpu(grad: Tensor, x: Tensor, alpha: Tensor, act: int, target: int) -> Tensor:
    x = ensemble_aten.dense(x)
    grad = ensemble_aten.like(grad, x)
    w = float(alpha)
    if w == 0.0:
        return ensemble_aten.smooth(act).vjp(grad, x)
    if w == 1.0:
        return ensemble_aten.target(target).vjp(grad, x)
    if not _cpu_kernel_serves(x, target):
        return ensemble_aten.weighted_backward(grad, x, alpha, act, target)
    dx = _act_buffer(x, act)
    cpu_kernels.ops().weighted_blend_backward_(*_flat(dx, grad.detach(), x.detach()), act, w, target)
    return dx


@stochastic_ensemble.register_kernel("cpu")
def _stochastic_cpu(x: Tensor, alpha: Tensor, seed: Tensor, act: int, target: int) -> tuple[Tensor, Tensor]:
    x = ensemble_aten.dense(x)
    w = float(alpha)
    if not _cpu_kernel_serves(x, target):
        return ensemble_aten.stochastic(x, alpha, seed, act, target), torch.zeros(0, dtype=torch.uint8)
    mask = torch.empty(bernoulli.packed_size(x.numel()), dtype=torch.uint8)
    if w in (0.0, 1.0):  # every draw takes the same branch: compute that one alone
        mask.fill_(255 if w == 1.0 else 0)
        return (ensemble_aten.target(target) if w == 1.0 else ensemble_aten.smooth(act)).fn(x), mask
    y = _act_buffer(x, act)
    threshold, tie = bernoulli.philox_thresholds(w)
    cpu_kernels.ops().stochastic_pick_(*_flat(y, x.detach()), mask, act, int(seed), threshold, tie, target)
    return y, mask


@stochastic_ensemble_backward.register_kernel("cpu")
def _stochastic_backward_cpu(grad: Tensor, x: Tensor, alpha: Tensor, seed: Tensor, mask: Tensor, act: int,
                             target: int) -> Tensor:
    x = ensemble_aten.dense(x)
    grad = ensemble_aten.like(grad, x)
    if mask.numel() == 0:
        return ensemble_aten.stochastic_backward(grad, x, alpha, seed, act, target)
    w = float(alpha)
    if w in (0.0, 1.0):
        return (ensemble_aten.target(target) if w == 1.0 else ensemble_aten.smooth(act)).vjp(grad, x)
    dx = _act_buffer(x, act)
    cpu_kernels.ops().stochastic_pick_backward_(*_flat(dx, grad.detach(), x.detach()), mask, act, target)
    return dx


# -- autograd: x saved (and the seed and packed mask); no gradient to alpha or the seed ------------

def _save_weighted(ctx, inputs, output) -> None:
    x, alpha, ctx.act, ctx.target = inputs
    ctx.save_for_backward(x, alpha)


def _grad_weighted(ctx, grad: Tensor):
    x, alpha = ctx.saved_tensors
    return weighted_ensemble_backward(grad, x, alpha, ctx.act, ctx.target), None, None, None


def _save_stochastic(ctx, inputs, output) -> None:
    x, alpha, seed, ctx.act, ctx.target = inputs
    ctx.save_for_backward(x, alpha, seed, output[1])


def _grad_stochastic(ctx, grad: Tensor, _grad_mask):
    x, alpha, seed, mask = ctx.saved_tensors
    return stochastic_ensemble_backward(grad, x, alpha, seed, mask, ctx.act, ctx.target), None, None, None, None


weighted_ensemble.register_autograd(_grad_weighted, setup_context=_save_weighted)
stochastic_ensemble.register_autograd(_grad_stochastic, setup_context=_save_stochastic)


def draw_seed(device) -> Tensor:
    """A 0-d int64 seed from `device`'s generator, drawn on the device (no host sync; advances
    that generator as any random op does, so torch.manual_seed and a restored RNG state replay it).
    On a CPU it keys the fused kernel as bernoulli.draw_key does for the function form."""
    # randint, not random_(from, None): torch.export's graph code cannot name aten.random_.from
    return torch.randint(-(1 << 63), (1 << 63) - 1, (), dtype=torch.int64, device=device)


# -- what the ensemble modules call: eager CPU straight to the kernels above ----------------------
# A custom op's dispatch (schema defaults, alias checks, the autograd wrapper) costs about 0.1 ms per
# call and direction on a CPU (forward and backward of a small tensor: 242 us through the op, 157 us
# here). Eager CPU calls therefore run the same CPU kernels through a plain autograd.Function (same
# numbers, same mask, same seed draw); compile, export and every other device see the op.

def _traced() -> bool:
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


class _WeightedOnCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, alpha: Tensor, act: int, target: int) -> Tensor:
        ctx.save_for_backward(x, alpha)
        ctx.codes = (act, target)
        return _weighted_cpu(x, alpha, act, target)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, alpha = ctx.saved_tensors
        return _weighted_backward_cpu(grad, x, alpha, *ctx.codes), None, None, None


class _StochasticOnCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, alpha: Tensor, seed: Tensor, act: int, target: int) -> Tensor:
        y, mask = _stochastic_cpu(x, alpha, seed, act, target)
        ctx.save_for_backward(x, alpha, seed, mask)
        ctx.codes = (act, target)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, alpha, seed, mask = ctx.saved_tensors
        return _stochastic_backward_cpu(grad, x, alpha, seed, mask, *ctx.codes), None, None, None, None


def weighted(x: Tensor, alpha: Tensor, act: int, target: int) -> Tensor:
    """weighted_ensemble(x, alpha, act, target), eager CPU calls without the dispatcher."""
    if x.device.type == "cpu" and not _traced():
        return _WeightedOnCPU.apply(x, alpha, act, target)
    return weighted_ensemble(x, alpha, act, target)


def stochastic(x: Tensor, alpha: Tensor, seed: Tensor, act: int, target: int) -> Tensor:
    """stochastic_ensemble(x, alpha, seed, act, target)'s output, eager CPU calls without the dispatcher."""
    if x.device.type == "cpu" and not _traced():
        return _StochasticOnCPU.apply(x, alpha, seed, act, target)
    return stochastic_ensemble(x, alpha, seed, act, target)[0]
