"""Training recipes: a typed, self-validating description of one training run.

A recipe is a TOML file with the sections below (every key optional; see models/*.toml). The same
dataclasses give `pea-train` its flags, so every flag is a recipe field and nothing else.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .. import registry as reg
from ..errors import ConfigError, unknown_name
from ..package_data import packaged_files


_OPTIONAL_KINDS = {"int | None": int, "float | None": float, "str | None": str}


def field_kind(f) -> type | None:
    """The value type of a recipe field: its default's type, or for an optional field (default None)
    the type its annotation names."""
    default = f.default if f.default is not MISSING else f.default_factory()
    return type(default) if default is not None else _OPTIONAL_KINDS.get(str(f.type))


@dataclass(frozen=True)
class Range:
    """The values a numeric field takes: lo/hi bounds (None: unbounded), each closed or open."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, v) -> bool:
        if v != v or v in (math.inf, -math.inf):  # NaN and infinities are never a setting
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def __str__(self) -> str:
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        return f"{'(' if self.lo_open or self.lo is None else '['}{lo}, {hi}{')' if self.hi_open or self.hi is None else ']'}"


# BatchNorm re-estimation batches when a run starts from trained weights and the recipe sets none:
# about 30 batches recover most of a swap's loss (measured: benchmarks/relu_from_smooth.py).
DEFAULT_BN_BATCHES = 30

POSITIVE = Range(0, None, lo_open=True)
NON_NEGATIVE = Range(0, None)
AT_LEAST_ONE = Range(1, None)
FRACTION = Range(0, 1, hi_open=True)         # [0, 1)


def _f(default, help: str, flag: str | None = None, choices: reg.Registry | None = None,
       range: Range | None = None):
    """A recipe field with the metadata the CLI turns into a flag. `choices` is the registry its
    value (or, for a list field, each entry) must be registered in; `range` bounds a number."""
    meta = {"help": help, "flag": flag, "choices": choices, "range": range}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    name: str = _f("resnet18", "architecture, or your own network as package.module:FUNCTION", "model", reg.NETS)
    file: str | None = _f(None, "your own network: PATH.py:FUNCTION, called as FUNCTION(num_classes=, "
                          "in_channels=, **args) (replaces name)", "model-file")
    args: dict = _f({}, "keyword arguments for your network's FUNCTION (a JSON object on the command line)",
                    "model-args")
    width: float = _f(1.0, "channel width multiplier (MobileNet: 0.25 .. 1.0)", range=Range(0, 8, lo_open=True))
    stem: str = _f("imagenet", "input stem: imagenet (7x7/2 + pool) or small (3x3/1)", None, reg.STEMS)
    dropout: float | None = _f(None, "dropout before the classifier (default: the net's own)", range=FRACTION)
    relu6: bool = _f(False, "MobileNet: ReLU6 instead of ReLU")
    norm: str = _f("batch", "ResNet normalisation: batch (deploys: folds into conv) or group (batch-size "
                   "independent: a distributed CPU run equals a single-process one)", None, reg.NORMS)


@dataclass
class DataConfig:
    name: str = _f("digits", "dataset", "dataset", reg.DATASETS)
    dir: str | None = _f(None, "data directory (image-folder, seg-folder, cifar*, cityscapes, or a Fashion-MNIST "
                         "copy; det-folder: a YOLO folder or an Ultralytics data.yaml)", "data-dir")
    image_size: int = _f(32, "image-folder, seg-folder, cityscapes, shapes: resize images to this height "
                         "(and width, unless image_width)", range=Range(8, 4096))
    image_width: int | None = _f(None, "segmentation sets: image width (default: image_size; cityscapes: 2x)",
                                 range=Range(8, 8192))
    channels: int = _f(3, "image-folder: 1 (grey) or 3 (RGB)", range=Range(1, 3))
    val_fraction: float = _f(0.2, "share held out for validation when the data has no split",
                             range=Range(0, 1, lo_open=True, hi_open=True))
    split_seed: int = _f(0, "seed of that split (fixed, so every run sees the same val set)", range=NON_NEGATIVE)
    normalize: str = _f("dataset", "input standardisation: dataset (mean/std of a seeded sample of the training "
                        "set) or imagenet (ImageNet's published RGB mean/std)", None, reg.NORMALIZATIONS)
    augment: list = _f(["crop"], "training augmentations, comma-separated", None, reg.AUGMENTATIONS)
    crop_padding: int | None = _f(None, "zero padding before the random crop (default: size / 8)",
                                  range=NON_NEGATIVE)
    train_subset: int | None = _f(None, "train on a seeded subset of this many training images (quick studies)",
                                  range=AT_LEAST_ONE)
    batch_size: int = _f(64, "training batch size", range=AT_LEAST_ONE)
    workers: int = _f(0, "loader processes for file-backed datasets", range=Range(0, 64))


