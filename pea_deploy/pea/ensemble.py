"""The two PEA ensembles (Utasi 2022, Eq. 1 and Eq. 3) as nn.Modules.

Both compute `w * T(x) + (1 - w) * Act(x)`: the weighted ensemble with w = alpha, the stochastic one
with w = r ~ Bernoulli(alpha) drawn per element, channel or tensor. Backward recomputes the
derivatives from the saved input, so training never keeps the two activation outputs alive.

Exactness: at alpha == 0 and alpha == 1 both ensembles compute only Act(x) or only T(x), so the
output is exactly that activation; in between, the stochastic ensemble picks each element exactly
from one branch.

Where each runs: a built-in Act (GELU, SiLU, Mish, ELU) with a ReLU or ReLU6 target calls the
ensemble ops (ensemble_ops: Triton on CUDA, the fused C++ kernel on a CPU, one op for
torch.compile), with alpha as the module's buffer, read on the device. Anything else (a plug-in
activation, Swish with beta != 1, a model's own module kept by act="keep"), and an eager CPU tensor
the fused kernel cannot take, runs the autograd functions below, in ATen ops a chunk at a time;
under torch.compile those take alpha as a tensor too, so one graph serves the whole schedule.
"""

from __future__ import annotations

import functools
import struct

import torch
from torch import Tensor, nn

from ..registry import GRANULARITIES
from . import bernoulli, compiled_form, cpu_kernels, ensemble_aten, ensemble_ops
from .activations import Activation, smooth_activation, target_activation


# Elements blended per step: the second branch is computed a chunk at a time, so the ensemble's
# transient memory is a few MiB, not a second activation-sized tensor (peak memory = Act-only's),
# and each chunk's second and third pass read from cache.
CHUNK = 1 << 18


def _flat(tensors: list[Tensor]) -> list[Tensor] | None:
    """1-D views in memory order of same-shape, same-strides dense tensors (contiguous or
    channels_last); None when there is no such view."""
    first = tensors[0]
    if any(t.shape != first.shape or t.stride() != first.stride() for t in tensors):
        return None
    if first.is_contiguous():
        return [t.view(-1) for t in tensors]
    dense = (first.dim() == 4 and first.is_contiguous(memory_format=torch.channels_last)) or \
            (first.dim() == 5 and first.is_contiguous(memory_format=torch.channels_last_3d))
    if dense:
        return [t.as_strided((t.numel(),), (1,), t.storage_offset()) for t in tensors]
    return None


def _chunks(*tensors: Tensor):
    """Matching flat slices of same-layout dense tensors; the whole tensors otherwise."""
    flat = _flat(list(tensors))
    if flat is not None and tensors[0].numel() > CHUNK:
        for i in range(0, tensors[0].numel(), CHUNK):
            yield [f[i:i + CHUNK] for f in flat]
    else:
        yield list(tensors)


def _like(t: Tensor, layout: Tensor) -> Tensor:
    """t with layout's strides (a copy only when they differ), so both have one flat order."""
    return t if t.stride() == layout.stride() else torch.empty_like(layout).copy_(t)


def _blend(out: Tensor, other, x: Tensor, weight, *rest: Tensor) -> Tensor:
    """out <- weight * other(x, *rest) + (1 - weight) * out, in place, chunk by chunk.

    `weight` is a float (lerp_: exact at 0 and 1) or a bool mask of x's shape (True takes other)."""
    if isinstance(weight, Tensor):
        for o, m, xc, *rc in _chunks(out, weight, x, *rest):
            o.copy_(torch.where(m, other(xc, *rc), o))
    else:
        for o, xc, *rc in _chunks(out, x, *rest):
            o.lerp_(other(xc, *rc), weight)
    return out


def _pick(out: Tensor, other, mask: Tensor, x: Tensor, *rest: Tensor) -> Tensor:
    """out[i] <- other(x, *rest)[i] where mask[i] == 1, in place; mask is uint8 0/1 in x's flat
    (memory) order. A float 0/1 weight in lerp_ picks exactly and, unlike torch.where on a random
    mask, runs without mispredicted branches."""
    flat = _flat([out, x, *rest])
    weight = torch.empty(min(out.numel(), CHUNK), dtype=out.dtype, device=out.device)
    for i in range(0, out.numel(), CHUNK):
        o, xc, *rc = (f[i:i + CHUNK] for f in flat)
        w = weight[:o.numel()].copy_(mask[i:i + o.numel()])
        o.lerp_(other(xc, *rc), w)
    return out


def _fused(x: Tensor, target: Activation):
    """(kernel ops, target code) when the fused CPU kernel serves an ensemble on x, else None (x not
    dense: the ATen form handles any strides)."""
    kernels = cpu_kernels.serves(x, target.fn) if _flat([x]) is not None else None
    return None if kernels is None else (kernels, cpu_kernels.target_code(target.fn))


