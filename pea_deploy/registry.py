"""One home for every name: nets, datasets, smooth activations, ensemble variants, deploy targets,
ramps, augmentations and the recipe's other choices.

Recipe validation, the CLI's help, pea-compare's plan, the ensembles and the op checker's hints all
ask this module; none keeps its own list. It imports no torch: a builder is a "module:attribute"
string loaded on first use, so `--help` and recipe checks stay instant.

Adding a smooth activation is one `register_activation(...)` call (or one entry point in the group
`pea_deploy.plugins`, a function that makes such calls): it then trains, exports and is named by the
checker without an edit of pea_deploy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, unknown_name

PLUGIN_GROUP = "pea_deploy.plugins"


@dataclass(frozen=True)
class Entry:
    """One registered name: what builds it (lazily) and the options that builder accepts."""

    name: str
    builder: str | Callable | None = None   # "package.module:attr", a callable, or None (a plain choice)
    options: tuple[str, ...] = ()           # keyword options the builder takes beyond its fixed arguments
    help: str = ""
    info: dict = field(default_factory=dict)  # what a kind needs besides: task, spellings, labels ...

    def load(self) -> Any:
        """The builder itself (imported on first use)."""
        return resolve(self.builder)


def is_reference(name) -> bool:
    """"package.module:attr" (dotted module, one colon, an identifier after it)."""
    if not isinstance(name, str) or name.count(":") != 1:
        return False
    module, attr = name.split(":")
    return bool(module) and all(p.isidentifier() for p in module.split(".") + attr.split("."))


def resolve(ref: str | Callable | None) -> Any:
    """A "package.module:attr" reference imported, or a callable (or None) as it is."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot load {ref!r}: {e}") from None
    return obj


class Registry:
    """Names of one kind; lookups of an unknown name raise a ConfigError listing the valid ones."""

    def __init__(self, kind: str, references: bool = False):
        self.kind = kind
        self.references = references  # also accept "package.module:attr", loaded as it is
        self._entries: dict[str, Entry] = {}
        self.version = 0  # bumped on every change, so derived tables know when to rebuild

    def register(self, name: str, builder: str | Callable | None = None, *, options=(), help: str = "",
                 replace: bool = False, **info) -> Entry:
        if not isinstance(name, str) or not name or name != name.strip():
            raise ConfigError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and not replace:
            raise ConfigError(f"{self.kind} {name!r} is already registered (pass replace=True to override)")
        entry = Entry(name, builder, tuple(options), help, dict(info))
        self._entries[name] = entry
        self.version += 1
        return entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)
        self.version += 1

    def get(self, name: str, where: str | None = None) -> Entry:
        _load_plugins()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            if self.references and is_reference(name):
                return Entry(name, name, info={"reference": True})
            raise unknown_name(where or self.kind, name, self._entries) from None

    def check(self, name: str, where: str | None = None) -> str:
        """`name` if registered, else the ConfigError (with "did you mean")."""
        self.get(name, where)
        return name

    def names(self) -> tuple[str, ...]:
        _load_plugins()
        return tuple(self._entries)

    def entries(self) -> Iterator[Entry]:
        _load_plugins()
        return iter(list(self._entries.values()))

    def __contains__(self, name) -> bool:
        _load_plugins()
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


# -- the registries --------------------------------------------------------------------------------

NETS = Registry("model", references=True)   # or "package.module:FUNCTION": your own network
DATASETS = Registry("dataset")
ACTIVATIONS = Registry("activation")        # the smooth activation (Act) of an ensemble
TARGETS = Registry("target")                # the deploy activation (T): relu, relu6
VARIANTS = Registry("variant")
GRANULARITIES = Registry("granularity")
RAMPS = Registry("ramp")
AUGMENTATIONS = Registry("augmentation")
MODES = Registry("mode")
STEMS = Registry("stem")
NORMS = Registry("norm")
OPTIMIZERS = Registry("optimizer")
LR_SCHEDULES = Registry("lr schedule")
NO_DECAY = Registry("no_decay entry")
AMP = Registry("amp")
NORMALIZATIONS = Registry("normalization")
OWN_ACTIVATIONS = Registry("activation module")  # what convert(act="keep") wraps, by class
GATES = Registry("gate module")                  # left in place: they multiply a tensor
KEEP = "keep"                                    # pea.act: each model's own activation is the Act



TASKS = ("classification", "segmentation", "detection")


def register_net(name: str, builder: str | Callable, *, options=(), task: str = "classification",
                 help: str = "", replace: bool = False) -> Entry:
    """A network: `builder(num_classes, in_channels, **options)` returns an nn.Module with nn.ReLU
    modules. task: classification (logits N x C), segmentation (N x C x H x W) or detection (a tuple
    of per-level maps N x (4 + C) x h x w, pea_deploy.detection)."""
    if task not in TASKS:
        raise unknown_name("task", task, TASKS)
    return NETS.register(name, builder, options=options, help=help, replace=replace, task=task)


