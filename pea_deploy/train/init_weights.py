"""--init-from: the trained weights a run starts from (before convert), read with weights_only.

Accepted: a pea-deploy run directory or checkpoint (an upper-limit or baseline run; a finished PEA
run, whose ensembles are at alpha 1, gives its weights without them), or a plain state_dict .pt
(optionally under "state_dict" or "model"). A PEA checkpoint with an ensemble below alpha 1 is
refused: its network is still a mixture, no single network's weights.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from .checkpoint import FORMAT, holds_pickled_objects, load_checkpoint


def _plain_state(state: dict, where: str) -> dict:
    """A PEA net's state without its ensembles: `x.alpha` dropped, `x.own.w` (a kept activation's
    parameter) back to `x.w`. Refuses ensembles below alpha 1."""
    below = [k[: -len(".alpha")] for k, v in state.items()
             if k.endswith(".alpha") and v.numel() == 1 and float(v) != 1.0]
    if below:
        raise CheckpointError(f"{where} holds {len(below)} PEA ensemble(s) at alpha < 1 (e.g. {below[0]}): it "
                              f"is no single network's weights; start from an upper-limit or baseline run, "
                              f"or from the finished run")
    plain = {}
    for k, v in state.items():
        if k.endswith(".alpha") and v.numel() == 1:
            continue
        plain[k.replace(".own.", ".")] = v
    return plain


def read_init_weights(source: str | Path, flag: str = "--init-from") -> tuple[dict, dict]:
    """(state_dict, {"path", "kind", "sha256"}) of `source` without PEA ensembles (their alpha
    buffers dropped, a kept activation's parameters back in place); CheckpointError for anything
    else, its message led by `flag` (the option that named the file)."""
    state, info = read_state_dict(source, flag)
    return _plain_state(state, info["path"]), info


def read_state_dict(source: str | Path, flag: str = "--weights") -> tuple[dict, dict]:
    """(state_dict as saved, {"path", "kind", "sha256"}) of a run directory, a pea-deploy checkpoint
    or a plain state_dict file (optionally under "state_dict" or "model"), read with weights_only;
    one CheckpointError line, led by `flag`, for anything else."""
    path = Path(source)
    if path.is_dir():
        which = "best" if (path / "checkpoints" / "best.pt").exists() else "last"
        state = load_checkpoint(path, which)
        file = path / "checkpoints" / f"{which}.pt"
        return state["model"], _info(file, f"pea-deploy run ({which}.pt)")
    if not path.is_file():
        raise CheckpointError(f"{flag} {source} does not exist")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, AttributeError,
            KeyError, OSError) as e:
        if holds_pickled_objects(e):
            raise CheckpointError(f"{flag} {path} holds pickled Python objects (a whole pickled model?), "
                                  f"which were not unpickled for safety; save model.state_dict() instead") from None
        raise CheckpointError(f"{flag} {path} is not a readable torch file (corrupt?)") from None
    if isinstance(raw, dict) and raw.get("format") == FORMAT:
        return load_checkpoint(path)["model"], _info(path, "pea-deploy checkpoint")
    if isinstance(raw, dict):
        for key in ("state_dict", "model"):
            if isinstance(raw.get(key), dict):
                raw = raw[key]
                break
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise CheckpointError(f"{flag} {path} is not a state_dict (a table of tensors)")
    return raw, _info(path, "state_dict")


def _info(path: Path, kind: str) -> dict:
    return {"path": str(path.resolve()), "kind": kind, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def load_init_weights(net: nn.Module, state: dict, where: str, flag: str = "--init-from") -> None:
    """Load `state` into `net`, every key matched; one line with counts and the first keys otherwise."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        raise CheckpointError(f"{flag} {where} does not fit the network: {len(own)} keys expected, "
                              f"{'; '.join(parts)}")
    shapes = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if shapes:
        k = shapes[0]
        raise CheckpointError(f"{flag} {where} does not fit the network: {len(shapes)} tensor(s) of another "
                              f"shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
    net.load_state_dict(state)
