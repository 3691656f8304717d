"""The two PEA ensembles (Utasi 2022, Eq. 1 and Eq. 3) as nn.Modules.

Both compute `w * T(x) + (1 - w) * Act(x)`: the weighted ensemble with w = alpha, the stochastic one
with w = r ~ Bernoulli(alpha) drawn per element, channel or tensor. One custom autograd function
serves both: it saves only the input (and, for the stochastic case, the boolean mask) and recomputes
the derivatives in backward, so training never keeps the two activation outputs alive.

Exactness: at alpha == 0 and alpha == 1 the weighted ensemble computes only Act(x) or only T(x), so
its output is exactly that activation, bit for bit; in between, `lerp_` mixes the two in place.
"""

from __future__ import annotations

import struct

import torch
from torch import Tensor, nn

from ..registry import GRANULARITIES
from .activations import Activation, smooth_activation, target_activation


# Elements blended per step: the second branch is computed a chunk at a time, so the ensemble's
# transient memory is a few MiB, not a second activation-sized tensor (peak memory = Act-only's).
CHUNK = 1 << 18


def _chunks(*tensors: Tensor):
    """Matching flat slices of same-shape, same-layout dense tensors; the whole tensors otherwise."""
    first = tensors[0]
    if all(t.is_contiguous() and t.shape == first.shape for t in tensors) and first.numel() > CHUNK:
        flat = [t.view(-1) for t in tensors]
        for i in range(0, first.numel(), CHUNK):
            yield [f[i:i + CHUNK] for f in flat]
    else:
        yield list(tensors)


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
        return _blend(act.fn(x), target.fn, x, w)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, *mask = ctx.saved_tensors
        act, target = ctx.act, ctx.target
        if mask and mask[0].shape != x.shape:
            return torch.where(mask[0], target.vjp(grad_out, x), act.vjp(grad_out, x)), None, None, None
        if not mask and ctx.weight in (0.0, 1.0):
            return (target if ctx.weight == 1.0 else act).vjp(grad_out, x), None, None, None
        grad_out = grad_out.contiguous()
        weight = mask[0] if mask else ctx.weight
        grad_in = act.vjp(grad_out, x)
        return _blend(grad_in, lambda xc, gc: target.vjp(gc, xc), x, weight, grad_out), None, None, None


def ensemble(x: Tensor, weight, act: Activation, target: Activation) -> Tensor:
    """`weight * target(x) + (1 - weight) * act(x)`, saving only x (and a bool mask) for backward.

    `weight` is a float (weighted ensemble) or a bool mask broadcastable to x (stochastic
    ensemble: True picks the target). No gradient flows to it: alpha is scheduled, not learned.
    """
    return _EnsembleFn.apply(x, weight, act, target)


def _own_weighted(x: Tensor, own: nn.Module, target: Activation, w: float) -> Tensor:
    """The weighted ensemble with a model's own activation module as Act: plain autograd, so the
    module's parameters (PReLU's slope, a learnt beta) keep training. Exact at w = 0 and 1."""
    if w == 0.0:
        return own(x)
    if w == 1.0:
        return target.fn(x)
    return torch.lerp(own(x), target.fn(x), w)


def _own_stochastic(x: Tensor, own: nn.Module, target: Activation, mask: Tensor, w: float) -> Tensor:
    if w == 0.0:  # no element draws the target: exactly the model's own activation
        return own(x)
    if w == 1.0:
        return target.fn(x)
    return torch.where(mask, target.fn(x), own(x))


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
            self.act = Activation(type(act).__name__, act, None, lambda: act)
        else:
            self.own = None
            self.act = smooth_activation(act, swish_beta)
        self.target = target_activation(target)
        self.swish_beta = float(swish_beta)
        self.register_buffer("alpha", torch.zeros((), dtype=torch.float32))
        # A Python copy of the buffer, so forward never syncs a GPU to read it; kept in step by
        # set_alpha and by the hook below when a state_dict is loaded.
        self._alpha_value = 0.0
        self.register_load_state_dict_post_hook(lambda module, _: module._sync_alpha())

    def _sync_alpha(self) -> None:
        self._alpha_value = float(self.alpha)

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
        if self.own is not None:
            return _own_weighted(x, self.own, self.target, self._alpha_value)
        return ensemble(x, self._alpha_value, self.act, self.target)


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
            if self.own is not None:
                return _own_weighted(x, self.own, self.target, self._alpha_value)
            return ensemble(x, self._alpha_value, self.act, self.target)
        mask = torch.rand(self._mask_shape(x), device=x.device) < self._alpha_value
        if self.own is not None:
            return _own_stochastic(x, self.own, self.target, mask, self._alpha_value)
        return ensemble(x, mask, self.act, self.target)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", granularity={self.granularity}"

