"""A second device for CPU-only test runs, to catch device mixing without a GPU.

`SecondDevice()` is a TorchDispatchMode that observes every ATen op. Tensors made by `on_device(t)`
(or by any op on them, or by a factory given their `.device`) report the device "meta" and carry
their real data on the CPU, so data-dependent code (NMS rounds, `.item()`, boolean masks) runs as
usual. Each op is checked as a GPU would check it: its tensors must share one device, except CPU
0-dim tensors (scalars, which CUDA ops accept too) and copies (`.to`, `copy_`), else the op raises
the GPU's "Expected all tensors to be on the same device". A factory that forgets `device=` makes a
CPU tensor, so the first op that meets a device tensor with it raises, as `torch.ones(n)` beside a
CUDA tensor does.

Why "meta": a CPU-only torch lets a factory name only cpu or meta without initialising a backend
(`device="cuda"` fails before any op runs). Nothing here replaces an op: the CPU kernels compute.
`torch.tensor(data, device=...)` moves its data below the dispatcher, where the mode cannot see it
(it would make a real meta tensor, values lost), so those calls build on the CPU and then move.
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

DEVICE = torch.device("meta")
_COPIES = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default}


class OnDevice(torch.Tensor):
    """A tensor that reports DEVICE and holds its values in `.payload`, a CPU tensor."""

    __torch_function__ = torch._C._disabled_torch_function_impl  # results stay what the mode makes

    @staticmethod
    def __new__(cls, payload: torch.Tensor):
        t = torch.Tensor._make_wrapper_subclass(cls, payload.shape, strides=payload.stride(),
                                                storage_offset=payload.storage_offset(), dtype=payload.dtype,
                                                device=DEVICE, requires_grad=False)
        t.payload = payload
        return t

    def __repr__(self):
        return f"OnDevice({self.payload!r})"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise RuntimeError(f"{func} on an OnDevice tensor outside SecondDevice()")


def on_device(t: torch.Tensor) -> OnDevice:
    return OnDevice(t.detach().cpu())


def on_host(t):
    """The CPU values of an OnDevice tensor (and of nested lists / dicts of them)."""
    return tree_map(lambda v: v.payload if isinstance(v, OnDevice) else v, t)


class _HostDataFirst(TorchFunctionMode):
    """`torch.tensor` / `as_tensor` of host data (lists, arrays) for DEVICE: made on the CPU, then
    moved by an op the dispatch mode sees."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        device = kwargs.get("device")
        if (func in (torch.tensor, torch.as_tensor) and device is not None and torch.device(device) == DEVICE
                and not isinstance(args[0], torch.Tensor)):
            return func(*args, **{**kwargs, "device": "cpu"}).to(DEVICE)
        return func(*args, **kwargs)


class SecondDevice(TorchDispatchMode):
    """Runs ops on the CPU and checks their devices as a GPU would; `ops` counts the ops that ran on
    the device (so a test can tell its code really ran there)."""

    def __init__(self):
        super().__init__()
        self.ops = 0
        self._host_data = _HostDataFirst()

    def __enter__(self):
        self._host_data.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self._host_data.__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        if any(t.device == DEVICE and not isinstance(t, OnDevice) for t in tensors):
            raise RuntimeError(f"a real {DEVICE} tensor (no values) reached {func}: made below the dispatcher")
        devices = {t.device for t in tensors if t.device != torch.device("cpu") or t.dim() > 0}
        asked = kwargs.get("device")
        if func not in _COPIES and len(devices) > 1:
            raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                               f"{' and '.join(sorted(map(str, devices)))}! (in {func})")
        if asked is not None:
            lands = torch.device(asked)
            kwargs["device"] = torch.device("cpu")
        elif func is torch.ops.aten.copy_.default:
            lands = args[0].device
        else:
            lands = next(iter(devices)) if devices else torch.device("cpu")
        result = func(*on_host(args), **on_host(kwargs))
        if lands.type != DEVICE.type:
            return result
        self.ops += 1
        held = {id(t.payload): t for t in tensors if isinstance(t, OnDevice)}  # in-place ops return these

        def wrap(v):
            return (held[id(v)] if id(v) in held else OnDevice(v)) if isinstance(v, torch.Tensor) else v

        return tree_map(wrap, result)