def _act_out(x: Tensor, act: Activation) -> tuple[Tensor, int]:
    """(output buffer, act code) for a kernel call: an empty one the kernel fills with Act where it
    computes Act itself, else Act(x) computed here (code 0)."""
    code = cpu_kernels.act_code(act.kernel)
    return (torch.empty_like(x), code) if code else (_like(act.fn(x), x), 0)


def _act_grad(grad_out: Tensor, x: Tensor, act: Activation) -> tuple[Tensor, int]:
    code = cpu_kernels.act_code(act.kernel)
    return (torch.empty_like(x), code) if code else (_like(act.vjp(grad_out, x), x), 0)


def _weighted_forward(x: Tensor, w: float, act: Activation, target: Activation, fused) -> Tensor:
    if fused is None:
        return _blend(act.fn(x), target.fn, x, w)
    kernels, code = fused
    out, act_code = _act_out(x, act)
    kernels.weighted_blend_(*_flat([out, x.detach()]), act_code, w, code)
    return out


def _weighted_backward(grad_out: Tensor, x: Tensor, w: float, act: Activation, target: Activation,
                       fused) -> Tensor:
    grad_out = _like(grad_out, x)
    if fused is None:
        return _blend(act.vjp(grad_out, x), lambda xc, gc: target.vjp(gc, xc), x, w, grad_out)
    kernels, code = fused
    grad_in, act_code = _act_grad(grad_out, x, act)
    kernels.weighted_blend_backward_(*_flat([grad_in, grad_out.detach(), x.detach()]), act_code, w, code)
    return grad_in


