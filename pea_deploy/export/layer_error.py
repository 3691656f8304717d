"""Which layer loses accuracy in int8: the quantization error of every quantized tensor of an artefact.

Two numbers a tensor, each a median over channels of the per-channel SQNR in dB (10*log10 of
signal power over error power). Per-channel medians, because one outlier channel owns a whole-tensor
SQNR (its large values are represented well) while the scale it forces flattens every other channel.
- local: the float activation quantized with this tensor's own scale and zero point, and nothing
  else: how well this tensor's range suits its values. A low local SQNR names the layer to fix
  (an outlier, a range wasted on values an activation has clamped, a calibration that missed).
- accumulated: the artefact's activation, as its runtime computed it from int8 inputs through every
  layer before, against the float activation. Where it falls is where the error builds up.

The rows are ranked by local SQNR, worst first.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np
from torch import nn

TOP = 10


@dataclass
class TensorError:
    tensor: str                 # the artefact's tensor (ONNX name; TFLite: the torch graph node)
    module: str                 # the torch module that produced it ("" where the name does not say)
    op: str                     # the op that produced it
    scale: float
    zero_point: int
    local_sqnr_db: float | None        # None: no signal (every channel all zero)
    accumulated_sqnr_db: float | None  # None: the runtime's tensor could not be read

    def to_dict(self) -> dict:
        return asdict(self)


class ChannelNoise:
    """Running per-channel signal and error power of (error, reference) pairs, channel axis 1."""

    def __init__(self):
        self.signal: np.ndarray | None = None
        self.noise: np.ndarray | None = None

    def add(self, value: np.ndarray, reference: np.ndarray) -> None:
        ref = _channels(reference)
        err = _channels(value) - ref
        s, n = (ref * ref).sum(1), (err * err).sum(1)
        self.signal = s if self.signal is None else self.signal + s
        self.noise = n if self.noise is None else self.noise + n

    def median_db(self) -> float | None:
        if self.signal is None:
            return None
        live = self.signal > 0
        if not live.any():
            return None
        # an exact channel has no error to measure; 200 dB stands for "exact" far above any int8 SQNR
        db = np.where(self.noise[live] > 0,
                      10.0 * np.log10(self.signal[live] / np.maximum(self.noise[live], 1e-300)), 200.0)
        return round(float(np.median(np.minimum(db, 200.0))), 2)


def _channels(x: np.ndarray) -> np.ndarray:
    """(channels, values) in float64: axis 1 is the channel axis of NCHW and (N, features) tensors."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        return x.reshape(1, -1)
    return np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)


def fake_quantize(x: np.ndarray, scale: float, zero_point: int, qmin: int, qmax: int) -> np.ndarray:
    """x through an int8 quantize/dequantize pair (round half to even, as both runtimes do)."""
    q = np.clip(np.rint(np.asarray(x, dtype=np.float64) / scale) + zero_point, qmin, qmax)
    return ((q - zero_point) * scale).astype(np.float32)


def module_path(text: str) -> str:
    """A module path as the user writes it (`model.22.cv2.0.2`), from the spellings torch's tracers
    record in a graph's module stack: `L['self'].model.22`, `model[22]`, `getattr(model, '22')`,
    `model.22.__dict__['_modules']['cv2'].0.2` (a module reached through a dict, as Ultralytics'
    heads are), `_modules['cv2']`."""
    path, before = text, None
    while path != before:  # getattr(X, 'a') -> X.a, innermost first
        before = path
        path = re.sub(r"getattr\(([^(),]*),\s*['\"]([^'\"]*)['\"]\)", r"\1.\2", path)
    path = re.sub(r"\bL\[['\"]self['\"]\]", "", path)
    path = re.sub(r"\.?__dict__\[['\"]_+modules['\"]\]", "", path)
    path = re.sub(r"\.?_+modules\[", "[", path)
    path = re.sub(r"\[['\"]?([^\]'\"]*)['\"]?\]", r".\1", path)
    parts = [p for p in path.split(".") if p]
    return ".".join(parts[1:] if parts[:1] == ["self"] else parts)