def register_dataset(name: str, builder: str | Callable, *, task: str = "classification",
                     help: str = "", replace: bool = False) -> Entry:
    """A dataset: `builder(data_dir=, val_fraction=, split_seed=, image_size=, image_width=,
    channels=)` returns DatasetSplits (it may ignore options it has no use for). task: one of TASKS
    (detection sets carry packed targets, pea_deploy.detection.targets)."""
    if task not in TASKS:
        raise unknown_name("task", task, TASKS)
    return DATASETS.register(name, builder, help=help, replace=replace, task=task)


def register_activation(name: str, fn: str | Callable, grad: str | Callable | None = None, *,
                        module: str | Callable | None = None, onnx_ops=(), tflite_ops=(), modules=(),
                        label: str | None = None, help: str = "", replace: bool = False) -> Entry:
    """A smooth activation for the ensembles (each argument a callable or a "module:attr" string).

    fn(x) -> Tensor is the activation; grad(x) its derivative (default: autograd through fn);
    module() the plain nn.Module of an Act-only (upper-limit) net (default: a wrapper of fn).
    onnx_ops / tflite_ops: the op spellings exporters produce for it, so the op checker names them;
    modules: torch class names of it, so convert's hints recognise it in a user's model.
    """
    return _activation(name, None, fn=fn, grad=grad, module=module, onnx_ops=onnx_ops, tflite_ops=tflite_ops,
                       modules=modules, label=label, help=help, replace=replace)


def _activation(name, factory, *, fn=None, grad=None, module=None, onnx_ops=(), tflite_ops=(), modules=(),
                label=None, options=(), help="", replace=False) -> Entry:
    return ACTIVATIONS.register(
        name, factory, options=options, help=help, replace=replace, fn=fn, grad=grad, module=module,
        onnx_ops=tuple(onnx_ops), tflite_ops=tuple(tflite_ops), modules=tuple(modules), label=label or name)


def _choices(registry: Registry, items: dict[str, str]) -> None:
    for name, help_ in items.items():
        registry.register(name, help=help_)


_ACT = "pea_deploy.pea.activations"
_NET = "pea_deploy.nets"
_DATA = "pea_deploy.data"

for _name, _builder, _opts in (("resnet18", f"{_NET}.resnet:resnet18", ("width", "stem", "dropout", "norm")),
                               ("resnet50", f"{_NET}.resnet:resnet50", ("width", "stem", "dropout", "norm")),
                               ("mobilenet-v1", f"{_NET}.mobilenet:MobileNetV1", ("width", "stem", "dropout", "relu6")),
                               ("alexnet-bn", f"{_NET}.alexnet:AlexNetBN", ("width", "stem", "dropout")),
                               ("erfnet", f"{_NET}.erfnet:ERFNetClassifier", ("width", "stem", "dropout"))):
    register_net(_name, _builder, options=_opts)
register_net("erfnet-seg", f"{_NET}.erfnet:ERFNetSegmentation", options=("width", "stem", "dropout"),
             task="segmentation")
register_net("yolo-det", f"{_NET}.yolo:yolo_detector", options=("width",), task="detection",
             help="YOLOv8-style detector: C2f, SPPF, PAN neck, anchor-free head at strides 8/16/32")

for _name, _builder, _task in (("digits", f"{_DATA}.builtin:load_digits", "classification"),
                               ("fashion-mnist", f"{_DATA}.builtin:load_fashion_mnist", "classification"),
                               ("image-folder", f"{_DATA}.folders:load_image_folder", "classification"),
                               ("cifar10", f"{_DATA}.folders:load_cifar10", "classification"),
                               ("cifar100", f"{_DATA}.folders:load_cifar100", "classification"),
                               ("shapes", f"{_DATA}.segmentation:load_shapes", "segmentation"),
                               ("seg-folder", f"{_DATA}.seg_folders:load_segmentation_folder", "segmentation"),
                               ("cityscapes", f"{_DATA}.seg_folders:load_cityscapes", "segmentation"),
                               ("shapes-det", "pea_deploy.detection.shapes_det:load_shapes_det", "detection"),
                               ("det-folder", "pea_deploy.detection.folder:load_detection_folder", "detection")):
    register_dataset(_name, _builder, task=_task)

# Built-ins: a factory `(**options) -> Activation` with the fused ATen backward kernels.
_activation("gelu", f"{_ACT}:gelu", onnx_ops=("Gelu", "Erf"), tflite_ops=("GELU",), modules=("GELU",), label="GELU")
_activation("swish", f"{_ACT}:swish", onnx_ops=("Sigmoid", "Swish"), tflite_ops=("LOGISTIC",),
            modules=("SiLU", "Swish"), label="Swish", options=("swish_beta",))
_activation("silu", f"{_ACT}:silu", onnx_ops=("Sigmoid", "Swish"), tflite_ops=("LOGISTIC",), modules=("SiLU",),
            label="SiLU", options=("swish_beta",))
_activation("mish", f"{_ACT}:mish", onnx_ops=("Mish", "Softplus", "Tanh"), tflite_ops=("TANH",), modules=("Mish",),
            label="Mish")
