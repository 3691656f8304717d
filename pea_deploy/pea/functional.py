"""Activations called in forward() (F.silu(x), F.gelu(x), x * torch.sigmoid(x), ...) rewritten into
activation modules with torch.fx, so convert(act="keep") can wrap them like any nn.SiLU.

Only the modules whose own forward() calls an activation (read from their source) are traced, one
at a time, with every child module a leaf: code elsewhere that torch.fx cannot follow (a YOLO C2f's
`list(x.chunk(2, 1))`, data-dependent control flow in a head) does not block the conversion. Each
traced module is replaced where it sits, so module paths stay those of the model. Where a module
that calls an activation does not trace, nothing is guessed: ConversionError names the module, its
activation calls and the line that failed to trace.
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
    found, seen = [], set()
    for m in model.modules():
        if type(m) not in seen:
            seen.add(type(m))
            found += class_calls(type(m), target)
    return found


def class_calls(cls: type, target: str = "relu") -> list[str]:
    """The activation calls in `cls.forward`'s own source (not its children's), as in functional_calls."""
    if cls.__module__.startswith("torch.") or cls.forward is nn.Module.forward:
        return []
    names = _SOURCE_NAMES - ({"relu6"} if target == "relu6" else set())
    try:
        lines, start = inspect.getsourcelines(cls.forward)
        tree = ast.parse(textwrap.dedent("".join(lines)))
        path = inspect.getsourcefile(cls.forward) or "?"
    except (OSError, TypeError, SyntaxError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in names:
                found.append(f"{ast.unparse(f)} at {path}:{start + node.lineno - 1}")
    return found


class _OwnForwardTracer(torch.fx.Tracer):
    """torch.fx's tracer for one module's own forward(): every child module is a leaf, called as it
    is, so neither its code nor a user's own activation class (say a learnt Swish) is inlined."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return True


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
    """`model`, with every module whose own forward() calls an activation replaced (where it is
    registered, shared instances everywhere) by a torch.fx GraphModule in which each such call is an
    activation module (x * sigmoid(x) one nn.SiLU). The model itself is returned unless its own
    forward() calls one (then its GraphModule is). The rewrites are listed in the returned model's
    `pea_functional_rewrites`. Raises ConversionError naming the module, its calls and the line that
    does not trace."""
    from ..registry import OWN_ACTIVATIONS

    own = {e.load() for e in OWN_ACTIVATIONS.entries()}  # a user's activation class stays one module
    callers = [(path, m) for path, m in model.named_modules() if type(m) not in own and class_calls(type(m), target)]
    rewritten: dict[int, nn.Module] = {}
    found: list[dict] = []
    # children before their parents: a parent's trace then calls its already rewritten child
    for path, module in sorted(callers, key=lambda pm: -pm[0].count(".") - bool(pm[0])):
        new, calls = _rewrite_one(module, path, target)
        if calls:
            rewritten[id(module)] = new
            found += [{**c, "path": path} for c in calls]
            for parent in list(model.modules()):
                for name, child in list(parent._modules.items()):
                    if child is module:
                        setattr(parent, name, new)
    if not rewritten:
        return model
    root = rewritten.get(id(model), model)
    root.pea_functional_rewrites = found
    return root


def _rewrite_one(module: nn.Module, path: str, target: str) -> tuple[nn.Module, list[dict]]:
    """(module's GraphModule with its activation calls as modules, what was rewritten); the module
    itself and [] when its calls turn out to be no activation call torch.fx sees."""
    try:
        graph = _OwnForwardTracer().trace(module)
    except Exception as e:  # noqa: BLE001 - fx raises many kinds for control flow it cannot follow
        raise ConversionError(_untraceable(module, path, target, e)) from None
    gm = torch.fx.GraphModule(module, graph, type(module).__name__)
    rewritten = []
    # x * sigmoid(x) first (as one SiLU), before the sigmoid alone would become a gate module
    nodes = [(n, _is_gate_of(n)) for n in gm.graph.nodes]
    nodes = [(n, g) for n, g in nodes if g is not None] + [(n, None) for n, g in nodes if g is None]
    erased: set = set()
    for i, (node, gate) in enumerate(nodes):
        if node in erased:  # the sigmoid of a SiLU pattern above
            continue
        if gate is not None:
            module_made, x = SiLUAsWritten(), gate.args[0]
        else:
            module_made, x = _module_for(node), (node.args[0] if node.args else None)
        if module_made is None or (target == "relu6" and isinstance(module_made, nn.ReLU6)):
            continue
        call = "x * sigmoid(x)" if gate is not None else getattr(node.target, "__name__", str(node.target)) + "()"
        module_made.pea_from_call = call  # conversion_summary counts it as this call, not as a module
        name = f"pea_fx_{type(module_made).__name__.lower()}_{i}"
        gm.add_submodule(name, module_made)
        with gm.graph.inserting_after(node):
            new = gm.graph.call_module(name, (x,))
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
        if gate is not None:
            gm.graph.erase_node(gate)
            erased.add(gate)
        rewritten.append({"call": call, "module": type(module_made).__name__})
    if not rewritten:
        return module, []
    gm.graph.lint()
    gm.recompile()
    return gm, rewritten


def _untraceable(module: nn.Module, path: str, target: str, e: Exception) -> str:
    """One line: which module calls which activations, and the line of its forward() that torch.fx
    could not trace (from the traceback's frames in the module's source file)."""
    import traceback

    cls = type(module)
    source = inspect.getsourcefile(cls.forward) or ""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if source and f.filename == source]
    where = f" at {frames[-1].filename}:{frames[-1].lineno}: `{(frames[-1].line or '').strip()}`" if frames else ""
    reason = " ".join(str(e).split())[:160]
    calls = class_calls(cls, target)
    return (f"{cls.__name__} ({path or 'the model'}) calls activations in forward() ({'; '.join(calls[:4])}) that "
            f"convert can only replace through torch.fx, and its forward() does not trace{where} "
            f"({type(e).__name__}: {reason}); use activation modules (nn.SiLU, ...) there instead")