@dataclass
class PEAConfig:
    mode: str = _f("pea", "pea (ensembles), relu (baseline, --no-pea) or act (upper limit)", None, reg.MODES)
    act: str = _f("gelu", "smooth activation in the ensemble", None, reg.ACTIVATIONS)
    variant: str = _f("weighted", "ensemble variant", None, reg.VARIANTS)
    target: str = _f("relu", "deploy activation", None, reg.TARGETS)
    granularity: str = _f("element", "stochastic: one draw per element, channel or tensor", None,
                          reg.GRANULARITIES)
    swish_beta: float = _f(1.0, "beta of swish (1 = SiLU)", range=POSITIVE)
    initial_epochs: float = _f(5.0, "epochs with alpha = 0 (the transition starts after them)", range=NON_NEGATIVE)
    transition_end: float = _f(90.0, "epoch at which alpha reaches 1 (final phase from here)", range=NON_NEGATIVE)
    ramp: str = _f("linear", "transition shape: linear (Eq. 2) or cosine", None, reg.RAMPS)
    bn_recalibration: int | None = _f(None, "batches of training images to re-estimate BatchNorm statistics on, "
                                      "after a hard swap and when alpha reaches 1 (0: off; default: 30 when "
                                      "starting from trained weights, where it measured better, else off)",
                                      range=Range(0, 10000))


@dataclass
class OptimConfig:
    optimizer: str = _f("sgd", "optimizer", None, reg.OPTIMIZERS)
    # (0, 100]: LARS-style large-batch runs reach lr ~30; beyond 100 no recipe trains, it only diverges
    lr: float = _f(0.1, "peak learning rate", range=Range(0, 100, lo_open=True))
    momentum: float = _f(0.9, "SGD momentum", range=FRACTION)
    nesterov: bool = _f(False, "SGD Nesterov momentum")
    weight_decay: float = _f(1e-4, "weight decay", range=FRACTION)
    no_decay: list = _f([], "exempt from weight decay, comma-separated", None, reg.NO_DECAY)
    label_smoothing: float = _f(0.0, "label smoothing", range=FRACTION)
    lr_schedule: str = _f("step", "step (piecewise, x lr_gamma at lr_steps), cosine or constant", None,
                          reg.LR_SCHEDULES)
    warmup_epochs: float = _f(0.0, "linear warm-up epochs", range=NON_NEGATIVE)
    lr_steps: list = _f([], "epochs at which a step schedule multiplies lr by lr_gamma")
    lr_gamma: float = _f(0.1, "step schedule factor", range=Range(0, 1, lo_open=True))
    min_lr: float = _f(0.0, "cosine schedule floor", range=NON_NEGATIVE)


@dataclass
class TrainConfig:
    epochs: int = _f(120, "total epochs", range=AT_LEAST_ONE)
    seed: int = _f(0, "seed of init, data order, augmentation and stochastic masks", range=NON_NEGATIVE)
    device: str = _f("auto", "cpu, cuda, cuda:N or auto")
    out: str | None = _f(None, "run directory (default: runs/RECIPE_NAME)")
    eval_batch_size: int = _f(256, "batch size for validation", range=AT_LEAST_ONE)
    amp: str = _f("off", "mixed precision: off, bf16 (CUDA or CPU) or fp16 (CUDA, with a grad scaler)", None,
                  reg.AMP)
    channels_last: bool = _f(False, "NHWC memory format for the net and its inputs (faster convs on GPUs)")
    compile: bool = _f(False, "torch.compile the training step's model (one graph for the whole alpha "
                       "schedule; checkpoints and resume unchanged)")
    init_from: str | None = _f(None, "start from trained weights: a run directory, a pea-deploy checkpoint or a "
                               "state_dict .pt of the unconverted network (read with weights_only)", "init-from")


@dataclass
class DistillConfig:
    enabled: bool = _f(False, "fine-tune against a frozen copy of the original (unconverted) network started "
                       "from --init-from: KL at a temperature plus the label loss", "distill")
    temperature: float = _f(4.0, "distillation temperature", "distill-temperature", range=Range(0, 100, lo_open=True))
    weight: float = _f(0.5, "share of the distillation term in the loss (the label loss has the rest)",
                       "distill-weight", range=Range(0, 1))


SECTIONS = {"model": ModelConfig, "data": DataConfig, "pea": PEAConfig, "optim": OptimConfig,
            "train": TrainConfig, "distill": DistillConfig}


