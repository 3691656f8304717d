"""A trained run as `pea-export` sees it: checkpoint -> recipe -> rebuilt net, and the alpha gate.

The gate is the product's one promise to the deployer: a network leaves training only when every
ensemble's alpha is exactly 1, because only then is the stripped ReLU network the same function
that was validated. There is deliberately no override.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, ConversionError
from ..pea import AlphaSchedule, require_alpha_one
from ..train.checkpoint import load_checkpoint, resolve_checkpoint
from ..train.build import build_model, model_source
from ..train.recipe import Recipe


@dataclass
class TrainedModel:
    model: nn.Module            # the training form (ensembles still in), eval mode, on CPU
    recipe: Recipe
    dataset: dict               # DatasetSplits.describe() of the training run (mean/std, shape)
    checkpoint: Path
    epoch: int
    global_step: int
    schedule: AlphaSchedule | None
    steps_per_epoch: int

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """NCHW shape of one deployed input (batch 1)."""
        h = int(self.dataset["image_size"])
        return (1, int(self.dataset["channels"]), h, int(self.dataset.get("image_width") or h))

    @property
    def task(self) -> str:
        return self.dataset.get("task", "classification")

    @property
    def num_classes(self) -> int:
        return int(self.dataset["num_classes"])


def load_trained(source: str | Path, which: str = "best", model_file: str | None = None) -> TrainedModel:
    """Rebuild the trained net from a checkpoint file or a run directory. A run on your own network
    rebuilds it from the file it recorded (`model_file`, PATH.py:FUNCTION, points elsewhere); a
    missing file or one whose sha256 changed since training is refused (ConfigError).

    For a run directory `which` picks checkpoints/best.pt (the best epoch that was already
    ReLU-only, the paper's selection) and falls back to last.pt when there is no best yet, so that
    an unfinished run is refused by the alpha gate with its schedule rather than "file not found".
    """
    path = Path(source)
    if path.is_dir() and which == "best" and not (path / "checkpoints" / "best.pt").exists():
        which = "last"
    path = resolve_checkpoint(path, which)
    state = load_checkpoint(path)
    try:
        recipe = Recipe.from_dict(state["recipe"])
    except ConfigError as e:
        raise CheckpointError(f"{path}: its recipe is not valid for this pea-deploy: {e}") from None
    dataset = state.get("dataset") or {}
    for key in ("num_classes", "channels", "image_size", "mean", "std"):
        if key not in dataset:
            raise CheckpointError(f"{path} lacks the dataset description ({key}) needed to export")
    own = model_source(recipe, state.get("model_source"), model_file)
    model = build_model(recipe, int(dataset["num_classes"]), int(dataset["channels"]),
                        dataset.get("task", "classification"), source=own)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path} does not match its recipe's model: {str(e).splitlines()[0]}") from None
    schedule = AlphaSchedule(**state["alpha_schedule"]) if state.get("alpha_schedule") else None
    return TrainedModel(model.eval().cpu(), recipe, dataset, path, int(state["epoch"]),
                        int(state["global_step"]), schedule, int(state.get("steps_per_epoch") or 0))


def schedule_context(trained: TrainedModel) -> str:
    """Where the checkpoint stands in its alpha schedule, in epochs, for the refusal message."""
    s, spe = trained.schedule, trained.steps_per_epoch
    if s is None or spe <= 0:
        return f"checkpoint is epoch {trained.epoch}"
    end = s.transition_end / spe
    end_text = f"{end:g}" if end != int(end) else str(int(end))
    return (f"the run's transition ends at epoch {end_text} (step {s.transition_end}), "
            f"checkpoint {trained.checkpoint.name} is epoch {trained.epoch} (step {trained.global_step}); "
            f"train on (pea-train --resume --epochs N) until alpha reaches 1")


def require_deployable(trained: TrainedModel) -> dict[str, float]:
    """The alpha gate: every ensemble at exactly 1, else AlphaNotOneError (exit 3) listing each
    module path with its alpha and the schedule. Returns {module path: alpha}."""
    if trained.recipe.pea.mode == "act":
        raise ConversionError(f"refusing to export {trained.checkpoint}: it is an upper-limit run "
                              f"({trained.recipe.pea.act} only, pea.mode = act) with no ReLU form; export "
                              f"a PEA run or the ReLU baseline")
    return require_alpha_one(trained.model, schedule_context(trained), f"refusing to export {trained.checkpoint}")


@torch.no_grad()
def strip_and_compare(trained_model: nn.Module, inputs: torch.Tensor, batch_size: int = 256
                      ) -> tuple[nn.Module, float]:
    """Strip a copy of the net to plain ReLU/ReLU6 and return it with max |stripped - trained| over
    `inputs` (normalised NCHW). At alpha = 1 the ensembles compute exactly T(x), so 0.0 is expected."""
    import copy

    from ..pea import strip

    from torch.utils._pytree import tree_flatten

    trained_model = trained_model.eval()
    stripped = strip(copy.deepcopy(trained_model)).eval()
    worst = 0.0
    for i in range(0, len(inputs), batch_size):
        x = inputs[i:i + batch_size]
        for a, b in zip(tree_flatten(stripped(x))[0], tree_flatten(trained_model(x))[0]):
            worst = max(worst, (a - b).abs().max().item() if a.numel() else 0.0)
    return stripped, worst
