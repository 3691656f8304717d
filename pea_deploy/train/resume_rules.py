"""What a resumed run must match: its recipe (up to fields that do not change the result) and its
process count (every rank's random stream is restored, so the run draws what it would have)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ConfigError
from .recipe import Recipe

# Fields that may differ between a run and its resumption: they do not change the result (the
# loader's workers neither: every random choice is drawn in the main process, data.loader).
RESUMABLE_CHANGES = {"train.device", "train.out", "data.workers"}


def _normalized(recipe: dict) -> dict:
    try:
        return Recipe.from_dict(recipe).to_dict()
    except ConfigError:
        return recipe


def _diff_recipes(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += _diff_recipes(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.append(f"{prefix}{k}")
    return keys


def check_resumable(run_recipe: dict, recipe: Recipe, root: Path) -> None:
    """ConfigError naming the fields in which `recipe` differs from the run's own."""
    # Through Recipe first: fields added by a newer pea-deploy take their defaults, not "changed".
    changed = [k for k in _diff_recipes(_normalized(run_recipe), recipe.to_dict()) if k not in RESUMABLE_CHANGES]
    if changed:
        raise ConfigError(f"cannot resume {root}: recipe differs from the run's in {', '.join(changed)}")


def restore_rng(rng: dict, dist, root: Path) -> None:
    """Set this process's random state from a checkpoint (its own rank's, when distributed)."""
    per_rank = rng.get("torch_per_rank")
    if dist.enabled or per_rank:
        if not per_rank or len(per_rank) != dist.world_size:
            raise ConfigError(f"cannot resume {root}: it was trained by {len(per_rank) if per_rank else 1} "
                              f"process(es), this run has {dist.world_size}; resume with the same number")
        torch.set_rng_state(per_rank[dist.rank].cpu())
    else:
        torch.set_rng_state(rng["torch"].cpu())
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