@dataclass
class Recipe:
    name: str = "custom"
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    pea: PEAConfig = field(default_factory=PEAConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def __post_init__(self):
        for section, cls in SECTIONS.items():
            cfg = getattr(self, section)
            for f in fields(cls):
                _check_value(f"{section}.{f.name}", getattr(cfg, f.name), f)
        p, t, o = self.pea, self.train, self.optim
        if p.mode == "pea" and not 0 <= p.initial_epochs <= p.transition_end <= t.epochs:
            raise ConfigError(
                f"PEA phases need 0 <= initial_epochs <= transition_end <= epochs, got "
                f"{p.initial_epochs}, {p.transition_end}, {t.epochs}: the final phase must exist "
                f"so the trained net is ReLU-only")
        for s in o.lr_steps:
            if not isinstance(s, (int, float)) or not 0 < s < t.epochs:
                raise ConfigError(f"optim.lr_steps must be epochs in (0, {t.epochs}), got {o.lr_steps}")
        if self.model.args and not self.model.file and not reg.is_reference(self.model.name):
            raise ConfigError("model.args are for your own network (model.file or model.name = "
                              "package.module:FUNCTION); a built-in net takes width, stem, dropout, ...")
        if not all(isinstance(k, str) for k in self.model.args):
            raise ConfigError("model.args must be a table of keyword arguments")
        if self.distill.enabled and not self.train.init_from:
            raise ConfigError("distill needs the original network's trained weights: give train.init_from "
                              "(--init-from RUN_DIR | CHECKPOINT | STATE_DICT.pt)")
        if o.min_lr > o.lr:
            raise ConfigError(f"optim.min_lr ({o.min_lr:g}) must not exceed optim.lr ({o.lr:g})")
        if o.warmup_epochs > t.epochs:
            raise ConfigError(f"optim.warmup_epochs ({o.warmup_epochs:g}) must not exceed train.epochs ({t.epochs})")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict, source: str = "recipe") -> "Recipe":
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: a recipe must be a table of sections")
        top = {"name", "description", *SECTIONS}
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in top:
                raise ConfigError(f"{source}: unknown key {key!r}{_did_you_mean(key, top)}")
            if key in SECTIONS:
                kwargs[key] = _section(SECTIONS[key], value, f"{source}: [{key}]")
            else:
                kwargs[key] = value
        return cls(**kwargs)

    def with_overrides(self, overrides: dict[str, Any]) -> "Recipe":
        """A copy with `{"section.key": value}` fields replaced (None values are ignored)."""
        changes: dict[str, dict] = {}
        for dotted, value in overrides.items():
            if value is None:
                continue
            section, key = dotted.split(".", 1)
            changes.setdefault(section, {})[key] = value
        sections = {s: replace(getattr(self, s), **kv) for s, kv in changes.items()}
        return Recipe(self.name, self.description, **{**{s: getattr(self, s) for s in SECTIONS}, **sections})


def _did_you_mean(key: str, valid) -> str:
    close = difflib.get_close_matches(key, sorted(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f"; valid: {', '.join(sorted(valid))}"


def _section(cls: type, raw: Any, where: str):
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    names = {f.name for f in fields(cls)}
    for key in raw:
        if key not in names:
            raise ConfigError(f"{where} unknown key {key!r}{_did_you_mean(key, names)}")
    return cls(**raw)


def _check_value(where: str, value: Any, f) -> None:
    default = f.default if f.default is not MISSING else f.default_factory()
    choices = f.metadata.get("choices")
    if value is None:
        if default is None:
            return
        raise ConfigError(f"{where} must not be empty")
    expected = field_kind(f)
    int_as_float = expected is float and isinstance(value, int) and not isinstance(value, bool)  # TOML's 1 for 1.0
    if not int_as_float and (expected is not None and not isinstance(value, expected)
                             or (expected is int and isinstance(value, bool))):
        raise ConfigError(f"{where} must be {expected.__name__}, got {value!r}")
    if choices is not None:
        for item in (value if isinstance(value, list) else [value]):
            choices.check(item, f"{where} entry" if isinstance(value, list) else where)
    bounds = f.metadata.get("range")
    if bounds is not None and value not in bounds:
        raise ConfigError(f"{where} must be in {bounds}, got {value!r}")


def builtin_recipes() -> dict[str, Path]:
    """Recipes shipped in the package (the repository's models/ folder), by name."""
    # installed: models/ ships as pea_deploy.models (a namespace package); uninstalled checkout: models/
    return packaged_files("pea_deploy.models", ".toml", Path(__file__).resolve().parents[2] / "models")


DEFAULT_RECIPE = "digits-resnet18-pea-gelu"


def load_recipe(path_or_name: str | Path | None = None) -> Recipe:
    """Load a recipe file, or a built-in recipe by name (default: the embedded default)."""
    ref = str(path_or_name or DEFAULT_RECIPE)
    path = Path(ref)
    if not path.exists():
        builtins = builtin_recipes()
        if ref in builtins:
            path = builtins[ref]
        elif ref.endswith(".toml") or "/" in ref:
            raise ConfigError(f"recipe file {ref} does not exist")
        else:
            raise unknown_name("recipe", ref, builtins)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read recipe {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"recipe {path} is not valid TOML: {e}") from None
    raw.setdefault("name", path.stem)
    try:
        return Recipe.from_dict(raw, source=str(path))
    except TypeError as e:
        raise ConfigError(f"recipe {path}: {e}") from None