class _EnsembleFn(torch.autograd.Function):
    """weight is a Python float (weighted) or a bool mask broadcastable to x (stochastic)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight, act: Activation, target: Activation) -> Tensor:
        ctx.act, ctx.target = act, target
        if isinstance(weight, Tensor):
            ctx.save_for_backward(x, weight)
            if weight.shape != x.shape:  # one draw per channel or tensor: broadcast, unchunked
                return torch.where(weight, target.fn(x), act.fn(x))
            return _blend(act.fn(x), target.fn, x, weight)
        ctx.weight = w = float(weight)
        ctx.save_for_backward(x)
        # Outside the transition one branch has weight 0: skip it (one kernel, as Act/ReLU alone).
        if w == 0.0:
            return act.fn(x)
        if w == 1.0:
            return target.fn(x)
        ctx.fused = _fused(x, target)  # decided once: backward runs the same form
        return _weighted_forward(x, w, act, target, ctx.fused)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, *mask = ctx.saved_tensors
        act, target = ctx.act, ctx.target
        if mask and mask[0].shape != x.shape:
            return torch.where(mask[0], target.vjp(grad_out, x), act.vjp(grad_out, x)), None, None, None
        if not mask and ctx.weight in (0.0, 1.0):
            return (target if ctx.weight == 1.0 else act).vjp(grad_out, x), None, None, None
        if not mask:
            return _weighted_backward(grad_out, x, ctx.weight, act, target, ctx.fused), None, None, None
        grad_out = _like(grad_out, x)
        grad_in = act.vjp(grad_out, x)
        return _blend(grad_in, lambda xc, gc: target.vjp(gc, xc), x, mask[0], grad_out), None, None, None


def ensemble(x: Tensor, weight, act: Activation, target: Activation) -> Tensor:
    """`weight * target(x) + (1 - weight) * act(x)`, saving only x (and a bool mask) for backward.

    `weight` is a float (weighted ensemble) or a bool mask broadcastable to x (stochastic
    ensemble: True picks the target). No gradient flows to it: alpha is scheduled, not learned.
    """
    return _EnsembleFn.apply(x, weight, act, target)


class _StochasticFn(torch.autograd.Function):
    """Per-element stochastic ensemble that draws its own mask (the fused kernel's Philox draws, or
    bernoulli.draw_mask in the ATen form) and saves it packed, 1 bit per element: the CPU path of
    StochasticEnsemble."""

    @staticmethod
    def forward(ctx, x: Tensor, alpha: float, act: Activation, target: Activation) -> Tensor:
        ctx.act, ctx.target = act, target
        if _flat([x]) is None:
            x = x.contiguous()
        ctx.fused = fused = _fused(x, target)
        if fused is None:
            mask = bernoulli.draw_mask(x.numel(), alpha, device=x.device)
            ctx.save_for_backward(x, bernoulli.pack(mask))
            return _pick(_like(act.fn(x), x), target.fn, mask, x)
        kernels, code = fused
        out, act_code = _act_out(x, act)
        packed = torch.empty(bernoulli.packed_size(x.numel()), dtype=torch.uint8)
        kernels.stochastic_pick_(*_flat([out, x.detach()]), packed, act_code, bernoulli.draw_key(),
                                 *bernoulli.philox_thresholds(alpha), code)
        ctx.save_for_backward(x, packed)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, packed = ctx.saved_tensors
        act, target = ctx.act, ctx.target
        grad_out = _like(grad_out, x)
        if ctx.fused is None:
            mask = bernoulli.unpack(packed)
            grad_in = _like(act.vjp(grad_out, x), x)
            return _pick(grad_in, lambda xc, gc: target.vjp(gc, xc), mask, x, grad_out), None, None, None
        kernels, code = ctx.fused
        grad_in, act_code = _act_grad(grad_out, x, act)
        kernels.stochastic_pick_backward_(*_flat([grad_in, grad_out.detach(), x.detach()]), packed, act_code, code)
        return grad_in, None, None, None


def stochastic_ensemble(x: Tensor, alpha: float, act: Activation, target: Activation) -> Tensor:
    """`target(x)` where r == 1 else `act(x)`, r ~ Bernoulli(alpha) per element from the global
    generator; saves x and the mask packed 1 bit per element. 0 < alpha < 1 (the ends need no draw)."""
    return _StochasticFn.apply(x, float(alpha), act, target)


def _own_weighted(x: Tensor, own: nn.Module, target: Activation, ens: "PEAEnsemble") -> Tensor:
    """The weighted ensemble with a model's own activation module as Act: plain autograd, so the
    module's parameters (PReLU's slope, a learnt beta) keep training. Exact at alpha 0 and 1."""
    if torch.compiler.is_compiling():  # alpha as a tensor: one graph for every alpha
        return torch.lerp(own(x), target.fn(x), ens.alpha.to(x.dtype))
    w = ens._alpha_value
    if w == 0.0:
        return own(x)
    if w == 1.0:
        return target.fn(x)
    return torch.lerp(own(x), target.fn(x), w)


def _draw(shape: tuple[int, ...], ens: "PEAEnsemble", x: Tensor) -> Tensor:
    """Bool mask of `shape`, True with probability alpha (compared on the device: no host read)."""
    return torch.rand(shape, device=x.device) < ens.alpha


def _op_name_of(module: nn.Module) -> str | None:
    """The ops' name for a model's own activation module that computes exactly what the op's Act
    does (nn.GELU without approximation, nn.SiLU, nn.Mish, nn.ELU with alpha 1, no hooks), else None:
    such a module has no parameters to train, so the op may stand in for it."""
    if module._forward_hooks or module._forward_pre_hooks or type(module) not in (nn.GELU, nn.SiLU, nn.Mish, nn.ELU):
        return None
    if isinstance(module, nn.GELU) and module.approximate != "none":
        return None
    if isinstance(module, nn.ELU) and module.alpha != 1.0:
        return None
    return type(module).__name__.lower()


def _own_activation(module: nn.Module) -> Activation:
    """A model's own activation module as the ensemble's Act (convert's act="keep")."""
    return Activation(type(module).__name__, module, None, functools.partial(_same, module))


def _same(module: nn.Module) -> nn.Module:
    return module


def _sync_alpha_after_load(module: "PEAEnsemble", _incompatible) -> None:
    module._sync_alpha()


class PEAEnsemble(nn.Module):
    """Base of the ensembles: holds Act, T and alpha (a float32 buffer, saved in state_dict).

    `act` is a registered activation's name, or a model's own activation module (convert's
    act="keep"): that very instance becomes the smooth branch, a submodule `own` whose parameters
    and settings are kept and keep training."""

    variant = "base"

    def __init__(self, act: str | nn.Module = "gelu", target: str = "relu", swish_beta: float = 1.0):
        super().__init__()
        if isinstance(act, nn.Module):
            if getattr(act, "inplace", False):  # both branches read x: Act must not overwrite it
                act.inplace = False
            self.own = act
            self.act = _own_activation(act)
        else:
            self.own = None
            self.act = smooth_activation(act, swish_beta)
        self.target = target_activation(target)
        self.swish_beta = float(swish_beta)
        # (act, target) codes of the ensemble ops where they compute this pair, else None (a plug-in
        # activation, Swish with beta != 1, a model's own module of another kind or setting: the
        # autograd forms below)
        act_code = cpu_kernels.act_code(self.act.kernel if self.own is None else _op_name_of(self.own))
        target_code = {"relu": 0, "relu6": 1}.get(self.target.name)
        self._codes = (act_code, target_code) if act_code and target_code is not None else None
        self.compiled_form = compiled_form.default()  # what torch.compile traces: the op or its ATen form
        self.register_buffer("alpha", torch.zeros((), dtype=torch.float32))
        # A Python copy of the buffer, so forward never syncs a GPU to read it; kept in step by
        # set_alpha and by the hook below when a state_dict is loaded.
        self._alpha_value = 0.0
        self.register_load_state_dict_post_hook(_sync_alpha_after_load)
        self._act_name = None if self.own is not None else act

    def _sync_alpha(self) -> None:
        self._alpha_value = float(self.alpha)

    # torch.save(model) / multiprocessing pickle a whole module: the activations hold functions
    # (lambdas among them) that pickle cannot name, so they travel as the names they are built from.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["act"] = None
        state["target"] = self.target.name
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if self.own is not None:
            self.act = _own_activation(self.own)
        else:
            self.act = smooth_activation(self._act_name, self.swish_beta)
        self.target = target_activation(state["target"])

    def set_alpha(self, value: float) -> None:
        """Set alpha in [0, 1] in place (keeps the buffer's device)."""
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {value}")
        as_float32 = struct.unpack("f", struct.pack("f", float(value)))[0]  # what the buffer holds
        self.alpha.fill_(as_float32)
        self._alpha_value = as_float32

    def deploy_module(self) -> nn.Module:
        """The plain module this ensemble becomes once alpha == 1 (nn.ReLU or nn.ReLU6)."""
        return self.target.module()

    def extra_repr(self) -> str:
        return f"act={self.act.name}, target={self.target.name}, alpha={float(self.alpha):.4f}"


class WeightedEnsemble(PEAEnsemble):
    """f_w(x, a) = a * T(x) + (1 - a) * Act(x)  (Eq. 1)."""

    variant = "weighted"

    def forward(self, x: Tensor) -> Tensor:
        return _weighted_forward_of(self, x)


def _weighted_forward_of(ens: PEAEnsemble, x: Tensor) -> Tensor:
    if ens._codes is not None and ensemble_ops.runs_on(x, ens._codes[1]):
        if compiled_form.pointwise(ens):
            return ensemble_aten.weighted(x, ens.alpha, *ens._codes)
        return ensemble_ops.weighted(x, ens.alpha, *ens._codes)
    if ens.own is not None:
        return _own_weighted(x, ens.own, ens.target, ens)
    if torch.compiler.is_compiling():
        return torch.lerp(ens.act.fn(x), ens.target.fn(x), ens.alpha.to(x.dtype))
    return ensemble(x, ens._alpha_value, ens.act, ens.target)


class StochasticEnsemble(PEAEnsemble):
    """f_s(x, a) = T(x) if r == 1 else Act(x), r ~ Bernoulli(a)  (Eq. 3).

    `granularity` says what one draw of r covers: every element (default, as in the paper), every
    channel of every sample (dim 1), or the whole tensor. In eval mode the module returns the
    expectation E[f_s] = a * T(x) + (1 - a) * Act(x), i.e. the weighted form, so validation during
    the transition phase is deterministic.
    """

    variant = "stochastic"

    def __init__(self, act: str | nn.Module = "gelu", target: str = "relu", swish_beta: float = 1.0,
                 granularity: str = "element"):
        super().__init__(act, target, swish_beta)
        self.granularity = GRANULARITIES.check(granularity)
        self.granularity = granularity

    def _mask_shape(self, x: Tensor) -> tuple[int, ...]:
        if self.granularity == "element":
            return tuple(x.shape)
        if self.granularity == "channel" and x.dim() >= 2:
            return (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)
        return (1,) * x.dim()

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return _weighted_forward_of(self, x)
        compiling = torch.compiler.is_compiling()
        # Eager mode reads the Python copy of alpha (no device sync): at 0 and 1 no draw can pick
        # the other branch, so none is made and the RNG stream is the plain net's. A compiled graph
        # takes alpha as a tensor (one graph for every alpha) and always draws.
        w = None if compiling else self._alpha_value
        if w in (0.0, 1.0):
            if self.own is not None:
                return self.own(x) if w == 0.0 else self.target.fn(x)
            return ensemble(x, w, self.act, self.target)
        if self.granularity == "element" and self._codes is not None and ensemble_ops.runs_on(x, self._codes[1]):
            seed = ensemble_ops.draw_seed(x.device)
            if compiled_form.pointwise(self):
                return ensemble_aten.stochastic(x, self.alpha, seed, *self._codes)
            return ensemble_ops.stochastic(x, self.alpha, seed, *self._codes)
        if self.own is None and self.granularity == "element" and x.device.type == "cpu" and not compiling:
            return stochastic_ensemble(x, w, self.act, self.target)
        mask = _draw(self._mask_shape(x), self, x)
        if self.own is not None or compiling:
            act = self.own if self.own is not None else self.act.fn
            return torch.where(mask, self.target.fn(x), act(x))
        return ensemble(x, mask, self.act, self.target)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", granularity={self.granularity}"

