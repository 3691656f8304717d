"""Name what a rejected activation op most likely is: exporters decompose smooth activations
(GELU as Erf/Div/Mul/Add, tanh-GELU as Tanh/Pow/Mul, SiLU as Sigmoid*x, Mish as Softplus/Tanh/Mul),
and an unstripped PEA ensemble shows up as a ReLU and a smooth activation fed by the same tensor."""

from __future__ import annotations

from .graph import Graph, Node

_RELU_LIKE = {"Relu", "Clip", "RELU", "RELU6"}


def _producer_op(g: Graph, node: Node, i: int = 0) -> Node | None:
    return g.producer(node, node.inputs[i]) if len(node.inputs) > i and node.inputs[i] else None


def _consumer_ops(g: Graph, node: Node) -> set[str]:
    return {c.op for out in node.outputs for c in g.consumers_of(node, out)}


def _chain_ops(g: Graph, node: Node, depth: int = 3) -> set[str]:
    """Ops producing `node`'s inputs, up to `depth` steps back."""
    seen, frontier = set(), [node]
    for _ in range(depth):
        nxt = []
        for n in frontier:
            for t in n.inputs:
                p = g.producer(n, t) if t else None
                if p is not None:
                    seen.add(p.op)
                    nxt.append(p)
        frontier = nxt
    return seen


def _multiplied_by_own_input(g: Graph, node: Node) -> bool:
    """`node`'s output is multiplied by `node`'s input: the x * gate(x) shape of SiLU/Swish/Mish."""
    root = node.inputs[0] if node.inputs else None
    for out in node.outputs:
        for c in g.consumers_of(node, out):
            if c.op in ("Mul", "MUL") and root in c.inputs:
                return True
    # Swish with beta: Sigmoid(Mul(x, beta)) * x
    p = _producer_op(g, node)
    if p is not None and p.op in ("Mul", "MUL"):
        for out in node.outputs:
            for c in g.consumers_of(node, out):
                if c.op in ("Mul", "MUL") and set(c.inputs) & set(p.inputs):
                    return True
    return False


def _pattern_root(g: Graph, node: Node) -> str | None:
    """The tensor the activation pattern is applied to (x in Act(x))."""
    if not node.inputs:
        return None
    p = _producer_op(g, node)
    if node.op == "Erf" and p is not None and p.op in ("Div", "Mul"):
        return p.inputs[0]
    if node.op == "Tanh" and p is not None and p.op == "Softplus":
        return p.inputs[0]
    if p is not None and p.op in ("Mul", "MUL") and node.op in ("Sigmoid", "LOGISTIC"):
        return p.inputs[0]  # Swish with beta: Sigmoid(x * beta)
    return node.inputs[0]


def _fed_relu_too(g: Graph, node: Node) -> bool:
    root = _pattern_root(g, node)
    return root is not None and any(c.op in _RELU_LIKE for c in g.consumers.get((node.graph, root), []))


def likely_activation(g: Graph, node: Node) -> str | None:
    """A short name for what `node` is part of, or None if it is just itself."""
    op = node.op
    name = None
    if op in ("Gelu", "GELU"):
        name = "GELU"
    elif op == "Erf":
        name = "GELU (Erf form)" if {"Add", "Mul"} & _consumer_ops(g, node) or \
            {"Div", "Mul"} & _chain_ops(g, node, 1) else "Erf"
    elif op in ("Tanh", "TANH"):
        chain = _chain_ops(g, node, 4)
        if "Softplus" in chain or {"Exp", "Log"} <= chain:
            name = "Mish"
        elif "Pow" in chain or ("Mul" in chain and "Add" in chain):
            name = "GELU (tanh approximation)"
    elif op in ("Sigmoid", "LOGISTIC"):
        name = "SiLU/Swish (x * sigmoid(x))" if _multiplied_by_own_input(g, node) else "Sigmoid"
    elif op in ("HardSigmoid",):
        name = "HardSwish (x * hardsigmoid(x))" if _multiplied_by_own_input(g, node) else None
    elif op == "Softplus":
        name = "Mish" if {"Tanh"} & _consumer_ops(g, node) else "Softplus"
    elif op in ("Exp", "EXP"):
        cons = _consumer_ops(g, node)
        name = "Softplus/Mish" if {"Log", "Log1p", "Add"} & cons else ("ELU" if "Sub" in cons else None)
    elif op in ("Mish", "Elu", "ELU", "HardSwish", "HARD_SWISH", "Swish"):
        name = {"Elu": "ELU", "HARD_SWISH": "HardSwish"}.get(op, op)
    if name and _fed_relu_too(g, node):
        return f"an unstripped PEA ensemble (ReLU + {name.split(' ')[0]})"
    return name


def hint_for(likely: str | None) -> str:
    if likely and likely.startswith("an unstripped PEA ensemble"):
        return ("the ensemble was exported before stripping: run pea-export on a finished PEA run "
                "(alpha == 1), which replaces every ensemble by ReLU/ReLU6")
    if likely and any(k in likely for k in ("GELU", "SiLU", "Swish", "Mish", "ELU", "HardSwish")):
        return (f"this is a {likely.split(' (')[0]}: was the model exported from an unstripped PEA run "
                f"or the upper-limit (Act-only) net? train with PEA and export with pea-export")
    return "the target runs only ReLU/ReLU6: replace this op and retrain (pea-train)"
