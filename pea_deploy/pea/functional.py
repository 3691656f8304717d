"""Activations called in forward() (F.silu(x), F.gelu(x), x * torch.sigmoid(x), ...) rewritten into
activation modules with torch.fx, so convert(act="keep") can wrap them like any nn.SiLU.

Where a model calls such an activation but does not trace, nothing is guessed: ConversionError
names each call and its source line (found by reading the forward() methods' source).
"""

from __future__ import annotations

import ast
import inspect
import operator
import textwrap

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConversionError

# function -> (module class, {call keyword -> module keyword}, positional keywords after x)
_FUNCTIONS = {
    F.silu: (nn.SiLU, {}, ()), F.gelu: (nn.GELU, {"approximate": "approximate"}, ()),
    F.mish: (nn.Mish, {}, ()), F.hardswish: (nn.Hardswish, {}, ()),
    F.elu: (nn.ELU, {"alpha": "alpha"}, ("alpha",)), F.celu: (nn.CELU, {"alpha": "alpha"}, ("alpha",)),
    F.selu: (nn.SELU, {}, ()), F.softplus: (nn.Softplus, {"beta": "beta", "threshold": "threshold"},
                                             ("beta", "threshold")),
    F.leaky_relu: (nn.LeakyReLU, {"negative_slope": "negative_slope"}, ("negative_slope",)),
    F.relu6: (nn.ReLU6, {}, ()), F.hardsigmoid: (nn.Hardsigmoid, {}, ()),
    torch.sigmoid: (nn.Sigmoid, {}, ()), F.sigmoid: (nn.Sigmoid, {}, ()),
}
_METHODS = {"sigmoid": nn.Sigmoid}
# Names whose call in forward() source is an activation convert must see as a module.
_SOURCE_NAMES = {"silu", "gelu", "mish", "hardswish", "elu", "celu", "selu", "softplus", "leaky_relu", "relu6",
                 "hardsigmoid", "sigmoid"}


class SiLUAsWritten(nn.Module):
    """x * sigmoid(x) as the model wrote it (not F.silu's fused kernel, which rounds differently), so
    the converted model equals the original bit for bit at alpha = 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def functional_calls(model: nn.Module, target: str = "relu") -> list[str]:
    """`F.silu at file.py:42`-style entries for every activation call in the forward() of the
    model's module classes (read from source; a ReLU6 call counts only when the target is relu)."""
    names = _SOURCE_NAMES - ({"relu6"} if target == "relu6" else set())
    found, seen = [], set()
    for m in model.modules():
        cls = type(m)
        if cls in seen or cls.__module__.startswith("torch."):
            continue
        seen.add(cls)
        try:
            lines, start = inspect.getsourcelines(cls.forward)
            tree = ast.parse(textwrap.dedent("".join(lines)))
            path = inspect.getsourcefile(cls.forward) or "?"
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name in names:
                    found.append(f"{ast.unparse(f)} at {path}:{start + node.lineno - 1}")
    return found


class _Tracer(torch.fx.Tracer):
    """torch.fx's tracer, stopping at registered activation modules: a user's own activation class
    (say a learnt Swish) stays one module for convert to wrap, not its inlined arithmetic."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        from ..registry import OWN_ACTIVATIONS

        return any(type(m) is e.load() for e in OWN_ACTIVATIONS.entries()) or super().is_leaf_module(m, qualname)


def _module_for(node: torch.fx.Node) -> nn.Module | None:
    if node.op == "call_function" and node.target in _FUNCTIONS:
        cls, kwmap, positional = _FUNCTIONS[node.target]
        kwargs = {kwmap[k]: v for k, v in node.kwargs.items() if k in kwmap}
        for name, value in zip(positional, node.args[1:]):
            kwargs[name] = value
        if any(isinstance(v, torch.fx.Node) for v in kwargs.values()):
            return None  # a parameter computed at run time: not a fixed module
        return cls(**kwargs)
    if node.op == "call_method" and node.target in _METHODS and len(node.args) == 1:
        return _METHODS[node.target]()
    return None


def _is_gate_of(mul: torch.fx.Node) -> torch.fx.Node | None:
    """For mul(x, sigmoid(x)) (either order): the sigmoid node, so x * sigmoid(x) becomes one SiLU."""
    if mul.op != "call_function" or mul.target not in (operator.mul, torch.mul) or len(mul.args) != 2:
        return None
    a, b = mul.args
    for x, s in ((a, b), (b, a)):
        if isinstance(s, torch.fx.Node) and isinstance(x, torch.fx.Node) and s.args and s.args[0] is x and (
                (s.op == "call_function" and s.target in (torch.sigmoid, F.sigmoid)) or
                (s.op == "call_method" and s.target == "sigmoid")) and len(s.users) == 1:
            return s
    return None


def rewrite_functional_activations(model: nn.Module, target: str = "relu") -> nn.Module:
    """`model` itself when its forward() calls no activation; else a torch.fx GraphModule in which
    every such call is an activation module (x * sigmoid(x) an nn.SiLU). Raises ConversionError
    naming each call (from the source) when the model calls activations and does not trace."""
    try:
        gm = torch.fx.GraphModule(model, _Tracer().trace(model), model.__class__.__name__)
    except Exception as e:  # noqa: BLE001 - fx raises many kinds for control flow it cannot follow
        calls = functional_calls(model, target)
        if not calls:
            return model  # nothing to rewrite: the modules alone are converted
        reason = " ".join(str(e).split())[:160]
        raise ConversionError(f"forward() calls activations that convert can only replace through torch.fx, "
                              f"and the model does not trace ({type(e).__name__}: {reason}): "
                              f"{'; '.join(calls[:8])}; use activation modules (nn.SiLU, ...) there "
                              f"instead") from None
    rewritten = []
    # x * sigmoid(x) first (as one SiLU), before the sigmoid alone would become a gate module
    nodes = [(n, _is_gate_of(n)) for n in gm.graph.nodes]
    nodes = [(n, g) for n, g in nodes if g is not None] + [(n, None) for n, g in nodes if g is None]
    erased: set = set()
    for i, (node, gate) in enumerate(nodes):
        if node in erased:  # the sigmoid of a SiLU pattern above
            continue
        if gate is not None:
            module, x = SiLUAsWritten(), gate.args[0]
        else:
            module, x = _module_for(node), (node.args[0] if node.args else None)
        if module is None or (target == "relu6" and isinstance(module, nn.ReLU6)):
            continue
        name = f"pea_fx_{type(module).__name__.lower()}_{i}"
        gm.add_submodule(name, module)
        with gm.graph.inserting_after(node):
            new = gm.graph.call_module(name, (x,))
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
        if gate is not None:
            gm.graph.erase_node(gate)
            erased.add(gate)
        call = "x * sigmoid(x)" if gate is not None else getattr(node.target, "__name__", str(node.target)) + "()"
        rewritten.append({"call": call, "module": type(module).__name__})
    if not rewritten:
        return model  # no call to rewrite: keep the user's own class
    gm.graph.lint()
    gm.recompile()
    gm.pea_functional_rewrites = rewritten
    return gm
