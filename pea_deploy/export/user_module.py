"""What `pea-export --model-file F.py:FUNC --weights W.pt --input-shape ... --calib-data DIR` needs
beyond export_model: your network rebuilt from its builder and a plain state_dict, and inputs read
from image folders.

The builder is called as FUNC(**--model-args) and must return the network in the form it was
trained: plain ReLU/ReLU6, or with the PEA ensembles your loop trained (their alpha buffers are in
the state_dict, and the alpha gate reads them). Images are read as the model's channels, resized to
--input-shape's H x W, scaled to [0, 1] and normalised with --mean/--std (default: none).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from ..data.folders import IMAGE_SUFFIXES
from ..data.images import load_image
from ..detection.yolo_layout import YAML_SUFFIXES
from ..errors import ConfigError, DataError
from ..nets.user import build_module, resolve_source
from ..train.init_weights import load_init_weights, read_state_dict


def load_module(model_file: str, weights: str | Path, model_args: dict | None = None) -> tuple[nn.Module, dict]:
    """(the network with `weights` loaded, eval mode; {"path", "kind", "sha256"} of the weights).
    `model_file`: path/to/net.py:FUNCTION or package.module:FUNCTION."""
    where = str(model_file).rpartition(":")[0]
    as_file = where.endswith(".py") or "/" in where or Path(where).exists()
    source = resolve_source(model_file if as_file else None, None if as_file else model_file, model_args)
    net = build_module(source)
    state, info = read_state_dict(weights, "--weights")
    load_init_weights(net, state, info["path"], "--weights")
    return net.eval(), {**info, "model": source.spec, "model_args": dict(model_args or {})}


def parse_model_args(text: str | None) -> dict:
    if not text:
        return {}
    try:
        args = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--model-args is not JSON: {e.msg} at character {e.pos}") from None
    if not isinstance(args, dict):
        raise ConfigError(f"--model-args must be a JSON object of keyword arguments, got {type(args).__name__}")
    return args


def parse_input_shape(text: str | None) -> tuple[int, ...]:
    """`1,3,224,224` -> (1, 3, 224, 224): batch 1, an image shape (N, C, H, W)."""
    if not text:
        raise ConfigError("--input-shape is required with --weights (e.g. --input-shape 1,3,224,224)")
    try:
        shape = tuple(int(v) for v in str(text).replace("x", ",").split(","))
    except ValueError:
        raise ConfigError(f"--input-shape {text!r} must be comma-separated integers, e.g. 1,3,224,224") from None
    if len(shape) != 4 or shape[0] != 1 or min(shape) < 1:
        raise ConfigError(f"--input-shape {text!r} must be 1,C,H,W (batch 1: the artefacts' static shape)")
    return shape


def parse_floats(text: str | None, channels: int, what: str, default: float) -> tuple[float, ...]:
    if not text:
        return (default,) * channels
    try:
        values = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        raise ConfigError(f"{what} {text!r} must be comma-separated numbers") from None
    if len(values) == 1:
        values = values * channels
    if len(values) != channels or (what == "--std" and min(values) <= 0):
        raise ConfigError(f"{what} {text!r} must give one {'positive ' if what == '--std' else ''}number, or one "
                          f"per channel ({channels})")
    return values


def folder_inputs(directory: str | Path, shape: tuple[int, ...], what: str, *, limit: int | None = None,
                  seed: int = 0, mean: tuple[float, ...] = (0.0,), std: tuple[float, ...] = (1.0,),
                  split: str = "train") -> Tensor:
    """Up to `limit` images (a seeded sample) from the files under `directory`, as the model takes
    them: (N, C, H, W) float, [0, 1] then normalised with `mean`/`std`. An Ultralytics data.yaml
    gives its `split` ("train" or "val") images, letterboxed as Ultralytics feeds a detector."""
    root = Path(directory)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    if root.suffix.lower() in YAML_SUFFIXES:
        from ..detection.folder import letterboxed_images

        if shape[1] != 3 or shape[2] != shape[3]:
            raise DataError(f"{what} data {root} is a detection set, letterboxed to a square RGB input; "
                            f"--input-shape is {','.join(map(str, shape))}")
        images, _ = letterboxed_images(root, split, shape[2], limit, seed)
        return (images.float() / 255.0 - m) / s
    if not root.is_dir():
        raise DataError(f"{what} directory {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{what} directory {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if limit is not None and len(files) > limit:
        pick = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:limit]
        files = [files[i] for i in sorted(pick.tolist())]
    channels, size = shape[1], tuple(shape[2:])
    x = torch.stack([load_image(f, channels, size) for f in files]).float() / 255.0
    return (x - m) / s
