"""Checkpoints: one dict of plain data and tensors, written atomically, read with weights_only=True."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..atomic import atomic_path
from ..errors import CheckpointError

FORMAT = "pea-deploy/checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("recipe", "model", "epoch", "global_step")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` (plus format tags) to `path` via a temporary file and rename."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "pea_deploy_version": __version__,
               **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def resolve_checkpoint(path: str | Path, which: str = "last") -> Path:
    """A checkpoint file, or the `which` checkpoint (last/best) of a run directory."""
    p = Path(path)
    if p.is_dir():
        p = p / "checkpoints" / f"{which}.pt"
        if not p.exists():
            raise CheckpointError(f"{path} is not a run directory: no checkpoints/{which}.pt")
    elif not p.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return p


def holds_pickled_objects(e: BaseException) -> bool:
    """torch.load(weights_only=True) refused a class or function it would have to unpickle."""
    return "allowed global" in str(e) or "Unsupported global" in str(e)


def load_checkpoint(path: str | Path, which: str = "last", map_location="cpu") -> dict[str, Any]:
    """Load and check a checkpoint; CheckpointError for a corrupt, foreign or newer-format file."""
    p = resolve_checkpoint(path, which)
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
            AttributeError, KeyError, OSError) as e:
        text = str(e)
        if holds_pickled_objects(e):  # torch's advice to unpickle is not ours to give
            raise CheckpointError(f"{p} is not a pea-deploy checkpoint: it holds pickled Python objects, "
                                  f"which were not unpickled (loading them could run code)") from None
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        if "WeightsUnpickler error:" in text:  # the reason, without torch's multi-sentence advice
            lines = lines[next(i for i, ln in enumerate(lines) if "WeightsUnpickler error:" in ln) + 1:] or lines
        first = lines[0] if lines else type(e).__name__
        raise CheckpointError(f"{p} is not a readable checkpoint (corrupt or not a torch file): {first}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a pea-deploy checkpoint (foreign file)")
    version = state.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{p} has checkpoint format {version}; this pea-deploy ({__version__}) "
                              f"reads format {FORMAT_VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{p} lacks {', '.join(missing)}")
    return state