_activation("elu", f"{_ACT}:elu", onnx_ops=("Elu",), tflite_ops=("ELU",), modules=("ELU",), label="ELU")
ACTIVATIONS.register(KEEP, keep=True, onnx_ops=(), tflite_ops=(), modules=(), label="the model's own",
                     help="each smooth activation module of the model is its own ensemble's Act")


def register_own_activation(cls: str | Callable, *, replace: bool = False) -> Entry:
    """An activation module class (an nn.Module subclass, or "module:Class") that convert(act="keep")
    wraps into an ensemble, the instance itself as the smooth branch."""
    name = cls if isinstance(cls, str) else f"{cls.__module__}:{cls.__qualname__}"
    return OWN_ACTIVATIONS.register(name.rpartition(":")[2], cls, replace=replace)


# torch's activation modules that have a ReLU/ReLU6 to walk to (ReLU6 <-> ReLU when the target differs).
for _cls in ("SiLU", "GELU", "Mish", "Hardswish", "ELU", "CELU", "SELU", "Softplus", "LeakyReLU", "PReLU",
             "ReLU6", "ReLU"):
    OWN_ACTIVATIONS.register(_cls, f"torch.nn:{_cls}")
OWN_ACTIVATIONS.register("SiLUAsWritten", "pea_deploy.pea.functional:SiLUAsWritten")  # x * sigmoid(x) in forward()
GATES.register("Sigmoid", "torch.nn:Sigmoid", exports_as="Sigmoid (ONNX) / LOGISTIC (TFLite)", relu6_form=None)
GATES.register("Hardsigmoid", "torch.nn:Hardsigmoid", exports_as="HardSigmoid (ONNX)",
               relu6_form="pea_deploy.pea.own:HardsigmoidAsReLU6")

TARGETS.register("relu", f"{_ACT}:relu", onnx_ops=("Relu",), tflite_ops=("RELU",), help="max(x, 0)")
TARGETS.register("relu6", f"{_ACT}:relu6", onnx_ops=("Clip",), tflite_ops=("RELU6",), help="min(max(x, 0), 6)")

VARIANTS.register("weighted", "pea_deploy.pea.ensemble:WeightedEnsemble",
                  help="alpha * T(x) + (1 - alpha) * Act(x) (Eq. 1)")
VARIANTS.register("stochastic", "pea_deploy.pea.ensemble:StochasticEnsemble", options=("granularity",),
                  help="T(x) where r ~ Bernoulli(alpha) is 1, else Act(x) (Eq. 3)")
_choices(GRANULARITIES, {"element": "one draw per element (the paper)", "channel": "one draw per channel and sample",
                         "tensor": "one draw per tensor"})
RAMPS.register("linear", "pea_deploy.pea.schedule:linear_ramp", help="t / T_trans (Eq. 2)")
RAMPS.register("cosine", "pea_deploy.pea.schedule:cosine_ramp", help="(1 - cos(pi t / T_trans)) / 2")
_choices(AUGMENTATIONS, {"crop": "random crop after zero padding (a translation)", "flip": "random horizontal flip"})
_choices(MODES, {"pea": "PEA ensembles", "relu": "ReLU baseline", "act": "Act only (the upper limit)"})
_choices(STEMS, {"imagenet": "7x7/2 conv + pool", "small": "3x3/1 conv, for 8-64 px images"})
_choices(NORMS, {"batch": "BatchNorm (folds into conv for deployment)", "group": "GroupNorm (batch-independent)"})
_choices(OPTIMIZERS, {"sgd": "SGD with momentum", "adamw": "AdamW", "radam": "RAdam"})
_choices(LR_SCHEDULES, {"step": "x lr_gamma at lr_steps", "cosine": "cosine to min_lr", "constant": "constant"})
_choices(NO_DECAY, {"bn": "norm weights and biases", "bias": "every bias", "depthwise": "depthwise conv weights"})
NORMALIZATIONS.register("dataset", help="per-channel mean/std of a seeded sample of the training set")
NORMALIZATIONS.register("imagenet", help="ImageNet's published RGB mean/std (the paper's standardized input)",
                        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
_choices(AMP, {"off": "float32", "bf16": "bfloat16 autocast", "fp16": "float16 autocast + grad scaler (CUDA)"})


# -- plug-ins --------------------------------------------------------------------------------------

_plugins_loaded = False


def _load_plugins() -> None:
    """Call every `pea_deploy.plugins` entry point once (each registers its names)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            ep.load()()
        except Exception as e:  # a broken plug-in is the user's bad input, not our traceback
            raise ConfigError(f"plug-in {ep.name} ({ep.value}) failed to register: "
                              f"{type(e).__name__}: {e}") from None


def smooth_activation_labels() -> dict[str, str]:
    """Every op spelling (ONNX and TFLite) and torch class name of a registered smooth activation ->
    that activation's label, for the checker's and convert's hints."""
    labels: dict[str, str] = {}
    for e in ACTIVATIONS.entries():
        for spelling in (*e.info["onnx_ops"], *e.info["tflite_ops"], *e.info["modules"]):
            labels.setdefault(spelling, e.info["label"])
    return labels
