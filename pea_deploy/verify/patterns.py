"""Name what a rejected activation op most likely is: exporters decompose smooth activations
(GELU as Erf/Div/Mul/Add, tanh-GELU as Tanh/Pow/Mul, SiLU as Sigmoid*x, Mish as Softplus/Tanh/Mul),
and an unstripped PEA ensemble shows up as a ReLU and a smooth activation fed by the same tensor."""

from __future__ import annotations

from ..registry import smooth_activation_labels
from .graph import Graph, Node
from .ops import RELU_LIKE


def _producer_op(g: Graph, node: Node, i: int = 0) -> Node | None:
    return g.producer(node, node.inputs[i]) if len(node.inputs) > i and node.inputs[i] else None


def _consumer_kinds(g: Graph, node: Node) -> set[str]:
    return {c.kind for out in node.outputs for c in g.consumers_of(node, out)}


def _chain_kinds(g: Graph, node: Node, depth: int = 3) -> set[str]:
    """Kinds of the ops producing `node`'s inputs, up to `depth` steps back."""
    seen, frontier = set(), [node]
    for _ in range(depth):
        nxt = []
        for n in frontier:
            for t in n.inputs:
                p = g.producer(n, t) if t else None
                if p is not None:
                    seen.add(p.kind)
                    nxt.append(p)
        frontier = nxt
    return seen


def _multiplied_by_own_input(g: Graph, node: Node) -> bool:
    """`node`'s output is multiplied by `node`'s input: the x * gate(x) shape of SiLU/Swish/Mish."""
    root = node.inputs[0] if node.inputs else None
    for out in node.outputs:
        for c in g.consumers_of(node, out):
            if c.kind == "mul" and root in c.inputs:
                return True
    # Swish with beta: Sigmoid(Mul(x, beta)) * x
    p = _producer_op(g, node)
    if p is not None and p.kind == "mul":
        for out in node.outputs:
            for c in g.consumers_of(node, out):
                if c.kind == "mul" and set(c.inputs) & set(p.inputs):
                    return True
    return False


def _pattern_root(g: Graph, node: Node) -> str | None:
    """The tensor the activation pattern is applied to (x in Act(x))."""
    if not node.inputs:
        return None
    p = _producer_op(g, node)
    if node.kind == "erf" and p is not None and p.kind in ("div", "mul"):
        return p.inputs[0]
    if node.kind == "tanh" and p is not None and p.kind == "softplus":
        return p.inputs[0]
    if p is not None and p.kind == "mul" and node.kind == "sigmoid":
        return p.inputs[0]  # Swish with beta: Sigmoid(x * beta)
    return node.inputs[0]


def _fed_relu_too(g: Graph, node: Node) -> bool:
    root = _pattern_root(g, node)
    return root is not None and any(c.kind in RELU_LIKE for c in g.consumers.get((node.graph, root), []))


def _hard_gate(g: Graph, node: Node) -> str | None:
    """ReLU6(x + 3) / 6 (HardSigmoid), and x times it (HardSwish), as exporters decompose them."""
    p = _producer_op(g, node)
    if p is None or p.kind != "add" or not ({"div", "mul"} & _consumer_kinds(g, node)):
        return None
    x = next((t for t in p.inputs if t and g.producer(p, t) is None or
              (g.producer(p, t) is not None and g.producer(p, t).kind not in ("constant",))), None)
    scaled = [c for out in node.outputs for c in g.consumers_of(node, out) if c.kind in ("div", "mul")]
    for s in scaled:
        for out in s.outputs:
            if any(c.kind == "mul" and x in c.inputs for c in g.consumers_of(s, out)) or x in s.inputs:
                return "HardSwish (x * ReLU6(x + 3) / 6)"
    return "HardSigmoid (ReLU6(x + 3) / 6)"


def likely_activation(g: Graph, node: Node) -> str | None:
    """A short name for what `node` is part of, or None if it is just itself."""
    kind = node.kind
    name = None
    if kind == "gelu":
        name = "GELU"
    elif kind == "erf":
        name = "GELU (Erf form)" if {"add", "mul"} & _consumer_kinds(g, node) or \
            {"div", "mul"} & _chain_kinds(g, node, 1) else "Erf"
    elif kind == "tanh":
        chain = _chain_kinds(g, node, 4)
        if "softplus" in chain or {"exp", "log"} <= chain:
            name = "Mish"
        elif "pow" in chain or ("mul" in chain and "add" in chain):
            name = "GELU (tanh approximation)"
    elif kind == "sigmoid":
        name = "SiLU/Swish (x * sigmoid(x))" if _multiplied_by_own_input(g, node) else "Sigmoid"
    elif kind == "hard_sigmoid":
        name = "HardSwish (x * hardsigmoid(x))" if _multiplied_by_own_input(g, node) else None
    elif kind == "softplus":
        name = "Mish" if "tanh" in _consumer_kinds(g, node) else "Softplus"
    elif kind == "exp":
        cons = _consumer_kinds(g, node)
        name = "Softplus/Mish" if {"log", "log1p", "add"} & cons else ("ELU" if "sub" in cons else None)
    elif kind in ("clip", "relu6"):
        name = _hard_gate(g, node)
    elif kind in ("mish", "elu", "hard_swish", "swish"):
        name = {"mish": "Mish", "elu": "ELU", "hard_swish": "HardSwish", "swish": "Swish"}[kind]
    else:  # an op a registered smooth activation (a plug-in) exports to
        name = smooth_activation_labels().get(node.op)
    if name and kind not in ("clip", "relu6") and _fed_relu_too(g, node):
        return f"an unstripped PEA ensemble (ReLU + {name.split(' ')[0]})"
    return name


def hint_for(likely: str | None) -> str:
    if likely and likely.startswith("an unstripped PEA ensemble"):
        return ("the ensemble was exported before stripping: run pea-export on a finished PEA run "
                "(alpha == 1), which replaces every ensemble by ReLU/ReLU6")
    smooth = {"HardSwish", *smooth_activation_labels().values()}
    if likely and any(k in likely for k in smooth):
        return (f"this is a {likely.split(' (')[0]}: was the model exported from an unstripped PEA run "
                f"or the upper-limit (Act-only) net? train with PEA and export with pea-export")
    return "the target runs only ReLU/ReLU6: replace this op and retrain (pea-train)"