def module_namer(root: nn.Module):
    """`name(path) -> str` for the modules of `root` (the exported network), named as the user's
    network names them: `module_path`, then
    - a path that skips modules resolves to the one module it can mean: TorchScript's ONNX scopes
      name only the modules called, and a wrapper that calls its child's children (the Ultralytics
      heads) leaves that child out (`raw.model.0.act` for `raw.model.model.0.act`);
    - a module registered under two names takes its first one (the one its network gives it, not
      an alias kept as an attribute: `model.22...`, not `head...`); but one instance held by several
      parents (one activation shared by every Conv, as Ultralytics' is) keeps the slot it was called
      from: its parent's name and its own attribute there;
    - below pea-deploy's own wrappers (a class naming its wrapped child in `wrapper_of`, as
      FlatOutputs and the Ultralytics heads) the wrapper's prefix is dropped; ops of a wrapper or
      of the user's network itself (the heads' concatenation) are named as its root is: ""."""
    names = list(root.named_modules(remove_duplicate=False))
    first: dict[int, str] = {}
    holders: dict[int, set[int]] = {}
    for name, module in names:
        first.setdefault(id(module), name)
        for child in module._modules.values():  # _modules: named_children() hides a second name
            if child is not None:
                holders.setdefault(id(child), set()).add(id(module))
    prefix, node, above = "", root, {""}  # above: the wrappers' and the user's root module's paths
    while isinstance(getattr(type(node), "wrapper_of", None), str):
        prefix += type(node).wrapper_of + "."
        node = getattr(node, type(node).wrapper_of)
        above.add(prefix[:-1])

    def find(path: str) -> nn.Module | None:
        """The module `path` names: its head resolved from the root, its tail ending the name of
        exactly one module below that (the longest tail first)."""
        parts = path.split(".") if path else []
        for i in range(len(parts) + 1):
            try:
                top = root.get_submodule(".".join(parts[:i]))
            except AttributeError:
                return None
            tail = ".".join(parts[i:])
            if not tail:
                return top
            found = {id(m): m for n, m in top.named_modules(remove_duplicate=False)
                     if n == tail or n.endswith("." + tail)}
            if len(found) == 1:
                return next(iter(found.values()))
        return None

    def name(path: str) -> str:
        path = module_path(path)
        module = find(path)
        if module is None:
            return path
        parent, _, leaf = path.rpartition(".")
        if len(holders.get(id(module), ())) > 1:  # shared: named by the slot it was called from
            owner = find(parent) if parent else root
            if owner is None:
                return path
            path = f"{first[id(owner)]}.{leaf}".lstrip(".")
        else:
            path = first[id(module)]
        if path in above:
            return ""
        return path.removeprefix(prefix) if path.startswith(prefix) else path

    return name


def rename_modules(errors: list[TensorError], root: nn.Module) -> list[TensorError]:
    """`errors` with each row's module named by module_namer(root)."""
    name = module_namer(root)
    for e in errors:
        if e.module:
            e.module = name(e.module)
    return errors


def ranked(errors: list[TensorError]) -> list[TensorError]:
    """Worst local SQNR first; tensors without a signal last."""
    return sorted(errors, key=lambda e: (e.local_sqnr_db is None, e.local_sqnr_db or 0.0))


def markdown_table(errors: list[TensorError], top: int = TOP) -> list[str]:
    def db(v):
        return "" if v is None else f"{v:.1f}"

    lines = ["| rank | module | op | tensor | local SQNR dB | accumulated SQNR dB | scale |",
             "|---:|---|---|---|---:|---:|---:|"]
    for i, e in enumerate(ranked(errors)[:top], 1):
        lines.append(f"| {i} | `{e.module or '?'}` | {e.op} | `{e.tensor}` | {db(e.local_sqnr_db)} | "
                     f"{db(e.accumulated_sqnr_db)} | {e.scale:.4g} |")
    return lines


def as_numpy_images(images) -> np.ndarray:
    """Images as the runners take them (float32 numpy), from numpy or a torch tensor."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    return np.ascontiguousarray(images, dtype=np.float32)
